"""Every route and error of the ASGI app, in process through httpx."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import Invoke, change, query

from linkbroker.server import App
from linkbroker.settings import Settings
from linkbroker.store import LinkStore

pytestmark = pytest.mark.anyio

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    with LinkStore(settings) as store:
        store.create("https://example.com/landing?ref=short", "promo")
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


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "OK\n"


async def test_root_names_the_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "linkbroker" in response.text


async def test_redirect_to_the_stored_destination(client: httpx.AsyncClient) -> None:
    response = await client.get("/promo")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/landing?ref=short"
    assert "no-store" in response.headers["cache-control"]
    assert response.content == b""


async def test_head_answers_the_same_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/promo")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/landing?ref=short"
    assert response.content == b""


async def test_query_string_is_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/promo?next=https://evil.example/&utm=x")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/landing?ref=short"


async def test_unknown_slug_is_404_with_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert "Not found" in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_on_a_slug_are_405(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/promo")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_malformed_slug_never_touches_storage(
    app: App, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(slug: str) -> None:
        raise AssertionError(f"storage was asked about {slug!r}")

    monkeypatch.setattr(app.store, "resolve", explode)
    for path in ("/a.b", "/" + "x" * 65, "/a/b", "/%00", "/healthz/x"):
        assert (await client.get(path)).status_code == 404


HOSTILE = [
    pytest.param("//evil.example", id="double slash"),
    pytest.param("//evil.example/promo", id="double slash then slug"),
    pytest.param("/\\evil.example", id="backslash"),
    pytest.param("/%2F%2Fevil.example", id="encoded slashes"),
    pytest.param("/%5C%5Cevil.example", id="encoded backslashes"),
    pytest.param("/../promo", id="dot dot"),
    pytest.param("/promo/../../evil", id="dot dot after slug"),
    pytest.param("/promo/", id="trailing slash"),
    pytest.param("/promo%0D%0ALocation:%20https://evil.example", id="crlf"),
    pytest.param("/https://evil.example", id="url as path"),
    pytest.param("/pr%C3%B6mo", id="unicode"),
    pytest.param("/" + "a" * 10_000, id="very long"),
    pytest.param("/promo%00", id="nul"),
    pytest.param("/.promo", id="dot prefix"),
]


@pytest.mark.parametrize("path", HOSTILE)
async def test_crafted_paths_never_redirect_elsewhere(
    client: httpx.AsyncClient, path: str
) -> None:
    # Sent as raw bytes, so that the client does not resolve "//host" or "..".
    url = httpx.URL("http://s.test").copy_with(raw_path=path.encode())
    response = await client.get(url)
    assert response.status_code in {302, 404}
    if response.status_code == 302:
        assert response.headers["location"] == "https://example.com/landing?ref=short"


async def test_percent_encoded_slug_reaches_only_that_link(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/%70romo")  # %70 is 'p'
    assert response.headers.get("location") in {
        None,
        "https://example.com/landing?ref=short",
    }


async def test_a_human_click_is_recorded(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.get("/promo", headers={"referer": "https://news.example/item?id=1"})
    assert await app._recorder().flush() == 1

    [row] = query(
        settings.db_path,
        "SELECT slug, referrer_host, user_agent, is_bot, bot_reason, visitor, "
        "clicked_at FROM clicks",
    )
    slug, referrer, agent, is_bot, reason, visitor, clicked_at = row
    assert (slug, referrer, agent, is_bot, reason) == (
        "promo",
        "news.example",
        BROWSER,
        0,
        None,
    )
    assert "203.0.113.7" not in visitor
    assert len(visitor) == 16
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", clicked_at)
    assert query(settings.db_path, "SELECT clicks, bot_clicks FROM links") == [(1, 0)]
    assert query(settings.db_path, "SELECT human, bot FROM daily_clicks") == [(1, 0)]


BOTS = [
    pytest.param(
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", id="slack"
    ),
    pytest.param("WhatsApp/2.23.20.0", id="whatsapp"),
    pytest.param("Twitterbot/1.0", id="twitter"),
    pytest.param(
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        id="discord",
    ),
    pytest.param("TelegramBot (like TwitterBot)", id="telegram"),
    pytest.param(
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        id="facebook",
    ),
    pytest.param(
        "http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/)", id="mastodon"
    ),
    pytest.param("Mozilla/5.0 (compatible; Googlebot/2.1)", id="googlebot"),
    pytest.param("curl/8.5.0", id="curl"),
    pytest.param("Wget/1.21.4", id="wget"),
    pytest.param("python-requests/2.32.3", id="requests"),
    pytest.param("", id="empty agent"),
]


@pytest.mark.parametrize("agent", BOTS)
async def test_bots_and_previews_are_recorded_apart(
    app: App, client: httpx.AsyncClient, settings: Settings, agent: str
) -> None:
    response = await client.get("/promo", headers={"user-agent": agent})
    assert response.status_code == 302
    await app._recorder().flush()

    [(is_bot, reason)] = query(
        settings.db_path, "SELECT is_bot, bot_reason FROM clicks"
    )
    assert is_bot == 1
    assert reason
    assert query(settings.db_path, "SELECT clicks, bot_clicks FROM links") == [(0, 1)]
    assert query(settings.db_path, "SELECT human, bot FROM daily_clicks") == [(0, 1)]


async def test_head_is_never_a_human_click(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.head("/promo")
    await app._recorder().flush()
    assert query(settings.db_path, "SELECT is_bot, bot_reason FROM clicks") == [
        (1, "HEAD request")
    ]
    assert query(settings.db_path, "SELECT clicks FROM links") == [(0,)]


async def test_not_found_and_refused_requests_are_not_clicks(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.get("/nothing")
    await client.post("/promo")
    await client.get("/healthz")
    assert app._recorder().pending() == 0


async def test_clicks_wait_in_memory_until_the_flush(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    for _ in range(5):
        await client.get("/promo")
    assert app._recorder().pending() == 5
    assert query(settings.db_path, "SELECT count(*) FROM clicks") == [(0,)]
    assert await app._recorder().flush() == 5
    assert query(settings.db_path, "SELECT clicks FROM links") == [(5,)]


async def test_a_failed_flush_keeps_its_clicks(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    # A trigger makes the database refuse clicks for real, in the writer process.
    refuse = (
        "CREATE TRIGGER refuse BEFORE INSERT ON clicks "
        "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
    )
    recorder = app._recorder()
    query(settings.db_path, refuse)
    await client.get("/promo")
    assert await recorder.flush() == 0
    assert recorder.pending() == 1

    await client.get("/promo")
    query(settings.db_path, "DROP TRIGGER refuse")
    assert await recorder.flush() == 2
    assert recorder.pending() == 0
    assert query(settings.db_path, "SELECT clicks FROM links") == [(2,)]


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.get("/promo", headers={"x-forwarded-for": "198.51.100.1"})
    await client.get("/promo", headers={"x-forwarded-for": "198.51.100.2"})
    await app._recorder().flush()
    visitors = {row[0] for row in query(settings.db_path, "SELECT visitor FROM clicks")}
    assert len(visitors) == 1  # both came from the same untrusted peer


async def test_forwarded_for_is_honoured_from_trusted_proxies(tmp_path: Any) -> None:
    settings = Settings.load(
        db_path=tmp_path / "l.db",
        cache_dir=tmp_path / "c",
        environ={"LINKBROKER_TRUSTED_PROXIES": "203.0.113.0/24"},
    )
    with LinkStore(settings) as store:
        store.create("https://example.com/", "p")
    app = App(settings)
    await app.startup()
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://s.test"
    ) as client:
        for visitor in ("198.51.100.1", "198.51.100.2", "198.51.100.1"):
            await client.get(
                "/p", headers={"x-forwarded-for": f"{visitor}, 203.0.113.9"}
            )
    await app.shutdown()
    visitors = [
        row[0]
        for row in query(settings.db_path, "SELECT visitor FROM clicks ORDER BY id")
    ]
    assert visitors[0] == visitors[2] != visitors[1]


async def test_shutdown_flushes_every_pending_click(settings: Settings) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/", "s")
    app = App(settings)
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://s.test"
    ) as client:
        for _ in range(25):
            await client.get("/s", headers={"user-agent": BROWSER})
    await app.shutdown()
    assert query(settings.db_path, "SELECT clicks FROM links") == [(25,)]


async def test_a_delete_elsewhere_is_served_after_a_refresh(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/promo")).status_code == 302
    with LinkStore(settings) as other:
        other.delete("promo")
    app.refresh()
    assert (await client.get("/promo")).status_code == 404


async def test_storage_failure_is_a_503_not_a_500(
    app: App, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkbroker.errors import StorageError

    def broken(slug: str) -> None:
        raise StorageError("disk on fire", slug)

    monkeypatch.setattr(app.store, "resolve", broken)
    assert (await client.get("/unseen")).status_code == 503


async def test_a_non_ascii_destination_from_an_older_database_is_served_encoded(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    change(
        settings.db_path,
        "INSERT INTO links (slug, destination_url) "
        "VALUES ('leg', 'https://exämple.com/ü')",
    )
    response = await client.get("/leg")
    assert response.status_code == 302
    assert response.headers["location"] == "https://xn--exmple-cua.com/%C3%BC"


async def test_a_reclaimed_slug_starts_without_old_counts(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.get("/promo", headers={"referer": "https://old.example/"})
    await app._recorder().flush()
    with LinkStore(settings) as store:
        store.delete("promo")
        store.create("https://example.com/new", "promo", reclaim=True)
        from linkbroker.stats import link_report

        report = link_report(store, "promo")
    assert report["clicks"] == 0
    assert sum(day["human"] for day in report["daily"]) == 0
    assert report["top_referrers"] == []


async def test_clicks_waiting_for_a_purged_link_leave_no_trace(
    app: App, client: httpx.AsyncClient, settings: Settings
) -> None:
    await client.get("/promo", headers={"referer": "https://old.example/"})
    with LinkStore(settings) as store:
        store.purge("promo")  # while the click still waits for the flush
    await app._recorder().flush()
    with LinkStore(settings) as store:
        store.create("https://example.com/new", "promo")
        from linkbroker.stats import link_report

        report = link_report(store, "promo")
    assert sum(day["human"] for day in report["daily"]) == 0
    assert report["top_referrers"] == []
    assert query(settings.db_path, "SELECT count(*) FROM clicks") == [(0,)]


async def test_an_expiry_another_tool_wrote_unreadably_is_not_served(
    settings: Settings, client: httpx.AsyncClient, cli: Invoke
) -> None:
    change(
        settings.db_path,
        "INSERT INTO links (slug, destination_url, expires_at) "
        "VALUES ('odd', 'https://example.com/', '2024-02-30 10:00:00')",
    )

    assert (await client.get("/odd")).status_code == 404
    result = cli("disable", "odd")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
