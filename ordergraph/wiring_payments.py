"""The payment half of the composition root (wiring.py): the gateways, one line per
provider, the web client's payment settings, and the installation id that namespaces our
intents and idempotency keys at the provider (read from the database, perhaps only once it
answers, then handed to every gateway).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from ordergraph.adapters.gateways import GatewayRegistry
from ordergraph.adapters.stripe import PROVIDER as STRIPE
from ordergraph.adapters.stripe import emulator as localstripe
from ordergraph.adapters.stripe.gateway import REQUEST_TIMEOUT_SECONDS, StripeGateway
from ordergraph.db.installation import installation_id
from ordergraph.resolvers.deps import Deps, PaymentSettings
from ordergraph.settings import Settings

if TYPE_CHECKING:
    from ordergraph.wiring import Adapters, Overrides

log = logging.getLogger(__name__)

STRIPE_JS_URL = "https://js.stripe.com/v3/"


def payment_settings(settings: Settings) -> PaymentSettings:
    if settings.local_payments:
        api_base = settings.stripe_api_base or ""
        return PaymentSettings(provider=STRIPE, mode="local",
                               publishable_key=localstripe.PUBLISHABLE_KEY,
                               stripe_js_url=settings.stripe_js_url or
                               f"{api_base}/js.stripe.com/v3/",
                               webhook_secret=settings.stripe_webhook_secret)
    return PaymentSettings(provider=STRIPE, mode="stripe",
                           publishable_key=settings.stripe_publishable_key,
                           stripe_js_url=settings.stripe_js_url or STRIPE_JS_URL,
                           webhook_secret=settings.stripe_webhook_secret)


def build_gateways(settings: Settings, installation: str | None,
                   overrides: Overrides | None = None) -> GatewayRegistry:
    """One line per payment provider; the first is where new checkouts pay (a test's
    gateway, or registry, replaces them all)."""
    if overrides is not None and isinstance(overrides.gateway, GatewayRegistry):
        return overrides.gateway
    if overrides is not None and overrides.gateway is not None:
        return GatewayRegistry(overrides.gateway)
    return GatewayRegistry(
        build_stripe_gateway(settings, installation),
    )


def build_stripe_gateway(settings: Settings, installation: str | None) -> StripeGateway:
    if settings.local_payments and not settings.stripe_api_base:
        log.warning("no STRIPE_SECRET_KEY and no STRIPE_API_BASE: payments cannot work; "
                    "`ordergraph serve` starts the local Stripe emulator for you")
    key = settings.stripe_secret_key or localstripe.SECRET_KEY
    return StripeGateway(key, installation_id=installation, api_base=settings.stripe_api_base,
                         timeout=min(REQUEST_TIMEOUT_SECONDS,
                                     settings.payment_provider_deadline.total_seconds()))


async def load_installation_id(settings: Settings, engine: AsyncEngine) -> str:
    return settings.installation_id or await installation_id(engine)


async def installation_or_none(settings: Settings, engine: AsyncEngine) -> str | None:
    """The id, or None while the database cannot be reached (the app still starts)."""
    try:
        return await load_installation_id(settings, engine)
    except Exception as error:  # any database failure: learn it later
        log.warning("installation id not readable yet (%s); payments wait for it", error)
        return None


def adopt_installation(adapters: Adapters, deps: Deps | None, found: str | None) -> None:
    """Hand the installation id to everything that namespaces by it."""
    adapters.installation_id = found
    if deps is not None:
        deps.installation_id = found
    gateways = adapters.gateway.gateways.values() \
        if isinstance(adapters.gateway, GatewayRegistry) else ()
    for gateway in gateways:
        if isinstance(gateway, StripeGateway):  # a test's own works for it too
            gateway.installation_id = found


async def learn_installation_id(settings: Settings, adapters: Adapters,
                                deps: Deps | None) -> None:
    """Started without the database: read the id once it answers, then hand it out."""
    while adapters.installation_id is None:
        await asyncio.sleep(1.0)
        found = await installation_or_none(settings, adapters.engine)
        if found is not None:
            adopt_installation(adapters, deps, found)
