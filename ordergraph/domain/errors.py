"""Errors the business can raise, each with a stable code.

    DomainError                      any expected business failure; `code` never changes
    ├── ValidationFailed             VALIDATION_FAILED: input of the wrong shape (has `field`)
    ├── NotFound                     NOT_FOUND: no such thing, or not yours to see
    ├── InsufficientStock            INSUFFICIENT_STOCK: a cart line asks for more than is left
    ├── InvalidTransition            INVALID_TRANSITION: the order's state machine says no
    ├── EmailTaken                   EMAIL_TAKEN
    ├── InvalidCredentials           INVALID_CREDENTIALS: wrong email or password (never says which)
    ├── InvalidToken                 INVALID_TOKEN: a password reset token unknown, used or expired
    ├── RateLimited                  RATE_LIMITED: too many attempts; retry later
    ├── IdempotencyKeyReused         IDEMPOTENCY_KEY_REUSED: same key, different cart
    ├── TooManyOpenOrders            TOO_MANY_OPEN_ORDERS: pay or cancel an unpaid order first
    ├── PaymentFailed                PAYMENT_DECLINED / PAYMENT_PROVIDER_ERROR
    ├── Unauthenticated              UNAUTHENTICATED: not logged in (a top-level GraphQL error)
    ├── Forbidden                    FORBIDDEN: logged in, not allowed (a top-level GraphQL error)
    ├── ServiceUnavailable           SERVICE_UNAVAILABLE: the database is unreachable; retry shortly
    └── TransactionConflict          TRANSACTION_CONFLICT: still contended after bounded retries

Use cases raise these; the unit of work rolls back; the GraphQL layer maps each to its type.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class NotFound(DomainError):
    code = "NOT_FOUND"


class InsufficientStock(DomainError):
    code = "INSUFFICIENT_STOCK"

    def __init__(self, *, product_id: int, requested: int, available: int,
                 field: str | None = None, product_name: str | None = None) -> None:
        what = product_name or f"product {product_id}"
        left = f"Only {available} left of {what}" if available else f"{what} is sold out"
        super().__init__(f"{left}; {requested} requested.", field=field)
        self.product_id = product_id
        self.requested = requested
        self.available = available


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"

    def __init__(self, *, from_status: str, to_status: str, why: str | None = None) -> None:
        super().__init__(f"An order cannot go from {from_status} to {to_status}"
                         + (f": {why}." if why else "."))
        self.from_status = from_status
        self.to_status = to_status


class TooManyOpenOrders(DomainError):
    """The customer already holds as many unpaid orders (or units) as a customer may."""

    code = "TOO_MANY_OPEN_ORDERS"


class EmailTaken(DomainError):
    code = "EMAIL_TAKEN"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.", field="email")


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"

    def __init__(self) -> None:
        super().__init__("Wrong email or password.")


class InvalidToken(DomainError):
    code = "INVALID_TOKEN"

    def __init__(self) -> None:
        super().__init__("This reset link is not valid any more (used, expired or mistyped); "
                         "ask for a new one.", field="token")


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, *, retry_after_seconds: int) -> None:
        super().__init__(f"Too many attempts. Try again in {retry_after_seconds} seconds.")
        self.retry_after_seconds = retry_after_seconds


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__(
            "This idempotency key was already used for a different cart or shipping address.",
            field="idempotencyKey",
        )


class PaymentFailed(DomainError):
    """The payment provider declined or could not be reached; `code` says which."""

    DECLINED = "PAYMENT_DECLINED"
    PROVIDER_ERROR = "PAYMENT_PROVIDER_ERROR"

    def __init__(self, message: str, *, code: str, decline_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.decline_code = decline_code

    @classmethod
    def declined(cls, message: str, decline_code: str | None) -> PaymentFailed:
        return cls(message, code=cls.DECLINED, decline_code=decline_code)

    @classmethod
    def provider_error(cls, message: str = "The payment provider is unavailable.") -> PaymentFailed:
        return cls(message, code=cls.PROVIDER_ERROR)


class IntentNotFound(PaymentFailed):
    """The provider no longer knows the order's payment (deleted, another account's keys):
    asking again will not help. Clients see PAYMENT_PROVIDER_ERROR."""

    def __init__(self, intent_id: str) -> None:
        super().__init__(f"The payment provider does not know payment {intent_id}.",
                         code=PaymentFailed.PROVIDER_ERROR)
        self.intent_id = intent_id


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "You must be logged in.") -> None:
        super().__init__(message)


class Forbidden(DomainError):
    code = "FORBIDDEN"

    def __init__(self, message: str = "You are not allowed to do this.") -> None:
        super().__init__(message)


class ServiceUnavailable(DomainError):
    """The database cannot be reached (refused, dropped or closed connections): nothing is
    wrong with the request, and the same request can succeed in a moment."""

    code = "SERVICE_UNAVAILABLE"
    # A restart or failover of PostgreSQL takes seconds; sooner mostly adds load.
    RETRY_AFTER_SECONDS = 5

    def __init__(self, retry_after_seconds: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__("The service is temporarily unavailable; retry shortly.")
        self.retry_after_seconds = retry_after_seconds


class TransactionConflict(DomainError):
    """The database kept refusing the transaction (serialization failure, deadlock)."""

    code = "TRANSACTION_CONFLICT"

    def __init__(self, message: str = "The shop is busy; please try again.") -> None:
        super().__init__(message)
