"""The statistics command."""

from typing import Annotated

import typer

from linkbroker.cli.app import app, options
from linkbroker.cli.output import console, print_json, print_links


@app.command()
def stats(
    ctx: typer.Context,
    slug: Annotated[
        str | None,
        typer.Argument(help="One link to show in detail.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Show at most this many links.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show links by clicks, most clicked first, or one link in detail."""
    with options(ctx).store() as store:
        if slug is None:
            links = store.most_clicked(limit)
        else:
            link = store.get(slug)
            short_url = store.settings.short_url(slug)

    if slug is None:
        if as_json:
            print_json([link.as_dict() for link in links])
        else:
            print_links(links, title="Links by clicks")
        return

    if as_json:
        print_json({**link.as_dict(), "short_url": short_url})
        return
    out = console()
    out.print(f"[bold]{link.slug}[/bold]  {short_url}", markup=True)
    out.print(f"Destination: {link.destination}", markup=False)
    out.print(f"Created:     {link.created_at} UTC")
    out.print(f"Clicks:      {link.clicks:,}")
