"""Commands that make, read and remove links."""

from typing import Annotated

import typer

from linkbroker.cli.app import app, author, options
from linkbroker.cli.output import print_json, print_links, warn_if_permanent
from linkbroker.cli.terms import (
    JSON,
    ExpiresAt,
    ExpiresIn,
    Fallback,
    MaxClicks,
    Status,
)
from linkbroker.model import DEFAULT_STATUS


@app.command()
def shorten(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The destination, an http(s) URL.")],
    slug: Annotated[
        str | None,
        typer.Option(
            help="A custom slug: 1 to 64 of A-Z a-z 0-9 _ -.", show_default=False
        ),
    ] = None,
    expires_in: ExpiresIn = None,
    expires_at: ExpiresAt = None,
    max_clicks: MaxClicks = None,
    fallback: Fallback = None,
    status: Status = DEFAULT_STATUS,
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse", help="Return the existing link to URL instead of making another."
        ),
    ] = False,
    reclaim: Annotated[
        bool,
        typer.Option(
            "--reclaim",
            help="Take the --slug of a deleted link, dropping its old statistics.",
        ),
    ] = False,
    as_json: JSON = False,
) -> None:
    """Make a short link to URL and print its short URL."""
    from linkbroker import lifecycle
    from linkbroker.model import Terms

    terms = Terms(
        status=status,
        expires_at=lifecycle.expiry(expires_in, expires_at),
        max_clicks=max_clicks,
        fallback=fallback,
    )
    with options(ctx).store() as store:
        link = store.create(
            url, slug, terms=terms, reuse=reuse, reclaim=reclaim, by=author()
        )
        short_url = store.settings.short_url(link.slug)
        warn_if_permanent(status, store.settings)

    if as_json:
        print_json({**link.as_dict(), "short_url": short_url})
    else:
        typer.echo(short_url)


@app.command()
def resolve(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The slug to look up.")],
) -> None:
    """Print where SLUG leads, without counting a click."""
    # Straight from the database: a one-shot process gains nothing from the shared
    # cache, and opening it would cost more than the look-up itself.
    with options(ctx).store() as store:
        link = store.get(slug)
    typer.echo(link.destination)


@app.command("list")
def list_links(
    ctx: typer.Context,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Show at most this many links.", show_default=False),
    ] = None,
    as_json: JSON = False,
) -> None:
    """List links, newest first."""
    with options(ctx).store() as store:
        links = store.newest(limit)

    if as_json:
        print_json([link.as_dict() for link in links])
    elif not links:
        typer.echo("No links yet; make one with `linkbroker shorten URL`.")
    else:
        print_links(links, title=f"{len(links)} link{'s' * (len(links) != 1)}")


@app.command()
def delete(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The slug of the link to delete.")],
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Also remove its clicks, history and tombstone, freeing the slug.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Delete the link SLUG; a running server stops serving it within a second.

    The slug stays taken and the link's statistics stay, unless --purge.
    """
    with options(ctx).store() as store:
        link = store.get(slug, deleted=purge)
        if not yes:
            clicks = link.clicks + link.bot_clicks
            question = (
                f"Purge {link.slug} -> {link.destination}? Its {clicks:,} recorded "
                "clicks and its history will be lost for good"
                if purge
                else f"Delete {link.slug} -> {link.destination} ({link.clicks:,} "
                "clicks)?"
            )
            typer.confirm(question, abort=True)
        if purge:
            store.purge(slug)
        else:
            store.delete(slug)
    typer.echo(f"{'Purged' if purge else 'Deleted'} {slug}.")
