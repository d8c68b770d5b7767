"""Writing clicks to SQLite: classification, visitor hashing, sums, one transaction.

This is the half of click recording that costs CPU. It runs in the click writer
process (see clickwriter.py), away from the server's event loop, and in the server
itself only as a last resort when a stopping worker could not hand its clicks over.
It imports nothing of the server, so that the writer process stays small.
"""

import hashlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from linkbroker import bots, database
from linkbroker.settings import Settings
from linkbroker.turns import Turns

if TYPE_CHECKING:
    from linkbroker.settings import IPNetwork

logger = logging.getLogger(__name__)

# Retention pruning walks the oldest rows; doing it on every flush would be waste.
PRUNE_EVERY = 600.0
_MILLISECONDS = [f".{ms:03d}" for ms in range(1000)]


# What the request path keeps of a redirect, with no parsing, hashing or I/O:
# (slug, at, head, user_agent, referrer, forwarded_for, peer). A plain tuple of
# atomic values, which the garbage collector stops tracking at its first look: a
# NamedTuple stays tracked, and a second's worth of them turned every full
# collection into a pause of tens of milliseconds on the event loop.
RawClick = tuple[str, float, bool, bytes, bytes, bytes, str]


# A click as stored is CLICK_COLUMNS values: slug, clicked_at, referrer_host,
# user_agent, is_bot, bot_reason, visitor. They are only str and int: sqlite3 binds
# those directly, but looks every other value (None, a bool) up as a candidate for
# adaptation, failing its way through two attribute lookups. That took half the
# time of inserting a row; an absent referrer host or bot reason is '' here, and
# the statement turns it into NULL.
Value = str | int
CLICK_COLUMNS = 7
# What a click adds to the counters: slug, day, is_bot, referrer host or bot reason.
_Key = tuple[str, str, bool, str | None]
# What a click's request says, the same for many clicks (user agent, referrer,
# X-Forwarded-For, peer, HEAD or not), and its day; and what that gives each click:
# its columns after slug and time, is_bot, and its referrer host or bot reason.
_Request = tuple[bytes, bytes, bytes, str, bool, str]
_Described = tuple[tuple[str, str, int, str, str], bool, str | None]
# Requests described and remembered, about a batch's worth of distinct visitors.
DESCRIBED = 4096


