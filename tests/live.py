"""A real `linkbroker serve` on an ephemeral port, waited on rather than slept on."""

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from linkbroker.settings import Settings

BROWSER = {"user-agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1"}
# The promise made in the README: a change is served everywhere within this.
CONSISTENCY_BOUND = 1.0
READY = re.compile(r"serving (http://[\d.]+:\d+) with")
START_TIMEOUT = 30.0


@dataclass
class LiveServer:
    """A running server process and what it printed."""

    process: subprocess.Popen[str]
    url: str = ""
    log: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig`, wait for the process to end and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    """Send one request on a fresh connection and return the status.

    A fresh connection each time lets the kernel spread requests over the workers;
    http.client keeps that cheap, where a new httpx client builds a TLS context.
    """
    parts = httpx.URL(url)
    conn = http.client.HTTPConnection(parts.host, parts.port, timeout=30)
    try:
        conn.request(method, parts.raw_path.decode(), headers=headers or {})
        return conn.getresponse().status
    finally:
        conn.close()


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def server_workers(server: int) -> list[int]:
    """Return a server's worker processes: not its click writers nor helpers."""
    return [
        pid
        for pid in _children(server)
        if "linkbroker.clickwriter" not in _cmdline(pid)
        and "resource_tracker" not in _cmdline(pid)
    ]


def click_writers(server: int) -> list[int]:
    """Return the click writer processes under a server's process."""
    workers = [server, *_children(server)]
    return [
        pid
        for worker in workers
        for pid in _children(worker)
        if "linkbroker.clickwriter" in _cmdline(pid)
    ]


def running(pid: int) -> bool:
    """Return whether `pid` is a process that has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Return once `condition` holds; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def _read_log(server: LiveServer, ready: threading.Event) -> None:
    assert server.process.stdout is not None
    for line in server.process.stdout:
        server.log.append(line)
        found = READY.search(line)
        if found and not server.url:
            server.url = found.group(1)
            ready.set()
    ready.set()


def _wait_healthy(url: str, deadline: float) -> None:
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"{url} never became healthy")


@contextmanager
def live_server(settings: Settings, *args: str) -> Iterator[LiveServer]:
    """Start `linkbroker serve --port 0 ARGS` and stop it, however the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "linkbroker", "serve", "--port", "0", *args],
        env={**os.environ, **settings.environ()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, so that cleanup reaches the workers
    )
    server = LiveServer(process)
    ready = threading.Event()
    reader = threading.Thread(target=_read_log, args=(server, ready), daemon=True)
    reader.start()
    try:
        ready.wait(START_TIMEOUT)
        if not server.url:
            raise RuntimeError("server did not start:\n" + "".join(server.log))
        _wait_healthy(server.url, time.monotonic() + START_TIMEOUT)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        reader.join(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


class Load:
    """Requests in a loop from several threads, each noting when it started."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        deadline = time.monotonic() + 30  # bounded, whatever happens to the test
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            status = fetch(self.url, headers=BROWSER)
            self.seen.append((started, status))

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
