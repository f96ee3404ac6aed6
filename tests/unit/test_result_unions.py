"""Each mutation returns as data exactly the failures its result union declares."""

from ordergraph.schema import mutation
from ordergraph.schema.errors import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidTokenError,
    NotFoundError,
    RateLimitedError,
    UserError,
    ValidationError,
)
from ordergraph.schema.results import AuthResult, CheckoutResult, UserResult, errors_of


def test_the_error_types_are_the_unions_members_but_the_payload() -> None:
    assert errors_of(AuthResult) == (ValidationError, EmailTakenError, InvalidCredentialsError,
                                     RateLimitedError, InvalidTokenError)
    assert set(errors_of(UserResult)) == {NotFoundError, ValidationError}
    assert all(issubclass(error, UserError) for error in errors_of(CheckoutResult))
    assert errors_of(CheckoutResult) == mutation.CHECKOUT_ERRORS
