-- When devices update and when they ask: a maintenance window per product channel (an IANA time
-- zone and weekly slots as JSON text; outside them only mandatory releases are offered) and a
-- poll hint per product (the native check's nextCheckSeconds). Changes bump catalog_versions so
-- every node's check index picks them up.
-- (PostgreSQL twin of migrations/sqlite/0011_schedules.sql.)
CREATE TABLE channel_windows (
    product     TEXT COLLATE "C" NOT NULL,
    channel     TEXT COLLATE "C" NOT NULL,
    spec        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (product, channel)
);

CREATE TABLE poll_hints (
    product           TEXT COLLATE "C" PRIMARY KEY,
    interval_seconds  BIGINT NOT NULL,
    jitter_percent    BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
