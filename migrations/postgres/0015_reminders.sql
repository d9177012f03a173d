-- Reminders: signed-in viewers who asked to hear when an upcoming stream starts.
CREATE TABLE stream_reminders (
    stream_id  TEXT NOT NULL REFERENCES streams (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);
-- Also remind subscribers this many minutes before scheduled_at (null: at go-live only).
ALTER TABLE streams ADD COLUMN remind_minutes_before BIGINT;
-- When each reminder went out: once per stream, whichever node sends it.
ALTER TABLE streams ADD COLUMN reminded_soon_at TIMESTAMPTZ;
ALTER TABLE streams ADD COLUMN reminded_live_at TIMESTAMPTZ;
-- Streams that went live before reminders existed are not announced now.
UPDATE streams SET reminded_live_at = started_at WHERE started_at IS NOT NULL;
