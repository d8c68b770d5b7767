"""LinkStore: the only module that runs SQL on links.

SQLite is the source of truth; the shared diskcache sits in front of it, cache-aside:
reads try the cache and fill it on a miss, writes commit to SQLite first and then
write their result through to the cache.
"""

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from linkbroker import database, lifecycle, model, slugs
from linkbroker.errors import (
    InvalidDestination,
    InvalidTerms,
    LinkNotFound,
    SlugTaken,
    StorageError,
)
from linkbroker.model import (
    DEFAULT_STATUS,
    REDIRECT_STATUSES,
    UNSET,
    Change,
    Edit,
    Link,
    Target,
    Terms,
)
from linkbroker.settings import Settings

if TYPE_CHECKING:
    from linkbroker.cache import LinkCache
    from linkbroker.destinations import Policy

logger = logging.getLogger(__name__)

# Three tries at each length, then one character more: with the default length the
# first try fails only once the table holds billions of links.
TRIES_PER_LENGTH = 3
EXTRA_LENGTHS = 3

# created_at is cast: rows carried over from other tools may hold numbers or NULL.
_COLUMNS = (
    "slug, destination_url, coalesce(CAST(created_at AS TEXT), ''), "
    "coalesce(clicks, 0), bot_clicks, redirect_status, expires_at, max_clicks, "
    "limit_used, fallback_url, disabled_at, deleted_at"
)
# What serving needs; a tombstone serves nothing.
_SERVED = (
    "SELECT destination_url, redirect_status, expires_at, max_clicks, fallback_url, "
    "disabled_at FROM links WHERE slug = ? AND deleted_at IS NULL"
)
_LIVE = "deleted_at IS NULL"
DEFAULT_TERMS = Terms()
_HISTORY = (
    "id, destination_url, redirect_status, changed_at, changed_by, reverted_at, "
    "reverted_by"
)


