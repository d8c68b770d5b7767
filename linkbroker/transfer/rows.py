"""Checking one imported row: the rules `shorten` applies, and the column types.

Each function takes a record's values and returns the tuple staged for it, in the
order of its table's columns, or raises a LinkbrokerError whose message says what
is wrong with which value.
"""

from collections.abc import Mapping

from linkbroker import lifecycle, slugs
from linkbroker.destinations import Policy, normalize
from linkbroker.errors import InvalidImport
from linkbroker.transfer.fields import (
    LINK_DEFAULTS,
    LINK_FIELDS,
    NARROW,
    check_click_time,
    check_count,
    check_day,
    check_status,
    check_text,
    check_time,
)

Values = Mapping[str, object]
Row = tuple[object, ...]


def link_row(values: Values, policy: Policy, now: str) -> Row:
    """Return a link's columns, checked as `shorten` checks a new link.

    An empty slug stays None, to be generated; a missing creation time is `now`.
    A link whose columns after `clicks` hold their defaults, as every link from
    another tool does, is returned with the first NARROW columns only: the rest
    are left to the table's defaults, which saves binding them a million times.
    """
    slug = check_text("slug", values.get("slug"))
    destination = check_text(
        "destination_url", values.get("destination_url"), required=True
    )
    narrow = (
        None if slug is None else slugs.validate(slug),
        policy.check(str(destination)),
        check_time("created_at", values.get("created_at")) or now,
        check_count("clicks", values.get("clicks")),
    )
    # Files from other tools carry these columns at most: the rest take their
    # defaults without a check each.
    if values.keys() <= _NARROW_NAMES:
        return narrow
    # A link exported by linkbroker with its terms at their defaults, the usual
    # line of an export, is the same: its values are the defaults, of their types.
    given = tuple(map(values.get, _TAIL_NAMES))
    if given == LINK_DEFAULTS and tuple(map(type, given)) == _DEFAULT_TYPES:
        return narrow
    fallback = check_text("fallback_url", values.get("fallback_url"))
    tail = (
        check_count("bot_clicks", values.get("bot_clicks")),
        check_status(values.get("redirect_status")),
        check_time("expires_at", values.get("expires_at")),
        lifecycle.check_max_clicks(
            check_count("max_clicks", values.get("max_clicks"), None)
        ),
        check_count("limit_used", values.get("limit_used")),
        None if fallback is None else policy.check(fallback),
        check_time("disabled_at", values.get("disabled_at")),
        check_time("deleted_at", values.get("deleted_at")),
    )
    return narrow if tail == LINK_DEFAULTS else narrow + tail


def widened(row: Row) -> Row:
    """Return a link's columns in full, the defaults added to a narrow row."""
    return row if len(row) == len(LINK_FIELDS) else row + LINK_DEFAULTS


_NARROW_NAMES = frozenset(LINK_FIELDS[:NARROW])
_TAIL_NAMES = LINK_FIELDS[NARROW:]
_DEFAULT_TYPES = tuple(map(type, LINK_DEFAULTS))


def history_row(values: Values) -> Row:
    """Return a destination history entry's columns.

    A past destination is held to the URL rules, not to today's policy: it is a
    record of what was, and is checked again should it ever be restored.
    """
    return (
        check_text("slug", values.get("slug"), required=True),
        normalize(str(check_text("destination_url", values.get("destination_url")))),
        check_status(values.get("redirect_status")),
        _required_time("changed_at", values.get("changed_at")),
        check_text("changed_by", values.get("changed_by"), required=True),
        check_time("reverted_at", values.get("reverted_at")),
        check_text("reverted_by", values.get("reverted_by")),
    )


def click_row(values: Values) -> Row:
    """Return a raw click event's columns."""
    is_bot = values.get("is_bot")
    if is_bot not in (True, False, 0, 1):
        raise InvalidImport(f"is_bot {is_bot!r} is not true or false.", is_bot)
    return (
        check_text("slug", values.get("slug"), required=True),
        check_click_time(values.get("clicked_at")),
        check_text("referrer_host", values.get("referrer_host")),
        check_text("user_agent", values.get("user_agent")),
        int(bool(is_bot)),
        check_text("bot_reason", values.get("bot_reason")),
        check_text("visitor", values.get("visitor")),
    )


def day_row(values: Values) -> Row:
    """Return a per-day counter's columns."""
    return (
        check_text("slug", values.get("slug"), required=True),
        check_day(values.get("day")),
        check_count("human", values.get("human")),
        check_count("bot", values.get("bot")),
    )


def source_row(values: Values) -> Row:
    """Return a per-day referrer or bot-reason counter's columns."""
    kind = values.get("kind")
    if kind not in ("referrer", "bot"):
        raise InvalidImport(f"kind {kind!r} is neither referrer nor bot.", kind)
    source = values.get("source")
    if not isinstance(source, str):  # '' is a source: a click with no referrer
        raise InvalidImport(f"source {source!r} is not text.", source)
    return (
        check_text("slug", values.get("slug"), required=True),
        check_day(values.get("day")),
        kind,
        source,
        check_count("clicks", values.get("clicks")),
    )


def _required_time(name: str, value: object) -> str:
    checked = check_time(name, value)
    if checked is None:
        raise InvalidImport(f"{name} is empty; give a time.", value)
    return checked
