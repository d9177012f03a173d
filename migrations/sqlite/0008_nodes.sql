-- Several nodes (PostgreSQL only; kept here so both schemas stay alike): where each node's
-- HTTP side is reached by the others, and its counted viewer sessions per stream.
CREATE TABLE nodes (
    id        TEXT PRIMARY KEY,
    http_url  TEXT NOT NULL,
    seen_at   TEXT NOT NULL
);

CREATE TABLE viewer_presence (
    stream_id  TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    viewers    INTEGER NOT NULL,
    seen_at    TEXT NOT NULL,
    PRIMARY KEY (stream_id, node_id)
);
