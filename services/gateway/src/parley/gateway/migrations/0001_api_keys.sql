-- API keys of tenants. Only a SHA-256 digest of each key is stored; key_id is the public part of the key
-- (pk_<key_id>_<secret>) and finds the row.
CREATE TABLE IF NOT EXISTS gateway_api_keys (
    key_id       text        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    name         text        NOT NULL DEFAULT '',
    digest       bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT gateway_api_keys_digest_length CHECK (octet_length(digest) = 32)
);

CREATE INDEX IF NOT EXISTS gateway_api_keys_by_tenant ON gateway_api_keys (tenant_id, created_at);
