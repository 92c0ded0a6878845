-- One clock for every catalogue change: each bump takes the next tick and stamps the product's
-- row with it, so a node polls "what changed after tick N" through an index instead of reading
-- every product's version (which cost a core's third at 31k products). Bumping locks the clock's
-- one row until commit, so ticks become visible in order and a poll never skips one.
CREATE TABLE catalog_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    tick  BIGINT NOT NULL
);
INSERT INTO catalog_clock (id, tick) VALUES (1, 0);
ALTER TABLE catalog_versions ADD COLUMN changed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX catalog_versions_changed ON catalog_versions (changed);
