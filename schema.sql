-- linkbroker's schema, as an ordered list of migrations.
--
-- Each "-- migration N" section runs once, in order, in its own transaction, and
-- PRAGMA user_version records the last one applied; a database at version N skips
-- sections 1..N. Nothing here drops or rewrites data, so applying it to any
-- database of any version is safe.

-- migration 1: links, in the shape the original edge design made them, and the
-- instance's own secrets.
CREATE TABLE IF NOT EXISTS links (
    slug TEXT PRIMARY KEY,
    destination_url TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    clicks INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS links_by_destination ON links (destination_url);
CREATE INDEX IF NOT EXISTS links_by_created ON links (created_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Names this database in cache keys, so that a cache folder never serves links
-- from another database.
INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))));
-- Salts the hashes that stand in for visitor addresses.
INSERT OR IGNORE INTO meta (key, value) VALUES ('visitor_salt', lower(hex(randomblob(16))));
