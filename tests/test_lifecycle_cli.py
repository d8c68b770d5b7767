"""The lifecycle commands, run as a user would type them."""

import json
from pathlib import Path

from conftest import Invoke


def _json(cli: Invoke, *args: str) -> dict[str, object]:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_shorten_with_terms(cli: Invoke) -> None:
    link = _json(
        cli,
        "shorten",
        "https://example.com/",
        "--slug",
        "t",
        "--expires-at",
        "2099-05-01T12:00+02:00",
        "--max-clicks",
        "10",
        "--fallback",
        "https://example.com/over",
        "--status",
        "307",
    )
    assert link["expires_at"] == "2099-05-01 10:00:00"
    assert (link["max_clicks"], link["status"]) == (10, 307)
    assert link["fallback"] == "https://example.com/over"
    assert link["short_url"] == "http://127.0.0.1:8000/t"


def test_a_permanent_status_warns(cli: Invoke) -> None:
    result = cli("shorten", "https://example.com/", "--status", "301")
    assert result.exit_code == 0
    assert "Warning: A 301 redirect is permanent" in result.stderr
    assert "later edits" in result.stderr
    edited = cli("edit", result.stdout.strip().rsplit("/", 1)[1], "--status", "308")
    assert "Warning: A 308 redirect" in edited.stderr


def test_bad_terms_say_what_to_write_and_store_nothing(cli: Invoke) -> None:
    for args, message in [
        (["--expires-in", "7"], "write a number and a unit"),
        (["--expires-at", "yesterday"], "not a date and time"),
        (["--expires-in", "1d", "--expires-at", "2099-01-01"], "not both"),
        (["--max-clicks", "0"], "from 1 to 1,000,000,000,000"),
        (["--status", "303"], "use one of 301, 302, 307, 308"),
        (["--fallback", "ftp://example.com/"], "Fallback"),
    ]:
        result = cli("shorten", "https://example.com/", *args)
        assert result.exit_code == 1, args
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.output
    assert json.loads(cli("list", "--json").stdout) == []


def test_edit_disable_enable_history_revert(cli: Invoke) -> None:
    cli("shorten", "https://example.com/1", "--slug", "e")
    assert cli("edit", "e", "--to", "https://example.com/2").exit_code == 0
    assert _json(cli, "edit", "e", "--max-clicks", "3")["max_clicks"] == 3

    assert "Disabled e" in cli("disable", "e").stdout
    listing = cli("list").stdout
    assert "disabled" in listing
    assert "Enabled e; it is active" in cli("enable", "e").stdout

    history = json.loads(cli("history", "e", "--json").stdout)
    assert [entry["destination"] for entry in history] == [
        "https://example.com/1",
        "https://example.com/2",
    ]
    assert history[0]["changed_by"].startswith("cli")
    table = cli("history", "e").stdout
    assert "History of e" in table and "cli" in table

    assert _json(cli, "revert", "e")["destination"] == "https://example.com/1"
    again = cli("revert", "e")
    assert again.exit_code == 1
    assert "no earlier destination" in again.stderr


def test_edit_needs_something_to_change_and_no_contradictions(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "e")
    nothing = cli("edit", "e")
    assert nothing.exit_code == 2
    assert "Say what to change" in nothing.output
    both = cli("edit", "e", "--no-expiry", "--expires-in", "1d")
    assert both.exit_code == 2
    assert "--no-expiry cannot go with" in both.output
    missing = cli("edit", "nope", "--to", "https://example.com/")
    assert missing.exit_code == 1
    assert "No link has the slug 'nope'" in missing.stderr


def test_delete_keeps_a_tombstone_and_purge_asks_with_the_clicks(
    cli: Invoke, settings_db: Path
) -> None:
    cli("shorten", "https://example.com/", "--slug", "d")
    import sqlite3

    with sqlite3.connect(settings_db) as conn:
        conn.execute("UPDATE links SET clicks = 41, bot_clicks = 1 WHERE slug = 'd'")
    conn.close()
    assert cli("delete", "d", "--yes").stdout == "Deleted d.\n"
    taken = cli("shorten", "https://example.com/", "--slug", "d")
    assert taken.exit_code == 1
    assert "--reclaim" in taken.stderr

    refused = cli("delete", "d", "--purge", input="n\n")
    assert "Its 42 recorded clicks" in refused.stdout
    assert refused.exit_code == 1
    assert cli("delete", "d", "--purge", input="y\n").exit_code == 0
    assert cli("shorten", "https://example.com/", "--slug", "d").exit_code == 0


def test_reclaim(cli: Invoke) -> None:
    cli("shorten", "https://example.com/old", "--slug", "r")
    cli("delete", "r", "--yes")
    result = cli("shorten", "https://example.com/new", "--slug", "r", "--reclaim")
    assert result.exit_code == 0
    assert json.loads(cli("list", "--json").stdout)[0]["destination"] == (
        "https://example.com/new"
    )


def test_qr_in_the_terminal_and_in_files(cli: Invoke, tmp_path: Path) -> None:
    cli("shorten", "https://example.com/", "--slug", "q")
    shown = cli("qr", "q")
    assert shown.exit_code == 0
    assert "▀" in shown.stdout or "█" in shown.stdout
    assert shown.stdout.rstrip().endswith("http://127.0.0.1:8000/q")

    png, svg = tmp_path / "q.png", tmp_path / "q.svg"
    assert cli("qr", "q", "--output", str(png)).exit_code == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert cli("qr", "q", "-o", str(svg)).exit_code == 0
    assert "<svg" in svg.read_text()

    wrong = cli("qr", "q", "--output", str(tmp_path / "q.gif"))
    assert wrong.exit_code == 2
    assert "neither .png nor .svg" in wrong.output
    nowhere = cli("qr", "q", "--output", str(tmp_path / "no" / "such" / "q.png"))
    assert nowhere.exit_code == 1
    assert nowhere.stderr.startswith("Error: Cannot write")
    assert len(nowhere.stderr.splitlines()) == 1
    assert cli("qr", "nope").exit_code == 1


def test_a_deleted_link_keeps_its_statistics(cli: Invoke) -> None:
    cli("shorten", "https://example.com/", "--slug", "kept")
    cli("delete", "kept", "--yes")
    shown = cli("stats", "kept")
    assert shown.exit_code == 0
    assert "State:       deleted since" in shown.stdout
    assert _json(cli, "stats", "kept")["state"] == "deleted"
    assert cli("resolve", "kept").exit_code == 1
