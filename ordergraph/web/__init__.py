"""The Starlette app: the composition root that wires database, adapters and schema."""
