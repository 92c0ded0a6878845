-- A counter per product, bumped whenever its catalogue (the product or its releases) changes.
-- Every otter node polls it to rebuild its in-memory check index when another node published,
-- deprecated or yanked something. (PostgreSQL twin of migrations/sqlite/0002_catalog_versions.sql.)
CREATE TABLE catalog_versions (
    product  TEXT COLLATE "C" PRIMARY KEY,
    version  BIGINT NOT NULL
);
