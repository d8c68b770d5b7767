"""Writing one chunk of checked rows in one short transaction.

Rows with a slug first take the quick road (quick.py): inserted at once, looked up
only on a clash. The rest take the careful road here: their slugs (and, for rows
without one, their destinations) are looked up with a few IN queries, each row is
sorted into new, already present or in conflict, and the new ones are inserted.

A dry run takes the careful road for every row and writes nothing; it remembers
what it would have written, so that later chunks are judged as they would have
been.
"""

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from linkbroker import database, slugs
from linkbroker.errors import StorageError
from linkbroker.store import LinkStore
from linkbroker.transfer import quick
from linkbroker.transfer.fields import EXTRA_FIELDS, EXTRA_TABLES, LINK_FIELDS
from linkbroker.transfer.rows import widened

Staged = Sequence[tuple[object, ...]]

# Three tries at each length, then one character more, as the store does.
TRIES_PER_LENGTH = 3
EXTRA_LENGTHS = 3

# Counters are added to: a running server may count a click on a new link between
# the commit of its chunk and the turn of its counters.
_ON_CONFLICT = {
    "day": " ON CONFLICT (slug, day) DO UPDATE SET "
    "human = human + excluded.human, bot = bot + excluded.bot",
    "source": " ON CONFLICT (slug, day, kind, source) DO UPDATE SET "
    "clicks = clicks + excluded.clicks",
}
_INSERT_LINKS = f"INSERT INTO links (rowid, {', '.join(LINK_FIELDS)}) VALUES "
_LINK_VALUES = f"({', '.join('?' * (len(LINK_FIELDS) + 1))})"


@dataclass
class Outcome:
    """How the rows of one chunk of links were sorted."""

    imported: int = 0
    present: int = 0
    conflicts: list[tuple[int, str, str]] = field(default_factory=list)


