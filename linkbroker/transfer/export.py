"""Writing every link, and optionally its click data, to JSON Lines or CSV.

JSON Lines is the complete format: a first line naming the format, one line per link
with every column (tombstones of deleted links included), then every link's
destination history and, with clicks, its raw click events and per-day counters.
Each line has a "type": "link", "history", "click", "day" or "source". CSV holds the
links table alone, one row a link with the same columns, for spreadsheets.

Everything is read in one read transaction, so the export is one consistent moment
of a database that a running server keeps writing to. Rows come out in the order
they were stored, so that importing an export into an empty database and exporting
again gives the same bytes.
"""

import csv
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from linkbroker.errors import InvalidImport
from linkbroker.transfer.fields import EXTRA_FIELDS, EXTRA_TABLES, LINK_FIELDS

FORMATS = ("jsonl", "csv")
# The first line of a JSON Lines export; the importer recognises files by it.
VERSION = 1
HEADER = {"type": "linkbroker-export", "version": VERSION}
# Rows between two progress reports.
REPORT_EVERY = 10_000

Progress = Callable[[int, int], None]

# Read as the store reads them: rows from the edge design may hold NULL counters or
# numeric times.
_AS_READ = {"created_at": "CAST(created_at AS TEXT)", "clicks": "coalesce(clicks, 0)"}
_ORDER = {
    "history": "id",
    "click": "id",
    "day": "slug, day",
    "source": "slug, day, kind, source",
}


@dataclass
class ExportCounts:
    """How many rows of each type an export wrote."""

    links: int = 0
    extras: dict[str, int] = field(default_factory=dict)


def check_format(fmt: str, clicks: bool) -> None:
    """Raise InvalidImport unless `fmt` can be exported, with clicks if asked."""
    if fmt not in FORMATS:
        raise InvalidImport(
            f"The export format {fmt!r} is unknown; use jsonl or csv.", fmt
        )
    if fmt == "csv" and clicks:
        raise InvalidImport(
            "CSV holds the links table alone; export click data with --format jsonl.",
            fmt,
        )


def export(
    conn: sqlite3.Connection,
    out: TextIO,
    fmt: str = "jsonl",
    *,
    clicks: bool = False,
    progress: Progress | None = None,
) -> ExportCounts:
    """Write every link to `out` in format `fmt`; raise InvalidImport for CSV clicks."""
    check_format(fmt, clicks)
    conn.execute("BEGIN")  # one snapshot for every table read below
    try:
        kinds = ["history", *(["click", "day", "source"] if clicks else [])]
        total = _count(conn, "links") + sum(_count_extra(conn, k) for k in kinds)
        report = _Reporter(total, progress)
        if fmt == "csv":
            return _write_csv(conn, out, report)
        return _write_jsonl(conn, out, kinds, report)
    finally:
        conn.execute("COMMIT")


def _write_csv(
    conn: sqlite3.Connection, out: TextIO, report: "_Reporter"
) -> ExportCounts:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LINK_FIELDS)
    counts = ExportCounts()
    for row in report.each(_links(conn)):
        writer.writerow("" if value is None else value for value in row)
        counts.links += 1
    return counts


def _write_jsonl(
    conn: sqlite3.Connection, out: TextIO, kinds: list[str], report: "_Reporter"
) -> ExportCounts:
    out.write(_line(HEADER))
    counts = ExportCounts()
    for row in report.each(_links(conn)):
        out.write(_line({"type": "link", **dict(zip(LINK_FIELDS, row, strict=True))}))
        counts.links += 1

    for kind in kinds:
        names = EXTRA_FIELDS[kind]
        written = 0
        for row in report.each(_extras(conn, kind)):
            record = dict(zip(names, row, strict=True))
            if kind == "click":
                record["is_bot"] = bool(record["is_bot"])
            out.write(_line({"type": kind, **record}))
            written += 1
        counts.extras[kind] = written
    return counts


def _line(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _links(conn: sqlite3.Connection) -> Iterator[tuple[object, ...]]:
    columns = ", ".join(_AS_READ.get(name, name) for name in LINK_FIELDS)
    return conn.execute(f"SELECT {columns} FROM links ORDER BY rowid")


def _extras(conn: sqlite3.Connection, kind: str) -> Iterator[tuple[object, ...]]:
    # Click data whose link is gone (deleted before deletions left tombstones) has
    # no link to travel with, and is left out.
    columns = ", ".join(EXTRA_FIELDS[kind])
    return conn.execute(
        f"SELECT {columns} FROM {EXTRA_TABLES[kind]} "
        f"WHERE slug IN (SELECT slug FROM links) ORDER BY {_ORDER[kind]}"
    )


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _count_extra(conn: sqlite3.Connection, kind: str) -> int:
    row = conn.execute(
        f"SELECT count(*) FROM {EXTRA_TABLES[kind]} "
        "WHERE slug IN (SELECT slug FROM links)"
    ).fetchone()
    return int(row[0])


class _Reporter:
    """Counts rows across the tables of one export and reports now and then."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self.progress = total, 0, progress

    def each(self, rows: Iterable[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
        for row in rows:
            yield row
            self.done += 1
            if self.progress is not None and self.done % REPORT_EVERY == 0:
                self.progress(self.done, self.total)
        if self.progress is not None:
            self.progress(self.done, self.total)
