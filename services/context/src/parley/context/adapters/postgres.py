"""The conversation store on PostgreSQL (asyncpg).

Idempotency lives in the schema: a message's ``event_id`` and a logged event's id are unique, and appends
use ``ON CONFLICT DO NOTHING``, so at-least-once delivery stores everything once; entity updates keep a
ledger of the events they folded in. Dialog state is a compare-and-set in a single statement, so two
writers at the same version cannot both win.

What a turn loads (:meth:`PostgresStore.load_context`) is one statement of LIMITed index walks plus a
message count kept on the conversation row, so its cost does not grow with the conversation.

Long-term memories keep their embedding as ``real[]``. Where migration 0002 found pgvector, a generated
``vector(256)`` column with an HNSW index exists too and similarity searches use it; otherwise (or for
embeddings of another size) cosine similarity is computed in SQL over the arrays of that user's memories.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from parley.context.domain.models import (
    ContextLoad,
    Conversation,
    DialogState,
    EntityChange,
    EntityUpdate,
    EntityValue,
    Feedback,
    MemoryItem,
    Message,
    MessagePage,
    NewMessage,
    Principal,
    Role,
    StoredEvent,
    Summary,
    UserDeletion,
    UserExport,
    UserProfile,
)
from parley.context.domain.validation import (
    MAX_PAGE_SIZE,
    MAX_SEARCH_LIMIT,
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

#: Dimensions of the pgvector column (the context service's embedder); see migration 0002.
VECTOR_DIMENSIONS = 256
MAX_WINDOW = MAX_PAGE_SIZE
MAX_ENTITY_LIMIT = 500
MAX_ENTITY_TYPE = 128
MAX_ENTITY_VALUE = 2_000
MAX_ENTITY_UPDATES = 200
MAX_FOLD = 100_000
MAX_MEMORY_TEXT = 2_000
MAX_KIND = 64
MAX_EMBEDDING_DIMENSIONS = 4_096
MAX_COMMENT = 2_000
MAX_DISPLAY_NAME = 256
MAX_TIMEZONE = 64
MAX_LOCALE = 35
#: Serialized size of a JSON object (preferences, metadata, attributes).
MAX_JSON_BYTES = 64 * 1024
#: Rows one retention DELETE removes, so a large backlog never holds locks in one long transaction.
PURGE_BATCH = 5_000

_LOCALE = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$")
_MAX_SEQ = 2**63 - 1
# A NUL escaped in JSON text (an odd number of backslashes before u0000): jsonb cannot store it.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")

_MESSAGE_COLUMNS = "m.id, m.conversation_id, m.turn_id, m.role, m.text, m.event_id, m.seq, m.created_at"
_PROFILE_COLUMNS = (
    "tenant_id, user_id, display_name, timezone, locale, preferences::text AS preferences, updated_at"
)
_ENTITY_COLUMNS = (
    "conversation_id, entity_type, value, attributes::text AS attributes, turn_id, updated_at, mentions"
)
_CHANGE_COLUMNS = (
    "conversation_id, entity_type, previous_value, value, attributes::text AS attributes, turn_id, changed_at"
)
_MEMORY_COLUMNS = (
    "m.id, m.tenant_id, m.user_id, m.text, m.kind, m.metadata::text AS metadata, m.conversation_id, "
    "m.created_at"
)
_FEEDBACK_COLUMNS = "id, conversation_id, turn_id, rating, resolved, comment, created_at"
_SUMMARY_COLUMNS = "conversation_id, text, covers_up_to_seq, message_count, updated_at"

# Creates the tenant and user ($1, $2) on first sight; prefixed to the statement that needs them to exist.
_ENSURE_OWNER = (
    "WITH tenant AS (INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING), "
    "     owner AS (INSERT INTO users (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING) "
)

# One turn's load in one statement (one round trip, one snapshot). Every part is an index walk with a
# LIMIT or a primary-key lookup: the last $2 messages walk messages_conversation_seq_idx backwards, the
# entities entity_state_recent_idx, and the count comes from the conversation row. With $4 (the event
# that produced the current message) the window and count stop at that message, so re-processing an
# event sees the history it saw the first time; the count of later messages is normally zero rows.
LOAD_CONTEXT_SQL = """
WITH bound AS (
    SELECT coalesce(
        (SELECT seq FROM messages WHERE event_id = $4::text AND conversation_id = $1),
        9223372036854775807
    ) AS seq
)
SELECT
    c.tenant_id,
    c.user_id,
    c.message_count - (
        SELECT count(*) FROM messages m WHERE m.conversation_id = $1 AND m.seq > (SELECT seq FROM bound)
    ) AS total_messages,
    array(
        SELECT ROW(r.id, r.turn_id, r.role, r.text, r.event_id, r.seq, r.created_at)
        FROM (
            SELECT m.id, m.turn_id, m.role, m.text, m.event_id, m.seq, m.created_at
            FROM messages m
            WHERE m.conversation_id = $1 AND m.seq <= (SELECT seq FROM bound)
            ORDER BY m.seq DESC
            LIMIT $2
        ) r
        ORDER BY r.seq
    ) AS recent,
    array(
        SELECT ROW(e.entity_type, e.value, e.attributes::text, e.turn_id, e.updated_at, e.mentions)
        FROM entity_state e
        WHERE e.conversation_id = $1
        ORDER BY e.updated_at DESC, e.entity_type
        LIMIT $3
    ) AS entities,
    s.text AS summary_text,
    s.covers_up_to_seq,
    s.message_count AS summary_count,
    s.updated_at AS summary_updated_at,
    d.version,
    d.data::text AS data,
    d.updated_at AS state_updated_at,
    u.display_name,
    u.timezone,
    u.locale,
    u.preferences::text AS preferences,
    u.updated_at AS profile_updated_at
