"""The conversation store on PostgreSQL (asyncpg).

Idempotency lives in the schema: a message's ``event_id`` and a logged event's id are unique, and appends
use ``ON CONFLICT DO NOTHING``, so at-least-once delivery stores everything once. Dialog state is a
compare-and-set in a single statement, so two writers at the same version cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from parley.context.domain.models import (
    Conversation,
    DialogState,
    Message,
    MessagePage,
    NewMessage,
    Principal,
    Role,
    StoredEvent,
    UserDeletion,
    UserExport,
)
from parley.context.domain.validation import (
    MAX_PAGE_SIZE,
    check_identifier,
    check_principal,
    check_text,
    decode_page_token,
    encode_page_token,
    parse_uuid,
)
from parley.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ParleyError,
    UnavailableError,
)

# Failures that mean "the database cannot be reached right now", not "the request is wrong".
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)

_MESSAGE_COLUMNS = "m.id, m.conversation_id, m.turn_id, m.role, m.text, m.event_id, m.seq, m.created_at"


def _message(row: asyncpg.Record) -> Message:
    return Message(
        message_id=str(row["id"]),
        conversation_id=str(row["conversation_id"]),
        turn_id=row["turn_id"],
        role=Role(row["role"]),
        text=row["text"],
        event_id=row["event_id"],
        seq=row["seq"],
        created_at=row["created_at"],
    )


def _conversation(row: asyncpg.Record) -> Conversation:
    return Conversation(
        conversation_id=str(row["id"]),
        owner=Principal(row["tenant_id"], row["user_id"]),
        created_at=row["created_at"],
    )


def _state(conversation_id: str, row: asyncpg.Record) -> DialogState:
    return DialogState(
        conversation_id=conversation_id,
        version=row["version"],
        data=json.loads(row["data"]),
        updated_at=row["updated_at"],
    )


def _event(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        event_id=row["event_id"],
        conversation_id=str(row["conversation_id"]),
        turn_id=row["turn_id"],
        type=row["type"],
        payload=bytes(row["payload"]),
        occurred_at=row["occurred_at"],
    )


def _state_json(data: Mapping[str, Any]) -> str:
    """State as JSON text for jsonb; NaN/Infinity and non-JSON values are the caller's error."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"state data must be a JSON object, got {type(data).__name__}")
    try:
        return json.dumps(dict(data), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"state data is not valid JSON: {exc}") from exc


