"""The read side of click data, for the CLI and the API."""

import datetime as dt
from typing import Any

from linkbroker.store import LinkStore

DAYS = 30
TOP = 10


def link_report(store: LinkStore, slug: str, days: int = DAYS) -> dict[str, Any]:
    """Return one link with its daily clicks, top referrers and bot reasons.

    `clicks` is the human count kept on the link itself, so counts carried over
    from another tool stay; the daily series covers only clicks linkbroker saw.
    Raises LinkNotFound.
    """
    import sqlite_utils  # the read side only; kept off the redirect path

    link = store.get(slug)
    db = sqlite_utils.Database(store.conn)
    first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)

    counted = {
        row["day"]: row
        for row in db.query(
            "SELECT day, human, bot FROM daily_clicks WHERE slug = ? AND day >= ?",
            (slug, first.isoformat()),
        )
    }
    daily = []
    for offset in range(days):
        day = (first + dt.timedelta(days=offset)).isoformat()
        row = counted.get(day, {})
        daily.append(
            {"day": day, "human": row.get("human", 0), "bot": row.get("bot", 0)}
        )

    referrers = db.query(
        "SELECT coalesce(referrer_host, '') AS host, count(*) AS clicks FROM clicks "
        "WHERE slug = ? AND NOT is_bot GROUP BY host ORDER BY clicks DESC, host "
        "LIMIT ?",
        (slug, TOP),
    )
    reasons = db.query(
        "SELECT bot_reason AS reason, count(*) AS clicks FROM clicks "
        "WHERE slug = ? AND is_bot GROUP BY reason ORDER BY clicks DESC, reason "
        "LIMIT ?",
        (slug, TOP),
    )
    return {
        **link.as_dict(),
        "short_url": store.settings.short_url(slug),
        "daily": daily,
        "top_referrers": [
            {"host": row["host"] or None, "clicks": row["clicks"]} for row in referrers
        ],
        "bot_reasons": list(reasons),
    }
