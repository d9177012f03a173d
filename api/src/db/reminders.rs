//! Reminders: who asked to hear when an upcoming stream starts, and which reminders went out.

use super::streams::{STREAM_COLUMNS, stream_from_row};
use super::*;

/// The earliest early reminder a stream may ask for: a week before its start.
pub const MAX_REMIND_MINUTES: i64 = 7 * 24 * 60;

/// Which reminder of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderMoment {
    /// `remind_minutes_before` before `scheduled_at`.
    Soon,
    /// The first go-live.
    Live,
}

impl ReminderMoment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soon => "soon",
            Self::Live => "live",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Self::Soon => "reminded_soon_at",
            Self::Live => "reminded_live_at",
        }
    }
}

/// A subscriber the shop knows: its shop and its user id there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShopSubscriber {
    pub shop_id: String,
    pub user_id: String,
}

impl Db {
    /// `user_id` asks to be reminded of the stream; false if it already had.
    pub async fn add_reminder(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let sql = "INSERT INTO stream_reminders (stream_id, user_id, created_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (stream_id, user_id) DO NOTHING";
            let done = sqlx::query(sql).bind(stream_id).bind(user_id).bind(Ts::now()).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// `user_id` no longer wants the reminder; false if it had none.
    pub async fn remove_reminder(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let sql = "DELETE FROM stream_reminders WHERE stream_id = $1 AND user_id = $2";
            Ok(sqlx::query(sql).bind(stream_id).bind(user_id).execute(pool).await?.rows_affected() == 1)
        })
    }

    pub async fn has_reminder(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let sql = "SELECT COUNT(*) AS n FROM stream_reminders WHERE stream_id = $1 AND user_id = $2";
            Ok(sqlx::query(sql).bind(stream_id).bind(user_id).fetch_one(pool).await?.int("n")? > 0)
        })
    }

    pub async fn reminder_count(&self, stream_id: &str) -> DbResult<i64> {
        on_pool!(self, pool => {
            let sql = "SELECT COUNT(*) AS n FROM stream_reminders WHERE stream_id = $1";
            sqlx::query(sql).bind(stream_id).fetch_one(pool).await?.int("n")
        })
    }

    /// How many of the stream's subscribers a shop signed in.
    pub async fn shop_subscriber_count(&self, stream_id: &str) -> DbResult<i64> {
        on_pool!(self, pool => {
            let sql = "SELECT COUNT(*) AS n FROM stream_reminders r JOIN users u ON u.id = r.user_id \
                       WHERE r.stream_id = $1 AND u.shop_id IS NOT NULL AND u.external_id IS NOT NULL";
            sqlx::query(sql).bind(stream_id).fetch_one(pool).await?.int("n")
        })
    }

    /// A page of the stream's subscribers signed in by a shop, as the shop knows them, oldest
    /// first.
    pub async fn shop_subscribers(
        &self,
        stream_id: &str,
        offset: usize,
        limit: usize,
    ) -> DbResult<Vec<ShopSubscriber>> {
        on_pool!(self, pool => {
            let sql = "SELECT u.shop_id, u.external_id FROM stream_reminders r JOIN users u ON u.id = r.user_id \
                       WHERE r.stream_id = $1 AND u.shop_id IS NOT NULL AND u.external_id IS NOT NULL \
                       ORDER BY r.created_at, u.id LIMIT $2 OFFSET $3";
            let rows = sqlx::query(sql)
                .bind(stream_id)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| Ok(ShopSubscriber { shop_id: row.text("shop_id")?, user_id: row.text("external_id")? }))
                .collect()
        })
    }

    /// Listed streams whose reminder is due at `now` and not sent yet: the go-live one for
    /// streams on air, the early one for scheduled streams that ask for it (until their
    /// scheduled start).
    pub async fn due_reminders(&self, now: DateTime<Utc>) -> DbResult<Vec<(Stream, ReminderMoment)>> {
        let (live, soon) = on_pool!(self, pool => {
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE practice = $1 AND reminded_live_at IS NULL \
                 AND status IN ('live', 'reconnecting')"
            );
            let live = sqlx::query(&sql).bind(false).fetch_all(pool).await?;
            // Starts within the longest early reminder, and has not started yet.
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE practice = $1 AND reminded_soon_at IS NULL \
                 AND status = 'scheduled' AND remind_minutes_before IS NOT NULL \
                 AND scheduled_at > $2 AND scheduled_at <= $3"
            );
            let soon = sqlx::query(&sql)
                .bind(false)
                .bind(ts(now))
                .bind(ts(now + chrono::Duration::minutes(MAX_REMIND_MINUTES)))
                .fetch_all(pool)
                .await?;
            (
                live.iter().map(stream_from_row).collect::<DbResult<Vec<_>>>()?,
                soon.iter().map(stream_from_row).collect::<DbResult<Vec<_>>>()?,
            )
        });
        let due_soon = soon.into_iter().filter(|s| {
            let (Some(at), Some(minutes)) = (s.scheduled_at, s.remind_minutes_before) else { return false };
            now >= at - chrono::Duration::minutes(minutes) && now < at
        });
        let mut due: Vec<_> = live.into_iter().map(|s| (s, ReminderMoment::Live)).collect();
        due.extend(due_soon.map(|s| (s, ReminderMoment::Soon)));
        Ok(due)
    }

    /// Gives back a claimed reminder that could not be sent: the next sweep sends it.
    pub async fn release_reminder(&self, stream_id: &str, moment: ReminderMoment) -> DbResult<()> {
        on_pool!(self, pool => {
            let sql = format!("UPDATE streams SET {} = NULL WHERE id = $1", moment.column());
            sqlx::query(&sql).bind(stream_id).execute(pool).await?;
            Ok(())
        })
    }

    /// Marks the stream's reminder sent; false if it already was (by this node or another):
    /// whoever marks it sends it, once.
    pub async fn claim_reminder(&self, stream_id: &str, moment: ReminderMoment) -> DbResult<bool> {
        on_pool!(self, pool => {
            let column = moment.column();
            let sql = format!("UPDATE streams SET {column} = $1 WHERE id = $2 AND {column} IS NULL");
            Ok(sqlx::query(&sql).bind(Ts::now()).bind(stream_id).execute(pool).await?.rows_affected() == 1)
        })
    }
}
