-- Staff API tokens may expire (NULL: never); rotating or revoking replaces token_hash.
ALTER TABLE users ADD COLUMN token_expires_at TIMESTAMPTZ;
-- Guests (signed in by name alone) are purged once their tokens expired and they left
-- nothing behind.
ALTER TABLE users ADD COLUMN guest BOOLEAN NOT NULL DEFAULT FALSE;
