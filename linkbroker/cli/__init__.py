"""The linkbroker command line: a thin adapter over the core.

Heavy modules (rich, sqlite-utils, uvicorn) are imported inside the commands that
need them, so that a quick command such as `resolve` starts as fast as Typer allows.
"""

from linkbroker.cli import commands  # noqa: F401  (registers the commands)
from linkbroker.cli.app import app


def main() -> None:
    """Run the linkbroker command line."""
    app(prog_name="linkbroker")


__all__ = ["app", "main"]
