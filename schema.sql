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

-- migration 2: clicks. Raw events are kept for the retention period; the per-day
-- counters and the totals on links are kept for good. links.clicks stays the human
-- count, as the edge design's column was.
--
-- The raw table has no index but its rowid: every click is an append, the cheapest
-- write SQLite has, and rows arrive in time order, so retention deletes from the
-- front. Questions about one link are answered by the counters.
CREATE TABLE IF NOT EXISTS clicks (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL,
    clicked_at TEXT NOT NULL,
    referrer_host TEXT,
    user_agent TEXT,
    is_bot INTEGER NOT NULL DEFAULT 0,
    bot_reason TEXT,
    visitor TEXT
);
CREATE TABLE IF NOT EXISTS daily_clicks (
    slug TEXT NOT NULL,
    day TEXT NOT NULL,
    human INTEGER NOT NULL DEFAULT 0,
    bot INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slug, day)
) WITHOUT ROWID;
-- Per day, where human clicks came from ('' for none) and why bots were bots.
CREATE TABLE IF NOT EXISTS daily_sources (
    slug TEXT NOT NULL,
    day TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('referrer', 'bot')),
    source TEXT NOT NULL,
    clicks INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (slug, day, kind, source)
) WITHOUT ROWID;
ALTER TABLE links ADD COLUMN bot_clicks INTEGER NOT NULL DEFAULT 0;

-- migration 3: API tokens, kept only as hashes. A revoked token keeps its row, so
-- its name and history stay readable.
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_used_at TEXT,
    revoked_at TEXT
);

-- migration 4: the life of a link. A deleted link keeps its row as a tombstone
-- (deleted_at), so that its slug is never handed out again and its statistics stay.
-- limit_used counts the human redirects granted since max_clicks was last set; the
-- request path increments it atomically, so the limit holds across workers.
-- Times are UTC in CURRENT_TIMESTAMP's form, 'YYYY-MM-DD HH:MM:SS'.
ALTER TABLE links ADD COLUMN redirect_status INTEGER NOT NULL DEFAULT 302;
ALTER TABLE links ADD COLUMN expires_at TEXT;
ALTER TABLE links ADD COLUMN max_clicks INTEGER;
ALTER TABLE links ADD COLUMN limit_used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN fallback_url TEXT;
ALTER TABLE links ADD COLUMN disabled_at TEXT;
ALTER TABLE links ADD COLUMN deleted_at TEXT;
-- Every destination a link has had, with when and by whom; a revert marks the
-- entry it undid instead of removing it.
CREATE TABLE IF NOT EXISTS link_history (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL,
    destination_url TEXT NOT NULL,
    redirect_status INTEGER NOT NULL,
    changed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    changed_by TEXT NOT NULL,
    reverted_at TEXT,
    reverted_by TEXT
);
CREATE INDEX IF NOT EXISTS link_history_by_slug ON link_history (slug, id);
