-- The device registry (issue 14). What a device's last check-in said about how it spoke
-- (protocol, remote address), and what an operator set: an assigned channel that replaces the
-- one the device asks for, a pinned version, tags (a table of their own so filters and bulk
-- tagging are single statements).
-- (PostgreSQL twin of migrations/sqlite/0009_device_registry.sql.)
ALTER TABLE devices ADD COLUMN protocol TEXT;
ALTER TABLE devices ADD COLUMN remote_addr TEXT;
ALTER TABLE devices ADD COLUMN assigned_channel TEXT;
ALTER TABLE devices ADD COLUMN pinned_version TEXT;

CREATE TABLE device_tags (
    product  TEXT COLLATE "C" NOT NULL,
    device   TEXT COLLATE "C" NOT NULL,
    tag      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (product, device, tag)
);
CREATE INDEX device_tags_by_tag ON device_tags (product, tag);

-- Admission: a product is open unless its 'all' rule denies (the allowlist mode). Keyed products
-- (ota-backend firmwares) used to be closed by having no 'all' rule; say so explicitly now.
INSERT INTO device_access (product, device, access, updated_at)
SELECT product, 'all', 'deny', created_at FROM product_keys
WHERE product NOT IN (SELECT product FROM device_access WHERE device = 'all');
