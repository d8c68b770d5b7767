"""The Typer application, its global options and its error translation."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from linkbroker import __version__
from linkbroker.errors import LinkbrokerError

if TYPE_CHECKING:  # the store pulls in diskcache: imported where it is used
    from linkbroker.settings import Settings
    from linkbroker.store import LinkStore


class _Group(TyperGroup):
    """Turns linkbroker's errors into one line on stderr and exit status 1."""

    # Typed loosely: the Context class Typer passes here is private to Typer.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LinkbrokerError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from exc


app = typer.Typer(
    cls=_Group,
    help="Manage and serve short links from one machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Options:
    """The global options, kept until a command builds the settings from them."""

    db_path: Path | None
    cache_dir: Path | None
    base_url: str | None

    def settings(self) -> "Settings":
        """Build the settings: these options, then the environment, then defaults."""
        from linkbroker.settings import Settings

        return Settings.load(
            db_path=self.db_path, cache_dir=self.cache_dir, base_url=self.base_url
        )

    def store(self) -> "LinkStore":
        """Open the link store these options point at."""
        from linkbroker.store import LinkStore

        return LinkStore(self.settings())


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"linkbroker {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db",
            help="SQLite database file [env: LINKBROKER_DB].",
            show_default=False,
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Cache folder [env: LINKBROKER_CACHE_DIR].",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Base of short URLs [env: LINKBROKER_BASE_URL; "
            "default: http://127.0.0.1:8000].",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Manage and serve short links from one machine."""
    ctx.obj = Options(db, cache_dir, base_url)


def options(ctx: typer.Context) -> Options:
    """Return the global options a command runs under."""
    found = ctx.find_object(Options)
    assert found is not None, "the app callback always sets the options"
    return found


def author() -> str:
    """Name who runs a command that changes a link, for its history."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in this environment
        return "cli"
