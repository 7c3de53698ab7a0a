"""Request bodies have a limit, enforced before they are read: by Content-Length when declared, by
counting the bytes of a streamed body as they arrive. 413 ``body_too_large`` either way; the
webhook and the pack import keep limits of their own; WebSocket scopes pass through."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from swapd.api import limits
from swapd.api.limits import BodyLimit
from swapd.gateway.server import create_app
from swapd.payments import config
from swapd.payments.provider import MAX_WEBHOOK_BYTES
from swapd.store.database import Database
from tests.api.conftest import PASSWORD

SIGNUP = "/api/v1/auth/signup"


def _signup_body(size_bytes: int) -> bytes:
    """A signup body of exactly ``size_bytes``, padded inside a string field."""
    head = b'{"email": "pad@example.com", "password": "' + PASSWORD.encode() + b'", "plan_id": "'
    tail = b'"}'
    return head + b"x" * (size_bytes - len(head) - len(tail)) + tail


def _assert_too_large(answer: httpx.Response, limit_bytes: int) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.json()["code"] == "body_too_large"
    assert str(limit_bytes) in answer.json()["detail"]
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch, db: Database) -> Iterator[TestClient]:
    monkeypatch.setenv(limits.ENV_MAX_BODY_BYTES, "2000")
    monkeypatch.setenv(config.ENV_PROVIDER, "sandbox")  # a webhook route that takes webhooks
    with TestClient(create_app(db)) as client:
        yield client


def test_a_body_whose_content_length_is_over_the_default_limit_is_refused(
    client: TestClient,
) -> None:
    body = _signup_body(limits.DEFAULT_MAX_BODY_BYTES + 1)
    answer = client.post(SIGNUP, content=body, headers={"Content-Type": "application/json"})
    _assert_too_large(answer, limits.DEFAULT_MAX_BODY_BYTES)


def test_a_streamed_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65_536

    answer = client.post(SIGNUP, content=chunks(), headers={"Content-Type": "application/json"})
    _assert_too_large(answer, limits.DEFAULT_MAX_BODY_BYTES)


def test_the_limit_comes_from_the_environment_and_a_body_at_the_limit_passes(
    small_limit: TestClient,
) -> None:
    at_limit = small_limit.post(
        SIGNUP, content=_signup_body(2000), headers={"Content-Type": "application/json"}
    )
    # Read and judged: the padded plan does not exist, which is not a size problem.
    assert at_limit.status_code != 413 and at_limit.json()["code"] != "body_too_large"
    over = small_limit.post(
        SIGNUP, content=_signup_body(2001), headers={"Content-Type": "application/json"}
    )
    _assert_too_large(over, 2000)


def test_a_normal_signup_passes(client: TestClient) -> None:
    answer = client.post(
        SIGNUP, json={"email": "normal@example.com", "password": PASSWORD, "plan_id": "nope"}
    )
    assert answer.status_code == 404, answer.text  # no such plan: the body was read


def test_the_webhook_keeps_its_own_limit_whatever_the_general_one(small_limit: TestClient) -> None:
    url = "/api/v1/payments/webhooks/sandbox"
    # Over the general 2,000 bytes, under the webhook's own limit: it reaches the signature check.
    unsigned = small_limit.post(url, content=b"{" + b" " * 5_000 + b"}")
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "webhook_refused")
    over = small_limit.post(url, content=b" " * (MAX_WEBHOOK_BYTES + 1))
    _assert_too_large(over, MAX_WEBHOOK_BYTES)


def test_a_bad_setting_stops_the_app_at_construction(
    monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    for bad in ("1MB", "-5", "0", "1.5"):
        monkeypatch.setenv(limits.ENV_MAX_BODY_BYTES, bad)
        with pytest.raises(limits.BodyLimitConfigError, match=limits.ENV_MAX_BODY_BYTES):
            create_app(db)


# -- the middleware alone: what it reads, and what it passes through ------------------------------


class _Recorder:
    """An inner app that reads the whole body, and the messages that reached the client."""

    def __init__(self) -> None:
        self.called = False
        self.sent: list[Message] = []

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.called = True
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def _http_scope(**headers: str) -> Scope:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/anything",
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


@pytest.mark.anyio
async def test_a_declared_length_over_the_limit_is_refused_without_reading_a_byte() -> None:
    inner = _Recorder()

    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    await BodyLimit(inner.app, default_bytes=1000)(
        _http_scope(content_length="200000000"), receive, inner.send
    )
    assert not inner.called
    assert inner.sent[0]["status"] == 413


@pytest.mark.anyio
async def test_a_chunked_body_is_read_no_further_than_past_the_limit() -> None:
    inner = _Recorder()
    pulled = 0

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 400, "more_body": True}  # endless

    await BodyLimit(inner.app, default_bytes=1000)(_http_scope(), receive, inner.send)
    assert pulled == 3  # 1,200 bytes: one chunk past the limit, then no more
    assert [m["type"] for m in inner.sent] == ["http.response.start", "http.response.body"]
    assert inner.sent[0]["status"] == 413
    assert b"body_too_large" in inner.sent[1]["body"]


def test_route_limits_apply_by_path_prefix() -> None:
    middleware = BodyLimit(
        _Recorder().app, default_bytes=10, route_limits={"/api/v1/payments/webhooks/": 50}
    )
    assert middleware.limit_for("/api/v1/payments/webhooks/stripe") == 50
    assert middleware.limit_for("/api/v1/auth/signup") == 10


@pytest.mark.anyio
async def test_websocket_scopes_pass_through_untouched() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": "websocket.receive", "bytes": b"x" * 10_000}

    async def send(_message: Message) -> None:
        return None

    scope: Scope = {"type": "websocket", "path": "/ocpp/ST1", "headers": []}
    await BodyLimit(inner, default_bytes=10)(scope, receive, send)
    assert seen == [(scope, receive, send)]
