-- Which node holds a live stream (its publisher is connected there), until when: the node
-- renews it while the publisher stays; a lease left to expire (the node died) puts the stream
-- back to `reconnecting`, so its publisher may come back on any node.
ALTER TABLE streams ADD COLUMN lease_node TEXT;
ALTER TABLE streams ADD COLUMN lease_expires_at TEXT;
