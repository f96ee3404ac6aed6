"""The shop's aggregates and value objects, by concept: money.py, actors.py, users.py,
catalog.py, carts.py and orders.py (import from those). This module gathers their names for
the code written before the split.

Aggregates change only through their methods, which enforce the rules and append the events
that describe the change; repositories persist the state and hand the events to the unit of
work, which audits them in the same transaction and publishes them after commit.
"""

from ordergraph.domain.actors import (  # noqa: F401
    PAYMENT_PROVIDER,
    SYSTEM,
    Actor,
    ActorKind,
    Role,
)
from ordergraph.domain.carts import MAX_CART_LINES, MAX_LINE_QUANTITY, Cart  # noqa: F401
from ordergraph.domain.catalog import (  # noqa: F401
    _SKU,
    Product,
    Stock,
    StockReason,
    check_description,
    check_price,
    check_product_name,
    check_sku,
    check_stock_level,
)
from ordergraph.domain.money import (  # noqa: F401
    _CURRENCY_EXPONENT,
    _CURRENCY_SYMBOL,
    MAX_GRAPHQL_INT,
    MAX_PRICE_CENTS,
    MAX_STOCK_LEVEL,
    Money,
)
from ordergraph.domain.orders import (  # noqa: F401
    HOLDS_RESERVATION,
    TRANSITIONS,
    Order,
    OrderLine,
    OrderStatus,
    OwedRefund,
    Payment,
    RefundStatus,
    _plain,
    can_transition,
    order_from_snapshot,
)
from ordergraph.domain.users import (  # noqa: F401
    _EMAIL,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    User,
    check_password_rules,
    normalise_email,
)
