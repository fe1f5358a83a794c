"""``rcmd-server adduser`` and ``rcmd-server passwd``: write the users file (--users FILE).

The password is read from stdin when it is not a terminal (one line), else asked for twice
without echo. The file gets salted SCRAM-SHA-256 verifiers, never the password.
"""

from __future__ import annotations

import getpass
import sys

import typer

from .scram import DEFAULT_ITERATIONS, MIN_ITERATIONS
from .server.accounts import AccountsError, add_user, set_password

accounts_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)
_SETTINGS = {"help_option_names": ["-h", "--help"]}

UsersOption = typer.Option(..., "--users", help="The users file (TOML); created if absent.")
IterationsOption = typer.Option(
    DEFAULT_ITERATIONS, min=MIN_ITERATIONS, help="PBKDF2 rounds: each login costs the client this many."
)


def read_password(name: str) -> str:
    """One line of stdin when it is not a terminal; else a prompt without echo, twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        typer.echo("rcmd-server: the passwords differ", err=True)
        raise typer.Exit(2)
    return first


@accounts_app.command("adduser", context_settings=_SETTINGS)
def adduser_command(
    name: str = typer.Argument(..., help="The user name: letters, digits, '.', '_', '-'."),
    users: str = UsersOption,
    home: str | None = typer.Option(None, help="The user's home (default: NAME beside the users file)."),
    quota: int | None = typer.Option(None, min=0, help="Bytes the user's home may hold."),
    transfer_only: bool = typer.Option(
        False, "--transfer-only", help="The user may only transfer files, and only inside the home."
    ),
    iterations: int = IterationsOption,
) -> None:
    """Add a user to the users file."""
    import os

    home = home or os.path.join(os.path.dirname(os.path.abspath(users)), name)
    try:
        account = add_user(
            users,
            name,
            read_password(name),
            home=home,
            quota=quota,
            transfer_only=transfer_only,
            iterations=iterations,
        )
    except (AccountsError, OSError) as exc:
        typer.echo(f"rcmd-server: {exc}", err=True)
        raise typer.Exit(1) from None
    kind = "transfer-only, confined to" if account.transfer_only else "home"
    typer.echo(f"added {account.name} ({kind} {account.home}) to {users}", err=True)


@accounts_app.command("passwd", context_settings=_SETTINGS)
def passwd_command(
    name: str = typer.Argument(...),
    users: str = UsersOption,
) -> None:
    """Change a user's password."""
    try:
        set_password(users, name, read_password(name))
    except (AccountsError, OSError) as exc:
        typer.echo(f"rcmd-server: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"password of {name} changed in {users}", err=True)


def main(argv: list[str]) -> None:
    accounts_app(args=argv, prog_name="rcmd-server")
