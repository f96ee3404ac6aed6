"""Demo data: two users and five products. Idempotent: what exists is left alone."""

from __future__ import annotations

from collections.abc import Callable

from ordergraph.domain.auth_ports import PasswordHasher
from ordergraph.domain.model import SYSTEM, Role
from ordergraph.domain.ports import Clock, UnitOfWork
from ordergraph.domain.services.auth import create_user
from ordergraph.domain.services.catalog import create_product
from ordergraph.domain.services.transaction import retrying

USERS = [
    ("customer@example.com", "customer123", "Casey Customer", Role.CUSTOMER),
    ("admin@example.com", "admin123", "Ada Admin", Role.ADMIN),
]

PRODUCTS = [
    ("mechanical-keyboard", "Mechanical Keyboard", 14999, 50,
     "Tenkeyless, hot-swappable switches, PBT keycaps."),
    ("wireless-mouse", "Wireless Mouse", 7999, 100,
     "Light, quiet, 70 days on one charge."),
    ("usb-c-hub", "USB-C Hub", 5999, 75,
     "Seven ports: HDMI 4K60, 100 W pass-through, SD and microSD."),
    ("4k-monitor", "4K Monitor", 39999, 25,
     "27 inches, IPS, 99% sRGB, USB-C with 90 W charging."),
    ("webcam-hd", "HD Webcam", 8999, 60,
     "1080p60 with autofocus and a privacy shutter."),
]


async def seed_shop(*, uow: Callable[[], UnitOfWork], passwords: PasswordHasher, clock: Clock,
                    currency: str) -> list[str]:
    """Create the demo users and products that do not exist yet; return what was created."""
    created = []
    for email, password, name, role in USERS:
        if not await _exists(uow(), lambda u, email=email: u.users.get_by_email(email)):
            await create_user(uow=uow(), passwords=passwords, clock=clock, email=email,
                              password=password, name=name, role=role, actor=SYSTEM)
            created.append(email)
    for sku, name, price_cents, stock, description in PRODUCTS:
        if not await _exists(uow(), lambda u, sku=sku: u.products.get_by_sku(sku)):
            await create_product(uow=uow(), clock=clock, actor=SYSTEM, sku=sku, name=name,
                                 description=description, price_cents=price_cents,
                                 initial_stock=stock, active=True, currency=currency)
            created.append(sku)
    return created


async def _exists(uow: UnitOfWork, find: Callable[[UnitOfWork], object]) -> bool:
    async for attempt in retrying(uow):
        async with attempt:
            found = await find(uow) is not None  # type: ignore[misc]
    return found
