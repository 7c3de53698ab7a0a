"""Riders pay through a provider: top-ups and subscriptions open a pending payment and return the
provider's checkout URL; the provider's signed webhook credits the allowance. Also the sandbox
provider's hosted payment page, there only when the sandbox is the configured provider.

With no provider configured, starting a payment and webhooks are refused with
``payments_not_configured``; riders still see the payments they made before."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from swapd.api.deps import Db, IdempotencyKey, Rider, get_db, once, service_key
from swapd.api.errors import responses
from swapd.domain.errors import NotFound
from swapd.domain.quantities import format_money
from swapd.payments import config
from swapd.payments.provider import (
    MAX_WEBHOOK_BYTES,
    PaymentProvider,
    PaymentsNotConfigured,
    PaymentStatus,
    Purpose,
)
from swapd.payments.sandbox import SandboxProvider
from swapd.services import checkout, payments
from swapd.store.database import Database

_provider_lock = threading.Lock()
_UNSET = object()


def _provider_for(app: FastAPI, db: Database) -> PaymentProvider | None:
    """The app's provider, made from the environment once (tests may set app.state's first);
    None when none is configured."""
    with _provider_lock:
        provider = getattr(app.state, "payment_provider", _UNSET)
        if provider is _UNSET:
            provider = config.provider_from_env(db)
            app.state.payment_provider = provider
        return cast(PaymentProvider | None, provider)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # A misconfigured provider stops the server at startup, not at the first rider who pays.
    _provider_for(app, app.state.db)
    yield


router = APIRouter(tags=["payments"], lifespan=_lifespan)


def configured_provider(request: Request) -> PaymentProvider | None:
    return _provider_for(request.app, get_db(request))


def provider_of(request: Request) -> PaymentProvider:
    provider = configured_provider(request)
    if provider is None:
        raise PaymentsNotConfigured(config.NOT_CONFIGURED)
    return provider


Provider = Annotated[PaymentProvider, Depends(provider_of)]
MaybeProvider = Annotated[PaymentProvider | None, Depends(configured_provider)]
PaymentId = Annotated[str, Path(min_length=1, max_length=40)]
_RETURN_URL = Field(
    None,
    max_length=500,
    pattern=r"^https?://[^\s]+$",
    description="Where the payment page sends the rider back to (your app's page)",
)


class NewTopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_minor: int = Field(
        ge=1,
        le=payments.MAX_AMOUNT_MINOR,
        strict=True,
        description="Money to pay, in minor units of the rider's plan currency",
    )
    return_url: str | None = _RETURN_URL


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan_id: str | None = Field(
        None, max_length=40, description="The rider's subscription plan (the default)"
    )
    return_url: str | None = _RETURN_URL


class PaymentOut(BaseModel):
    id: str
    purpose: Purpose
    status: PaymentStatus
    amount_minor: int
    currency: str
    provider: str
    created_at: datetime
    updated_at: datetime
    credited_at: datetime | None
    checkout_url: str | None = Field(description="The page to pay at, while the payment is pending")

    @classmethod
    def of(cls, payment: checkout.Payment, checkout_url: str | None) -> PaymentOut:
        return cls(
            id=payment.id,
            purpose=payment.purpose,
            status=payment.status,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            provider=payment.provider,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            credited_at=payment.credited_at,
            checkout_url=checkout_url,
        )


class WebhookAnswer(BaseModel):
    outcome: checkout.Outcome
    payment_id: str | None


def _site(request: Request) -> str:
    return config.site_url(str(request.base_url))


@router.post(
    "/me/top-ups",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Start a top-up: a pending payment and the page to pay it at (Idempotency-Key)",
)
def top_up(
    body: NewTopUp,
    caller: Rider,
    db: Db,
    provider: Provider,
    request: Request,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    rider_id = caller.rider_id
    assert rider_id is not None

    def work() -> tuple[int, PaymentOut]:
        started = checkout.start_top_up(
            db,
            provider,
            rider_id,
            body.amount_minor,
            key=service_key(caller, idempotency_key),
            site_url=_site(request),
            return_url=body.return_url,
        )
        return 201, PaymentOut.of(started.payment, started.checkout_url)

    return once(db, caller, idempotency_key, request, body, work)


@router.post(
    "/me/subscription",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentOut,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Subscribe: a pending payment of the first cycle's fee (Idempotency-Key)",
)
def subscribe(
    caller: Rider,
    db: Db,
    provider: Provider,
    request: Request,
    idempotency_key: IdempotencyKey,
    body: NewSubscription | None = None,
) -> JSONResponse:
    wanted = body or NewSubscription.model_validate({})
    rider_id = caller.rider_id
    assert rider_id is not None

    def work() -> tuple[int, PaymentOut]:
        started = checkout.start_subscription(
            db,
            provider,
            rider_id,
            key=service_key(caller, idempotency_key),
            site_url=_site(request),
            return_url=wanted.return_url,
            plan_id=wanted.plan_id,
        )
        return 201, PaymentOut.of(started.payment, started.checkout_url)

    return once(db, caller, idempotency_key, request, wanted, work)


def _pending_url(
    provider: PaymentProvider | None, payment: checkout.Payment, request: Request
) -> str | None:
    if provider is None or payment.status is not PaymentStatus.PENDING:
        return None
    if payment.provider != provider.name:
        return None
    return provider.checkout_url(payment.id, payment.provider_ref, _site(request))


@router.get("/me/payments", responses=responses(401, 403, 422), summary="Your payments, newest first")
def my_payments(
    caller: Rider,
    db: Db,
    provider: MaybeProvider,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=checkout.MAX_PAGE)] = 50,
) -> list[PaymentOut]:
    return [
        PaymentOut.of(p, _pending_url(provider, p, request))
        for p in checkout.payments_of(db, caller.rider_id or "", limit=limit)
    ]


@router.get(
    "/me/payments/{payment_id}", responses=responses(401, 403, 404, 422), summary="One of your payments"
)
def my_payment(
    payment_id: PaymentId, caller: Rider, db: Db, provider: MaybeProvider, request: Request
) -> PaymentOut:
    payment = checkout.payment_of(db, caller.rider_id or "", payment_id)
    return PaymentOut.of(payment, _pending_url(provider, payment, request))


@router.post(
    "/payments/webhooks/{provider_name}",
    responses=responses(400, 404, 422, 503),
    summary="Provider webhooks (no bearer token: the provider's signature is the authentication)",
)
async def webhook(
    provider_name: Annotated[str, Path(max_length=16)],
    request: Request,
    provider: Provider,
) -> WebhookAnswer:
    if provider_name != provider.name:
        raise NotFound(f"payments go through {provider.name} here, not {provider_name}")
    # The signature covers the exact bytes received, so the raw body is read before any parsing;
    # reading stops past the limit, which the provider then refuses. The rest is synchronous
    # database work and runs in the thread pool like plain routes.
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            break
    outcome = await run_in_threadpool(
        checkout.handle_webhook, get_db(request), provider, bytes(body), request.headers
    )
    return WebhookAnswer(outcome=outcome.outcome, payment_id=outcome.payment_id)


# -- the sandbox provider's hosted payment page -------------------------------------------------------


def _sandbox(provider: PaymentProvider | None) -> SandboxProvider:
    if not isinstance(provider, SandboxProvider):
        raise NotFound(f"the sandbox payment page is off: {config.ENV_PROVIDER} is not sandbox")
    return provider


def _sandbox_payment(db: Database, provider: SandboxProvider, payment_id: str) -> checkout.Payment:
    payment = checkout.payment(db, payment_id)
    if payment.provider != provider.name:
        raise NotFound(f"unknown sandbox payment {payment_id}")
    return payment


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>swapd sandbox payment</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 2rem auto">
<h1>Sandbox payment</h1>
<p>No money moves: this page stands in for a payment provider.</p>
<dl><dt>Payment</dt><dd>{payment_id}</dd><dt>For</dt><dd>{purpose}</dd>
<dt>Amount</dt><dd><strong>{amount}</strong></dd><dt>Status</dt><dd id="status">{status}</dd></dl>
{actions}
</body></html>
"""

