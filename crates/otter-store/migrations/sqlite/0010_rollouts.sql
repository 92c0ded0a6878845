-- Staged rollouts (docs/rollouts.md). `rollouts` holds each rollout's plan and where it stands;
-- `in_flight` counts the devices holding a concurrency slot, taken and given back by conditional
-- UPDATEs in the same transaction as the device row they belong to, so the cap holds however
-- many nodes share the database. `rollout_devices` holds each device a rollout took in: the
-- stage that took it in, its attempt's state and its failures (counted here, not per node).
-- Times are Unix seconds; stages and policy are JSON text.
CREATE TABLE rollouts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    product           TEXT NOT NULL,
    version           TEXT NOT NULL,
    channel           TEXT NOT NULL,
    stages            TEXT NOT NULL,
    policy            TEXT NOT NULL,
    current_stage     BIGINT NOT NULL,
    state             TEXT NOT NULL,
    reason            TEXT,
    counted_from      BIGINT NOT NULL,
    start_at          BIGINT,
    stage_started_at  BIGINT NOT NULL,
    in_flight         BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX rollouts_product ON rollouts (product, id);
-- At most one rollout that is not over per (product, channel).
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (product, channel)
    WHERE state IN ('scheduled', 'running', 'paused');

CREATE TABLE rollout_devices (
    rollout        BIGINT NOT NULL REFERENCES rollouts (id),
    device         TEXT NOT NULL,
    stage          BIGINT NOT NULL,
    state          TEXT NOT NULL,
    failures       BIGINT NOT NULL DEFAULT 0,
    penalty_until  BIGINT,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (rollout, device)
);
CREATE INDEX rollout_devices_state ON rollout_devices (rollout, state, updated_at);
