"""How fast `linkbroker import` brings in a large file, end to end.

Writes a CSV of slug,destination rows (custom slugs, destinations spread over a
thousand hosts, as exports from other tools look), then times `linkbroker import`
as a subprocess into a fresh database: process start, reading, checking every row,
writing in chunks and clearing the cache. Meanwhile a thread stands in for a
server's click flush: every 50 ms it takes the database's write lock and lets it
go, and the benchmark prints how long it waited for the lock. Run by hand:

    python bench/import_speed.py [--rows 1000000] [--format plain|d1|jsonl]
"""

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from linkbroker.turns import Turns

HOSTS = 1_000


def write_plain(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("slug,destination\n")
        for i in range(rows):
            out.write(f"s{i:x},https://site{i % HOSTS}.example/posts/{i}?ref=bench\n")


def write_d1(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("PRAGMA defer_foreign_keys=TRUE;\n")
        out.write(
            "CREATE TABLE links (slug TEXT PRIMARY KEY, destination_url TEXT NOT "
            "NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, clicks INTEGER "
            "DEFAULT 0);\n"
        )
        for i in range(rows):
            out.write(
                f"INSERT INTO \"links\" VALUES('s{i:x}','https://site{i % HOSTS}"
                f".example/posts/{i}?ref=bench','2024-05-01 12:00:00',{i % 50});\n"
            )


def write_jsonl(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write('{"type":"linkbroker-export","version":1}\n')
        for i in range(rows):
            out.write(
                f'{{"type":"link","slug":"s{i:x}","destination_url":"https://site'
                f'{i % HOSTS}.example/posts/{i}?ref=bench","created_at":'
                f'"2024-05-01 12:00:00","clicks":{i % 50},"bot_clicks":0,'
                '"redirect_status":302,"expires_at":null,"max_clicks":null,'
                '"limit_used":0,"fallback_url":null,"disabled_at":null,'
                '"deleted_at":null}\n'
            )


WRITERS = {"plain": write_plain, "d1": write_d1, "jsonl": write_jsonl}
SUFFIXES = {"plain": ".csv", "d1": ".sql", "jsonl": ".jsonl"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=sorted(WRITERS), default="plain")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="linkbroker-import-") as folder:
        source = Path(folder) / f"links{SUFFIXES[args.format]}"
        WRITERS[args.format](source, args.rows)
        env = {
            **os.environ,
            "LINKBROKER_DB": str(Path(folder) / "links.db"),
            "LINKBROKER_CACHE_DIR": str(Path(folder) / "cache"),
        }
        command = [sys.executable, "-m", "linkbroker", "import", str(source)]

        load_before = os.getloadavg()[0]
        cpu_before = _children_cpu()
        flush = _Flusher(Path(env["LINKBROKER_DB"]))
        started = time.perf_counter()
        flush.start()
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        flush.stop()
        cpu = _children_cpu() - cpu_before
        load_after = os.getloadavg()[0]

        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            raise SystemExit(f"import failed with status {done.returncode}")
        conn = sqlite3.connect(env["LINKBROKER_DB"])
        stored = conn.execute("SELECT count(*) FROM links").fetchone()[0]
        conn.close()

    print(f"format {args.format}: {args.rows:,} rows, {stored:,} links stored")
    print(f"{seconds:.2f} s end to end, {args.rows / seconds:,.0f} rows/s")
    # Other work on the machine stretches the wall time; the processor time of the
    # import (both its threads) and the load around it say how much.
    print(
        f"{cpu:.2f} s of processor time; load average {load_before:.1f} before, "
        f"{load_after:.1f} after"
    )
    waits = sorted(flush.waits) or [0.0]
    print(
        f"a flush beside it waited for the write lock {len(waits)} times: median "
        f"{statistics.median(waits) * 1000:.0f} ms, at most {waits[-1] * 1000:.0f} ms"
    )


class _Flusher(threading.Thread):
    """Takes the write lock every 50 ms, as a server's click flush does: in turn."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.waits = db, list[float]()
        self.turns = Turns(db)
        self._done = threading.Event()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        conn = None
        while not self._done.wait(0.05):
            if conn is None:
                if not self.db.exists():
                    continue
                conn = sqlite3.connect(self.db, isolation_level=None, timeout=60)
            started = time.perf_counter()
            with self.turns.waiting():
                conn.execute("BEGIN IMMEDIATE")
                self.waits.append(time.perf_counter() - started)
                conn.execute("COMMIT")
        if conn is not None:
            conn.close()
        self.turns.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
