-- otter's initial schema. Portable on purpose: the same queries run on PostgreSQL, so times are
-- Unix seconds (BIGINT), booleans are 0/1 integers and lists/objects are JSON text.

CREATE TABLE products (
    name        TEXT PRIMARY KEY,
    scheme      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY,
    sha1        TEXT NOT NULL,
    md5         TEXT NOT NULL,
    size        BIGINT NOT NULL,
    filename    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX artifacts_sha1 ON artifacts (sha1);
CREATE INDEX artifacts_md5 ON artifacts (md5);

CREATE TABLE releases (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    product             TEXT NOT NULL REFERENCES products (name),
    version             TEXT NOT NULL,
    artifact            TEXT NOT NULL REFERENCES artifacts (sha256),
    channels            TEXT NOT NULL,
    release_date        TEXT NOT NULL,
    min_source_version  TEXT,
    mandatory           BIGINT NOT NULL,
    deprecated          BIGINT NOT NULL,
    yanked              BIGINT NOT NULL,
    title               TEXT,
    summary             TEXT,
    release_notes_url   TEXT,
    metadata            TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    UNIQUE (product, version)
);
CREATE INDEX releases_artifact ON releases (artifact);

CREATE TABLE devices (
    product          TEXT NOT NULL,
    id               TEXT NOT NULL,
    current_version  TEXT,
    current_hash     TEXT,
    channel          TEXT NOT NULL,
    first_seen       BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL,
    PRIMARY KEY (product, id)
);

CREATE TABLE update_reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product     TEXT NOT NULL,
    device      TEXT NOT NULL,
    version     TEXT NOT NULL,
    state       TEXT NOT NULL,
    message     TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX update_reports_product_device ON update_reports (product, device, id);

CREATE TABLE upload_sessions (
    id          TEXT PRIMARY KEY,
    filename    TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    received    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE admin_tokens (
    token_sha256  TEXT PRIMARY KEY,
    label         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
