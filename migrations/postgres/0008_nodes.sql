-- Several nodes: where each node's HTTP side is reached by the others (requests for a live
-- stream it holds are forwarded there), and its counted viewer sessions per stream (a
-- stream's viewers are the sum over the nodes seen lately; a dead node's rows go stale).
CREATE TABLE nodes (
    id        TEXT PRIMARY KEY,
    http_url  TEXT NOT NULL,
    seen_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE viewer_presence (
    stream_id  TEXT NOT NULL,
    node_id    TEXT NOT NULL,
    viewers    BIGINT NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, node_id)
);
