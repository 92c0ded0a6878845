-- User accounts for the admin web UI, and their login sessions. A user holds a role like an API
-- token does; the password is kept only as an argon2id PHC string. A session is kept as the
-- SHA-256 hex of its cookie secret (the secret itself is never stored), so a copy of the
-- database opens no session.
CREATE TABLE users (
    name                 TEXT PRIMARY KEY,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    disabled             BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    password_changed_at  BIGINT NOT NULL,
    last_login_at        BIGINT
);
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_name     TEXT NOT NULL REFERENCES users (name),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    revoked_at    BIGINT,
    remote        TEXT
);
CREATE INDEX sessions_user_name ON sessions (user_name);
