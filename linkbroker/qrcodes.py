"""QR codes of short URLs, drawn by segno for the CLI and the API alike."""

import io
from typing import TextIO

# The image formats offered, with their media types.
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
SCALE = 10  # pixels a module: some 330 pixels square for a short URL


def image(text: str, kind: str, scale: int = SCALE) -> bytes:
    """Return a QR code of `text` as a PNG or SVG file's bytes."""
    import segno  # imported on use: serving redirects never needs it

    buffer = io.BytesIO()
    segno.make(text, micro=False).save(buffer, kind=kind, scale=scale, border=4)
    return buffer.getvalue()


def draw(text: str, out: TextIO) -> None:
    """Draw a QR code of `text` on a terminal, two rows of modules a line."""
    import segno

    segno.make(text, micro=False).terminal(out=out, compact=True)