def _check_message(message: NewMessage) -> tuple[uuid.UUID, NewMessage]:
    conversation = parse_uuid(message.conversation_id)
    check_identifier(message.event_id, "event_id")
    if message.turn_id:
        check_identifier(message.turn_id, "turn_id")
    check_text(message.text)
    if not isinstance(message.role, Role):
        raise InvalidInputError(f"role must be one of {[r.value for r in Role]}, got {message.role!r}")
    return conversation, message


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PostgresStore:
    """The :class:`~parley.context.ports.ConversationStore` on an asyncpg pool the caller owns."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except ParleyError:
            raise
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"PostgreSQL is unavailable: {exc}") from exc

    # -- conversations -------------------------------------------------------------------------------

    async def create_conversation(self, conversation_id: str, tenant_id: str, user_id: str) -> Conversation:
        cid = parse_uuid(conversation_id)
        owner = check_principal(tenant_id, user_id)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO conversations (id, tenant_id, user_id) VALUES ($1, $2, $3) "
                "ON CONFLICT (id) DO NOTHING RETURNING id, tenant_id, user_id, created_at",
                cid,
                owner.tenant_id,
                owner.user_id,
            )
            if row is None:
                row = await conn.fetchrow(
                    "SELECT id, tenant_id, user_id, created_at FROM conversations WHERE id = $1", cid
                )
        if row is None:  # created and deleted in between; the caller may retry
            raise ConflictError(f"conversation {cid} was deleted while being created")
        conversation = _conversation(row)
        if conversation.owner != owner:
            raise ConflictError(f"conversation {cid} already exists")
        return conversation

    async def get_conversation(self, conversation_id: str, tenant_id: str, user_id: str) -> Conversation:
        cid = parse_uuid(conversation_id)
        owner = check_principal(tenant_id, user_id)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT id, tenant_id, user_id, created_at FROM conversations "
                "WHERE id = $1 AND tenant_id = $2 AND user_id = $3",
                cid,
                owner.tenant_id,
                owner.user_id,
            )
        if row is None:
            raise NotFoundError(f"conversation {cid} not found")
        return _conversation(row)

    # -- messages ------------------------------------------------------------------------------------

    async def list_messages(self, conversation_id: str, page_size: int, page_token: str = "") -> MessagePage:
        cid = parse_uuid(conversation_id)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        after = decode_page_token(page_token)
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m "
                "WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
                cid,
                after,
                page_size + 1,
            )
        messages = [_message(r) for r in rows[:page_size]]
        more = len(rows) > page_size
        return MessagePage(messages, encode_page_token(messages[-1].seq) if more else "")

    async def append_message(self, message: NewMessage) -> bool:
        return await self.append_messages([message]) == 1

    async def append_messages(self, messages: Sequence[NewMessage]) -> int:
        checked = [_check_message(m) for m in messages]
        appended = 0
        async with self._connection() as conn, conn.transaction():
            for cid, m in checked:
                try:
                    new_id = await conn.fetchval(
                        "INSERT INTO messages (conversation_id, turn_id, role, text, event_id) "
                        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING id",
                        cid,
                        m.turn_id,
                        m.role.value,
                        m.text,
                        m.event_id,
                    )
                except asyncpg.ForeignKeyViolationError as exc:
                    raise NotFoundError(f"conversation {cid} not found") from exc
                appended += new_id is not None
        return appended

    async def recent_messages(
        self, conversation_id: str, limit: int, up_to_event_id: str | None = None
    ) -> list[Message]:
        cid = parse_uuid(conversation_id)
        if limit < 0:
            raise InvalidInputError(f"limit must not be negative, got {limit}")
        if limit == 0:
            return []
        async with self._connection() as conn:
            # Bounding by the seq of the message an event produced makes a re-run of the same event
            # see the same history, even after later messages were stored.
            rows = await conn.fetch(
                f"SELECT * FROM (SELECT {_MESSAGE_COLUMNS} FROM messages m "
                "WHERE m.conversation_id = $1 AND m.seq <= COALESCE("
                "  (SELECT seq FROM messages WHERE event_id = $3 AND conversation_id = $1),"
                "  9223372036854775807) "
                "ORDER BY m.seq DESC LIMIT $2) recent ORDER BY seq",
                cid,
                limit,
                up_to_event_id,
            )
        return [_message(r) for r in rows]

    # -- dialog state --------------------------------------------------------------------------------

    async def get_state(self, conversation_id: str) -> DialogState:
        cid = parse_uuid(conversation_id)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT version, data::text AS data, updated_at FROM dialog_state WHERE conversation_id = $1",
                cid,
            )
        if row is None:
            return DialogState(conversation_id=str(cid), version=0)
        return _state(str(cid), row)

    async def update_state(
        self, conversation_id: str, expected_version: int, data: Mapping[str, Any]
    ) -> DialogState:
        cid = parse_uuid(conversation_id)
        if expected_version < 0:
            raise InvalidInputError(f"expected_version must not be negative, got {expected_version}")
        payload = _state_json(data)
        async with self._connection() as conn:
            try:
                if expected_version == 0:
                    row = await conn.fetchrow(
                        "INSERT INTO dialog_state (conversation_id, version, data) VALUES ($1, 1, $2::jsonb) "
                        "ON CONFLICT (conversation_id) DO NOTHING "
                        "RETURNING version, data::text AS data, updated_at",
                        cid,
                        payload,
                    )
                else:
                    row = await conn.fetchrow(
                        "UPDATE dialog_state SET version = version + 1, data = $3::jsonb, updated_at = now() "
                        "WHERE conversation_id = $1 AND version = $2 "
                        "RETURNING version, data::text AS data, updated_at",
                        cid,
                        expected_version,
                        payload,
                    )
            except asyncpg.ForeignKeyViolationError as exc:
                raise NotFoundError(f"conversation {cid} not found") from exc
            if row is None:
                stored = await conn.fetchval(
                    "SELECT version FROM dialog_state WHERE conversation_id = $1", cid
                )
                if stored is None and not await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1)", cid
                ):
                    raise NotFoundError(f"conversation {cid} not found")
                raise ConflictError(
                    f"state version moved on: expected {expected_version}, stored {stored or 0}"
                )
        return _state(str(cid), row)

    # -- event log -----------------------------------------------------------------------------------

    async def record_event(
        self,
        event_id: str,
        conversation_id: str,
        turn_id: str,
        event_type: str,
        payload: bytes,
        occurred_at: datetime,
    ) -> bool:
        cid = parse_uuid(conversation_id)
        check_identifier(event_id, "event_id")
        check_identifier(event_type, "event type")
        async with self._connection() as conn:
            try:
                new = await conn.fetchval(
                    "INSERT INTO turn_events "
                    "(event_id, conversation_id, turn_id, type, payload, occurred_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    event_id,
                    cid,
                    turn_id,
                    event_type,
                    payload,
                    occurred_at,
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise NotFoundError(f"conversation {cid} not found") from exc
        return new is not None

    # -- per user --------------------------------------------------------------------------------------

    async def search_messages(self, tenant_id: str, user_id: str, query: str, limit: int) -> list[Message]:
        owner = check_principal(tenant_id, user_id)
        query = check_text(query.strip(), "query")
        if not query:
            raise InvalidInputError("query is required")
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        async with self._connection() as conn:
            # Whole words rank by full-text relevance; a substring match (ILIKE) still finds word parts.
            # The owner's conversations bound the scan (conversations_owner_idx, then per conversation).
            rows = await conn.fetch(
                f"SELECT {_MESSAGE_COLUMNS}, ts_rank(to_tsvector('simple', m.text), q) AS rank "
                "FROM messages m JOIN conversations c ON c.id = m.conversation_id, "
                "     plainto_tsquery('simple', $3) AS q "
                "WHERE c.tenant_id = $1 AND c.user_id = $2 "
                "  AND (to_tsvector('simple', m.text) @@ q OR m.text ILIKE $4 ESCAPE '\\') "
                "ORDER BY rank DESC, m.seq DESC LIMIT $5",
                owner.tenant_id,
                owner.user_id,
                query,
                _like_pattern(query),
                limit,
            )
        return [_message(r) for r in rows]

    async def export_user(self, tenant_id: str, user_id: str) -> UserExport:
        owner = check_principal(tenant_id, user_id)
        args = (owner.tenant_id, owner.user_id)
        owned = "SELECT id FROM conversations WHERE tenant_id = $1 AND user_id = $2"
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            conversations = await conn.fetch(
                "SELECT id, tenant_id, user_id, created_at FROM conversations "
                "WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
                *args,
            )
            messages = await conn.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                "WHERE c.tenant_id = $1 AND c.user_id = $2 ORDER BY c.created_at, c.id, m.seq",
                *args,
            )
            states = await conn.fetch(
                "SELECT conversation_id, version, data::text AS data, updated_at FROM dialog_state "
                f"WHERE conversation_id IN ({owned}) ORDER BY conversation_id",
                *args,
            )
            events = await conn.fetch(
                "SELECT event_id, conversation_id, turn_id, type, payload, occurred_at FROM turn_events "
                f"WHERE conversation_id IN ({owned}) ORDER BY conversation_id, occurred_at, event_id",
                *args,
            )
        return UserExport(
            conversations=[_conversation(r) for r in conversations],
            messages=[_message(r) for r in messages],
            states=[_state(str(r["conversation_id"]), r) for r in states],
            events=[_event(r) for r in events],
        )

    async def delete_user(self, tenant_id: str, user_id: str) -> UserDeletion:
        owner = check_principal(tenant_id, user_id)
        async with self._connection() as conn, conn.transaction():
            # Locking the conversations first makes concurrent appends to them wait, then fail cleanly.
            ids = await conn.fetchval(
                "SELECT coalesce(array_agg(id), '{}') FROM ("
                "  SELECT id FROM conversations WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE) owned",
                owner.tenant_id,
                owner.user_id,
            )
            counts: dict[str, int] = {}
            for table in ("messages", "dialog_state", "turn_events", "conversations"):
                key = "id" if table == "conversations" else "conversation_id"
                counts[table] = await conn.fetchval(
                    f"WITH gone AS (DELETE FROM {table} WHERE {key} = ANY($1::uuid[]) RETURNING 1) "
                    "SELECT count(*) FROM gone",
                    ids,
                )
        return UserDeletion(
            conversations=counts["conversations"],
            messages=counts["messages"],
            states=counts["dialog_state"],
            events=counts["turn_events"],
        )
