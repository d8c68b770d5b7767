"""The destination policy: private addresses, the shortener itself, the blocklist."""

from pathlib import Path

import pytest
from conftest import Invoke

from linkbroker.destinations import Policy
from linkbroker.errors import ConfigError, InvalidDestination
from linkbroker.settings import Settings


def _policy(tmp_path: Path, **env: str) -> Policy:
    return Policy(
        Settings.load(
            db_path=tmp_path / "l.db",
            cache_dir=tmp_path / "c",
            environ={"LINKBROKER_BASE_URL": "https://s.example", **env},
        )
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1/", id="loopback"),
        pytest.param("http://127.1.2.3:8080/x", id="loopback range"),
        pytest.param("http://localhost/", id="localhost"),
        pytest.param("http://LOCALHOST./", id="localhost dot"),
        pytest.param("http://app.localhost/", id="subdomain of localhost"),
        pytest.param("http://10.0.0.1/", id="10/8"),
        pytest.param("http://172.16.5.4/", id="172.16/12"),
        pytest.param("http://192.168.1.1/", id="192.168/16"),
        pytest.param(
            "http://169.254.169.254/latest/meta-data", id="link-local metadata"
        ),
        pytest.param("http://0.0.0.0/", id="unspecified"),
        pytest.param("http://[::1]/", id="ipv6 loopback"),
        pytest.param("http://[fe80::1]/", id="ipv6 link-local"),
        pytest.param("http://[fc00::1]/", id="ipv6 unique local"),
        pytest.param("http://[::ffff:127.0.0.1]/", id="mapped loopback"),
        pytest.param("http://2130706433/", id="decimal"),
        pytest.param("http://0x7f000001/", id="hex"),
        pytest.param("http://0177.0.0.1/", id="octal"),
        pytest.param("http://100.64.0.1/", id="carrier-grade nat"),
        pytest.param("http://[2002:7f00:1::]/", id="6to4 wrapping loopback"),
        pytest.param("http://198.18.0.1/", id="benchmarking range"),
    ],
)
def test_private_and_local_addresses_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidDestination, match="private") as caught:
        _policy(tmp_path).check(url)
    assert "LINKBROKER_ALLOW_PRIVATE" in str(caught.value)


def test_private_addresses_pass_when_allowed(tmp_path: Path) -> None:
    policy = _policy(tmp_path, LINKBROKER_ALLOW_PRIVATE="1")
    assert policy.check("http://10.0.0.1/intranet") == "http://10.0.0.1/intranet"


@pytest.mark.parametrize(
    "url", ["https://example.com/", "http://8.8.8.8/", "https://[2001:4860::8888]/"]
)
def test_public_destinations_pass(tmp_path: Path, url: str) -> None:
    assert _policy(tmp_path).check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://s.example/abc",
        "http://S.EXAMPLE/",
        "https://s.example:443/x",
        "https://s.example:8443/x",
    ],
)
def test_links_to_the_shortener_itself_are_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(InvalidDestination, match="redirect loop"):
        _policy(tmp_path).check(url)


def test_blocklist_refuses_domains_and_their_subdomains(tmp_path: Path) -> None:
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("# phishing\nevil.example\n\nBÜCHER.example  # idn\n")
    policy = _policy(tmp_path, LINKBROKER_BLOCKLIST=str(blocklist))

    for url in (
        "https://evil.example/",
        "https://login.evil.example/x",
        "https://bücher.example/",
    ):
        with pytest.raises(InvalidDestination, match="blocked domain"):
            policy.check(url)
    assert policy.check("https://notevil.example/") == "https://notevil.example/"


def test_blocklist_changes_are_read_without_a_restart(tmp_path: Path) -> None:
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("")
    policy = _policy(tmp_path, LINKBROKER_BLOCKLIST=str(blocklist))
    assert policy.check("https://later.example/")
    blocklist.write_text("later.example\n")
    import os

    os.utime(blocklist, (1, 1))  # a new mtime whatever the clock's resolution
    with pytest.raises(InvalidDestination):
        policy.check("https://later.example/")


def test_blocklist_that_is_not_utf8_is_a_clear_error(
    tmp_path: Path, cli: Invoke, settings: Settings
) -> None:
    blocklist = tmp_path / "latin1.txt"
    blocklist.write_bytes(b"caf\xe9.example\n")
    policy = _policy(tmp_path, LINKBROKER_BLOCKLIST=str(blocklist))
    with pytest.raises(ConfigError, match="cannot be read"):
        policy.check("https://example.com/")


def test_missing_blocklist_is_a_clear_error(tmp_path: Path) -> None:
    policy = _policy(tmp_path, LINKBROKER_BLOCKLIST=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match=r"missing\.txt"):
        policy.check("https://example.com/")


def test_cli_applies_the_same_policy(cli: Invoke) -> None:
    result = cli("shorten", "http://192.168.0.1/router")
    assert result.exit_code == 1
    assert "private" in result.stderr


def test_cli_token_commands(cli: Invoke) -> None:
    import json

    created = json.loads(cli("token", "create", "ci", "--json").stdout)
    assert created["name"] == "ci"
    assert created["token"].startswith("lb_")
    listed = json.loads(cli("token", "list", "--json").stdout)
    assert [token["name"] for token in listed] == ["ci"]
    assert "token" not in listed[0]
    assert created["token"] not in cli("token", "list").stdout

    assert cli("token", "create", "ci").exit_code == 1
    assert cli("token", "revoke", "ci").exit_code == 0
    assert json.loads(cli("token", "list", "--json").stdout)[0]["revoked_at"]
    missing = cli("token", "revoke", "nobody")
    assert missing.exit_code == 1
    assert "'nobody'" in missing.stderr
    bad = cli("token", "create", "no spaces")
    assert bad.exit_code == 1
