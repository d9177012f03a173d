-- A practice stream: works like any other, but is never listed, sends no webhook, and is
-- deleted (media and all) when it ends.
ALTER TABLE streams ADD COLUMN practice INTEGER NOT NULL DEFAULT 0;
