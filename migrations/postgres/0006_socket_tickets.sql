-- Single-use tickets for signed-in event sockets, shared by every node: a ticket issued by
-- one node opens a socket on any other. Stored as the SHA-256 (hex) of the ticket.
CREATE TABLE socket_tickets (
    ticket_hash  TEXT PRIMARY KEY,
    stream_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX socket_tickets_expiry ON socket_tickets (expires_at);
