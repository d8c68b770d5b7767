"""Commands that look after the installation itself."""

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from linkbroker.cli.app import app, options

if TYPE_CHECKING:
    from linkbroker.store import LinkStore


@app.command()
def init(
    ctx: typer.Context,
    wipe: Annotated[
        bool,
        typer.Option(
            "--wipe", help="Delete every link and click, after a confirmation."
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
    ] = False,
) -> None:
    """Create or upgrade the database and say where the data lives.

    Running it again changes nothing; every other command also creates the database
    on first use.
    """
    from linkbroker import database
    from linkbroker.store import LinkStore

    settings = options(ctx).settings()
    before = database.peek_version(settings.db_path)
    with LinkStore(settings) as store:
        if wipe:
            _wipe(store, yes)
        after = database.schema_version(store.conn)
        counts = database.table_counts(store.conn)

    if before is None:
        state = f"created at schema version {after}"
    elif before < after:
        state = f"upgraded from schema version {before} to {after}"
    else:
        state = f"up to date at schema version {after}"
    typer.echo(f"Database: {settings.db_path} ({state})")
    typer.echo(f"Cache:    {settings.cache_dir}")
    typer.echo(f"Links:    {counts.get('links', 0):,}")


def _wipe(store: "LinkStore", yes: bool) -> None:
    if not yes:
        typer.confirm(
            f"Delete all {store.count():,} links and their clicks from "
            f"{store.settings.db_path}? This cannot be undone.",
            abort=True,
        )
    lost = store.wipe()
    typer.echo(f"Wiped {lost:,} links.")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks one.")
    ] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes sharing the data.")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request.")
    ] = False,
) -> None:
    """Serve redirects over HTTP and record every click.

    Stops gracefully on SIGTERM or Ctrl+C, writing every recorded click first.
    """
    settings = options(ctx).settings()
    argv = [
        sys.executable,
        "-m",
        "linkbroker.serve",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if access_log:
        argv.append("--access-log")
    # Hand the process over to the lean server entry point: same PID for service
    # managers and signals, and no Typer or rich left in memory.
    os.execve(sys.executable, argv, {**os.environ, **settings.environ()})  # noqa: S606
