#!/usr/bin/env python3
"""Load benchmark: `linkbroker serve` against a bare ASGI app, both under uvicorn.

For one and two workers it starts each server on a free port, drives it with wrk on
127.0.0.1 (1 thread, 32 connections, then 1 connection for latency), stops it with
SIGTERM, and prints requests per second, p50, p99, peak resident memory per worker
and per click writer, and the ratio. For linkbroker it then checks that every click
wrk completed was recorded. A last run measures the memory of a worker and its click
writer with 1,000,000 links: the peak resident set of each, and the peak of the two
together, counted as proportional set sizes (Pss, a page shared by both counted
once), sampled while the load runs; the target counts the two together.

With two workers the bare app is served as linkbroker is, each worker on a socket
of its own (bare_serve.py): under uvicorn's one shared socket, wrk's connections
land on the workers by chance, and the bare figure swings by a third between runs.

Run by hand (needs wrk): python bench/serve_load.py [--duration 10] [--quick]
"""

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
# uvicorn says where it runs; linkbroker with several workers says it once, itself.
READY = re.compile(r"(?:running on|serving) http://127\.0\.0\.1:(\d+)")

# Spreads requests over slugs b1..bN, from as many visitors behind a proxy when
# BENCH_VISITORS is set, and writes wrk's own figures as JSON.
WRK_SCRIPT = """
local count = tonumber(os.getenv("BENCH_SLUGS"))
local visitors = os.getenv("BENCH_VISITORS") == "1"
local counter = 0
request = function()
  counter = counter + 1
  local n = (counter * 7919) % count + 1
  local headers = {["User-Agent"] = os.getenv("BENCH_AGENT")}
  if visitors then
    headers["X-Forwarded-For"] = string.format(
      "10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256,
      n % 256)
  end
  return wrk.format("GET", "/b" .. n, headers)
end
done = function(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, '
    .. '"errors": %d, "non_3xx": %d}',
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    summary.errors.status))
  out:close()
end
"""


@dataclass
class Load:
    """What one wrk run measured."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Run:
    """One server under one configuration."""

    name: str
    workers: int
    busy: Load
    single: Load
    peak_rss_mib: float
    writer_rss_mib: float = 0.0
    pair_pss_mib: float = 0.0
    warm_requests: int = 0
    clicks: int | None = None


def linkbroker_serve(workers: int) -> list[str]:
    """Return the command that serves on a free port with `workers` workers."""
    return [
        sys.executable,
        "-m",
        "linkbroker",
        "serve",
        "--port",
        "0",
        "--workers",
        str(workers),
    ]


def bare_serve(workers: int) -> list[str]:
    """Return the command that serves the bare app as linkbroker would be served."""
    if workers > 1:
        # A socket of its own for each worker, as linkbroker's (see bare_serve.py).
        return [sys.executable, str(BENCH / "bare_serve.py"), "--workers", str(workers)]
    return [
        *(sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BENCH)),
        *("--port", "0", "--loop", "uvloop", "--http", "httptools"),
        # As linkbroker runs it: no access log, no Server header, and no proxy
        # headers, which linkbroker reads itself.
        *("--no-access-log", "--no-server-header", "--no-proxy-headers"),
    ]


def make_links(db_dir: Path, count: int) -> dict[str, str]:
    """Create `count` links b1..bN in a fresh database; return the environment."""
    env = {
        "LINKBROKER_DB": str(db_dir / "links.db"),
        "LINKBROKER_CACHE_DIR": str(db_dir / "cache"),
    }
    subprocess.run(
        [sys.executable, "-m", "linkbroker", "init"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    conn = sqlite3.connect(env["LINKBROKER_DB"])
    with conn:
        conn.executemany(
            "INSERT INTO links (slug, destination_url) VALUES (?, ?)",
            ((f"b{n}", f"https://example.com/page/{n}") for n in range(1, count + 1)),
        )
    conn.close()
    return env


def start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """Start a server, wait for the port it printed, and return both."""
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = READY.search(line)
        if found:
            # Keep draining the log so that the server never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            port = int(found.group(1))
            wait_ready(port)
            return process, port
    raise RuntimeError(f"{argv} did not start")


def wait_ready(port: int) -> None:
    """Wait until the server answers, so wrk measures serving and not start-up."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/b1"],
            check=False,
        )
        if result.returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never answered")


