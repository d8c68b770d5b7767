"""The OpenAPI document, checked by schemathesis against a live server.

Deterministic so that CI never flakes: Hypothesis derandomised (a fixed seed per
test), a bounded number of examples, and no example database carried between runs.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from live import LiveServer, live_server
from schemathesis import checks

from linkbroker import openapi
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.tokens import TokenStore

schema = schemathesis.openapi.from_dict(openapi.document("http://127.0.0.1:8000"))

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, str]]:
    folder: Path = tmp_path_factory.mktemp("openapi")
    config = Settings.load(
        db_path=folder / "links.db",
        cache_dir=folder / "cache",
        environ={"LINKBROKER_RATE_LIMIT": "0"},
    )
    tokens = TokenStore(config.db_path)
    token = tokens.create("schemathesis")
    tokens.close()
    # Links to list, so that the success responses are checked, not only errors.
    with LinkStore(config) as links:
        for slug in ("a", "b", "c"):
            links.create(f"https://example.com/{slug}", slug)
    with live_server(config) as server:
        yield server, token
        assert server.stop() == 0


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_openapi_document(
    case: Any, served: tuple[LiveServer, str]
) -> None:
    server, token = served
    case.call_and_validate(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
    )
