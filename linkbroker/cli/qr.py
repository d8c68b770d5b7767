"""The QR code command."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from linkbroker.cli.app import app, options
from linkbroker.errors import StorageError


@app.command()
def qr(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The slug of the link.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write a PNG or SVG file (by its extension) instead of drawing "
            "the code in the terminal.",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        int, typer.Option(min=1, max=100, help="Pixels per module in a file.")
    ] = 10,
) -> None:
    """Show a QR code of the short URL of SLUG, or write it to a file."""
    from linkbroker import qrcodes

    kind = "" if output is None else output.suffix.lower().lstrip(".")
    if output is not None and kind not in qrcodes.MEDIA_TYPES:
        raise typer.BadParameter(
            f"{str(output)!r} ends in neither .png nor .svg; name the file "
            "code.png or code.svg.",
            param_hint="--output",
        )
    with options(ctx).store() as store:
        link = store.get(slug)
        short_url = store.settings.short_url(link.slug)

    if output is None:
        _draw(short_url)
        return
    try:
        output.write_bytes(qrcodes.image(short_url, kind, scale))
    except OSError as exc:
        raise StorageError(
            f"Cannot write {str(output)!r} ({exc.strerror}); check the folder exists "
            "and is writable.",
            output,
        ) from None
    typer.echo(f"Wrote a QR code of {short_url} to {output}.")


def _draw(short_url: str) -> None:
    from linkbroker import qrcodes

    try:
        qrcodes.draw(short_url, sys.stdout)
    except UnicodeEncodeError:
        raise typer.BadParameter(
            f"This terminal's encoding ({sys.stdout.encoding}) cannot show the "
            "code's block characters; write a file with --output code.png, or use "
            "a UTF-8 terminal.",
            param_hint="SLUG",
        ) from None
    typer.echo(short_url)
