"""Backups under load, restores that check first, and servers that follow a restore."""

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Invoke, query
from live import fetch, live_server

from linkbroker import database
from linkbroker.model import Edit
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
# The promise the README makes for a change, a restore included.
CONSISTENCY_BOUND = 1.0


class _Clicks:
    """Clicks on one link from a thread, until stopped."""

    def __init__(self, url: str) -> None:
        self.url, self.sent = url, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        deadline = time.monotonic() + 30  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            fetch(self.url, headers=BROWSER)
            self.sent += 1

    def __enter__(self) -> "_Clicks":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_backup_under_load_holds_every_click_flushed_before_it(
    settings: Settings, store: LinkStore, cli: Invoke, tmp_path: Path
) -> None:
    store.create("https://example.com/busy", "busy")
    copy = tmp_path / "backup.db"
    with live_server(settings) as server, _Clicks(f"{server.url}/busy"):
        count = "SELECT count(*) FROM clicks"
        _wait_for(lambda: query(settings.db_path, count)[0][0] >= 20)
        flushed = {row[0] for row in query(settings.db_path, "SELECT id FROM clicks")}

        result = cli("backup", str(copy))
        assert result.exit_code == 0, result.output
        # The server kept writing while the copy was taken.
        _wait_for(lambda: query(settings.db_path, count)[0][0] > len(flushed))

    copied = {row[0] for row in query(copy, "SELECT id FROM clicks")}
    assert flushed <= copied
    assert query(copy, "PRAGMA integrity_check") == [("ok",)]
    assert query(copy, "PRAGMA journal_mode") == [("delete",)]
    assert not copy.with_name(copy.name + "-wal").exists()

    # Restored, the database holds exactly the copy: every click flushed before
    # the backup began, and the link's counter in step with its raw clicks.
    result = cli("restore", str(copy), "--yes")
    assert result.exit_code == 0, result.output
    restored = {row[0] for row in query(settings.db_path, "SELECT id FROM clicks")}
    assert restored == copied
    assert store.get("busy").clicks == len(copied)


def test_a_backup_restores_into_a_fresh_installation(
    store: LinkStore, cli: Invoke, tmp_path: Path
) -> None:
    store.create("https://example.com/kept", "kept")
    copy = tmp_path / "backup.db"
    assert cli("backup", str(copy)).exit_code == 0

    fresh = Settings.load(
        db_path=tmp_path / "fresh" / "links.db",
        cache_dir=tmp_path / "fresh" / "cache",
        environ={},
    )
    with LinkStore(fresh) as other:
        assert other.resolve("kept") is None  # remembered as absent
        from linkbroker.transfer.backup import restore, staged_copy

        with staged_copy(copy, fresh.db_path) as (info, staging):
            assert info.links == 1
            restore(other, staging)
        found = other.resolve("kept")
        assert found is not None
        assert found.destination == "https://example.com/kept"


def test_backup_refuses_to_overwrite(cli: Invoke, tmp_path: Path) -> None:
    copy = tmp_path / "backup.db"
    copy.write_text("precious", "utf-8")
    result = cli("backup", str(copy))
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert copy.read_text("utf-8") == "precious"


def test_restore_asks_first_and_keeps_the_replaced_database(
    store: LinkStore, cli: Invoke, settings: Settings, tmp_path: Path
) -> None:
    store.create("https://example.com/old", "old")
    copy = tmp_path / "backup.db"
    assert cli("backup", str(copy)).exit_code == 0
    store.create("https://example.com/new", "new")

    declined = cli("restore", str(copy), input="n\n")
    assert declined.exit_code == 1
    assert store.count() == 2

    result = cli("restore", str(copy), "--yes")
    assert result.exit_code == 0, result.output
    assert [link.slug for link in store.newest()] == ["old"]
    kept = list(settings.db_path.parent.glob("links.db.before-restore-*"))
    assert len(kept) == 1
    assert str(kept[0]) in result.stdout
    slugs = {row[0] for row in query(kept[0], "SELECT slug FROM links")}
    assert slugs == {"old", "new"}
    assert not list(settings.db_path.parent.glob(".restore-*"))

    # Another restore, within the same second or not, keeps a copy of its own.
    assert cli("restore", str(copy), "--yes").exit_code == 0
    again = set(settings.db_path.parent.glob("links.db.before-restore-*"))
    assert len(again) == 2 and kept[0] in again
    slugs = {row[0] for row in query(kept[0], "SELECT slug FROM links")}
    assert slugs == {"old", "new"}


