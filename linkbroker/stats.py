"""The read side of click data, for the CLI and the API.

Plain sqlite3 rather than sqlite-utils: the API serves these figures from server
workers, which must stay small and quick to start.
"""

import datetime as dt
from typing import Any

from linkbroker.store import LinkStore

DAYS = 30
TOP = 10


def link_report(store: LinkStore, slug: str, days: int = DAYS) -> dict[str, Any]:
    """Return one link with its daily clicks, top referrers and bot reasons.

    The series and the lists cover the last `days` days, in UTC.

    `clicks` is the human count kept on the link itself, so counts carried over
    from another tool stay; the daily series covers only clicks linkbroker saw.
    A deleted link's tombstone keeps its statistics, so they are reported too.
    Raises LinkNotFound.
    """
    link = store.get(slug, deleted=True)
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)

    counted = {
        day: (human, bot)
        for day, human, bot in store.conn.execute(
            "SELECT day, human, bot FROM daily_clicks WHERE slug = ? AND day >= ?",
            (slug, first.isoformat()),
        )
    }
    daily = []
    for offset in range(days):
        day = (first + dt.timedelta(days=offset)).isoformat()
        human, bot = counted.get(day, (0, 0))
        daily.append({"day": day, "human": human, "bot": bot})

    referrers = _top_sources(store, slug, "referrer", first)
    reasons = _top_sources(store, slug, "bot", first)
    return {
        **link.as_dict(),
        "short_url": store.settings.short_url(slug),
        "daily": daily,
        "top_referrers": [
            {"host": source or None, "clicks": clicks} for source, clicks in referrers
        ],
        "bot_reasons": [
            {"reason": source, "clicks": clicks} for source, clicks in reasons
        ],
    }


def _top_sources(
    store: LinkStore, slug: str, kind: str, first: dt.date
) -> list[tuple[str, int]]:
    rows = store.conn.execute(
        "SELECT source, sum(clicks) AS clicks FROM daily_sources "
        "WHERE slug = ? AND kind = ? AND day >= ? "
        "GROUP BY source ORDER BY clicks DESC, source LIMIT ?",
        (slug, kind, first.isoformat(), TOP),
    )
    return [(source, clicks) for source, clicks in rows]
