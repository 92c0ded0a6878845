-- hawkBit DDI (docs/protocols/hawkbit-ddi.md). `ddi_tokens` holds the SHA-256 of each DDI token:
-- a TargetToken names one device of a product (kind 'target'), a GatewayToken a whole product
-- (kind 'gateway', device ''); making a new one replaces the old one for the same device or
-- product. `ddi_products` holds a product's DDI options (anonymous polls, tokens on downloads).
-- `ddi_actions` holds each action: otter's offer of one release to one device, with the id the
-- device reports against; at most one is open per device. Times are Unix seconds.
CREATE TABLE ddi_tokens (
    token_sha256  TEXT PRIMARY KEY,
    product       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    device        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX ddi_tokens_holder ON ddi_tokens (product, kind, device);

CREATE TABLE ddi_products (
    product          TEXT PRIMARY KEY,
    anonymous        BIGINT NOT NULL DEFAULT 0,
    token_downloads  BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE ddi_actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    product     TEXT NOT NULL,
    device      TEXT NOT NULL,
    version     TEXT NOT NULL,
    state       TEXT NOT NULL,
    execution   TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX ddi_actions_device ON ddi_actions (product, device, state, id);
CREATE UNIQUE INDEX ddi_actions_one_open ON ddi_actions (product, device) WHERE state = 'open';
