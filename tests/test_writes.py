"""Writes that arrive together share their commits, and each keeps its own answer."""

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from linkbroker.errors import RateLimited, SlugTaken
from linkbroker.model import Link
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.writes import WriteQueue

KEYS = ("token:tests", "address:198.51.100.20")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LinkStore]:
    settings = Settings.load(
        db_path=tmp_path / "links.db",
        cache_dir=tmp_path / "cache",
        environ={"LINKBROKER_RATE_LIMIT": "60", "LINKBROKER_RATE_BURST": "4"},
    )
    with LinkStore(settings) as store:
        yield store


def _batches(store: LinkStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the batches the store runs."""
    started: list[int] = []
    batch = store.batch

    def counted() -> object:
        started.append(1)
        return batch()

    monkeypatch.setattr(store, "batch", counted)
    return started


async def _together(
    queue: WriteQueue[Link], *works: Callable[[], Link]
) -> list[object]:
    runs = [queue.run(KEYS, work) for work in works]
    return await asyncio.gather(*runs, return_exceptions=True)


def test_writes_of_one_turn_commit_together_and_fail_alone(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("https://example.com/old", "taken")
    batches = _batches(store, monkeypatch)

    def half_done() -> Link:
        store.create("https://example.com/half", "half")
        raise SlugTaken("refused after its insert", "half")

    outcomes = asyncio.run(
        _together(
            WriteQueue(store),
            lambda: store.create("https://example.com/a", "a"),
            lambda: store.create("https://example.com/b", "taken"),
            half_done,
            lambda: store.create("https://example.com/c", "c"),
        )
    )

    assert len(batches) == 1
    assert [type(outcome) for outcome in outcomes] == [Link, SlugTaken, SlugTaken, Link]
    assert store.get("taken").destination == "https://example.com/old"
    assert store.resolve("a") is not None and store.resolve("c") is not None
    assert store.resolve("half") is None  # undone, and never published
    assert store.cache.get("a") is not None  # published after the commit


def test_a_batch_charges_each_write_and_skips_the_refused(store: LinkStore) -> None:
    ran: list[str] = []

    def make(slug: str) -> Callable[[], Link]:
        def work() -> Link:
            ran.append(slug)
            return store.create(f"https://example.com/{slug}", slug)

        return work

    outcomes = asyncio.run(
        _together(WriteQueue(store), *(make(slug) for slug in "vwxyz"))
    )

    assert [type(outcome) for outcome in outcomes] == [Link] * 4 + [RateLimited]
    assert ran == ["v", "w", "x", "y"]
    assert store.resolve("z") is None
    with pytest.raises(RateLimited):  # the bucket was written back spent
        store.cache.limit(KEYS, store.settings)


def test_a_lone_write_outside_a_batch_still_commits_at_once(store: LinkStore) -> None:
    store.create("https://example.com/lone", "lone")

    assert not store.conn.in_transaction
    assert store.cache.get("lone") is not None


def test_writes_still_arriving_over_a_few_turns_join_the_batch(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _batches(store, monkeypatch)

    async def staggered() -> list[Link]:
        queue: WriteQueue[Link] = WriteQueue(store)
        runs = []
        for slug in "pqr":
            work = functools.partial(store.create, f"https://example.com/{slug}", slug)
            runs.append(asyncio.ensure_future(queue.run(KEYS, work)))
            await asyncio.sleep(0)  # the next write comes a turn of the loop later
        return await asyncio.gather(*runs)

    made = asyncio.run(staggered())

    assert [link.slug for link in made] == ["p", "q", "r"]
    assert len(batches) == 1
