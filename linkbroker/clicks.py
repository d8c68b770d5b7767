"""Click events: recorded in memory on the request path, flushed in batches.

One UPDATE with its own commit costs more than serving the redirect, so the request
path only appends a tuple to a list. Every flush interval (or sooner, once the batch
is full) the batch is classified, summed per slug and day, and written in one
transaction: raw rows, per-day counters and the totals on links. A failed write
keeps its batch for the next try; a graceful stop flushes whatever is left.
"""

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

from linkbroker import bots, database
from linkbroker.settings import IPNetwork, Settings

logger = logging.getLogger(__name__)

# Retention pruning is one indexed DELETE; doing it on every flush would be waste.
PRUNE_EVERY = 600.0


class RawClick(NamedTuple):
    """What the request path keeps of a redirect: no parsing, no hashing, no I/O."""

    slug: str
    at: float
    head: bool
    user_agent: bytes
    referrer: bytes
    forwarded_for: bytes
    peer: str


class Click(NamedTuple):
    """A click as it is stored."""

    slug: str
    clicked_at: str
    referrer_host: str | None
    user_agent: str
    is_bot: bool
    bot_reason: str | None
    visitor: str


class ClickRecorder:
    """Collects clicks in memory and writes them to SQLite in batches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: list[RawClick] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._conn = database.connect(settings.db_path)
        salt = self._conn.execute("SELECT value FROM meta WHERE key = 'visitor_salt'")
        self._salt = str(salt.fetchone()[0]).encode()
        self._last_prune = 0.0
        self.written = 0

    def record(self, click: RawClick) -> None:
        """Keep a click for the next flush; call it from the event loop only."""
        self._pending.append(click)
        if len(self._pending) >= self.settings.flush_batch:
            self._wake.set()

    def pending(self) -> int:
        """Return how many clicks wait for the next flush."""
        return len(self._pending)

    async def run(self) -> None:
        """Flush every interval, or as soon as a batch is full, until stopped."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self.settings.flush_interval
                )
            stopping = self._stopping
            await self.flush()
            if stopping:
                return

    def stop(self) -> None:
        """Ask `run` to flush once more and return; never cancel it mid-write."""
        self._stopping = True
        self._wake.set()

    async def flush(self) -> int:
        """Write the pending clicks in a worker thread; return how many were written."""
        batch = self._take()
        if not batch:
            return 0
        try:
            await asyncio.to_thread(self.write, batch)
        except (sqlite3.Error, OSError):
            # Nothing is lost: the batch goes back in front of newer clicks.
            logger.exception("could not write %d clicks; keeping them", len(batch))
            self._pending[:0] = batch
            return 0
        return len(batch)

    def flush_now(self) -> int:
        """Write the pending clicks in this thread; for a stopping server."""
        batch = self._take()
        if batch:
            self.write(batch)
        return len(batch)

    def close(self) -> None:
        """Close the recorder's connection; stop and flush first."""
        self._conn.close()

    def _take(self) -> list[RawClick]:
        batch, self._pending = self._pending, []
        self._wake.clear()
        return batch

    def write(self, batch: list[RawClick]) -> None:
        """Store a batch in one transaction: raw rows, day counters, link totals."""
        clicks = [self._prepare(raw) for raw in batch]
        days: Counter[tuple[str, str, bool]] = Counter(
            (c.slug, c.clicked_at[:10], c.is_bot) for c in clicks
        )
        totals: Counter[tuple[str, bool]] = Counter((c.slug, c.is_bot) for c in clicks)

        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO clicks (slug, clicked_at, referrer_host, user_agent, "
                "is_bot, bot_reason, visitor) VALUES (?, ?, ?, ?, ?, ?, ?)",
                clicks,
            )
            conn.executemany(_ADD_TO_DAY, _day_rows(days))
            conn.executemany(_ADD_TO_LINK, _link_rows(totals))
            self._prune_if_due()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.written += len(clicks)
        logger.debug("flushed %d clicks for %d links", len(clicks), len(totals))

    def _prepare(self, raw: RawClick) -> Click:
        user_agent = raw.user_agent.decode("latin-1")
        reason = "HEAD request" if raw.head else bots.classify(user_agent)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(raw.at))
        return Click(
            slug=raw.slug,
            clicked_at=f"{stamp}.{int(raw.at * 1000) % 1000:03d}",
            referrer_host=_host(raw.referrer),
            user_agent=user_agent[:512],
            is_bot=reason is not None,
            bot_reason=reason,
            visitor=self._visitor(raw, stamp[:10]),
        )

    def _visitor(self, raw: RawClick, day: str) -> str:
        # A daily salted hash: it counts distinct visitors in a day, cannot be turned
        # back into an address, and cannot follow anyone from one day to the next.
        address = client_address(raw, self.settings.trusted_proxies)
        digest = hashlib.sha256(self._salt + day.encode() + address.encode())
        return digest.hexdigest()[:16]

    def _prune_if_due(self) -> None:
        now = time.time()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = time.gmtime(now - self.settings.retention_days * 86400)
        removed = self._conn.execute(
            "DELETE FROM clicks WHERE clicked_at < ?",
            (time.strftime("%Y-%m-%d %H:%M:%S", cutoff),),
        ).rowcount
        if removed:
            logger.info("pruned %d click rows past the retention period", removed)


_ADD_TO_DAY = (
    "INSERT INTO daily_clicks (slug, day, human, bot) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (slug, day) DO UPDATE SET "
    "human = human + excluded.human, bot = bot + excluded.bot"
)
_ADD_TO_LINK = (
    "UPDATE links SET clicks = coalesce(clicks, 0) + ?, bot_clicks = bot_clicks + ? "
    "WHERE slug = ?"
)


def _day_rows(
    days: Counter[tuple[str, str, bool]],
) -> Iterable[tuple[str, str, int, int]]:
    for (slug, day, is_bot), count in days.items():
        yield (slug, day, 0, count) if is_bot else (slug, day, count, 0)


def _link_rows(totals: Counter[tuple[str, bool]]) -> Iterable[tuple[int, int, str]]:
    for (slug, is_bot), count in totals.items():
        yield (0, count, slug) if is_bot else (count, 0, slug)


def _host(referrer: bytes) -> str | None:
    if not referrer:
        return None
    try:
        host = urlsplit(referrer.decode("latin-1")).hostname
    except ValueError:
        return None
    return host[:255] if host else None


def client_address(raw: RawClick, trusted: tuple[IPNetwork, ...]) -> str:
    """Return the visitor's address: the peer, or what trusted proxies forwarded.

    X-Forwarded-For is read right to left, skipping trusted proxies; the first
    address that is not one is the client. From an untrusted peer it is ignored, as
    anyone can send it.
    """
    if not trusted or not raw.forwarded_for or not _is_trusted(raw.peer, trusted):
        return raw.peer
    hops = [hop.strip() for hop in raw.forwarded_for.decode("latin-1").split(",")]
    for hop in reversed(hops):
        if hop and not _is_trusted(hop, trusted):
            return hop
    return hops[0] or raw.peer


def _is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
