"""Sending email with aiosmtplib to SMTP_URL (`smtp://user:pass@host:587`, `smtps://...`)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlparse

import aiosmtplib

from ordergraph.adapters.mail.templates import render
from ordergraph.domain.mail import QueuedMail

# Each SMTP step (connect, TLS, each command) gives up after this; the outbox's sender also
# cuts a whole send at its SEND_DEADLINE, within the row's lease (domain/services/mail.py).
SMTP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool  # smtps://: TLS from the start; smtp://: STARTTLS when the server offers it
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:pass@]host[:port]` (port 587 by default) or `smtps://...` (465);
    ValueError with a one-line reason otherwise."""
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
        raise ValueError(f"{url!r} is not smtp://user:pass@host:587 or smtps://user:pass@host")
    try:
        port = parsed.port
    except ValueError:
        raise ValueError(f"{url!r} has no valid port") from None
    use_tls = parsed.scheme == "smtps"
    return SmtpTarget(hostname=parsed.hostname, port=port or (465 if use_tls else 587),
                      use_tls=use_tls,
                      username=unquote(parsed.username) if parsed.username else None,
                      password=unquote(parsed.password) if parsed.password else None)


class SmtpMailer:
    """Renders a queued email and hands it to the SMTP server; raises on any failure."""

    def __init__(self, url: str, *, sender: str, public_url: str) -> None:
        self._target = parse_smtp_url(url)
        self._sender = sender
        self._public_url = public_url.rstrip("/")

    def message(self, mail: QueuedMail) -> EmailMessage:
        rendered = render(mail, public_url=self._public_url)
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(mail.created_at)
        # Stable per outbox row: a message sent again after a crash is recognisably the same.
        domain = self._sender.rpartition("@")[2].strip("> ") or "ordergraph.local"
        message["Message-ID"] = make_msgid(idstring=f"outbox-{mail.id}", domain=domain)
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def send(self, mail: QueuedMail) -> None:
        target = self._target
        await aiosmtplib.send(
            self.message(mail), hostname=target.hostname, port=target.port,
            username=target.username, password=target.password, use_tls=target.use_tls,
            timeout=SMTP_TIMEOUT_SECONDS)
