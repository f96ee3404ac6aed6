"""The root Mutation type: each field calls one resolver and returns its result union."""

from __future__ import annotations

import strawberry
from strawberry import UNSET

from ordergraph.resolvers import accounts, catalog, mail, orders
from ordergraph.resolvers import shipping as shipping_fields
from ordergraph.schema.enums import Role
from ordergraph.schema.inputs import (
    AddressInput,
    CheckoutInput,
    CreateProductInput,
    RegisterInput,
    UpdateProductInput,
)
from ordergraph.schema.mail import RequestPasswordResetPayload
from ordergraph.schema.permissions import HasToken, IsAdmin, IsAuthenticated
from ordergraph.schema.results import (
    AuthPayload,
    AuthResult,
    CheckoutPayload,
    CheckoutResult,
    OrderPayload,
    OrderResult,
    PayOrderPayload,
    PayOrderResult,
    ProductPayload,
    ProductResult,
    StockPayload,
    StockResult,
    UserPayload,
    UserResult,
    as_result,
    errors_of,
)
from ordergraph.schema.types import Info, Order, Product, Stock, User, opt

# The failures each mutation returns as data, from its result union (schema/results.py).
AUTH_ERRORS = errors_of(AuthResult)
PRODUCT_ERRORS = errors_of(ProductResult)
STOCK_ERRORS = errors_of(StockResult)
CHECKOUT_ERRORS = errors_of(CheckoutResult)
ORDER_ERRORS = errors_of(OrderResult)
PAY_ORDER_ERRORS = errors_of(PayOrderResult)
USER_ERRORS = errors_of(UserResult)


def _session(session: object) -> AuthPayload:
    return AuthPayload(token=session.token, user=User.of(session.user),  # type: ignore[attr-defined]
                       expires_at=session.expires_at)  # type: ignore[attr-defined]


def _address(address: AddressInput | None) -> dict[str, str | None] | None:
    address = opt(address)
    return address.fields() if address is not None else None


