"""What the NLU accepts, shared by the gRPC API and the turn stage."""

from __future__ import annotations

from parley.core.errors import InvalidInputError

MAX_TEXT_CHARS = 4096
MAX_BATCH = 256


def validate_text(text: str, field: str = "text") -> None:
    """Raise :class:`InvalidInputError` unless ``text`` has 1 to 4,096 characters and is not blank."""
    if not text.strip():
        raise InvalidInputError(f"{field}: must not be empty (send 1 to {MAX_TEXT_CHARS:,} characters)")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"{field}: too long ({len(text):,} characters; at most {MAX_TEXT_CHARS:,} are accepted)"
        )


def validate_batch_size(size: int, field: str = "requests") -> None:
    """Raise :class:`InvalidInputError` unless a batch holds 1 to 256 texts."""
    if size == 0:
        raise InvalidInputError(f"{field}: must not be empty (send 1 to {MAX_BATCH} texts)")
    if size > MAX_BATCH:
        raise InvalidInputError(f"{field}: too many texts ({size}; at most {MAX_BATCH} per batch)")
