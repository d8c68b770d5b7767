"""Every command through Typer's runner: output, exit codes, no writes on error."""

import json

import pytest
from conftest import Invoke

from linkbroker import __version__
from linkbroker.settings import Settings


def test_version(cli: Invoke) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"linkbroker {__version__}"


def test_init_creates_then_changes_nothing(cli: Invoke, settings: Settings) -> None:
    first = cli("init")
    assert first.exit_code == 0, first.output
    assert f"Database: {settings.db_path} (created at schema version" in first.stdout
    assert f"Cache:    {settings.cache_dir}" in first.stdout
    before = settings.db_path.read_bytes()

    second = cli("init")
    assert second.exit_code == 0
    assert "up to date" in second.stdout
    assert settings.db_path.read_bytes() == before


def test_init_wipe_asks_first(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "keep")
    refused = cli("init", "--wipe", input="n\n")
    assert refused.exit_code == 1
    assert "Delete all 1 links" in refused.stdout
    assert cli("resolve", "keep").exit_code == 0

    accepted = cli("init", "--wipe", input="y\n")
    assert accepted.exit_code == 0
    assert "Wiped 1 links." in accepted.stdout
    assert cli("resolve", "keep").exit_code == 1


def test_shorten_prints_the_short_url(cli: Invoke) -> None:
    result = cli("shorten", "https://example.com/long/path", "--slug", "go")
    assert result.exit_code == 0
    assert result.stdout == "http://127.0.0.1:8000/go\n"


def test_shorten_json(cli: Invoke) -> None:
    result = cli("shorten", "https://bücher.example/", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["destination"] == "https://xn--bcher-kva.example/"
    assert data["short_url"] == f"http://127.0.0.1:8000/{data['slug']}"
    assert len(data["slug"]) == 7


def test_base_url_option_shapes_short_urls(cli: Invoke) -> None:
    result = cli(
        "--base-url",
        "https://s.example/",
        "shorten",
        "https://e.example/",
        "--slug",
        "x",
    )
    assert result.stdout == "https://s.example/x\n"


def test_shorten_twice_gives_two_slugs_unless_reuse(cli: Invoke) -> None:
    first = cli("shorten", "https://example.com/same").stdout
    second = cli("shorten", "https://example.com/same").stdout
    third = cli("shorten", "https://example.com/same", "--reuse").stdout
    assert first != second
    assert third == first


def test_resolve_prints_the_destination(cli: Invoke) -> None:
    cli("shorten", "https://example.com/x?y=1", "--slug", "r")
    result = cli("resolve", "r")
    assert result.exit_code == 0
    assert result.stdout == "https://example.com/x?y=1\n"


def test_resolve_is_not_a_click(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "r")
    cli("resolve", "r")
    data = json.loads(cli("stats", "r", "--json").stdout)
    assert data["clicks"] == 0


def test_list_newest_first_and_limit(cli: Invoke) -> None:
    for n in range(3):
        cli("shorten", f"https://example.com/{n}", "--slug", f"s{n}")
    data = json.loads(cli("list", "--json").stdout)
    assert [item["slug"] for item in data] == ["s2", "s1", "s0"]
    assert set(data[0]) >= {"slug", "destination", "clicks", "created_at"}
    limited = json.loads(cli("list", "--limit", "2", "--json").stdout)
    assert [item["slug"] for item in limited] == ["s2", "s1"]


def test_list_table_shows_the_links(cli: Invoke) -> None:
    cli("shorten", "https://example.com/table", "--slug", "tab")
    result = cli("list")
    assert result.exit_code == 0
    assert "tab" in result.stdout
    assert "https://example.com/table" in result.stdout


def test_list_when_empty(cli: Invoke) -> None:
    result = cli("list")
    assert result.exit_code == 0
    assert "No links yet" in result.stdout
    assert json.loads(cli("list", "--json").stdout) == []


def test_delete_asks_for_confirmation(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "d")
    refused = cli("delete", "d", input="n\n")
    assert refused.exit_code == 1
    assert cli("resolve", "d").exit_code == 0

    accepted = cli("delete", "d", input="y\n")
    assert accepted.exit_code == 0
    assert cli("resolve", "d").exit_code == 1


def test_delete_yes(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "d")
    result = cli("delete", "d", "--yes")
    assert result.exit_code == 0
    assert result.stdout == "Deleted d.\n"


def test_stats_lists_most_clicked_first(cli: Invoke, settings: Settings) -> None:
    import sqlite3

    for slug in ("a", "b"):
        cli("shorten", "https://example.com/", "--slug", slug)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("UPDATE links SET clicks = 5 WHERE slug = 'b'")
    conn.commit()
    conn.close()

    data = json.loads(cli("stats", "--json").stdout)
    assert [(item["slug"], item["clicks"]) for item in data] == [("b", 5), ("a", 0)]
    table = cli("stats")
    assert table.exit_code == 0
    assert table.stdout.index("b ") < table.stdout.index("a ")


def test_stats_for_one_link(cli: Invoke) -> None:
    cli("shorten", "https://example.com/one", "--slug", "one")
    data = json.loads(cli("stats", "one", "--json").stdout)
    assert data["slug"] == "one"
    assert data["destination"] == "https://example.com/one"
    assert data["clicks"] == 0
    assert data["created_at"]
    text = cli("stats", "one")
    assert text.exit_code == 0
    assert "https://example.com/one" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("resolve", "nope"), "No link has the slug 'nope'", id="resolve"),
        pytest.param(("delete", "nope", "--yes"), "'nope'", id="delete"),
        pytest.param(("stats", "nope"), "'nope'", id="stats"),
        pytest.param(
            ("shorten", "javascript:alert(1)"), "scheme 'javascript'", id="scheme"
        ),
        pytest.param(("shorten", "example.com"), "start it with http", id="relative"),
        pytest.param(
            ("shorten", "https://e.example/", "--slug", "a b"), "'a b'", id="bad slug"
        ),
        pytest.param(
            ("shorten", "https://e.example/", "--slug", "api"),
            "reserved",
            id="reserved",
        ),
    ],
)
def test_failures_print_one_line_on_stderr_and_exit_1(
    cli: Invoke, settings: Settings, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_refused_shorten_on_a_fresh_machine_writes_nothing(
    cli: Invoke, settings: Settings
) -> None:
    assert cli("shorten", "ftp://example.com/").exit_code == 1
    assert not settings.db_path.exists()
    assert not settings.cache_dir.exists()


def test_taken_slug_keeps_the_existing_link(cli: Invoke) -> None:
    cli("shorten", "https://first.example/", "--slug", "mine")
    result = cli("shorten", "https://second.example/", "--slug", "mine")
    assert result.exit_code == 1
    assert "'mine' is taken" in result.stderr
    assert cli("resolve", "mine").stdout == "https://first.example/\n"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("shorten",), id="missing argument"),
        pytest.param(("list", "--limit", "0"), id="limit below one"),
        pytest.param(("frobnicate",), id="unknown command"),
    ],
)
def test_usage_errors_exit_2(cli: Invoke, args: tuple[str, ...]) -> None:
    assert cli(*args).exit_code == 2


def test_bad_setting_is_a_clear_error(cli: Invoke) -> None:
    result = cli("--base-url", "ftp://nope", "list")
    assert result.exit_code == 1
    assert "base URL 'ftp://nope'" in result.stderr


def test_every_command_works_without_init(cli: Invoke, settings: Settings) -> None:
    assert not settings.db_path.exists()
    assert cli("list").exit_code == 0
    assert settings.db_path.exists()
