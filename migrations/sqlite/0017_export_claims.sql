-- MP4 exports being made, one row each ('stream/{id}' or 'clip/{id}'): the node making it,
-- until when. Another node asked for the same file waits for the claim to end or lapse (its
-- node died), so several nodes never make one file twice.
CREATE TABLE export_claims (
    name        TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