def _damage(path: Path) -> None:
    # Garbage over the second page onward: the header still says SQLite.
    data = bytearray(path.read_bytes())
    data[4096:8192] = b"\xa5" * 4096
    path.write_bytes(bytes(data))


def _newer(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {database.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        pytest.param(_damage, "damaged", id="damaged"),
        pytest.param(_newer, "newer than this linkbroker knows", id="newer schema"),
        pytest.param(
            lambda path: path.write_text("not a database", "utf-8"),
            "cannot be read as a SQLite database",
            id="not sqlite",
        ),
    ],
)
def test_restore_refuses_a_bad_copy_and_changes_nothing(
    store: LinkStore,
    cli: Invoke,
    settings: Settings,
    tmp_path: Path,
    spoil: Any,
    message: str,
) -> None:
    for number in range(200):  # enough rows to fill more than two pages
        store.create(f"https://example.com/{number}", f"s{number}")
    copy = tmp_path / "backup.db"
    assert cli("backup", str(copy)).exit_code == 0
    spoil(copy)
    store.create("https://example.com/after", "after")

    result = cli("restore", str(copy), "--yes")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert store.count() == 201
    assert not list(settings.db_path.parent.glob("links.db.before-restore-*"))
    assert not list(settings.db_path.parent.glob(".restore-*"))


def test_an_older_schema_is_brought_up_to_date(
    store: LinkStore, cli: Invoke, tmp_path: Path
) -> None:
    edge = tmp_path / "edge.db"
    conn = sqlite3.connect(edge)
    conn.execute(
        "CREATE TABLE links (slug TEXT PRIMARY KEY, destination_url TEXT NOT NULL, "
        "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, clicks INTEGER DEFAULT 0)"
    )
    conn.execute("INSERT INTO links VALUES ('edge', 'https://example.com/e', NULL, 9)")
    conn.commit()
    conn.close()

    result = cli("restore", str(edge), "--yes")

    assert result.exit_code == 0, result.output
    assert store.get("edge").clicks == 9
    assert query(edge, "PRAGMA user_version") == [(0,)]  # the source is untouched


def _location(url: str) -> str | None:
    response = httpx.get(url, headers=BROWSER)
    return response.headers.get("location") if response.status_code == 302 else None


def test_a_running_server_serves_the_restored_state(
    settings: Settings, store: LinkStore, cli: Invoke, tmp_path: Path
) -> None:
    store.create("https://example.com/before", "kept")
    copy = tmp_path / "backup.db"
    assert cli("backup", str(copy)).exit_code == 0
    store.edit("kept", Edit(destination="https://example.com/changed"))
    store.create("https://example.com/extra", "extra")

    with live_server(settings, "--workers", "2") as server:
        # Both links are now held by the workers' own memory and the shared cache.
        for _ in range(10):
            assert _location(f"{server.url}/kept") == "https://example.com/changed"
            assert _location(f"{server.url}/extra") == "https://example.com/extra"

        assert cli("restore", str(copy), "--yes").exit_code == 0
        restored = time.monotonic()

        def follows() -> bool:
            answers = [_location(f"{server.url}/{slug}") for slug in ("kept", "extra")]
            return answers == ["https://example.com/before", None]

        _wait_for(follows, timeout=5)
        assert time.monotonic() - restored <= CONSISTENCY_BOUND
        for _ in range(20):  # every worker, not only the one that answered first
            assert follows()
        assert server.stop() == 0

    assert "database is locked" not in "".join(server.log)
