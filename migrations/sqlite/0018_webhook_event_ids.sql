-- Each delivery's event id (the Standard Webhooks `webhook-id`): the same on every retry,
-- never reused (row ids are). NULL for deliveries queued before it.
ALTER TABLE webhook_outbox ADD COLUMN event_id TEXT;
