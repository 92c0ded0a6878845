-- THiNX-style device API: per-device auto-update and what a device says about itself (MAC,
-- alias, platform… as a JSON object), device API keys per product (SHA-256 of the key), and
-- one-time download tokens (SHA-256 of the token; valid 24 h from issue and 1 h from first use,
-- spent by a complete download).
ALTER TABLE devices ADD COLUMN auto_update BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN attributes TEXT;

CREATE TABLE api_keys (
    key_sha256  TEXT PRIMARY KEY,
    product     TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_product ON api_keys (product);

CREATE TABLE one_time_tokens (
    token_sha256   TEXT PRIMARY KEY,
    product        TEXT NOT NULL,
    device         TEXT NOT NULL,
    artifact       TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    first_used_at  BIGINT,
    spent_at       BIGINT
);
CREATE INDEX one_time_tokens_expires ON one_time_tokens (expires_at);
