"""The Stripe emulator's old module path (`python -m ordergraph.adapters.localstripe`, the
benchmarks): it lives in ordergraph/adapters/stripe/emulator.py now."""

from ordergraph.adapters.stripe.emulator import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    LocalStripe,
    free_port,
    register_webhook,
)

__all__ = ["PUBLISHABLE_KEY", "SECRET_KEY", "LocalStripe", "free_port", "register_webhook"]

if __name__ == "__main__":
    import runpy

    runpy.run_module("ordergraph.adapters.stripe.emulator", run_name="__main__")
