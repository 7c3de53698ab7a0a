"""Which provider takes payments, from the environment.

``SWAPD_PAYMENT_PROVIDER`` is ``stripe`` or ``sandbox``. Unset (or empty), no provider takes
payments: top-ups and subscriptions are refused (``payments_not_configured``) and nothing is ever
credited without a real provider's confirmation. The sandbox lets any rider credit their own
top-ups, so it is only ever chosen by name (tests, demos).
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

from swapd.payments import sandbox
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
NOT_CONFIGURED = (
    f"no payment provider is configured; set {ENV_PROVIDER}=stripe (with {ENV_STRIPE_API_KEY} and "
    f"{ENV_STRIPE_WEBHOOK_SECRET}) or sandbox for testing"
)


class PaymentConfigError(ValueError):
    """The environment names a provider it does not configure: fail at startup, not at the first
    rider who tries to pay."""


def provider_name(env: Mapping[str, str] | None = None) -> str | None:
    """The provider the environment names, or None when it names none."""
    env = os.environ if env is None else env
    name = env.get(ENV_PROVIDER, "").strip().lower()
    if not name:
        return None
    if name not in PROVIDERS:
        raise PaymentConfigError(f"{ENV_PROVIDER} must be one of {', '.join(PROVIDERS)}, got {name!r}")
    return name


def provider_from_env(db: Database, env: Mapping[str, str] | None = None) -> PaymentProvider | None:
    """The configured provider, or None: then swapd takes no payments."""
    env = os.environ if env is None else env
    name = provider_name(env)
    if name is None:
        return None
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
    raise AssertionError(f"provider_name() let {name!r} through")


def announce(name: str | None) -> None:
    """The server's start-up line saying which provider takes payments, and a warning when it is
    the sandbox."""
    if name is None:
        log.info("payments", provider="none", detail=NOT_CONFIGURED)
        return
    log.info("payments", provider=name)
    if name == sandbox.NAME:
        log.warning(
            "payments_sandbox",
            detail="sandbox payments: any rider can credit their own top-ups; never use in production",
        )


def site_url(request_base_url: str, env: Mapping[str, str] | None = None) -> str:
    """swapd's public base URL, without a trailing slash."""
    env = os.environ if env is None else env
    return (env.get(ENV_PUBLIC_URL, "").strip() or request_base_url).rstrip("/")
