-- Signed releases: each product's chain of root documents (DSSE envelopes, kept verbatim and
-- forever, so devices can walk from any version), and per release the signed manifest
-- (envelope verbatim, with the security counter and expiry it carries) and the manifest
-- contract's binarySignature.
-- (PostgreSQL twin of migrations/sqlite/0006_signed_releases.sql.)
CREATE TABLE product_roots (
    product     TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    envelope    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (product, version)
);

CREATE TABLE release_signatures (
    product           TEXT COLLATE "C" NOT NULL,
    version           TEXT COLLATE "C" NOT NULL,
    manifest          TEXT,
    security_counter  BIGINT,
    expires_at        BIGINT,
    binary_signature  TEXT,
    PRIMARY KEY (product, version)
);
