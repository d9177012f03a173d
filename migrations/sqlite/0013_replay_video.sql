-- A saved stream's replay as one MP4 file, once made: its path under /hls/{playback_id}/.
ALTER TABLE streams ADD COLUMN video_path TEXT;