class ClickWriter:
    """Turns raw clicks into rows and writes them to SQLite in one transaction."""

    def __init__(
        self,
        settings: Settings,
        also_checkpoint: Sequence[Path] = (),
        pause: float = 0.0,
    ) -> None:
        """Open the database; `pause` is a sleep after every chunk (see `write`)."""
        self.settings = settings
        self._pause = pause
        self._resting = False
        self._conn = database.connect(settings.db_path, autocheckpoint=False)
        self._others = [_checkpoint_connection(path) for path in also_checkpoint]
        salt = self._conn.execute("SELECT value FROM meta WHERE key = 'visitor_salt'")
        self._salt = str(salt.fetchone()[0]).encode()
        self._last_prune = 0.0
        self._turns = Turns(settings.db_path)
        self._described: dict[_Request, _Described] = {}
        self.written = 0

    def write(self, clicks: Iterable[RawClick]) -> int:
        """Store raw clicks in one transaction; return how many were written.

        The clicks are prepared and inserted a chunk at a time, so that a large
        batch never exists as rows all at once, and their sums go to the counters
        whenever they cover SUMMED_KEYS links and days: over a million links, the
        sums of a batch of 20,000 clicks took 10 MiB, where over a thousand links
        a batch sums to a thousand rows. On an error nothing is written.

        With a `pause`, the writer sleeps that long after every chunk. Beside busy
        workers, a writer that works without a break holds its core until the
        scheduler's next tick (4 ms at 250 Hz) while a worker waits in the other
        core's queue: a core that runs anything never pulls a waiting task before
        its periodic balance. Idle for a moment after every half millisecond of
        work, the core takes the waiting worker at once. With two workers busy on
        two cores, requests' p99 went from 4.5 to 2.5 ms. A writer that has fallen
        behind, its oldest click older than two flush intervals, works without a
        pause until it has caught up.
        """
        conn, pending, written = self._conn, iter(clicks), 0
        # Within the transaction no link can be purged: each slug is looked up once.
        kept: dict[str, bool] = {}
        counts: Counter[_Key] = Counter()
        with self._turns.writing():
            conn.execute("BEGIN IMMEDIATE")
            try:
                chunks = iter(lambda: list(islice(pending, CHUNK)), [])
                for number, chunk in enumerate(chunks):
                    if number == 0:
                        self._resting = self._pause > 0 and not self._behind(chunk)
                    self._insert(chunk, kept, counts)
                    self._rest()
                    if len(counts) >= SUMMED_KEYS:
                        written += self._add_up(counts)
                written += self._add_up(counts)
                self._prune_if_due()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.written += written
        logger.debug("flushed %d clicks for %d links", written, sum(kept.values()))
        return written

    def _insert(
        self, chunk: list[RawClick], kept: dict[str, bool], counts: Counter[_Key]
    ) -> None:
        """Insert a chunk of clicks and add them to `counts`."""
        # A link purged while its clicks waited leaves no trace, and gives none to
        # a link made later under the same slug.
        unknown = {click[0] for click in chunk if click[0] not in kept}
        if unknown:
            found = self._existing(unknown)
            kept.update((slug, slug in found) for slug in unknown)
        values = self.prepare([click for click in chunk if kept[click[0]]], counts)
        _insert_rows(self._conn, values)

    def _existing(self, slugs: set[str]) -> set[str]:
        """Return which of `slugs` still have a row in links; tombstones count."""
        marks = ", ".join("?" * len(slugs))
        rows = self._conn.execute(
            f"SELECT slug FROM links WHERE slug IN ({marks})", list(slugs)
        )
        return {slug for (slug,) in rows}

    def _add_up(self, counts: Counter[_Key]) -> int:
        """Add `counts` to the counters, empty it, and return how many clicks."""
        days, sources, links = _summarise(counts)
        for sql, rows in (
            (_ADD_TO_DAYS, days),
            (_ADD_TO_SOURCES, sources),
            (_ADD_TO_LINKS, links),
        ):
            for start in range(0, len(rows), CHUNK):
                _execute_many(self._conn, sql, rows[start : start + CHUNK])
                self._rest()
        total = counts.total()
        counts.clear()
        return total

    def _behind(self, chunk: list[RawClick]) -> bool:
        oldest = min(click[1] for click in chunk)
        return time.time() - oldest > 2 * self.settings.flush_interval

    def _rest(self) -> None:
        if self._resting:
            time.sleep(self._pause)

    def checkpoint(self) -> None:
        """Copy the WAL files back into their databases.

        The server's connections leave this to the click writer, so that the fsync
        a checkpoint needs never delays a request.
        """
        for conn in (self._conn, *self._others):
            try:
                database.checkpoint(conn)
            except sqlite3.Error:
                logger.warning("could not checkpoint; the WAL will wait", exc_info=True)

    def close(self) -> None:
        """Close the connections; whatever is still held is not written."""
        for conn in (self._conn, *self._others):
            conn.close()
        self._turns.close()

    def prepare(self, batch: Sequence[RawClick], counts: Counter[_Key]) -> list[Value]:
        """Return the rows of raw clicks, one after another, and count them.

        Each click gives CLICK_COLUMNS values: its time stamp, bot reason and
        hashed visitor among them. `counts` gains what it adds to the counters.
        """
        # A batch repeats the same visitors, with the same headers, many times
        # over, and its clicks come in time order: each visitor's request is
        # described once a day, each second formatted once. The rows are one flat
        # list, as the statements that insert many at once take their values.
        described, describe = self._described, self._describe
        values: list[Value] = []
        extend = values.extend
        last, stamp, day = -1, "", ""
        for slug, at, head, agent, referrer, forwarded_for, peer in batch:
            second = int(at)
            if second != last:
                last, stamp = second, _stamp(second)
                day = stamp[:10]
            request = (agent, referrer, forwarded_for, peer, head, day)
            columns, is_bot, source = described.get(request) or describe(request)
            extend((slug, stamp + _MILLISECONDS[int(at * 1000) % 1000], *columns))
            counts[slug, day, is_bot, source] += 1
        return values

    def _describe(self, request: _Request) -> _Described:
        """Return what clicks of `request` store and count, and remember it."""
        agent, referrer, forwarded_for, peer, head, day = request
        user_agent, reason = _agent(agent)
        if head:
            reason = "HEAD request"
        trusted = self.settings.trusted_proxies
        address = client_address(forwarded_for, peer, trusted) if trusted else peer
        host = _host(referrer) if referrer else None
        is_bot = reason is not None
        visitor = _visitor(self._salt, day, address)
        columns = (host or "", user_agent, 1 if is_bot else 0, reason or "", visitor)
        found = columns, is_bot, reason if is_bot else host
        if len(self._described) >= DESCRIBED:
            self._described.clear()
        self._described[request] = found
        return found

    def _prune_if_due(self) -> None:
        now = time.time()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = time.gmtime(now - self.settings.retention_days * 86400)
        # Rows are appended in time order, so the old ones are a run at the front:
        # find where it ends and delete up to there, without an index on time.
        removed = self._conn.execute(
            "DELETE FROM clicks WHERE id < coalesce("
            "(SELECT id FROM clicks WHERE clicked_at >= ? ORDER BY id LIMIT 1), "
            "(SELECT max(id) + 1 FROM clicks))",
            (time.strftime("%Y-%m-%d %H:%M:%S", cutoff),),
        ).rowcount
        if removed:
            logger.info("pruned %d click rows past the retention period", removed)


