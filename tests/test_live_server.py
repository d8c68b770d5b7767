"""A real `linkbroker serve` under uvicorn: signals, workers, clicks, consistency."""

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import scalar, settings_in
from live import (
    BROWSER,
    CONSISTENCY_BOUND,
    Load,
    click_writers,
    fetch,
    live_server,
    running,
    wait_until,
)

from linkbroker.settings import Settings
from linkbroker.store import LinkStore


@pytest.fixture
def promo(settings: Settings) -> str:
    with LinkStore(settings) as store:
        return store.create("https://example.com/promo", "promo").slug


def test_one_worker_serves_and_exits_0_on_sigterm(
    settings: Settings, promo: str
) -> None:
    with live_server(settings) as server:
        response = httpx.get(f"{server.url}/promo", headers=BROWSER)
        assert response.status_code == 302
        assert response.headers["location"] == "https://example.com/promo"
        assert httpx.head(f"{server.url}/promo").status_code == 302
        assert httpx.get(f"{server.url}/missing").status_code == 404
        assert server.stop(signal.SIGTERM) == 0

    log = "".join(server.log)
    assert str(settings.db_path) in log
    assert str(settings.cache_dir) in log
    assert "with 1 worker" in log
    assert "GET /promo" not in log  # no access log unless asked
    assert scalar(settings.db_path, "SELECT count(*) FROM clicks") == 2


def test_sigint_also_stops_gracefully(settings: Settings, promo: str) -> None:
    with live_server(settings) as server:
        httpx.get(f"{server.url}/promo", headers=BROWSER)
        assert server.stop(signal.SIGINT) == 0
    assert scalar(settings.db_path, "SELECT clicks FROM links") == 1


def test_a_hangup_to_the_group_stops_gracefully(settings: Settings, promo: str) -> None:
    with live_server(settings) as server:
        httpx.get(f"{server.url}/promo", headers=BROWSER)
        # A closed terminal hangs up the server and its click writer together.
        os.killpg(server.process.pid, signal.SIGHUP)
        assert server.process.wait(timeout=30) == 0
    assert scalar(settings.db_path, "SELECT clicks FROM links") == 1
    assert "lost" not in "".join(server.log)


def test_access_log_on_request(settings: Settings, promo: str) -> None:
    with live_server(settings, "--access-log") as server:
        httpx.get(f"{server.url}/promo")
        assert server.stop() == 0
    assert any("GET /promo" in line for line in server.log)


@pytest.mark.parametrize(("trusted", "visitors"), [("", 1), ("127.0.0.1", 2)])
def test_forwarded_for_counts_only_from_the_proxies_the_settings_trust(
    tmp_path: Any, trusted: str, visitors: int
) -> None:
    # A real uvicorn, which left to itself would take X-Forwarded-For from any
    # local peer before linkbroker ever saw the request.
    settings = settings_in(tmp_path, trusted_proxies=trusted)
    with LinkStore(settings) as store:
        store.create("https://example.com/promo", "promo")
    with live_server(settings) as server:
        for forwarded in ("198.51.100.1", "198.51.100.2"):
            headers = {**BROWSER, "X-Forwarded-For": forwarded}
            assert fetch(f"{server.url}/promo", headers=headers) == 302
        assert server.stop() == 0
    assert (
        scalar(settings.db_path, "SELECT count(DISTINCT visitor) FROM clicks")
        == visitors
    )


def _hit(url: str, count: int, statuses: list[int]) -> None:
    # A fresh connection per request, so the kernel spreads them over the workers.
    for _ in range(count):
        statuses.append(fetch(url, headers=BROWSER))


