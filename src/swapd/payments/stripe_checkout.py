"""Stripe: a Checkout Session per payment, and webhooks verified with Stripe's own SDK.

The session and its PaymentIntent carry the swapd payment id in their metadata, so whichever event
arrives first (checkout.session.completed or payment_intent.succeeded) finds its payment; the
second finds it paid already and changes nothing. Amounts go to Stripe unchanged: Stripe counts
in the currency's smallest unit, which is swapd's minor unit for the currencies swapd knows
(zero-decimal ones like KRW included).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import stripe
from stripe.params.checkout import SessionCreateParams

from swapd.domain.errors import InvalidInput
from swapd.payments.provider import (
    MAX_KIND_CHARS,
    MAX_WEBHOOK_BYTES,
    SIGNATURE_TOLERANCE_S,
    Checkout,
    CheckoutRequest,
    EventStatus,
    ProviderUnavailable,
    Purpose,
    VerifiedEvent,
    WebhookRefused,
)

NAME = "stripe"
SIGNATURE_HEADER = "stripe-signature"
METADATA_PAYMENT_ID = "swapd_payment_id"
_PRODUCT_NAME = {Purpose.TOP_UP: "Battery-swap allowance top-up", Purpose.SUBSCRIPTION: "Subscription"}
# Events about a Checkout Session; their object is the session.
_SESSION_EVENTS = {
    "checkout.session.completed": None,  # decided by the session's payment_status
    "checkout.session.async_payment_succeeded": EventStatus.SUCCEEDED,
    "checkout.session.async_payment_failed": EventStatus.FAILED,
    "checkout.session.expired": EventStatus.CANCELED,
}
# Events about the session's PaymentIntent; their object is the PaymentIntent.
_INTENT_EVENTS = {
    "payment_intent.succeeded": EventStatus.SUCCEEDED,
    "payment_intent.payment_failed": EventStatus.FAILED,
    "payment_intent.canceled": EventStatus.CANCELED,
}


class StripeProvider:
    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = 2,
    ) -> None:
        if not api_key or not webhook_secret:
            raise ValueError("the Stripe provider needs an API key and a webhook signing secret")
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            api_key, http_client=http_client, max_network_retries=max_network_retries
        )

    @property
    def name(self) -> str:
        return NAME

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        metadata = {
            METADATA_PAYMENT_ID: request.payment_id,
            "swapd_rider_id": request.rider_id,
            "swapd_purpose": request.purpose.value,
        }
        return_url = request.return_url or f"{request.site_url}/"
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": request.amount_minor,
                        "product_data": {"name": _PRODUCT_NAME[request.purpose]},
                    },
                }
            ],
            "client_reference_id": request.payment_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "success_url": return_url,
            "cancel_url": return_url,
        }
        try:
            # Stripe's idempotency key: a retried or concurrent request for the same payment
            # gets the session made the first time, not a second one.
            session = self._client.v1.checkout.sessions.create(
                params, {"idempotency_key": f"swapd-checkout-{request.payment_id}"}
            )
        except stripe.InvalidRequestError as error:
            raise InvalidInput(f"Stripe refused the checkout: {error.user_message or error}") from None
        except stripe.StripeError as error:
            raise ProviderUnavailable(f"Stripe did not create the checkout: {error}") from None
        if not session.url:
            raise ProviderUnavailable(f"Stripe returned checkout session {session.id} without a URL")
        return Checkout(redirect_url=session.url, provider_ref=session.id)

    def checkout_url(self, payment_id: str, provider_ref: str | None, site_url: str) -> str | None:
        # A session's URL is not derivable from its id; it is in the answer to the create call.
        return None

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        if len(body) > MAX_WEBHOOK_BYTES:
            raise WebhookRefused(f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        try:
            event = stripe.Webhook.construct_event(
                body,
                headers.get(SIGNATURE_HEADER),
                self._webhook_secret,
                tolerance=SIGNATURE_TOLERANCE_S,
                api_key=self._api_key,
            )
        except stripe.SignatureVerificationError as error:
            raise WebhookRefused(f"Stripe signature refused: {error.user_message or error}") from None
        except (ValueError, KeyError, TypeError) as error:
            raise WebhookRefused(f"Stripe event could not be read: {error}") from None
        return _event(event.to_dict())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and 1 <= len(value) <= 255 else None


def _amount(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _event(document: dict[str, Any]) -> VerifiedEvent:
    event_id, kind = _text(document.get("id")), _text(document.get("type"))
    data = document.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if event_id is None or kind is None or len(kind) > MAX_KIND_CHARS or not isinstance(obj, dict):
        raise WebhookRefused("Stripe event without id, type or data.object")
    metadata = obj.get("metadata")
    payment_id = _text(metadata.get(METADATA_PAYMENT_ID)) if isinstance(metadata, dict) else None
    currency = _text(obj.get("currency"))
    currency = currency.upper() if currency else None
    # The provider reference is the Checkout Session's id, as stored when swapd made the session;
    # a PaymentIntent's id is not one, so intent events are matched by their metadata alone.
    provider_ref = None
    if kind in _SESSION_EVENTS:
        provider_ref = _text(obj.get("id"))
        status = _SESSION_EVENTS[kind]
        if status is None:
            # Completed with a delayed method (bank debit): not paid yet; async_payment_* follows.
            paid = obj.get("payment_status") == "paid"
            status = EventStatus.SUCCEEDED if paid else EventStatus.IGNORED
        payment_id = payment_id or _text(obj.get("client_reference_id"))
        amount = _amount(obj.get("amount_total"))
    elif kind in _INTENT_EVENTS:
        status = _INTENT_EVENTS[kind]
        # What was captured, not what was asked for: the two differ only if something is wrong.
        amount = _amount(obj.get("amount_received"))
    else:
        status, amount = EventStatus.IGNORED, None
    return VerifiedEvent(
        event_id=event_id,
        kind=kind,
        status=status,
        provider_ref=provider_ref,
        payment_id=payment_id,
        amount_minor=amount,
        currency=currency,
    )
