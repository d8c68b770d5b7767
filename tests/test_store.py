import sqlite3
from pathlib import Path

import pytest

from linkbroker import cache as cache_module
from linkbroker import slugs
from linkbroker.errors import (
    InvalidDestination,
    LinkNotFound,
    RateLimited,
    SlugTaken,
    StorageError,
)
from linkbroker.model import Edit, Target
from linkbroker.settings import Settings
from linkbroker.store import LinkStore


def test_create_then_resolve(store: LinkStore) -> None:
    link = store.create("https://example.com/page")
    assert len(link.slug) == 7
    assert link.clicks == 0
    assert store.resolve(link.slug) == Target("https://example.com/page")


def test_sqlite_is_in_wal_mode_with_normal_sync(store: LinkStore) -> None:
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_resolve_fills_the_cache_on_a_miss(store: LinkStore) -> None:
    store.create("https://example.com/", "hello")
    store.cache._cache.clear()  # as if another process had made the link

    assert store.cache.get("hello") is None
    assert store.resolve("hello") == Target("https://example.com/")
    entry = store.cache.get("hello")
    assert entry is not None
    assert entry.target == Target("https://example.com/")


def test_resolve_serves_from_the_cache_without_sqlite(store: LinkStore) -> None:
    store.create("https://example.com/", "cached")
    # Change the row behind the cache's back: a cache hit must not read SQLite.
    store.conn.execute("UPDATE links SET destination_url = 'https://other.example/'")
    assert store.resolve("cached") == Target("https://example.com/")


def test_unknown_slug_is_remembered_as_absent(store: LinkStore) -> None:
    assert store.resolve("ghost") is None
    entry = store.cache.get("ghost")
    assert entry is not None
    assert entry.target is None


def test_absent_mark_expires(store: LinkStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "ABSENT_TTL", -1.0)  # expired when written
    store.resolve("ghost")
    assert store.cache.get("ghost") is None


def test_creating_a_slug_clears_its_absent_mark_at_once(store: LinkStore) -> None:
    assert store.resolve("soon") is None
    store.create("https://example.com/soon", "soon")
    assert store.resolve("soon") == Target("https://example.com/soon")


def test_a_generated_slug_guessed_before_it_existed_is_served_at_once(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slugs, "generate", lambda length: "Guessed")
    assert store.resolve("Guessed") is None  # an absent mark is now cached
    store.create("https://example.com/g")
    assert store.resolve("Guessed") == Target("https://example.com/g")


