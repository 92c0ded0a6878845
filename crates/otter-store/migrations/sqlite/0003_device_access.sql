-- Products that devices reach through a keyed protocol (ota-backend's /v1 API): the SHA-256 of
-- the product's key, and which devices may use it (the "firewall"; device 'all' is the
-- wildcard). Changes bump catalog_versions so every node's check index picks them up.
CREATE TABLE product_keys (
    product     TEXT PRIMARY KEY,
    key_sha256  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE device_access (
    product     TEXT NOT NULL,
    device      TEXT NOT NULL,
    access      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (product, device)
);
