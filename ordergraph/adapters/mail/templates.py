"""The customer emails: plain text and HTML from string.Template, per MailKind.

Each template gets the order's number, lines and totals from the outbox row (a snapshot taken
in the transaction that changed the order), so an email shows the order as it was then.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any

from ordergraph.domain.mail import MailKind, QueuedMail
from ordergraph.domain.model import Money


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Copy:
    subject: Template
    lead: Template  # one paragraph, above the order's lines


_ORDER_COPY = {
    MailKind.ORDER_CONFIRMED: _Copy(
        Template("Order #$number confirmed"),
        Template("Thank you for your order. We have your payment of $total and will ship "
                 "your order soon.")),
    MailKind.ORDER_SHIPPED: _Copy(
        Template("Order #$number has shipped"),
        Template("Good news: your order is on its way.")),
    MailKind.ORDER_CANCELLED: _Copy(
        Template("Order #$number cancelled"),
        Template("Your order was cancelled ($reason). You have not been charged.")),
    MailKind.ORDER_REFUNDED: _Copy(
        Template("Order #$number refunded"),
        Template("We have refunded $total to your payment method. It may take a few days "
                 "to show on your statement.")),
}

_TEXT = Template("""Hello $greeting,

$lead

Order #$number
$lines
$totals
$ships_to
View your order: $order_url

$shop
""")

_HTML = Template("""<!doctype html>
<html><body style="font-family: system-ui, sans-serif; color: #1a1a1a; max-width: 36em">
<p>Hello $greeting,</p>
<p>$lead</p>
<table style="border-collapse: collapse; width: 100%">
<caption style="text-align: left; font-weight: bold; padding-bottom: .5em">Order #$number</caption>
<thead><tr><th style="text-align: left">Item</th><th style="text-align: right">Qty</th>
<th style="text-align: right">Price</th><th style="text-align: right">Amount</th></tr></thead>
<tbody>
$rows
</tbody>
<tfoot>$total_rows</tfoot>
</table>
$address_block<p><a href="$order_url">View your order</a></p>
<p style="color: #666">$shop</p>
</body></html>
""")

_RESET_TEXT = Template("""Hello $greeting,

Someone (we hope you) asked to reset the password of your $shop account. Open this link
to choose a new one; it works once, until $expires:

$link

If you did not ask for this, ignore this email: your password stays as it is.

$shop
""")

_RESET_HTML = Template("""<!doctype html>
<html><body style="font-family: system-ui, sans-serif; color: #1a1a1a; max-width: 36em">
<p>Hello $greeting,</p>
<p>Someone (we hope you) asked to reset the password of your $shop account. The link works
once, until $expires.</p>
<p><a href="$link">Choose a new password</a></p>
<p>If you did not ask for this, ignore this email: your password stays as it is.</p>
<p style="color: #666">$shop</p>
</body></html>
""")

_REASONS = {"reservation expired": "its reservation expired before it was paid"}


def render(mail: QueuedMail, *, public_url: str, shop: str = "ordergraph") -> Rendered:
    """The subject and both bodies of a queued email."""
    data = mail.data
    greeting = data.get("name") or mail.to
    if mail.kind is MailKind.PASSWORD_RESET:
        link = f"{public_url}/#/reset-password?token={data['token']}"
        expires = _when(data["expires_at"])
        text = _RESET_TEXT.substitute(greeting=greeting, shop=shop, expires=expires, link=link)
        markup = _RESET_HTML.substitute(greeting=_h(greeting), shop=_h(shop),
                                        expires=_h(expires), link=_h(link))
        return Rendered(subject="Reset your password", text=text, html=markup)
    return _render_order(mail.kind, data, greeting=greeting, public_url=public_url, shop=shop)


def _render_order(kind: MailKind, data: dict[str, Any], *, greeting: str, public_url: str,
                  shop: str) -> Rendered:
    order = data["order"]
    currency = order["currency"]
    names = data.get("product_names", {})
    total = Money(int(order["total"]), currency).formatted()
    reason = data.get("reason") or "cancelled"
    values = {"number": order["id"], "total": total,
              "reason": _REASONS.get(reason, reason)}
    copy = _ORDER_COPY[kind]
    lines, rows = [], []
    for line in order["lines"]:
        name = names.get(str(line["product_id"]), f"Product {line['product_id']}")
        unit = Money(int(line["unit_price"]), currency)
        amount = unit * int(line["quantity"])
        lines.append(f"  {line['quantity']} x {name} at {unit.formatted()} = "
                     f"{amount.formatted()}")
        rows.append(f'<tr><td>{_h(name)}</td><td style="text-align: right">'
                    f'{line["quantity"]}</td><td style="text-align: right">'
                    f'{_h(unit.formatted())}</td><td style="text-align: right">'
                    f'{_h(amount.formatted())}</td></tr>')
    order_url = f"{public_url}/#/orders/{order['id']}"
    lead = copy.lead.substitute(values)
    totals = _totals(order, currency)
    address = _address_lines(order.get("shipping_address"))
    text = _TEXT.substitute(
        greeting=greeting, lead=lead, number=order["id"], lines="\n".join(lines),
        totals="\n".join(f"{label}: {amount}" for label, amount in totals),
        ships_to="".join(["Ships to:\n", *(f"  {part}\n" for part in address)])
        if address else "", order_url=order_url, shop=shop)
    total_rows = "\n".join(
        f'<tr><th colspan="3" style="text-align: right">{label}</th>'
        f'<td style="text-align: right{"; font-weight: bold" if label == "Total" else ""}">'
        f"{_h(amount)}</td></tr>" for label, amount in totals)
    address_block = ("<p><strong>Ships to</strong><br>" + "<br>".join(map(_h, address))
                     + "</p>\n") if address else ""
    markup = _HTML.substitute(greeting=_h(greeting), lead=_h(lead), number=order["id"],
                              rows="\n".join(rows), total_rows=total_rows,
                              address_block=address_block, order_url=_h(order_url),
                              shop=_h(shop))
    return Rendered(subject=copy.subject.substitute(values), text=text, html=markup)


def _totals(order: dict[str, Any], currency: str) -> list[tuple[str, str]]:
    """Subtotal and shipping (when the order ships), then the total the customer paid."""
    total = Money(int(order["total"]), currency).formatted()
    if order.get("shipping_address") is None:  # nothing ships: the total is the lines
        return [("Total", total)]
    # Snapshots from before shipping existed carry neither: subtotal = total, shipping 0.
    shipping = int(order.get("shipping") or 0)
    subtotal = int(order.get("subtotal") or int(order["total"]) - shipping)
    return [("Subtotal", Money(subtotal, currency).formatted()),
            ("Shipping", Money(shipping, currency).formatted() if shipping else "Free"),
            ("Total", total)]


def _address_lines(address: dict[str, str | None] | None) -> list[str]:
    """The address as a label prints it; nothing for an order that does not ship."""
    if not address:
        return []
    city = " ".join(part for part in (address.get("postal_code"), address.get("city")) if part)
    lines = [address.get("name"), address.get("line1"), address.get("line2"), city,
             address.get("region"), address.get("country")]
    return [line for line in lines if line]


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)
