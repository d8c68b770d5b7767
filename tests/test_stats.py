"""The statistics read side, through the CLI, with clicks written by the recorder."""

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import Invoke, query, settings_in

from linkbroker import clickdb
from linkbroker.clickdb import CHUNK, ClickWriter, RawClick
from linkbroker.settings import Settings
from linkbroker.stats import link_report
from linkbroker.store import LinkStore

BROWSER = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0"


def _click(
    slug: str, days_ago: int, agent: bytes = BROWSER, referrer: bytes = b""
) -> RawClick:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return (slug, at.timestamp(), False, agent, referrer, b"", "192.0.2.1")


@pytest.fixture
def clicked(settings: Settings) -> Settings:
    with LinkStore(settings) as store:
        store.create("https://example.com/a", "a")
        store.create("https://example.com/b", "b")
    recorder = ClickWriter(settings)
    recorder.write(
        [
            _click("a", 0, referrer=b"https://news.example/x"),
            _click("a", 0, referrer=b"https://news.example/y"),
            _click("a", 1, referrer=b"https://mail.example/"),
            _click("a", 2),
            _click("a", 0, agent=b"Slackbot-LinkExpanding 1.0"),
            _click("a", 45),  # outside the 30-day chart, still in the total
            _click("b", 0),
        ]
    )
    recorder.close()
    return settings


def test_report_has_days_referrers_and_the_split(clicked: Settings) -> None:
    with LinkStore(clicked) as store:
        report = link_report(store, "a")

    assert report["clicks"] == 5
    assert report["bot_clicks"] == 1
    assert len(report["daily"]) == 30
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert report["daily"][-1] == {"day": today, "human": 2, "bot": 1}
    assert [day["human"] for day in report["daily"][-3:]] == [1, 1, 2]
    assert {"host": "news.example", "clicks": 2} in report["top_referrers"]
    assert {"host": "mail.example", "clicks": 1} in report["top_referrers"]
    assert report["bot_reasons"] == [{"reason": "preview: Slack", "clicks": 1}]


def test_stats_json_keeps_counts_carried_over_in_links_clicks(
    clicked: Settings, cli: Invoke
) -> None:
    with LinkStore(clicked) as store:
        store.conn.execute("UPDATE links SET clicks = clicks + 1000 WHERE slug = 'b'")

    listed = json.loads(cli("stats", "--json").stdout)
    assert [(x["slug"], x["clicks"], x["bot_clicks"]) for x in listed] == [
        ("b", 1001, 0),
        ("a", 5, 1),
    ]
    one = json.loads(cli("stats", "b", "--json").stdout)
    assert one["clicks"] == 1001
    assert one["daily"][-1]["human"] == 1


def test_stats_text_shows_chart_referrers_and_bots(
    clicked: Settings, cli: Invoke
) -> None:
    result = cli("stats", "a")
    assert result.exit_code == 0
    out = result.stdout
    assert "5 human, 1 bots and previews" in out
    assert "Last 30 days" in out
    assert "█" in out
    assert "news.example" in out
    assert "preview: Slack" in out


def test_stats_list_shows_human_and_bot_columns(clicked: Settings, cli: Invoke) -> None:
    out = cli("stats").stdout
    assert "Clicks" in out
    assert "Bots" in out


def test_retention_prunes_raw_rows_and_keeps_counters(settings: Settings) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/", "old")
    recorder = ClickWriter(settings)
    recorder.write([_click("old", 200), _click("old", 0)])
    recorder.close()

    with LinkStore(settings) as store:
        rows = store.conn.execute("SELECT count(*) FROM clicks").fetchone()[0]
        days = store.conn.execute("SELECT sum(human) FROM daily_clicks").fetchone()[0]
        assert store.get("old").clicks == 2
    assert rows == 1
    assert days == 2


