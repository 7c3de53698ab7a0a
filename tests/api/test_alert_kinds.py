"""Every kind of alert the services raise can be asked for by kind in the operator API."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import typing

from fastapi.testclient import TestClient

from swapd import services
from swapd.api.operator_swaps import AlertKind
from swapd.services.identity import Role
from swapd.store.database import Database
from tests.api.conftest import staff


def _kinds_raised() -> set[str]:
    """The first argument of every ``tx.repo.alert(...)`` call in any module of swapd.services."""
    modules = [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(services.__path__, prefix="swapd.services.")
    ]
    trees = [ast.parse(inspect.getsource(module)) for module in modules]
    return {
        node.args[0].value
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "alert"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_the_api_filter_names_every_kind_the_services_raise() -> None:
    raised = _kinds_raised()
    assert "token_pack_mismatch" in raised  # the scan finds the calls at all
    assert raised <= set(typing.get_args(AlertKind))


def test_alerts_of_the_token_pack_mismatch_kind_can_be_listed(client: TestClient, db: Database) -> None:
    operator = staff(client, db, Role.OPERATOR)
    answer = client.get(
        "/api/v1/ops/alerts", params={"kind": "token_pack_mismatch"}, headers=operator.headers
    )
    assert answer.status_code == 200, answer.text
