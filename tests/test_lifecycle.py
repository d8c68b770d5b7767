"""The life of a link in the store and the server: terms, tombstones, history."""

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest
from conftest import query

from linkbroker import lifecycle, slugs
from linkbroker.errors import InvalidDestination, InvalidTerms, LinkNotFound, SlugTaken
from linkbroker.model import Edit, Terms
from linkbroker.server import App
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _expired() -> str | None:
    # An expiry computed from a moment long gone: already past when stored.
    return lifecycle.expiry("1h", None, now=PAST)


# Reading terms


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("30m", 1800), ("12h", 43_200), ("7d", 604_800), ("1d12h", 129_600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert lifecycle.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    "text",
    ["", "7", "d", "5x", "-1d", "0s", "1.5h", "99999w", "\u0663d", "1" * 5000 + "s"],
)
def test_bad_durations_name_the_value(text: str) -> None:
    with pytest.raises(InvalidTerms, match="duration") as caught:
        lifecycle.parse_duration(text)
    assert caught.value.field == "expiresIn"


def test_moments_are_utc_unless_they_say_otherwise() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert lifecycle.expiry(None, "2026-02-01", now) == "2026-02-01 00:00:00"
    assert lifecycle.expiry(None, "2026-02-01T18:30", now) == "2026-02-01 18:30:00"
    assert lifecycle.expiry(None, "2026-02-01T18:30+02:00", now) == (
        "2026-02-01 16:30:00"
    )
    assert lifecycle.expiry("1d", None, now) == "2026-01-02 00:00:00"
    assert lifecycle.expiry(None, None, now) is None


@pytest.mark.parametrize(
    ("expires_in", "expires_at", "message"),
    [
        (None, "2025-12-31", "already past"),
        (None, "next tuesday", "not a date"),
        ("1d", "2026-02-01", "not both"),
        (None, "2200-01-01", "days away"),
        (None, "9999-12-31T23:00-05:00", "out of range"),
        (None, "0001-01-01T00:00+05:00", "out of range"),
    ],
)
def test_bad_expiries(expires_in: str | None, expires_at: str, message: str) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(InvalidTerms, match=message):
        lifecycle.expiry(expires_in, expires_at, now)


# The store


def test_terms_are_stored_and_served(store: LinkStore) -> None:
    terms = Terms(
        status=307,
        expires_at="2099-01-01 00:00:00",
        max_clicks=5,
        fallback="https://example.com/over",
    )
    link = store.create("https://example.com/", "t", terms=terms)
    assert (link.status, link.expires_at, link.max_clicks) == (307, terms.expires_at, 5)
    assert link.fallback == "https://example.com/over"
    assert link.state == "active"

    target = store.resolve("t")
    assert target is not None and target.guarded
    assert target.status == 307 and target.max_clicks == 5
    assert target.expires == dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp()


def test_plain_links_are_not_guarded(store: LinkStore) -> None:
    store.create("https://example.com/", "plain")
    target = store.resolve("plain")
    assert target is not None and not target.guarded


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        (Terms(status=303), "status"),
        (Terms(max_clicks=0), "maxClicks"),
        (Terms(fallback="javascript:alert(1)"), "fallback"),
        (Terms(fallback="http://127.0.0.1/admin"), "fallback"),
    ],
)
def test_bad_terms_are_refused_and_nothing_is_stored(
    store: LinkStore, terms: Terms, field: str
) -> None:
    with pytest.raises(InvalidTerms) as caught:
        store.create("https://example.com/", "bad", terms=terms)
    assert caught.value.field == field
    assert store.count() == 0


def test_expired_and_exhausted_links_keep_everything_and_can_be_rearmed(
    store: LinkStore,
) -> None:
    store.create("https://example.com/", "old", terms=Terms(expires_at=_expired()))
    assert store.get("old").state == "expired"
    rearmed = store.edit("old", Edit(expires_at=lifecycle.expiry("7d", None)))
    assert rearmed.state == "active"

    store.create("https://example.com/", "few", terms=Terms(max_clicks=2))
    assert [store.take_click("few") for _ in range(3)] == [True, True, False]
    assert store.get("few").state == "exhausted"
    assert not store.has_clicks_left("few")
    rearmed = store.edit("few", Edit(max_clicks=1))
    assert (rearmed.state, rearmed.limit_used) == ("active", 0)
    assert store.take_click("few") and not store.take_click("few")
    assert store.edit("few", Edit(max_clicks=None)).state == "active"
    assert store.has_clicks_left("few")


def test_disable_and_enable(store: LinkStore) -> None:
    store.create("https://example.com/", "d")
    disabled = store.edit("d", Edit(disabled=True))
    assert disabled.state == "disabled" and disabled.disabled_at is not None
    store.conn.execute("UPDATE links SET disabled_at = '2026-01-01 00:00:00'")
    again = store.edit("d", Edit(disabled=True))
    assert again.disabled_at == "2026-01-01 00:00:00"  # when it was first switched off
    target = store.resolve("d")
    assert target is not None and target.disabled
    assert store.edit("d", Edit(disabled=False)).state == "active"


