-- hawker schema, SQLite flavour. migrations/postgres/ will hold its twin with the same
-- tables, columns and constraints (TEXT ids, TIMESTAMPTZ for the *_at columns there).
-- Timestamps are RFC 3339 UTC text here (sqlx's chrono encoding).

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'seller', 'viewer')),
    -- SHA-256 (hex) of the API token: the token itself is shown once and never stored.
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE streams (
    id               TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL REFERENCES users (id),
    playback_id      TEXT NOT NULL UNIQUE,
    title            TEXT NOT NULL,
    description      TEXT,
    status           TEXT NOT NULL
                     CHECK (status IN ('scheduled', 'live', 'reconnecting', 'ended', 'archived', 'cancelled')),
    -- The owner sees the key again, so it is stored; lookups go through its hash and the
    -- candidate is then compared in constant time.
    stream_key       TEXT NOT NULL,
    stream_key_hash  TEXT NOT NULL UNIQUE,
    -- When the key may publish; NULL from = one hour before scheduled_at (or any time),
    -- NULL until = until the stream ends.
    key_valid_from   TEXT,
    key_valid_until  TEXT,
    -- Publishes so far; each publish's number fences off a stale publisher's late updates.
    publish_seq      INTEGER NOT NULL DEFAULT 0,
    -- Set while `reconnecting`: the reconnect window runs from here.
    reconnecting_since TEXT,
    created_at       TEXT NOT NULL,
    scheduled_at     TEXT,
    started_at       TEXT,
    ended_at         TEXT
);

CREATE INDEX streams_status_created ON streams (status, created_at);
CREATE INDEX streams_owner ON streams (owner_id);

-- Admin settings: one row per setting, the value as JSON.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
