-- hawker schema, SQLite flavour. migrations/postgres/ will hold its twin with the same
-- tables, columns and constraints (TEXT ids, TIMESTAMPTZ for the *_at columns there).
-- Timestamps are RFC 3339 UTC text here (sqlx's chrono encoding).

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role        TEXT NOT NULL CHECK (role IN ('admin', 'seller', 'viewer', 'shop')),
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

-- Engagement figures that outlive the in-memory live counts: persisted in batches.
CREATE TABLE stream_counters (
    stream_id       TEXT PRIMARY KEY REFERENCES streams (id),
    -- Most viewer sessions at once while on air.
    peak_viewers    INTEGER NOT NULL DEFAULT 0 CHECK (peak_viewers >= 0),
    -- Player sessions that joined while on air (each join is a new random session).
    unique_viewers  INTEGER NOT NULL DEFAULT 0 CHECK (unique_viewers >= 0),
    -- Player sessions that joined the replay.
    replay_views    INTEGER NOT NULL DEFAULT 0 CHECK (replay_views >= 0)
);

-- One like or dislike per signed-in user per stream.
CREATE TABLE reactions (
    stream_id   TEXT NOT NULL REFERENCES streams (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    value       INTEGER NOT NULL CHECK (value IN (1, -1)),
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- Chat. The id orders messages (postgres twin: BIGINT GENERATED ALWAYS AS IDENTITY).
CREATE TABLE chat_messages (
    id          INTEGER PRIMARY KEY,
    stream_id   TEXT NOT NULL REFERENCES streams (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- Program date-time of the live edge when posted: places the message on the replay.
    media_time  TEXT
);

CREATE INDEX chat_messages_stream ON chat_messages (stream_id, id);

CREATE TABLE chat_mutes (
    stream_id   TEXT NOT NULL REFERENCES streams (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    muted_by    TEXT NOT NULL REFERENCES users (id),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- Products pinned on a stream: what hawker shows, the shop owns the catalogue.
-- Prices and amounts are exact decimals, stored as text ("19.99").
CREATE TABLE pins (
    id           TEXT PRIMARY KEY,
    stream_id    TEXT NOT NULL REFERENCES streams (id),
    product_id   TEXT NOT NULL,
    title        TEXT NOT NULL,
    price        TEXT NOT NULL,
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    image_url    TEXT,
    url          TEXT,
    pinned_at    TEXT NOT NULL,
    unpinned_at  TEXT
);

CREATE INDEX pins_stream ON pins (stream_id, pinned_at);
-- At most one active pin per product per stream.
CREATE UNIQUE INDEX pins_active_product ON pins (stream_id, product_id) WHERE unpinned_at IS NULL;

-- Orders the shop attributes to a stream; idempotent on (shop, order id).
CREATE TABLE orders (
    shop_id      TEXT NOT NULL REFERENCES users (id),
    order_id     TEXT NOT NULL,
    stream_id    TEXT NOT NULL REFERENCES streams (id),
    product_id   TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    -- Minor units scaled by 10^4 (exact; 19.99 = 199900), so sums are exact in SQL.
    amount_e4    INTEGER NOT NULL CHECK (amount_e4 >= 0),
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (shop_id, order_id)
);

CREATE INDEX orders_stream ON orders (stream_id, product_id);
