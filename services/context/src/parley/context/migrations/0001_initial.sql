-- Context service, schema version 1: conversations, their messages, versioned dialog state and the
-- append-only log of the turn events context consumed.

CREATE TABLE IF NOT EXISTS conversations (
    id         uuid        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every per-user operation (export, delete, search) starts from the owner.
CREATE INDEX IF NOT EXISTS conversations_owner_idx ON conversations (tenant_id, user_id, created_at);

CREATE TABLE IF NOT EXISTS messages (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn_id         text        NOT NULL DEFAULT '',
    role            text        NOT NULL CHECK (role IN ('user', 'bot')),
    text            text        NOT NULL,
    -- The event that produced the message: appending the same event twice stores it once.
    event_id        text        NOT NULL UNIQUE,
    -- Insertion order; created_at alone is not unique within a transaction.
    seq             bigserial   NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Paging (conversation_id, seq > token) and "last N messages" both walk this index.
CREATE UNIQUE INDEX IF NOT EXISTS messages_conversation_seq_idx ON messages (conversation_id, seq);

-- Memory search; queries must use the same expression to hit it.
CREATE INDEX IF NOT EXISTS messages_text_fts_idx ON messages USING gin (to_tsvector('simple', text));

CREATE TABLE IF NOT EXISTS dialog_state (
    conversation_id uuid        PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    version         bigint      NOT NULL CHECK (version > 0),
    data            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS turn_events (
    event_id        text        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn_id         text        NOT NULL DEFAULT '',
    type            text        NOT NULL,
    -- The serialized parley.turn.v1.TurnEvent as consumed.
    payload         bytea       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS turn_events_conversation_idx ON turn_events (conversation_id, occurred_at);
