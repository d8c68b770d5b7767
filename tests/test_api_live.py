"""The API on a real server with two workers: tokens, races and limits across them."""

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from live import live_server

from linkbroker.settings import Settings
from linkbroker.tokens import TokenStore


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.load(
        db_path=tmp_path / "links.db", cache_dir=tmp_path / "cache", environ=env
    )


def _token(settings: Settings, name: str = "live") -> str:
    store = TokenStore(settings.db_path)
    try:
        return store.create(name)
    finally:
        store.close()


def _request(url: str, method: str, path: str, token: str, body: object = None) -> int:
    """One request on a fresh connection, so that the kernel picks the worker."""
    parts = httpx.URL(url)
    conn = http.client.HTTPConnection(parts.host, parts.port, timeout=30)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    try:
        conn.request(
            method,
            path,
            body=None if body is None else json.dumps(body),
            headers=headers,
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _in_parallel(count: int, call: Callable[[int], int]) -> list[int]:
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def run(n: int) -> None:
        start.wait()
        status = call(n)
        with lock:
            results.append(status)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_token_revoked_by_the_cli_is_refused_by_every_worker(tmp_path: Path) -> None:
    settings = _settings(tmp_path, LINKBROKER_RATE_LIMIT="0")
    token = _token(settings)
    with live_server(settings, "--workers", "2") as server:
        before = [_request(server.url, "GET", "/api/links", token) for _ in range(20)]
        assert before == [200] * 20

        subprocess.run(
            [sys.executable, "-m", "linkbroker", "token", "revoke", "live"],
            env={**os.environ, **settings.environ()},
            check=True,
            capture_output=True,
        )
        after = [_request(server.url, "GET", "/api/links", token) for _ in range(20)]
        assert after == [401] * 20
        assert server.stop() == 0


def test_one_slug_raced_by_100_clients_is_created_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path, LINKBROKER_RATE_LIMIT="0")
    token = _token(settings)
    with live_server(settings, "--workers", "2") as server:
        statuses = _in_parallel(
            100,
            lambda n: _request(
                server.url,
                "POST",
                "/api/shorten",
                token,
                {"slug": "prize", "destination": f"https://racer{n}.example/"},
            ),
        )
        assert server.stop() == 0
    assert sorted(statuses) == [201] + [409] * 99


def test_rate_limits_hold_across_workers(tmp_path: Path) -> None:
    settings = _settings(tmp_path, LINKBROKER_RATE_LIMIT="6", LINKBROKER_RATE_BURST="5")
    token = _token(settings)
    with live_server(settings, "--workers", "2") as server:
        statuses = [
            _request(
                server.url,
                "POST",
                "/api/shorten",
                token,
                {"destination": "https://e.example/"},
            )
            for _ in range(12)
        ]
        assert server.stop() == 0
    # Five in a burst; the bucket refills one write every ten seconds, so the
    # twelve requests (well under that) can win at most one more.
    assert statuses.count(201) in {5, 6}
    assert statuses.count(429) == 12 - statuses.count(201)
