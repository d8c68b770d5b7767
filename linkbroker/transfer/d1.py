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
from collections.abc import Iterator
from typing import IO

from linkbroker.transfer.sources import Record, bad

# The table as the edge design made it; a dump's own CREATE TABLE overrides it.
EDGE_COLUMNS = ("slug", "destination_url", "created_at", "clicks")
_TABLE = r"""(?:"links"|`links`|\[links\]|'links'|links)"""
_INSERT = re.compile(
    rf"\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+{_TABLE}\s*(?:\(([^)]*)\))?\s*VALUES\s*",
    re.IGNORECASE,
)
_CREATE = re.compile(
    rf"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_TABLE}\s*\((.*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_VALUE = re.compile(
    r"""\s*(?:
        '((?:[^']|'')*)'                              # a string, '' for a quote
      | (NULL)\b
      | ([-+]?\d+)(?![\d.eE])                         # an integer
      | ([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)  # a real
    )\s*""",
    re.IGNORECASE | re.VERBOSE,
)
_CONSTRAINT = re.compile(
    r"\s*(?:PRIMARY|UNIQUE|CHECK|FOREIGN|CONSTRAINT)\b", re.IGNORECASE
)

Value = str | int | float | None


class _Unreadable(ValueError):
    """A statement that is not the SQL this reader understands."""


def read_dump(stream: IO[str]) -> Iterator[Record]:
    """Read the rows of `links` from a SQL dump, each with its statement's line."""
    columns: tuple[str, ...] = EDGE_COLUMNS
    for line, statement in _statements(stream):
        created = _CREATE.match(statement)
        if created:
            columns = _column_names(created.group(1))
            continue
        insert = _INSERT.match(statement)
        if insert is None:
            continue
        names = _names(insert.group(1)) if insert.group(1) else columns
        try:
            rows = _tuples(statement, insert.end())
        except _Unreadable as exc:
            yield bad(line, str(exc))
            continue
        for row in rows:
            yield _record(line, names, row)


def _record(line: int, names: tuple[str, ...], row: list[Value]) -> Record:
    if len(row) != len(names):
        slug = row[0] if row else None
        return bad(line, f"it has {len(row)} values for {len(names)} columns", slug)
    values = dict(zip(names, row, strict=True))
    return "link", line, {n: v for n, v in values.items() if n in _KEPT}


_KEPT = frozenset(EDGE_COLUMNS)


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
                "values are read"
            )
        values.append(_value(found))
        position = found.end()
        mark = statement[position : position + 1]
        position += 1
        if mark == ")":
            return values, position
        if mark != ",":
            raise _Unreadable(
                f"expected ',' or ')' at {statement[position - 1 :][:20]!r}"
            )


def _value(found: re.Match[str]) -> Value:
    text, null, integer, real = found.groups()
    if text is not None:
        return text.replace("''", "'")
    if null is not None:
        return None
    if integer is not None:
        return int(integer)
    return float(real)
