-- Shares of a stream's link, per channel (a fixed set: the table stays small).
CREATE TABLE stream_shares (
    stream_id  TEXT NOT NULL REFERENCES streams (id),
    channel    TEXT NOT NULL,
    shares     INTEGER NOT NULL DEFAULT 0 CHECK (shares >= 0),
    PRIMARY KEY (stream_id, channel)
);
