"""Opening the SQLite file and bringing its schema up to date."""

import logging
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linkbroker.errors import StorageError

logger = logging.getLogger(__name__)

# Long enough that several server workers and a CLI queue for the write lock rather
# than fail; a write holds it for milliseconds.
BUSY_TIMEOUT_MS = 30_000
# Seconds between tries at switching a new file to WAL, doubling up to the most.
WAL_RETRY_FIRST = 0.001
WAL_RETRY_MOST = 0.1
PAGE_CACHE_KIB = 512

# The last migration in schema.sql; a test keeps the two in step. Knowing it here
# spares every command from reading schema.sql when the database is up to date.
SCHEMA_VERSION = 4

_SECTION = re.compile(r"^-- migration (\d+)\b.*$", re.MULTILINE)


def connect(path: Path, *, autocheckpoint: bool = True) -> sqlite3.Connection:
    """Open the database at `path`, creating and upgrading it as needed.

    Without `autocheckpoint` the connection never copies its WAL back into the
    database itself; whoever opens it that way must call `checkpoint`.

    The connection is in autocommit mode: callers open their own transactions,
    `BEGIN IMMEDIATE` for any that reads before it writes.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(
            f"Cannot open the database {str(path)!r} ({exc}); check that its folder "
            "exists and is writable, or set LINKBROKER_DB.",
            path,
        ) from exc

    try:
        with _unusable_as(path):
            _configure(conn)
            if not autocheckpoint:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def _unusable_as(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if _is_busy(exc):
            raise StorageError(
                f"The database {str(path)!r} stayed locked by another process for "
                f"{BUSY_TIMEOUT_MS / 1000:g} s ({exc}); let it finish, or stop it, "
                "and try again.",
                path,
            ) from exc
        raise StorageError(
            f"The file {str(path)!r} is not a usable linkbroker database ({exc}); "
            "point LINKBROKER_DB at another file or restore a backup.",
            path,
        ) from exc


def _is_busy(exc: sqlite3.Error) -> bool:
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    # Several processes opening a new file at once: while one switches it to WAL,
    # another's switch fails with "database is locked" at once, whatever the busy
    # timeout, as SQLite gives up rather than wait where waiting could deadlock.
    # Seen in one race of six `shorten` commands in fifty. The switch is
    # idempotent, so it is tried again, for as long as the busy timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = WAL_RETRY_FIRST
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, WAL_RETRY_MOST)


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # WAL lets readers go on while one writer commits; NORMAL keeps every commit
    # atomic and durable across a process crash, trading only the last commits on
    # a power cut for a much cheaper fsync pattern.
    _switch_to_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    # Reads go by key and mostly hit the shared cache first, and a server worker
    # holds three connections: a page cache of 512 KiB each, not SQLite's 2 MiB.
    # An import sets a larger one for its run.
    conn.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")


@contextmanager
def transaction(
    conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE"
) -> Iterator[None]:
    """Run the block in one transaction: committed if it ends, rolled back if not.

    IMMEDIATE, the default, takes the write lock first, so that what the block reads
    cannot change under it before it writes.
    """
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrations() -> list[tuple[int, str]]:
    """Return the numbered sections of schema.sql, in order."""
    from importlib import resources  # read only when a database needs upgrading

    text = resources.files("linkbroker").joinpath("schema.sql").read_text("utf-8")
    marks = list(_SECTION.finditer(text))
    sections = []
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        sections.append((int(mark.group(1)), text[mark.end() : end]))
    return sections


def latest_version() -> int:
    """Return the schema version this linkbroker writes."""
    return migrations()[-1][0]


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the database."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration newer than the database; return the ones applied.

    `connect` has already called it; a second call finds nothing to do.
    """
    current = schema_version(conn)
    if current == SCHEMA_VERSION:
        return []
    steps = migrations()
    if current > steps[-1][0]:
        raise StorageError(
            f"The database is at schema version {current}, newer than this "
            f"linkbroker knows ({steps[-1][0]}); upgrade linkbroker to use it.",
            current,
        )

    applied = []
    for number, script in steps:
        if number > current and _apply(conn, number, script):
            applied.append(number)
    return applied


def _apply(conn: sqlite3.Connection, number: int, script: str) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have applied it while this one waited for the lock.
        if schema_version(conn) >= number:
            conn.execute("ROLLBACK")
            return False
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("applied schema migration %d", number)
    return True


def _statements(script: str) -> list[str]:
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    return statements


def data_tables(conn: sqlite3.Connection) -> list[str]:
    """Return the tables holding links and clicks, not the instance's own."""
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name != 'meta' ORDER BY name"
    )
    return [name for (name,) in names]


def table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Return each table's row count, for a person checking what a database holds."""
    import sqlite_utils  # introspection only; kept off the fast paths

    db = sqlite_utils.Database(conn)
    return {name: db[name].count for name in db.table_names()}


def peek_version(path: Path) -> int | None:
    """Return the schema version of the database at `path` without changing it.

    None means there is no database there yet.
    """
    if not path.exists():
        return None
    with _unusable_as(path):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return schema_version(conn)
        finally:
            conn.close()


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy what the WAL holds back into the database file, without waiting."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
