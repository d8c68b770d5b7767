"""Commands that manage the API's tokens."""

from typing import TYPE_CHECKING, Annotated

import typer

from linkbroker.cli.app import app, options
from linkbroker.cli.output import console, print_json

if TYPE_CHECKING:
    from linkbroker.tokens import TokenStore

tokens_app = typer.Typer(help="Make, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(tokens_app, name="token")


def _store(ctx: typer.Context) -> "TokenStore":
    from linkbroker.tokens import TokenStore

    return TokenStore(options(ctx).settings().db_path)


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name to know the token by.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Make a token for the API and print it; it is shown this once only."""
    store = _store(ctx)
    try:
        token = store.create(name)
    finally:
        store.close()

    if as_json:
        print_json({"name": name, "token": token})
    else:
        typer.echo(token)
        typer.echo(
            "Keep it safe: only its hash is stored, so it cannot be shown again.",
            err=True,
        )


@tokens_app.command("list")
def list_tokens(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens by name, with when each was made, last used and revoked."""
    store = _store(ctx)
    try:
        tokens = store.list()
    finally:
        store.close()

    if as_json:
        print_json([vars(token) for token in tokens])
        return
    if not tokens:
        typer.echo("No tokens yet; make one with `linkbroker token create NAME`.")
        return
    from rich.table import Table

    table = Table(title="API tokens", title_justify="left")
    for column in ("Name", "Created (UTC)", "Last used (UTC)", "Revoked (UTC)"):
        table.add_column(column)
    for token in tokens:
        table.add_row(
            token.name,
            token.created_at,
            token.last_used_at or "never",
            token.revoked_at or "",
        )
    console().print(table)


@tokens_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
) -> None:
    """Revoke a token: every server worker refuses it from the next request."""
    store = _store(ctx)
    try:
        store.revoke(name)
    finally:
        store.close()
    typer.echo(f"Revoked {name}.")
