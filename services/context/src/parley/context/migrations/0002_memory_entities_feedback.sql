-- Context service, schema version 2: tenants and users (with their profile), a message count per
-- conversation, entity state with its history, long-term memories with embeddings, feedback and rolling
-- conversation summaries. Everything that belongs to one conversation goes with it (ON DELETE CASCADE).

CREATE TABLE IF NOT EXISTS tenants (
    id         text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A user exists from their first conversation, memory or profile write; the row carries the profile.
CREATE TABLE IF NOT EXISTS users (
    tenant_id    text        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id      text        NOT NULL,
    display_name text        NOT NULL DEFAULT '',
    -- IANA name, '' for UTC (validated by the service: PostgreSQL's zone list may differ from Python's).
    timezone     text        NOT NULL DEFAULT '',
    locale       text        NOT NULL DEFAULT '',
    preferences  jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(preferences) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- When the profile was last written; NULL while none was (the row then only marks the user).
    updated_at   timestamptz,
    PRIMARY KEY (tenant_id, user_id)
);

-- Owners of conversations stored before this version.
INSERT INTO tenants (id) SELECT DISTINCT tenant_id FROM conversations ON CONFLICT DO NOTHING;
INSERT INTO users (tenant_id, user_id) SELECT DISTINCT tenant_id, user_id FROM conversations
ON CONFLICT DO NOTHING;

ALTER TABLE conversations
    ADD CONSTRAINT conversations_owner_fk FOREIGN KEY (tenant_id, user_id)
    REFERENCES users (tenant_id, user_id) ON DELETE CASCADE;

-- Messages appended to the conversation in all, so a turn reads its length from one row instead of
-- counting a history that keeps growing. A retention purge does not lower it: it stays comparable with
-- the count a summary covers (conversation_summaries.message_count).
ALTER TABLE conversations ADD COLUMN message_count bigint NOT NULL DEFAULT 0;

UPDATE conversations c SET message_count = m.n
FROM (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) m
WHERE c.id = m.conversation_id;

-- Once per INSERT statement, with only the rows really inserted (ON CONFLICT DO NOTHING skips are not
-- in the transition table). Conversations are updated in id order, so concurrent writers lock them in
-- the same order and cannot deadlock.
CREATE FUNCTION context_count_messages() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    added record;
BEGIN
    FOR added IN
        SELECT conversation_id, count(*) AS n FROM inserted GROUP BY conversation_id ORDER BY conversation_id
    LOOP
        UPDATE conversations SET message_count = message_count + added.n WHERE id = added.conversation_id;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_count AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION context_count_messages();

-- Retention deletes by age; BRIN indexes are tiny and these columns grow with insertion order.
CREATE INDEX IF NOT EXISTS messages_created_at_brin ON messages USING brin (created_at);
CREATE INDEX IF NOT EXISTS turn_events_occurred_at_brin ON turn_events USING brin (occurred_at);

-- The current value of each tracked entity type in a conversation.
CREATE TABLE IF NOT EXISTS entity_state (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    entity_type     text        NOT NULL,
    value           text        NOT NULL,
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    turn_id         text        NOT NULL DEFAULT '',
    -- The last event that set it.
    event_id        text        NOT NULL,
    -- How many turns mentioned it.
    mentions        integer     NOT NULL DEFAULT 1 CHECK (mentions > 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, entity_type)
);

-- "Most recently updated first", walked with a LIMIT by each turn.
CREATE INDEX IF NOT EXISTS entity_state_recent_idx ON entity_state (conversation_id, updated_at DESC, entity_type);
-- Attribute queries (attributes @> '{"kind": "order"}').
CREATE INDEX IF NOT EXISTS entity_state_attributes_idx ON entity_state USING gin (attributes jsonb_path_ops);

-- The events already folded into entity state: a redelivered event finds its id here and changes nothing
-- (mentions included, which a value-only check could not protect).
CREATE TABLE IF NOT EXISTS entity_events (
    event_id        text        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn_id         text        NOT NULL DEFAULT '',
    applied_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS entity_events_conversation_idx ON entity_events (conversation_id);
CREATE INDEX IF NOT EXISTS entity_events_applied_at_brin ON entity_events USING brin (applied_at);

-- Append-only: one row each time an entity is first set or its value changes.
CREATE TABLE IF NOT EXISTS entity_changes (
    id              bigserial   PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    entity_type     text        NOT NULL,
    previous_value  text,
    value           text,
    attributes      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    turn_id         text        NOT NULL DEFAULT '',
    event_id        text        NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, entity_type)
);

CREATE INDEX IF NOT EXISTS entity_changes_conversation_idx ON entity_changes (conversation_id, entity_type, id);
CREATE INDEX IF NOT EXISTS entity_changes_changed_at_brin ON entity_changes USING brin (changed_at);

-- Long-term memory: facts about a user that outlive a conversation. The embedding is always stored as
-- real[] (cosine computed in SQL); where the server has pgvector, a generated vector column and an HNSW
-- index are added below and searches use them.
CREATE TABLE IF NOT EXISTS memories (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       text        NOT NULL,
    user_id         text        NOT NULL,
    text            text        NOT NULL CHECK (text <> ''),
    kind            text        NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    -- Where it was learnt; the memory outlives the conversation.
    conversation_id uuid        REFERENCES conversations (id) ON DELETE SET NULL,
    embedding       real[]      NOT NULL CHECK (cardinality(embedding) > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, user_id) ON DELETE CASCADE
);

-- The same fact of the same user and kind is stored once (md5: texts may be longer than a btree entry).
CREATE UNIQUE INDEX IF NOT EXISTS memories_dedup_idx ON memories (tenant_id, user_id, kind, md5(text));
CREATE INDEX IF NOT EXISTS memories_owner_idx ON memories (tenant_id, user_id, created_at);
CREATE INDEX IF NOT EXISTS memories_conversation_idx ON memories (conversation_id);

-- pgvector when the server has it (installed already, or available and ours to create: creating it needs
-- a superuser unless an administrator did). 256 dimensions is the context service's embedder; memories
-- of other sizes keep a NULL vector and are searched by the real[] path, and an all-zero embedding (a
-- text without features) has no direction, so no vector, and is never similar to anything. A server
-- that gets pgvector later needs a new migration to add the column.
DO $pgvector$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
            RAISE NOTICE 'pgvector is not available: memories are searched by cosine over real[]';
            RETURN;
        END IF;
        BEGIN
            CREATE EXTENSION vector;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'no privilege to create pgvector: memories are searched by cosine over real[]';
            RETURN;
        END;
    END IF;
    ALTER TABLE memories ADD COLUMN embedding_vec vector(256) GENERATED ALWAYS AS (
        CASE
            WHEN cardinality(embedding) = 256 AND embedding <> array_fill(0::real, ARRAY[256])
            THEN embedding::vector(256)
        END
    ) STORED;
    CREATE INDEX memories_embedding_hnsw ON memories USING hnsw (embedding_vec vector_cosine_ops);
END
$pgvector$;

CREATE TABLE IF NOT EXISTS feedback (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- '' for feedback on the whole conversation.
    turn_id         text        NOT NULL DEFAULT '',
    rating          smallint    CHECK (rating BETWEEN 1 AND 5),
    resolved        boolean,
    comment         text        NOT NULL DEFAULT '' CHECK (char_length(comment) <= 2000),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS feedback_conversation_idx ON feedback (conversation_id, created_at);

-- The rolling summary of messages older than the verbatim window; it only moves forward.
CREATE TABLE IF NOT EXISTS conversation_summaries (
    conversation_id  uuid        PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    text             text        NOT NULL,
    covers_up_to_seq bigint      NOT NULL CHECK (covers_up_to_seq >= 0),
    message_count    bigint      NOT NULL CHECK (message_count >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
