//! Engagement: viewer counters, likes and dislikes, chat and mutes.

use super::*;

const CHAT_SELECT: &str = "SELECT m.id, m.stream_id, m.user_id, u.name AS user_name, m.body, m.created_at, \
     m.media_time, CASE WHEN s.owner_id = m.user_id THEN 'seller' WHEN u.role = 'admin' THEN 'moderator' END AS badge \
     FROM chat_messages m JOIN users u ON u.id = m.user_id JOIN streams s ON s.id = m.stream_id";

fn chat_from_row(row: &impl RowExt) -> DbResult<ChatMessage> {
    Ok(ChatMessage {
        id: row.int("id")?,
        stream_id: row.text("stream_id")?,
        user: ChatUser {
            id: row.text("user_id")?,
            name: row.text("user_name")?,
            role: match row.text_opt("badge")?.as_deref() {
                Some("seller") => Some("seller"),
                Some("moderator") => Some("moderator"),
                _ => None,
            },
        },
        text: row.text("body")?,
        created_at: row.time("created_at")?,
        media_time: row.time_opt("media_time")?,
    })
}

impl Db {
    pub async fn viewer_counters(&self, stream_id: &str) -> DbResult<ViewerCounters> {
        on_pool!(self, pool => {
            let row =
                sqlx::query("SELECT peak_viewers, unique_viewers, replay_views FROM stream_counters WHERE stream_id = $1")
                    .bind(stream_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(match row {
                Some(row) => ViewerCounters {
                    peak: row.try_get("peak_viewers")?,
                    unique: row.try_get("unique_viewers")?,
                    replay_views: row.try_get("replay_views")?,
                },
                None => ViewerCounters::default(),
            })
        })
    }

    /// Writes many streams' counters in one transaction (the batched write of the hot counters):
    /// `unique` and `replay_views` are what this node counted since its last write, added to
    /// the stored figures (so several nodes' counts add up); `peak` raises the stored peak.
    pub async fn save_viewer_counters(&self, batch: &[(String, ViewerCounters)]) -> DbResult<()> {
        on_pool!(self, pool => {
            if batch.is_empty() {
                return Ok(());
            }
            // The larger of two values: SQLite's two-argument MAX, PostgreSQL's GREATEST.
            let max = self.dialect("MAX", "GREATEST");
            let sql = format!(
                "INSERT INTO stream_counters (stream_id, peak_viewers, unique_viewers, replay_views) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (stream_id) DO UPDATE SET \
                 peak_viewers = {max}(stream_counters.peak_viewers, excluded.peak_viewers), \
                 unique_viewers = stream_counters.unique_viewers + excluded.unique_viewers, \
                 replay_views = stream_counters.replay_views + excluded.replay_views"
            );
            let mut tx = pool.begin().await?;
            for (stream_id, c) in batch {
                sqlx::query(&sql)
                .bind(stream_id)
                .bind(c.peak)
                .bind(c.unique)
                .bind(c.replay_views)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Sets (`Some(1)` like, `Some(-1)` dislike) or removes (`None`) a user's reaction.
    pub async fn set_reaction(&self, stream_id: &str, user_id: &str, value: Option<i64>) -> DbResult<()> {
        on_pool!(self, pool => {
            match value {
                Some(value) => {
                    sqlx::query(
                        "INSERT INTO reactions (stream_id, user_id, value, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (stream_id, user_id) DO UPDATE SET value = $3, updated_at = $4",
                    )
                    .bind(stream_id)
                    .bind(user_id)
                    .bind(value)
                    .bind(Ts::now())
                    .execute(pool)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM reactions WHERE stream_id = $1 AND user_id = $2")
                        .bind(stream_id)
                        .bind(user_id)
                        .execute(pool)
                        .await?;
                }
            }
            Ok(())
        })
    }

    pub async fn reaction_of(&self, stream_id: &str, user_id: &str) -> DbResult<Option<i64>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT value FROM reactions WHERE stream_id = $1 AND user_id = $2")
                .bind(stream_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// (likes, dislikes)
    pub async fn reaction_counts(&self, stream_id: &str) -> DbResult<(i64, i64)> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COUNT(CASE WHEN value = 1 THEN 1 END) AS likes, \
                 COUNT(CASE WHEN value = -1 THEN 1 END) AS dislikes FROM reactions WHERE stream_id = $1",
            )
            .bind(stream_id)
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("likes")?, row.try_get("dislikes")?))
        })
    }

