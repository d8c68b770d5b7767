"""The diskcache layer shared by every process: links, absent markers, a generation.

Cache-aside has a race: a reader that read a row from SQLite can write it into the
cache just after a writer replaced it there, and that stale entry would then live
as long as the cache keeps it. Here a reader fills a slug only where the cache has
no entry at all (diskcache's atomic `add`), and a writer always writes the new state
after committing, never just deleting the old one. Whichever order the two take, the
writer's entry is the one left, so a fill based on an older read always loses.

The generation is a counter that every change or removal bumps after its cache
write; processes that keep copies of links in memory poll it to know when to drop
them. They keep only links they found, never absences, so a new link needs no bump.
"""

import math
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple, cast

import diskcache

from linkbroker.errors import RateLimited, StorageError
from linkbroker.model import Target
from linkbroker.settings import Settings

# A slug nobody has is remembered this long; creating it replaces the mark at once.
ABSENT_TTL = 30.0
# Entries also expire, so that even a writer that died between its commit and its
# cache write leaves nothing stale for long.
ENTRY_TTL = 3600.0


class Entry(NamedTuple):
    """A cached state of a slug: its target, or None when it is known absent."""

    target: Target | None


class LinkCache:
    """The shared cache of links, kept in a diskcache folder."""

    def __init__(
        self, directory: Path, namespace: str, *, autocheckpoint: bool = True
    ) -> None:
        try:
            # A page cache and memory map sized for a small resident set: a process
            # resolving a million links stays near 30 MiB instead of 120.
            self._cache = diskcache.Cache(
                str(directory),
                sqlite_mmap_size=0,
                sqlite_cache_size=256,
                sqlite_wal_autocheckpoint=1000 if autocheckpoint else 0,
                # No culling on every write: entries expire, and tidy() removes
                # them and holds the default size limit (1 GB) in the background.
                cull_limit=0,
            )
        except Exception as exc:
            raise StorageError(
                f"Cannot open the cache folder {str(directory)!r} ({exc}); check that "
                "it is writable, or set LINKBROKER_CACHE_DIR.",
                directory,
            ) from exc
        # Entries of an older shape of Target sit under another prefix, never read.
        self._prefix = f"{namespace}:target:"
        self._generation_key = f"{namespace}:generation"

    def get(self, slug: str) -> Entry | None:
        """Return the cached state of `slug`, or None on a miss."""
        entry: Entry | None = self._cache.get(self._prefix + slug)
        return entry

    def fill(self, slug: str, target: Target | None) -> None:
        """Cache what a reader found on a miss, unless a writer got there first."""
        self._cache.add(
            self._prefix + slug, Entry(target), expire=_ttl(target), retry=True
        )

    def put(self, slug: str, target: Target | None, *, changed: bool = True) -> None:
        """Record a committed write: the new target, or None for a removed link.

        `changed` says the slug led somewhere before, so that processes holding a
        copy must drop it: a new link needs no such signal, as no process keeps a
        copy of a slug it found absent.
        """
        entry = Entry(target)
        if not changed:
            self._cache.set(self._prefix + slug, entry, expire=_ttl(target), retry=True)
            return
        with self._cache.transact(retry=True):  # one commit for both
            self._cache.set(self._prefix + slug, entry, expire=_ttl(target))
            self._cache.incr(self._generation_key, default=0)

    def transaction(self) -> AbstractContextManager[None]:
        """Hold the cache's write lock: other writers wait until it ends."""
        return cast(AbstractContextManager[None], self._cache.transact(retry=True))

    def limit(self, keys: Sequence[str], settings: Settings) -> None:
        """Take one write from each of `keys`' allowances; raise RateLimited if spent.

        Each key has a token bucket shared by every process through the cache: it
        holds `rate_burst` writes and refills at `rate_limit` a minute. A write
        refused by one bucket takes nothing from the others. A limit of 0 turns
        limiting off.
        """
        refusal = self.charge([keys], settings)[0]
        if refusal is not None:
            raise refusal

    def charge(
        self, writes: Sequence[Sequence[str]], settings: Settings
    ) -> list[RateLimited | None]:
        """Charge several writes in turn, each to its keys, as `limit` charges one.

        Returns, for each write, None if it is allowed or the RateLimited error that
        refuses it. Every bucket involved is read once and written once, in one
        transaction, however many writes share it.
        """
        if settings.rate_limit == 0:
            return [None] * len(writes)
        rate, burst = settings.rate_limit / 60.0, float(settings.rate_burst)
        expire = burst / rate + 60.0  # a bucket left alone this long is full again
        refusals: list[RateLimited | None] = []
        with self._cache.transact(retry=True):
            now = time.time()
            left: dict[str, float] = {}
            for keys in writes:
                for key in keys:
                    if key not in left:
                        stored, stamp = self._cache.get(
                            self._bucket(key), default=(burst, now)
                        )
                        left[key] = min(burst, stored + (now - stamp) * rate)
                short = next((key for key in keys if left[key] < 1.0), None)
                if short is None:
                    for key in keys:
                        left[key] -= 1.0
                refusals.append(None if short is None else _refusal(short, left, rate))
            for key, value in left.items():
                self._cache.set(self._bucket(key), (value, now), expire=expire)
        return refusals

    def _bucket(self, key: str) -> str:
        return f"{self._prefix}rate:{key}"

    def tidy(self) -> int:
        """Remove expired entries, and more if over the size limit; return how many.

        Writes skip diskcache's own tidying (a size query and a scan on every
        set), so a long-running process calls this now and then instead.
        """
        removed: int = self._cache.cull(retry=True)
        return removed

    def generation(self) -> int:
        """Return the counter that every write bumps."""
        value: int = self._cache.get(self._generation_key, default=0, retry=True)
        return value

    def clear(self) -> None:
        """Forget every entry, and tell every process holding a copy to drop it."""
        # The counter must move forward, never restart, or a process that saw the
        # same number before the clear would keep its copy.
        generation = self.generation()
        self._cache.clear(retry=True)
        self._cache.set(self._generation_key, generation + 1, retry=True)

    @property
    def path(self) -> Path:
        """The cache's SQLite file, for a process that checkpoints it."""
        return Path(str(self._cache.directory)) / str(diskcache.core.DBNAME)

    def close(self) -> None:
        """Close the cache's database connections."""
        self._cache.close()


def _refusal(key: str, left: dict[str, float], rate: float) -> RateLimited:
    wait = (1.0 - left[key]) / rate
    return RateLimited(
        f"Too many writes from this {key.split(':', 1)[0]}; try again in "
        f"{math.ceil(wait)} s.",
        key,
        retry_after=wait,
    )


def _ttl(target: Target | None) -> float:
    return ABSENT_TTL if target is None else ENTRY_TTL
