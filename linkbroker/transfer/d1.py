"""Reading the edge design's D1 table from a `wrangler d1 export` SQL dump.

A dump is SQL text: a CREATE TABLE, then one `INSERT INTO "links" VALUES(...);` a
row, with a column list after the table name in some wrangler versions. Only the
inserts into `links` are read; every other statement (PRAGMA, CREATE INDEX,
BEGIN/COMMIT, inserts into other tables) is skipped. Values are SQL literals:
strings in single quotes with '' for a quote (commas and parentheses inside are
text), NULL, and numbers. Anything else, such as an expression, makes the row bad.
"""

import re
import sqlite3
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import IO

from linkbroker.transfer.sources import Record, bad

# The table as the edge design made it; a dump's own CREATE TABLE overrides it.
EDGE_COLUMNS = ("slug", "destination_url", "created_at", "clicks")
_TABLE = r"""(?:"links"|`links`|\[links\]|'links'|links)"""
_INTO = rf"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+{_TABLE}\s*"
_INSERT = re.compile(rf"{_INTO}(?:\(([^)]*)\))?\s*VALUES\s*", re.IGNORECASE)
_CREATE = re.compile(
    rf"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_TABLE}\s*\((.*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
# One literal value, in four groups: a string, NULL, an integer, a real. The
# string's body is written as runs of other characters between doubled quotes,
# which the regex engine takes a run at a time rather than a character at a time.
_LITERAL = r"""(?:
    '([^']*(?:''[^']*)*)'                         # a string, '' for a quote
  | (NULL)\b
  | ([-+]?\d+)(?![\d.eE])                         # an integer
  | ([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)  # a real
)"""
_FLAGS = re.IGNORECASE | re.VERBOSE
# A value and the mark after it, ',' or ')'.
_VALUE = re.compile(rf"\s*{_LITERAL}\s*([,)]?)", _FLAGS)
_CONSTRAINT = re.compile(
    r"\s*(?:PRIMARY|UNIQUE|CHECK|FOREIGN|CONSTRAINT)\b", re.IGNORECASE
)

Value = str | int | float | None


class _Unreadable(ValueError):
    """A statement that is not the SQL this reader understands."""

    def __init__(self, message: str, read: list[Value] | None = None) -> None:
        super().__init__(message)
        self.read = read or []  # the values of the row read before the trouble


def read_dump(stream: IO[str]) -> Iterator[Record]:
    """Read the rows of `links` from a SQL dump, each with its statement's line."""
    columns: tuple[str, ...] = EDGE_COLUMNS
    for line, statement in _statements(stream):
        # The usual line first, as wrangler writes a row, in one match.
        usual = _usual_insert(len(columns)).fullmatch(statement)
        if usual is not None:
            yield _record(line, columns, _values(usual.groups()))
            continue
        created = _CREATE.match(statement)
        if created:
            columns = _column_names(created.group(1))
            continue
        insert = _INSERT.match(statement)
        if insert is not None:
            names = _names(insert.group(1)) if insert.group(1) else columns
            yield from _rows(line, names, statement, insert.end())


def _rows(
    line: int, names: tuple[str, ...], statement: str, position: int
) -> Iterator[Record]:
    try:
        rows = _tuples(statement, position)
    except _Unreadable as exc:
        yield bad(line, str(exc), _slug(names, exc.read))
        return
    for row in rows:
        yield _record(line, names, row)


def _record(line: int, names: tuple[str, ...], row: list[Value]) -> Record:
    if len(row) != len(names):
        message = f"it has {len(row)} values for {len(names)} columns"
        return bad(line, message, _slug(names, row))
    return "link", line, {name: row[i] for i, name in _kept(names)}


def _slug(names: tuple[str, ...], row: list[Value]) -> Value:
    """Return the row's slug, if the row got as far as it, to name a bad row by."""
    where = names.index("slug") if "slug" in names else 0
    return row[where] if where < len(row) else None


_KEPT = frozenset(EDGE_COLUMNS)


@lru_cache(maxsize=8)
def _kept(names: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((i, name) for i, name in enumerate(names) if name in _KEPT)


@lru_cache(maxsize=8)
def _usual_insert(width: int) -> re.Pattern[str]:
    """Match an insert into `links` of one row of `width` literals, without columns.

    That is how wrangler writes every row; one match for the whole statement saves
    a match and a few steps of Python for each value. Anything else goes the
    general way.
    """
    values = r"\s*,\s*".join([_LITERAL] * width)
    return re.compile(rf"{_INTO}VALUES\s*\(\s*{values}\s*\)\s*;?\s*", _FLAGS)


def _statements(stream: IO[str]) -> Iterator[tuple[int, str]]:
    """Yield each complete statement with the line it starts on."""
    pending, start = "", 0
    for number, text in enumerate(stream, 1):
        if not pending:
            if not text.strip() or text.lstrip().startswith("--"):
                continue
            start = number
        pending += text
        # A string may hold a newline, or ';': only SQLite's own tokenizer knows
        # where the statement ends.
        if sqlite3.complete_statement(pending):
            yield start, pending
            pending = ""
    if pending.strip():
        yield start, pending


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip().strip("\"`[]'").lower() for name in text.split(","))


def _column_names(body: str) -> tuple[str, ...]:
    names = []
    for part in _top_level_parts(body):
        if part.strip() and not _CONSTRAINT.match(part):
            names.append(part.split()[0].strip("\"`[]'").lower())
    return tuple(names)


def _top_level_parts(body: str) -> list[str]:
    """Split column definitions at commas outside parentheses and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in body:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _tuples(statement: str, position: int) -> list[list[Value]]:
    """Parse `(v, ...), (v, ...);` from `position` on."""
    rows = []
    while True:
        row, position = _tuple(statement, position)
        rows.append(row)
        rest = statement[position:].lstrip()
        if rest.startswith(","):
            position = len(statement) - len(rest) + 1
            continue
        if rest.rstrip() in {";", ""}:
            return rows
        raise _Unreadable(f"unexpected {rest[:20]!r} after a row of values")


def _tuple(statement: str, position: int) -> tuple[list[Value], int]:
    while position < len(statement) and statement[position].isspace():
        position += 1
    if statement[position : position + 1] != "(":
        raise _Unreadable(f"expected '(' at {statement[position : position + 20]!r}")
    position += 1
    values: list[Value] = []
    while True:
        found = _VALUE.match(statement, position)
        if found is None:
            raise _Unreadable(
                "a value is not a string, number or NULL "
                f"({statement[position : position + 30].strip()!r}); only literal "
                "values are read",
                values,
            )
        values.append(_value(found))
        position = found.end()
        mark = found.group(5)
        if mark == ")":
            return values, position
        if mark != ",":
            raise _Unreadable(f"expected ',' or ')' at {statement[position:][:20]!r}")


def _value(found: re.Match[str]) -> Value:
    return _values(found.groups()[:4])[0]


def _values(groups: Sequence[str | None]) -> list[Value]:
    """Return the values of literals from their groups, four a value."""
    values: list[Value] = []
    for text, null, integer, real in zip(*[iter(groups)] * 4, strict=True):
        if text is not None:
            values.append(text.replace("''", "'"))
        elif integer is not None:
            values.append(int(integer))
        elif null is not None:
            values.append(None)
        else:
            values.append(float(str(real)))
    return values
