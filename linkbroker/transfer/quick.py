"""The quick road for rows that carry a slug: insert first, look up only on a clash.

Most rows of a large import are new links. Looking each slug up before inserting it
costs as much again as the insert, so rows with a slug are inserted with
`ON CONFLICT (slug) DO NOTHING`, many to a statement, and only a statement that
inserted fewer rows than it carried has its slugs looked up, to tell rows already
present from conflicts. Rows without a slug, and a slug's later rows in the same
chunk, take the careful road in chunks.py, after the quick ones.

The statements are built in the checking thread (`prepare`), so that the writing
thread, the slower of the two, only runs them.
"""

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from typing import cast

from linkbroker.transfer.fields import LINK_FIELDS, NARROW

# Rows one statement carries: one step of SQLite's work, done without Python's
# lock, for many rows, where an executemany would take the lock back every row.
ROWS_A_STATEMENT = 256
# Narrow rows bind a third as many values each, so a statement carries more of them.
NARROW_ROWS_A_STATEMENT = 1024

# (position in the chunk, line, slug, destination) of each row of a statement.
Meta = list[tuple[int, int, str, str]]


@dataclass
class Prepared:
    """A chunk's quick statements, and its rows left for the careful road."""

    # Each statement's rows, parameters, and columns a row (see rows.link_row).
    statements: list[tuple[Meta, list[object], int]] = field(default_factory=list)
    careful: list[tuple[object, ...]] = field(default_factory=list)


def prepare(staged: Sequence[tuple[object, ...]]) -> Prepared:
    """Split a chunk of (line, *link columns) rows and build its statements.

    Rows are numbered in the file's order, which their rowids keep, then sorted by
    destination: neighbouring inserts land on the same pages of the destination
    index, which measured about a third faster.
    """
    prepared, seen, quick = Prepared(), set(), []
    for row in staged:
        if row[1] is None or row[1] in seen:
            prepared.careful.append(row)
        else:
            seen.add(row[1])
            quick.append(row)
    numbered = sorted(enumerate(quick, 1), key=lambda item: str(item[1][2]))
    narrow = [item for item in numbered if len(item[1]) == NARROW + 1]
    if len(narrow) < len(numbered):
        wide = [item for item in numbered if len(item[1]) > NARROW + 1]
        _add_statements(prepared, wide, len(LINK_FIELDS))
    _add_statements(prepared, narrow, NARROW)
    return prepared


def _add_statements(
    prepared: Prepared, numbered: list[tuple[int, tuple[object, ...]]], width: int
) -> None:
    size = NARROW_ROWS_A_STATEMENT if width == NARROW else ROWS_A_STATEMENT
    for start in range(0, len(numbered), size):
        part = numbered[start : start + size]
        meta = cast(Meta, [(position, *row[:3]) for position, row in part])
        # The first parameter is the chunk's first rowid, set when it is written.
        params: list[object] = [0]
        params += chain.from_iterable((position, *row[1:]) for position, row in part)
        prepared.statements.append((meta, params, width))


@dataclass
class Written:
    """What the quick road did with a chunk's rows."""

    imported: list[str] = field(default_factory=list)
    present: int = 0
    clashes: list[tuple[int, str, str, str]] = field(default_factory=list)


def write(conn: sqlite3.Connection, prepared: Prepared) -> Written:
    """Run a chunk's quick statements inside its write transaction."""
    written = Written()
    base = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM links").fetchone()[0])
    for meta, params, width in prepared.statements:
        params[0] = base
        before = conn.total_changes
        conn.execute(_statement(len(meta), width), params)
        if conn.total_changes - before == len(meta):
            written.imported.extend(slug for _, _, slug, _ in meta)
        else:
            _sort_out(conn, meta, base, written)
    return written


def _sort_out(
    conn: sqlite3.Connection, meta: Meta, base: int, written: Written
) -> None:
    """Tell the rows a statement inserted from those it found already there."""
    marks = ", ".join("?" * len(meta))
    found = {
        slug: (rowid, destination)
        for slug, rowid, destination in conn.execute(
            f"SELECT slug, rowid, destination_url FROM links WHERE slug IN ({marks})",
            [slug for _, _, slug, _ in meta],
        )
    }
    for position, line, slug, destination in meta:
        rowid, existing = found[slug]
        if rowid == base + position:
            written.imported.append(slug)
        elif existing == destination:
            written.present += 1
        else:
            written.clashes.append((line, slug, existing, destination))


@lru_cache(maxsize=8)
def _statement(rows: int, width: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * (width + 1)) + ")"] * rows)
    picked = ", ".join(f"column{number}" for number in range(2, width + 2))
    # WHERE true: SQLite's parser needs it before an upsert on INSERT ... SELECT.
    return (
        f"INSERT INTO links (rowid, {', '.join(LINK_FIELDS[:width])}) "
        f"SELECT ? + column1, {picked} FROM (VALUES {values}) WHERE true "
        "ON CONFLICT (slug) DO NOTHING"
    )
