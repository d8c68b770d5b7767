"""From a stored link to what serving it needs: a Target with ASCII URLs.

linkbroker stores destinations in their checked ASCII form; a row another tool
wrote may be neither, and is checked and put in that form here, so that every
reader gets a value it can send in a Location header.
"""

import logging

from linkbroker.errors import InvalidDestination
from linkbroker.lifecycle import epoch
from linkbroker.model import DEFAULT_STATUS, REDIRECT_STATUSES, Target

logger = logging.getLogger(__name__)


def target(
    destination: str,
    status: int,
    expires_at: str | None,
    max_clicks: int | None,
    fallback: str | None,
    disabled_at: str | None,
) -> Target | None:
    """Return what serving a stored link needs, or None if it cannot be served."""
    served = servable(destination)
    if served is None:
        return None
    try:
        expires = None if expires_at is None else epoch(expires_at)
    except (TypeError, ValueError):
        # Written by another tool: an end that cannot be read is not ignored, and
        # the link is not served rather than served for ever.
        logger.warning("not serving a link whose expiry %r is unreadable", expires_at)
        return None
    return Target(
        served,
        status if status in REDIRECT_STATUSES else DEFAULT_STATUS,
        expires,
        max_clicks,
        None if fallback is None else servable(fallback),
        disabled_at is not None,
    )


def servable(url: str) -> str | None:
    """Return `url` as a Location header can carry it, or None if it is refused."""
    if _looks_stored(url):
        return url
    from linkbroker.destinations import normalize

    try:
        return normalize(url)
    except InvalidDestination:
        logger.warning("not serving %r: it is not a valid destination", url)
        return None


def _looks_stored(url: str) -> bool:
    # Cheap enough for every cache miss; anything else takes the full check.
    return (
        url.startswith(("http://", "https://"))
        and url.isascii()
        and url.isprintable()
        and " " not in url
    )
