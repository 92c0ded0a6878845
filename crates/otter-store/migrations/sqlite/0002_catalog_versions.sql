-- A counter per product, bumped whenever its catalogue (the product or its releases) changes.
-- Every otter node polls it to rebuild its in-memory check index when another node published,
-- deprecated or yanked something.
CREATE TABLE catalog_versions (
    product  TEXT PRIMARY KEY,
    version  BIGINT NOT NULL
);
