"""The columns that travel between databases, and the checks their values pass.

Every value read from a file goes through one of the `check_*` functions, which
return it in the form linkbroker stores or raise InvalidImport naming the value.
"""

import re
from datetime import UTC, datetime

from linkbroker.errors import InvalidImport

# The links table as exported, in the order of its columns.
LINK_FIELDS = (
    "slug",
    "destination_url",
    "created_at",
    "clicks",
    "bot_clicks",
    "redirect_status",
    "expires_at",
    "max_clicks",
    "limit_used",
    "fallback_url",
    "disabled_at",
    "deleted_at",
)
# A link's leading columns that every imported link carries; the rest, as `shorten`
# makes them, are LINK_DEFAULTS, the defaults of the table's columns.
NARROW = 4
LINK_DEFAULTS = (0, 302, None, None, 0, None, None, None)
# The other tables a JSON Lines export carries, each without its local row id:
# ids mean nothing in another database, and the order of the lines keeps theirs.
EXTRA_FIELDS = {
    "history": (
        "slug",
        "destination_url",
        "redirect_status",
        "changed_at",
        "changed_by",
        "reverted_at",
        "reverted_by",
    ),
    "click": (
        "slug",
        "clicked_at",
        "referrer_host",
        "user_agent",
        "is_bot",
        "bot_reason",
        "visitor",
    ),
    "day": ("slug", "day", "human", "bot"),
    "source": ("slug", "day", "kind", "source", "clicks"),
}
EXTRA_TABLES = {
    "history": "link_history",
    "click": "clicks",
    "day": "daily_clicks",
    "source": "daily_sources",
}

REDIRECT_STATUSES = frozenset({301, 302, 307, 308})

_STORED_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_CLICK_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?")
_DAY = re.compile(r"\d{4}-\d\d-\d\d")
# ASCII digits only: str.isdigit takes '²', which int() refuses. Up to the largest
# whole number SQLite stores.
_COUNT = re.compile(r"\s*[0-9]{1,19}\s*")
_MOST = 2**63 - 1
# Numbers this large are taken as milliseconds since 1970, as JavaScript writes them.
_MILLISECONDS_FROM = 10**11


def check_time(name: str, value: object) -> str | None:
    """Return a time as 'YYYY-MM-DD HH:MM:SS' in UTC, or None for an empty value.

    Accepts that form itself, ISO 8601 with or without an offset (UTC when none),
    and seconds or milliseconds since 1970.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and _STORED_TIME.fullmatch(value) and _real(value):
        return value
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
            return _stored(datetime.fromtimestamp(seconds, UTC))
        if isinstance(value, str):
            return _stored(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError, OSError):
        pass  # a day that no calendar has, or a number of seconds out of range
    raise InvalidImport(
        f"{name} {value!r} is not a time; write it as YYYY-MM-DD HH:MM:SS (UTC) "
        "or in ISO 8601, from year 1 to 9999.",
        value,
    )


def _real(stored: str) -> bool:
    """Whether a time of the stored shape names a moment: no 30 February."""
    try:
        datetime.fromisoformat(stored)
    except ValueError:
        return False
    return True


def _stored(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    # Not strftime: it writes the year 999 as '999', which sorts after '2024'.
    return moment.isoformat(sep=" ", timespec="seconds")


def check_count(name: str, value: object, default: int | None = 0) -> int | None:
    """Return a whole number of zero or more; `default` for an empty value."""
    if value is None or value == "":
        return default
    number = int(value) if isinstance(value, str) and _COUNT.fullmatch(value) else value
    if type(number) is int and 0 <= number <= _MOST:  # a bool is no count
        return number
    raise InvalidImport(
        f"{name} {value!r} is not a whole number from 0 to {_MOST:,}.", value
    )


def check_status(value: object) -> int:
    """Return a redirect status linkbroker answers with; 302 for an empty value."""
    status = check_count("redirect_status", value, 302)
    if status not in REDIRECT_STATUSES:
        raise InvalidImport(
            f"redirect_status {value!r} is not one of 301, 302, 307 and 308.", value
        )
    return status


def check_text(name: str, value: object, *, required: bool = False) -> str | None:
    """Return a text value, None for an empty one; raise if required and empty."""
    if value is None or value == "":
        if required:
            raise InvalidImport(f"{name} is empty; give a value.", value)
        return None
    if not isinstance(value, str):
        raise InvalidImport(f"{name} {value!r} is not text.", value)
    return value


def check_click_time(value: object) -> str:
    """Return a click's time, 'YYYY-MM-DD HH:MM:SS' with optional milliseconds."""
    if isinstance(value, str) and _CLICK_TIME.fullmatch(value) and _real(value):
        return value
    raise InvalidImport(
        f"clicked_at {value!r} is not a time as YYYY-MM-DD HH:MM:SS.mmm.", value
    )


def check_day(value: object) -> str:
    """Return a day as 'YYYY-MM-DD'."""
    if isinstance(value, str) and _DAY.fullmatch(value) and _real(value):
        return value
    raise InvalidImport(f"day {value!r} is not a day as YYYY-MM-DD.", value)
