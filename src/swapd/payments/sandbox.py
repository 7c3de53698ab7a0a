"""The sandbox provider: a payment page served by swapd itself, with Pay and Decline buttons.

No money moves. The page's buttons make the same kind of signed webhook a real provider sends
(HMAC-SHA256 over "timestamp.body", Stripe's scheme, in the ``Swapd-Signature`` header) and hand it
to the same webhook handling as an external call, so the sandbox exercises the real crediting path:
signature, replay protection, amount checks. Anyone holding the secret can forge such webhooks, so
the secret must be kept like a password, and the sandbox must never be the provider of a network
whose riders pay real money.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from swapd.payments.provider import (
    MAX_KIND_CHARS,
    MAX_WEBHOOK_BYTES,
    SIGNATURE_TOLERANCE_S,
    Checkout,
    CheckoutRequest,
    EventStatus,
    VerifiedEvent,
    WebhookRefused,
)

NAME = "sandbox"
SIGNATURE_HEADER = "swapd-signature"
PAGE_PATH = "/api/v1/sandbox/checkout/{payment_id}"
KIND_SUCCEEDED = "payment.succeeded"
KIND_FAILED = "payment.failed"
_STATUS = {KIND_SUCCEEDED: EventStatus.SUCCEEDED, KIND_FAILED: EventStatus.FAILED}
_MAX_ID_CHARS = 255


class SandboxProvider:
    def __init__(self, secret: str, clock_s: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the sandbox webhook secret needs at least 16 characters")
        self._secret = secret.encode()
        self._clock_s = clock_s

    @property
    def name(self) -> str:
        return NAME

    # -- checkout ------------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        url = self._page_url(request.payment_id, request.site_url)
        if request.return_url is not None:
            # The page redirects only to a return URL signed here, so a link to it cannot be
            # crafted to bounce riders to another site.
            query = {
                "return_url": request.return_url,
                "sig": self.return_signature(request.payment_id, request.return_url),
            }
            url = f"{url}?{urlencode(query)}"
        return Checkout(redirect_url=url, provider_ref=self.provider_ref(request.payment_id))

    def checkout_url(self, payment_id: str, provider_ref: str | None, site_url: str) -> str | None:
        return self._page_url(payment_id, site_url)

    @staticmethod
    def provider_ref(payment_id: str) -> str:
        return f"sbx_{payment_id}"

    @staticmethod
    def _page_url(payment_id: str, site_url: str) -> str:
        return site_url + PAGE_PATH.format(payment_id=payment_id)

    def return_signature(self, payment_id: str, return_url: str) -> str:
        message = f"return.{payment_id}.{return_url}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def return_url_is_ours(self, payment_id: str, return_url: str, signature: str) -> bool:
        return hmac.compare_digest(self.return_signature(payment_id, return_url), signature)

    # -- webhooks ------------------------------------------------------------------------------

    def sign(self, body: bytes, timestamp_s: int | None = None) -> str:
        """The Swapd-Signature header value for ``body``, made now unless told when."""
        at_s = int(self._clock_s()) if timestamp_s is None else timestamp_s
        digest = hmac.new(self._secret, f"{at_s}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={at_s},v1={digest}"

    def event(
        self, payment_id: str, *, paid: bool, amount_minor: int, currency: str
    ) -> tuple[bytes, dict[str, str]]:
        """What the hosted page's Pay or Decline button sends: a signed webhook body and headers."""
        body = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(12)}",
                "type": KIND_SUCCEEDED if paid else KIND_FAILED,
                "data": {
                    "payment_id": payment_id,
                    "provider_ref": self.provider_ref(payment_id),
                    "amount_minor": amount_minor,
                    "currency": currency,
                },
            },
            separators=(",", ":"),
        ).encode()
        return body, {SIGNATURE_HEADER: self.sign(body), "content-type": "application/json"}

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        if len(body) > MAX_WEBHOOK_BYTES:
            raise WebhookRefused(f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise WebhookRefused(f"missing {SIGNATURE_HEADER} header")
        timestamp_s, signatures = _parse_signature(header)
        if abs(self._clock_s() - timestamp_s) > SIGNATURE_TOLERANCE_S:
            raise WebhookRefused(
                f"signature timestamp outside the tolerance of {SIGNATURE_TOLERANCE_S} s"
            )
        expected = self.sign(body, timestamp_s).split(",v1=", 1)[1]
        if not any(hmac.compare_digest(expected, s) for s in signatures):
            raise WebhookRefused("signature does not match")
        return _parse_event(body)


def _parse_signature(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(",")[:10]:
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRefused(f"malformed {SIGNATURE_HEADER} header: want t=<unix s>,v1=<hex>")
    return timestamp, signatures


def _text(value: Any, field: str, max_chars: int = _MAX_ID_CHARS) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        raise WebhookRefused(f"webhook field {field} must be a string of 1-{max_chars} characters")
    return value


def _parse_event(body: bytes) -> VerifiedEvent:
    try:
        document = json.loads(body)
    except ValueError as error:
        raise WebhookRefused(f"webhook body is not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise WebhookRefused("webhook body must be an object with a data object")
    data = document["data"]
    kind = _text(document.get("type"), "type", MAX_KIND_CHARS)
    amount = data.get("amount_minor")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise WebhookRefused("webhook field data.amount_minor must be an integer")
    return VerifiedEvent(
        event_id=_text(document.get("id"), "id"),
        kind=kind,
        status=_STATUS.get(kind, EventStatus.IGNORED),
        provider_ref=_text(data.get("provider_ref"), "data.provider_ref"),
        payment_id=_text(data.get("payment_id"), "data.payment_id"),
        amount_minor=amount,
        currency=_text(data.get("currency"), "data.currency"),
    )
