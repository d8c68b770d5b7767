"""Click limits, expiry and refused reverts on a real server."""

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from live import BROWSER, CONSISTENCY_BOUND, fetch, live_server

from linkbroker.model import TIME_FORMAT, Edit, Terms
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.tokens import TokenStore


def _one(settings: Settings, sql: str) -> Any:
    conn = sqlite3.connect(settings.db_path)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def test_a_click_limit_is_exact_across_two_workers(settings: Settings) -> None:
    limit, threads, per_thread = 40, 4, 25
    with LinkStore(settings) as store:
        store.create("https://example.com/", "few", terms=Terms(max_clicks=limit))

    statuses: list[int] = []

    def click(url: str) -> None:
        # A fresh connection each time: the kernel spreads them over both workers.
        for _ in range(per_thread):
            statuses.append(fetch(url, headers=BROWSER))

    with live_server(settings, "--workers", "2") as server:
        # Previews and HEAD first: they must not use up any of the limit.
        fetch(f"{server.url}/few", headers={"user-agent": "WhatsApp/2.23"})
        fetch(f"{server.url}/few", method="HEAD", headers=BROWSER)
        senders = [
            threading.Thread(target=click, args=(f"{server.url}/few",))
            for _ in range(threads)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        assert server.stop() == 0

    assert statuses.count(302) == limit
    assert statuses.count(410) == threads * per_thread - limit
    assert _one(settings, "SELECT limit_used, clicks FROM links") == (limit, limit)
    assert "Traceback" not in "".join(server.log)


def test_a_link_expiring_while_the_server_runs(settings: Settings) -> None:
    # Whole seconds are stored: expire at the start of a second 2 to 3 s away.
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(microsecond=0)
    with LinkStore(settings) as store:
        terms = Terms(expires_at=expires.strftime(TIME_FORMAT))
        store.create("https://example.com/", "soon", terms=terms)

    seen: list[tuple[float, float, int]] = []
    with live_server(settings) as server:
        deadline = time.time() + 15
        while time.time() < deadline:
            started = time.time()
            status = fetch(f"{server.url}/soon", headers=BROWSER)
            seen.append((started, time.time(), status))
            if status == 410:
                break

        # Re-armed, it serves again within the bound, with its clicks intact.
        with LinkStore(settings) as store:
            store.edit("soon", Edit(expires_at=None))
        rearmed = time.monotonic()
        while fetch(f"{server.url}/soon", headers=BROWSER) != 302:
            assert time.monotonic() - rearmed < CONSISTENCY_BOUND
        assert server.stop() == 0

    at = expires.timestamp()
    assert seen[0][2] == 302
    assert seen[-1][2] == 410, "the link never expired"
    assert all(status == 302 for _, ended, status in seen if ended < at)
    assert all(status == 410 for started, _, status in seen if started >= at)
    redirects = sum(status == 302 for *_, status in seen) + 1
    assert _one(settings, "SELECT clicks FROM links")[0] == redirects


def test_a_revert_the_blocklist_now_refuses_changes_nothing_served(
    reverted_into_blocklist: Settings,
) -> None:
    settings = reverted_into_blocklist
    tokens = TokenStore(settings.db_path)
    token = tokens.create("ops")
    tokens.close()

    with live_server(settings) as server:
        by_cli = subprocess.run(
            [sys.executable, "-m", "linkbroker", "revert", "r"],
            check=False,
            env={**os.environ, **settings.environ()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        by_api = httpx.post(
            f"{server.url}/api/links/r/revert",
            headers={"authorization": f"Bearer {token}"},
        )
        served = httpx.get(f"{server.url}/r", headers=BROWSER)
        assert server.stop() == 0

    assert by_cli.returncode == 1
    assert by_cli.stderr.startswith("Error: ") and "spam.example" in by_cli.stderr
    assert "Traceback" not in by_cli.stderr
    assert by_api.status_code == 422
    assert by_api.json()["error"]["field"] == "destination"
    assert "spam.example" in by_api.json()["error"]["message"]
    assert served.status_code == 302
    assert served.headers["location"] == "https://example.com/safe"
    with LinkStore(settings) as store:
        assert all(change.reverted_at is None for change in store.history("r"))
