"""Expected failures as GraphQL types, and the one table that maps domain errors to them."""

from __future__ import annotations

import strawberry

from ordergraph.domain import errors
from ordergraph.schema.enums import OrderStatus


@strawberry.interface(description="An expected failure, returned as data. `code` is stable.")
class UserError:
    code: str = strawberry.field(description="Stable SCREAMING_SNAKE code for programs.")
    message: str = strawberry.field(description="What went wrong, for people.")
    field: str | None = strawberry.field(
        default=None, description="The input field at fault, e.g. `email` or `items.0.quantity`.")


@strawberry.type(description="VALIDATION_FAILED: the input is not acceptable.")
class ValidationError(UserError):
    pass


@strawberry.type(description="NOT_FOUND: no such thing (or not yours to see).")
class NotFoundError(UserError):
    pass


@strawberry.type(description="INSUFFICIENT_STOCK: a cart line asks for more than is left.")
class InsufficientStockError(UserError):
    product_id: strawberry.ID
    requested: int
    available: int


@strawberry.type(description="INVALID_TRANSITION: the order's state machine does not allow it.")
class InvalidTransitionError(UserError):
    from_: OrderStatus = strawberry.field(name="from")
    to: OrderStatus


@strawberry.type(description="EMAIL_TAKEN: an account with this email exists.")
class EmailTakenError(UserError):
    pass


@strawberry.type(description="INVALID_CREDENTIALS: wrong email or password.")
class InvalidCredentialsError(UserError):
    pass


@strawberry.type(description="INVALID_TOKEN: the password reset token is unknown, used or "
                                 "expired; ask for a new one.")
class InvalidTokenError(UserError):
    pass


@strawberry.type(description="RATE_LIMITED: too many attempts; try again after a while.")
class RateLimitedError(UserError):
    retry_after_seconds: int


@strawberry.type(description="IDEMPOTENCY_KEY_REUSED: the key was used for a different cart.")
class IdempotencyConflictError(UserError):
    pass


@strawberry.type(description="TOO_MANY_OPEN_ORDERS: the customer already holds as many unpaid "
                                 "orders (or units) as allowed; pay or cancel one first.")
class TooManyOpenOrdersError(UserError):
    pass


@strawberry.type(
    description="PAYMENT_DECLINED (the card was refused; see declineCode) or "
                "PAYMENT_PROVIDER_ERROR (the provider could not be reached).")
class PaymentError(UserError):
    decline_code: str | None = None


def to_user_error(error: errors.DomainError) -> UserError | None:
    """The GraphQL type for an expected failure; None for those that are top-level errors."""
    common = {"code": error.code, "message": error.message, "field": error.field}
    match error:
        case errors.ValidationFailed():
            return ValidationError(**common)
        case errors.NotFound():
            return NotFoundError(**common)
        case errors.InsufficientStock():
            return InsufficientStockError(
                **common, product_id=strawberry.ID(str(error.product_id)),
                requested=error.requested, available=error.available)
        case errors.InvalidTransition():
            return InvalidTransitionError(
                **common, from_=OrderStatus(error.from_status), to=OrderStatus(error.to_status))
        case errors.EmailTaken():
            return EmailTakenError(**common)
        case errors.InvalidCredentials():
            return InvalidCredentialsError(**common)
        case errors.InvalidToken():
            return InvalidTokenError(**common)
        case errors.RateLimited():
            return RateLimitedError(**common, retry_after_seconds=error.retry_after_seconds)
        case errors.IdempotencyKeyReused():
            return IdempotencyConflictError(**common)
        case errors.TooManyOpenOrders():
            return TooManyOpenOrdersError(**common)
        case errors.PaymentFailed():
            return PaymentError(**common, decline_code=error.decline_code)
    return None
