"""The schema: migrations, the original edge design's table, and nothing destroyed."""

import re
import sqlite3
import time
from pathlib import Path

import pytest

from linkbroker import database
from linkbroker.errors import StorageError
from linkbroker.model import Target
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

REPO = Path(__file__).resolve().parent.parent

# The table exactly as the edge design created it in D1.
EDGE_SCHEMA = """
CREATE TABLE links (
  slug TEXT PRIMARY KEY,
  destination_url TEXT NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  clicks INTEGER DEFAULT 0
);
"""


def _edge_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(EDGE_SCHEMA)
    conn.executemany(
        "INSERT INTO links VALUES (?, ?, ?, ?)",
        [
            ("docs", "https://example.com/docs", "2024-05-01 10:00:00", 42),
            ("blog", "https://example.com/blog", "2024-05-02 11:30:00", 7),
        ],
    )
    conn.execute(
        "INSERT INTO links (slug, destination_url) "
        "VALUES ('bare', 'https://b.example/')"
    )
    conn.commit()
    conn.close()


def test_packaged_schema_is_the_repository_schema() -> None:
    packaged = (REPO / "linkbroker" / "schema.sql").read_text()
    assert packaged == (REPO / "schema.sql").read_text()


def test_schema_has_no_destructive_statement() -> None:
    text = (REPO / "schema.sql").read_text()
    code = "\n".join(line.split("--")[0] for line in text.splitlines())
    assert not re.search(r"\b(DROP|DELETE|TRUNCATE|REPLACE)\b", code, re.IGNORECASE)


def test_migrations_are_numbered_in_order() -> None:
    numbers = [number for number, _ in database.migrations()]
    assert numbers == list(range(1, len(numbers) + 1))


def test_edge_database_opens_and_upgrades_with_rows_intact(settings: Settings) -> None:
    _edge_database(settings.db_path)

    with LinkStore(settings) as store:
        assert database.schema_version(store.conn) == database.latest_version()
        docs = store.get("docs")
        assert (docs.destination, docs.created_at, docs.clicks) == (
            "https://example.com/docs",
            "2024-05-01 10:00:00",
            42,
        )
        assert store.require("blog").destination == "https://example.com/blog"
        assert store.get("blog").clicks == 7
        assert [link.slug for link in store.most_clicked()][:2] == ["docs", "blog"]


def test_a_row_with_only_the_original_columns_is_a_live_link(
    settings: Settings,
) -> None:
    _edge_database(settings.db_path)
    with LinkStore(settings) as store:
        store.conn.execute(
            "INSERT INTO links (slug, destination_url) "
            "VALUES ('raw', 'https://r.example/')"
        )
        assert store.require("raw").destination == "https://r.example/"
        assert store.get("raw").clicks == 0


def test_reopening_changes_nothing(settings: Settings) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/", "keep")
        version = database.schema_version(store.conn)
        assert database.migrate(store.conn) == []
    with LinkStore(settings) as store:
        assert database.schema_version(store.conn) == version
        assert store.require("keep").destination == "https://example.com/"


def test_a_failed_migration_leaves_the_database_as_it_was(settings: Settings) -> None:
    _edge_database(settings.db_path)
    conn = sqlite3.connect(settings.db_path, isolation_level=None)
    failing = "CREATE TABLE first_step (x);\nSELECT no_such_function();\n"
    with pytest.raises(sqlite3.OperationalError, match="no_such_function"):
        database._apply(conn, 1, failing)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "first_step" not in tables
    assert database.schema_version(conn) == 0
    assert conn.execute("SELECT count(*) FROM links").fetchone()[0] == 3
    conn.close()


def test_schema_version_constant_matches_schema_sql() -> None:
    assert database.latest_version() == database.SCHEMA_VERSION


def test_odd_rows_from_older_databases_are_listed_and_served(
    settings: Settings,
) -> None:
    _edge_database(settings.db_path)
    conn = sqlite3.connect(settings.db_path)
    conn.execute(
        "INSERT INTO links VALUES ('old', 'https://exämple.com/ü', 1714557600, NULL)"
    )
    conn.commit()
    conn.close()

    with LinkStore(settings) as store:
        old = store.get("old")
        assert old.created_at == "1714557600"
        assert old.clicks == 0
        assert {link.slug for link in store.newest()} >= {"old", "docs"}


def test_rows_from_older_databases_are_served_only_in_a_safe_form(
    settings: Settings,
) -> None:
    _edge_database(settings.db_path)
    conn = sqlite3.connect(settings.db_path)
    conn.executemany(
        "INSERT INTO links (slug, destination_url) VALUES (?, ?)",
        [("uni", "https://exämple.com/ü"), ("js", "javascript:alert(1)")],
    )
    conn.commit()
    conn.close()

    with LinkStore(settings) as store:
        assert store.resolve("uni") == Target("https://xn--exmple-cua.com/%C3%BC")
        assert store.resolve("js") is None


def _holding(path: Path, *statements: str) -> sqlite3.Connection:
    """Return another connection to `path`, left holding the locks `statements` take."""
    holder = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        holder.execute(statement)
    return holder


def test_a_new_file_another_connection_is_writing_opens_once_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection in the middle of a write to a new file, still in rollback-journal
    # mode, as when several processes open it at once: SQLite refuses the switch
    # to WAL at once, whatever the busy timeout.
    path = tmp_path / "links.db"
    holder = _holding(path, "BEGIN", "CREATE TABLE other (x)")
    waits: list[float] = []

    def finish_the_write(seconds: float) -> None:
        waits.append(seconds)
        if holder.in_transaction:
            holder.execute("COMMIT")

    # Its pause between tries is where the other connection finishes.
    monkeypatch.setattr(time, "sleep", finish_the_write)
    conn = database.connect(path)
    holder.close()

    assert waits  # refused once, then tried again once the write was done
    assert database.schema_version(conn) == database.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_database_locked_for_longer_than_the_busy_timeout_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "links.db"
    holder = _holding(path, "BEGIN EXCLUSIVE")
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    try:
        with pytest.raises(StorageError, match="stayed locked by another process"):
            database.connect(path)
    finally:
        holder.close()
    assert database.peek_version(path) == 0  # nothing was written meanwhile
