-- Delta updates: a product's policy (which patches to build after a publish; none without a row)
-- and the patches built from a base release to a target release. A ready patch's bytes are an
-- artifact (its sha256 names the blob), so it is served and stored like any image.
CREATE TABLE delta_policies (
    product             TEXT PRIMARY KEY,
    format              TEXT NOT NULL,
    from_last           BIGINT,
    from_version        TEXT,
    max_share_percent   BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE deltas (
    product         TEXT NOT NULL,
    to_version      TEXT NOT NULL,
    from_version    TEXT NOT NULL,
    format          TEXT NOT NULL,
    state           TEXT NOT NULL,
    size            BIGINT,
    sha256          TEXT,
    message         TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (product, to_version, from_version, format)
);
