"""Export and import: round trips, every format, bad rows, re-runs and dry runs."""

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Invoke, query
from typer.testing import CliRunner, Result

from linkbroker.cli import app
from linkbroker.settings import Settings
from linkbroker.store import LinkStore
from linkbroker.transfer import sources

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def other(tmp_path: Path) -> Settings:
    """A second, empty installation to import into."""
    return Settings.load(
        db_path=tmp_path / "other" / "links.db",
        cache_dir=tmp_path / "other" / "cache",
        environ={},
    )


def _run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=settings.environ())


def _summary(stdout: str, label: str) -> int:
    """Read one count from the summary table an import prints."""
    found = re.search(rf"│ {label}[^│\n]*│\s*([\d,]+)", stdout)
    assert found is not None, stdout
    return int(found.group(1).replace(",", ""))


@pytest.fixture
def every_state(store: LinkStore) -> LinkStore:
    """Links in every state, with history, raw clicks and per-day counters."""
    for slug in ("live", "moved", "expiring", "limited", "off", "gone"):
        store.create(f"https://example.com/{slug}", slug)
    run = store.conn.execute
    run("UPDATE links SET clicks = 17, bot_clicks = 3 WHERE slug = 'live'")
    run("UPDATE links SET redirect_status = 301 WHERE slug = 'moved'")
    run("UPDATE links SET expires_at = '2030-01-01 00:00:00' WHERE slug = 'expiring'")
    run(
        "UPDATE links SET max_clicks = 10, limit_used = 4, "
        "fallback_url = 'https://example.com/sold-out' WHERE slug = 'limited'"
    )
    run("UPDATE links SET disabled_at = '2026-01-02 03:04:05' WHERE slug = 'off'")
    run("UPDATE links SET deleted_at = '2026-02-03 04:05:06' WHERE slug = 'gone'")
    for destination, reverted in (("first", "2026-01-05 00:00:00"), ("second", None)):
        run(
            "INSERT INTO link_history (slug, destination_url, redirect_status, "
            "changed_at, changed_by, reverted_at, reverted_by) "
            "VALUES ('moved', ?, 302, '2026-01-01 00:00:00', 'cli', ?, ?)",
            (f"https://example.com/{destination}", reverted, reverted and "api:ci"),
        )
    run(
        "INSERT INTO clicks (slug, clicked_at, referrer_host, user_agent, is_bot, "
        "bot_reason, visitor) VALUES "
        "('live', '2026-03-01 10:00:00.123', 'news.example', 'Mozilla/5.0', 0, NULL, "
        "'abc'), ('live', '2026-03-01 10:00:01.000', NULL, 'curl/8', 1, "
        "'command-line client', 'def')"
    )
    run("INSERT INTO daily_clicks VALUES ('live', '2026-03-01', 1, 1)")
    run(
        "INSERT INTO daily_sources VALUES ('live', '2026-03-01', 'referrer', "
        "'news.example', 1), ('live', '2026-03-01', 'bot', 'command-line client', 1)"
    )
    return store


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--format", "jsonl", "--clicks"), id="jsonl with clicks"),
        pytest.param(("--format", "jsonl"), id="jsonl"),
        pytest.param(("--format", "csv"), id="csv"),
    ],
)
def test_export_import_export_gives_the_same_bytes(
    every_state: LinkStore, cli: Invoke, other: Settings, tmp_path: Path, args: Any
) -> None:
    first = tmp_path / "first"
    assert cli("export", *args, "--output", str(first)).exit_code == 0

    imported = _run(other, "import", str(first))
    assert imported.exit_code == 0, imported.output
    again = _run(other, "export", *args)
    assert again.exit_code == 0
    assert again.stdout == first.read_text("utf-8")


def test_the_jsonl_export_carries_every_table(
    every_state: LinkStore, cli: Invoke
) -> None:
    text = cli("export", "--clicks").stdout
    kinds = [
        line.split('"type":"', 1)[1].split('"', 1)[0] for line in text.splitlines()
    ]
    assert kinds.count("link") == 6
    assert kinds.count("history") == 6 + 2  # one per link made, two added above
    assert kinds.count("click") == 2
    assert kinds.count("day") == 1
    assert kinds.count("source") == 2
    assert '"deleted_at":"2026-02-03 04:05:06"' in text


