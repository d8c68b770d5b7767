"""Fixtures: real SQLite files and real diskcache folders under tmp_path."""

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from linkbroker.cli import app
from linkbroker.model import Edit
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

Invoke = Callable[..., Result]


def query(db: Path, sql: str, *args: object) -> list[Any]:
    """Return the rows `sql` selects from the database file `db`, read afresh."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def scalar(db: Path, sql: str, *args: object) -> Any:
    """Return the one value `sql` selects from the database file `db`."""
    return query(db, sql, *args)[0][0]


def change(db: Path, sql: str) -> None:
    """Run one statement on the database file `db` and commit it, as another tool."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(sql)
    finally:
        conn.close()


def settings_in(folder: Path, **environ: str) -> Settings:
    """Settings for a database and cache under `folder`, with LINKBROKER_* values."""
    return Settings.load(
        db_path=folder / "data" / "links.db",
        cache_dir=folder / "data" / "cache",
        environ={
            f"LINKBROKER_{name.upper()}": value for name, value in environ.items()
        },
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_in(tmp_path)


@pytest.fixture
def reverted_into_blocklist(tmp_path: Path) -> Settings:
    """Settings with a blocklist, and link 'r' edited away from what it now blocks.

    'r' led to spam.example, then to example.com/safe; spam.example was blocked
    after, so reverting 'r' would lead back to a blocked domain.
    """
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("")
    settings = Settings.load(
        db_path=tmp_path / "links.db",
        cache_dir=tmp_path / "cache",
        environ={"LINKBROKER_BLOCKLIST": str(blocklist)},
    )
    with LinkStore(settings) as store:
        store.create("https://spam.example/offer", "r")
        store.edit("r", Edit(destination="https://example.com/safe"))
    blocklist.write_text("spam.example\n")
    return settings


@pytest.fixture
def settings_db(settings: Settings) -> Path:
    return settings.db_path


@pytest.fixture
def store(settings: Settings) -> Iterator[LinkStore]:
    with LinkStore(settings) as opened:
        yield opened


@pytest.fixture
def cli(settings: Settings) -> Invoke:
    """Run a linkbroker command in process, as a user would type it."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env=settings.environ())

    return invoke
