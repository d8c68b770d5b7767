#!/usr/bin/env python3
"""The click writer's CPU per click, on its own, without a server or wrk.

Under load the click writer shares two cores with the workers and wrk, and its cost
per request moves by a quarter from run to run. Fed the same frames here, it moves
by a few per cent: this is the figure to watch when changing how clicks are
written. A fresh database gets `--links` links; the frames hold clicks spread over
them as a worker sends them (256 a frame, a commit asked for every `--per-commit`
clicks), from one browser with no referrer unless `--visitors` names more; the
writer process reads them all from its stdin, as from a worker, and the time it
spent on the CPU after saying it was ready is divided by the clicks it wrote.

Run by hand: python bench/writer_speed.py [--clicks 200000] [--rounds 3]
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serve_load as load

from linkbroker import clickwriter
from linkbroker.clickdb import RawClick

AGENT = load.AGENT.encode()
FRAME = 256


def frames(clicks: int, links: int, visitors: int, per_commit: int) -> bytes:
    """Return the frames of `clicks` clicks, one after another, as a worker sends."""
    start, out = time.time(), []
    for seq, first in enumerate(range(0, clicks, FRAME), start=1):
        batch: list[RawClick] = [
            (
                f"b{random.randrange(1, links + 1)}",
                start + n / 50_000,
                False,
                AGENT,
                b"",
                b"",
                f"10.0.{n % visitors // 256}.{n % visitors % 256}",
            )
            for n in range(first, min(first + FRAME, clicks))
        ]
        commit = (first + FRAME) % per_commit < FRAME
        out.append(clickwriter.encode(seq, batch, commit))
    return b"".join(out)


def run(data: bytes, env: dict[str, str]) -> tuple[float, float, float]:
    """Feed `data` to a writer; return its user and system seconds after ready.

    And its peak resident memory in MiB, over its whole life.
    """
    writer = subprocess.Popen(
        [sys.executable, "-m", "linkbroker.clickwriter"],
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert writer.stdin is not None and writer.stdout is not None
    if writer.stdout.readline() != clickwriter.READY:
        raise RuntimeError("the click writer did not start")
    user, system = load.cpu_times(writer.pid)
    writer.stdin.write(data)
    writer.stdin.close()
    writer.stdout.read()
    _, status, usage = os.wait4(writer.pid, 0)
    if status != 0:
        raise RuntimeError(f"the click writer exited with status {status}")
    return usage.ru_utime - user, usage.ru_stime - system, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200_000)
    parser.add_argument("--links", type=int, default=1000)
    parser.add_argument("--visitors", type=int, default=1)
    parser.add_argument("--per-commit", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    data = frames(args.clicks, args.links, args.visitors, args.per_commit)
    times: list[tuple[float, float, float]] = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="linkbroker-writer-") as folder:
            env = load.make_links(Path(folder), args.links)
            user, system, peak = run(data, env)
            written = load.recorded_clicks(env)
        if written != args.clicks:
            print(f"round {round_}: {written} clicks written of {args.clicks}")
            return 1
        times.append((user, system, peak))
        print(
            f"round {round_}: {1e6 * (user + system) / args.clicks:.2f} us a click "
            f"(user {1e6 * user / args.clicks:.2f}, system "
            f"{1e6 * system / args.clicks:.2f}), peak RSS {peak:.1f} MiB"
        )
    user, system, peak = (statistics.median(part) for part in zip(*times, strict=True))
    print(
        f"median: {1e6 * (user + system) / args.clicks:.2f} us of CPU a click, "
        f"peak RSS {peak:.1f} MiB, "
        f"{args.clicks:,} clicks over {args.links:,} links from "
        f"{args.visitors:,} visitor(s), every click written"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
