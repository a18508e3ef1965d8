"""Versioned SQL migrations of the context service, applied in order at start (see parley.core.db)."""
