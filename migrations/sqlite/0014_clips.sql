-- Clips: a span of a stream's media (whole segments), played through a VOD playlist over the
-- stream's own segments. Deleted with the stream's media.
CREATE TABLE clips (
    id          TEXT PRIMARY KEY,
    stream_id   TEXT NOT NULL REFERENCES streams (id),
    title       TEXT,
    start_at    TEXT NOT NULL,
    end_at      TEXT NOT NULL,
    -- Its VOD playlist: the path under /hls/{playback_id}/.
    playlist_path TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- The clip's MP4 once made on request: its path under /hls/{playback_id}/.
    video_path  TEXT,
    -- 'clip' (made by the seller), 'highlight' (a product's pin, made on save) or 'receipt'
    -- (the 30 s before an order, made when it came).
    kind        TEXT NOT NULL DEFAULT 'clip',
    product_id  TEXT,
    -- A receipt's order: '{shop_id}/{order_id}'.
    order_ref   TEXT
);
CREATE INDEX clips_by_stream ON clips (stream_id, created_at);
CREATE INDEX clips_by_product ON clips (product_id, created_at) WHERE product_id IS NOT NULL;
