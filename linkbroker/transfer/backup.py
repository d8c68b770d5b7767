"""Online backups, and restoring one into the live database.

A backup is SQLite's online backup API reading one snapshot of the database, in a
read transaction: a running server goes on writing clicks meanwhile, and the copy
holds exactly what was committed when it began. It is written beside its target
and renamed into place, as a single file in rollback-journal mode.

A restore never swaps files: a running server's workers keep the database open,
and would go on using the old file under its old name. Instead:

1. the copy is read into a temporary staging file, checked (PRAGMA
   integrity_check, a links table, a schema version this linkbroker knows) and
   brought up to the current schema, before anything is replaced;
2. one write transaction on the live database takes the write lock, so that no
   click flush can commit in between; inside it the live state is copied beside
   the database (`<db>.before-restore-<UTC stamp>`), then every table is emptied
   and filled from the staging copy. The live database keeps its own instance id,
   which names its namespace in the shared cache;
3. the cache is cleared, which tells every worker to drop its copies of links.

A server's click flush waits for the lock during the restore (for up to 30 s), so
clicks recorded meanwhile are written afterwards, into the restored database.
"""

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from linkbroker import database
from linkbroker.errors import InvalidImport, StorageError
from linkbroker.store import LinkStore

# A reader that read a row just before the restore committed may write it into the
# cache just after the first clear; the second clear, this much later, removes it.
SECOND_CLEAR_AFTER = 0.5


@dataclass(frozen=True)
class CopyInfo:
    """What a database file holds: its schema version and its links."""

    path: Path
    schema_version: int
    links: int
    clicks: int


def backup(store: LinkStore, target: Path) -> CopyInfo:
    """Copy the live database to `target`, which must not exist yet."""
    if target.exists():
        raise InvalidImport(
            f"{str(target)!r} already exists; choose a new file name, or move the "
            "old backup away first.",
            target,
        )
    partial = target.with_name(target.name + ".partial")
    try:
        copy = _connect(partial)
        try:
            store.conn.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            info = _describe(copy, target)
        finally:
            copy.close()
        partial.replace(target)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(
            f"Cannot write the backup {str(target)!r} ({exc}); check that its "
            "folder exists and is writable.",
            target,
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    return info


@contextlib.contextmanager
def staged_copy(source: Path, beside: Path) -> Iterator[tuple[CopyInfo, Path]]:
    """Check the backup at `source`; yield what it holds and its staged copy.

    The staged copy lives in `beside`'s folder until the block ends. Raises
    InvalidImport when the copy is unreadable, damaged, not linkbroker's, or of a
    newer schema than this linkbroker knows.
    """
    if not source.is_file():
        raise InvalidImport(
            f"No backup file at {str(source)!r}; check the path.", source
        )
    beside.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".restore-", dir=beside.parent)
    staging = Path(name)
    try:
        os.close(handle)
        yield _stage(source, staging), staging
    finally:
        for leftover in (staging, *_journals(staging)):
            leftover.unlink(missing_ok=True)


def _stage(source: Path, staging: Path) -> CopyInfo:
    try:
        original = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        copy = _connect(staging)
        try:
            original.backup(copy)
            _check_copy(copy, source)
            database.migrate(copy)
            return _describe(copy, source)
        finally:
            original.close()
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidImport(
            f"{str(source)!r} cannot be read as a SQLite database ({exc}): it is "
            "damaged, or not a backup; restore a file made by `linkbroker backup`.",
            source,
        ) from exc


def _check_copy(copy: sqlite3.Connection, source: Path) -> None:
    problems = [row[0] for row in copy.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise InvalidImport(
            f"{str(source)!r} is damaged ({problems[0]}); restore another backup.",
            source,
        )
    version = database.schema_version(copy)
    if version > database.SCHEMA_VERSION:
        raise InvalidImport(
            f"{str(source)!r} is at schema version {version}, newer than this "
            f"linkbroker knows ({database.SCHEMA_VERSION}); upgrade linkbroker to "
            "restore it.",
            source,
        )
    tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master")}
    if "links" not in tables:
        raise InvalidImport(
            f"{str(source)!r} has no links table, so it is not a linkbroker "
            "database; give a file made by `linkbroker backup`.",
            source,
        )


def restore(store: LinkStore, staging: Path) -> Path:
    """Replace the live database's content with a staged copy; return the old one.

    The old content is kept beside the database, and its path returned.
    """
    live = store.settings.db_path
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS restored", (str(staging),))
    try:
        conn.execute("BEGIN IMMEDIATE")  # no click flush commits from here on
        try:
            # Named under the write lock, so that no other restore takes the name.
            kept = _unused_name(live)
            _keep_live_copy(live, kept)
            _replace_tables(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            kept.unlink(missing_ok=True)
            raise
    finally:
        conn.execute("DETACH DATABASE restored")
    _clear_cache(store)
    return kept


def _unused_name(live: Path) -> Path:
    """Return a name beside the database for its copy, unique to the second."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    first = kept = live.with_name(f"{live.name}.before-restore-{stamp}")
    number = 1
    while kept.exists():
        number += 1
        kept = first.with_name(f"{first.name}-{number}")
    return kept


def _keep_live_copy(live: Path, kept: Path) -> None:
    # Read through a second connection: the first holds the write lock, and in WAL
    # mode a reader sees every commit made before that lock was taken.
    reader = sqlite3.connect(live)
    copy = _connect(kept)
    try:
        reader.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    finally:
        copy.close()
        reader.close()


def _replace_tables(conn: sqlite3.Connection) -> None:
    for table in database.data_tables(conn):
        columns = ", ".join(f'"{name}"' for name in _columns(conn, table))
        conn.execute(f'DELETE FROM main."{table}"')
        conn.execute(
            f'INSERT INTO main."{table}" ({columns}) '
            f'SELECT {columns} FROM restored."{table}"'
        )
    # The instance id names this database's namespace in the shared cache, where
    # running workers watch for changes: it stays the live one.
    conn.execute(
        "INSERT OR REPLACE INTO main.meta (key, value) "
        "SELECT key, value FROM restored.meta WHERE key != 'instance_id'"
    )


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    live = [row[1] for row in conn.execute(f'PRAGMA main.table_info("{table}")')]
    copy = {row[1] for row in conn.execute(f'PRAGMA restored.table_info("{table}")')}
    return [name for name in live if name in copy]


def _clear_cache(store: LinkStore) -> None:
    store.cache.clear()
    time.sleep(SECOND_CLEAR_AFTER)
    store.cache.clear()


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _describe(conn: sqlite3.Connection, path: Path) -> CopyInfo:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    links = conn.execute("SELECT count(*) FROM links").fetchone()[0]
    clicks = 0
    if "clicks" in tables:
        clicks = conn.execute("SELECT count(*) FROM clicks").fetchone()[0]
    return CopyInfo(path, database.schema_version(conn), int(links), int(clicks))


def _journals(path: Path) -> list[Path]:
    return [
        path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")
    ]