    pub async fn insert_chat(
        &self,
        stream_id: &str,
        user_id: &str,
        text: &str,
        media_time: Option<DateTime<Utc>>,
    ) -> DbResult<ChatMessage> {
        on_pool!(self, pool => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chat_messages (stream_id, user_id, body, created_at, media_time) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(stream_id)
            .bind(user_id)
            .bind(text)
            .bind(Ts::now())
            .bind(media_time.map(ts))
            .fetch_one(pool)
            .await?;
            let row = sqlx::query(&format!("{CHAT_SELECT} WHERE m.id = $1")).bind(id).fetch_one(pool).await?;
            chat_from_row(&row)
        })
    }

    /// A page of a stream's chat, oldest first: the newest `limit` messages before `before`
    /// (or the newest of all), or with `after`, the oldest `limit` messages after it.
    pub async fn chat_page(
        &self,
        stream_id: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: i64,
    ) -> DbResult<Vec<ChatMessage>> {
        on_pool!(self, pool => {
            let rows = match after {
                Some(after) => {
                    sqlx::query(&format!("{CHAT_SELECT} WHERE m.stream_id = $1 AND m.id > $2 ORDER BY m.id ASC LIMIT $3"))
                        .bind(stream_id)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
                None => {
                    let mut rows = sqlx::query(&format!(
                        "{CHAT_SELECT} WHERE m.stream_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3"
                    ))
                    .bind(stream_id)
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                    rows.reverse();
                    rows
                }
            };
            rows.iter().map(chat_from_row).collect()
        })
    }

    pub async fn delete_chat(&self, stream_id: &str, id: i64) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM chat_messages WHERE stream_id = $1 AND id = $2")
                .bind(stream_id)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    pub async fn chat_count(&self, stream_id: &str) -> DbResult<i64> {
        on_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn mute(&self, stream_id: &str, user_id: &str, by: &str) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO chat_mutes (stream_id, user_id, muted_by, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (stream_id, user_id) DO NOTHING",
            )
            .bind(stream_id)
            .bind(user_id)
            .bind(by)
            .bind(Ts::now())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn unmute(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM chat_mutes WHERE stream_id = $1 AND user_id = $2")
                .bind(stream_id)
                .bind(user_id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    pub async fn is_muted(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let found = sqlx::query("SELECT 1 FROM chat_mutes WHERE stream_id = $1 AND user_id = $2")
                .bind(stream_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await?;
            Ok(found.is_some())
        })
    }

    /// A single-use ticket for `user_id`'s event socket on `stream_id`, valid until
    /// `expires_at`; `None` while `max` unused tickets wait. Expired tickets go first.
    pub async fn issue_socket_ticket(
        &self,
        stream_id: &str,
        user_id: &str,
        expires_at: DateTime<Utc>,
        max: i64,
    ) -> DbResult<Option<String>> {
        let ticket = secrets::new_id();
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM socket_tickets WHERE expires_at <= $1").bind(Ts::now()).execute(pool).await?;
            let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM socket_tickets").fetch_one(pool).await?;
            if waiting >= max {
                return Ok(None);
            }
            sqlx::query("INSERT INTO socket_tickets (ticket_hash, stream_id, user_id, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(secrets::digest(&ticket))
                .bind(stream_id)
                .bind(user_id)
                .bind(ts(expires_at))
                .execute(pool)
                .await?;
            Ok(Some(ticket))
        })
    }

    /// The user a ticket was issued to, if it is unexpired and for this stream; used up
    /// either way, on whichever node it was issued.
    pub async fn redeem_socket_ticket(&self, ticket: &str, stream_id: &str) -> DbResult<Option<String>> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "DELETE FROM socket_tickets WHERE ticket_hash = $1 RETURNING stream_id, user_id, expires_at",
            )
            .bind(secrets::digest(ticket))
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let fresh = row.time("expires_at")? > Utc::now();
            Ok((fresh && row.text("stream_id")? == stream_id).then(|| row.text("user_id")).transpose()?)
        })
    }

    /// Whether `key` may act now, at most `max` times per `per`, counted across every node
    /// (a GCRA in one statement); counts the act if so, else says how long until it may.
    /// PostgreSQL only: on one machine the limiters live in memory.
    pub async fn allow_shared(&self, key: &str, max: u32, per: Duration) -> DbResult<Result<(), Duration>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(DbError::NeedsPostgres("a rate limit shared by nodes"));
        };
        let interval = per / max.max(1);
        let tolerance = per.saturating_sub(interval);
        let now = Utc::now();
        let allowed: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + make_interval(secs => $3)) \
             ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $2) + make_interval(secs => $3) \
             WHERE GREATEST(rate_limits.tat, $2) <= $2 + make_interval(secs => $4) RETURNING tat",
        )
        .bind(key)
        .bind(now)
        .bind(interval.as_secs_f64())
        .bind(tolerance.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        if allowed.is_some() {
            return Ok(Ok(()));
        }
        let tat: DateTime<Utc> =
            sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1").bind(key).fetch_one(pool).await?;
        let ahead = (tat - now).to_std().unwrap_or_default();
        Ok(Err(ahead.saturating_sub(tolerance).max(Duration::from_secs(1))))
    }

    /// How long `key` must wait before its next act under [`Db::allow_shared`]'s limit of `max`
    /// per `per`, without counting an act: `None` when it may act now.
    pub async fn shared_limit_wait(&self, key: &str, max: u32, per: Duration) -> DbResult<Option<Duration>> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(DbError::NeedsPostgres("a rate limit shared by nodes"));
        };
        let tolerance = per.saturating_sub(per / max.max(1));
        let tat: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = $1").bind(key).fetch_optional(pool).await?;
        let ahead = tat.and_then(|tat| (tat - Utc::now()).to_std().ok()).unwrap_or_default();
        Ok((ahead > tolerance).then(|| (ahead - tolerance).max(Duration::from_secs(1))))
    }

    /// Counts one share of the stream's link on `channel`.
    pub async fn record_share(&self, stream_id: &str, channel: &str) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO stream_shares (stream_id, channel, shares) VALUES ($1, $2, 1) \
                 ON CONFLICT (stream_id, channel) DO UPDATE SET shares = stream_shares.shares + 1",
            )
            .bind(stream_id)
            .bind(channel)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The stream's shares per channel, by channel name.
    pub async fn share_counts(&self, stream_id: &str) -> DbResult<Vec<(String, i64)>> {
        on_pool!(self, pool => {
            let rows = sqlx::query("SELECT channel, shares FROM stream_shares WHERE stream_id = $1 ORDER BY channel")
                .bind(stream_id)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| Ok((row.text("channel")?, row.int("shares")?))).collect()
        })
    }

    /// Forgets rate-limit keys that have nothing left to count.
    pub async fn purge_rate_limits(&self) -> DbResult<u64> {
        on_pool!(self, pool => {
            let done = sqlx::query("DELETE FROM rate_limits WHERE tat < $1").bind(Ts::now()).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }
}
