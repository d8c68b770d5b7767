"""Fixtures: real SQLite files and real diskcache folders under tmp_path."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from linkbroker.cli import app
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

Invoke = Callable[..., Result]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        db_path=tmp_path / "data" / "links.db",
        cache_dir=tmp_path / "data" / "cache",
        environ={},
    )


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
