-- Webhook deliveries waiting to go out, shared by every node: written once where the event
-- happened, delivered by whichever node claims one first (a claim lapses if its node dies),
-- removed once delivered or given up. They survive restarts. A stream's deliveries go out in
-- order: only its oldest waiting one may be sent.
CREATE TABLE webhook_outbox (
    id             BIGSERIAL PRIMARY KEY,
    stream_id      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    body           TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    next_at        TIMESTAMPTZ NOT NULL,
    claimed_until  TIMESTAMPTZ
);

CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at);
CREATE INDEX webhook_outbox_stream ON webhook_outbox (stream_id, id);