def test_every_click_is_written_by_two_workers_after_sigterm(
    settings: Settings, promo: str
) -> None:
    threads, per_thread = 4, 150
    statuses: list[int] = []
    with live_server(settings, "--workers", "2") as server:
        wait_until(lambda: len(click_writers(server.process.pid)) == 2, "writers")
        writers = click_writers(server.process.pid)
        senders = [
            threading.Thread(
                target=_hit, args=(f"{server.url}/promo", per_thread, statuses)
            )
            for _ in range(threads)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        assert server.stop(signal.SIGTERM) == 0

    assert statuses == [302] * threads * per_thread
    assert (
        scalar(settings.db_path, "SELECT count(*) FROM clicks") == threads * per_thread
    )
    assert scalar(settings.db_path, "SELECT clicks FROM links") == threads * per_thread
    assert (
        scalar(settings.db_path, "SELECT sum(human) FROM daily_clicks")
        == threads * per_thread
    )
    assert "database is locked" not in "".join(server.log)
    assert not any(running(pid) for pid in writers)


def test_a_killed_click_writer_is_replaced_and_no_click_is_lost(
    settings: Settings, promo: str
) -> None:
    with live_server(settings) as server:
        url = f"{server.url}/promo"
        statuses = [fetch(url, headers=BROWSER) for _ in range(30)]
        [first] = click_writers(server.process.pid)
        os.kill(first, signal.SIGKILL)
        wait_until(
            lambda: click_writers(server.process.pid) not in ([], [first]),
            "no new click writer",
        )
        statuses += [fetch(url, headers=BROWSER) for _ in range(30)]
        assert server.stop(signal.SIGTERM) == 0

    assert statuses == [302] * 60
    assert scalar(settings.db_path, "SELECT count(*) FROM clicks") == 60
    assert f"the click writer (pid {first}) exited with status -9" in "".join(
        server.log
    )


@pytest.mark.parametrize("resumed", [True, False])
def test_redirects_wait_for_a_writer_far_behind_and_lose_no_click(
    tmp_path: Any, resumed: bool
) -> None:
    # Small batches, so that the bound is a few hundred clicks: 4 batches of 10
    # and one hand-over of 256.
    settings = settings_in(tmp_path, flush_batch="10")
    with LinkStore(settings) as store:
        store.create("https://example.com/promo", "promo")
    sent = 0
    with live_server(settings) as server:
        [writer] = click_writers(server.process.pid)
        os.kill(writer, signal.SIGSTOP)  # a writer that gets no CPU at all
        client = httpx.Client(base_url=server.url, timeout=0.5)
        with client, pytest.raises(httpx.ReadTimeout):
            while sent < 2000:
                sent += 1
                assert client.get("/promo", headers=BROWSER).status_code == 302
        assert sent >= 4 * 10 + 256

        # Resumed, the writer catches up; left stopped, it confirms nothing for
        # STALLED_AFTER seconds, and redirects go on without it.
        if resumed:
            os.kill(writer, signal.SIGCONT)
        assert fetch(f"{server.url}/promo", headers=BROWSER) == 302
        os.kill(writer, signal.SIGCONT)
        assert server.stop() == 0
    # The request that waited was recorded before it waited.
    assert scalar(settings.db_path, "SELECT count(*) FROM clicks") == sent + 1
    log = "".join(server.log)
    assert "redirects wait for it" in log
    assert ("has confirmed nothing" in log) is not resumed


def test_redirects_go_on_while_the_writer_cannot_write(tmp_path: Any) -> None:
    settings = settings_in(tmp_path, flush_batch="10")
    with LinkStore(settings) as store:
        store.create("https://example.com/promo", "promo")
        # Every insert of a click fails, as on a full disk, until the trigger goes.
        store.conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON clicks "
            "BEGIN SELECT RAISE(ABORT, 'no room'); END"
        )
    sent = 3 * (4 * 10 + 256)
    with live_server(settings) as server:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(sent):
                assert client.get("/promo", headers=BROWSER).status_code == 302
        with LinkStore(settings) as store:
            store.conn.execute("DROP TRIGGER refuse")
        assert server.stop() == 0
    assert scalar(settings.db_path, "SELECT count(*) FROM clicks") == sent


def test_a_click_writer_stops_when_its_worker_is_killed(
    settings: Settings, promo: str
) -> None:
    with live_server(settings) as server:
        assert fetch(f"{server.url}/promo", headers=BROWSER) == 302
        [writer] = click_writers(server.process.pid)
        server.process.kill()  # the worker alone, not its process group
        server.process.wait(timeout=30)
        wait_until(lambda: not running(writer), "the writer outlived its worker")


@pytest.mark.parametrize(
    ("command", "after"),
    [
        (["delete", "promo", "--yes"], 404),
        (["disable", "promo"], 410),
        (["edit", "promo", "--status", "307"], 307),
    ],
    ids=["delete", "disable", "edit"],
)
def test_a_change_is_served_by_every_worker_within_the_bound_under_load(
    settings: Settings, promo: str, command: list[str], after: int
) -> None:
    with (
        live_server(settings, "--workers", "2") as server,
        Load(f"{server.url}/promo") as load,
    ):
        while sum(status == 302 for _, status in load.seen) < 50:
            time.sleep(0.01)

        changed = subprocess.run(
            [sys.executable, "-m", "linkbroker", *command],
            env={**settings.environ()},
            capture_output=True,
            check=True,
        )
        returned = time.monotonic()
        assert changed.returncode == 0
        while time.monotonic() < returned + CONSISTENCY_BOUND + 0.5:
            time.sleep(0.05)

    stale = [
        start - returned
        for start, status in load.seen
        if start > returned and status == 302
    ]
    after_bound = [
        status for start, status in load.seen if start > returned + CONSISTENCY_BOUND
    ]
    assert after_bound, "the load stopped too early to show anything"
    assert max(stale, default=0.0) < CONSISTENCY_BOUND
    assert set(after_bound) == {after}


def test_a_worker_imports_only_what_serving_needs() -> None:
    probe = (
        "import sys, linkbroker.serve, linkbroker.server; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'typer', 'rich', 'pydantic', 'sqlite_utils'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
