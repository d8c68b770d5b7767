"""How the commands print: JSON for scripts, rich tables for people."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from linkbroker.model import Link


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    import json

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def console() -> "Console":
    """Return a rich console on stdout; rich is imported only when a table is drawn."""
    from rich.console import Console

    return Console(highlight=False)


def print_links(links: Sequence["Link"], title: str) -> None:
    """Print links as a table: slug, destination, clicks, bots, creation time."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Slug", no_wrap=True)
    table.add_column("Destination", overflow="fold")
    table.add_column("Clicks", justify="right")
    table.add_column("Bots", justify="right")
    table.add_column("Created (UTC)", no_wrap=True)
    for link in links:
        table.add_row(
            link.slug,
            link.destination,
            f"{link.clicks:,}",
            f"{link.bot_clicks:,}",
            link.created_at,
        )
    console().print(table)