def test_a_deleted_slug_is_a_tombstone(store: LinkStore) -> None:
    store.create("https://example.com/", "gone")
    store.delete("gone")

    assert store.resolve("gone") is None
    assert store.count() == 0 and store.newest() == []
    with pytest.raises(LinkNotFound):
        store.get("gone")
    assert store.get("gone", deleted=True).deleted_at is not None
    with pytest.raises(LinkNotFound):
        store.delete("gone")
    with pytest.raises(SlugTaken, match="reclaim"):
        store.create("https://example.com/other", "gone")

    reclaimed = store.create("https://example.com/other", "gone", reclaim=True)
    assert reclaimed.destination == "https://example.com/other"
    assert [c.destination for c in store.history("gone")] == [
        "https://example.com/other"
    ]


def test_generated_slugs_skip_tombstones(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create("https://example.com/", "Abcdefg")
    store.delete("Abcdefg")
    # The generator is made to offer the tombstone's slug first: it must be passed.
    offered = iter(["Abcdefg", "Hjkmnpq"])
    monkeypatch.setattr(slugs, "generate", lambda length: next(offered))
    assert store.create("https://example.com/new").slug == "Hjkmnpq"


def test_purge_removes_the_link_its_clicks_history_and_tombstone(
    store: LinkStore, settings: Settings
) -> None:
    store.create("https://example.com/", "p")
    store.edit("p", Edit(destination="https://example.com/2"))
    store.conn.execute(
        "INSERT INTO clicks (slug, clicked_at, user_agent) VALUES ('p', 'x', 'y')"
    )
    store.conn.execute("INSERT INTO daily_clicks VALUES ('p', '2026-01-01', 3, 1)")
    store.delete("p")

    assert store.purge("p").slug == "p"
    for table in ("links", "clicks", "daily_clicks", "link_history"):
        assert query(settings.db_path, f"SELECT * FROM {table} WHERE slug = 'p'") == []
    assert store.create("https://example.com/again", "p").slug == "p"
    with pytest.raises(LinkNotFound):
        store.purge("never")


def test_history_edit_and_revert(store: LinkStore) -> None:
    store.create("https://example.com/1", "h", by="cli:ann")
    store.edit("h", Edit(destination="https://example.com/2"), by="token:bot")
    store.edit("h", Edit(status=308), by="cli:ann")
    store.edit("h", Edit(max_clicks=9))  # not a destination change: no entry

    history = store.history("h")
    assert [(c.destination, c.status, c.changed_by) for c in history] == [
        ("https://example.com/1", 302, "cli:ann"),
        ("https://example.com/2", 302, "token:bot"),
        ("https://example.com/2", 308, "cli:ann"),
    ]

    assert store.revert("h", by="cli:bob").status == 302
    back = store.revert("h", by="cli:bob")
    assert (back.destination, back.status) == ("https://example.com/1", 302)
    assert [c.reverted_by for c in store.history("h")] == [None, "cli:bob", "cli:bob"]
    with pytest.raises(InvalidTerms, match="no earlier destination"):
        store.revert("h")


def test_revert_to_a_destination_the_blocklist_now_refuses(
    reverted_into_blocklist: Settings,
) -> None:
    with LinkStore(reverted_into_blocklist) as store:
        with pytest.raises(InvalidDestination, match=r"spam\.example"):
            store.revert("r")
        assert store.get("r").destination == "https://example.com/safe"
        assert all(c.reverted_at is None for c in store.history("r"))


def test_links_from_before_history_start_it_on_their_first_edit(
    store: LinkStore, settings: Settings
) -> None:
    store.conn.execute(
        "INSERT INTO links (slug, destination_url, created_at) "
        "VALUES ('legacy', 'https://example.com/old', '2024-05-01 10:00:00')"
    )
    assert [c.destination for c in store.history("legacy")] == [
        "https://example.com/old"
    ]
    store.edit("legacy", Edit(destination="https://example.com/new"))
    first, second = store.history("legacy")
    assert (first.destination, first.changed_at) == (
        "https://example.com/old",
        "2024-05-01 10:00:00",
    )
    assert (second.destination, second.changed_by) == ("https://example.com/new", "cli")
    assert store.revert("legacy").destination == "https://example.com/old"


def test_an_empty_fallback_is_refused_on_edit_as_on_create(store: LinkStore) -> None:
    store.create("https://example.com/", "f")
    with pytest.raises(InvalidTerms, match="Fallback"):
        store.edit("f", Edit(fallback=""))
    assert store.get("f").fallback is None


def test_reuse_never_hands_back_a_link_that_no_longer_works(store: LinkStore) -> None:
    once = store.create("https://example.com/", reuse=True, terms=Terms(max_clicks=1))
    assert store.take_click(once.slug)
    fresh = store.create("https://example.com/", reuse=True, terms=Terms(max_clicks=1))
    assert fresh.slug != once.slug and fresh.state == "active"
    with pytest.raises(SlugTaken):
        store.create(
            "https://example.com/", once.slug, reuse=True, terms=Terms(max_clicks=1)
        )


def test_reuse_matches_terms_too(store: LinkStore) -> None:
    plain = store.create("https://example.com/", reuse=True)
    assert store.create("https://example.com/", reuse=True).slug == plain.slug
    limited = store.create(
        "https://example.com/", reuse=True, terms=Terms(max_clicks=3)
    )
    assert limited.slug != plain.slug


# The server


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    server = App(settings)
    await server.startup()
    yield server
    await server.shutdown()


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://s.test", headers={"user-agent": BROWSER}
    ) as opened:
        yield opened


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_click_that_reaches_the_limit_is_the_last_redirect(
    app: App, client: httpx.AsyncClient, store: LinkStore
) -> None:
    store.create("https://example.com/", "three", terms=Terms(max_clicks=3))

    # Bots, previews and HEAD see the link without using it up.
    assert (await client.head("/three")).status_code == 302
    slack = {"user-agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}
    assert (await client.get("/three", headers=slack)).status_code == 302
    assert (await client.get("/three", headers={"user-agent": ""})).status_code == 302

    statuses = [(await client.get("/three")).status_code for _ in range(5)]
    assert statuses == [302, 302, 302, 410, 410]
    assert (await client.head("/three")).status_code == 410
    assert store.get("three").limit_used == 3

    # Spent, the link stops asking for the write lock: it answers at once even
    # while another process holds that lock.
    other = sqlite3.connect(store.settings.db_path)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert (await client.get("/three")).status_code == 410
    finally:
        other.close()


@pytest.mark.anyio
async def test_an_exhausted_link_with_a_fallback_redirects_there(
    client: httpx.AsyncClient, store: LinkStore
) -> None:
    terms = Terms(max_clicks=1, fallback="https://example.com/sold-out")
    store.create("https://example.com/ticket", "once", terms=terms)
    first, second = [await client.get("/once") for _ in range(2)]
    assert first.headers["location"] == "https://example.com/ticket"
    assert second.status_code == 302
    assert second.headers["location"] == "https://example.com/sold-out"
    assert second.headers["cache-control"] == "no-store, max-age=0"


@pytest.mark.anyio
async def test_expired_disabled_and_fallback_answers(
    app: App, client: httpx.AsyncClient, store: LinkStore
) -> None:
    store.create("https://example.com/", "exp", terms=Terms(expires_at=_expired()))
    terms = Terms(expires_at=_expired(), fallback="https://example.com/later")
    store.create("https://example.com/", "expfb", terms=terms)
    store.create("https://example.com/", "off")
    store.edit("off", Edit(disabled=True))

    gone = await client.get("/exp")
    assert gone.status_code == 410
    assert "expired" in gone.text
    assert gone.headers["cache-control"] == "no-store, max-age=0"
    assert (await client.get("/expfb")).headers["location"] == (
        "https://example.com/later"
    )
    assert (await client.get("/off")).status_code == 410
    assert (await client.post("/off")).status_code == 405

    store.edit("off", Edit(disabled=False))
    app.refresh()
    assert (await client.get("/off")).status_code == 302


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "cache_control"),
    [
        (302, "no-store, max-age=0"),
        (307, "no-store, max-age=0"),
        (301, "max-age=86400"),
        (308, "max-age=86400"),
    ],
)
async def test_each_status_with_its_cache_control(
    client: httpx.AsyncClient, store: LinkStore, status: int, cache_control: str
) -> None:
    store.create("https://example.com/", f"s{status}", terms=Terms(status=status))
    response = await client.get(f"/s{status}")
    assert response.status_code == status
    assert response.headers["cache-control"] == cache_control
    assert response.headers["location"] == "https://example.com/"


@pytest.mark.anyio
async def test_a_deleted_link_answers_like_one_that_never_was(
    app: App, client: httpx.AsyncClient, store: LinkStore
) -> None:
    store.create("https://example.com/", "bye")
    assert (await client.get("/bye")).status_code == 302
    store.delete("bye")
    app.refresh()
    gone, never = await client.get("/bye"), await client.get("/never")
    assert (gone.status_code, gone.text) == (never.status_code, never.text)
    assert gone.status_code == 404


def test_tidy_removes_expired_cache_entries(
    store: LinkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkbroker import cache as cache_module

    monkeypatch.setattr(cache_module, "ABSENT_TTL", -1.0)  # expired when written
    for slug in ("a", "b", "c"):
        store.resolve(slug)
    assert store.cache.tidy() == 3
    assert store.cache.tidy() == 0
