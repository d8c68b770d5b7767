"""The statistics command."""

from typing import Annotated, Any

import typer

from linkbroker.cli.app import app, options
from linkbroker.cli.output import console, print_json, print_links

BAR_WIDTH = 40


@app.command()
def stats(
    ctx: typer.Context,
    slug: Annotated[
        str | None,
        typer.Argument(help="One link to show in detail.", show_default=False),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Show at most this many links.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show links by human clicks, or one link's last 30 days in detail.

    Bots and link-preview fetchers (Slack, WhatsApp, curl…) are counted apart, as
    bot clicks.
    """
    from linkbroker.stats import link_report

    with options(ctx).store() as store:
        if slug is None:
            links = store.most_clicked(limit)
        else:
            report = link_report(store, slug)

    if slug is None:
        if as_json:
            print_json([link.as_dict() for link in links])
        else:
            print_links(links, title="Links by clicks")
    elif as_json:
        print_json(report)
    else:
        _print_report(report)


def _state(report: dict[str, Any]) -> str:
    since = {
        "deleted": "deleted_at",
        "disabled": "disabled_at",
        "expired": "expires_at",
    }
    field = since.get(report["state"])
    return f"{report['state']} since {report[field]} UTC" if field else report["state"]


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.print(f"[bold]{report['slug']}[/bold]  {report['short_url']}")
    out.print(f"Destination: {report['destination']}", markup=False)
    out.print(f"Created:     {report['created_at']} UTC")
    if report["state"] != "active":
        out.print(f"State:       {_state(report)}")
    out.print(
        f"Clicks:      {report['clicks']:,} human, {report['bot_clicks']:,} bots "
        "and previews"
    )

    peak = max((day["human"] + day["bot"] for day in report["daily"]), default=0)
    chart = Table(title="Last 30 days (UTC)", title_justify="left", box=None)
    chart.add_column("Day")
    chart.add_column("Human", justify="right")
    chart.add_column("Bot", justify="right")
    chart.add_column("")
    for day in report["daily"]:
        human, bot = _bar(day["human"], peak), _bar(day["bot"], peak)
        bars = f"[green]{'█' * human}[/green][dim]{'░' * bot}[/dim]"
        chart.add_row(day["day"], f"{day['human']:,}", f"{day['bot']:,}", bars)
    out.print(chart)

    _print_counts(out, "Top referrers", "Referrer", report["top_referrers"], "host")
    _print_counts(out, "Bots and previews", "Reason", report["bot_reasons"], "reason")


def _bar(count: int, peak: int) -> int:
    if not count:
        return 0
    return max(1, round(count * BAR_WIDTH / peak))


def _print_counts(
    out: Any, title: str, label: str, rows: list[dict[str, Any]], key: str
) -> None:
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title, title_justify="left")
    table.add_column(label, overflow="fold")
    table.add_column("Clicks", justify="right")
    for row in rows:
        table.add_row(row[key] or "(none)", f"{row['clicks']:,}")
    out.print(table)