_ACTIONS = """<form method="post" action="{pay}" style="display: inline">
<button type="submit">Pay {amount}</button></form>
<form method="post" action="{decline}" style="display: inline">
<button type="submit">Decline</button></form>
"""


def _page(payment: checkout.Payment, query: str) -> HTMLResponse:
    amount = html.escape(format_money(payment.amount_minor, payment.currency))
    actions = ""
    if payment.status is PaymentStatus.PENDING:
        base = f"{payment.id}/"
        actions = _ACTIONS.format(
            pay=html.escape(f"{base}pay{query}"),
            decline=html.escape(f"{base}decline{query}"),
            amount=amount,
        )
    elif payment.status is PaymentStatus.SUCCEEDED:
        actions = "<p>Paid. You can close this page.</p>"
    return HTMLResponse(
        _PAGE.format(
            payment_id=html.escape(payment.id),
            purpose=html.escape(payment.purpose.value.replace("_", "-")),
            amount=amount,
            status=html.escape(payment.status.value),
            actions=actions,
        ),
        headers={"Cache-Control": "no-store"},
    )


def _return_query(request: Request) -> str:
    # Carried from the page to its buttons unchanged; checked only where it is used.
    return f"?{request.url.query}" if request.url.query else ""


@router.get(
    "/sandbox/checkout/{payment_id}",
    response_class=HTMLResponse,
    responses=responses(404, 422),
    summary="The sandbox provider's payment page (HTML, Pay and Decline)",
)
def sandbox_page(
    payment_id: PaymentId, db: Db, provider: MaybeProvider, request: Request
) -> HTMLResponse:
    sandbox = _sandbox(provider)
    return _page(_sandbox_payment(db, sandbox, payment_id), _return_query(request))


