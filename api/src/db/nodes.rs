//! Several nodes on PostgreSQL: each node's HTTP address, the streams other nodes hold, and
//! viewer sessions counted over all nodes. SQLite is one machine: nothing to share.

use super::*;

/// A node not seen for this long is gone: its viewer sessions no longer count, and requests
/// are not forwarded to it.
pub const NODE_STALE: Duration = Duration::from_secs(5);

/// A stream's viewer figures over every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerTotals {
    pub current: i64,
    pub counters: ViewerCounters,
}

/// The advisory lock serialising first starts (an arbitrary number, hawker's own).
const FIRST_START_LOCK: i64 = 0x6861_776b_6572; // "hawker"

impl Db {
    /// Serialises the first start's set-up over nodes starting at once on an empty database:
    /// held until the returned transaction is dropped (PostgreSQL); nothing to hold on SQLite.
    pub async fn first_start_lock(&self) -> DbResult<Option<sqlx::Transaction<'static, Postgres>>> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(None) };
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(FIRST_START_LOCK).execute(&mut *tx).await?;
        Ok(Some(tx))
    }

    fn shared_pool(&self, what: &'static str) -> DbResult<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Ok(pool),
            Pool::Sqlite(_) => Err(DbError::NeedsPostgres(what)),
        }
    }

    /// Records that this node is up and reached at `http_url` by the other nodes.
    pub async fn register_node(&self, http_url: &str) -> DbResult<()> {
        let pool = self.shared_pool("a node register")?;
        sqlx::query(
            "INSERT INTO nodes (id, http_url, seen_at) VALUES ($1, $2, now()) \
             ON CONFLICT (id) DO UPDATE SET http_url = excluded.http_url, seen_at = excluded.seen_at",
        )
        .bind(self.node())
        .bind(http_url)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// The live streams other nodes hold, with the HTTP address of each holder seen lately.
    pub async fn streams_held_elsewhere(&self) -> DbResult<Vec<(String, String)>> {
        let pool = self.shared_pool("streams held elsewhere")?;
        let rows = sqlx::query(
            "SELECT s.id, n.http_url FROM streams s JOIN nodes n ON n.id = s.lease_node \
             WHERE s.status = 'live' AND s.lease_node <> $1 AND s.lease_expires_at > $2 \
             AND n.seen_at > now() - make_interval(secs => $3)",
        )
        .bind(self.node())
        .bind(Utc::now())
        .bind(NODE_STALE.as_secs_f64())
        .fetch_all(pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("id")?, row.try_get("http_url")?))).collect()
    }

    /// Replaces this node's counted sessions per stream with `viewers`, and returns every
    /// stream's figures over the nodes seen lately (streams nobody watches are left out).
    /// Raises a stream's stored peak to its total when the total is higher.
    pub async fn exchange_viewers(&self, viewers: &[(String, i64)]) -> DbResult<Vec<(String, ViewerTotals)>> {
        let pool = self.shared_pool("viewers over nodes")?;
        let (ids, counts): (Vec<&str>, Vec<i64>) = viewers.iter().map(|(id, n)| (id.as_str(), *n)).unzip();
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM viewer_presence WHERE node_id = $1 AND NOT (stream_id = ANY($2))")
            .bind(self.node())
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO viewer_presence (stream_id, node_id, viewers, seen_at) \
             SELECT id, $1, n, now() FROM UNNEST($2::text[], $3::bigint[]) AS t(id, n) \
             ON CONFLICT (stream_id, node_id) DO UPDATE SET viewers = excluded.viewers, seen_at = excluded.seen_at",
        )
        .bind(self.node())
        .bind(&ids)
        .bind(&counts)
        .execute(&mut *tx)
        .await?;
        // The peak is the highest total any node has seen: raised here, never lowered, and
        // written only when it grows.
        let rows = sqlx::query(
            "WITH totals AS (SELECT stream_id, SUM(viewers)::bigint AS current FROM viewer_presence \
                             WHERE seen_at > now() - make_interval(secs => $1) GROUP BY stream_id), \
             raised AS (INSERT INTO stream_counters (stream_id, peak_viewers, unique_viewers, replay_views) \
                        SELECT stream_id, current, 0, 0 FROM totals ORDER BY stream_id \
                        ON CONFLICT (stream_id) DO UPDATE SET peak_viewers = excluded.peak_viewers \
                        WHERE stream_counters.peak_viewers < excluded.peak_viewers) \
             SELECT t.stream_id, t.current, GREATEST(COALESCE(c.peak_viewers, 0), t.current) AS peak_viewers, \
                    COALESCE(c.unique_viewers, 0) AS unique_viewers, COALESCE(c.replay_views, 0) AS replay_views \
             FROM totals t LEFT JOIN stream_counters c ON c.stream_id = t.stream_id",
        )
        .bind(NODE_STALE.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let totals = ViewerTotals {
                    current: row.try_get("current")?,
                    counters: ViewerCounters {
                        peak: row.try_get("peak_viewers")?,
                        unique: row.try_get("unique_viewers")?,
                        replay_views: row.try_get("replay_views")?,
                    },
                };
                Ok((row.try_get("stream_id")?, totals))
            })
            .collect()
    }

    /// Forgets the rows of nodes gone for a minute (their streams' figures no longer count them).
    pub async fn purge_stale_nodes(&self) -> DbResult<u64> {
        let pool = self.shared_pool("a node register")?;
        let gone = sqlx::query("DELETE FROM viewer_presence WHERE seen_at < now() - interval '60 seconds'")
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM nodes WHERE seen_at < now() - interval '60 seconds'").execute(pool).await?;
        Ok(gone.rows_affected())
    }
}
