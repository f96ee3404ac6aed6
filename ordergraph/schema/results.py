"""Mutation payloads and result unions, and the helper that turns a call into a result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar, get_args

import strawberry

from ordergraph.domain.errors import DomainError
from ordergraph.schema.errors import (
    EmailTakenError,
    IdempotencyConflictError,
    InsufficientStockError,
    InvalidCredentialsError,
    InvalidTokenError,
    InvalidTransitionError,
    NotFoundError,
    PaymentError,
    RateLimitedError,
    TooManyOpenOrdersError,
    UserError,
    ValidationError,
    to_user_error,
)
from ordergraph.schema.types import Order, Product, Stock, User

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class AuthPayload:
    token: str = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    user: User
    expires_at: datetime


@strawberry.type
class ProductPayload:
    product: Product


@strawberry.type
class StockPayload:
    stock: Stock


@strawberry.type
class CheckoutPayload:
    order: Order
    client_secret: str | None = strawberry.field(
        description="For Stripe.js: confirm the payment in the browser.")


@strawberry.type
class OrderPayload:
    order: Order


@strawberry.type
class PayOrderPayload:
    order: Order
    requires_action: bool = strawberry.field(
        description="True when the customer must complete a step (3-D Secure) with Stripe.js.")
    client_secret: str | None


@strawberry.type
class UserPayload:
    user: User


AuthResult = Annotated[
    AuthPayload | ValidationError | EmailTakenError | InvalidCredentialsError | RateLimitedError
    | InvalidTokenError,
    strawberry.union("AuthResult")]
ProductResult = Annotated[ProductPayload | ValidationError | NotFoundError,
                          strawberry.union("ProductResult")]
StockResult = Annotated[StockPayload | ValidationError | NotFoundError,
                        strawberry.union("StockResult")]
CheckoutResult = Annotated[
    CheckoutPayload | ValidationError | NotFoundError | InsufficientStockError
    | IdempotencyConflictError | PaymentError | TooManyOpenOrdersError,
    strawberry.union("CheckoutResult")]
OrderResult = Annotated[OrderPayload | NotFoundError | InvalidTransitionError | PaymentError,
                        strawberry.union("OrderResult")]
PayOrderResult = Annotated[
    PayOrderPayload | NotFoundError | InvalidTransitionError | PaymentError,
    strawberry.union("PayOrderResult")]
UserResult = Annotated[UserPayload | NotFoundError | ValidationError,
                       strawberry.union("UserResult")]


def errors_of(result: Any) -> tuple[type[UserError], ...]:
    """The error types of a result union (`Annotated[Payload | ...Error, union]`): the failures
    a mutation returns as data, read from the union so the two cannot disagree."""
    members = get_args(get_args(result)[0])
    return tuple(member for member in members
                 if isinstance(member, type) and issubclass(member, UserError))


async def as_result(call: Awaitable[T], payload: Callable[[T], R],
                    *members: type) -> R | object:
    """Await the use case; wrap success in its payload and expected failures in their type.

    A failure whose type is not a member of this union (e.g. UNAUTHENTICATED) stays an
    exception and becomes a top-level GraphQL error with its code.
    """
    try:
        value = await call
    except DomainError as error:
        user_error = to_user_error(error)
        if user_error is not None and isinstance(user_error, members):
            return user_error
        raise
    return payload(value)
