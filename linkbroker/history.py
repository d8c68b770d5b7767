"""The history of a link's destinations: the link_history table, append-only.

A revert does not remove the entry it undoes; it marks it, so the history keeps
everything a link has pointed to. The store calls these inside its transactions.
"""

import sqlite3

from linkbroker.errors import InvalidTerms
from linkbroker.model import Change, Link

_COLUMNS = (
    "id, destination_url, redirect_status, changed_at, changed_by, reverted_at, "
    "reverted_by"
)


def record(conn: sqlite3.Connection, link: Link, by: str) -> None:
    """Add the link's current destination and status, made now by `by`."""
    conn.execute(
        "INSERT INTO link_history (slug, destination_url, redirect_status, "
        "changed_by) VALUES (?, ?, ?, ?)",
        (link.slug, link.destination, link.status, by),
    )


def seed(conn: sqlite3.Connection, link: Link) -> None:
    """Start the history of a link that has none with the state it has."""
    # Links made before history was kept, or brought in by an import, have none;
    # their first entry is dated from the link's creation, by nobody known.
    if not entries(conn, link.slug):
        conn.execute(
            "INSERT INTO link_history (slug, destination_url, redirect_status, "
            "changed_at, changed_by) VALUES (?, ?, ?, ?, '')",
            (link.slug, link.destination, link.status, link.created_at),
        )


def entries(conn: sqlite3.Connection, slug: str) -> list[Change]:
    """Return the entries of `slug`, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM link_history WHERE slug = ? ORDER BY id", (slug,)
    )
    return [Change(*row) for row in rows]


def last_two(conn: sqlite3.Connection, slug: str) -> tuple[Change, Change]:
    """Return the current entry and the one before it, leaving out reverted ones.

    Raises InvalidTerms when there is nothing to go back to.
    """
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM link_history "
        "WHERE slug = ? AND reverted_at IS NULL ORDER BY id DESC LIMIT 2",
        (slug,),
    ).fetchall()
    if len(rows) < 2:
        raise InvalidTerms(
            f"The link {slug!r} has no earlier destination to go back to; see "
            f"`linkbroker history {slug}`.",
            slug,
            "slug",
        )
    return Change(*rows[0]), Change(*rows[1])


def mark_reverted(conn: sqlite3.Connection, change: Change, by: str) -> None:
    """Mark `change` as undone by `by`, now."""
    conn.execute(
        "UPDATE link_history SET reverted_at = CURRENT_TIMESTAMP, reverted_by = ? "
        "WHERE id = ?",
        (by, change.id),
    )