def test_csv_export_refuses_clicks_clearly(cli: Invoke) -> None:
    result = cli("export", "--format", "csv", "--clicks")
    assert result.exit_code == 1
    assert "--format jsonl" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["no-such-folder/links.jsonl", ".", "a-file/x"])
def test_an_export_to_a_place_it_cannot_write_is_one_clear_error(
    cli: Invoke, tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("", "utf-8")
    target = tmp_path / where
    result = cli("export", "--output", str(target))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: Cannot write the export to '{target}'")
    assert list(tmp_path.glob("**/*.partial")) == []


@pytest.mark.parametrize(
    ("fixture", "fmt", "expected"),
    [
        pytest.param(
            "plain_header.csv",
            "plain",
            {
                "promo": ("https://example.com/promo", None, 0),
                "docs": ("https://xn--bcher-kva.example/stra%C3%9Fe", None, 0),
            },
            id="plain with header",
        ),
        pytest.param(
            "plain_bare.csv",
            "plain",
            {"launch": ("https://example.com/launch", None, 0)},
            id="plain without header",
        ),
        pytest.param(
            "d1_export.sql",
            "d1",
            {
                "gh": ("https://github.com/", "2024-03-01 09:15:00", 42),
                "q": (
                    "https://example.com/search?q=a,b(c)&x=it's",
                    "2024-03-02 10:00:00",
                    0,
                ),
                "old": ("https://example.com/old", None, 0),
                "epoch": ("https://example.com/epoch", "2024-03-01 11:00:00", 7),
            },
            id="wrangler d1 export",
        ),
        pytest.param(
            "d1_export_columns.sql",
            "d1",
            {
                "news": (
                    "https://example.com/news;see(all)",
                    "2024-04-01 08:00:00",
                    3,
                ),
                "multi": ("https://example.com/a", None, 0),
                "multi2": ("https://example.com/b", None, 0),
            },
            id="wrangler d1 export with column lists",
        ),
        pytest.param(
            "d1_links.csv",
            "csv",
            {"gh": ("https://github.com/", "2024-03-01 09:15:00", 42)},
            id="d1 table as csv",
        ),
        pytest.param(
            "shlink_short_urls.csv",
            "shlink",
            {
                "abc12": (
                    "https://example.com/article?id=1",
                    "2024-01-15 09:30:00",
                    128,
                ),
                "spring": ("https://example.com/spring", "2024-02-01 00:00:00", 0),
            },
            id="shlink",
        ),
        pytest.param(
            "yourls_export.csv",
            "yourls",
            {
                "yl1": ("https://example.com/one", None, 12),
                "promo2": ("https://example.com/two?a=1,2", None, 0),
            },
            id="yourls",
        ),
    ],
)
def test_every_format_is_recognised_and_imported(
    cli: Invoke,
    settings: Settings,
    fixture: str,
    fmt: str,
    expected: dict[str, tuple[str, str | None, int]],
) -> None:
    result = cli("import", str(FIXTURES / fixture))
    assert result.exit_code == 0, result.output
    assert f"from a {fmt} file" in result.stdout

    stored = {
        slug: (destination, created, clicks)
        for slug, destination, created, clicks in query(
            settings.db_path,
            "SELECT slug, destination_url, created_at, clicks FROM links",
        )
    }
    for slug, (destination, created, clicks) in expected.items():
        assert stored[slug][0] == destination
        assert stored[slug][2] == clicks
        if created is not None:
            assert stored[slug][1] == created


def test_rows_without_a_slug_get_one_and_are_not_made_twice(
    cli: Invoke, settings: Settings
) -> None:
    for _ in range(2):
        assert cli("import", str(FIXTURES / "plain_header.csv")).exit_code == 0
    found = query(
        settings.db_path,
        "SELECT slug FROM links "
        "WHERE destination_url = 'https://example.com/generated'",
    )
    assert len(found) == 1
    assert len(found[0][0]) == settings.slug_length


def test_bad_rows_are_reported_with_line_slug_and_reason(
    cli: Invoke, settings: Settings
) -> None:
    result = cli("import", str(FIXTURES / "bad_rows.csv"))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert errors[0].startswith("line 3: slug 'evil': ")
    assert "scheme 'javascript'" in errors[0]
    assert errors[1].startswith("line 4: slug 'bad slug!': ")
    assert errors[2].startswith("line 5: slug 'api': ")
    assert "reserved" in errors[2]
    assert errors[3].startswith("line 6: slug 'local': ")
    assert "private" in errors[3]
    # The good rows are in, and the summary says what was left out.
    assert sorted(s for (s,) in query(settings.db_path, "SELECT slug FROM links")) == [
        "also-good",
        "good",
    ]
    assert "not in the database" in result.stdout


def test_a_second_run_changes_nothing(cli: Invoke, settings: Settings) -> None:
    source = str(FIXTURES / "d1_export.sql")
    assert cli("import", source).exit_code == 0
    before = query(settings.db_path, "SELECT * FROM links ORDER BY rowid")

    again = cli("import", source)
    assert again.exit_code == 0
    assert query(settings.db_path, "SELECT * FROM links ORDER BY rowid") == before
    assert _summary(again.stdout, "skipped, already present") == 4
    assert _summary(again.stdout, "imported") == 0


def test_a_slug_leading_elsewhere_is_a_conflict_never_overwritten(
    cli: Invoke, store: LinkStore
) -> None:
    store.create("https://example.com/mine", "promo")

    result = cli("import", str(FIXTURES / "plain_header.csv"))

    assert result.exit_code == 1
    assert "line 2: slug 'promo': the slug already leads to" in result.stderr
    assert store.get("promo").destination == "https://example.com/mine"
    assert store.get("docs").destination.startswith("https://xn--bcher")


def test_a_later_line_repeating_a_slug_differently_is_a_conflict(
    cli: Invoke, tmp_path: Path
) -> None:
    source = tmp_path / "twice.csv"
    source.write_text(
        "slug,destination\na,https://example.com/1\na,https://example.com/1\n"
        "a,https://example.com/2\n",
        "utf-8",
    )
    result = cli("import", str(source))
    assert result.exit_code == 1
    assert "line 4: slug 'a'" in result.stderr
    assert _summary(result.stdout, "skipped, already present") == 1
    assert _summary(result.stdout, "conflicts") == 1


def test_dry_run_reports_the_same_and_changes_nothing(
    cli: Invoke, store: LinkStore, settings: Settings
) -> None:
    store.create("https://example.com/mine", "promo")
    before = query(settings.db_path, "SELECT * FROM links")

    dry = cli("import", "--dry-run", str(FIXTURES / "plain_header.csv"))
    assert query(settings.db_path, "SELECT * FROM links") == before
    real = cli("import", str(FIXTURES / "plain_header.csv"))

    assert dry.exit_code == real.exit_code == 1
    assert dry.stderr == real.stderr
    assert _summary(dry.stdout, "would be imported") == 2
    assert _summary(real.stdout, "imported") == 2
    for label in ("read", "skipped, already present", "conflicts", "bad"):
        assert _summary(dry.stdout, label) == _summary(real.stdout, label)


def test_a_slug_known_absent_resolves_once_imported(
    store: LinkStore, cli: Invoke
) -> None:
    assert store.resolve("promo") is None  # now remembered as absent in the cache
    assert cli("import", str(FIXTURES / "plain_header.csv")).exit_code == 0
    found = store.resolve("promo")
    assert found is not None
    assert found.destination == "https://example.com/promo"


def test_history_and_clicks_need_their_link_first(cli: Invoke, tmp_path: Path) -> None:
    source = tmp_path / "orphan.jsonl"
    source.write_text(
        '{"type":"linkbroker-export","version":1}\n'
        '{"type":"day","slug":"nobody","day":"2026-01-01","human":1,"bot":0}\n',
        "utf-8",
    )
    result = cli("import", str(source))
    assert result.exit_code == 1
    assert "line 2: slug 'nobody': no link with the slug" in result.stderr


def test_link_lines_at_their_defaults_keep_every_check(
    cli: Invoke, settings: Settings, tmp_path: Path
) -> None:
    defaults = (
        '"bot_clicks":0,"redirect_status":302,"expires_at":null,"max_clicks":null,'
        '"limit_used":0,"fallback_url":null,"disabled_at":null,"deleted_at":null'
    )
    lines = [
        '{"type":"linkbroker-export","version":1}',
        '{"type":"link","slug":"plain","destination_url":"https://example.com/a",'
        f'"created_at":"2026-01-01 00:00:00","clicks":5,{defaults}}}',
        # Equal to the defaults, but not of their types: each still a bad row.
        '{"type":"link","slug":"flag","destination_url":"https://example.com/b",'
        f'"created_at":null,"clicks":0,{defaults.replace(":0,", ":false,", 1)}}}',
        '{"type":"link","slug":"real","destination_url":"https://example.com/c",'
        f'"created_at":null,"clicks":0,{defaults.replace("302", "302.0")}}}',
        '{"type":"link","slug":"termed","destination_url":"https://example.com/d",'
        '"created_at":null,"clicks":0,'
        + defaults.replace('"max_clicks":null', '"max_clicks":3')
        + "}",
    ]
    source = tmp_path / "links.jsonl"
    source.write_text("\n".join(lines) + "\n", "utf-8")

    result = cli("import", str(source))

    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith("line 3: slug 'flag': bot_clicks False")
    assert errors[1].startswith("line 4: slug 'real': redirect_status 302.0")
    stored = query(
        settings.db_path,
        "SELECT slug, clicks, redirect_status, max_clicks, limit_used FROM links "
        "ORDER BY rowid",
    )
    assert stored == [("plain", 5, 302, None, 0), ("termed", 0, 302, 3, 0)]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param('"expires_at":"2024-02-30 10:00:00"', "not a time", id="30 Feb"),
        pytest.param('"created_at":"2024-13-45 99:99:99"', "not a time", id="month 13"),
        pytest.param('"created_at":1e300', "not a time", id="far future"),
        pytest.param('"clicks":"\u00b2"', "not a whole number", id="superscript"),
        pytest.param('"clicks":100000000000000000000000', "not a whole", id="huge"),
        pytest.param('"max_clicks":0', "click limit 0", id="no clicks allowed"),
    ],
)
def test_values_of_the_right_shape_but_no_meaning_are_bad_rows(
    cli: Invoke, settings: Settings, tmp_path: Path, fields: str, reason: str
) -> None:
    source = tmp_path / "links.jsonl"
    source.write_text(
        '{"type":"linkbroker-export","version":1}\n'
        f'{{"type":"link","slug":"odd","destination_url":"https://example.com/",'
        f"{fields}}}\n"
        '{"type":"link","slug":"fine","destination_url":"https://example.com/f"}\n',
        "utf-8",
    )

    result = cli("import", str(source))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith("line 2: slug 'odd': ")
    assert reason in result.stderr
    assert query(settings.db_path, "SELECT slug FROM links") == [("fine",)]


