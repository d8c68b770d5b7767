"""The options that set a link's terms, shared by `shorten` and `edit`."""

from typing import Annotated

import typer

JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ExpiresIn = Annotated[
    str | None,
    typer.Option(
        help="Expire after this long: 30m, 12h, 7d, 2w, 1d12h.", show_default=False
    ),
]
ExpiresAt = Annotated[
    str | None,
    typer.Option(
        help="Expire at this time: 2027-01-31, 2027-01-31T18:00 (UTC) or with an "
        "offset, 2027-01-31T18:00+01:00.",
        show_default=False,
    ),
]
MaxClicks = Annotated[
    int | None,
    typer.Option(
        help="Stop after this many human clicks; bots and previews do not count.",
        show_default=False,
    ),
]
Fallback = Annotated[
    str | None,
    typer.Option(
        help="Where to send visitors once the link has expired or run out, "
        "instead of answering 410 Gone.",
        show_default=False,
    ),
]
Status = Annotated[
    int,
    typer.Option(
        help="Redirect status: 302 or 307 (temporary), 301 or 308 (permanent, "
        "cached by browsers)."
    ),
]
