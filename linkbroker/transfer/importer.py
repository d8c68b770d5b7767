"""Importing links: rows are checked and written a chunk at a time.

Every row is checked as `shorten` checks a link; a row that fails is reported with
its line, its slug and the reason, and the other rows go on. Checked rows are
written in chunks, each in its own short write transaction, so that a running
server's click flush waits a moment at most. Checking runs in this thread and
writing in another, side by side: SQLite does its work without Python's lock.

Inside each chunk's transaction the rows are compared with the database: a slug
that already leads to the same destination is skipped, a slug that leads elsewhere
is a conflict and is never overwritten, and the rest are inserted. A row without a
slug is skipped when a live link already leads to its destination, and gets a
generated slug otherwise. History and click data follow their link: they are
written only for links this run created. So running the same import again changes
nothing, and once the bad rows are fixed it brings in just those.
"""

import io
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from linkbroker import database
from linkbroker.errors import InvalidImport, LinkbrokerError
from linkbroker.store import LinkStore
from linkbroker.transfer import rows, sources
from linkbroker.transfer.quick import Prepared, prepare
from linkbroker.turns import Turns

# Rows a write transaction carries: tens of milliseconds of work, short enough that
# a server flushing clicks beside the import hardly notices.
CHUNK = 20_000
# Problems kept with their details; beyond this only their number is.
MAX_LISTED = 1_000
REPORT_EVERY = 10_000
# SQLite's page cache while writing: inserting into the indexes of a large table
# touches pages all over them, and the default 2 MiB makes it re-read them from
# disk; at 128 MiB a million-link import runs about twice as fast.
IMPORT_CACHE_KIB = 128 * 1024
# Chunks between two checkpoints. Left to itself the connection would checkpoint
# after every chunk's commit, copying most pages twice; every few chunks halves
# that, and the WAL stays near a hundred megabytes.
CHECKPOINT_EVERY = 5
SWITCH_INTERVAL = 0.0001

Progress = Callable[[str, int, int], None]

_CHECKS = {
    "history": rows.history_row,
    "click": rows.click_row,
    "day": rows.day_row,
    "source": rows.source_row,
}


@dataclass(frozen=True)
class Problem:
    """A row that was not imported: where it is, its slug and why."""

    line: int
    slug: str | None
    reason: str


@dataclass
class ImportReport:
    """What an import read, wrote, skipped and refused."""

    fmt: str
    dry_run: bool
    read: int = 0
    imported: int = 0
    present: int = 0
    conflicts: int = 0
    bad: int = 0
    extras: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Tell whether every row of the file is in the database (or would be)."""
        return not self.bad and not self.conflicts

    def problem(self, line: int, slug: object, reason: str) -> None:
        """Keep the details of a row left out, while the list is short."""
        if len(self.problems) < MAX_LISTED:
            shown = slug if isinstance(slug, str) and slug else None
            self.problems.append(Problem(line, shown, reason))


def import_file(
    store: LinkStore,
    path: Path,
    fmt: str | None = None,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the links of the file at `path`; see the module's description.

    Raises InvalidImport when the file cannot be read as a whole.
    """
    with _opened(path) as (stream, counter, size, first_line):
        fmt = fmt or sources.detect(path, first_line)
        read = sources.reader(fmt)
        report = ImportReport(fmt, dry_run)
        with _bulk_writing(store), _WriterThread(store, report, progress) as writer:
            checker = _Checker(store, report, writer.put)
            for record in read(stream):
                checker.add(record)
                if progress is not None and checker.count % REPORT_EVERY == 0:
                    progress("read", counter.count, size)
            checker.flush()
            if progress is not None:
                progress("read", size, size)
    if report.imported and not dry_run:
        # Slugs the cache remembers as absent must now resolve, in every process.
        store.cache.clear()
    return report


@contextmanager
def _bulk_writing(store: LinkStore) -> Iterator[None]:
    """Give the connection a large page cache and checkpoint it by hand meanwhile."""
    conn = store.conn
    cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    autocheckpoint = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    conn.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    # The writing thread wants Python's lock back after each statement; by default
    # it would wait up to 5 ms for the checking thread to let go of it. At 0.1 ms
    # rather than 0.5, an import measured up to a third quicker.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(switch)
        database.checkpoint(conn)
        conn.execute(f"PRAGMA wal_autocheckpoint = {autocheckpoint}")
        conn.execute(f"PRAGMA cache_size = {cache}")


Opened = tuple[IO[str], sources.CountingReader, int, str]


