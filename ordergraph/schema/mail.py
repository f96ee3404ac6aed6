"""Password reset payloads and the local mailbox's messages."""

from __future__ import annotations

from datetime import datetime

import strawberry

from ordergraph.domain.ports_api import ReceivedMail


@strawberry.type(description="The same for every email, known or not (no account oracle).")
class RequestPasswordResetPayload:
    ok: bool


@strawberry.type(description="A message the local SMTP sink received (local mail mode).")
class LocalMail:
    id: strawberry.ID
    received_at: datetime
    sender: str = strawberry.field(name="from")
    to: list[str]
    subject: str
    text: str
    html: str | None

    @classmethod
    def of(cls, mail: ReceivedMail) -> LocalMail:
        return cls(id=strawberry.ID(str(mail.id)), received_at=mail.received_at,
                   sender=mail.sender, to=mail.recipients, subject=mail.subject,
                   text=mail.text, html=mail.html)
