"""Commands that change a link after it is made: edit, disable, enable, revert."""

from typing import TYPE_CHECKING, Annotated

import typer

from linkbroker.cli.app import app, author, options
from linkbroker.cli.output import console, print_json, warn_if_permanent
from linkbroker.cli.terms import JSON, ExpiresAt, ExpiresIn, Fallback, MaxClicks

if TYPE_CHECKING:
    from linkbroker.model import Edit, Link

Slug = Annotated[str, typer.Argument(help="The slug of the link.")]


@app.command()
def edit(
    ctx: typer.Context,
    slug: Slug,
    to: Annotated[
        str | None,
        typer.Option("--to", help="A new destination URL.", show_default=False),
    ] = None,
    status: Annotated[
        int | None,
        typer.Option(
            help="A new redirect status: 301, 302, 307 or 308.", show_default=False
        ),
    ] = None,
    expires_in: ExpiresIn = None,
    expires_at: ExpiresAt = None,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="Never expire.")
    ] = False,
    max_clicks: MaxClicks = None,
    no_max_clicks: Annotated[
        bool, typer.Option("--no-max-clicks", help="Remove the click limit.")
    ] = False,
    fallback: Fallback = None,
    no_fallback: Annotated[
        bool, typer.Option("--no-fallback", help="Answer 410 Gone once over.")
    ] = False,
    as_json: JSON = False,
) -> None:
    """Change a link's destination or terms; the old destination goes into history.

    A new expiry or click limit re-arms an expired or exhausted link: a click limit
    set again counts from zero.
    """
    change = _edit(
        to,
        status,
        expires_in,
        expires_at,
        no_expiry,
        max_clicks,
        no_max_clicks,
        fallback,
        no_fallback,
    )
    if change.is_empty():
        raise typer.BadParameter("Say what to change, e.g. --to URL; see --help.")
    with options(ctx).store() as store:
        link = store.edit(slug, change, by=author())
        if status is not None:
            warn_if_permanent(status, store.settings)
    _show(link, as_json)


@app.command()
def disable(ctx: typer.Context, slug: Slug) -> None:
    """Switch a link off: it answers 410 Gone and keeps everything."""
    from linkbroker.model import Edit

    with options(ctx).store() as store:
        store.edit(slug, Edit(disabled=True), by=author())
    typer.echo(f"Disabled {slug}; `linkbroker enable {slug}` switches it back on.")


@app.command()
def enable(ctx: typer.Context, slug: Slug) -> None:
    """Switch a disabled link back on."""
    from linkbroker.model import Edit

    with options(ctx).store() as store:
        link = store.edit(slug, Edit(disabled=False), by=author())
    typer.echo(f"Enabled {slug}; it is {link.state}.")


@app.command()
def history(ctx: typer.Context, slug: Slug, as_json: JSON = False) -> None:
    """Show every destination a link has had, with when and by whom."""
    with options(ctx).store() as store:
        changes = store.history(slug)

    if as_json:
        print_json([change.as_dict() for change in changes])
        return
    from rich.table import Table

    table = Table(title=f"History of {slug}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Destination", overflow="fold", ratio=1)
    for name in ("Status", "When (UTC)", "By", "Reverted"):
        table.add_column(name, overflow="fold")
    for number, change in enumerate(changes, 1):
        reverted = (
            f"{change.reverted_at} by {change.reverted_by}"
            if change.reverted_at
            else ""
        )
        table.add_row(
            str(number),
            change.destination,
            str(change.status),
            change.changed_at,
            change.changed_by or "(before history)",
            reverted,
        )
    console().print(table)


@app.command()
def revert(ctx: typer.Context, slug: Slug, as_json: JSON = False) -> None:
    """Take a link back to its previous destination; run again to go further back."""
    with options(ctx).store() as store:
        link = store.revert(slug, by=author())
    _show(link, as_json)


def _edit(
    to: str | None,
    status: int | None,
    expires_in: str | None,
    expires_at: str | None,
    no_expiry: bool,
    max_clicks: int | None,
    no_max_clicks: bool,
    fallback: str | None,
    no_fallback: bool,
) -> "Edit":
    from linkbroker import lifecycle
    from linkbroker.model import UNSET, Edit

    for flag, *values in (
        ("--no-expiry", no_expiry, expires_in, expires_at),
        ("--no-max-clicks", no_max_clicks, max_clicks),
        ("--no-fallback", no_fallback, fallback),
    ):
        if values[0] and any(value is not None for value in values[1:]):
            raise typer.BadParameter(f"{flag} cannot go with a new value for it.")

    expiry = lifecycle.expiry(expires_in, expires_at)
    return Edit(
        destination=UNSET if to is None else to,
        status=UNSET if status is None else status,
        expires_at=None if no_expiry else (UNSET if expiry is None else expiry),
        max_clicks=None
        if no_max_clicks
        else (UNSET if max_clicks is None else max_clicks),
        fallback=None if no_fallback else (UNSET if fallback is None else fallback),
    )


def _show(link: "Link", as_json: bool) -> None:
    if as_json:
        print_json(link.as_dict())
    else:
        typer.echo(f"{link.slug} -> {link.destination} ({link.status}, {link.state})")
