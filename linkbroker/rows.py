"""The rows of the links table, below the store: finding, inserting, removing.

LinkStore owns the transactions and the cache; these functions run inside them.
"""

import logging
import sqlite3
from dataclasses import astuple

from linkbroker import history, model, slugs
from linkbroker.errors import LinkNotFound, SlugTaken, StorageError
from linkbroker.model import Link, Terms
from linkbroker.settings import Settings

logger = logging.getLogger(__name__)

# created_at is cast: rows carried over from other tools may hold numbers or NULL.
COLUMNS = (
    "slug, destination_url, coalesce(CAST(created_at AS TEXT), ''), "
    "coalesce(clicks, 0), bot_clicks, redirect_status, expires_at, max_clicks, "
    "limit_used, fallback_url, disabled_at, deleted_at"
)
# A deleted link keeps its row as a tombstone; everything else leaves it out.
LIVE = "deleted_at IS NULL"

# Three tries at each length, then one character more: with the default length the
# first try fails only once the table holds billions of links.
TRIES_PER_LENGTH = 3
EXTRA_LENGTHS = 3


def insert(
    conn: sqlite3.Connection, slug: str, destination: str, terms: Terms, by: str
) -> Link:
    """Insert a new link and start its history; IntegrityError if the slug is taken."""
    row = conn.execute(
        "INSERT INTO links (slug, destination_url, redirect_status, expires_at, "
        f"max_clicks, fallback_url) VALUES (?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}",
        (slug, destination, *astuple(terms)),
    ).fetchone()
    link = Link(*row)
    history.record(conn, link, by)
    return link


def insert_custom(
    conn: sqlite3.Connection,
    slug: str,
    destination: str,
    terms: Terms,
    reuse: bool,
    reclaim: bool,
    by: str,
) -> Link:
    """Insert a link under a chosen slug, unless a link or a tombstone has it.

    With `reuse`, a live link already there on the same terms is returned; with
    `reclaim`, a tombstone is removed with everything it kept, and replaced.
    """
    existing = find(conn, slug)
    if existing is None:
        return insert(conn, slug, destination, terms, by)
    if existing.deleted_at is not None:
        if not reclaim:
            raise SlugTaken(
                f"The slug {slug!r} belonged to a link deleted on "
                f"{existing.deleted_at}; reclaim it explicitly (--reclaim, or "
                '"reclaim": true in the API), which drops its old statistics, '
                "or choose another.",
                slug,
            )
        remove_all(conn, slug)
        return insert(conn, slug, destination, terms, by)
    if reuse and same(existing, destination, terms):
        return existing
    raise SlugTaken(
        f"The slug {slug!r} is taken (it leads to {existing.destination}); "
        "choose another, or leave the slug out to get a generated one.",
        slug,
    )


def insert_reusing(
    conn: sqlite3.Connection,
    settings: Settings,
    destination: str,
    terms: Terms,
    by: str,
) -> Link:
    """Return the oldest working link to `destination` on `terms`, or make one."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM links WHERE destination_url = ? "
        "AND redirect_status = ? AND expires_at IS ? AND max_clicks IS ? "
        f"AND fallback_url IS ? AND disabled_at IS NULL AND {LIVE} "
        "AND (expires_at IS NULL OR expires_at > ?) "
        "AND (max_clicks IS NULL OR limit_used < max_clicks) "
        "ORDER BY created_at, rowid LIMIT 1",
        (destination, *astuple(terms), model.now_text()),
    ).fetchone()
    if row is not None:
        return Link(*row)
    return insert_generated(conn, settings, destination, terms, by)


def insert_generated(
    conn: sqlite3.Connection,
    settings: Settings,
    destination: str,
    terms: Terms,
    by: str,
) -> Link:
    """Insert a new link under a freshly generated slug."""
    base = settings.slug_length
    for attempt in range(TRIES_PER_LENGTH * (EXTRA_LENGTHS + 1)):
        candidate = slugs.generate(base + attempt // TRIES_PER_LENGTH)
        if not slugs.is_well_formed(candidate):
            continue
        # A tombstone's slug is taken too: it is never handed out again.
        try:
            return insert(conn, candidate, destination, terms, by)
        except sqlite3.IntegrityError:
            logger.debug("generated slug %s was taken; trying another", candidate)
    raise StorageError(
        f"No free slug was found in {attempt + 1} tries up to "
        f"{base + EXTRA_LENGTHS} characters; raise LINKBROKER_SLUG_LENGTH.",
        destination,
    )


def find(conn: sqlite3.Connection, slug: str) -> Link | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM links WHERE slug = ?", (slug,)
    ).fetchone()
    return None if row is None else Link(*row)


def remove_all(conn: sqlite3.Connection, slug: str) -> None:
    for table in (
        "links",
        "clicks",
        "daily_clicks",
        "daily_sources",
        "link_history",
    ):
        conn.execute(f"DELETE FROM {table} WHERE slug = ?", (slug,))


def same(link: Link, destination: str, terms: Terms) -> bool:
    """Whether `link` is live and leads to `destination` on `terms`."""
    return (
        link.destination == destination
        and link.state == "active"
        and Terms(link.status, link.expires_at, link.max_clicks, link.fallback) == terms
    )


def not_found(slug: str) -> LinkNotFound:
    """Return the error for a slug that names no link."""
    return LinkNotFound(
        f"No link has the slug {slug!r}; check its spelling, or run "
        "`linkbroker list` to see the links.",
        slug,
    )