def test_times_before_the_year_1000_keep_four_digits(
    cli: Invoke, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "links.jsonl"
    source.write_text(
        '{"type":"linkbroker-export","version":1}\n'
        '{"type":"link","slug":"old","destination_url":"https://example.com/",'
        '"created_at":"0999-01-01T00:00:00+00:00","clicks":0}\n',
        "utf-8",
    )
    assert cli("import", str(source)).exit_code == 0
    assert query(settings.db_path, "SELECT created_at FROM links") == [
        ("0999-01-01 00:00:00",)
    ]
    # The stored form reads back as it is: a second run changes nothing.
    again = cli("import", str(source))
    assert again.exit_code == 0, again.output


def test_a_d1_time_out_of_range_is_a_bad_row(
    cli: Invoke, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "dump.sql"
    source.write_text(
        "CREATE TABLE links (slug TEXT PRIMARY KEY, destination_url TEXT, "
        "created_at INTEGER, clicks INTEGER);\n"
        "INSERT INTO \"links\" VALUES('odd','https://example.com/',"
        "99999999999999999999,0);\n"
        "INSERT INTO \"links\" VALUES('fine','https://example.com/f',"
        "1700000000,2);\n",
        "utf-8",
    )

    result = cli("import", str(source))

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith("line 2: slug 'odd': created_at")
    assert query(settings.db_path, "SELECT slug, clicks FROM links") == [("fine", 2)]


def test_an_unreadable_file_is_one_clear_error(cli: Invoke, tmp_path: Path) -> None:
    missing = cli("import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: Cannot read")

    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"slug,destination\ncaf\xe9,https://example.com/\n")
    result = cli("import", str(latin))
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        pytest.param(
            "INSERT INTO links VALUES('a', replace('x','y','z'), NULL, 0);",
            "only literal values are read",
            id="expression",
        ),
        pytest.param(
            "INSERT INTO links VALUES('a', 'https://example.com/');",
            "2 values for 4 columns",
            id="too few values",
        ),
    ],
)
def test_d1_rows_the_reader_cannot_take_are_bad_rows(
    statement: str, reason: str
) -> None:
    from io import StringIO

    from linkbroker.transfer.d1 import read_dump

    records = list(read_dump(StringIO(f"PRAGMA foreign_keys=OFF;\n{statement}\n")))
    assert [(kind, line) for kind, line, _ in records] == [("bad", 2)]
    assert reason in str(records[0][2]["reason"])
    assert records[0][2]["slug"] == "a"  # read before the trouble, to name the row


