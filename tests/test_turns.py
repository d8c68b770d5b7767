"""Turns at the write lock: a click flush gets in between the chunks of an import,
and writers that take turns write one at a time."""

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from linkbroker.clickdb import ClickWriter, RawClick
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.turns import GIVE_WAY_MOST, Turns

ROWS = 100_000  # five chunks of an import
CHUNK = 20_000

HOLDER = """
import sys
from pathlib import Path
from linkbroker.turns import GIVE_WAY_MOST, Turns
with getattr(Turns(Path(sys.argv[1])), sys.argv[2])():
    print("holding", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize("held", ["waiting", "writing"])
def test_a_bulk_writer_gives_way_while_another_process_waits(
    tmp_path: Path, held: str
) -> None:
    turns = Turns(tmp_path / "links.db")
    _while_held(tmp_path / "links.db", held, turns.give_way)
    turns.close()


def test_writers_that_take_turns_write_one_at_a_time(tmp_path: Path) -> None:
    turns = Turns(tmp_path / "links.db")

    def write() -> None:
        with turns.writing():
            pass

    _while_held(tmp_path / "links.db", "writing", write)
    turns.close()


def test_a_bulk_writer_gives_way_for_a_second_at_most(tmp_path: Path) -> None:
    turns = Turns(tmp_path / "links.db")
    with _holding(tmp_path / "links.db", "waiting"):
        started = time.monotonic()
        turns.give_way()  # a writer that waits for ever holds the import back...
        waited = time.monotonic() - started
    turns.close()
    assert GIVE_WAY_MOST * 0.9 <= waited < GIVE_WAY_MOST + 2  # ...for a second


def _while_held(db: Path, held: str, call: Callable[[], None]) -> None:
    """Check that `call` blocks while another process holds `held`, and not after."""
    with _holding(db, held) as release:
        calling = threading.Thread(target=call)
        calling.start()
        calling.join(timeout=0.3)
        assert calling.is_alive(), f"went on while another process was {held}"

        release()
        calling.join(timeout=10)
        assert not calling.is_alive()


@contextmanager
def _holding(db: Path, held: str) -> Iterator[Callable[[], None]]:
    """Hold `held` in another process until released or the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), held],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "holding\n"
        stdin = holder.stdin

        def release() -> None:
            if not stdin.closed:
                stdin.write("done\n")
                stdin.close()

        try:
            yield release
        finally:
            release()


def test_an_import_waits_between_chunks_while_a_flush_waits(
    settings: Settings, tmp_path: Path
) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/clicked", "clicked")
    source = tmp_path / "links.csv"
    source.write_text(
        "".join(f"s{i:x},https://site{i % 100}.example/{i}\n" for i in range(ROWS)),
        "utf-8",
    )
    with subprocess.Popen(
        [sys.executable, "-m", "linkbroker", "import", str(source)],
        env={**os.environ, **settings.environ()},
        stdout=subprocess.DEVNULL,
    ) as importing:
        _wait_for_rows(settings.db_path, importing)
        turns = Turns(settings.db_path)
        with turns.waiting():
            # While a writer waits, the import stops at the end of its chunk...
            with pytest.raises(subprocess.TimeoutExpired):
                importing.wait(timeout=GIVE_WAY_MOST / 2)
            paused_at = _count(settings.db_path)
            # ...and a click flush takes the write lock there.
            writer = ClickWriter(settings)
            click: RawClick = ("clicked", time.time(), False, b"Mozilla", b"", b"", "")
            assert writer.write([click]) == 1
            writer.close()
        turns.close()
        assert importing.wait(timeout=120) == 0

    assert (paused_at - 1) % CHUNK == 0
    assert paused_at < ROWS + 1
    assert _count(settings.db_path) == ROWS + 1
    conn = sqlite3.connect(settings.db_path)
    assert conn.execute(
        "SELECT clicks FROM links WHERE slug = 'clicked'"
    ).fetchone() == (1,)
    conn.close()


def _wait_for_rows(db: Path, importing: subprocess.Popen[bytes]) -> None:
    """Wait until the import's first chunk is committed."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert importing.poll() is None, "the import ended before it was watched"
        if db.exists() and _count(db) > 1:
            return
        time.sleep(0.005)
    raise AssertionError("the import wrote no chunk within a minute")


def _count(db: Path) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM links").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not made yet
        return 0
    finally:
        conn.close()
