-- The last publish refused or dropped for a reason the seller can fix (codec, bit rate, key
-- window, ended stream, too many wrong keys), shown in the studio with a fix.
ALTER TABLE streams ADD COLUMN last_refusal_reason TEXT;
ALTER TABLE streams ADD COLUMN last_refusal_detail TEXT;
ALTER TABLE streams ADD COLUMN last_refusal_at TEXT;