@contextmanager
def _opened(path: Path) -> Iterator[Opened]:
    """Open `path` as UTF-8 text that counts its bytes; give its first line too."""
    try:
        raw = path.open("rb")
        size = path.stat().st_size
        head = raw.read(64 * 1024).decode("utf-8-sig", errors="replace")
        raw.seek(0)
    except OSError as exc:
        raise InvalidImport(
            f"Cannot read {str(path)!r} ({exc.strerror}); check the path.", path
        ) from exc
    counter = sources.CountingReader(raw)
    stream = io.TextIOWrapper(
        io.BufferedReader(counter), encoding="utf-8-sig", newline=""
    )
    try:
        yield stream, counter, size, sources.first_line(io.StringIO(head))
    except UnicodeDecodeError as exc:
        raise InvalidImport(
            f"{str(path)!r} is not UTF-8 text (a byte {exc.object[exc.start]:#x} "
            f"near byte {counter.count:,}); save it as UTF-8 and import it again "
            "(rows already imported from before that point are then skipped).",
            path,
        ) from exc
    finally:
        stream.close()


# A kind, its rows, and for links the quick statements built for them.
Chunk = tuple[str, list[tuple[object, ...]], "Prepared | None"]


class _Checker:
    """Checks each record and hands the good ones on, a chunk at a time."""

    def __init__(
        self, store: LinkStore, report: ImportReport, emit: Callable[[Chunk], None]
    ) -> None:
        self.report, self.policy, self.emit = report, store.policy, emit
        self.now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        self.count = 0
        # Every slug of the file so far: history and clicks must find their link.
        self.slugs: set[str] = set()
        self._pending: dict[str, list[tuple[object, ...]]] = {"link": []}

    def add(self, record: sources.Record) -> None:
        """Check one record and keep it for its chunk, or count it as a problem."""
        kind, line, values = record
        self.count += 1
        if kind == "link":
            self.report.read += 1
        try:
            if kind == "bad":
                raise InvalidImport(str(values["reason"]), values)
            if kind == "link":
                row = rows.link_row(values, self.policy, self.now)
                if row[0] is not None:
                    self.slugs.add(str(row[0]))
            else:
                row = self._extra(kind, values)
        except LinkbrokerError as exc:
            self.report.bad += 1
            self.report.problem(line, values.get("slug"), str(exc))
            return
        pending = self._pending.setdefault(kind, [])
        pending.append((line, *row))
        if len(pending) >= CHUNK:
            self._hand_on(kind)

    def _extra(self, kind: str, values: dict[str, object]) -> tuple[object, ...]:
        row = _CHECKS[kind](values)
        if row[0] not in self.slugs:
            raise InvalidImport(
                f"no link with the slug {row[0]!r} comes before this {kind} line "
                "in the file; put the link first",
                row[0],
            )
        return row

    def flush(self) -> None:
        """Hand on what is left of every kind."""
        for kind in list(self._pending):
            self._hand_on(kind)

    def _hand_on(self, kind: str) -> None:
        if kind != "link":
            self._hand_on("link")  # links go first: the rest follows their fate
        staged = self._pending[kind]
        if staged:
            # Built here, beside the writer: the writing thread is the slower one.
            quick = kind == "link" and not self.report.dry_run
            self.emit((kind, staged, prepare(staged) if quick else None))
            self._pending[kind] = []


class _WriterThread:
    """Writes the chunks handed to it in a thread of its own, in order."""

    def __init__(
        self, store: LinkStore, report: ImportReport, progress: Progress | None
    ) -> None:
        from linkbroker.transfer.chunks import ChunkWriter

        self.report, self.progress = report, progress
        self.chunks = ChunkWriter(store, dry_run=report.dry_run)
        self.turns = Turns(store.settings.db_path)
        # A few chunks ahead at most: the checker waits rather than fill memory.
        self._queue: queue.Queue[Chunk | None] = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="import-writer")
        self._failure: BaseException | None = None
        self.written = 0

    def __enter__(self) -> "_WriterThread":
        self._thread.start()
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None and error is None:
            raise self._failure

    def put(self, chunk: Chunk) -> None:
        """Queue a chunk; raise at once if the writer has failed."""
        if self._failure is not None:
            raise self._failure
        self._queue.put(chunk)

    def _run(self) -> None:
        number = 0
        while (chunk := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain, so that the checker never blocks on a full queue
            number += 1
            try:
                self._write(*chunk)
                if number % CHECKPOINT_EVERY == 0:
                    database.checkpoint(self.chunks.conn)
                # A click flush waiting for the write lock goes before the next chunk.
                self.turns.give_way()
            except BaseException as exc:  # raised again in the checking thread
                self._failure = exc
        self.turns.close()

    def _write(
        self, kind: str, staged: list[tuple[object, ...]], prepared: Prepared | None
    ) -> None:
        if kind != "link":
            written = self.chunks.extras(kind, staged)
            self.report.extras[kind] = self.report.extras.get(kind, 0) + written
            return
        outcome = self.chunks.links(staged, prepared)
        self.report.imported += outcome.imported
        self.report.present += outcome.present
        self.report.conflicts += len(outcome.conflicts)
        for line, slug, reason in outcome.conflicts:
            self.report.problem(line, slug, reason)
        self.written += len(staged)
        if self.progress is not None:
            self.progress("write", self.written, self.report.read)