@pytest.mark.parametrize(
    ("name", "first_line", "fmt"),
    [
        pytest.param("links.jsonl", "", "jsonl", id="jsonl by name"),
        pytest.param("dump", "PRAGMA defer_foreign_keys=TRUE;", "d1", id="sql"),
        pytest.param("x.csv", "createdAt,domain,shortCode,longUrl", "shlink"),
        pytest.param("x.csv", "source,target,hits", "yourls"),
        pytest.param("x.csv", "slug,destination_url,created_at", "csv"),
        pytest.param("x.csv", "https://example.com/", "plain"),
    ],
)
def test_formats_are_recognised_by_name_and_header(
    name: str, first_line: str, fmt: str
) -> None:
    assert sources.detect(Path(name), first_line) == fmt


def _import_with_stderr_on_a_terminal(
    settings: Settings, source: Path
) -> tuple[int, str, str]:
    """Run `linkbroker import` with stderr on a pseudo-terminal, stdout piped."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "linkbroker", "import", str(source)],
        env={**os.environ, **settings.environ(), "COLUMNS": "100"},
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    ) as running:
        os.close(follower)
        drawn = bytearray()
        while True:  # read until the child closes its side of the terminal
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: no process holds the terminal any more
                break
            if not chunk:
                break
            drawn += chunk
        os.close(leader)
        assert running.stdout is not None
        printed = running.stdout.read()
    return running.returncode, printed, drawn.decode("utf-8", "replace")


def test_a_long_import_draws_a_bar_on_a_terminal_and_none_when_piped(
    cli: Invoke, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "links.csv"
    source.write_text(
        "".join(f"p{i},https://example.com/{i}\n" for i in range(60_000)), "utf-8"
    )

    status, printed, drawn = _import_with_stderr_on_a_terminal(settings, source)

    assert status == 0
    assert "Writing" in drawn or "Reading and checking" in drawn
    assert "━" in drawn  # the bar itself
    assert "read" in printed  # the summary, on stdout as ever

    # Piped, as in the test runner: the same import again draws nothing.
    piped = cli("import", str(source))
    assert piped.exit_code == 0
    assert piped.stderr == ""
