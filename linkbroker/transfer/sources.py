"""Recognising an import file's format and reading its rows.

Every reader yields Records: a type ("link", "history", "click", "day", "source",
or "bad" for a line that could not be read), the line the row starts on (the first
line of the file is 1), and its values under linkbroker's column names. Checking the
values is the importer's work; a reader only finds them.
"""

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from linkbroker.errors import InvalidImport
from linkbroker.transfer.export import HEADER, VERSION

FORMATS = ("jsonl", "csv", "plain", "d1", "shlink", "yourls")

# Each tool's export, by the columns its header names (lower-cased).
_CSV_SIGNATURES = (
    ("shlink", {"shortcode", "longurl"}),
    ("yourls", {"source", "target"}),
    ("csv", {"slug", "destination_url"}),
)
_SQL_START = re.compile(r"\s*(?:(?:PRAGMA|CREATE|INSERT|BEGIN)\b|--)", re.IGNORECASE)
_PLAIN_NAMES = {"slug": "slug", "destination": "destination_url", "url": "url"}


# One row of an import file: its type, first line and values. A plain tuple, as a
# million of them are made in an import.
Record = tuple[str, int, dict[str, object]]


def bad(line: int, reason: str, slug: object = None) -> Record:
    """Return the record of a line that cannot be read."""
    return ("bad", line, {"slug": slug, "reason": reason})


def detect(path: Path, first_line: str) -> str:
    """Return the format of the file at `path`, from its name, then its first line."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"} or first_line.lstrip().startswith("{"):
        return "jsonl"
    if suffix == ".sql" or _SQL_START.match(first_line):
        return "d1"
    names = {name.strip().lower() for name in next(csv.reader([first_line]), [])}
    for fmt, signature in _CSV_SIGNATURES:
        if signature <= names:
            return fmt
    return "plain"


def first_line(stream: IO[str]) -> str:
    """Return the first line that is not blank, or '' for an empty file."""
    for line in stream:
        if line.strip():
            return line
    return ""


Reader = Callable[[IO[str]], Iterator[Record]]


def reader(fmt: str) -> Reader:
    """Return the function that reads files of format `fmt`."""
    from linkbroker.transfer import d1

    readers: dict[str, Reader] = {
        "jsonl": read_jsonl,
        "csv": read_columns,
        "plain": read_plain,
        "d1": d1.read_dump,
        "shlink": read_shlink,
        "yourls": read_yourls,
    }
    if fmt not in readers:
        raise InvalidImport(
            f"The import format {fmt!r} is unknown; use one of {', '.join(FORMATS)}.",
            fmt,
        )
    return readers[fmt]


def read_jsonl(stream: IO[str]) -> Iterator[Record]:
    """Read linkbroker's own JSON Lines export."""
    for number, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            yield bad(number, f"it is not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            yield bad(number, "it is not a JSON object")
            continue
        kind = record.pop("type", None)
        if kind == HEADER["type"]:
            _check_version(record)
        elif kind not in {"link", "history", "click", "day", "source"}:
            yield bad(number, f"its type {kind!r} is unknown", record.get("slug"))
        else:
            yield str(kind), number, record


def _check_version(header: dict[str, object]) -> None:
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise InvalidImport(
            f"The export is of version {version!r}, newer than this linkbroker "
            f"reads ({VERSION}); upgrade linkbroker to import it.",
            version,
        )


def _csv_rows(stream: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """Yield each non-blank CSV row with the line it starts on."""
    rows = csv.reader(stream)
    start = 1
    for row in rows:
        if row and (len(row) > 1 or row[0].strip()):  # blank lines are skipped
            yield start, row
        start = rows.line_num + 1


def _rows_as_links(stream: IO[str], renames: dict[str, str]) -> Iterator[Record]:
    """Read a CSV file with a header as links, its columns renamed by `renames`."""
    rows = _csv_rows(stream)
    _, header = next(rows, (0, []))
    names = [renames.get(name.strip().lower(), "") for name in header]
    for line, row in rows:
        if len(row) != len(names):
            yield bad(
                line, f"it has {len(row)} columns where the header has {len(names)}"
            )
            continue
        values: dict[str, object] = {
            name: cell for name, cell in zip(names, row, strict=True) if name
        }
        yield "link", line, values


def read_columns(stream: IO[str]) -> Iterator[Record]:
    """Read a CSV file whose header names linkbroker's columns, as `export` writes.

    The edge design's D1 table exported as CSV (slug, destination_url, created_at,
    clicks) is such a file; columns linkbroker does not know are left out.
    """
    from linkbroker.transfer.fields import LINK_FIELDS

    renames = {name: name for name in LINK_FIELDS}
    yield from _rows_as_links(stream, renames)


def read_shlink(stream: IO[str]) -> Iterator[Record]:
    """Read the CSV that Shlink's web client exports (short_urls.csv).

    Its columns are createdAt, domain, shortCode, shortUrl, longUrl, title, tags and
    visits; the short code, long URL, creation time and visit count are kept.
    """
    renames = {
        "shortcode": "slug",
        "longurl": "destination_url",
        "createdat": "created_at",
        "visits": "clicks",
    }
    yield from _rows_as_links(stream, renames)


def read_yourls(stream: IO[str]) -> Iterator[Record]:
    """Read the CSV of YOURLS' Import/Export plugin: source, target and hits.

    The source is the keyword between slashes, as in /promo/.
    """
    renames = {"source": "slug", "target": "destination_url", "hits": "clicks"}
    for kind, line, values in _rows_as_links(stream, renames):
        slug = values.get("slug")
        if kind == "link" and isinstance(slug, str):
            values["slug"] = slug.strip().strip("/")
        yield kind, line, values


def read_plain(stream: IO[str]) -> Iterator[Record]:
    """Read a CSV of `slug,destination` or of destinations alone.

    A header is optional: a first row with no URL in it is taken as one, naming the
    columns slug and destination (or url) in either order. Without a header, one
    column is the destination, two are the slug and the destination. An empty slug
    is generated.
    """
    rows = _csv_rows(stream)
    line, first = next(rows, (0, []))
    names = _plain_names(first)
    if any("://" in cell for cell in first):
        rows = itertools.chain([(line, first)], rows)
    width = len(names)
    at_slug = names.index("slug") if "slug" in names else None
    at_destination = names.index("destination_url")
    for line, row in rows:
        if len(row) != width:
            yield bad(line, f"it has {len(row)} columns where {width} are read")
            continue
        values: dict[str, object] = {"destination_url": row[at_destination].strip()}
        if at_slug is not None:
            values["slug"] = row[at_slug].strip()
        yield "link", line, values


def _plain_names(first: list[str]) -> list[str]:
    if any("://" in cell for cell in first):  # no header
        return ["destination_url"] if len(first) == 1 else ["slug", "destination_url"]
    names = [_PLAIN_NAMES.get(cell.strip().lower(), "") for cell in first]
    names = ["destination_url" if name == "url" else name for name in names]
    if "destination_url" not in names or "" in names:
        raise InvalidImport(
            f"The header {','.join(first)!r} names no destination column, or a "
            "column linkbroker does not read; name the columns slug and destination.",
            first,
        )
    return names


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it, for a progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buffer: "memoryview | bytearray") -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)
