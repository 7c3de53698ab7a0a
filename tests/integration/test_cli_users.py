"""``swapd user``: the first admin from the command line, and what it can then do over HTTP."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from swapd.cli import app
from swapd.gateway.server import create_app
from swapd.store.database import Database
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_user_add_makes_an_admin_who_can_sign_in_and_list_accounts(db_url: str, db: Database) -> None:
    added = runner.invoke(app, ["user", "add", "Boss@Example.com", "--json", "--database", db_url])
    assert added.exit_code == 0, added.output
    shown = json.loads(added.stdout)
    assert shown["email"] == "boss@example.com" and shown["role"] == "admin"
    password = shown["password"]
    assert len(password) >= 24

    with TestClient(create_app(db)) as client:
        login = client.post(
            "/api/v1/auth/login", json={"email": "boss@example.com", "password": password}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        assert [u["email"] for u in client.get("/api/v1/users", headers=headers).json()] == [
            "boss@example.com"
        ]

        key = runner.invoke(
            app, ["user", "api-key", "boss@example.com", "--name", "erp", "--json", "--database", db_url]
        )
        assert key.exit_code == 0, key.output
        secret = json.loads(key.stdout)["key"]
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_user_add_with_a_password_on_stdin_and_the_refusals(db_url: str) -> None:
    given = runner.invoke(
        app,
        [
            "user",
            "add",
            "ops@example.com",
            "--role",
            "support",
            "--password-stdin",
            "--database",
            db_url,
        ],
        input="a long enough password\n",
    )
    assert given.exit_code == 0, given.output
    assert "a long enough password" not in given.stdout
    for args, expected in (
        (["user", "add", "ops@example.com"], "exists already"),
        (["user", "add", "not-an-email"], "not an email address"),
        (["user", "add", "x@example.com", "--role", "rider"], "role must be"),
        (["user", "api-key", "nobody@example.com"], "no account"),
    ):
        result = runner.invoke(app, [*args, "--database", db_url])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and expected in result.stderr
    listed = runner.invoke(app, ["user", "list", "--json", "--database", db_url])
    assert [(u["email"], u["role"]) for u in json.loads(listed.stdout)] == [
        ("ops@example.com", "support")
    ]


def test_user_change_keeps_the_last_admin_and_disables_others(db_url: str) -> None:
    for email, role in (("boss@example.com", "admin"), ("ops@example.com", "operator")):
        added = runner.invoke(app, ["user", "add", email, "--role", role, "--database", db_url])
        assert added.exit_code == 0, added.output
    for change in (["--status", "disabled"], ["--role", "operator"]):
        refused = runner.invoke(
            app, ["user", "change", "boss@example.com", *change, "--database", db_url]
        )
        assert refused.exit_code == 2, refused.output
        assert "last active admin" in refused.stderr and len(refused.stderr.splitlines()) == 1
    for args, expected in (
        (["user", "change", "ops@example.com"], "nothing to change"),
        (["user", "change", "ops@example.com", "--status", "gone"], "status must be"),
        (["user", "change", "ops@example.com", "--role", "rider"], "role must be"),
        (["user", "change", "nobody@example.com", "--role", "support"], "no account"),
    ):
        result = runner.invoke(app, [*args, "--database", db_url])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and expected in result.stderr
    changed = runner.invoke(
        app,
        ["user", "change", "ops@example.com", "--status", "disabled", "--json", "--database", db_url],
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["status"] == "disabled"
    listed = runner.invoke(app, ["user", "list", "--json", "--database", db_url])
    assert [(u["email"], u["role"], u["status"]) for u in json.loads(listed.stdout)] == [
        ("boss@example.com", "admin", "active"),
        ("ops@example.com", "operator", "disabled"),
    ]
