-- Rate limits that must hold across nodes (guest sign-ins per address): per key, the
-- theoretical arrival time of the next allowed act (GCRA). Used on PostgreSQL; one machine
-- (SQLite) keeps them in memory.
CREATE TABLE rate_limits (
    key  TEXT PRIMARY KEY,
    tat  TIMESTAMPTZ NOT NULL
);