_INSERT_CLICKS = (
    "INSERT INTO clicks (slug, clicked_at, referrer_host, user_agent, is_bot, "
    "bot_reason, visitor) VALUES "
)
# Rows a statement inserts at once, and that statement.
ROWS_AT_ONCE = 64
_ROW_MARKS = "(?, ?, nullif(?, ''), ?, ?, nullif(?, ''), ?)"
_INSERT_MANY = _INSERT_CLICKS + ", ".join([_ROW_MARKS] * ROWS_AT_ONCE)
# ON CONFLICT turns each insert into a sum with what the counters already hold.
_ADD_TO_DAYS = (
    "INSERT INTO daily_clicks (slug, day, human, bot) VALUES {values} "
    "ON CONFLICT (slug, day) DO UPDATE SET "
    "human = human + excluded.human, bot = bot + excluded.bot"
)
_ADD_TO_SOURCES = (
    "INSERT INTO daily_sources (slug, day, kind, source, clicks) VALUES {values} "
    "ON CONFLICT (slug, day, kind, source) DO UPDATE "
    "SET clicks = clicks + excluded.clicks"
)
# Rows of (slug, human, bot). A plain UPDATE by key: one joined to its row as a
# VALUES table took three times as long.
_ADD_TO_LINKS = (
    "UPDATE links SET clicks = coalesce(clicks, 0) + ?2, "
    "bot_clicks = bot_clicks + ?3 WHERE slug = ?1"
)


Rows = Sequence[Sequence[object]]
# Clicks prepared and inserted at a time, and counter rows added at a time: about
# half a millisecond of work.
CHUNK = 128
# Sums of this many links and days go to the counters before more are summed.
SUMMED_KEYS = 4096


def _execute_many(conn: sqlite3.Connection, sql: str, rows: Rows) -> None:
    # One single-row statement stepped over every row: the counters take a few
    # hundred rows a batch, and statements of every width for them would cost
    # MiB of prepared statements for no measurable gain.
    if rows:
        width = len(rows[0])
        conn.executemany(sql.format(values="(" + ", ".join("?" * width) + ")"), rows)


def _insert_rows(conn: sqlite3.Connection, values: list[Value]) -> None:
    # Raw rows are most of the writer's work, and a statement of 64 rows inserts
    # them in three quarters of the time executemany takes to step through them
    # one by one. A single prepared statement of a fixed size, plus one for the
    # rest, keeps sqlite3's statement cache small.
    step = ROWS_AT_ONCE * CLICK_COLUMNS
    whole = len(values) - len(values) % step
    for start in range(0, whole, step):
        conn.execute(_INSERT_MANY, values[start : start + step])
    rest = values[whole:]
    if rest:
        rows = [rest[i : i + CLICK_COLUMNS] for i in range(0, len(rest), CLICK_COLUMNS)]
        conn.executemany(_INSERT_CLICKS + _ROW_MARKS, rows)


def _checkpoint_connection(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _summarise(counts: Counter[_Key]) -> tuple[Rows, Rows, Rows]:
    """Sum a batch per link and day, per source, and per link, human and bot apart."""
    # The loops run once per distinct key, not once per click.
    days: dict[tuple[str, str], list[int]] = {}
    sources: Counter[tuple[str, str, str, str]] = Counter()
    links: dict[str, list[int]] = {}
    for (slug, day, is_bot, source), count in counts.items():
        days.setdefault((slug, day), [0, 0])[is_bot] += count
        links.setdefault(slug, [0, 0])[is_bot] += count
        kind = "bot" if is_bot else "referrer"
        sources[slug, day, kind, source or ""] += count
    return (
        [[*key, *pair] for key, pair in days.items()],
        [[*key, count] for key, count in sources.items()],
        [[slug, *pair] for slug, pair in links.items()],
    )


@lru_cache(maxsize=4096)
def _agent(raw: bytes) -> tuple[str, str | None]:
    user_agent = raw.decode("latin-1")[:512]
    return user_agent, bots.classify(user_agent)


@lru_cache(maxsize=1024)
def _stamp(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))


# Bounded to what a few seconds of clicks repeat: every entry is a visitor's
# address, and a memo of 65,536 grew the writer by 11 MiB under many visitors.
@lru_cache(maxsize=4096)
def _visitor(salt: bytes, day: str, address: str) -> str:
    # A daily salted hash: it counts distinct visitors in a day, cannot be turned
    # back into an address, and cannot follow anyone from one day to the next.
    digest = hashlib.sha256(salt + day.encode() + address.encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=4096)
def _host(referrer: bytes) -> str | None:
    if not referrer:
        return None
    try:
        host = urlsplit(referrer.decode("latin-1")).hostname
    except ValueError:
        return None
    return host[:255] if host else None


def client_address(
    forwarded_for: bytes, peer: str, trusted: tuple["IPNetwork", ...]
) -> str:
    """Return the visitor's address: the peer, or what trusted proxies forwarded.

    X-Forwarded-For is read right to left, skipping trusted proxies; the first
    address that is not one is the client. From an untrusted peer it is ignored, as
    anyone can send it.
    """
    if not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",")]
    for hop in reversed(hops):
        if hop and not _is_trusted(hop, trusted):
            return hop
    return hops[0] or peer


def _is_trusted(address: str, trusted: tuple["IPNetwork", ...]) -> bool:
    # Imported here: only a server behind trusted proxies parses addresses.
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
