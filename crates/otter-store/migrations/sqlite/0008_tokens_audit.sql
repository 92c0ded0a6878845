-- API tokens with roles, and the audit log. Every admin token gets a unique name, a role, an
-- optional expiry, a revocation time and the time it was last used. The tokens that exist
-- already (the first-start token, "generated", and the configured one, "configured") become
-- admin tokens named by their label.
ALTER TABLE admin_tokens RENAME COLUMN label TO name;
-- Labels were not unique; a later duplicate (none that otter made) gets its hash's first digits.
UPDATE admin_tokens SET name = name || '-' || substr(token_sha256, 1, 8)
 WHERE EXISTS (SELECT 1 FROM admin_tokens o
                WHERE o.name = admin_tokens.name AND o.token_sha256 < admin_tokens.token_sha256);
CREATE UNIQUE INDEX admin_tokens_name ON admin_tokens (name);
ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE admin_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE admin_tokens ADD COLUMN revoked_at BIGINT;
ALTER TABLE admin_tokens ADD COLUMN last_used_at BIGINT;
-- Bumped in the same transaction as every change to admin_tokens but last use, so a node finds
-- out that it must reload its tokens by reading one row.
CREATE TABLE token_clock (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO token_clock (id, version) VALUES (1, 0);
-- Append-only: otter never updates or deletes a row.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    role        TEXT NOT NULL,
    remote      TEXT,
    request_id  TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    summary     TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
