"""The Stripe payment provider: the gateway (gateway.py), its webhooks read as the domain's
PaymentUpdates (webhooks.py) and the local emulator (emulator.py). Wired in
ordergraph/wiring_payments.py; a second provider is a sibling folder plus its line there."""

PROVIDER = "stripe"