class LinkStore:
    """Links in a SQLite file, with a diskcache folder in front."""

    def __init__(self, settings: Settings, *, autocheckpoint: bool = True) -> None:
        self.settings = settings
        # Without it the connections leave WAL checkpoints to the owner: a server
        # runs them from its click-flush thread, so an fsync never delays a request.
        self._autocheckpoint = autocheckpoint

    # Opened on first use, so that a command refused for bad input creates nothing.
    @cached_property
    def conn(self) -> sqlite3.Connection:
        """The connection to the SQLite file, in autocommit mode."""
        return database.connect(
            self.settings.db_path, autocheckpoint=self._autocheckpoint
        )

    @cached_property
    def policy(self) -> "Policy":
        """The destination policy; built when a link is first written."""
        from linkbroker.destinations import Policy  # resolving never needs it

        return Policy(self.settings)

    @cached_property
    def cache(self) -> "LinkCache":
        """The shared cache, in a namespace of this database's own."""
        # Imported here: a one-shot command that reads SQLite alone skips the
        # cost of importing and opening diskcache.
        from linkbroker.cache import LinkCache

        return LinkCache(
            self.settings.cache_dir,
            self._meta("instance_id"),
            autocheckpoint=self._autocheckpoint,
        )

    def __enter__(self) -> "LinkStore":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and the cache, where they were opened."""
        if "cache" in self.__dict__:
            self.cache.close()
        if "conn" in self.__dict__:
            self.conn.close()

    def create(
        self,
        destination: str,
        slug: str | None = None,
        *,
        terms: Terms = DEFAULT_TERMS,
        reuse: bool = False,
        reclaim: bool = False,
        by: str = "cli",
    ) -> Link:
        """Store a new link and return it.

        Without `slug` one is generated. With `reuse`, an existing live link to the
        same destination with the same terms (or, with `slug`, that slug already
        leading there) is returned instead of a new one. A deleted link's slug is
        taken only with `reclaim`, which drops what the deleted link left behind.
        `by` names who made it, for the link's history.

        Raises InvalidDestination, InvalidSlug, InvalidTerms, SlugTaken or
        StorageError.
        """
        destination = self.policy.check(destination)
        terms = self._checked(terms)
        with self._transaction():
            if slug is not None:
                link = self._insert_custom(
                    slugs.validate(slug), destination, terms, reuse, reclaim, by
                )
            elif reuse:
                link = self._insert_reusing(destination, terms, by)
            else:
                link = self._insert_generated(destination, terms, by)

        target = _served(link)
        if slug is None and not reuse and target is not None:
            self.cache.put_new(link.slug, target)
        else:
            # A reused link is not new, but it is not changed either.
            self.cache.put(link.slug, target, changed=False)
        logger.debug("created %s -> %s", link.slug, link.destination)
        return link

    def resolve(self, slug: str) -> Target | None:
        """Return where `slug` leads, or None; a malformed slug touches no storage."""
        if not slugs.is_well_formed(slug):
            return None
        entry = self.cache.get(slug)
        if entry is not None:
            return entry.target

        row = self.conn.execute(_SERVED, (slug,)).fetchone()
        target = None if row is None else _target(*row)
        self.cache.fill(slug, target)
        return target

    def require(self, slug: str) -> Target:
        """Return where `slug` leads; raise LinkNotFound if it leads nowhere."""
        target = self.resolve(slug)
        if target is None:
            raise _not_found(slug)
        return target

    def get(self, slug: str, *, deleted: bool = False) -> Link:
        """Return the link named `slug`, or with `deleted` its tombstone too.

        Raises LinkNotFound if there is none.
        """
        live = "" if deleted else f" AND {_LIVE}"
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE slug = ?{live}", (slug,)
        ).fetchone()
        if row is None:
            raise _not_found(slug)
        return Link(*row)

    def newest(self, limit: int | None = None, offset: int = 0) -> list[Link]:
        """Return links newest first; links made in the same second, latest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE {_LIVE} "
            "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [Link(*row) for row in rows]

    def most_clicked(self, limit: int | None = None) -> list[Link]:
        """Return links by human clicks, most first; ties newest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE {_LIVE} "
            "ORDER BY coalesce(clicks, 0) DESC, created_at DESC, rowid DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [Link(*row) for row in rows]

    def count(self) -> int:
        """Return how many links there are, not counting deleted ones."""
        row = self.conn.execute(f"SELECT count(*) FROM links WHERE {_LIVE}")
        return int(row.fetchone()[0])

    def edit(self, slug: str, edit: Edit, by: str = "cli") -> Link:
        """Apply `edit` to the link `slug` and return the link as it now is.

        A new destination passes the same policy as a new link, and a new
        destination or status goes into the link's history, with `by`. Setting a
        click limit starts counting afresh, which is how an exhausted link is
        re-armed. Every worker of a running server serves the change within the
        same bound as a delete.

        Raises LinkNotFound, InvalidDestination or InvalidTerms.
        """
        if edit.is_empty():
            return self.get(slug)
        columns = self._edit_columns(edit)
        with self._transaction():
            before = self.get(slug)
            assignments = ", ".join(f"{name} = ?" for name in columns)
            row = self.conn.execute(
                f"UPDATE links SET {assignments} WHERE slug = ? RETURNING {_COLUMNS}",
                (*columns.values(), slug),
            ).fetchone()
            link = Link(*row)
            if (link.destination, link.status) != (before.destination, before.status):
                self._seed_history(before)
                self._add_history(link, by)

        self.cache.put(slug, _served(link))
        logger.debug("edited %s: %s", slug, ", ".join(columns))
        return link

    def history(self, slug: str) -> list[Change]:
        """Return the destinations `slug` has had, oldest first.

        A link made before history was kept shows its current destination alone.
        Raises LinkNotFound.
        """
        link = self.get(slug, deleted=True)
        rows = self.conn.execute(
            f"SELECT {_HISTORY} FROM link_history WHERE slug = ? ORDER BY id",
            (slug,),
        ).fetchall()
        if not rows:
            return [
                Change(
                    0, link.destination, link.status, link.created_at, "", None, None
                )
            ]
        return [Change(*row) for row in rows]

    def revert(self, slug: str, by: str = "cli") -> Link:
        """Take the link `slug` back to the destination and status it had before.

        The entry undone stays in the history, marked as reverted; reverting again
        goes one step further back. The earlier destination passes today's policy.
        Raises LinkNotFound, InvalidDestination or InvalidTerms if there is no
        earlier destination.
        """
        with self._transaction():
            link = self.get(slug)
            current, earlier = self._last_two(slug)
            destination = self.policy.check(earlier.destination)
            row = self.conn.execute(
                "UPDATE links SET destination_url = ?, redirect_status = ? "
                f"WHERE slug = ? RETURNING {_COLUMNS}",
                (destination, earlier.status, slug),
            ).fetchone()
            self.conn.execute(
                "UPDATE link_history SET reverted_at = CURRENT_TIMESTAMP, "
                "reverted_by = ? WHERE id = ?",
                (by, current.id),
            )
        link = Link(*row)
        self.cache.put(slug, _served(link))
        logger.debug("reverted %s to %s", slug, link.destination)
        return link

    def delete(self, slug: str) -> Link:
        """Delete the link `slug`, keeping a tombstone; raise LinkNotFound if none.

        The tombstone keeps the slug from being handed out again and keeps the
        link's statistics; `purge` removes it all.
        """
        row = self.conn.execute(
            "UPDATE links SET deleted_at = CURRENT_TIMESTAMP "
            f"WHERE slug = ? AND {_LIVE} RETURNING {_COLUMNS}",
            (slug,),
        ).fetchone()
        if row is None:
            raise _not_found(slug)

        self.cache.put(slug, None)
        logger.debug("deleted %s", slug)
        return Link(*row)

    def purge(self, slug: str) -> Link:
        """Remove the link or tombstone `slug` with all its clicks and history.

        Raises LinkNotFound.
        """
        with self._transaction():
            link = self.get(slug, deleted=True)
            self._remove_all(slug)
        self.cache.put(slug, None)
        logger.debug("purged %s", slug)
        return link

    def take_click(self, slug: str) -> bool:
        """Count one human redirect against the link's click limit, atomically.

        Returns whether the link had one left; across every process sharing the
        database, exactly `max_clicks` calls get True.
        """
        row = self.conn.execute(
            "UPDATE links SET limit_used = limit_used + 1 WHERE slug = ? "
            f"AND {_LIVE} AND max_clicks IS NOT NULL AND limit_used < max_clicks "
            "RETURNING limit_used",
            (slug,),
        ).fetchone()
        return row is not None

    def has_clicks_left(self, slug: str) -> bool:
        """Whether the link's click limit still allows a redirect."""
        row = self.conn.execute(
            f"SELECT 1 FROM links WHERE slug = ? AND {_LIVE} "
            "AND (max_clicks IS NULL OR limit_used < max_clicks)",
            (slug,),
        ).fetchone()
        return row is not None

    def wipe(self) -> int:
        """Delete every link and all click data, keep the schema; return links lost."""
        count = self.count()
        with self._transaction():
            for table in database.data_tables(self.conn):
                self.conn.execute(f'DELETE FROM "{table}"')
        self.cache.clear()
        logger.warning("wiped %d links from %s", count, self.settings.db_path)
        return count

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock first, so that what a transaction reads
        # cannot change under it before it writes.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _checked(self, terms: Terms) -> Terms:
        fallback = terms.fallback
        if fallback is not None:
            fallback = self._checked_fallback(fallback)
        return Terms(
            status=lifecycle.check_status(terms.status),
            expires_at=terms.expires_at,
            max_clicks=lifecycle.check_max_clicks(terms.max_clicks),
            fallback=fallback,
        )

    def _checked_fallback(self, fallback: str) -> str:
        try:
            return self.policy.check(fallback)
        except InvalidDestination as exc:
            raise InvalidTerms(f"Fallback: {exc}", fallback, "fallback") from None

    def _edit_columns(self, edit: Edit) -> dict[str, object]:
        columns: dict[str, object] = {}
        if edit.destination is not UNSET:
            columns["destination_url"] = self.policy.check(edit.destination)
        if edit.status is not UNSET:
            columns["redirect_status"] = lifecycle.check_status(edit.status)
        if edit.expires_at is not UNSET:
            columns["expires_at"] = edit.expires_at
        if edit.max_clicks is not UNSET:
            columns["max_clicks"] = lifecycle.check_max_clicks(edit.max_clicks)
            columns["limit_used"] = 0
        if edit.fallback is not UNSET:
            fallback = edit.fallback
            columns["fallback_url"] = fallback and self._checked_fallback(fallback)
        if edit.disabled is not UNSET:
            columns["disabled_at"] = model.now_text() if edit.disabled else None
        return columns

    def _insert(self, slug: str, destination: str, terms: Terms, by: str) -> Link:
        row = self.conn.execute(
            "INSERT INTO links (slug, destination_url, redirect_status, expires_at, "
            f"max_clicks, fallback_url) VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
            (slug, destination, *astuple(terms)),
        ).fetchone()
        link = Link(*row)
        self._add_history(link, by)
        return link

    def _insert_custom(
        self,
        slug: str,
        destination: str,
        terms: Terms,
        reuse: bool,
        reclaim: bool,
        by: str,
    ) -> Link:
        existing = self._find(slug)
        if existing is None:
            return self._insert(slug, destination, terms, by)
        if existing.deleted_at is not None:
            if not reclaim:
                raise SlugTaken(
                    f"The slug {slug!r} belonged to a link deleted on "
                    f"{existing.deleted_at}; reclaim it explicitly (--reclaim, or "
                    '"reclaim": true in the API), which drops its old statistics, '
                    "or choose another.",
                    slug,
                )
            self._remove_all(slug)
            return self._insert(slug, destination, terms, by)
        if reuse and _same(existing, destination, terms):
            return existing
        raise SlugTaken(
            f"The slug {slug!r} is taken (it leads to {existing.destination}); "
            "choose another, or leave the slug out to get a generated one.",
            slug,
        )

    def _insert_reusing(self, destination: str, terms: Terms, by: str) -> Link:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE destination_url = ? "
            "AND redirect_status = ? AND expires_at IS ? AND max_clicks IS ? "
            f"AND fallback_url IS ? AND disabled_at IS NULL AND {_LIVE} "
            "ORDER BY created_at, rowid LIMIT 1",
            (destination, *astuple(terms)),
        ).fetchone()
        return Link(*row) if row else self._insert_generated(destination, terms, by)

    def _insert_generated(self, destination: str, terms: Terms, by: str) -> Link:
        base = self.settings.slug_length
        for attempt in range(TRIES_PER_LENGTH * (EXTRA_LENGTHS + 1)):
            candidate = slugs.generate(base + attempt // TRIES_PER_LENGTH)
            if not slugs.is_well_formed(candidate):
                continue
            # A tombstone's slug is taken too: it is never handed out again.
            try:
                return self._insert(candidate, destination, terms, by)
            except sqlite3.IntegrityError:
                logger.debug("generated slug %s was taken; trying another", candidate)
        raise StorageError(
            f"No free slug was found in {attempt + 1} tries up to "
            f"{base + EXTRA_LENGTHS} characters; raise LINKBROKER_SLUG_LENGTH.",
            destination,
        )

    def _find(self, slug: str) -> Link | None:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE slug = ?", (slug,)
        ).fetchone()
        return None if row is None else Link(*row)

    def _remove_all(self, slug: str) -> None:
        for table in (
            "links",
            "clicks",
            "daily_clicks",
            "daily_sources",
            "link_history",
        ):
            self.conn.execute(f"DELETE FROM {table} WHERE slug = ?", (slug,))

    def _has_history(self, slug: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM link_history WHERE slug = ? LIMIT 1", (slug,)
        ).fetchone()
        return row is not None

    def _seed_history(self, link: Link) -> None:
        # Links made before history was kept, or brought in by an import, start
        # their history with the state they had.
        if not self._has_history(link.slug):
            self.conn.execute(
                "INSERT INTO link_history (slug, destination_url, redirect_status, "
                "changed_at, changed_by) VALUES (?, ?, ?, ?, '')",
                (link.slug, link.destination, link.status, link.created_at),
            )

    def _add_history(self, link: Link, by: str) -> None:
        self.conn.execute(
            "INSERT INTO link_history (slug, destination_url, redirect_status, "
            "changed_by) VALUES (?, ?, ?, ?)",
            (link.slug, link.destination, link.status, by),
        )

    def _last_two(self, slug: str) -> tuple[Change, Change]:
        rows = self.conn.execute(
            f"SELECT {_HISTORY} FROM link_history "
            "WHERE slug = ? AND reverted_at IS NULL ORDER BY id DESC LIMIT 2",
            (slug,),
        ).fetchall()
        if len(rows) < 2:
            raise InvalidTerms(
                f"The link {slug!r} has no earlier destination to go back to; "
                "see `linkbroker history " + slug + "`.",
                slug,
                "slug",
            )
        return Change(*rows[0]), Change(*rows[1])

    def _meta(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row.fetchone()[0])


