-- Viewers signed in by a shop (one hawker user per shop user) or by guest sign-in, and the
-- expiring tokens issued to them. A viewer made this way has no token of its own: its
-- users.token_hash is the digest of a random token nobody was given.
ALTER TABLE users ADD COLUMN shop_id TEXT REFERENCES users (id);
-- The shop's own id for the user; unique per shop.
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX users_shop_external ON users (shop_id, external_id);

CREATE TABLE viewer_tokens (
    -- SHA-256 (hex) of the token, as for users.token_hash.
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX viewer_tokens_expiry ON viewer_tokens (expires_at);
