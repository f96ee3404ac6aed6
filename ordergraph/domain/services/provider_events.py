"""A provider's event (a webhook) is a signal to look, not the news itself.

Stripe does not deliver its events in order, and a signed payload says what the intent was
when the event was made: a `payment_intent.payment_failed` can arrive after the intent
succeeded, or a payload can name a status the intent never reached. So the intent is read
again from its provider, outside any transaction, and the order is settled on what the
provider says now (README, "The webhook"; docs/ARCHITECTURE.md, "A webhook, as it runs").
The event's id still de-duplicates: it is claimed in the transaction that applies the news.
"""

from __future__ import annotations

import logging

from ordergraph.domain.errors import IntentNotFound
from ordergraph.domain.model import PAYMENT_PROVIDER
from ordergraph.domain.payments import (
    PaymentSignal,
    PaymentUpdate,
    refund_signal,
    signal_for_intent,
)
from ordergraph.domain.ports import Clock, Gateways, UnitOfWork
from ordergraph.domain.services.payments import settle_payment
from ordergraph.domain.services.settlement import Outcome, Settlement

log = logging.getLogger(__name__)


async def settle_provider_event(*, uow: UnitOfWork, gateways: Gateways, clock: Clock,
                                update: PaymentUpdate) -> Settlement:
    """Re-read the event's intent from its provider, then settle the order on it.

    A refund event (`charge.refunded`) is read as the intent's refunds now: REFUNDED only
    when they cover the capture. Any other event is the intent's current state, whatever
    the event's type said. Raises PaymentFailed when the provider cannot be asked (the
    caller answers so that the provider delivers the event again).
    """
    gateway = gateways.for_provider(update.intent.provider)
    try:
        current = await gateway.retrieve_intent(update.intent.id)
    except IntentNotFound:
        log.warning("%s for intent %s, which the provider does not know: ignored",
                    update.event_type, update.intent.id)
        return Settlement(Outcome.UNKNOWN_INTENT)
    signal = refund_signal(current) if update.signal in (
        PaymentSignal.REFUNDED, PaymentSignal.PARTIALLY_REFUNDED) else signal_for_intent(current)
    if signal is not update.signal:
        log.info("%s %s for intent %s: the provider says %s now", update.event_type,
                 update.event_id, current.id, signal.value)
    return await settle_payment(
        uow=uow, gateways=gateways, clock=clock, actor=PAYMENT_PROVIDER,
        update=PaymentUpdate(intent=current, signal=signal, event_id=update.event_id,
                             event_type=update.event_type))
