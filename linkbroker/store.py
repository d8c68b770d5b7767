"""LinkStore: links in SQLite behind a shared cache; with rows.py, all the SQL on links.

SQLite is the source of truth; the shared diskcache sits in front of it, cache-aside:
reads try the cache and fill it on a miss, writes commit to SQLite first and then
write their result through to the cache.
"""

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from linkbroker import database, history, lifecycle, model, rows, slugs, targets
from linkbroker.errors import (
    InvalidDestination,
    InvalidTerms,
)
from linkbroker.model import (
    UNSET,
    Change,
    Edit,
    Link,
    Target,
    Terms,
)
from linkbroker.rows import COLUMNS, LIVE
from linkbroker.settings import Settings
from linkbroker.turns import Turns

if TYPE_CHECKING:
    from linkbroker.cache import LinkCache
    from linkbroker.destinations import Policy

logger = logging.getLogger(__name__)

# What serving needs; a tombstone serves nothing.
_SERVED = (
    "SELECT destination_url, redirect_status, expires_at, max_clicks, fallback_url, "
    f"disabled_at FROM links WHERE slug = ? AND {LIVE}"
)
DEFAULT_TERMS = Terms()


class LinkStore:
    """Links in a SQLite file, with a diskcache folder in front."""

    def __init__(self, settings: Settings, *, autocheckpoint: bool = True) -> None:
        self.settings = settings
        # Without it the connections leave WAL checkpoints to the owner: a server
        # runs them from its click-flush thread, so an fsync never delays a request.
        self._autocheckpoint = autocheckpoint
        # Inside batch(): the slugs written, published to the cache after the commit.
        self._unpublished: list[tuple[str, bool]] | None = None

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

    @cached_property
    def turns(self) -> Turns:
        """The writers' turns at this database, for a process that writes often."""
        return Turns(self.settings.db_path)

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
        """Close the database, the cache and the turns, where they were opened."""
        if "turns" in self.__dict__:
            self.turns.close()
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
                link = rows.insert_custom(
                    self.conn,
                    slugs.validate(slug),
                    destination,
                    terms,
                    reuse,
                    reclaim,
                    by,
                )
            elif reuse:
                link = rows.insert_reusing(
                    self.conn, self.settings, destination, terms, by
                )
            else:
                link = rows.insert_generated(
                    self.conn, self.settings, destination, terms, by
                )

        # A reused link is not new, but it is not changed either.
        self._publish(link.slug, changed=False)
        logger.debug("created %s -> %s", link.slug, link.destination)
        return link

    def resolve(self, slug: str) -> Target | None:
        """Return where `slug` leads, or None; a malformed slug touches no storage."""
        if not slugs.is_well_formed(slug):
            return None
        entry = self.cache.get(slug)
        if entry is not None:
            return entry.target

        target = self._served(slug)
        self.cache.fill(slug, target)
        return target

    def require(self, slug: str) -> Target:
        """Return where `slug` leads; raise LinkNotFound if it leads nowhere."""
        target = self.resolve(slug)
        if target is None:
            raise rows.not_found(slug)
        return target

    def get(self, slug: str, *, deleted: bool = False) -> Link:
        """Return the link named `slug`, or with `deleted` its tombstone too.

        Raises LinkNotFound if there is none.
        """
        live = "" if deleted else f" AND {LIVE}"
        row = self.conn.execute(
            f"SELECT {COLUMNS} FROM links WHERE slug = ?{live}", (slug,)
        ).fetchone()
        if row is None:
            raise rows.not_found(slug)
        return Link(*row)

    def newest(self, limit: int | None = None, offset: int = 0) -> list[Link]:
        """Return links newest first; links made in the same second, latest first."""
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM links WHERE {LIVE} "
            "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [Link(*row) for row in rows]

    def most_clicked(self, limit: int | None = None) -> list[Link]:
        """Return links by human clicks, most first; ties newest first."""
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM links WHERE {LIVE} "
            "ORDER BY coalesce(clicks, 0) DESC, created_at DESC, rowid DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [Link(*row) for row in rows]

    def count(self) -> int:
        """Return how many links there are, not counting deleted ones."""
        row = self.conn.execute(f"SELECT count(*) FROM links WHERE {LIVE}")
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
        with self._transaction():
            before = self.get(slug)
            columns = self._edit_columns(edit, before)
            assignments = ", ".join(f"{name} = ?" for name in columns)
            row = self.conn.execute(
                f"UPDATE links SET {assignments} WHERE slug = ? RETURNING {COLUMNS}",
                (*columns.values(), slug),
            ).fetchone()
            link = Link(*row)
            if (link.destination, link.status) != (before.destination, before.status):
                history.seed(self.conn, before)
                history.record(self.conn, link, by)

        self._publish(slug)
        logger.debug("edited %s: %s", slug, ", ".join(columns))
        return link

    def history(self, slug: str) -> list[Change]:
        """Return the destinations `slug` has had, oldest first.

        A link made before history was kept shows its current destination alone.
        Raises LinkNotFound.
        """
        link = self.get(slug, deleted=True)
        changes = history.entries(self.conn, slug)
        if changes:
            return changes
        return [
            Change(0, link.destination, link.status, link.created_at, "", None, None)
        ]

    def revert(self, slug: str, by: str = "cli") -> Link:
        """Take the link `slug` back to the destination and status it had before.

        The entry undone stays in the history, marked as reverted; reverting again
        goes one step further back. The earlier destination passes today's policy.
        Raises LinkNotFound, InvalidDestination or InvalidTerms if there is no
        earlier destination.
        """
        with self._transaction():
            self.get(slug)  # a tombstone has nothing to revert
            current, earlier = history.last_two(self.conn, slug)
            destination = self.policy.check(earlier.destination)
            row = self.conn.execute(
                "UPDATE links SET destination_url = ?, redirect_status = ? "
                f"WHERE slug = ? RETURNING {COLUMNS}",
                (destination, earlier.status, slug),
            ).fetchone()
            history.mark_reverted(self.conn, current, by)

        self._publish(slug)
        link = Link(*row)
        logger.debug("reverted %s to %s", slug, link.destination)
        return link

    def delete(self, slug: str) -> Link:
        """Delete the link `slug`, keeping a tombstone; raise LinkNotFound if none.

        The tombstone keeps the slug from being handed out again and keeps the
        link's statistics; `purge` removes it all.
        """
        row = self.conn.execute(
            "UPDATE links SET deleted_at = CURRENT_TIMESTAMP "
            f"WHERE slug = ? AND {LIVE} RETURNING {COLUMNS}",
            (slug,),
        ).fetchone()
        if row is None:
            raise rows.not_found(slug)

        self._publish(slug)
        logger.debug("deleted %s", slug)
        return Link(*row)

    def purge(self, slug: str) -> Link:
        """Remove the link or tombstone `slug` with all its clicks and history.

        Raises LinkNotFound.
        """
        with self._transaction():
            link = self.get(slug, deleted=True)
            rows.remove_all(self.conn, slug)
        self._publish(slug)
        logger.debug("purged %s", slug)
        return link

    def take_click(self, slug: str) -> bool:
        """Count one human redirect against the link's click limit, atomically.

        Returns whether the link had one left; across every process sharing the
        database, exactly `max_clicks` calls get True.
        """
        row = self.conn.execute(
            "UPDATE links SET limit_used = limit_used + 1 WHERE slug = ? "
            f"AND {LIVE} AND max_clicks IS NOT NULL AND limit_used < max_clicks "
            "RETURNING limit_used",
            (slug,),
        ).fetchone()
        return row is not None

    def has_clicks_left(self, slug: str) -> bool:
        """Whether the link's click limit still allows a redirect."""
        row = self.conn.execute(
            f"SELECT 1 FROM links WHERE slug = ? AND {LIVE} "
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
    def batch(self) -> Iterator[None]:
        """Run several writes in one transaction and publish them in one cache write.

        A commit costs more than the insert it makes durable, so a server that has
        several writes waiting runs them together. Each write inside runs in
        `step()`, so that one failing undoes its own work and nothing else. The
        cache learns of every write after the commit, as it does of a lone one.
        """
        written: list[tuple[str, bool]] = []
        self._unpublished = written
        try:
            with database.transaction(self.conn):
                yield
        finally:
            self._unpublished = None

        with self.cache.transaction():
            for slug, changed in written:
                self.cache.put(slug, self._served(slug), changed=changed)

    @contextmanager
    def step(self) -> Iterator[None]:
        """One write of a batch: if it fails, what it wrote is undone."""
        self.conn.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO step")
            raise
        finally:
            self.conn.execute("RELEASE step")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._unpublished is not None:
            yield  # the batch holds the write lock, and its step undoes a failure
            return
        with database.transaction(self.conn):
            yield

    def _publish(self, slug: str, *, changed: bool = True) -> None:
        """Write the committed state of `slug` through to the cache.

        Two writers may commit in one order and reach the cache in the other. So
        the state is read again inside the cache's transaction, which one writer
        holds at a time: whichever writes last writes the latest commit.
        """
        if self._unpublished is not None:
            self._unpublished.append((slug, changed))
            return
        with self.cache.transaction():
            self.cache.put(slug, self._served(slug), changed=changed)

    def _served(self, slug: str) -> Target | None:
        row = self.conn.execute(_SERVED, (slug,)).fetchone()
        return None if row is None else targets.target(*row)

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

    def _edit_columns(self, edit: Edit, before: Link) -> dict[str, object]:
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
            checked = None if fallback is None else self._checked_fallback(fallback)
            columns["fallback_url"] = checked
        if edit.disabled is not UNSET:
            # Disabling a disabled link keeps the time it was first switched off.
            since = before.disabled_at or model.now_text()
            columns["disabled_at"] = since if edit.disabled else None
        return columns

    def _meta(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row.fetchone()[0])