def wrk(
    port: int,
    connections: int,
    seconds: int,
    slugs: int,
    out: Path,
    visitors: bool = False,
) -> Load:
    """Drive 127.0.0.1:port with wrk and return its figures."""
    script = out.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        env={
            **os.environ,
            "BENCH_SLUGS": str(slugs),
            "BENCH_AGENT": AGENT,
            "BENCH_OUT": str(out),
            "BENCH_VISITORS": "1" if visitors else "0",
        },
        check=True,
        capture_output=True,
    )
    data = json.loads(out.read_text())
    return Load(
        requests=data["requests"],
        rps=data["requests"] / data["seconds"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"] + data["non_3xx"],
    )


WRITER = "linkbroker.clickwriter"


def children(parent: int) -> list[int]:
    """Return the processes whose parent is `parent`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def worker_pids(parent: int) -> list[int]:
    """Return the server's worker processes: the parent itself when it has none."""
    workers = [
        pid
        for pid in children(parent)
        if not any(name in _cmdline(Path(f"/proc/{pid}")) for name in _NOT_WORKERS)
    ]
    return workers or [parent]


# A multiprocessing helper, and the click writer each linkbroker worker starts.
_NOT_WORKERS = ("resource_tracker", WRITER)


def writer_pids(workers: list[int]) -> list[int]:
    """Return the click writer processes of `workers`."""
    return [
        pid
        for worker in workers
        for pid in children(worker)
        if WRITER in _cmdline(Path(f"/proc/{pid}"))
    ]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text()
    except OSError:
        return ""


class PairSampler(threading.Thread):
    """Samples, while the load runs, the largest Pss of a worker with its writers."""

    def __init__(self, server: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.server, self.every = server, every
        self.peak_mib = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            for worker in worker_pids(self.server):
                pair = [worker, *writer_pids([worker])]
                self.peak_mib = max(self.peak_mib, sum(map(pss_mib, pair)))

    def stop(self) -> float:
        """Stop sampling and return the peak, in MiB."""
        self._done.set()
        self.join()
        return self.peak_mib


def pss_mib(pid: int) -> float:
    """Return the proportional set size of `pid` now, in MiB, or 0 if it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else 0.0


def cpu_times(pid: int) -> tuple[float, float]:
    """Return the user and system seconds `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def peak_rss_mib(pids: list[int]) -> float:
    """Return the largest peak resident set (VmHWM) among `pids`, in MiB, or 0."""
    peaks = [0.0]
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        if found:
            peaks.append(int(found.group(1)) / 1024)
    return max(peaks)


def stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM the server and return its exit status."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def recorded_clicks(env: dict[str, str]) -> int:
    """Return every click the database holds, human and bot."""
    conn = sqlite3.connect(env["LINKBROKER_DB"])
    try:
        return int(conn.execute("SELECT count(*) FROM clicks").fetchone()[0])
    finally:
        conn.close()


def measure(
    name: str,
    argv: list[str],
    env: dict[str, str],
    workers: int,
    slugs: int,
    seconds: int,
    tmp: Path,
) -> Run:
    """Start a server, load it twice, stop it, and return what was measured."""
    process, port = start(argv, env)
    sampler = PairSampler(process.pid)
    # A server that trusts the proxy gets a visitor per slug, as from the internet.
    visitors = "LINKBROKER_TRUSTED_PROXIES" in env
    try:
        # A short warm-up first: the figures are for a server in its steady state,
        # its caches filled, for both servers alike.
        warm = wrk(port, 32, 2, slugs, tmp / f"{name}-{workers}-warm.json", visitors)
        sampler.start()
        busy = wrk(
            port, 32, seconds, slugs, tmp / f"{name}-{workers}-busy.json", visitors
        )
        pair_pss = sampler.stop()
        single = wrk(
            port, 1, max(2, seconds // 2), slugs, tmp / f"{name}-{workers}-single.json"
        )
        pids = worker_pids(process.pid)
        rss = peak_rss_mib(pids)
        writer_rss = peak_rss_mib(writer_pids(pids))
    finally:
        status = stop(process)
    # Plain uvicorn with one worker re-raises SIGTERM and ends by it (-15); linkbroker
    # promises status 0.
    if status != 0 and not (name == "bare" and status == -signal.SIGTERM):
        raise RuntimeError(f"{name} exited with {status} on SIGTERM")
    # wait_ready's one request is a click too.
    return Run(
        name, workers, busy, single, rss, writer_rss, pair_pss, warm.requests + 1
    )


def print_pair(bare: Run, lb: Run, quiet: bool = False) -> bool:
    """Print both runs side by side and return whether linkbroker met its targets."""
    ratio = lb.busy.rps / bare.busy.rps
    completed = lb.busy.requests + lb.single.requests + lb.warm_requests
    # wrk stops with at most one request in flight per connection: the server may
    # have answered (and counted) those, but wrk does not count them as completed.
    clicks_ok = lb.clicks is not None and completed <= lb.clicks <= completed + 3 * 33
    if quiet:
        return clicks_ok and not lb.busy.errors
    print(
        f"\n{lb.workers} worker(s), 32 connections (1 connection for 'single p50/p99')"
    )
    print(
        f"{'':12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'single p50':>12}"
        f"{'single p99':>12}{'peak RSS':>11}{'writer':>11}"
    )
    for run in (bare, lb):
        print(
            f"{run.name:12}{run.busy.rps:>10,.0f}{run.busy.p50_ms:>9.2f}"
            f"{run.busy.p99_ms:>9.2f}{run.single.p50_ms:>12.3f}"
            f"{run.single.p99_ms:>12.3f}{run.peak_rss_mib:>8.1f} MiB"
            f"{run.writer_rss_mib:>8.1f} MiB"
        )
    completed = lb.busy.requests + lb.single.requests + lb.warm_requests
    print(
        f"ratio linkbroker/bare: {ratio:.2f} (target >= 0.70); "
        f"p99 {lb.busy.p99_ms:.2f} ms (target <= 5)"
    )
    # wrk stops with at most one request in flight per connection: the server may
    # have answered (and counted) those, but wrk does not count them as completed.
    print(
        f"clicks recorded {lb.clicks:,}; wrk completed {completed:,} "
        f"(+ at most 33 in flight at each of wrk's 3 stops); errors {lb.busy.errors}"
    )
    return ratio >= 0.70 and lb.busy.p99_ms <= 5 and clicks_ok and not lb.busy.errors


def compare(workers: int, args: argparse.Namespace, tmp: Path) -> bool:
    """Alternate bare and linkbroker runs, then print the median of each."""
    bares, lbs = [], []
    for round_ in range(args.rounds):
        bares.append(
            measure(
                "bare",
                bare_serve(workers),
                {},
                workers,
                args.links,
                args.duration,
                tmp,
            )
        )
        env = make_links(tmp / f"lb{workers}-{round_}", args.links)
        lb = measure(
            "linkbroker",
            linkbroker_serve(workers),
            env,
            workers,
            args.links,
            args.duration,
            tmp,
        )
        lb.clicks = recorded_clicks(env)
        lbs.append(lb)
    pairs = sorted(
        zip(bares, lbs, strict=True), key=lambda p: p[1].busy.rps / p[0].busy.rps
    )
    ok = all(print_pair(bare, lb, quiet=True) for bare, lb in pairs)
    ratios = ", ".join(f"{lb.busy.rps / bare.busy.rps:.2f}" for bare, lb in pairs)
    print(f"\n{workers} worker(s): ratio in each round, sorted: {ratios}")
    rounds = ", ".join(
        f"{lb.busy.p50_ms:.2f}/{lb.busy.p99_ms:.2f}"
        for lb in sorted(lbs, key=lambda run: run.busy.p99_ms)
    )
    print(f"linkbroker p50/p99 ms in each round, sorted by p99: {rounds}; the median:")
    return print_pair(*pairs[len(pairs) // 2]) and ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument(
        "--million",
        type=int,
        default=1_000_000,
        help="links in the memory run (0 skips it)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker counts to compare",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="skip the comparison and run only the memory run",
    )
    args = parser.parse_args()

    ok = True
    with tempfile.TemporaryDirectory(prefix="linkbroker-bench-") as folder:
        tmp = Path(folder)
        for workers in () if args.memory_only else args.workers:
            ok = compare(workers, args, tmp) and ok

        if args.million:
            env = make_links(tmp / "million", args.million)
            env["LINKBROKER_TRUSTED_PROXIES"] = "127.0.0.1"
            big = measure(
                "linkbroker",
                linkbroker_serve(1),
                env,
                1,
                args.million,
                args.duration,
                tmp,
            )
            print(
                f"\n{args.million:,} links, requests spread over all of them, "
                "each from a visitor of its own behind a trusted proxy: "
                f"{big.busy.rps:,.0f} req/s, p99 {big.busy.p99_ms:.2f} ms\n"
                f"peak RSS: worker {big.peak_rss_mib:.1f} MiB, its click writer "
                f"{big.writer_rss_mib:.1f} MiB (each counting every page it shares)\n"
                f"peak Pss of the worker and its writer together: "
                f"{big.pair_pss_mib:.1f} MiB (target <= 60)"
            )
            ok = ok and big.peak_rss_mib <= 60 and big.pair_pss_mib <= 60

    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
