"""``swapd user``: staff accounts for the HTTP API. ``swapd user add`` makes the first admin;
``swapd user change`` changes a role or disables an account (the last active admin stays)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import DatabaseOption, JsonOption, fail, out, with_db

if TYPE_CHECKING:
    from swapd.services import identity
    from swapd.store.database import Database

user_app = typer.Typer(help="Staff accounts of the HTTP API and their API keys.", no_args_is_help=True)


@user_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="The sign-in address.")],
    role: Annotated[str, typer.Option("--role", help="admin, operator or support.")] = "admin",
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from stdin (else one is generated)."),
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a staff account; without --password-stdin a password is generated and shown once."""
    if role not in ("admin", "operator", "support"):
        fail(f"role must be admin, operator or support, got {role!r}")
    from swapd.security import generate_password
    from swapd.services import identity
    from swapd.services.identity import Role

    password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
    user = with_db(database, lambda db: identity.add_staff(db, email, password, Role(role)))
    shown = None if password_stdin else password
    if as_json:
        out.print_json(
            json.dumps({"id": user.id, "email": user.email, "role": user.role.value, "password": shown})
        )
        return
    out.print(f"added {user.role.value} {user.email} ({user.id})")
    if shown is not None:
        out.print(f"password (shown once): {shown}", highlight=False)


@user_app.command("list")
def list_users(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Every account: staff and riders."""
    from swapd.services import identity

    users = with_db(database, identity.users)
    if as_json:
        rows = [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role.value,
                "rider_id": u.rider_id,
                "status": u.status,
            }
            for u in users
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table("id", "email", "role", "rider", "status")
    for u in users:
        table.add_row(u.id, u.email, u.role.value, u.rider_id or "", u.status)
    out.print(table)


@user_app.command("api-key")
def api_key(
    email: Annotated[str, typer.Argument(help="The staff account the key acts as.")],
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "integration",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API key for a staff account; the key is shown once."""
    from swapd.services import identity

    def work(db: Database) -> identity.IssuedToken:
        return identity.create_api_key(db, identity.user_by_email(db, email).id, name)

    issued = with_db(database, work)
    if as_json:
        out.print_json(json.dumps({"id": issued.id, "key": issued.token, "email": issued.user.email}))
        return
    out.print(
        f"API key {issued.id} for {issued.user.email} (shown once): {issued.token}", highlight=False
    )


@user_app.command("change")
def change(
    email: Annotated[str, typer.Argument(help="The staff account to change.")],
    role: Annotated[str | None, typer.Option("--role", help="admin, operator or support.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active or disabled.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a staff account's role or status. This ends its sessions, and disabling it also
    revokes its API keys, for good; the last active admin can be neither disabled nor demoted."""
    if role is not None and role not in ("admin", "operator", "support"):
        fail(f"role must be admin, operator or support, got {role!r}")
    if role is None and status is None:
        fail("nothing to change: give --role or --status")
    from swapd.services import identity
    from swapd.services.identity import Role

    new_role = None if role is None else Role(role)

    def work(db: Database) -> identity.User:
        user_id = identity.user_by_email(db, email).id
        return identity.update_staff(db, user_id, role=new_role, status=status)

    user = with_db(database, work)
    if as_json:
        out.print_json(
            json.dumps(
                {"id": user.id, "email": user.email, "role": user.role.value, "status": user.status}
            )
        )
        return
    out.print(f"{user.email} ({user.id}): {user.role.value}, {user.status}")