FROM conversations c
LEFT JOIN conversation_summaries s ON s.conversation_id = c.id
LEFT JOIN dialog_state d ON d.conversation_id = c.id
LEFT JOIN users u ON u.tenant_id = c.tenant_id AND u.user_id = c.user_id
WHERE c.id = $1
"""

# Folds one event's entities into the state (the caller holds the conversation lock and has logged the
# event id). ``previous`` sees the values from before this statement, so a change row is written exactly
# when a type is first set or its value differs; mentions count the events that named the type.
_UPDATE_ENTITIES_SQL = """
WITH input AS (
    SELECT i.entity_type, i.value, i.attributes::jsonb AS attributes, i.ord
    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS i(entity_type, value, attributes, ord)
),
previous AS (
    SELECT s.entity_type, s.value FROM entity_state s
    WHERE s.conversation_id = $1 AND s.entity_type = ANY($2::text[])
),
changes AS (
    INSERT INTO entity_changes
        (conversation_id, entity_type, previous_value, value, attributes, turn_id, event_id)
    SELECT $1, i.entity_type, p.value, i.value, i.attributes, $5, $6
    FROM input i LEFT JOIN previous p USING (entity_type)
    WHERE p.value IS DISTINCT FROM i.value
    ORDER BY i.ord
    ON CONFLICT (event_id, entity_type) DO NOTHING
)
INSERT INTO entity_state AS s (conversation_id, entity_type, value, attributes, turn_id, event_id)
SELECT $1, i.entity_type, i.value, i.attributes, $5, $6 FROM input i ORDER BY i.ord
ON CONFLICT (conversation_id, entity_type) DO UPDATE SET
    value = EXCLUDED.value,
    attributes = EXCLUDED.attributes,
    turn_id = EXCLUDED.turn_id,
    event_id = EXCLUDED.event_id,
    mentions = s.mentions + 1,
    updated_at = now()
RETURNING s.conversation_id, s.entity_type, s.value, s.attributes::text AS attributes, s.turn_id,
          s.updated_at, s.mentions
"""

# Similarity by pgvector (HNSW index when the planner prefers it; cosine distance = 1 - similarity).
SEARCH_PGVECTOR_SQL = f"""
SELECT {_MEMORY_COLUMNS}, 1 - (m.embedding_vec <=> $3::real[]::vector({VECTOR_DIMENSIONS})) AS score
FROM memories m
WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.embedding_vec IS NOT NULL
  AND ($5::float8 <= -1 OR m.embedding_vec <=> $3::real[]::vector({VECTOR_DIMENSIONS}) <= 1 - $5::float8)
ORDER BY m.embedding_vec <=> $3::real[]::vector({VECTOR_DIMENSIONS})
LIMIT $4
"""

# The same without pgvector: cosine over the arrays of that user's memories of the same size.
SEARCH_ARRAY_SQL = f"""
SELECT {_MEMORY_COLUMNS}, s.score
FROM memories m
CROSS JOIN LATERAL (
    SELECT sum(a::float8 * b) / nullif(sqrt(sum(a::float8 * a)) * sqrt(sum(b::float8 * b)), 0) AS score
    FROM unnest(m.embedding, $3::real[]) AS v(a, b)
) s
WHERE m.tenant_id = $1 AND m.user_id = $2 AND cardinality(m.embedding) = cardinality($3::real[])
  AND s.score IS NOT NULL AND ($5::float8 <= -1 OR s.score >= $5::float8)
