"""The management API in process: tokens, every route, errors, limits, hostile input."""

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Invoke

from linkbroker.server import App
from linkbroker.settings import Settings
from linkbroker.tokens import TokenStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.load(
        db_path=tmp_path / "links.db",
        cache_dir=tmp_path / "cache",
        environ={"LINKBROKER_BASE_URL": "https://s.example", **env},
    )


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path, LINKBROKER_RATE_LIMIT="0")


@pytest.fixture
def token(api_settings: Settings) -> str:
    store = TokenStore(api_settings.db_path)
    try:
        return store.create("tests")
    finally:
        store.close()


async def _client(
    settings: Settings, token: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    app = App(settings)
    await app.startup()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 4000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://s.test", headers=headers
    ) as client:
        yield client
    await app.shutdown()


@pytest.fixture
async def api(api_settings: Settings, token: str) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(api_settings, token):
        yield client


def _links(settings: Settings) -> list[Any]:
    conn = sqlite3.connect(settings.db_path)
    try:
        return conn.execute("SELECT * FROM links ORDER BY slug").fetchall()
    finally:
        conn.close()


async def test_shorten_keeps_the_original_request_and_response_shape(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/api/shorten", json={"slug": "docs", "destination": "https://example.com/d"}
    )
    assert response.status_code == 201
    assert response.json() == {
        "success": True,
        "shortUrl": "https://s.example/docs",
        "slug": "docs",
        "destination": "https://example.com/d",
    }
    redirect = await api.get("/docs")
    assert redirect.headers["location"] == "https://example.com/d"


