"""The click recorder and its writer process: hand-over, drain, death and restart."""

import logging
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from linkbroker.clickdb import RawClick
from linkbroker.clicks import HANDOFF, ClickRecorder
from linkbroker.errors import StorageError
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

pytestmark = pytest.mark.anyio

BROWSER = b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
REFUSE = (
    "CREATE TRIGGER refuse BEFORE INSERT ON clicks "
    "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def recorder(settings: Settings) -> AsyncIterator[ClickRecorder]:
    with LinkStore(settings) as store:
        store.create("https://example.com/", "s")
    started = ClickRecorder(settings)
    await started.start()
    yield started
    started.stop()
    await started.run()


def _click() -> RawClick:
    return ("s", time.time(), False, BROWSER, b"", b"", "192.0.2.1")


def _execute(settings: Settings, sql: str) -> int:
    conn = sqlite3.connect(settings.db_path)
    try:
        return int((conn.execute(sql).fetchone() or [0])[0])
    finally:
        conn.close()


async def _until(
    condition: Callable[[], bool], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await anyio.sleep(0.01)


async def test_a_stop_hands_everything_over_and_the_writer_exits_0(
    recorder: ClickRecorder, settings: Settings
) -> None:
    running = anyio.Event()

    async def run() -> None:
        running.set()
        await recorder.run()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        await running.wait()
        for _ in range(3 * HANDOFF + 7):
            recorder.record(_click())
        recorder.stop()

    assert recorder.pending() == 0
    assert recorder.written == 3 * HANDOFF + 7
    assert _execute(settings, "SELECT clicks FROM links") == 3 * HANDOFF + 7
    assert _execute(settings, "SELECT count(*) FROM clicks") == 3 * HANDOFF + 7


async def test_a_dead_writer_is_replaced_and_sent_what_it_had_not_written(
    recorder: ClickRecorder, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(HANDOFF + 10):  # one frame handed over, ten clicks pending
        recorder.record(_click())
    first = recorder.writer_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)

    with caplog.at_level(logging.ERROR, logger="linkbroker"):
        await _until(
            lambda: recorder.writer_pid() not in {None, first}, "no new writer"
        )
    await recorder.flush()
    await _until(lambda: recorder.pending() == 0, "clicks never confirmed")

    assert _execute(settings, "SELECT count(*) FROM clicks") == HANDOFF + 10
    assert f"the click writer (pid {first}) exited with status -9" in caplog.text


async def test_a_failed_write_is_kept_until_the_database_takes_it(
    recorder: ClickRecorder, settings: Settings
) -> None:
    _execute(settings, REFUSE)
    recorder.record(_click())
    assert await recorder.flush() == 0
    assert recorder.pending() == 1

    _execute(settings, "DROP TRIGGER refuse")
    assert await recorder.flush() == 1
    assert recorder.pending() == 0


async def test_a_stopping_worker_writes_what_its_writer_could_not(
    recorder: ClickRecorder, settings: Settings
) -> None:
    _execute(settings, REFUSE)
    for _ in range(5):
        recorder.record(_click())
    recorder.stop()
    await recorder.run()  # the writer fails at end of input and exits 1
    assert recorder.pending() == 5

    _execute(settings, "DROP TRIGGER refuse")
    assert recorder.flush_now() == 5
    assert _execute(settings, "SELECT clicks FROM links") == 5


async def test_a_writer_that_cannot_open_the_database_fails_the_start(
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    settings = Settings.load(db_path=garbage, cache_dir=tmp_path / "cache", environ={})
    with pytest.raises(StorageError, match="before it was ready"):
        await ClickRecorder(settings).start()
