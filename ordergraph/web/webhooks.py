"""POST /webhooks/stripe: verified, de-duplicated, applied by the one finalizer."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from ordergraph.adapters.stripe.webhooks import InvalidWebhook, parse_event
from ordergraph.domain.errors import PaymentFailed, ServiceUnavailable
from ordergraph.domain.services.provider_deadline import per_request
from ordergraph.domain.services.provider_events import settle_provider_event
from ordergraph.schema.context import Deps

log = logging.getLogger(__name__)

async def stripe_webhook(request: Request) -> JSONResponse:
    deps: Deps = request.app.state.deps
    secret = deps.payment.webhook_secret
    if not secret:
        log.error("a Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set")
        return JSONResponse({"error": "webhooks are not configured"}, status_code=503)
    if deps.installation_id is None:
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
    # BodyLimitMiddleware answers 413 for bodies over 1 MiB before they are read whole.
    body = await request.body()
    try:
        event_id, event_type, update = parse_event(
            body, request.headers.get("stripe-signature"), secret,
            installation_id=deps.installation_id)
    except InvalidWebhook as error:
        log.warning("refused a webhook: %s", error)
        deps.metrics.webhook("unverified", "refused")
        return JSONResponse({"error": str(error)}, status_code=400)
    if update is None:
        deps.metrics.webhook(event_type, "ignored")
        return JSONResponse({"received": True, "handled": False, "type": event_type})
    try:
        # The event is a signal: its intent is read again from the provider and the order
        # settled on that (README, "The webhook"); the read, and a refund it owes, wait at
        # most the deadline (the sweeper retries the refund if need be).
        gateways = per_request(deps.gateway, deps.payment_provider_deadline)
        settlement = await settle_provider_event(uow=deps.uow(), gateways=gateways,
                                                 clock=deps.clock, update=update)
    except ServiceUnavailable as outage:
        # The database is away (logged once per outage): one line, and Stripe retries.
        log.info("webhook %s (%s) not applied: database unavailable", event_id, event_type)
        deps.metrics.webhook(event_type, "error")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503,
                            headers={"Retry-After": str(outage.retry_after_seconds)})
    except PaymentFailed:
        # The provider could not be asked what the intent is now: Stripe retries.
        log.info("webhook %s (%s) not applied: the payment provider did not answer",
                 event_id, event_type)
        deps.metrics.webhook(event_type, "error")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503,
                            headers={"Retry-After": "30"})
    except Exception:
        # Never acknowledge what we could not apply: Stripe retries non-2xx deliveries.
        log.exception("webhook %s (%s) failed; asking Stripe to retry", event_id, event_type)
        deps.metrics.webhook(event_type, "error")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
    log.info("webhook %s %s: %s", event_id, event_type, settlement.outcome.value)
    deps.metrics.webhook(event_type, settlement.outcome.value)
    return JSONResponse({"received": True, "handled": True, "type": event_type,
                         "outcome": settlement.outcome.value})