def test_a_reader_that_saw_no_link_before_its_creation_cannot_hide_it(
    store: LinkStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader reads SQLite before the commit, and fills the cache after the
    # writer is done: its absent mark must lose.
    monkeypatch.setattr(slugs, "generate", lambda length: "Racing1")
    with LinkStore(settings) as reader:
        saw = reader._served("Racing1")
        store.create("https://example.com/r")
        reader.cache.fill("Racing1", saw)
        assert reader.resolve("Racing1") == Target("https://example.com/r")


def test_two_writers_reaching_the_cache_out_of_order_leave_the_latest_state(
    store: LinkStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("https://example.com/1", "w")
    with LinkStore(settings) as late:
        # The late writer commits first, then stalls before its cache write.
        stalled: list[str] = []
        monkeypatch.setattr(late, "_publish", stalled.append)
        late.edit("w", Edit(destination="https://example.com/2"))
        store.edit("w", Edit(disabled=True))
        monkeypatch.undo()
        late._publish(stalled[0])

        target = late.resolve("w")
    assert target == Target("https://example.com/2", disabled=True)


def test_malformed_slug_touches_no_storage(settings: Settings) -> None:
    with LinkStore(settings) as fresh:
        assert fresh.resolve("../etc/passwd") is None
        assert fresh.resolve("x" * 65) is None
        assert "conn" not in fresh.__dict__
        assert "cache" not in fresh.__dict__
    assert not settings.db_path.exists()


def test_refused_input_creates_nothing(settings: Settings) -> None:
    with LinkStore(settings) as fresh, pytest.raises(InvalidDestination):
        fresh.create("javascript:alert(1)")
    assert not settings.db_path.exists()
    assert not settings.cache_dir.exists()


def test_taken_custom_slug_is_an_error_never_an_overwrite(store: LinkStore) -> None:
    store.create("https://first.example/", "mine")
    with pytest.raises(SlugTaken, match="'mine' is taken") as caught:
        store.create("https://second.example/", "mine")
    assert caught.value.value == "mine"
    assert store.get("mine").destination == "https://first.example/"


def test_slugs_are_case_sensitive(store: LinkStore) -> None:
    store.create("https://lower.example/", "abc")
    store.create("https://upper.example/", "ABC")
    assert store.require("abc").destination == "https://lower.example/"
    assert store.require("ABC").destination == "https://upper.example/"


def test_same_url_twice_gives_two_slugs_unless_reused(store: LinkStore) -> None:
    first = store.create("https://example.com/same")
    second = store.create("https://example.com/same")
    assert first.slug != second.slug
    reused = store.create("https://example.com/same", reuse=True)
    assert reused.slug == first.slug
    assert store.count() == 2


def test_reuse_with_a_slug_is_idempotent_only_for_the_same_destination(
    store: LinkStore,
) -> None:
    store.create("https://example.com/", "docs")
    assert store.create("https://example.com/", "docs", reuse=True).slug == "docs"
    with pytest.raises(SlugTaken):
        store.create("https://other.example/", "docs", reuse=True)


def test_generation_lengthens_slugs_when_short_ones_collide(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = store.create("https://example.com/1", "aaaaaaa")
    attempts = iter(["aaaaaaa", "aaaaaaa", "aaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr("linkbroker.slugs.generate", lambda length: next(attempts))
    link = store.create("https://example.com/2")
    assert link.slug == "bbbbbbbb"
    assert store.get(taken.slug).destination == "https://example.com/1"


def test_generation_gives_up_after_bounded_tries(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("https://example.com/1", "aaaa")
    calls: list[int] = []

    def always_taken(length: int) -> str:
        calls.append(length)
        return "aaaa"

    monkeypatch.setattr("linkbroker.slugs.generate", always_taken)
    with pytest.raises(StorageError, match="No free slug"):
        store.create("https://example.com/2")
    assert calls == [7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10]
    assert store.count() == 1


def test_delete_removes_the_link_and_remembers_it_absent(store: LinkStore) -> None:
    store.create("https://example.com/", "gone")
    assert store.resolve("gone") is not None
    deleted = store.delete("gone")
    assert deleted.slug == "gone"
    assert store.resolve("gone") is None
    with pytest.raises(LinkNotFound, match="'gone'"):
        store.get("gone")
    with pytest.raises(LinkNotFound):
        store.delete("gone")


def test_changes_and_removals_bump_the_generation(store: LinkStore) -> None:
    start = store.cache.generation()
    store.create("https://example.com/", "g")
    assert store.cache.generation() == start  # nothing held a copy of a new link
    store.edit("g", Edit(destination="https://example.com/changed"))
    store.delete("g")
    assert store.cache.generation() == start + 2


def test_newest_first_with_ties_in_reverse_creation_order(store: LinkStore) -> None:
    made = [store.create(f"https://example.com/{n}", f"s{n}").slug for n in range(5)]
    store.conn.execute("UPDATE links SET created_at = '2026-01-01 00:00:00'")
    assert [link.slug for link in store.newest()] == made[::-1]
    assert [link.slug for link in store.newest(2)] == made[:2:-1][:2]


def test_most_clicked_first(store: LinkStore) -> None:
    for slug, clicks in [("a", 3), ("b", 10), ("c", 0)]:
        store.create("https://example.com/", slug)
        store.conn.execute("UPDATE links SET clicks = ? WHERE slug = ?", (clicks, slug))
    assert [link.slug for link in store.most_clicked()] == ["b", "a", "c"]


def test_wipe_deletes_links_and_keeps_the_schema(store: LinkStore) -> None:
    store.create("https://example.com/", "w")
    assert store.wipe() == 1
    assert store.count() == 0
    assert store.resolve("w") is None


def test_a_file_that_is_not_a_database_is_a_clear_error(settings: Settings) -> None:
    settings.db_path.parent.mkdir(parents=True)
    settings.db_path.write_bytes(b"this is not sqlite, it is plain text" * 100)
    with (
        LinkStore(settings) as broken,
        pytest.raises(StorageError, match="not a usable"),
    ):
        broken.resolve("abc")


def test_a_newer_schema_is_refused(settings: Settings) -> None:
    settings.db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with LinkStore(settings) as newer, pytest.raises(StorageError, match="upgrade"):
        newer.count()


def _reader_reads_sqlite(store: LinkStore, slug: str) -> Target | None:
    """The first half of a cache-aside read: a miss, then the row from SQLite."""
    assert store.cache.get(slug) is None
    row = store.conn.execute(
        "SELECT destination_url FROM links WHERE slug = ?", (slug,)
    ).fetchone()
    return None if row is None else Target(row[0])


def test_a_fill_from_a_read_older_than_a_delete_loses(settings: Settings) -> None:
    with LinkStore(settings) as writer, LinkStore(settings) as reader:
        writer.create("https://example.com/old", "race")
        writer.cache._cache.clear()  # the entry aged out: the next read misses

        stale = _reader_reads_sqlite(reader, "race")
        writer.delete("race")  # commits, then writes the absent state
        reader.cache.fill("race", stale)  # the reader finishes late

        assert reader.resolve("race") is None
        assert writer.resolve("race") is None


def test_a_fill_that_lands_before_the_writers_put_is_replaced(
    settings: Settings,
) -> None:
    with LinkStore(settings) as writer, LinkStore(settings) as reader:
        writer.create("https://example.com/old", "race")
        writer.cache._cache.clear()

        stale = _reader_reads_sqlite(reader, "race")
        writer.conn.execute("DELETE FROM links WHERE slug = 'race'")  # committed...
        reader.cache.fill("race", stale)  # ...the reader fills before the put...
        writer.cache.put("race", None)  # ...and the writer's put wins

        assert reader.resolve("race") is None


def test_a_fill_from_a_read_older_than_a_create_loses(settings: Settings) -> None:
    with LinkStore(settings) as writer, LinkStore(settings) as reader:
        writer.cache._cache.clear()
        stale = _reader_reads_sqlite(reader, "fresh")
        assert stale is None
        writer.create("https://example.com/new", "fresh")
        reader.cache.fill("fresh", stale)
        assert reader.resolve("fresh") == Target("https://example.com/new")


def test_a_refused_write_takes_nothing_from_the_other_buckets(
    store: LinkStore, tmp_path: Path
) -> None:
    limits = Settings.load(
        db_path=tmp_path / "x.db",
        cache_dir=tmp_path / "x",
        environ={"LINKBROKER_RATE_LIMIT": "1", "LINKBROKER_RATE_BURST": "2"},
    )
    for _ in range(2):
        store.cache.limit(["token:a", "address:x"], limits)
    with pytest.raises(RateLimited, match="address"):
        store.cache.limit(["token:b", "address:x"], limits)
    for _ in range(2):  # token b lost nothing to the refused write
        store.cache.limit(["token:b", "address:y"], limits)
    with pytest.raises(RateLimited, match="token"):
        store.cache.limit(["token:b", "address:z"], limits)
