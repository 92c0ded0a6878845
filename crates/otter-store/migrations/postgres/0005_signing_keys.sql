-- Public keys a product's releases must be signed with, by kind (e.g. 'iotawatt-ed25519': the
-- key IotaWatt devices verify release blobs with). Publishing checks the signature.
-- (PostgreSQL twin of migrations/sqlite/0005_signing_keys.sql.)
CREATE TABLE product_signing_keys (
    product     TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (product, kind)
);
