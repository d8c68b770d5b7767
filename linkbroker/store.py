"""LinkStore: the only module that runs SQL on links.

SQLite is the source of truth; the shared diskcache sits in front of it, cache-aside:
reads try the cache and fill it on a miss, writes commit to SQLite first and then
write their result through to the cache.
"""

import logging
import sqlite3
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING

from linkbroker import database, slugs
from linkbroker.errors import InvalidDestination, LinkNotFound, SlugTaken, StorageError
from linkbroker.model import Link, Target
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
    "coalesce(clicks, 0), bot_clicks"
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
        self, destination: str, slug: str | None = None, *, reuse: bool = False
    ) -> Link:
        """Store a new link and return it.

        Without `slug` one is generated. With `reuse`, an existing link to the same
        destination (or, with `slug`, that slug already pointing there) is returned
        instead of a new one.

        Raises InvalidDestination, InvalidSlug, SlugTaken or StorageError.
        """
        destination = self.policy.check(destination)
        if slug is not None:
            link = self._insert_custom(slugs.validate(slug), destination, reuse)
        elif reuse:
            link = self._insert_reusing(destination)
        else:
            link = self._insert_generated(destination)

        # A reused link is not new, but it is not changed either.
        self.cache.put(link.slug, Target(link.destination), changed=False)
        logger.debug("created %s -> %s", link.slug, link.destination)
        return link

    def resolve(self, slug: str) -> Target | None:
        """Return where `slug` leads, or None; a malformed slug touches no storage."""
        if not slugs.is_well_formed(slug):
            return None
        entry = self.cache.get(slug)
        if entry is not None:
            return entry.target

        row = self.conn.execute(
            "SELECT destination_url FROM links WHERE slug = ?", (slug,)
        ).fetchone()
        target = None if row is None else _target(row[0])
        self.cache.fill(slug, target)
        return target

    def require(self, slug: str) -> Target:
        """Return where `slug` leads; raise LinkNotFound if it leads nowhere."""
        target = self.resolve(slug)
        if target is None:
            raise _not_found(slug)
        return target

    def get(self, slug: str) -> Link:
        """Return the link named `slug`; raise LinkNotFound if there is none."""
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links WHERE slug = ?", (slug,)
        ).fetchone()
        if row is None:
            raise _not_found(slug)
        return Link(*row)

    def newest(self, limit: int | None = None, offset: int = 0) -> list[Link]:
        """Return links newest first; links made in the same second, latest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links ORDER BY created_at DESC, rowid DESC "
            "LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        )
        return [Link(*row) for row in rows]

    def most_clicked(self, limit: int | None = None) -> list[Link]:
        """Return links by human clicks, most first; ties newest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM links "
            "ORDER BY coalesce(clicks, 0) DESC, created_at DESC, rowid DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [Link(*row) for row in rows]

    def count(self) -> int:
        """Return how many links there are."""
        row = self.conn.execute("SELECT count(*) FROM links").fetchone()
        return int(row[0])

    def update(self, slug: str, destination: str) -> Link:
        """Point `slug` at a new destination; raise LinkNotFound or InvalidDestination.

        Every worker of a running server serves the change within the same bound
        as a delete.
        """
        destination = self.policy.check(destination)
        row = self.conn.execute(
            f"UPDATE links SET destination_url = ? WHERE slug = ? RETURNING {_COLUMNS}",
            (destination, slug),
        ).fetchone()
        if row is None:
            raise _not_found(slug)

        self.cache.put(slug, Target(destination))
        logger.debug("pointed %s at %s", slug, destination)
        return Link(*row)

    def delete(self, slug: str) -> Link:
        """Delete the link named `slug` and return it; raise LinkNotFound if none."""
        # The counters go with the link, so that a slug made again starts from
        # nothing; raw click rows age out with the retention period.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                f"DELETE FROM links WHERE slug = ? RETURNING {_COLUMNS}", (slug,)
            ).fetchone()
            self.conn.execute("DELETE FROM daily_clicks WHERE slug = ?", (slug,))
            self.conn.execute("DELETE FROM daily_sources WHERE slug = ?", (slug,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        if row is None:
            raise _not_found(slug)

        self.cache.put(slug, None)
        logger.debug("deleted %s", slug)
        return Link(*row)

    def wipe(self) -> int:
        """Delete every link and all click data, keep the schema; return links lost."""
        count = self.count()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for table in database.data_tables(self.conn):
                self.conn.execute(f'DELETE FROM "{table}"')
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.cache.clear()
        logger.warning("wiped %d links from %s", count, self.settings.db_path)
        return count

    def _insert(self, slug: str, destination: str) -> Link:
        row = self.conn.execute(
            "INSERT INTO links (slug, destination_url) VALUES (?, ?) "
            f"RETURNING {_COLUMNS}",
            (slug, destination),
        ).fetchone()
        return Link(*row)

    def _insert_custom(self, slug: str, destination: str, reuse: bool) -> Link:
        try:
            return self._insert(slug, destination)
        except sqlite3.IntegrityError:
            existing = self.get(slug)
        if reuse and existing.destination == destination:
            return existing
        raise SlugTaken(
            f"The slug {slug!r} is taken (it leads to {existing.destination}); "
            "choose another, or leave the slug out to get a generated one.",
            slug,
        )

    def _insert_reusing(self, destination: str) -> Link:
        # Read then write: IMMEDIATE takes the write lock first, so two processes
        # reusing the same destination cannot both miss and both insert.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM links WHERE destination_url = ? "
                "ORDER BY created_at, rowid LIMIT 1",
                (destination,),
            ).fetchone()
            link = Link(*row) if row else self._insert_generated(destination)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return link

    def _insert_generated(self, destination: str) -> Link:
        base = self.settings.slug_length
        for attempt in range(TRIES_PER_LENGTH * (EXTRA_LENGTHS + 1)):
            candidate = slugs.generate(base + attempt // TRIES_PER_LENGTH)
            if not slugs.is_well_formed(candidate):
                continue
            try:
                return self._insert(candidate, destination)
            except sqlite3.IntegrityError:
                logger.debug("generated slug %s was taken; trying another", candidate)
        raise StorageError(
            f"No free slug was found in {attempt + 1} tries up to "
            f"{base + EXTRA_LENGTHS} characters; raise LINKBROKER_SLUG_LENGTH.",
            destination,
        )

    def _meta(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row.fetchone()[0])


def _target(destination: str) -> Target | None:
    """Return what serving a stored destination needs, always in ASCII.

    linkbroker stores destinations in their checked ASCII form; a row another tool
    wrote may be neither, and is checked and put in that form here, so that every
    reader gets a value it can send in a Location header.
    """
    if _looks_stored(destination):
        return Target(destination)
    from linkbroker.destinations import normalize

    try:
        return Target(normalize(destination))
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