_SUBMIT_RESPONSES: dict[int | str, dict[str, object]] = {
    **responses(404, 422),
    303: {"description": "Back to the return URL given when the payment was started"},
}


def _sandbox_submit(
    db: Database, provider: PaymentProvider | None, payment_id: str, request: Request, *, paid: bool
) -> Response:
    sandbox = _sandbox(provider)
    payment = _sandbox_payment(db, sandbox, payment_id)
    if payment.status is PaymentStatus.PENDING:
        # The button sends what a real provider would: a signed webhook, through the same
        # verification and crediting as one from outside.
        body, headers = sandbox.event(
            payment.id, paid=paid, amount_minor=payment.amount_minor, currency=payment.currency
        )
        checkout.handle_webhook(db, sandbox, body, headers)
        payment = _sandbox_payment(db, sandbox, payment_id)
    return_url = request.query_params.get("return_url")
    signature = request.query_params.get("sig", "")
    if return_url and sandbox.return_url_is_ours(payment.id, return_url, signature):
        return RedirectResponse(return_url, status_code=status.HTTP_303_SEE_OTHER)
    return _page(payment, "")


@router.post(
    "/sandbox/checkout/{payment_id}/pay",
    response_class=HTMLResponse,
    responses=_SUBMIT_RESPONSES,
    summary="Sandbox: pay (sends a signed payment.succeeded webhook)",
)
def sandbox_pay(payment_id: PaymentId, db: Db, provider: MaybeProvider, request: Request) -> Response:
    return _sandbox_submit(db, provider, payment_id, request, paid=True)


@router.post(
    "/sandbox/checkout/{payment_id}/decline",
    response_class=HTMLResponse,
    responses=_SUBMIT_RESPONSES,
    summary="Sandbox: decline (sends a signed payment.failed webhook)",
)
def sandbox_decline(
    payment_id: PaymentId, db: Db, provider: MaybeProvider, request: Request
) -> Response:
    return _sandbox_submit(db, provider, payment_id, request, paid=False)