def test_a_batch_summed_in_parts_adds_up_in_every_counter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LinkStore(settings) as store:
        for slug in "abc":
            store.create(f"https://example.com/{slug}", slug)
    # Sums go to the counters after every chunk here, as over a million links.
    monkeypatch.setattr(clickdb, "SUMMED_KEYS", 2)
    # The first chunks are all for a slug that has no link; the rest of the batch
    # must still be written.
    clicks = [_click("gone", 0) for _ in range(2 * CHUNK)]
    many = 3 * CHUNK + 7
    clicks += [_click("abc"[i % 3], i % 2) for i in range(many)]
    clicks += [_click("a", 0, agent=b"curl/8.5.0") for _ in range(5)]
    writer = ClickWriter(settings)
    assert writer.write(clicks) == many + 5
    writer.close()

    human = {slug: sum("abc"[i % 3] == slug for i in range(many)) for slug in "abc"}
    with LinkStore(settings) as store:
        for slug in "abc":
            assert store.get(slug).clicks == human[slug]
        conn = store.conn
        stored = conn.execute("SELECT count(*) FROM clicks").fetchone()[0]
        assert stored == many + 5
        daily = conn.execute(
            "SELECT sum(human), sum(bot) FROM daily_clicks WHERE slug = 'a'"
        ).fetchone()
        assert daily == (human["a"], 5)
        gone = conn.execute("SELECT count(*) FROM clicks WHERE slug = 'gone'")
        assert gone.fetchone()[0] == 0


def test_every_raw_row_keeps_its_own_values_in_their_columns(
    settings: Settings,
) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/a", "a")
    # More than one statement's worth of rows and a remainder, each click telling
    # its row apart by its referrer and agent.
    count = 2 * clickdb.ROWS_AT_ONCE + 3
    clicks = [
        _click("a", 0, agent=b"Agent/%d" % n, referrer=b"https://r%d.example/" % n)
        for n in range(count)
    ]
    clicks[5] = (*clicks[5][:2], True, *clicks[5][3:])  # a HEAD request
    clicks[6] = (*clicks[6][:4], b"", *clicks[6][5:])  # no referrer
    writer = ClickWriter(settings)
    assert writer.write(clicks) == count
    writer.close()

    with LinkStore(settings) as store:
        rows = store.conn.execute(
            "SELECT slug, clicked_at, referrer_host, user_agent, is_bot, bot_reason, "
            "visitor FROM clicks ORDER BY id"
        ).fetchall()
    assert len(rows) == count
    for n, (slug, at, host, agent, is_bot, reason, visitor) in enumerate(rows):
        clicked = dt.datetime.fromtimestamp(clicks[n][1], dt.UTC)
        expected_host = None if n == 6 else f"r{n}.example"
        assert (slug, host, agent) == ("a", expected_host, f"Agent/{n}")
        assert at == clicked.strftime("%Y-%m-%d %H:%M:%S.") + at[-3:]
        assert (is_bot, reason) == ((1, "HEAD request") if n == 5 else (0, None))
        assert len(visitor) == 16


def test_a_visitor_hashes_apart_each_day_and_alike_within_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LinkStore(settings) as store:
        store.create("https://example.com/a", "a")
    # Descriptions of requests are remembered; a full memo starts again.
    monkeypatch.setattr(clickdb, "DESCRIBED", 2)
    clicks = [_click("a", days_ago) for days_ago in (1, 0, 1, 0)]
    clicks += [_click("a", 0, agent=b"Agent/%d" % n) for n in range(5)]
    writer = ClickWriter(settings)
    writer.write(clicks)
    assert len(writer._described) <= 2
    writer.close()

    rows = query(settings.db_path, "SELECT visitor FROM clicks ORDER BY id")
    visitors = [visitor for (visitor,) in rows]
    assert visitors[0] == visitors[2] != visitors[1] == visitors[3]
    assert set(visitors[4:]) == {visitors[1]}  # the agent is not part of it


def test_requests_alike_but_for_one_part_are_told_apart(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, trusted_proxies="192.0.2.0/24")
    with LinkStore(settings) as store:
        store.create("https://example.com/a", "a")
    base = _click("a", 0)
    head = (*base[:2], True, *base[3:])
    peer = (*base[:6], "203.0.113.5")
    forwarded = [(*base[:5], b"198.51.100.%d" % n, base[6]) for n in (7, 8, 7)]
    writer = ClickWriter(settings)
    writer.write([base, head, base, peer, *forwarded])
    writer.close()

    rows = query(settings.db_path, "SELECT bot_reason, visitor FROM clicks ORDER BY id")
    reasons = [reason for reason, _ in rows]
    visitors = [visitor for _, visitor in rows]
    assert reasons == [None, "HEAD request", None, None, None, None, None]
    assert visitors[0] == visitors[1] == visitors[2]
    assert len({visitors[0], visitors[3], visitors[4], visitors[5]}) == 4
    assert visitors[4] == visitors[6]
