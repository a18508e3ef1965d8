"""Versioned SQL migrations of the gateway (its API keys), applied in order at start (see parley.core.db)."""
