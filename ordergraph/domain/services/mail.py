"""Delivering the outbox: claim due email, send it outside any transaction, settle it.

Runs in the app (web/background.py) and in `ordergraph sweep`. Several senders may run at
once: a claim is one short transaction that takes due rows FOR UPDATE SKIP LOCKED and
leases them (their next attempt moves FIRST_RETRY ahead), so no other sender takes a row
while it is being sent; each send is cut off after SEND_DEADLINE, and none is started once
less than that is left of the lease (the rest wait for their lease to run out); a row is
marked SENT only by the sender that holds its current attempt. A send that fails is retried
with backoff (1 min, 2 min, 4 min ... 1 h) and given up after MAX_ATTEMPTS. A sender that
dies after the server accepted a message but before marking it sent sends it again once its
lease runs out: at least once, never twice while both senders live.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from ordergraph.domain.ports import Clock, Mailer, UnitOfWork
from ordergraph.domain.services.transaction import retrying

log = logging.getLogger(__name__)

BATCH = 20
# The lease, and the first retry: longer than one send may take.
FIRST_RETRY = timedelta(minutes=1)
SEND_DEADLINE = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
MAX_ATTEMPTS = 12


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    return min(MAX_RETRY, FIRST_RETRY * 2 ** max(attempts - 1, 0))


async def deliver_mail(*, uow: UnitOfWork, mailer: Mailer, clock: Clock,
                       batch: int = BATCH) -> DeliveryReport:
    """One pass: send every email that is due now."""
    report = DeliveryReport()
    now = clock.now()
    async for attempt in retrying(uow):
        async with attempt:
            claimed = await uow.outbox.claim(
                now=now, limit=batch, retry_at=lambda attempts: now + retry_delay(attempts))
            await uow.commit()
    loop = asyncio.get_running_loop()
    # A send may start only while a whole SEND_DEADLINE is left of the lease.
    start_by = loop.time() + (FIRST_RETRY - SEND_DEADLINE).total_seconds()
    for mail in claimed:
        if loop.time() > start_by:
            break  # the rest are tried again when their lease runs out
        try:
            async with asyncio.timeout(SEND_DEADLINE.total_seconds()):
                await mailer.send(mail)  # no transaction is open here
        except Exception as error:
            give_up = mail.attempts >= MAX_ATTEMPTS
            reason = f"{type(error).__name__}: {error}"
            log.warning("email %d (%s to %s) not sent, attempt %d%s: %s", mail.id,
                        mail.kind.value, mail.to, mail.attempts,
                        "; giving up" if give_up else "", reason)
            report.failed += 1
            report.errors.append(f"email {mail.id}: {reason}")
            async for attempt in retrying(uow):
                async with attempt:
                    await uow.outbox.failed(mail.id, attempts=mail.attempts, error=reason,
                                            at=clock.now(), give_up=give_up)
                    await uow.commit()
            continue
        report.sent += 1
        async for attempt in retrying(uow):
            async with attempt:
                await uow.outbox.sent(mail.id, attempts=mail.attempts, at=clock.now())
                await uow.commit()
    return report