ORDER BY s.score DESC, m.created_at DESC
LIMIT $4
"""


# -- rows to values -----------------------------------------------------------------------------------


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


def _profile(row: asyncpg.Record) -> UserProfile:
    return UserProfile(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        display_name=row["display_name"],
        timezone=row["timezone"],
        locale=row["locale"],
        preferences=json.loads(row["preferences"]),
        updated_at=row["updated_at"],
    )


def _entity(row: asyncpg.Record) -> EntityValue:
    return EntityValue(
        conversation_id=str(row["conversation_id"]),
        entity_type=row["entity_type"],
        value=row["value"],
        attributes=json.loads(row["attributes"]),
        turn_id=row["turn_id"],
        updated_at=row["updated_at"],
        mentions=row["mentions"],
    )


def _change(row: asyncpg.Record) -> EntityChange:
    return EntityChange(
        conversation_id=str(row["conversation_id"]),
        entity_type=row["entity_type"],
        previous_value=row["previous_value"],
        value=row["value"],
        attributes=json.loads(row["attributes"]),
        turn_id=row["turn_id"],
        changed_at=row["changed_at"],
    )


def _memory(row: asyncpg.Record) -> MemoryItem:
    score = row.get("score")
    return MemoryItem(
        memory_id=str(row["id"]),
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        text=row["text"],
        kind=row["kind"],
        metadata=json.loads(row["metadata"]),
        conversation_id=str(row["conversation_id"]) if row["conversation_id"] else "",
        created_at=row["created_at"],
        score=float(score) if score is not None else 0.0,
    )


def _feedback(row: asyncpg.Record) -> Feedback:
    return Feedback(
        feedback_id=str(row["id"]),
        conversation_id=str(row["conversation_id"]),
        turn_id=row["turn_id"],
        rating=row["rating"],
        resolved=row["resolved"],
        comment=row["comment"],
        created_at=row["created_at"],
    )


def _summary(row: asyncpg.Record) -> Summary:
    return Summary(
        conversation_id=str(row["conversation_id"]),
        text=row["text"],
        covers_up_to_seq=row["covers_up_to_seq"],
        message_count=row["message_count"],
        updated_at=row["updated_at"],
    )


def _context_load(conversation_id: str, row: asyncpg.Record) -> ContextLoad:
    """A ContextLoad from LOAD_CONTEXT_SQL's row (its arrays hold anonymous records, decoded as tuples)."""
    recent = [
        Message(
            message_id=str(mid),
            conversation_id=conversation_id,
            turn_id=turn_id,
            role=Role(role),
            text=text,
            event_id=event_id,
            seq=seq,
            created_at=created_at,
        )
        for mid, turn_id, role, text, event_id, seq, created_at in row["recent"]
    ]
    entities = [
        EntityValue(
            conversation_id=conversation_id,
            entity_type=entity_type,
            value=value,
            attributes=json.loads(attributes),
            turn_id=turn_id,
            updated_at=updated_at,
            mentions=mentions,
        )
        for entity_type, value, attributes, turn_id, updated_at, mentions in row["entities"]
    ]
    summary = None
    if row["summary_text"] is not None:
        summary = Summary(
            conversation_id=conversation_id,
            text=row["summary_text"],
            covers_up_to_seq=row["covers_up_to_seq"],
            message_count=row["summary_count"],
            updated_at=row["summary_updated_at"],
        )
    state = DialogState(conversation_id=conversation_id, version=0)
    if row["version"] is not None:
        state = DialogState(
            conversation_id=conversation_id,
            version=row["version"],
            data=json.loads(row["data"]),
            updated_at=row["state_updated_at"],
        )
    profile = UserProfile(tenant_id=row["tenant_id"], user_id=row["user_id"])
    if row["display_name"] is not None:
        profile = UserProfile(
            tenant_id=row["tenant_id"],
            user_id=row["user_id"],
            display_name=row["display_name"],
            timezone=row["timezone"],
            locale=row["locale"],
            preferences=json.loads(row["preferences"]),
            updated_at=row["profile_updated_at"],
        )
    return ContextLoad(
        conversation_id=conversation_id,
        recent=recent,
        summary=summary,
        entities=entities,
        profile=profile,
        state=state,
        total_messages=row["total_messages"],
    )


# -- checks -------------------------------------------------------------------------------------------


