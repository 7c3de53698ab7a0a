"""What every payment provider offers swapd: a checkout to send the rider to, and webhooks that
swapd can verify came from the provider.

Providers do no database work. They turn a payment into a provider checkout, and a signed webhook
body into a ``VerifiedEvent``; services/checkout decides what the event does to the payment.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from swapd.domain.errors import DomainError

# A provider event bigger than this is not one we asked for; refused before any parsing.
MAX_WEBHOOK_BYTES = 1_000_000
# Signed webhooks older (or newer) than this are refused, so a captured one cannot be replayed
# later; the provider's clock and ours may differ by up to this much.
SIGNATURE_TOLERANCE_S = 300
MAX_KIND_CHARS = 64  # webhook_events.kind


class Purpose(enum.StrEnum):
    TOP_UP = "top_up"
    SUBSCRIPTION = "subscription"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class EventStatus(enum.StrEnum):
    """What a provider event says about its payment."""

    SUCCEEDED = "succeeded"  # the money arrived: credit it
    FAILED = "failed"  # the rider's payment was refused
    CANCELED = "canceled"  # the checkout expired or was abandoned
    IGNORED = "ignored"  # an event that changes nothing here (still waiting, or another kind)


class WebhookRefused(DomainError):
    """A webhook that is not provably from the provider: missing, wrong or stale signature, or a
    body that cannot be read. Answered with 400 (the error's status falls back to 400)."""

    code = "webhook_refused"


class PaymentsNotConfigured(DomainError):
    """No provider takes payments here: the operator has configured none."""

    code = "payments_not_configured"


class ProviderUnavailable(DomainError):
    """The provider could not be reached or failed; retrying the same request later is safe."""

    code = "payment_provider_unavailable"


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    payment_id: str
    rider_id: str
    purpose: Purpose
    amount_minor: int
    currency: str  # ISO 4217, upper case
    return_url: str | None  # where the provider sends the rider back to; None: the provider's own
    site_url: str  # swapd's public base URL, without a trailing slash


@dataclass(frozen=True, slots=True)
class Checkout:
    redirect_url: str  # the hosted page the rider opens to pay
    provider_ref: str  # the provider's id for this checkout, unique per provider


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """A webhook whose signature checked out. Amount and currency are what the provider says was
    paid; they are compared with the stored payment before anything is credited."""

    event_id: str
    kind: str
    status: EventStatus
    # The checkout's reference (Checkout.provider_ref), when the event is about the checkout; when
    # both this and payment_id are given they must name the same payment, or nothing is credited.
    provider_ref: str | None
    payment_id: str | None  # from the metadata swapd attached to the checkout
    amount_minor: int | None
    currency: str | None


class PaymentProvider(Protocol):
    @property
    def name(self) -> str:
        """As stored in payments.provider and in the webhook URL."""
        ...

    def create_checkout(self, request: CheckoutRequest) -> Checkout:
        """Idempotent per payment id: asking twice for one payment gives the same checkout."""
        ...

    def checkout_url(self, payment_id: str, provider_ref: str | None, site_url: str) -> str | None:
        """The hosted page of a pending payment, when it can be told without calling out."""
        ...

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        """Raises WebhookRefused unless the body is signed by the provider, recently."""
        ...
