"""The business: pure Python, standard library only (import-linter enforces it)."""
