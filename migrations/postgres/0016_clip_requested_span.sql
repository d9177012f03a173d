-- The span a clip was asked for (its playlist covers it widened to whole segments; its MP4 is
-- cut to it exactly). NULL for clips made before: their MP4 covers the whole segments.
ALTER TABLE clips ADD COLUMN requested_start_at TIMESTAMPTZ;
ALTER TABLE clips ADD COLUMN requested_end_at TIMESTAMPTZ;
