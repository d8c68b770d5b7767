"""Commands that make, read and remove links."""

from typing import Annotated

import typer

from linkbroker.cli.app import app, options
from linkbroker.cli.output import print_json, print_links

JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


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
    reuse: Annotated[
        bool,
        typer.Option(
            "--reuse", help="Return the existing link to URL instead of making another."
        ),
    ] = False,
    as_json: JSON = False,
) -> None:
    """Make a short link to URL and print its short URL."""
    opts = options(ctx)
    with opts.store() as store:
        link = store.create(url, slug, reuse=reuse)
        short_url = store.settings.short_url(link.slug)

    if as_json:
        print_json(
            {"slug": link.slug, "destination": link.destination, "short_url": short_url}
        )
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
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Delete the link SLUG; a running server stops serving it within a second."""
    with options(ctx).store() as store:
        link = store.get(slug)
        if not yes:
            typer.confirm(
                f"Delete {link.slug} -> {link.destination} ({link.clicks:,} clicks)?",
                abort=True,
            )
        store.delete(slug)
    typer.echo(f"Deleted {slug}.")
