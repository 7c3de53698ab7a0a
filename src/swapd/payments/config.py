"""Which provider takes payments, from the environment.

``SWAPD_PAYMENT_PROVIDER`` is ``sandbox`` (default) or ``stripe``.
Sandbox: ``SWAPD_SANDBOX_WEBHOOK_SECRET`` signs its webhooks; when unset, each process makes a
random one (its own page's webhooks are handled in the same process, so they still verify; set it
to send signed sandbox webhooks from outside, as tests and demos do).
Stripe: ``STRIPE_API_KEY`` (a secret or restricted key) and ``STRIPE_WEBHOOK_SECRET`` (whsec_...).
``SWAPD_PUBLIC_URL``: swapd's address as riders' browsers reach it (behind a proxy); by default
the address the request came to.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping

import structlog

from swapd.payments.provider import PaymentProvider
from swapd.payments.sandbox import SandboxProvider
from swapd.payments.stripe_checkout import StripeProvider
from swapd.store.database import Database

log = structlog.get_logger(__name__)

ENV_PROVIDER = "SWAPD_PAYMENT_PROVIDER"
ENV_SANDBOX_SECRET = "SWAPD_SANDBOX_WEBHOOK_SECRET"
ENV_STRIPE_API_KEY = "STRIPE_API_KEY"
ENV_STRIPE_WEBHOOK_SECRET = "STRIPE_WEBHOOK_SECRET"
ENV_PUBLIC_URL = "SWAPD_PUBLIC_URL"
PROVIDERS = ("sandbox", "stripe")


class PaymentConfigError(ValueError):
    """The environment names a provider it does not configure: fail at startup, not at the first
    rider who tries to pay."""


def provider_from_env(db: Database, env: Mapping[str, str] | None = None) -> PaymentProvider:
    env = os.environ if env is None else env
    name = env.get(ENV_PROVIDER, "sandbox").strip().lower() or "sandbox"
    if name == "sandbox":
        secret = env.get(ENV_SANDBOX_SECRET, "").strip()
        if not secret:
            secret = secrets.token_urlsafe(32)
            log.info("sandbox_webhook_secret_generated", hint=f"set {ENV_SANDBOX_SECRET} to keep one")
        elif len(secret) < 16:
            raise PaymentConfigError(f"{ENV_SANDBOX_SECRET} needs at least 16 characters")
        # Webhook timestamps are made and checked on the database's clock, the one every
        # other time in swapd comes from (a manual clock in scenarios and tests).
        return SandboxProvider(secret, clock_s=lambda: db.clock.now().timestamp())
    if name == "stripe":
        api_key = env.get(ENV_STRIPE_API_KEY, "").strip()
        webhook_secret = env.get(ENV_STRIPE_WEBHOOK_SECRET, "").strip()
        missing = [
            n
            for n, v in ((ENV_STRIPE_API_KEY, api_key), (ENV_STRIPE_WEBHOOK_SECRET, webhook_secret))
            if not v
        ]
        if missing:
            raise PaymentConfigError(f"{ENV_PROVIDER}=stripe needs {' and '.join(missing)}")
        return StripeProvider(api_key, webhook_secret)
    raise PaymentConfigError(f"{ENV_PROVIDER} must be one of {', '.join(PROVIDERS)}, got {name!r}")


def site_url(request_base_url: str, env: Mapping[str, str] | None = None) -> str:
    """swapd's public base URL, without a trailing slash."""
    env = os.environ if env is None else env
    return (env.get(ENV_PUBLIC_URL, "").strip() or request_base_url).rstrip("/")
