"""Reading the terms a person gives a link: durations, moments, limits, statuses.

The CLI and the API both pass what they were given through these functions, so that
`7d`, `2027-01-31T12:00` or a redirect status mean the same from either side.
"""

import datetime as dt
import re

from linkbroker.errors import InvalidTerms
from linkbroker.model import PERMANENT_STATUSES, REDIRECT_STATUSES, TIME_FORMAT

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
# ASCII digits only, and few of them: \d would take other scripts' digits, and a
# number thousands of digits long is refused by int() itself.
_DURATION = re.compile(r"(?:[0-9]{1,9}[smhdw]){1,5}")
_PART = re.compile(r"([0-9]+)([smhdw])")
# About a hundred years: far enough for any real link, small enough for datetime.
LONGEST = dt.timedelta(days=36_500)
# Any real limit fits, and every JSON client reads it exactly.
MAX_CLICKS = 10**12


def parse_duration(text: str, field: str = "expiresIn") -> dt.timedelta:
    """Return the span `text` names, such as 90m, 12h, 7d, 2w or 1d12h."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise InvalidTerms(
            f"The duration {text!r} is not one; write a number and a unit "
            "(s, m, h, d, w), like 30m, 12h, 7d or 1d12h.",
            text,
            field,
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if not 0 < seconds <= LONGEST.total_seconds():
        raise InvalidTerms(
            f"The duration {text!r} must be longer than nothing and at most "
            f"{LONGEST.days} days.",
            text,
            field,
        )
    return dt.timedelta(seconds=seconds)


def parse_moment(text: str, field: str = "expiresAt") -> dt.datetime:
    """Return the UTC moment `text` names: an ISO 8601 date or date and time.

    A time without an offset is read as UTC; a date alone means its midnight, UTC.
    """
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidTerms(
            f"The time {text!r} is not a date and time; write it like "
            "2027-01-31, 2027-01-31T18:00 (UTC) or 2027-01-31T18:00+01:00.",
            text,
            field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # an offset pushing year 1 or 9999 out of range
        raise InvalidTerms(
            f"The time {text!r} is out of range; give a date within a hundred "
            "years from now.",
            text,
            field,
        ) from None


def expiry(
    expires_in: str | None, expires_at: str | None, now: dt.datetime | None = None
) -> str | None:
    """Return the stored expiry for an --expires-in or --expires-at, or None."""
    if expires_in is not None and expires_at is not None:
        raise InvalidTerms(
            "Give an expiry as a duration or as a time, not both.",
            expires_at,
            "expiresAt",
        )
    now = now or dt.datetime.now(dt.UTC)
    if expires_in is not None:
        return (now + parse_duration(expires_in)).strftime(TIME_FORMAT)
    if expires_at is None:
        return None

    moment = parse_moment(expires_at)
    if moment <= now:
        raise InvalidTerms(
            f"The time {expires_at!r} is already past; give a time to come.",
            expires_at,
            "expiresAt",
        )
    if moment - now > LONGEST:
        raise InvalidTerms(
            f"The time {expires_at!r} is more than {LONGEST.days} days away.",
            expires_at,
            "expiresAt",
        )
    return moment.strftime(TIME_FORMAT)


def check_status(status: int) -> int:
    """Return `status` if links may redirect with it."""
    if status not in REDIRECT_STATUSES:
        allowed = ", ".join(map(str, REDIRECT_STATUSES))
        raise InvalidTerms(
            f"The redirect status {status!r} is not one linkbroker sends; "
            f"use one of {allowed}.",
            status,
            "status",
        )
    return status


def check_max_clicks(max_clicks: int | None) -> int | None:
    """Return `max_clicks` if it is a usable limit (or None, for no limit)."""
    if max_clicks is not None and not 1 <= max_clicks <= MAX_CLICKS:
        raise InvalidTerms(
            f"The click limit {max_clicks!r} must be a whole number from 1 to "
            f"{MAX_CLICKS:,}.",
            max_clicks,
            "maxClicks",
        )
    return max_clicks


def epoch(stored: str) -> float:
    """Return a stored UTC time as seconds since the epoch."""
    moment = dt.datetime.strptime(stored, TIME_FORMAT)
    return moment.replace(tzinfo=dt.UTC).timestamp()


def permanent_warning(status: int, max_age: int) -> str | None:
    """Return what a person asking for a permanent redirect should know, if so."""
    if status not in PERMANENT_STATUSES:
        return None
    return (
        f"A {status} redirect is permanent: browsers keep it (told to ask again "
        f"after {max_age:,} s, which not all do) and stop asking linkbroker, so "
        "later edits and deletes will not reach them and their repeat clicks go "
        "uncounted. Use 302 or 307 for a link that may change."
    )
