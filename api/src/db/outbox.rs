//! The webhook outbox: deliveries waiting to go out, shared by every node and kept across
//! restarts (see `crate::webhooks`).

use super::*;

/// A webhook delivery claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: String,
    pub body: String,
    /// Sends tried before this one.
    pub attempts: i64,
    /// Its event's id, the same on every retry (`None`: queued before ids were kept).
    pub event_id: Option<String>,
}

impl Db {
    /// Queues a delivery about `stream_id`, unless `max` already wait (then false: the event
    /// is not delivered).
    pub async fn enqueue_webhook(&self, stream_id: &str, kind: &str, body: &str, max: i64) -> DbResult<bool> {
        on_pool!(self, pool => {
            let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox").fetch_one(pool).await?;
            if waiting >= max {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO webhook_outbox (stream_id, kind, body, next_at, event_id) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(stream_id)
            .bind(kind)
            .bind(body)
            .bind(Ts::now())
            .bind(crate::secrets::new_id())
                .execute(pool)
                .await?;
            Ok(true)
        })
    }

    /// Claims the oldest delivery that is due and not claimed by a live claim, for `hold`: no
    /// other node sends it meanwhile. Only a stream's oldest waiting delivery may be claimed,
    /// so a receiver sees a stream's events in order. `None` when nothing is due.
    pub async fn claim_webhook(&self, hold: Duration) -> DbResult<Option<OutboxEntry>> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(hold).expect("a small duration");
        // PostgreSQL: nodes claiming at once skip each other's row instead of waiting on it.
        let lock = self.dialect("", " FOR UPDATE SKIP LOCKED");
        let sql = format!(
            "UPDATE webhook_outbox SET claimed_until = $1 WHERE id = (SELECT id FROM webhook_outbox w \
             WHERE next_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2) \
             AND NOT EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.stream_id = w.stream_id AND o.id < w.id) \
             ORDER BY id LIMIT 1{lock}) RETURNING id, kind, body, attempts, event_id"
        );
        on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(ts(until)).bind(ts(now)).fetch_optional(pool).await?;
            row.map(|row| -> DbResult<OutboxEntry> {
                Ok(OutboxEntry {
                    id: row.int("id")?,
                    kind: row.text("kind")?,
                    body: row.text("body")?,
                    attempts: row.int("attempts")?,
                    event_id: row.text_opt("event_id")?,
                })
            })
            .transpose()
        })
    }

    /// When the next delivery may be claimed (the earliest `next_at`, or a live claim's end if
    /// later); `None` when none waits. A delivery held back behind its stream's earlier one
    /// counts too, so this may be past with nothing to claim.
    pub async fn next_webhook_at(&self) -> DbResult<Option<DateTime<Utc>>> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT MIN(CASE WHEN claimed_until > next_at THEN claimed_until ELSE next_at END) AS due \
                 FROM webhook_outbox",
            )
            .fetch_one(pool)
            .await?;
            row.time_opt("due")
        })
    }

    /// A claimed delivery is done with: delivered, or given up.
    pub async fn drop_webhook(&self, id: i64) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM webhook_outbox WHERE id = $1").bind(id).execute(pool).await?;
            Ok(())
        })
    }

    /// A claimed delivery failed: it is tried again at `next_at`, by any node.
    pub async fn retry_webhook(&self, id: i64, next_at: DateTime<Utc>) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = $1, claimed_until = NULL WHERE id = $2",
            )
            .bind(ts(next_at))
            .bind(id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}
