"""Generating and validating slugs."""

import re

from linkbroker.errors import InvalidSlug

# Without 0/O/o, 1/l/I/i: a slug read aloud or off a poster is typed back right.
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
MAX_LENGTH = 64
MIN_GENERATED_LENGTH = 4
MAX_GENERATED_LENGTH = 32

# Paths the server owns now or may own; refused in any letter case so that a link
# never shadows a route, nor looks like one.
RESERVED = frozenset(
    {
        "api",
        "healthz",
        "admin",
        "static",
        "assets",
        "metrics",
        "login",
        "logout",
        "favicon.ico",
        "robots.txt",
    }
)

_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{1,64}")


def generate(length: int) -> str:
    """Return a random slug of `length` characters from the look-alike-free alphabet."""
    import secrets  # only when a link is made; resolving never needs it

    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def is_well_formed(slug: str) -> bool:
    """Tell whether `slug` could name a link, without any storage look-up."""
    return _WELL_FORMED.fullmatch(slug) is not None and slug.lower() not in RESERVED


def validate(slug: str) -> str:
    """Return `slug` unchanged if it may name a link; raise InvalidSlug otherwise."""
    if not slug:
        raise InvalidSlug("The slug is empty; give 1 to 64 characters.", slug)
    if len(slug) > MAX_LENGTH:
        raise InvalidSlug(
            f"The slug {slug[:20]!r}… is {len(slug)} characters long; "
            f"use at most {MAX_LENGTH}.",
            slug,
        )
    if _WELL_FORMED.fullmatch(slug) is None:
        raise InvalidSlug(
            f"The slug {slug!r} has characters outside A-Z, a-z, 0-9, '_' and '-'; "
            "use only those.",
            slug,
        )
    if slug.lower() in RESERVED:
        raise InvalidSlug(
            f"The slug {slug!r} is reserved for the server's own routes; "
            "choose another.",
            slug,
        )
    return slug
