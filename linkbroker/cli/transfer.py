"""Commands that move links in and out: export and import."""

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from linkbroker.cli.app import app, options
from linkbroker.cli.output import console
from linkbroker.cli.progress import Report, progress_bar
from linkbroker.errors import StorageError

if TYPE_CHECKING:
    from linkbroker.store import LinkStore
    from linkbroker.transfer.export import ExportCounts
    from linkbroker.transfer.importer import ImportReport

# Problems listed on stderr; the summary counts them all.
SHOWN_PROBLEMS = 50


@app.command()
def export(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="jsonl (everything) or csv (the links table alone)."
        ),
    ] = "jsonl",
    clicks: Annotated[
        bool,
        typer.Option(
            "--clicks", help="Add raw click events and per-day counters (jsonl only)."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file instead of stdout.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write every link, deleted ones included, with all its fields.

    JSON Lines also carries each link's destination history, and with --clicks its
    click data. `linkbroker import` reads both formats back.
    """
    from linkbroker.transfer.export import check_format

    check_format(fmt, clicks)
    with options(ctx).store() as store:
        if output is None:
            _export(store, sys.stdout, fmt, clicks, to_stdout=True)
            return
        # Written beside the target first: a failed export leaves no partial file
        # that could pass for a whole one.
        partial = output.with_name(output.name + ".partial")
        try:
            with partial.open("w", encoding="utf-8", newline="") as out:
                counts = _export(store, out, fmt, clicks, to_stdout=False)
            partial.replace(output)
        except OSError as exc:
            raise StorageError(
                f"Cannot write the export to {str(output)!r} ({exc.strerror}); "
                "name a file in a folder that exists and is writable.",
                output,
            ) from exc
        finally:
            with contextlib.suppress(OSError):  # where it could not be made
                partial.unlink(missing_ok=True)
    typer.echo(f"Exported {counts.links:,} links to {output}.", err=True)


def _export(
    store: "LinkStore", out: TextIO, fmt: str, clicks: bool, *, to_stdout: bool
) -> "ExportCounts":
    from linkbroker.transfer.export import export as write

    with progress_bar(output_is_stdout=to_stdout) as report:
        return write(store.conn, out, fmt, clicks=clicks, progress=_phase(report))


def _phase(report: Report | None) -> Callable[[int, int], None] | None:
    if report is None:
        return None
    return lambda done, total: report("export", done, total)


@app.command("import")
def import_links(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The file to import.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="jsonl, csv, plain, d1, shlink or yourls; recognised when left out.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check and report, but change nothing."),
    ] = False,
) -> None:
    """Import links from FILE: an export, a plain CSV, or another tool's export.

    Every row is checked as `shorten` checks a link. Bad rows are reported with
    their line and left out, and the good ones are imported. A slug that already
    leads to the same place is skipped and one that leads elsewhere is reported,
    never overwritten, so running the same import again changes nothing. Exits
    with status 1 unless every row of the file is in the database afterwards; try
    --dry-run first to see the problems without changing anything.
    """
    from linkbroker.transfer.importer import import_file

    with options(ctx).store() as store, progress_bar() as report:
        result = import_file(store, file, fmt, dry_run=dry_run, progress=report)
    _print_problems(result)
    _print_summary(result)
    if not result.complete:
        raise typer.Exit(1)


def _print_problems(result: "ImportReport") -> None:
    for problem in sorted(result.problems, key=lambda p: p.line)[:SHOWN_PROBLEMS]:
        slug = f"slug {problem.slug!r}" if problem.slug else "no slug"
        typer.echo(f"line {problem.line}: {slug}: {problem.reason}", err=True)
    hidden = result.bad + result.conflicts - SHOWN_PROBLEMS
    if hidden > 0:
        typer.echo(f"… and {hidden:,} more.", err=True)


def _print_summary(result: "ImportReport") -> None:
    from rich.table import Table

    if result.dry_run:
        title = f"Dry run of an import from a {result.fmt} file: nothing changed."
    else:
        title = f"Imported from a {result.fmt} file."
    if not result.complete:
        title += (
            " Rows listed above are not in the database; fix them in the file and "
            "import it again: what is already in is skipped."
        )
    out = console()
    out.print(title, markup=False)
    table = Table()
    table.add_column("Rows")
    table.add_column("Count", justify="right")
    verb = "would be imported" if result.dry_run else "imported"
    for label, count in (
        ("read", result.read),
        (verb, result.imported),
        ("skipped, already present", result.present),
        ("conflicts, left as they are", result.conflicts),
        ("bad", result.bad),
    ):
        table.add_row(label, f"{count:,}")
    for kind, count in result.extras.items():
        if count:
            table.add_row(f"{kind} records {verb}", f"{count:,}")
    out.print(table)


@app.command()
def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write; new.")],
) -> None:
    """Copy the database to FILE, consistently, while a server goes on serving.

    The copy holds everything committed when it began, in one SQLite file that
    `linkbroker restore` takes back.
    """
    from linkbroker.transfer.backup import backup as take_backup

    with options(ctx).store() as store:
        info = take_backup(store, file)
    typer.echo(
        f"Backed up {info.links:,} links and {info.clicks:,} click events "
        f"(schema version {info.schema_version}) to {file}."
    )


@app.command()
def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file made by `linkbroker backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Replace the database's content with the backup FILE, keeping the old one.

    FILE is checked (integrity, schema version) before anything is replaced, and
    an older schema is brought up to date. The replaced content is kept beside the
    database as <db>.before-restore-<UTC time>. A running server serves the
    restored links within a second.
    """
    from linkbroker.transfer.backup import restore as put_back
    from linkbroker.transfer.backup import staged_copy

    with options(ctx).store() as store:
        db_path = store.settings.db_path
        with staged_copy(file, db_path) as (info, staging):
            if not yes:
                typer.confirm(
                    f"Replace the {store.count():,} links of {db_path} with the "
                    f"{info.links:,} links of {file}? The current content is kept "
                    "beside it.",
                    abort=True,
                )
            kept = put_back(store, staging)
    typer.echo(
        f"Restored {info.links:,} links and {info.clicks:,} click events from "
        f"{file}; the replaced database is kept as {kept}."
    )