def _json_object(data: Mapping[str, Any] | None, what: str, max_bytes: int | None = None) -> str:
    """A JSON object as text for jsonb; NaN/Infinity, non-JSON values and oversize are the caller's error."""
    if data is None:
        return "{}"
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{what} must be a JSON object, got {type(data).__name__}")
    try:
        text = json.dumps(dict(data), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from exc
    if _JSON_NUL.search(text):
        raise InvalidInputError(f"{what} contains a NUL character")
    if max_bytes is not None and len(text.encode()) > max_bytes:
        raise InvalidInputError(f"{what} is larger than {max_bytes} bytes as JSON")
    return text


def _state_json(data: Mapping[str, Any]) -> str:
    """State as JSON text for jsonb (no size limit here: the dialog service owns its state's shape)."""
    return _json_object(data, "state data")


def _check_message(message: NewMessage) -> tuple[uuid.UUID, NewMessage]:
    conversation = parse_uuid(message.conversation_id)
    check_identifier(message.event_id, "event_id")
    if message.turn_id:
        check_identifier(message.turn_id, "turn_id")
    check_text(message.text)
    if not isinstance(message.role, Role):
        raise InvalidInputError(f"role must be one of {[r.value for r in Role]}, got {message.role!r}")
    return conversation, message


def _check_bounded(value: str, what: str, limit: int, *, required: bool = False) -> str:
    check_text(value, what)
    if required and not value.strip():
        raise InvalidInputError(f"{what} is required")
    if len(value) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters")
    return value


def _check_range(value: int, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def _check_timezone(name: str) -> str:
    """'' (UTC) or an IANA zone name Python knows; the resolver converts dates in it."""
    if not name:
        return name
    if len(name) > MAX_TIMEZONE or name == "localtime":
        raise InvalidInputError(f"timezone must be an IANA name such as 'Europe/Berlin', got {name[:64]!r}")
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError) as exc:
        raise InvalidInputError(
            f"timezone must be an IANA name such as 'Europe/Berlin', got {name!r}"
        ) from exc
    return name


def _check_locale(locale: str) -> str:
    if locale and (len(locale) > MAX_LOCALE or not _LOCALE.match(locale)):
        raise InvalidInputError(f"locale must be a language tag such as 'en' or 'de-CH', got {locale[:64]!r}")
    return locale


def _check_embedding(embedding: Sequence[float], what: str = "embedding") -> list[float]:
    """A non-empty, bounded vector of finite numbers (all zeros is allowed: it is similar to nothing)."""
    if isinstance(embedding, (str, bytes)) or not isinstance(embedding, Sequence):
        raise InvalidInputError(f"{what} must be a sequence of numbers")
    if not 1 <= len(embedding) <= MAX_EMBEDDING_DIMENSIONS:
        raise InvalidInputError(
            f"{what} must have 1 to {MAX_EMBEDDING_DIMENSIONS} dimensions, got {len(embedding)}"
        )
    try:
        vector = [float(x) for x in embedding]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must contain only numbers") from exc
    if not all(math.isfinite(x) for x in vector):
        raise InvalidInputError(f"{what} contains NaN or infinity")
    return vector


def _check_aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime")
    return moment


def _check_entity_updates(updates: Sequence[EntityUpdate]) -> list[EntityUpdate]:
    """The updates, one per type (the last mention of a type in a turn wins), in first-mention order."""
    if len(updates) > MAX_ENTITY_UPDATES:
        raise InvalidInputError(f"at most {MAX_ENTITY_UPDATES} entity updates per event, got {len(updates)}")
    latest: dict[str, EntityUpdate] = {}
    for update in updates:
        if not isinstance(update, EntityUpdate):
            raise InvalidInputError(
                f"entity updates must be EntityUpdate values, got {type(update).__name__}"
            )
        check_identifier(update.entity_type, "entity_type")
        if len(update.entity_type) > MAX_ENTITY_TYPE:
            raise InvalidInputError(f"entity_type is longer than {MAX_ENTITY_TYPE} characters")
        _check_bounded(
            update.value, f"value of entity {update.entity_type!r}", MAX_ENTITY_VALUE, required=True
        )
        _json_object(update.attributes, f"attributes of entity {update.entity_type!r}", MAX_JSON_BYTES)
        latest[update.entity_type] = update
    return list(latest.values())


def _version(text: str | None) -> tuple[int, ...]:
    """'0.8.6' -> (0, 8, 6); None or an unparsable part ends the tuple."""
    parts: list[int] = []
    for part in (text or "").split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _like_pattern(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class PostgresStore:
    """The :class:`~parley.context.ports.ConversationStore` on an asyncpg pool the caller owns.

    ``pgvector=False`` searches memories by the ``real[]`` path even where the vector column exists (to
    compare the two, or to rule pgvector out).
    """

    def __init__(self, pool: asyncpg.Pool, *, pgvector: bool = True) -> None:
        self._pool = pool
        self._pgvector = pgvector
        # Dimensions of memories.embedding_vec (None: no such column) and whether pgvector can keep
        # scanning its HNSW index until enough rows pass a filter (0.8+); looked up on first use.
        self._vector_dimensions: int | None = None
        self._iterative_scan = False
        self._vector_checked = False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except ParleyError:
            raise
        except _UNAVAILABLE as exc:
            raise UnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
        except asyncpg.CheckViolationError as exc:  # a schema CHECK the checks here should have caught
            raise InvalidInputError(f"rejected by the database: {exc}") from exc

    async def _vector_column(self, conn: asyncpg.Connection) -> int | None:
        """The pgvector column's dimensions when migration 0002 created it (and it is not turned off)."""
        if not self._pgvector:
            return None
        if not self._vector_checked:
            row = await conn.fetchrow(
                "SELECT (SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('memories') "
                "        AND attname = 'embedding_vec' AND NOT attisdropped) AS dimensions, "
                "       (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS version, "
                "       to_regclass('memories') IS NOT NULL AS migrated"
            )
            self._vector_dimensions = row["dimensions"]
            self._iterative_scan = _version(row["version"]) >= (0, 8)
            self._vector_checked = row["migrated"]  # asked before migrating: ask again next time
        return self._vector_dimensions

    async def memory_search_backend(self) -> str:
        """``"pgvector"`` or ``"real[]"``: how :meth:`search_memories` ranks embeddings of 256 dimensions."""
        async with self._connection() as conn:
            return "pgvector" if await self._vector_column(conn) == VECTOR_DIMENSIONS else "real[]"

    # -- conversations -------------------------------------------------------------------------------

    async def create_conversation(self, conversation_id: str, tenant_id: str, user_id: str) -> Conversation:
        cid = parse_uuid(conversation_id)
        owner = check_principal(tenant_id, user_id)
        select = "SELECT id, tenant_id, user_id, created_at FROM conversations WHERE id = $1"
        async with self._connection() as conn:
            # The stage calls this for every event: the usual case is one read.
            row = await conn.fetchrow(select, cid)
            if row is None:
                try:
                    row = await conn.fetchrow(
                        _ENSURE_OWNER
                        + "INSERT INTO conversations (id, tenant_id, user_id) VALUES ($3, $1, $2) "
                        "ON CONFLICT (id) DO NOTHING RETURNING id, tenant_id, user_id, created_at",
                        owner.tenant_id,
                        owner.user_id,
                        cid,
                    )
                except asyncpg.ForeignKeyViolationError as exc:  # the user was deleted meanwhile
                    raise ConflictError(
                        f"the owner of conversation {cid} was deleted meanwhile; retry"
                    ) from exc
                if row is None:
                    row = await conn.fetchrow(select, cid)
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
        # Each insert bumps its conversation's message_count (a trigger, which locks that row): inserting
        # in conversation order (stable, so each conversation keeps its order) makes writers lock rows in
        # the same order, so two batches spanning the same conversations cannot deadlock.
        checked = sorted((_check_message(m) for m in messages), key=lambda checked: checked[0])
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

    async def messages_after(self, conversation_id: str, after_seq: int, limit: int) -> list[Message]:
        cid = parse_uuid(conversation_id)
        _check_range(after_seq, "after_seq", 0, _MAX_SEQ)
        _check_range(limit, "limit", 0, MAX_FOLD)
        if limit == 0:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages m "
                "WHERE m.conversation_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3",
                cid,
                after_seq,
                limit,
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

    # -- what a turn loads, summaries ------------------------------------------------------------------

    async def load_context(
        self, conversation_id: str, window: int, entity_limit: int = 20, up_to_event_id: str | None = None
    ) -> ContextLoad:
        cid = parse_uuid(conversation_id)
        _check_range(window, "window", 0, MAX_WINDOW)
        _check_range(entity_limit, "entity_limit", 0, MAX_ENTITY_LIMIT)
        if up_to_event_id is not None:
            check_identifier(up_to_event_id, "up_to_event_id")
        async with self._connection() as conn:
            row = await conn.fetchrow(LOAD_CONTEXT_SQL, cid, window, entity_limit, up_to_event_id)
        if row is None:
            raise NotFoundError(f"conversation {cid} not found")
        return _context_load(str(cid), row)

    async def get_summary(self, conversation_id: str) -> Summary | None:
        cid = parse_uuid(conversation_id)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversation_summaries WHERE conversation_id = $1", cid
            )
        return _summary(row) if row is not None else None

    async def save_summary(
        self, conversation_id: str, text: str, covers_up_to_seq: int, message_count: int
    ) -> Summary:
        cid = parse_uuid(conversation_id)
        check_text(text, "summary text")
        _check_range(covers_up_to_seq, "covers_up_to_seq", 0, _MAX_SEQ)
        _check_range(message_count, "message_count", 0, _MAX_SEQ)
        async with self._connection() as conn:
            try:
                # Two writers racing (a redelivered turn, a second replica): the one covering more stays.
                row = await conn.fetchrow(
                    "INSERT INTO conversation_summaries AS s "
                    "(conversation_id, text, covers_up_to_seq, message_count) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (conversation_id) DO UPDATE SET text = EXCLUDED.text, "
                    "  covers_up_to_seq = EXCLUDED.covers_up_to_seq, message_count = EXCLUDED.message_count, "
                    "  updated_at = now() "
                    "WHERE s.covers_up_to_seq <= EXCLUDED.covers_up_to_seq "
                    f"RETURNING {_SUMMARY_COLUMNS}",
                    cid,
                    text,
                    covers_up_to_seq,
                    message_count,
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise NotFoundError(f"conversation {cid} not found") from exc
            if row is None:  # a stored summary already covers more
                row = await conn.fetchrow(
                    f"SELECT {_SUMMARY_COLUMNS} FROM conversation_summaries WHERE conversation_id = $1", cid
                )
        if row is None:
            raise ConflictError(f"the summary of conversation {cid} was deleted meanwhile")
        return _summary(row)

    # -- entity state ----------------------------------------------------------------------------------

    async def update_entities(
        self, conversation_id: str, turn_id: str, event_id: str, updates: Sequence[EntityUpdate]
    ) -> list[EntityValue]:
        cid = parse_uuid(conversation_id)
        check_identifier(event_id, "event_id")
        if turn_id:
            check_identifier(turn_id, "turn_id")
        wanted = _check_entity_updates(updates)
        if not wanted:
            return []
        types = [u.entity_type for u in wanted]
        async with self._connection() as conn, conn.transaction():
            # Locking the conversation serialises entity updates of one conversation, so the previous
            # values read below are the ones replaced (two turns setting a type for the first time at
            # once would otherwise both log "first set"). The ledger row makes the event count once.
            new = await conn.fetchval(
                "WITH c AS (SELECT id FROM conversations WHERE id = $2 FOR NO KEY UPDATE) "
                "INSERT INTO entity_events (event_id, conversation_id, turn_id) SELECT $1, c.id, $3 FROM c "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                event_id,
                cid,
                turn_id,
            )
            if new is None:
                if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM conversations WHERE id = $1)", cid):
                    raise NotFoundError(f"conversation {cid} not found")
                rows = await conn.fetch(  # already applied: report the current values, change nothing
                    f"SELECT {_ENTITY_COLUMNS} FROM entity_state "
                    "WHERE conversation_id = $1 AND entity_type = ANY($2::text[])",
                    cid,
                    types,
                )
            else:
                rows = await conn.fetch(
                    _UPDATE_ENTITIES_SQL,
                    cid,
                    types,
                    [u.value for u in wanted],
                    [_json_object(u.attributes, "attributes") for u in wanted],
                    turn_id,
                    event_id,
                )
        order = {t: i for i, t in enumerate(types)}
        return sorted((_entity(r) for r in rows), key=lambda e: order[e.entity_type])

    async def current_entities(
        self,
        conversation_id: str,
        entity_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        limit: int = 50,
    ) -> list[EntityValue]:
        cid = parse_uuid(conversation_id)
        if entity_type is not None:
            check_identifier(entity_type, "entity_type")
        contains = _json_object(attributes, "attributes", MAX_JSON_BYTES) if attributes is not None else None
        _check_range(limit, "limit", 0, MAX_ENTITY_LIMIT)
        if limit == 0:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_ENTITY_COLUMNS} FROM entity_state "
                "WHERE conversation_id = $1 AND ($2::text IS NULL OR entity_type = $2::text) "
                "  AND ($3::jsonb IS NULL OR attributes @> $3::jsonb) "
                "ORDER BY updated_at DESC, entity_type LIMIT $4",
                cid,
                entity_type,
                contains,
                limit,
            )
        return [_entity(r) for r in rows]

    async def entity_history(
        self, conversation_id: str, entity_type: str | None = None
    ) -> list[EntityChange]:
        cid = parse_uuid(conversation_id)
        if entity_type is not None:
            check_identifier(entity_type, "entity_type")
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_CHANGE_COLUMNS} FROM entity_changes "
                "WHERE conversation_id = $1 AND ($2::text IS NULL OR entity_type = $2::text) ORDER BY id",
                cid,
                entity_type,
            )
        return [_change(r) for r in rows]

    # -- profiles --------------------------------------------------------------------------------------

    async def get_profile(self, tenant_id: str, user_id: str) -> UserProfile:
        owner = check_principal(tenant_id, user_id)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_PROFILE_COLUMNS} FROM users WHERE tenant_id = $1 AND user_id = $2",
                owner.tenant_id,
                owner.user_id,
            )
        return _profile(row) if row is not None else UserProfile(owner.tenant_id, owner.user_id)

    async def upsert_profile(self, profile: UserProfile) -> UserProfile:
        owner = check_principal(profile.tenant_id, profile.user_id)
        display_name = _check_bounded(profile.display_name, "display_name", MAX_DISPLAY_NAME)
        timezone = _check_timezone(profile.timezone)
        locale = _check_locale(profile.locale)
        preferences = _json_object(profile.preferences, "preferences", MAX_JSON_BYTES)
        async with self._connection() as conn:
            try:
                row = await conn.fetchrow(
                    "WITH tenant AS (INSERT INTO tenants (id) VALUES ($1) ON CONFLICT DO NOTHING) "
                    "INSERT INTO users (tenant_id, user_id, display_name, timezone, locale, preferences, "
                    "  updated_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, now()) "
                    "ON CONFLICT (tenant_id, user_id) DO UPDATE SET display_name = EXCLUDED.display_name, "
                    "  timezone = EXCLUDED.timezone, locale = EXCLUDED.locale, "
                    "  preferences = EXCLUDED.preferences, updated_at = now() "
                    f"RETURNING {_PROFILE_COLUMNS}",
                    owner.tenant_id,
                    owner.user_id,
                    display_name,
                    timezone,
                    locale,
                    preferences,
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise ConflictError(f"tenant {owner.tenant_id!r} was deleted meanwhile; retry") from exc
        return _profile(row)

    # -- long-term memory ------------------------------------------------------------------------------

    async def remember(
        self,
        tenant_id: str,
        user_id: str,
        text: str,
        kind: str,
        embedding: Sequence[float],
        metadata: Mapping[str, Any] | None = None,
        conversation_id: str = "",
    ) -> MemoryItem:
        owner = check_principal(tenant_id, user_id)
        _check_bounded(text, "text", MAX_MEMORY_TEXT, required=True)
        check_identifier(kind, "kind")
        if len(kind) > MAX_KIND:
            raise InvalidInputError(f"kind is longer than {MAX_KIND} characters")
        vector = _check_embedding(embedding)
        meta = _json_object(metadata, "metadata", MAX_JSON_BYTES)
        cid = parse_uuid(conversation_id) if conversation_id else None
        select = (
            f"SELECT {_MEMORY_COLUMNS} FROM memories m WHERE m.tenant_id = $1 AND m.user_id = $2 "
            "AND m.kind = $3 AND md5(m.text) = md5($4) AND m.text = $4"
        )
        args = (owner.tenant_id, owner.user_id, kind, text)
        async with self._connection() as conn:
            row = await conn.fetchrow(select, *args)
            if row is not None:
                return _memory(row)
            if cid is not None and not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM conversations "
                "WHERE id = $1 AND tenant_id = $2 AND user_id = $3)",
                cid,
                owner.tenant_id,
                owner.user_id,
            ):
                raise NotFoundError(f"conversation {cid} not found")
            try:
                row = await conn.fetchrow(
                    _ENSURE_OWNER + "INSERT INTO memories AS m "
                    "(tenant_id, user_id, kind, text, metadata, conversation_id, embedding) "
                    "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::real[]) "
                    "ON CONFLICT (tenant_id, user_id, kind, md5(text)) DO NOTHING "
                    f"RETURNING {_MEMORY_COLUMNS}",
                    *args,
                    meta,
                    cid,
                    vector,
                )
            except asyncpg.ForeignKeyViolationError as exc:
                raise ConflictError("the conversation or user was deleted meanwhile; retry") from exc
            if row is None:  # stored by a concurrent call
                row = await conn.fetchrow(select, *args)
        if row is None:
            raise ConflictError("the memory was deleted while being stored; retry")
        return _memory(row)

    async def search_memories(
        self, tenant_id: str, user_id: str, embedding: Sequence[float], limit: int, min_score: float = -1.0
    ) -> list[MemoryItem]:
        owner = check_principal(tenant_id, user_id)
        vector = _check_embedding(embedding)
        _check_range(limit, "limit", 0, MAX_SEARCH_LIMIT)
        if not (isinstance(min_score, (int, float)) and -1.0 <= min_score <= 1.0):
            raise InvalidInputError(f"min_score must be between -1 and 1, got {min_score!r}")
        if limit == 0 or not any(vector):  # a text without features has no direction: nothing is similar
            return []
        args = (owner.tenant_id, owner.user_id, vector, limit, float(min_score))
        async with self._connection() as conn:
            if await self._vector_column(conn) == len(vector):
                async with conn.transaction(readonly=True):
                    # Should the planner pick the HNSW index (whose scan is global, then filtered by
                    # user), let it find `limit` rows: a candidate list at least that long, and on
                    # pgvector 0.8+ scanning on until enough rows of this user passed the filter.
                    await conn.execute(
                        "SELECT set_config('hnsw.ef_search', $1, true), CASE WHEN $2::bool "
                        "  THEN set_config('hnsw.iterative_scan', 'strict_order', true) END",
                        str(max(40, limit)),
                        self._iterative_scan,
                    )
                    rows = await conn.fetch(SEARCH_PGVECTOR_SQL, *args)
            else:
                rows = await conn.fetch(SEARCH_ARRAY_SQL, *args)
        return [_memory(r) for r in rows]

    # -- feedback --------------------------------------------------------------------------------------

    async def record_feedback(self, tenant_id: str, user_id: str, feedback: Feedback) -> Feedback:
        owner = check_principal(tenant_id, user_id)
        cid = parse_uuid(feedback.conversation_id, "feedback.conversation_id")
        fid = (
            parse_uuid(feedback.feedback_id, "feedback.feedback_id") if feedback.feedback_id else uuid.uuid4()
        )
        if feedback.turn_id:
            check_identifier(feedback.turn_id, "feedback.turn_id")
        if feedback.rating is not None:
            _check_range(feedback.rating, "feedback.rating", 1, 5)
        if feedback.resolved is not None and not isinstance(feedback.resolved, bool):
            raise InvalidInputError(
                f"feedback.resolved must be true, false or unset, got {feedback.resolved!r}"
            )
        _check_bounded(feedback.comment, "feedback.comment", MAX_COMMENT)
        if feedback.rating is None and feedback.resolved is None and not feedback.comment.strip():
            raise InvalidInputError("feedback needs a rating, resolved or a comment")
        owned = "SELECT id FROM conversations WHERE id = $2 AND tenant_id = $3 AND user_id = $4"
        async with self._connection() as conn:
            # Ownership and insert in one statement: nothing lands on a conversation that is not theirs.
            row = await conn.fetchrow(
                "INSERT INTO feedback (id, conversation_id, turn_id, rating, resolved, comment) "
                f"SELECT $1, c.id, $5, $6, $7, $8 FROM ({owned}) c "
                f"ON CONFLICT (id) DO NOTHING RETURNING {_FEEDBACK_COLUMNS}",
                fid,
                cid,
                owner.tenant_id,
                owner.user_id,
                feedback.turn_id,
                feedback.rating,
                feedback.resolved,
                feedback.comment,
            )
            if row is None and feedback.feedback_id:  # a retry of feedback already stored
                row = await conn.fetchrow(
                    f"SELECT {_FEEDBACK_COLUMNS} FROM feedback "
                    f"WHERE id = $1 AND conversation_id IN ({owned})",
                    fid,
                    cid,
                    owner.tenant_id,
                    owner.user_id,
                )
        if row is None:
            raise NotFoundError(f"conversation {cid} not found")
        return _feedback(row)

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
            profile = await conn.fetchrow(
                f"SELECT {_PROFILE_COLUMNS} FROM users WHERE tenant_id = $1 AND user_id = $2", *args
            )
            memories = await conn.fetch(
                f"SELECT {_MEMORY_COLUMNS} FROM memories m WHERE m.tenant_id = $1 AND m.user_id = $2 "
                "ORDER BY m.created_at, m.id",
                *args,
            )
            entities = await conn.fetch(
                f"SELECT {_ENTITY_COLUMNS} FROM entity_state WHERE conversation_id IN ({owned}) "
                "ORDER BY conversation_id, updated_at, entity_type",
                *args,
            )
            changes = await conn.fetch(
                f"SELECT {_CHANGE_COLUMNS} FROM entity_changes WHERE conversation_id IN ({owned}) "
                "ORDER BY conversation_id, id",
                *args,
            )
            feedback = await conn.fetch(
                f"SELECT {_FEEDBACK_COLUMNS} FROM feedback WHERE conversation_id IN ({owned}) "
                "ORDER BY conversation_id, created_at, id",
                *args,
            )
            summaries = await conn.fetch(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversation_summaries WHERE conversation_id IN ({owned}) "
                "ORDER BY conversation_id",
                *args,
            )
        return UserExport(
            conversations=[_conversation(r) for r in conversations],
            messages=[_message(r) for r in messages],
            states=[_state(str(r["conversation_id"]), r) for r in states],
            events=[_event(r) for r in events],
            profile=_profile(profile) if profile is not None else None,
            memories=[_memory(r) for r in memories],
            entities=[_entity(r) for r in entities],
            entity_history=[_change(r) for r in changes],
            feedback=[_feedback(r) for r in feedback],
            summaries=[_summary(r) for r in summaries],
        )

    async def delete_user(self, tenant_id: str, user_id: str) -> UserDeletion:
        owner = check_principal(tenant_id, user_id)
        args = (owner.tenant_id, owner.user_id)
        async with self._connection() as conn, conn.transaction():
            # Locking the user and their conversations first makes concurrent writes for them wait, then
            # fail cleanly (a foreign key violation) instead of leaving rows behind.
            await conn.execute("SELECT 1 FROM users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE", *args)
            ids = await conn.fetchval(
                "SELECT coalesce(array_agg(id), '{}') FROM ("
                "  SELECT id FROM conversations WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE) owned",
                *args,
            )
            counts: dict[str, int] = {}
            # Children first, so each count is what went; the cascades would remove the same rows.
            for table in (
                "feedback",
                "conversation_summaries",
                "entity_changes",
                "entity_state",
                "entity_events",
                "messages",
                "dialog_state",
                "turn_events",
                "conversations",
            ):
                key = "id" if table == "conversations" else "conversation_id"
                counts[table] = await conn.fetchval(
                    f"WITH gone AS (DELETE FROM {table} WHERE {key} = ANY($1::uuid[]) RETURNING 1) "
                    "SELECT count(*) FROM gone",
                    ids,
                )
            for table in ("memories", "users"):
                counts[table] = await conn.fetchval(
                    f"WITH gone AS (DELETE FROM {table} WHERE tenant_id = $1 AND user_id = $2 RETURNING 1) "
                    "SELECT count(*) FROM gone",
                    *args,
                )
        return UserDeletion(
            conversations=counts["conversations"],
            messages=counts["messages"],
            states=counts["dialog_state"],
            events=counts["turn_events"],
            memories=counts["memories"],
            entities=counts["entity_state"] + counts["entity_changes"],
            feedback=counts["feedback"],
            profiles=counts["users"],
        )

    # -- retention -------------------------------------------------------------------------------------

    async def purge_expired(self, older_than: datetime) -> int:
        """Delete history older than ``older_than``: messages, logged turn events, entity changes and the
        entity-event ledger. Current state, summaries, profiles, memories and feedback stay. Deletes run
        in batches of :data:`PURGE_BATCH` rows, each its own transaction."""
        _check_aware(older_than, "older_than")
        deleted = 0
        async with self._connection() as conn:
            for table, key, column in (
                ("messages", "id", "created_at"),
                ("turn_events", "event_id", "occurred_at"),
                ("entity_changes", "id", "changed_at"),
                ("entity_events", "event_id", "applied_at"),
            ):
                while True:
                    batch = await conn.fetchval(
                        f"WITH gone AS (DELETE FROM {table} WHERE {key} IN ("
                        f"  SELECT {key} FROM {table} WHERE {column} < $1 LIMIT $2) RETURNING 1) "
                        "SELECT count(*) FROM gone",
                        older_than,
                        PURGE_BATCH,
                    )
                    deleted += batch
                    if batch < PURGE_BATCH:
                        break
        return deleted
