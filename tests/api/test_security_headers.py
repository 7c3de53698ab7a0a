"""Every HTTP answer carries the security headers (API, errors, /healthz, /metrics, /docs, the
413 and the 500); /docs works without internet; an unexpected exception is a JSON 500 that
names only a request id, logged once with its traceback."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from swapd.api import errors
from swapd.api.headers import CONTENT_SECURITY_POLICY
from swapd.gateway.server import create_app
from swapd.store.database import Database
from tests.api.conftest import rider

SECRET_DETAIL = "password=hunter2 in /srv/swapd/internals.py"


def assert_security_headers(answer: httpx.Response) -> None:
    headers = answer.headers
    assert headers["x-content-type-options"] == "nosniff", answer.request.url
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    policy = headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'self'" in policy
    # Scripts only from swapd: no inline script, no CDN.
    assert "script-src" not in policy and "unsafe-inline" not in policy.split("style-src")[0]


def test_api_answers_carry_the_headers_and_are_not_stored(client: TestClient, db: Database) -> None:
    me = rider(client, db)
    answer = client.get("/api/v1/me", headers=me.headers)
    assert answer.status_code == 200
    assert_security_headers(answer)
    assert answer.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{16}", answer.headers["x-request-id"])


def test_error_answers_carry_the_headers(client: TestClient) -> None:
    for answer in (
        client.get("/api/v1/me"),  # 401
        client.get("/api/v1/nowhere"),  # 404
        client.post("/api/v1/auth/login", content=b"{not json"),  # 422
        client.post("/api/v1/auth/login", content=b"x" * (2 * 1024 * 1024)),  # 413
    ):
        assert answer.status_code in (401, 404, 422, 413), answer.text
        assert_security_headers(answer)
        assert answer.headers["cache-control"] == "no-store"


def test_healthz_metrics_and_docs_carry_the_headers(client: TestClient) -> None:
    for path in ("/healthz", "/metrics", "/docs", "/openapi.json", "/static/docs.js"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert_security_headers(answer)


def test_docs_load_nothing_from_other_hosts(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    assert "<script>" not in page.text  # no inline script: the policy forbids them
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    kinds = {
        ".js": ("text/javascript", "application/javascript"),
        ".css": ("text/css",),
        ".png": ("image/png",),
    }
    assert len(assets) == 4
    for url in assets:
        assert url.startswith("/"), url
        answer = client.get(url)
        assert answer.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert answer.headers["content-type"].startswith(kinds[suffix]), url
        assert_security_headers(answer)
    bundle = client.get("/static/swagger-ui/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 1_000_000
    openapi_url = re.search(r'data-openapi-url="([^"]+)"', page.text)
    assert openapi_url is not None and client.get(openapi_url.group(1)).status_code == 200


def test_fastapi_pages_that_use_a_cdn_are_gone(client: TestClient) -> None:
    for path in ("/redoc", "/docs/oauth2-redirect"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "cdn.jsdelivr.net" not in answer.text


# -- the unexpected ------------------------------------------------------------------------------


def _with_failing_route(db: Database) -> FastAPI:
    """The real app plus one test-only route that fails as a bug would."""
    app = create_app(db)

    @app.get("/api/v1/test-only/boom")
    def boom() -> None:
        raise RuntimeError(SECRET_DETAIL)

    return app


@pytest.fixture
def logs() -> Iterator[list[dict[str, object]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def test_an_unexpected_exception_is_a_json_500_logged_once(
    db: Database, logs: list[dict[str, object]]
) -> None:
    with TestClient(_with_failing_route(db), raise_server_exceptions=False) as client:
        answer = client.get("/api/v1/test-only/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    request_id = answer.headers["x-request-id"]
    assert body["code"] == "internal_error"
    assert request_id in body["detail"]
    assert "hunter2" not in answer.text and "RuntimeError" not in answer.text
    assert_security_headers(answer)
    assert answer.headers["cache-control"] == "no-store"
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["event"] == "unexpected_error"
    assert errors[0]["request_id"] == request_id
    assert errors[0]["path"] == "/api/v1/test-only/boom"
    assert isinstance(errors[0]["exc_info"], RuntimeError)  # the traceback goes with it


def test_the_server_does_not_log_the_same_exception_a_second_time(db: Database) -> None:
    # Starlette re-raises after the 500 for the server; uvicorn logs what reaches it.
    with TestClient(_with_failing_route(db)) as client, pytest.raises(RuntimeError) as raised:
        client.get("/api/v1/test-only/boom")
    record = logging.LogRecord(
        "uvicorn.error",
        logging.ERROR,
        __file__,
        1,
        "Exception in ASGI application",
        None,
        (RuntimeError, raised.value, raised.value.__traceback__),
    )
    server_log = logging.getLogger(errors.SERVER_LOGGER)
    assert not all(f.filter(record) for f in server_log.filters)  # dropped
    other = RuntimeError("never seen by swapd's handler")
    record.exc_info = (RuntimeError, other, None)
    assert all(f.filter(record) for f in server_log.filters)  # kept


def test_a_failure_outside_every_swapd_middleware_is_still_a_json_500_with_headers(
    db: Database, logs: list[dict[str, object]]
) -> None:
    app = create_app(db)

    def failing(inner: ASGIApp) -> Callable[[Scope, Receive, Send], object]:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                raise RuntimeError(SECRET_DETAIL)
            await inner(scope, receive, send)

        return middleware

    app.add_middleware(failing)  # outermost: only Starlette's ServerErrorMiddleware is outside
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal_error"
    assert "hunter2" not in answer.text
    assert_security_headers(answer)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["unexpected_error"]
