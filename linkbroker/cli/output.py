"""How the commands print: JSON for scripts, rich tables for people."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from linkbroker.model import Link
    from linkbroker.settings import Settings


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    import json

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def console() -> "Console":
    """Return a rich console on stdout; rich is imported only when a table is drawn."""
    from rich.console import Console

    return Console(highlight=False)


def print_links(links: Sequence["Link"], title: str) -> None:
    """Print links as a table: slug, destination, clicks, bots, creation time.

    A state column joins them when some link is expired, exhausted or disabled.
    """
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("Slug", no_wrap=True)
    table.add_column("Destination", overflow="fold")
    table.add_column("Clicks", justify="right")
    table.add_column("Bots", justify="right")
    # Shown only where it tells something: most lists are all active links.
    states = any(link.state != "active" for link in links)
    if states:
        table.add_column("State", no_wrap=True)
    table.add_column("Created (UTC)", no_wrap=True)
    for link in links:
        state = [link.state] if states else []
        table.add_row(
            link.slug,
            link.destination,
            f"{link.clicks:,}",
            f"{link.bot_clicks:,}",
            *state,
            link.created_at,
        )
    console().print(table)


def warn_if_permanent(status: int, settings: "Settings") -> None:
    """Tell a person who asked for a permanent redirect what it costs them."""
    from linkbroker.lifecycle import permanent_warning

    warning = permanent_warning(status, settings.permanent_max_age)
    if warning:
        typer.echo(f"Warning: {warning}", err=True)
