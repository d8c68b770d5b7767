#!/usr/bin/env python3
"""Alternating A/B runs of `linkbroker serve`, with the CPU each request costs.

On a shared machine whose speed drifts from one hour to the next, two versions
compare fairly only in runs that alternate. Each variant is a name, optionally
followed by environment variables for the server: `old:PYTHONPATH=/tmp/old` runs
an older tree (`git archive REV linkbroker | tar -x -C /tmp/old`),
`batch:LINKBROKER_FLUSH_BATCH=5000` a setting; `bare` is the bare app, served as
serve_load.py serves it. For every run it prints requests a second and p99 under
wrk (1 thread, 32 connections), and the CPU time per request of the workers, of
their click writers and of wrk, read from /proc around the run, with the time the
workers spent runnable but waiting for a core and how often they were preempted.

Run by hand (needs wrk):
    python bench/serve_ab.py --workers 2 --rounds 3 bare new old:PYTHONPATH=/tmp/old
"""

import argparse
import resource
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import serve_load as load


@dataclass
class Sample:
    """One run of one variant."""

    rps: float
    p99_ms: float
    worker_us: float
    writer_us: float
    wrk_us: float
    waiting_ms: float  # a second, summed over the workers
    preempted: float  # the workers' involuntary context switches, per 1,000 requests
    rss_mib: float


def cpu_seconds(pid: int) -> float:
    """Return the user and system time `pid` has used."""
    return sum(load.cpu_times(pid))


def run_queue_seconds(pid: int) -> float:
    """Return the time `pid` has spent runnable, waiting for a core."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def preemptions(pid: int) -> int:
    """Return how often `pid` was switched out while it could still run."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def variant(spec: str, workers: int, folder: Path) -> tuple[list[str], dict[str, str]]:
    """Return the command and environment of a variant named by `spec`."""
    name, _, assignments = spec.partition(":")
    if name == "bare":
        return load.bare_serve(workers), {}
    env = load.make_links(folder, 1000)
    # `python -m` puts the working directory first on sys.path, ahead of
    # PYTHONPATH: run from a checkout, every variant would import the checkout's
    # linkbroker, the server and its click writers alike.
    env["PYTHONSAFEPATH"] = "1"
    for assignment in filter(None, assignments.split(",")):
        key, _, value = assignment.partition("=")
        env[key] = value
    return load.linkbroker_serve(workers), env


def sample(argv: list[str], env: dict[str, str], seconds: int, tmp: Path) -> Sample:
    """Start a server, warm it, measure one wrk run, and stop it."""
    process, port = load.start(argv, env)
    try:
        load.wrk(port, 32, 2, 1000, tmp / "warm.json")
        workers = load.worker_pids(process.pid)
        writers = load.writer_pids(workers)
        before = {pid: cpu_seconds(pid) for pid in workers + writers}
        waited = sum(map(run_queue_seconds, workers))
        preempted = sum(map(preemptions, workers))
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy = load.wrk(port, 32, seconds, 1000, tmp / "busy.json")
        after = {pid: cpu_seconds(pid) for pid in workers + writers}
        waited = sum(map(run_queue_seconds, workers)) - waited
        preempted = sum(map(preemptions, workers)) - preempted
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss = load.peak_rss_mib(workers)
    finally:
        load.stop(process)

    def per_request(pids: list[int]) -> float:
        return 1e6 * sum(after[pid] - before[pid] for pid in pids) / busy.requests

    wrk_seconds = done.ru_utime + done.ru_stime
    wrk_seconds -= children.ru_utime + children.ru_stime
    return Sample(
        busy.rps,
        busy.p99_ms,
        per_request(workers),
        per_request(writers),
        1e6 * wrk_seconds / busy.requests,
        1000 * waited / seconds,
        1000 * preempted / busy.requests,
        rss,
    )


def show(label: str, s: Sample) -> str:
    """Return one line of figures."""
    return (
        f"{label:<28}{s.rps:>9,.0f} req/s  p99 {s.p99_ms:5.2f} ms  "
        f"CPU us/request: workers {s.worker_us:5.1f}, writers {s.writer_us:4.1f}, "
        f"wrk {s.wrk_us:5.1f}  waiting {s.waiting_ms:4.0f} ms/s, "
        f"preempted {s.preempted:4.0f}/1000  "
        f"RSS {s.rss_mib:.1f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()

    samples: dict[str, list[Sample]] = {spec: [] for spec in args.variants}
    with tempfile.TemporaryDirectory(prefix="linkbroker-ab-") as folder:
        tmp = Path(folder)
        for round_ in range(args.rounds):
            for number, spec in enumerate(args.variants):
                argv, env = variant(spec, args.workers, tmp / f"{round_}-{number}")
                samples[spec].append(sample(argv, env, args.duration, tmp))
                print(show(f"round {round_} {spec}", samples[spec][-1]), flush=True)

    print("\nmedians:")
    for spec, runs in samples.items():
        medians = [
            statistics.median(getattr(run, field) for run in runs)
            for field in Sample.__dataclass_fields__
        ]
        print(show(spec, Sample(*medians)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