class ChunkWriter:
    """Writes chunks of links, and the history and clicks of the links it made."""

    def __init__(self, store: LinkStore, *, dry_run: bool) -> None:
        self.conn, self.settings, self.dry_run = store.conn, store.settings, dry_run
        # Slugs this run made: only their history and clicks are written.
        self.created: set[str] = set()
        # What a dry run would have written, standing in for the database.
        self._would_lead: dict[str, str] = {}
        self._would_reuse: dict[str, str] = {}
        self._limit = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def links(self, staged: Staged, prepared: "quick.Prepared | None") -> Outcome:
        """Sort and write one chunk of (line, *link columns) rows.

        With `prepared`, its quick statements go first (see quick.py), then its
        careful rows; without, every row takes the careful road.
        """
        outcome = Outcome()
        with self._transaction():
            careful = staged
            if prepared is not None:
                self._quick(prepared, outcome)
                careful = prepared.careful
            self._careful(careful, outcome)
        return outcome

    def _quick(self, prepared: "quick.Prepared", outcome: Outcome) -> None:
        written = quick.write(self.conn, prepared)
        outcome.imported += len(written.imported)
        outcome.present += written.present
        self.created.update(written.imported)
        for line, slug, existing, destination in written.clashes:
            outcome.conflicts.append((line, slug, _conflict(existing, destination)))

    def _careful(self, staged: Staged, outcome: Outcome) -> None:
        if not staged:
            return
        fresh = []
        leads = self._leads([str(r[1]) for r in staged if r[1] is not None])
        reuse = self._reusable([str(r[2]) for r in staged if r[1] is None])
        for row in staged:
            kept = self._sort(row, leads, reuse, outcome)
            if kept is not None:
                fresh.append(kept)
        self._insert(fresh, reuse)
        outcome.imported += len(fresh)

    def _sort(
        self,
        row: tuple[object, ...],
        leads: dict[str, str],
        reuse: dict[str, str],
        outcome: Outcome,
    ) -> tuple[object, ...] | None:
        """Return the link columns of a row to insert; count any other row."""
        line, slug, destination = cast(int, row[0]), row[1], str(row[2])
        if slug is None:
            if destination in reuse:
                outcome.present += 1
                return None
            slug = reuse[destination] = self._free_slug(leads)
        existing = leads.get(str(slug))
        if existing is None:
            leads[str(slug)] = destination
            return widened((slug, *row[2:]))
        if existing == destination:
            outcome.present += 1
        else:
            outcome.conflicts.append(
                (line, str(slug), _conflict(existing, destination))
            )
        return None

    def extras(self, kind: str, staged: Staged) -> int:
        """Write the rows of `kind` whose link this run made; return how many."""
        picked = [row[1:] for row in staged if row[1] in self.created]
        if self.dry_run or not picked:
            return len(picked)
        names = EXTRA_FIELDS[kind]
        insert = (
            f"INSERT INTO {EXTRA_TABLES[kind]} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}){_ON_CONFLICT.get(kind, '')}"
        )
        with self._transaction():
            self.conn.executemany(insert, picked)
        return len(picked)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock before the look-ups, so that nothing can
        # take a slug between this chunk's look-up and its insert.
        begin = "BEGIN" if self.dry_run else "BEGIN IMMEDIATE"
        with database.transaction(self.conn, begin):
            yield

    def _insert(self, fresh: Staged, reuse: dict[str, str]) -> None:
        new_slugs = [str(row[0]) for row in fresh]
        self.created.update(new_slugs)
        if self.dry_run:
            self._would_lead.update(
                (s, str(r[1])) for s, r in zip(new_slugs, fresh, strict=True)
            )
            self._would_reuse.update(reuse)
        else:
            _insert_many(self.conn, _by_destination(self.conn, fresh))

    def _leads(self, wanted: list[str]) -> dict[str, str]:
        """Return where each of `wanted` already leads, for those that exist."""
        found = dict(self._select("slug, destination_url", "slug", wanted, ""))
        if self._would_lead:
            found.update(
                (s, self._would_lead[s]) for s in wanted if s in self._would_lead
            )
        return found

    def _reusable(self, destinations: list[str]) -> dict[str, str]:
        """Return the oldest live link's slug for each destination that has one."""
        rows = self._select(
            "destination_url, slug",
            "destination_url",
            destinations,
            "AND deleted_at IS NULL ORDER BY created_at DESC, rowid DESC",
        )
        found = dict(rows)  # the last row of a destination, its oldest link, wins
        for destination in destinations:
            if destination in self._would_reuse:
                found.setdefault(destination, self._would_reuse[destination])
        return found

    def _select(
        self, columns: str, key: str, values: list[str], tail: str
    ) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for start in range(0, len(values), self._limit):
            part = values[start : start + self._limit]
            marks = ", ".join("?" * len(part))
            rows += self.conn.execute(
                f"SELECT {columns} FROM links WHERE {key} IN ({marks}) {tail}", part
            ).fetchall()
        return rows

    def _free_slug(self, leads: dict[str, str]) -> str:
        base = self.settings.slug_length
        for attempt in range(TRIES_PER_LENGTH * (EXTRA_LENGTHS + 1)):
            candidate = slugs.generate(base + attempt // TRIES_PER_LENGTH)
            if not self._taken(candidate, leads):
                return candidate
        raise StorageError(
            f"No free slug was found up to {base + EXTRA_LENGTHS} characters; "
            "raise LINKBROKER_SLUG_LENGTH.",
            base,
        )

    def _taken(self, candidate: str, leads: dict[str, str]) -> bool:
        if not slugs.is_well_formed(candidate) or candidate in leads:
            return True
        if candidate in self.created:
            return True
        found = self.conn.execute("SELECT 1 FROM links WHERE slug = ?", (candidate,))
        return found.fetchone() is not None


def _insert_many(conn: sqlite3.Connection, numbered: Staged) -> None:
    # Many rows a statement: an executemany steps row by row, giving up Python's
    # lock around every step and waiting for it back while the checking thread runs.
    size = quick.ROWS_A_STATEMENT
    full = _INSERT_LINKS + ", ".join([_LINK_VALUES] * size)
    whole = len(numbered) - len(numbered) % size
    for start in range(0, whole, size):
        part = numbered[start : start + size]
        conn.execute(full, list(itertools.chain.from_iterable(part)))
    if whole < len(numbered):
        conn.executemany(_INSERT_LINKS + _LINK_VALUES, numbered[whole:])


def _by_destination(conn: sqlite3.Connection, fresh: Staged) -> Staged:
    """Number the rows in the file's order, then sort them by destination.

    Inserted in destination order, neighbouring rows land on the same pages of the
    destination index, which measured about a third faster; the rowids keep the
    file's order for `list` and `export`.
    """
    last = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM links").fetchone()[0])
    numbered = [(last + i, *row) for i, row in enumerate(fresh, 1)]
    numbered.sort(key=lambda row: str(row[2]))
    return numbered


def _conflict(existing: str, destination: str) -> str:
    return (
        f"the slug already leads to {existing} (in the database, or from an "
        f"earlier line of this file), and this line gives {destination}; nothing "
        "was overwritten: give this line another slug"
    )
