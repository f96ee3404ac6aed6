"""Local mail mode's SMTP sink: an aiosmtpd server on a free loopback port, in the app's own
event loop, that keeps what it receives (the newest 500 messages) for the admin Mail page.

Like the Stripe emulator, it lets `make run` show the whole story offline: the outbox is
delivered over real SMTP, to this sink instead of a mail server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from ordergraph.domain.ports_api import ReceivedMail

log = logging.getLogger(__name__)

KEEP = 500


class MailSink:
    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: asyncio.Server | None = None
        self._received: deque[ReceivedMail] = deque(maxlen=KEEP)
        self._ids = itertools.count(1)
        self.port = 0

    @property
    def url(self) -> str:
        return f"smtp://{self._host}:{self.port}"

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP  # the `local` extra, like localstripe

        # aiosmtpd logs every SMTP command at INFO; our own line per pass says enough.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="ordergraph-local-mail"), self._host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("local mail mode: SMTP sink at %s (admins read it on the Mail page)", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        text = message.get_body(preferencelist=("plain",))
        markup = message.get_body(preferencelist=("html",))
        self._received.append(ReceivedMail(
            id=next(self._ids), received_at=datetime.now(UTC),
            sender=str(envelope.mail_from), recipients=list(envelope.rcpt_tos),
            subject=str(message.get("Subject", "")),
            text=_lines(text.get_content()) if text is not None else "",
            html=_lines(markup.get_content()) if markup is not None else None))
        return "250 Message accepted for delivery"

    def messages(self, *, limit: int) -> list[ReceivedMail]:
        """Newest first."""
        return list(itertools.islice(reversed(self._received), limit))


def _lines(content: str) -> str:
    """SMTP carries CRLF line ends; the mailbox shows plain ones."""
    return content.replace("\r\n", "\n")
