"""Who a request acts for, and what a well-formed identifier looks like.

Authentication (``parley.gateway.domain.auth``) decides which tenant and user a request acts for; the rules
for well-formed ids live here so the HTTP and gRPC faces accept and reject exactly the same values.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

from parley.core.errors import InvalidInputError, NotFoundError

DEFAULT_TENANT = "default"
DEFAULT_USER = "anonymous"
_ID_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_ID_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@' or '-'"


@dataclass(frozen=True)
class Principal:
    """The tenant and end user a request acts for; every conversation belongs to exactly one.

    ``user_verified`` is true when the user id comes from a verified user token (JWT) rather than from the
    caller's word: a face that lets a request name another user (a body field) must refuse to when set.
    """

    tenant_id: str
    user_id: str
    user_verified: bool = field(default=False, compare=False)


def principal_of(tenant_id: str | None, user_id: str | None) -> Principal:
    """A validated principal; ``None`` means "not given" and takes the default."""
    tenant = DEFAULT_TENANT if tenant_id is None else tenant_id
    user = DEFAULT_USER if user_id is None else user_id
    if not _ID_PATTERN.fullmatch(tenant):
        raise InvalidInputError(f"tenant id must be {_ID_RULE}")
    if not _ID_PATTERN.fullmatch(user):
        raise InvalidInputError(f"user id must be {_ID_RULE}")
    return Principal(tenant, user)


def check_conversation_id(conversation_id: str) -> str:
    """The id in canonical form; a malformed id cannot name a conversation, so it is simply not found."""
    try:
        return str(uuid.UUID(conversation_id))
    except ValueError as exc:
        shown = conversation_id if len(conversation_id) <= 64 else conversation_id[:64] + "..."
        raise NotFoundError(f"conversation {shown!r} not found (conversation ids are UUIDs)") from exc