def _same(link: Link, destination: str, terms: Terms) -> bool:
    return (
        link.destination == destination
        and link.disabled_at is None
        and Terms(link.status, link.expires_at, link.max_clicks, link.fallback) == terms
    )


def _served(link: Link) -> Target | None:
    """Return what serving `link` needs, as the cache holds it."""
    return _target(
        link.destination,
        link.status,
        link.expires_at,
        link.max_clicks,
        link.fallback,
        link.disabled_at,
    )


def _target(
    destination: str,
    status: int,
    expires_at: str | None,
    max_clicks: int | None,
    fallback: str | None,
    disabled_at: str | None,
) -> Target | None:
    """Return what serving a stored link needs, with its URLs always in ASCII.

    linkbroker stores destinations in their checked ASCII form; a row another tool
    wrote may be neither, and is checked and put in that form here, so that every
    reader gets a value it can send in a Location header.
    """
    served = _servable(destination)
    if served is None:
        return None
    return Target(
        served,
        status if status in REDIRECT_STATUSES else DEFAULT_STATUS,
        None if expires_at is None else lifecycle.epoch(expires_at),
        max_clicks,
        None if fallback is None else _servable(fallback),
        disabled_at is not None,
    )


def _servable(destination: str) -> str | None:
    if _looks_stored(destination):
        return destination
    from linkbroker.destinations import normalize

    try:
        return normalize(destination)
    except InvalidDestination:
        logger.warning("not serving %r: it is not a valid destination", destination)
        return None


def _looks_stored(destination: str) -> bool:
    # Cheap enough for every cache miss; anything else takes the full check.
    return (
        destination.startswith(("http://", "https://"))
        and destination.isascii()
        and destination.isprintable()
        and " " not in destination
    )


def _not_found(slug: str) -> LinkNotFound:
    return LinkNotFound(
        f"No link has the slug {slug!r}; check its spelling, or run "
        "`linkbroker list` to see the links.",
        slug,
    )
