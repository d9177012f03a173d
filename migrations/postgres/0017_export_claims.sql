-- MP4 exports being made, one row each ('stream/{id}' or 'clip/{id}'): the node making it,
-- until when. Another node asked for the same file leaves it to that node, so several nodes
-- never make one file at once; a claim whose node died lapses at expires_at.
CREATE TABLE export_claims (
    name        TEXT PRIMARY KEY,
    node        TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
