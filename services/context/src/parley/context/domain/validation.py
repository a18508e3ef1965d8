"""Checks on what callers send, shared by the gRPC servicer, the stage and the store.

Every check raises :class:`~parley.core.errors.InvalidInputError` with a message naming the field, so a
malformed id or page token becomes INVALID_ARGUMENT at the edge instead of a database error deep inside.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from parley.context.domain.models import Principal
from parley.core.errors import InvalidInputError

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_SEARCH_LIMIT = 100
DEFAULT_SEARCH_LIMIT = 10
MAX_ID_LENGTH = 256
MAX_TEXT_LENGTH = 100_000
_TOKEN_PREFIX = "seq:"
_MAX_SEQ = 2**63 - 1  # bigserial


def parse_uuid(value: str, what: str = "conversation_id") -> uuid.UUID:
    """``value`` as a UUID, or InvalidInputError naming ``what``."""
    if not value:
        raise InvalidInputError(f"{what} is required")
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"{what} must be a UUID, got {value[:64]!r}") from exc


def check_identifier(value: str, what: str) -> str:
    """A non-empty, bounded identifier (tenant, user, event and turn ids are opaque strings)."""
    if not value or not value.strip():
        raise InvalidInputError(f"{what} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character")
    return value


def check_principal(tenant_id: str, user_id: str) -> Principal:
    """A principal with both parts present."""
    if not tenant_id and not user_id:
        raise InvalidInputError("principal is required (tenant_id and user_id)")
    return Principal(
        check_identifier(tenant_id, "principal.tenant_id"), check_identifier(user_id, "principal.user_id")
    )


def check_text(value: str, what: str = "text") -> str:
    """Message text PostgreSQL can store (no NUL) and of bounded size; empty text is allowed."""
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character")
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidInputError(f"{what} is longer than {MAX_TEXT_LENGTH} characters")
    return value


def check_page_size(page_size: int) -> int:
    """0 means the default; otherwise 1 to MAX_PAGE_SIZE."""
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def check_search_limit(limit: int) -> int:
    """0 means the default; otherwise 1 to MAX_SEARCH_LIMIT."""
    if limit == 0:
        return DEFAULT_SEARCH_LIMIT
    if not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidInputError(f"limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}")
    return limit


def encode_page_token(last_seq: int) -> str:
    """An opaque token meaning "messages after ``last_seq``"."""
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{last_seq}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The ``seq`` after which the next page starts; 0 for the first page (empty token)."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError("page_token is not a token this service issued") from exc
    digits = raw.removeprefix(_TOKEN_PREFIX)
    if digits == raw or not (digits.isascii() and digits.isdigit()) or int(digits) > _MAX_SEQ:
        raise InvalidInputError("page_token is not a token this service issued")
    return int(digits)