async def test_shorten_without_a_slug_generates_one(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/shorten", json={"destination": "https://e.example/"}
    )
    assert response.status_code == 201
    assert len(response.json()["slug"]) == 7


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        pytest.param({}, 400, "missing_field", id="missing destination"),
        pytest.param(
            {"destination": None}, 400, "missing_field", id="null destination"
        ),
        pytest.param({"destination": 42}, 400, "invalid_field", id="number"),
        pytest.param(
            {"destination": ["https://e.example/"]}, 400, "invalid_field", id="list"
        ),
        pytest.param(
            {"destination": "https://e.example/", "slug": 7},
            400,
            "invalid_field",
            id="slug number",
        ),
        pytest.param(
            {"destination": "https://e.example/", "extra": 1},
            400,
            "unknown_field",
            id="extra",
        ),
        pytest.param(
            {"destination": "javascript:alert(1)"},
            422,
            "invalid_destination",
            id="scheme",
        ),
        pytest.param(
            {"destination": "https://e.example/", "slug": "a b"},
            422,
            "invalid_slug",
            id="slug",
        ),
        pytest.param(
            {"destination": "https://e.example/", "slug": "api"},
            422,
            "invalid_slug",
            id="reserved",
        ),
    ],
)
async def test_shorten_refusals(
    api: httpx.AsyncClient, api_settings: Settings, body: Any, status: int, code: str
) -> None:
    response = await api.post("/api/shorten", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert _links(api_settings) == []


async def test_refused_destination_names_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/shorten", json={"destination": "ftp://e.example/"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "destination"
    assert "destination" in response.json()["error"]["message"]


async def test_taken_slug_is_409(api: httpx.AsyncClient) -> None:
    first = await api.post(
        "/api/shorten", json={"slug": "x", "destination": "https://a.example/"}
    )
    assert first.status_code == 201
    second = await api.post(
        "/api/shorten", json={"slug": "x", "destination": "https://b.example/"}
    )
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "slug_taken"


async def test_links_are_listed_newest_first_in_pages(api: httpx.AsyncClient) -> None:
    for n in range(5):
        await api.post(
            "/api/shorten", json={"slug": f"p{n}", "destination": "https://e.example/"}
        )
    first = (await api.get("/api/links", params={"limit": 2})).json()
    assert [link["slug"] for link in first["links"]] == ["p4", "p3"]
    assert first["next_offset"] == 2
    last = (await api.get("/api/links", params={"limit": 2, "offset": 4})).json()
    assert [link["slug"] for link in last["links"]] == ["p0"]
    assert last["next_offset"] is None


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=abc",
        "limit=1001",
        "offset=-1",
        "limit=%C2%B2",  # '²' is a digit to str.isdigit, not to int()
        "offset=" + "9" * 5000,
    ],
)
async def test_bad_page_parameters_are_400(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"/api/links?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"


async def test_one_link_patch_and_delete(api: httpx.AsyncClient) -> None:
    await api.post(
        "/api/shorten", json={"slug": "e", "destination": "https://old.example/"}
    )
    got = (await api.get("/api/links/e")).json()
    assert got["destination"] == "https://old.example/"
    assert got["clicks"] == 0

    patched = await api.patch(
        "/api/links/e", json={"destination": "https://new.example/"}
    )
    assert patched.status_code == 200
    assert patched.json()["destination"] == "https://new.example/"
    assert (await api.get("/e")).headers["location"] == "https://new.example/"

    assert (await api.delete("/api/links/e")).status_code == 204
    assert (await api.get("/api/links/e")).status_code == 404
    assert (await api.get("/e")).status_code == 404


async def test_patch_keeps_the_old_destination_when_refused(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    await api.post(
        "/api/shorten", json={"slug": "e", "destination": "https://old.example/"}
    )
    before = _links(api_settings)
    response = await api.patch("/api/links/e", json={"destination": "data:text/html,x"})
    assert response.status_code == 422
    assert _links(api_settings) == before


async def test_stats_match_the_cli(
    api: httpx.AsyncClient, api_settings: Settings, cli: Invoke
) -> None:
    await api.post(
        "/api/shorten", json={"slug": "s", "destination": "https://e.example/"}
    )
    await api.get("/s")
    response = await api.get("/api/links/s/stats")
    assert response.status_code == 200
    data = response.json()
    assert data["slug"] == "s"
    assert len(data["daily"]) == 30
    from typer.testing import CliRunner

    from linkbroker.cli import app as cli_app

    result = CliRunner().invoke(
        cli_app, ["stats", "s", "--json"], env=api_settings.environ()
    )
    assert json.loads(result.stdout).keys() == data.keys()


async def test_unknown_routes_and_methods(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = await api.put("/api/links/x", json={})
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, PATCH, DELETE"


async def test_openapi_document_describes_every_route(api: httpx.AsyncClient) -> None:
    document = (await api.get("/api/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/shorten",
        "/api/links",
        "/api/links/{slug}",
        "/api/links/{slug}/stats",
        "/api/links/{slug}/history",
        "/api/links/{slug}/revert",
        "/api/links/{slug}/qr",
        "/api/openapi.json",
    }


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="none"),
        pytest.param("Bearer", id="empty"),
        pytest.param("Basic dXNlcjpwdw==", id="basic"),
        pytest.param("Bearer lb_000000000000_" + "A" * 32, id="unknown"),
        pytest.param("Bearer not-a-token", id="malformed"),
    ],
)
async def test_every_api_route_needs_a_valid_token(
    api_settings: Settings, token: str, header: str | None
) -> None:
    async for client in _client(api_settings, None):
        headers = {"authorization": header} if header else {}
        for method, path in [
            ("POST", "/api/shorten"),
            ("GET", "/api/links"),
            ("GET", "/api/links/x"),
            ("PATCH", "/api/links/x"),
            ("DELETE", "/api/links/x"),
            ("GET", "/api/links/x/stats"),
            ("GET", "/api/openapi.json"),
        ]:
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_revoked_token_stops_working_at_once(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    assert (await api.get("/api/links")).status_code == 200
    store = TokenStore(api_settings.db_path)
    store.revoke("tests")
    store.close()
    assert (await api.get("/api/links")).status_code == 401


async def test_writes_are_rate_limited_with_retry_after(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, LINKBROKER_RATE_LIMIT="60", LINKBROKER_RATE_BURST="3"
    )
    store = TokenStore(settings.db_path)
    token = store.create("limited")
    store.close()
    async for client in _client(settings, token):
        statuses = [
            (
                await client.post(
                    "/api/shorten", json={"destination": "https://e.example/"}
                )
            )
            for _ in range(5)
        ]
        assert [r.status_code for r in statuses] == [201, 201, 201, 429, 429]
        assert int(statuses[3].headers["retry-after"]) >= 1
        assert statuses[3].json()["error"]["code"] == "rate_limited"
        assert (
            await client.get("/api/links")
        ).status_code == 200  # reads are not limited


HOSTILE_BODIES = [
    pytest.param(b"{", id="truncated"),
    pytest.param(b"not json", id="text"),
    pytest.param(b"", id="empty"),
    pytest.param(b"[]", id="array"),
    pytest.param(b'"https://e.example/"', id="bare string"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deep nesting"),
    pytest.param(
        b'{"destination": ' + b"[" * 3000 + b"]" * 3000 + b"}", id="deep field"
    ),
    pytest.param(
        b'{"destination": "https://e.example/\\r\\nSet-Cookie: a=b"}', id="crlf"
    ),
    pytest.param(
        b'{"destination": "https://e.example/", "slug": "a\\r\\nb"}', id="crlf slug"
    ),
    pytest.param(
        b'{"destination": "https://e.example/", "slug": "\\u0000"}', id="nul slug"
    ),
    pytest.param(
        '{"destination": "https://ex\u00e4mple\u202e.com/"}'.encode(), id="bidi"
    ),
    pytest.param(b'{"destination": "https://e.example/\\ud800"}', id="lone surrogate"),
    pytest.param(b'{"destination": "\xff\xfe"}', id="not utf-8"),
    pytest.param(b'{"destination": 1e999}', id="huge number"),
    pytest.param(b'{"destination": {"$ne": null}}', id="object"),
    pytest.param(b'{"destination": true}', id="boolean"),
    pytest.param(b'{"destination": "' + b"a" * 20000 + b'"}', id="huge"),
    pytest.param(
        b'{"destination": "https://e.example/", "destination": "javascript:x"}',
        id="dup",
    ),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
async def test_hostile_bodies_never_500_and_change_nothing(
    api: httpx.AsyncClient, api_settings: Settings, body: bytes
) -> None:
    await api.post(
        "/api/shorten", json={"slug": "keep", "destination": "https://k.example/"}
    )
    before = _links(api_settings)
    for method, path in [("POST", "/api/shorten"), ("PATCH", "/api/links/keep")]:
        response = await api.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (method, response.text)
        assert response.json()["success"] is False
        assert _links(api_settings) == before


async def test_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    body = json.dumps({"destination": "https://e.example/" + "a" * 17000})
    response = await api.post(
        "/api/shorten", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_body_that_is_not_json_is_415(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/shorten", content=b"destination=x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    "slug",
    ["a%0D%0Ab", "%2e%2e", "x%00", "%C3%BC", "a" * 65, "..", "a%20b", "%ED%A0%80"],
)
async def test_hostile_slugs_in_paths_never_500(
    api: httpx.AsyncClient, slug: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        url = httpx.URL("http://s.test").copy_with(
            raw_path=f"/api/links/{slug}".encode()
        )
        response = await api.request(
            method, url, json={"destination": "https://e.example/"}
        )
        assert response.status_code < 500


# The life of a link through the API


async def test_terms_on_create_and_the_permanent_warning(
    api: httpx.AsyncClient,
) -> None:
    made = await api.post(
        "/api/shorten",
        json={
            "slug": "sale",
            "destination": "https://example.com/sale",
            "status": 308,
            "expiresIn": "7d",
            "maxClicks": 100,
            "fallback": "https://example.com/over",
        },
    )
    assert made.status_code == 201
    assert "permanent" in made.json()["warning"]
    link = (await api.get("/api/links/sale")).json()
    assert link["status"] == 308
    assert link["max_clicks"] == 100
    assert link["fallback"] == "https://example.com/over"
    assert link["expires_at"] > "2026"
    assert link["state"] == "active"

    plain = await api.post("/api/shorten", json={"destination": "https://example.com"})
    assert "warning" not in plain.json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"status": 303}, 422, "status"),
        ({"status": True}, 400, None),
        ({"maxClicks": 0}, 422, "maxClicks"),
        ({"maxClicks": "3"}, 400, None),
        ({"expiresIn": "soon"}, 422, "expiresIn"),
        ({"expiresAt": "2001-01-01"}, 422, "expiresAt"),
        ({"expiresIn": "1d", "expiresAt": "2099-01-01"}, 422, "expiresAt"),
        ({"fallback": "http://10.0.0.1/"}, 422, "fallback"),
        ({"reclaim": "yes"}, 400, None),
    ],
)
async def test_bad_terms_on_create_change_nothing(
    api: httpx.AsyncClient,
    api_settings: Settings,
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    response = await api.post(
        "/api/shorten", json={"destination": "https://example.com/", **body}
    )
    assert response.status_code == status
    assert response.json()["error"].get("field") == field
    assert _links(api_settings) == []


async def test_patch_changes_terms_and_null_removes_them(
    api: httpx.AsyncClient,
) -> None:
    await api.post(
        "/api/shorten",
        json={
            "slug": "p",
            "destination": "https://example.com/",
            "expiresIn": "1d",
            "maxClicks": 5,
            "fallback": "https://example.com/fb",
        },
    )
    off = await api.patch("/api/links/p", json={"disabled": True})
    assert off.json()["state"] == "disabled"
    cleared = await api.patch(
        "/api/links/p",
        json={
            "disabled": False,
            "expiresAt": None,
            "maxClicks": None,
            "fallback": None,
            "status": 307,
        },
    )
    assert cleared.status_code == 200
    link = cleared.json()
    assert (link["state"], link["status"]) == ("active", 307)
    assert link["expires_at"] is link["max_clicks"] is link["fallback"] is None

    for body, status in [
        ({"status": 303}, 422),
        ({"disabled": "no"}, 400),
        ({"destination": None}, 400),
        ({"colour": "red"}, 400),
    ]:
        refused = await api.patch("/api/links/p", json=body)
        assert refused.status_code == status, body
    assert (await api.get("/api/links/p")).json() == link


async def test_history_and_revert_name_the_token(api: httpx.AsyncClient) -> None:
    await api.post(
        "/api/shorten", json={"slug": "h", "destination": "https://a.example/"}
    )
    await api.patch("/api/links/h", json={"destination": "https://b.example/"})

    history = (await api.get("/api/links/h/history")).json()["history"]
    assert [entry["destination"] for entry in history] == [
        "https://a.example/",
        "https://b.example/",
    ]
    assert {entry["changed_by"] for entry in history} == {"token:tests"}

    reverted = await api.post("/api/links/h/revert")
    assert reverted.json()["destination"] == "https://a.example/"
    history = (await api.get("/api/links/h/history")).json()["history"]
    assert history[1]["reverted_by"] == "token:tests"
    nothing = await api.post("/api/links/h/revert")
    assert nothing.status_code == 422
    assert (await api.get("/api/links/h/revert")).status_code == 405
    assert (await api.get("/api/links/nope/history")).status_code == 404


async def test_delete_keeps_a_tombstone_and_purge_frees_the_slug(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    made = {"slug": "t", "destination": "https://example.com/"}
    await api.post("/api/shorten", json=made)
    assert (await api.delete("/api/links/t")).status_code == 204
    assert (await api.get("/api/links/t")).status_code == 404
    taken = await api.post("/api/shorten", json=made)
    assert taken.status_code == 409
    assert "reclaim" in taken.json()["error"]["message"]
    assert (await api.post("/api/shorten", json={**made, "reclaim": True})).is_success

    assert (await api.delete("/api/links/t?purge=maybe")).status_code == 400
    assert (await api.delete("/api/links/t?purge=true")).status_code == 204
    assert _links(api_settings) == []
    assert (await api.post("/api/shorten", json=made)).status_code == 201


async def test_qr_codes_as_svg_and_png(api: httpx.AsyncClient) -> None:
    await api.post(
        "/api/shorten", json={"slug": "q", "destination": "https://a.example/"}
    )
    svg = await api.get("/api/links/q/qr")
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content
    png = await api.get("/api/links/q/qr?format=png")
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    assert (await api.get("/api/links/q/qr?format=gif")).status_code == 400
    assert (await api.get("/api/links/nope/qr")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"expiresAt": "9999-12-31T23:00-05:00"},
        {"expiresAt": "0001-01-01T00:00+05:00"},
        {"expiresIn": "1" * 5000 + "s"},
        {"expiresIn": "\u0663d"},
        {"maxClicks": 10**30},
        {"fallback": ""},
    ],
)
async def test_out_of_range_terms_are_422_not_500(
    api: httpx.AsyncClient, api_settings: Settings, body: dict[str, Any]
) -> None:
    made = await api.post(
        "/api/shorten", json={"destination": "https://example.com/", **body}
    )
    assert made.status_code == 422
    await api.post(
        "/api/shorten", json={"slug": "x", "destination": "https://e.example/"}
    )
    before = _links(api_settings)
    edited = await api.patch("/api/links/x", json=body)
    assert edited.status_code == 422
    assert _links(api_settings) == before