def _order(order: object) -> OrderPayload:
    return OrderPayload(order=Order.of(order))  # type: ignore[arg-type]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a CUSTOMER account and log in.")
    async def register(self, info: Info, input: RegisterInput) -> AuthResult:
        return await as_result(
            accounts.register(info.context, email=input.email, password=input.password,
                              name=opt(input.name)),
            _session, *AUTH_ERRORS)

    @strawberry.mutation(description="Log in; INVALID_CREDENTIALS whichever of the two is wrong.")
    async def login(self, info: Info, email: str, password: str) -> AuthResult:
        return await as_result(accounts.login(info.context, email=email, password=password),
                               _session, *AUTH_ERRORS)

    @strawberry.mutation(description="Email a single-use link to reset the password (valid "
                                     "30 minutes). The same answer for every email.")
    async def request_password_reset(self, info: Info,
                                     email: str) -> RequestPasswordResetPayload:
        return RequestPasswordResetPayload(
            ok=await mail.request_password_reset(info.context, email=email))

    @strawberry.mutation(description="Set a new password with the emailed token and log in; "
                                     "sessions issued before stop working. INVALID_TOKEN for "
                                     "an unknown, used or expired token.")
    async def reset_password(self, info: Info, token: str, new_password: str) -> AuthResult:
        return await as_result(
            mail.reset_password(info.context, token=token, new_password=new_password),
            _session, *AUTH_ERRORS)

    @strawberry.mutation(description="Add a product with its initial stock. Admins.",
                         permission_classes=[IsAdmin])
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductResult:
        return await as_result(
            catalog.create_product(info.context, sku=input.sku, name=input.name,
                                   description=opt(input.description),
                                   price_cents=input.price_cents,
                                   initial_stock=opt(input.initial_stock),
                                   active=opt(input.active)),
            lambda product: ProductPayload(product=Product.of(product)),
            *PRODUCT_ERRORS)

    @strawberry.mutation(description="Change a product; `active: false` hides it. Admins.",
                         permission_classes=[IsAdmin])
    async def update_product(self, info: Info, id: strawberry.ID,
                             input: UpdateProductInput) -> ProductResult:
        return await as_result(
            catalog.update_product(info.context, id=id, name=opt(input.name),
                                   description=opt(input.description),
                                   price_cents=opt(input.price_cents), active=opt(input.active)),
            lambda product: ProductPayload(product=Product.of(product)),
            *PRODUCT_ERRORS)

    @strawberry.mutation(description="Set the units on sale to an absolute number >= 0. Admins.",
                         permission_classes=[IsAdmin])
    async def set_stock(self, info: Info, product_id: strawberry.ID,
                        available: int) -> StockResult:
        return await as_result(
            catalog.set_stock(info.context, product_id=product_id, available=available),
            lambda stock: StockPayload(stock=Stock.of(stock)), *STOCK_ERRORS)

    @strawberry.mutation(description="Add or remove units on sale, atomically; never below "
                                     "zero. Admins.",
                         permission_classes=[IsAdmin])
    async def adjust_stock(self, info: Info, product_id: strawberry.ID, delta: int,
                           reason: str | None = UNSET) -> StockResult:
        return await as_result(
            catalog.adjust_stock(info.context, product_id=product_id, delta=delta,
                                 reason=opt(reason)),
            lambda stock: StockPayload(stock=Stock.of(stock)), *STOCK_ERRORS)

    @strawberry.mutation(description="Order the cart: stock is reserved atomically and a "
                                     "payment opened. Logged in.",
                         permission_classes=[HasToken])
    async def checkout(self, info: Info, input: CheckoutInput) -> CheckoutResult:
        return await as_result(
            orders.checkout(info.context,
                            items=[(line.product_id, line.quantity) for line in input.items],
                            idempotency_key=opt(input.idempotency_key),
                            shipping_address=_address(input.shipping_address)),
            lambda result: CheckoutPayload(order=Order.of(result.order),
                                           client_secret=result.client_secret),
            *CHECKOUT_ERRORS)

    @strawberry.mutation(description="Cancel an unpaid order and release its stock. Its owner "
                                     "(while CREATED or PAYMENT_PENDING) or an admin.",
                         permission_classes=[IsAuthenticated])
    async def cancel_order(self, info: Info, id: strawberry.ID) -> OrderResult:
        return await as_result(orders.cancel_order(info.context, id=id), _order, *ORDER_ERRORS)

    @strawberry.mutation(description="Pay a PAYMENT_PENDING order with a payment method (e.g. "
                                     "a card from Stripe.js); the server confirms it. Owner.",
                         permission_classes=[IsAuthenticated])
    async def pay_order(self, info: Info, id: strawberry.ID,
                        payment_method_id: str) -> PayOrderResult:
        return await as_result(
            orders.pay_order(info.context, id=id, payment_method_id=payment_method_id),
            lambda paid: PayOrderPayload(order=Order.of(paid.order),
                                         requires_action=paid.requires_action,
                                         client_secret=paid.client_secret),
            *PAY_ORDER_ERRORS)

    @strawberry.mutation(description="Read the payment's status from the provider now and "
                                     "apply it (a missed webhook). Owner or admin.",
                         permission_classes=[IsAuthenticated])
    async def sync_payment(self, info: Info, id: strawberry.ID) -> OrderResult:
        return await as_result(orders.sync_payment(info.context, id=id), _order, *ORDER_ERRORS)

    @strawberry.mutation(description="PAID -> FULFILLED. Admins.", permission_classes=[IsAdmin])
    async def fulfill_order(self, info: Info, id: strawberry.ID) -> OrderResult:
        return await as_result(orders.fulfil_order(info.context, id=id), _order, *ORDER_ERRORS)

    @strawberry.mutation(description="PAID -> REFUNDED through the provider; never twice. "
                                     "Admins.", permission_classes=[IsAdmin])
    async def refund_order(self, info: Info, id: strawberry.ID) -> OrderResult:
        return await as_result(orders.refund_order(info.context, id=id), _order, *ORDER_ERRORS)

    @strawberry.mutation(description="Keep your default shipping address (the checkout page "
                                     "fills it in); null forgets it. Orders keep their own. "
                                     "Logged in.",
                         permission_classes=[IsAuthenticated])
    async def update_default_address(self, info: Info,
                                     address: AddressInput | None = UNSET) -> UserResult:
        # Omitted is null (docs/api.graphql: "null forgets it"); _address maps UNSET to None.
        return await as_result(
            shipping_fields.update_default_address(info.context, fields=_address(address)),
            lambda user: UserPayload(user=User.of(user)), *USER_ERRORS)

    @strawberry.mutation(description="Make a user a CUSTOMER or an ADMIN. Admins.",
                         permission_classes=[IsAdmin])
    async def set_user_role(self, info: Info, user_id: strawberry.ID, role: Role) -> UserResult:
        return await as_result(
            accounts.set_user_role(info.context, user_id=user_id, role=role),
            lambda user: UserPayload(user=User.of(user)), *USER_ERRORS)
