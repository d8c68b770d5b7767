#!/usr/bin/env python3
"""Measure the resident memory of a process that resolves a million links.

The requirement: with 1,000,000 links, a process that resolves them stays under
60 MiB resident. This script builds a temporary database of N links, then starts a
fresh child process (this script again, so that the parent's memory does not count)
which opens a LinkStore and resolves every slug once, each a cache miss that fills
the diskcache, then resolves a random sample of them again, each a cache hit. The
child reads its peak resident set (VmHWM) and its current one (VmRSS) from
/proc/self/status at the end, so the script needs Linux.

Run it from the repository root; the full run takes a few minutes:

    /work/venv/bin/python bench/resolve_memory.py                  # 1,000,000 links
    /work/venv/bin/python bench/resolve_memory.py --links 100000   # a quick look
    /work/venv/bin/python bench/resolve_memory.py --check          # exit 1 on FAIL
"""

import argparse
import dataclasses
import json
import random
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from linkbroker.settings import Settings
from linkbroker.store import LinkStore

LIMIT_MIB = 60.0
PROGRESS_EVERY = 100_000
# Checked against the cache directly after the hit pass, to show it really hit.
CACHE_CHECKS = 1000


@dataclasses.dataclass(frozen=True)
class ChildResult:
    """What the child measured, passed to the parent as one line of JSON."""

    links: int
    sample: int
    rss_opened_kib: int
    miss_seconds: float
    hit_seconds: float
    unresolved: int
    cached_of_checked: int
    peak_kib: int
    rss_end_kib: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line; --child is how the script starts its own child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=1_000_000, help="links to store")
    parser.add_argument(
        "--sample", type=int, default=100_000, help="resolves in the cache-hit pass"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the hit sample")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the peak is over the limit"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def slug_for(number: int) -> str:
    """Return the slug of link `number`: parent and child derive it, none is sent."""
    return f"m{number:07d}"


def destination_for(number: int) -> str:
    """Return the destination of link `number`."""
    return f"https://example.com/articles/{number}?ref=bench"


def settings_for(folder: Path) -> Settings:
    """Return settings for the database and cache in `folder`, ignoring LINKBROKER_*."""
    return Settings.load(
        db_path=folder / "links.db", cache_dir=folder / "cache", environ={}
    )


def memory_kib(field: str) -> int:
    """Return a memory figure of this process from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def build_database(folder: Path, links: int) -> None:
    """Create the database in `folder` with `links` links, in one transaction."""
    # The store creates the schema, so the benchmark runs on the real one.
    with LinkStore(settings_for(folder)) as store:
        assert store.conn is not None

    rows = ((slug_for(n), destination_for(n)) for n in range(links))
    conn = sqlite3.connect(folder / "links.db", isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO links (slug, destination_url) VALUES (?, ?)", rows
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def run_child(folder: Path, args: argparse.Namespace) -> ChildResult:
    """Run the resolving pass in a fresh interpreter and return what it measured."""
    argv = [sys.executable, __file__, "--child", str(folder)]
    argv += ["--links", str(args.links), "--sample", str(args.sample)]
    argv += ["--seed", str(args.seed)]

    # The child's progress goes straight to this stderr; its stdout is the result.
    done = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
    return ChildResult(**json.loads(done.stdout))


def child_main(folder: Path, args: argparse.Namespace) -> int:
    """Resolve every link, then a sample again; print the figures as JSON."""
    with LinkStore(settings_for(folder)) as store:
        # Opened before the first reading, so that it shows what the loop adds.
        assert store.conn is not None and store.cache is not None
        rss_opened = memory_kib("VmRSS")

        start = time.perf_counter()
        unresolved = resolve_all(store, range(args.links), "miss pass")
        miss_seconds = time.perf_counter() - start

        start = time.perf_counter()
        unresolved += resolve_all(store, sample(args), "hit pass")
        hit_seconds = time.perf_counter() - start
        cached = count_cached(store, args.links, args.seed)

    result = ChildResult(
        links=args.links,
        sample=args.sample,
        rss_opened_kib=rss_opened,
        miss_seconds=miss_seconds,
        hit_seconds=hit_seconds,
        unresolved=unresolved,
        cached_of_checked=cached,
        peak_kib=memory_kib("VmHWM"),
        rss_end_kib=memory_kib("VmRSS"),
    )
    print(json.dumps(dataclasses.asdict(result)))
    return 0


def sample(args: argparse.Namespace) -> Iterator[int]:
    """Yield link numbers drawn at random, with replacement."""
    # Drawn one at a time: a list of the sample would count in the child's memory.
    rng = random.Random(args.seed)
    for _ in range(args.sample):
        yield rng.randrange(args.links)


def resolve_all(store: LinkStore, numbers: Iterator[int] | range, label: str) -> int:
    """Resolve the slug of each number; return how many resolved to nothing."""
    unresolved = 0
    start = time.perf_counter()
    for done, number in enumerate(numbers, start=1):
        if store.resolve(slug_for(number)) is None:
            unresolved += 1
        if done % PROGRESS_EVERY == 0:
            report_progress(label, done, time.perf_counter() - start)
    return unresolved


def report_progress(label: str, done: int, seconds: float) -> None:
    """Write one line of progress on stderr."""
    print(
        f"{label}: {done:,} resolved, {seconds / done * 1e6:.1f} µs each so far, "
        f"VmRSS {memory_kib('VmRSS') / 1024:.1f} MiB",
        file=sys.stderr,
        flush=True,
    )


def count_cached(store: LinkStore, links: int, seed: int) -> int:
    """Return how many of CACHE_CHECKS random slugs the cache holds."""
    rng = random.Random(seed + 1)
    numbers = (rng.randrange(links) for _ in range(CACHE_CHECKS))
    return sum(store.cache.get(slug_for(n)) is not None for n in numbers)


def folder_mib(folder: Path) -> float:
    """Return the size of the files under `folder`, in MiB."""
    paths = folder.rglob("*") if folder.is_dir() else [folder]
    return sum(path.stat().st_size for path in paths if path.is_file()) / 2**20


def print_report(result: ChildResult, build_seconds: float, folder: Path) -> bool:
    """Print the figures; return whether the peak is within the limit."""
    peak_mib = result.peak_kib / 1024
    passed = peak_mib < LIMIT_MIB
    miss_us = result.miss_seconds / max(result.links, 1) * 1e6
    hit_us = result.hit_seconds / max(result.sample, 1) * 1e6

    print(f"reproduce:        {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"links:            {result.links:,} (database built in {build_seconds:.1f} s)"
    )
    print(f"database on disk: {folder_mib(folder / 'links.db'):.1f} MiB")
    print(f"cache on disk:    {folder_mib(folder / 'cache'):.1f} MiB")
    print(
        f"miss pass:        {result.links:,} resolves in {result.miss_seconds:.1f} s, "
        f"{miss_us:.1f} µs each"
    )
    print(
        f"hit pass:         {result.sample:,} resolves in {result.hit_seconds:.1f} s, "
        f"{hit_us:.1f} µs each"
    )
    print(f"unresolved:       {result.unresolved}")
    print(f"cache check:      {result.cached_of_checked} of {CACHE_CHECKS} cached")
    print(f"VmRSS, opened:    {result.rss_opened_kib / 1024:.1f} MiB")
    print(f"VmRSS, at end:    {result.rss_end_kib / 1024:.1f} MiB")
    print(f"VmHWM (peak):     {peak_mib:.1f} MiB")
    verdict = "PASS" if passed else "FAIL"
    print(f"limit:            {LIMIT_MIB:.0f} MiB: {verdict}")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Build the database, run the child, print the report."""
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child, args)

    with tempfile.TemporaryDirectory(prefix="linkbroker-bench-") as name:
        folder = Path(name)
        print(f"building a database of {args.links:,} links", file=sys.stderr)
        start = time.perf_counter()
        build_database(folder, args.links)
        build_seconds = time.perf_counter() - start

        result = run_child(folder, args)
        passed = print_report(result, build_seconds, folder)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    raise SystemExit(main())
