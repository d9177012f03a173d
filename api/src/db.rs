//! The repository: every SQL statement hawker runs. SQLite today; the queries are written
//! portably (`$n` placeholders, RETURNING, CHECK constraints) so a PostgreSQL twin can follow.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};

use crate::model::{
    ChatMessage, ChatUser, Order, OrderTotals, Pin, ProductTotal, PublishDenied, PublishTicket, Role, Stream,
    StreamStatus, User, ViewerCounters,
};
use crate::playback::{Playback, PlaybackIndex};
use crate::secrets;
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type DbResult<T> = Result<T, DbError>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
    /// What settings never stored by an admin are: the server's configuration.
    setting_defaults: Arc<Settings>,
    /// Playable streams by playback id, kept current by every status change applied here.
    playback: PlaybackIndex,
}

/// A new stream as the API creates it.
pub struct NewStream<'a> {
    pub owner_id: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub key_valid_from: Option<DateTime<Utc>>,
    pub key_valid_until: Option<DateTime<Utc>>,
}

/// Which page of a stream list.
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

const STREAM_COLUMNS: &str = "id, owner_id, playback_id, title, description, status, stream_key, \
     key_valid_from, key_valid_until, publish_seq, reconnecting_since, \
     created_at, scheduled_at, started_at, ended_at";

impl Db {
    /// Opens (creating if needed) the SQLite file. WAL and a busy timeout let a CLI command
    /// write while a server runs on the same file.
    pub async fn open(path: &Path) -> DbResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        Ok(Self { pool, setting_defaults: Arc::new(Settings::default()), playback: PlaybackIndex::default() })
    }

    /// Settings an admin has not set take these values (the server's own configuration).
    pub fn with_setting_defaults(mut self, defaults: Settings) -> Self {
        self.setting_defaults = Arc::new(defaults);
        self
    }

    pub async fn migrate(&self) -> DbResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    // ---- users ----

    /// Creates a user and returns it with its API token (shown once, stored as a digest).
    pub async fn create_user(&self, name: &str, role: Role) -> DbResult<(User, String)> {
        let token = secrets::new_api_token();
        let user = User { id: secrets::new_id(), name: name.to_owned(), role };
        sqlx::query("INSERT INTO users (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&user.id)
            .bind(&user.name)
            .bind(role.as_str())
            .bind(secrets::digest(&token))
            .bind(timestamp(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok((user, token))
    }

    /// The user of an API token or of an unexpired viewer token.
    pub async fn user_by_token(&self, token: &str) -> DbResult<Option<User>> {
        let digest = secrets::digest(token);
        let row = sqlx::query(
            "SELECT id, name, role FROM users WHERE token_hash = $1 \
             AND (token_expires_at IS NULL OR token_expires_at > $2) \
             UNION ALL \
             SELECT u.id, u.name, u.role FROM viewer_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2",
        )
        .bind(digest)
        .bind(timestamp(Utc::now()))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The viewer standing for the shop's user `external_id`, made on first sight; its name
    /// follows the shop's latest `name`.
    pub async fn shop_viewer(&self, shop_id: &str, external_id: &str, name: &str) -> DbResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (id, name, role, token_hash, created_at, shop_id, external_id) \
             VALUES ($1, $2, 'viewer', $3, $4, $5, $6) \
             ON CONFLICT (shop_id, external_id) DO UPDATE SET name = excluded.name \
             RETURNING id, name, role",
        )
        .bind(secrets::new_id())
        .bind(name)
        .bind(secrets::digest(&secrets::new_api_token()))
        .bind(timestamp(Utc::now()))
        .bind(shop_id)
        .bind(external_id)
        .fetch_one(&self.pool)
        .await?;
        user_from_row(&row)
    }

    /// A guest viewer: signed in by name only, with no token of its own.
    pub async fn create_guest(&self, name: &str) -> DbResult<User> {
        let user = User { id: secrets::new_id(), name: name.to_owned(), role: Role::Viewer };
        sqlx::query(
            "INSERT INTO users (id, name, role, token_hash, created_at, guest) VALUES ($1, $2, 'viewer', $3, $4, 1)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(secrets::digest(&secrets::new_api_token()))
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(user)
    }

    /// A new token for a viewer, valid until `expires_at`; expired tokens are swept here.
    pub async fn issue_viewer_token(&self, user_id: &str, expires_at: DateTime<Utc>) -> DbResult<String> {
        let token = secrets::new_api_token();
        let now = timestamp(Utc::now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM viewer_tokens WHERE expires_at <= $1").bind(&now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO viewer_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(secrets::digest(&token))
            .bind(user_id)
            .bind(&now)
            .bind(timestamp(expires_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn count_users(&self) -> DbResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?)
    }

    // ---- streams ----

    pub async fn create_stream(&self, new: NewStream<'_>) -> DbResult<Stream> {
        let key = secrets::new_stream_key();
        let sql = format!(
            "INSERT INTO streams (id, owner_id, playback_id, title, description, status, stream_key, \
             stream_key_hash, created_at, scheduled_at, key_valid_from, key_valid_until) \
             VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, $8, $9, $10, $11) RETURNING {STREAM_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(secrets::new_id())
            .bind(new.owner_id)
            .bind(secrets::new_playback_id())
            .bind(new.title)
            .bind(new.description)
            .bind(&key)
            .bind(secrets::digest(&key))
            .bind(timestamp(Utc::now()))
            .bind(new.scheduled_at.map(timestamp))
            .bind(new.key_valid_from.map(timestamp))
            .bind(new.key_valid_until.map(timestamp))
            .fetch_one(&self.pool)
            .await?;
        stream_from_row(&row)
    }

    pub async fn stream(&self, id: &str) -> DbResult<Option<Stream>> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// A playable stream's id and status, from memory (see [`Db::load_playback_index`]).
    pub fn playback(&self, playback_id: &str) -> Option<Playback> {
        self.playback.get(playback_id)
    }

    /// Fills the in-memory playback index from the database; call once the server's status
    /// changes at start-up are applied.
    pub async fn load_playback_index(&self) -> DbResult<()> {
        let rows = sqlx::query(
            "SELECT playback_id, id, status FROM streams WHERE status IN ('live', 'reconnecting', 'archived')",
        )
        .fetch_all(&self.pool)
        .await?;
        let streams = rows
            .iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let status =
                    StreamStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("stream status {status}")))?;
                Ok((row.try_get("playback_id")?, row.try_get("id")?, status))
            })
            .collect::<DbResult<Vec<_>>>()?;
        self.playback.reset(streams);
        Ok(())
    }

    pub async fn stream_by_playback_id(&self, playback_id: &str) -> DbResult<Option<Stream>> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE playback_id = $1");
        let row = sqlx::query(&sql).bind(playback_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// Streams in any of `statuses`, newest first.
    /// Streams in one of `statuses`, newest first; only `owner`'s when given.
    pub async fn list_streams(
        &self,
        statuses: &[StreamStatus],
        owner: Option<&str>,
        page: Page,
    ) -> DbResult<Vec<Stream>> {
        // Statuses are our own constants, never user text: safe to inline.
        let set = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE status IN ({set}) AND ($3 IS NULL OR owner_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let query = sqlx::query(&sql).bind(page.limit).bind(page.offset).bind(owner);
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(stream_from_row).collect()
    }

    /// Moves a stream from one of `from` to `to`, atomically. Returns the updated stream, or
    /// `None` when the stream was not in one of `from` (the caller reports the current status).
    pub async fn transition(&self, id: &str, from: &[StreamStatus], to: StreamStatus) -> DbResult<Option<Stream>> {
        let set = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let now = timestamp(Utc::now());
        // started_at is the first go-live; ended_at is set by any terminal status; the
        // reconnect window runs only while reconnecting.
        let sql = format!(
            "UPDATE streams SET status = $1, \
             started_at = CASE WHEN $1 = 'live' THEN COALESCE(started_at, $2) ELSE started_at END, \
             ended_at = CASE WHEN $1 IN ('ended', 'archived', 'cancelled') THEN $2 ELSE ended_at END, \
             reconnecting_since = CASE WHEN $1 = 'reconnecting' THEN $2 ELSE NULL END \
             WHERE id = $3 AND status IN ({set}) RETURNING {STREAM_COLUMNS}"
        );
        let row = sqlx::query(&sql).bind(to.as_str()).bind(now).bind(id).fetch_optional(&self.pool).await?;
        let stream = row.as_ref().map(stream_from_row).transpose()?;
        if let Some(stream) = &stream {
            self.playback.apply(stream);
        }
        Ok(stream)
    }

    /// Gives a stream a new key; the old one stops matching at once.
    pub async fn reset_stream_key(&self, id: &str) -> DbResult<Option<Stream>> {
        let key = secrets::new_stream_key();
        let sql = format!(
            "UPDATE streams SET stream_key = $1, stream_key_hash = $2 \
             WHERE id = $3 AND status IN ('scheduled', 'live', 'reconnecting') RETURNING {STREAM_COLUMNS}"
        );
        let row = sqlx::query(&sql).bind(&key).bind(secrets::digest(&key)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// The ingest's question: may this key publish now? If so the stream is `live` on return
    /// with a new publish number. A stream that is already live is taken over: the caller
    /// disconnects the previous publisher.
    pub async fn begin_publish(&self, key: &str) -> DbResult<Result<PublishTicket, PublishDenied>> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE stream_key_hash = $1");
        let row = sqlx::query(&sql).bind(secrets::digest(key)).fetch_optional(&self.pool).await?;
        let Some(stream) = row.as_ref().map(stream_from_row).transpose()? else {
            return Ok(Err(PublishDenied::UnknownKey));
        };
        // The digest matched; compare the key itself too, in constant time.
        if !secrets::constant_time_eq(&stream.stream_key, key) {
            return Ok(Err(PublishDenied::UnknownKey));
        }
        if !stream.key_valid_at(Utc::now()) {
            return Ok(Err(PublishDenied::OutsideKeyWindow));
        }
        // The key is re-checked in the update: a reset between the two statements wins.
        let sql = format!(
            "UPDATE streams SET status = 'live', publish_seq = publish_seq + 1, reconnecting_since = NULL, \
             started_at = COALESCE(started_at, $1) \
             WHERE id = $2 AND stream_key_hash = $3 AND status IN ('scheduled', 'live', 'reconnecting') \
             RETURNING {STREAM_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(timestamp(Utc::now()))
            .bind(&stream.id)
            .bind(secrets::digest(key))
            .fetch_optional(&self.pool)
            .await?;
        let Some(live) = row.as_ref().map(stream_from_row).transpose()? else {
            return Ok(Err(PublishDenied::StreamOver));
        };
        self.playback.apply(&live);
        Ok(Ok(PublishTicket {
            stream_id: live.id,
            playback_id: live.playback_id,
            publish_seq: live.publish_seq,
            previous_status: stream.status,
        }))
    }

    /// A publisher left. If it was still the stream's current publisher, the stream waits for
    /// it (the reconnect window starts); a publisher that was taken over changes nothing.
    /// Returns whether the stream moved to `reconnecting`.
    pub async fn publisher_gone(&self, stream_id: &str, publish_seq: i64) -> DbResult<bool> {
        let row = sqlx::query(
            "UPDATE streams SET status = 'reconnecting', reconnecting_since = $1 \
             WHERE id = $2 AND status = 'live' AND publish_seq = $3 RETURNING playback_id",
        )
        .bind(timestamp(Utc::now()))
        .bind(stream_id)
        .bind(publish_seq)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(false) };
        self.playback.set(&row.try_get::<String, _>("playback_id")?, stream_id, StreamStatus::Reconnecting);
        Ok(true)
    }

    /// Streams whose publisher has been gone since before `since`.
    pub async fn reconnecting_since_before(&self, since: DateTime<Utc>) -> DbResult<Vec<Stream>> {
        let sql =
            format!("SELECT {STREAM_COLUMNS} FROM streams WHERE status = 'reconnecting' AND reconnecting_since <= $1");
        let rows = sqlx::query(&sql).bind(timestamp(since)).fetch_all(&self.pool).await?;
        rows.iter().map(stream_from_row).collect()
    }

    /// At start-up no publisher is connected: streams a crash left `live` wait for theirs,
    /// with a fresh reconnect window.
    pub async fn recover_after_restart(&self) -> DbResult<u64> {
        let done =
            sqlx::query("UPDATE streams SET status = 'reconnecting', reconnecting_since = $1 WHERE status = 'live'")
                .bind(timestamp(Utc::now()))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    // ---- settings ----

    /// The admin settings; defaults for any never set.
    pub async fn settings(&self) -> DbResult<Settings> {
        let rows = sqlx::query("SELECT name, value FROM settings").fetch_all(&self.pool).await?;
        let mut stored = serde_json::Map::new();
        for row in rows {
            let value: String = row.try_get("value")?;
            let value = serde_json::from_str(&value).map_err(|e| DbError::Corrupt(format!("setting: {e}")))?;
            stored.insert(row.try_get("name")?, value);
        }
        Settings::from_stored(&self.setting_defaults, stored).map_err(|e| DbError::Corrupt(format!("settings: {e}")))
    }

    pub async fn save_settings(&self, settings: &Settings) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        for (name, value) in settings.to_stored() {
            sqlx::query(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            )
            .bind(name)
            .bind(value.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A pin as the API creates it.
pub struct NewPin<'a> {
    pub stream_id: &'a str,
    pub product_id: &'a str,
    pub title: &'a str,
    pub price: &'a str,
    pub currency: &'a str,
    pub image_url: Option<&'a str>,
    pub url: Option<&'a str>,
}

/// How recording an order went.
#[derive(Debug, PartialEq, Eq)]
pub enum OrderRecorded {
    /// A new order.
    Created(Order),
    /// The same order again: nothing changed.
    Repeated(Order),
    /// The order id is taken by a different order.
    Mismatch(Order),
}

const PIN_COLUMNS: &str = "id, stream_id, product_id, title, price, currency, image_url, url, pinned_at, unpinned_at";
const CHAT_SELECT: &str = "SELECT m.id, m.stream_id, m.user_id, u.name AS user_name, m.body, m.created_at, \
     m.media_time, CASE WHEN s.owner_id = m.user_id THEN 'seller' WHEN u.role = 'admin' THEN 'moderator' END AS badge \
     FROM chat_messages m JOIN users u ON u.id = m.user_id JOIN streams s ON s.id = m.stream_id";

impl Db {
    pub async fn user(&self, id: &str) -> DbResult<Option<User>> {
        let row =
            sqlx::query("SELECT id, name, role FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    // ---- viewer counters ----

    pub async fn viewer_counters(&self, stream_id: &str) -> DbResult<ViewerCounters> {
        let row =
            sqlx::query("SELECT peak_viewers, unique_viewers, replay_views FROM stream_counters WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => ViewerCounters {
                peak: row.try_get("peak_viewers")?,
                unique: row.try_get("unique_viewers")?,
                replay_views: row.try_get("replay_views")?,
            },
            None => ViewerCounters::default(),
        })
    }

    /// Writes many streams' counters in one transaction (the batched write of the hot counters).
    /// Figures only grow: a stale batch never lowers a stored one. (Two-argument `MAX` is
    /// SQLite's; the PostgreSQL twin writes `GREATEST`.)
    pub async fn save_viewer_counters(&self, batch: &[(String, ViewerCounters)]) -> DbResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (stream_id, c) in batch {
            sqlx::query(
                "INSERT INTO stream_counters (stream_id, peak_viewers, unique_viewers, replay_views) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (stream_id) DO UPDATE SET \
                 peak_viewers = MAX(stream_counters.peak_viewers, excluded.peak_viewers), \
                 unique_viewers = MAX(stream_counters.unique_viewers, excluded.unique_viewers), \
                 replay_views = MAX(stream_counters.replay_views, excluded.replay_views)",
            )
            .bind(stream_id)
            .bind(c.peak)
            .bind(c.unique)
            .bind(c.replay_views)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- likes and dislikes ----

    /// Sets (`Some(1)` like, `Some(-1)` dislike) or removes (`None`) a user's reaction.
    pub async fn set_reaction(&self, stream_id: &str, user_id: &str, value: Option<i64>) -> DbResult<()> {
        match value {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO reactions (stream_id, user_id, value, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (stream_id, user_id) DO UPDATE SET value = $3, updated_at = $4",
                )
                .bind(stream_id)
                .bind(user_id)
                .bind(value)
                .bind(timestamp(Utc::now()))
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM reactions WHERE stream_id = $1 AND user_id = $2")
                    .bind(stream_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn reaction_of(&self, stream_id: &str, user_id: &str) -> DbResult<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT value FROM reactions WHERE stream_id = $1 AND user_id = $2")
            .bind(stream_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// (likes, dislikes)
    pub async fn reaction_counts(&self, stream_id: &str) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN value = 1 THEN 1 ELSE 0 END), 0) AS likes, \
             COALESCE(SUM(CASE WHEN value = -1 THEN 1 ELSE 0 END), 0) AS dislikes FROM reactions WHERE stream_id = $1",
        )
        .bind(stream_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("likes")?, row.try_get("dislikes")?))
    }

    // ---- chat ----

    pub async fn insert_chat(
        &self,
        stream_id: &str,
        user_id: &str,
        text: &str,
        media_time: Option<DateTime<Utc>>,
    ) -> DbResult<ChatMessage> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO chat_messages (stream_id, user_id, body, created_at, media_time) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(stream_id)
        .bind(user_id)
        .bind(text)
        .bind(timestamp(Utc::now()))
        .bind(media_time.map(timestamp))
        .fetch_one(&self.pool)
        .await?;
        let row = sqlx::query(&format!("{CHAT_SELECT} WHERE m.id = $1")).bind(id).fetch_one(&self.pool).await?;
        chat_from_row(&row)
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
        let rows = match after {
            Some(after) => {
                sqlx::query(&format!("{CHAT_SELECT} WHERE m.stream_id = $1 AND m.id > $2 ORDER BY m.id ASC LIMIT $3"))
                    .bind(stream_id)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let mut rows = sqlx::query(&format!(
                    "{CHAT_SELECT} WHERE m.stream_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3"
                ))
                .bind(stream_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.reverse();
                rows
            }
        };
        rows.iter().map(chat_from_row).collect()
    }

    pub async fn delete_chat(&self, stream_id: &str, id: i64) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM chat_messages WHERE stream_id = $1 AND id = $2")
            .bind(stream_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn chat_count(&self, stream_id: &str) -> DbResult<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM chat_messages WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn mute(&self, stream_id: &str, user_id: &str, by: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO chat_mutes (stream_id, user_id, muted_by, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (stream_id, user_id) DO NOTHING",
        )
        .bind(stream_id)
        .bind(user_id)
        .bind(by)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn unmute(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM chat_mutes WHERE stream_id = $1 AND user_id = $2")
            .bind(stream_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn is_muted(&self, stream_id: &str, user_id: &str) -> DbResult<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM chat_mutes WHERE stream_id = $1 AND user_id = $2")
            .bind(stream_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    // ---- pins ----

    /// Pins a product; `None` when that product is already pinned on the stream.
    pub async fn insert_pin(&self, new: NewPin<'_>) -> DbResult<Option<Pin>> {
        let sql = format!(
            "INSERT INTO pins (id, stream_id, product_id, title, price, currency, image_url, url, pinned_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING {PIN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(secrets::new_id())
            .bind(new.stream_id)
            .bind(new.product_id)
            .bind(new.title)
            .bind(new.price)
            .bind(new.currency)
            .bind(new.image_url)
            .bind(new.url)
            .bind(timestamp(Utc::now()))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pin_from_row).transpose()
    }

    /// Ends the product's active pin; `None` when it was not pinned.
    pub async fn unpin(&self, stream_id: &str, product_id: &str) -> DbResult<Option<Pin>> {
        let sql = format!(
            "UPDATE pins SET unpinned_at = $1 WHERE stream_id = $2 AND product_id = $3 AND unpinned_at IS NULL \
             RETURNING {PIN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(timestamp(Utc::now()))
            .bind(stream_id)
            .bind(product_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pin_from_row).transpose()
    }

    /// The stream's pins in pin order; only the active ones unless `all`.
    pub async fn pins(&self, stream_id: &str, all: bool) -> DbResult<Vec<Pin>> {
        let filter = if all { "" } else { " AND unpinned_at IS NULL" };
        let sql = format!("SELECT {PIN_COLUMNS} FROM pins WHERE stream_id = $1{filter} ORDER BY pinned_at, id");
        let rows = sqlx::query(&sql).bind(stream_id).fetch_all(&self.pool).await?;
        rows.iter().map(pin_from_row).collect()
    }

    // ---- orders ----

    /// Records an order once per (shop, order id).
    pub async fn record_order(&self, shop_id: &str, order: &Order) -> DbResult<OrderRecorded> {
        let inserted = sqlx::query(
            "INSERT INTO orders (shop_id, order_id, stream_id, product_id, quantity, amount_e4, currency, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (shop_id, order_id) DO NOTHING",
        )
        .bind(shop_id)
        .bind(&order.order_id)
        .bind(&order.stream_id)
        .bind(&order.product_id)
        .bind(order.quantity)
        .bind(order.amount_e4)
        .bind(&order.currency)
        .bind(timestamp(order.created_at))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(
            "SELECT order_id, stream_id, product_id, quantity, amount_e4, currency, created_at FROM orders \
             WHERE shop_id = $1 AND order_id = $2",
        )
        .bind(shop_id)
        .bind(&order.order_id)
        .fetch_one(&self.pool)
        .await?;
        let stored = Order {
            order_id: row.try_get("order_id")?,
            stream_id: row.try_get("stream_id")?,
            product_id: row.try_get("product_id")?,
            quantity: row.try_get("quantity")?,
            amount_e4: row.try_get("amount_e4")?,
            currency: row.try_get("currency")?,
            created_at: row.try_get("created_at")?,
        };
        if inserted.rows_affected() > 0 {
            return Ok(OrderRecorded::Created(stored));
        }
        let same = (&stored.stream_id, &stored.product_id, stored.quantity, stored.amount_e4, &stored.currency)
            == (&order.stream_id, &order.product_id, order.quantity, order.amount_e4, &order.currency);
        Ok(if same { OrderRecorded::Repeated(stored) } else { OrderRecorded::Mismatch(stored) })
    }

    /// Whether `name` is an admin's or the given seller's (case and surrounding space aside):
    /// names nobody else may chat under.
    pub async fn is_reserved_name(&self, name: &str, seller_id: &str) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM users WHERE lower(trim(name)) = lower(trim($1)) AND (role = 'admin' OR id = $2) LIMIT 1",
        )
        .bind(name)
        .bind(seller_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// A new API token for the user (the old one stops working at once), valid until
    /// `expires_at` (`None`: no expiry); `None` for an unknown user.
    pub async fn rotate_token(&self, user_id: &str, expires_at: Option<DateTime<Utc>>) -> DbResult<Option<String>> {
        let token = secrets::new_api_token();
        let done = sqlx::query("UPDATE users SET token_hash = $1, token_expires_at = $2 WHERE id = $3")
            .bind(secrets::digest(&token))
            .bind(expires_at.map(timestamp))
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok((done.rows_affected() == 1).then_some(token))
    }

    /// Every token of the user stops working: its API token (replaced by one nobody has) and
    /// its viewer tokens. False for an unknown user.
    pub async fn revoke_tokens(&self, user_id: &str) -> DbResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET token_hash = $1, token_expires_at = NULL WHERE id = $2")
            .bind(secrets::digest(&secrets::new_api_token()))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM viewer_tokens WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user's API token expiry (`None`: never) and its live viewer tokens' expiries,
    /// soonest first; `None` for an unknown user. Tokens themselves are never stored.
    pub async fn token_expiries(&self, user_id: &str) -> DbResult<Option<(Option<DateTime<Utc>>, Vec<DateTime<Utc>>)>> {
        let Some(row) = sqlx::query("SELECT token_expires_at FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let api: Option<DateTime<Utc>> = row.try_get("token_expires_at")?;
        let viewer: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT expires_at FROM viewer_tokens WHERE user_id = $1 AND expires_at > $2 ORDER BY expires_at",
        )
        .bind(user_id)
        .bind(timestamp(Utc::now()))
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((api, viewer)))
    }

    /// Guests whose every token has expired and who left nothing behind (no chat message,
    /// reaction or mute): deleted. Returns how many.
    pub async fn purge_guests(&self) -> DbResult<u64> {
        let done = sqlx::query(
            "DELETE FROM users WHERE guest = 1 \
             AND NOT EXISTS (SELECT 1 FROM viewer_tokens t WHERE t.user_id = users.id AND t.expires_at > $1) \
             AND created_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM chat_messages m WHERE m.user_id = users.id) \
             AND NOT EXISTS (SELECT 1 FROM reactions r WHERE r.user_id = users.id) \
             AND NOT EXISTS (SELECT 1 FROM chat_mutes c WHERE c.user_id = users.id)",
        )
        .bind(timestamp(Utc::now()))
        .bind(timestamp(Utc::now() - chrono::Duration::days(1)))
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM viewer_tokens WHERE expires_at <= $1")
            .bind(timestamp(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Admins, sellers and shops (not viewers), oldest first.
    pub async fn staff_users(&self) -> DbResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, name, role FROM users WHERE role IN ('admin', 'seller', 'shop') ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Links a shop to a seller it sells for; false when already linked.
    pub async fn link_shop(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO shop_sellers (shop_id, seller_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (shop_id, seller_id) DO NOTHING",
        )
        .bind(shop_id)
        .bind(seller_id)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// False when they were not linked.
    pub async fn unlink_shop(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM shop_sellers WHERE shop_id = $1 AND seller_id = $2")
            .bind(shop_id)
            .bind(seller_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn shop_sells_for(&self, shop_id: &str, seller_id: &str) -> DbResult<bool> {
        let row = sqlx::query("SELECT 1 FROM shop_sellers WHERE shop_id = $1 AND seller_id = $2")
            .bind(shop_id)
            .bind(seller_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The sellers a shop is linked to, by name.
    pub async fn shop_sellers(&self, shop_id: &str) -> DbResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.role FROM shop_sellers l JOIN users u ON u.id = l.seller_id \
             WHERE l.shop_id = $1 ORDER BY u.name, u.id",
        )
        .bind(shop_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn order_totals(&self, stream_id: &str) -> DbResult<OrderTotals> {
        let rows = sqlx::query(
            // An amount is at most 10^13 (×10^4): SUM over amounts overflows i64 after some
            // 900,000 orders, SUM over whole units and fractions apart only after 10^9.
            "SELECT product_id, currency, COUNT(*) AS orders, SUM(quantity) AS units, \
             SUM(amount_e4 / 10000) AS revenue_units, SUM(amount_e4 % 10000) AS revenue_e4_rest \
             FROM orders WHERE stream_id = $1 GROUP BY product_id, currency ORDER BY product_id, currency",
        )
        .bind(stream_id)
        .fetch_all(&self.pool)
        .await?;
        let mut totals = OrderTotals::default();
        for row in rows {
            let product = ProductTotal {
                product_id: row.try_get("product_id")?,
                currency: row.try_get("currency")?,
                orders: row.try_get("orders")?,
                units: row.try_get("units")?,
                revenue_e4: i128::from(row.try_get::<i64, _>("revenue_units")?) * 10_000
                    + i128::from(row.try_get::<i64, _>("revenue_e4_rest")?),
            };
            totals.orders += product.orders;
            totals.units += product.units;
            match totals.revenue.iter_mut().find(|(c, _)| *c == product.currency) {
                Some((_, sum)) => *sum += product.revenue_e4,
                None => totals.revenue.push((product.currency.clone(), product.revenue_e4)),
            }
            totals.products.push(product);
        }
        totals.revenue.sort();
        Ok(totals)
    }
}

fn chat_from_row(row: &SqliteRow) -> DbResult<ChatMessage> {
    Ok(ChatMessage {
        id: row.try_get("id")?,
        stream_id: row.try_get("stream_id")?,
        user: ChatUser {
            id: row.try_get("user_id")?,
            name: row.try_get("user_name")?,
            role: match row.try_get::<Option<String>, _>("badge")?.as_deref() {
                Some("seller") => Some("seller"),
                Some("moderator") => Some("moderator"),
                _ => None,
            },
        },
        text: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
        media_time: row.try_get("media_time")?,
    })
}

fn pin_from_row(row: &SqliteRow) -> DbResult<Pin> {
    Ok(Pin {
        id: row.try_get("id")?,
        stream_id: row.try_get("stream_id")?,
        product_id: row.try_get("product_id")?,
        title: row.try_get("title")?,
        price: row.try_get("price")?,
        currency: row.try_get("currency")?,
        image_url: row.try_get("image_url")?,
        url: row.try_get("url")?,
        pinned_at: row.try_get("pinned_at")?,
        unpinned_at: row.try_get("unpinned_at")?,
    })
}

fn user_from_row(row: &SqliteRow) -> DbResult<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| DbError::Corrupt(format!("role {role}")))?,
    })
}

/// One fixed-width text form, so that SQLite orders timestamps correctly as text
/// (sqlx's own encoding varies the number of fractional digits).
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn stream_from_row(row: &SqliteRow) -> DbResult<Stream> {
    let status: String = row.try_get("status")?;
    Ok(Stream {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        playback_id: row.try_get("playback_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        status: StreamStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("status {status}")))?,
        stream_key: row.try_get("stream_key")?,
        key_valid_from: row.try_get("key_valid_from")?,
        key_valid_until: row.try_get("key_valid_until")?,
        publish_seq: row.try_get("publish_seq")?,
        reconnecting_since: row.try_get("reconnecting_since")?,
        created_at: row.try_get("created_at")?,
        scheduled_at: row.try_get("scheduled_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn tokens_expire_rotate_and_revoke_and_guests_are_purged() {
        let (_dir, db) = db().await;
        let (user, token) = db.create_user("s", Role::Seller).await.unwrap();
        assert!(db.user_by_token(&token).await.unwrap().is_some());
        let expired =
            db.rotate_token(&user.id, Some(Utc::now() - chrono::Duration::seconds(1))).await.unwrap().unwrap();
        assert!(db.user_by_token(&token).await.unwrap().is_none(), "the old token after a rotation");
        assert!(db.user_by_token(&expired).await.unwrap().is_none(), "an expired token");
        let fresh = db.rotate_token(&user.id, Some(Utc::now() + chrono::Duration::days(1))).await.unwrap().unwrap();
        assert_eq!(db.user_by_token(&fresh).await.unwrap().unwrap().id, user.id);
        assert!(db.token_expiries(&user.id).await.unwrap().unwrap().0.is_some());
        assert!(db.revoke_tokens(&user.id).await.unwrap());
        assert!(db.user_by_token(&fresh).await.unwrap().is_none());
        assert!(db.rotate_token("nobody", None).await.unwrap().is_none());

        // A guest with an expired token and nothing left behind goes; one who chatted stays.
        let quiet = db.create_guest("quiet").await.unwrap();
        let chatty = db.create_guest("chatty").await.unwrap();
        let (viewer, _) = db.create_user("cli viewer", Role::Viewer).await.unwrap();
        let stream = db.create_stream(new_stream(&user.id, "t")).await.unwrap();
        db.insert_chat(&stream.id, &chatty.id, "hi", None).await.unwrap();
        sqlx::query("UPDATE users SET created_at = $1")
            .bind(timestamp(Utc::now() - chrono::Duration::days(2)))
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(db.purge_guests().await.unwrap(), 1);
        assert!(db.user(&quiet.id).await.unwrap().is_none());
        assert!(db.user(&chatty.id).await.unwrap().is_some());
        assert!(db.user(&viewer.id).await.unwrap().is_some(), "only guests are purged");
    }

    fn new_stream<'a>(owner_id: &'a str, title: &'a str) -> NewStream<'a> {
        NewStream {
            owner_id,
            title,
            description: None,
            scheduled_at: None,
            key_valid_from: None,
            key_valid_until: None,
        }
    }

    #[tokio::test]
    async fn publish_takeover_reconnect_and_keys() {
        let (_dir, db) = db().await;
        let (seller, token) = db.create_user("Sam", Role::Seller).await.unwrap();
        assert_eq!(db.user_by_token(&token).await.unwrap().unwrap().id, seller.id);
        assert!(db.user_by_token("hk_nope").await.unwrap().is_none());

        let stream = db.create_stream(new_stream(&seller.id, "Shoes")).await.unwrap();
        assert_eq!(stream.status, StreamStatus::Scheduled);

        assert_eq!(db.begin_publish("sk_wrong").await.unwrap().unwrap_err(), PublishDenied::UnknownKey);
        let first = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
        assert_eq!((first.playback_id.as_str(), first.publish_seq), (stream.playback_id.as_str(), 1));
        // The same key again while live: a takeover, with the next publish number.
        let second = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
        assert_eq!(second.publish_seq, 2);
        // The taken-over publisher leaving changes nothing; the current one leaving does.
        db.publisher_gone(&stream.id, first.publish_seq).await.unwrap();
        assert_eq!(db.stream(&stream.id).await.unwrap().unwrap().status, StreamStatus::Live);
        db.publisher_gone(&stream.id, second.publish_seq).await.unwrap();
        let now = db.stream(&stream.id).await.unwrap().unwrap();
        assert_eq!(now.status, StreamStatus::Reconnecting);
        assert!(now.started_at.is_some() && now.reconnecting_since.is_some());
        assert_eq!(db.reconnecting_since_before(Utc::now()).await.unwrap().len(), 1);
        assert!(db.reconnecting_since_before(Utc::now() - chrono::Duration::seconds(60)).await.unwrap().is_empty());
        let third = db.begin_publish(&stream.stream_key).await.unwrap().unwrap();
        assert!(db.stream(&stream.id).await.unwrap().unwrap().reconnecting_since.is_none());

        let reset = db.reset_stream_key(&stream.id).await.unwrap().unwrap();
        assert_ne!(reset.stream_key, stream.stream_key);
        db.publisher_gone(&stream.id, third.publish_seq).await.unwrap();
        assert_eq!(db.begin_publish(&stream.stream_key).await.unwrap().unwrap_err(), PublishDenied::UnknownKey);

        let archived = db
            .transition(&stream.id, &[StreamStatus::Live, StreamStatus::Reconnecting], StreamStatus::Archived)
            .await
            .unwrap()
            .unwrap();
        assert!(archived.ended_at.is_some() && archived.reconnecting_since.is_none());
        assert_eq!(db.begin_publish(&reset.stream_key).await.unwrap().unwrap_err(), PublishDenied::StreamOver);
        assert!(
            db.transition(&stream.id, &[StreamStatus::Scheduled], StreamStatus::Cancelled).await.unwrap().is_none()
        );
    }

    #[tokio::test]
    async fn keys_work_only_inside_their_window() {
        let (_dir, db) = db().await;
        let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
        let now = Utc::now();
        let hours = chrono::Duration::hours;
        // Scheduled in two hours: the key opens an hour before.
        let later = NewStream { scheduled_at: Some(now + hours(2)), ..new_stream(&seller.id, "later") };
        let later = db.create_stream(later).await.unwrap();
        assert_eq!(db.begin_publish(&later.stream_key).await.unwrap().unwrap_err(), PublishDenied::OutsideKeyWindow);
        // Scheduled in thirty minutes: already open.
        let soon =
            NewStream { scheduled_at: Some(now + chrono::Duration::minutes(30)), ..new_stream(&seller.id, "soon") };
        let soon = db.create_stream(soon).await.unwrap();
        db.begin_publish(&soon.stream_key).await.unwrap().unwrap();
        // Explicit windows win over the default.
        let closed = NewStream { key_valid_until: Some(now - hours(1)), ..new_stream(&seller.id, "closed") };
        let closed = db.create_stream(closed).await.unwrap();
        assert_eq!(db.begin_publish(&closed.stream_key).await.unwrap().unwrap_err(), PublishDenied::OutsideKeyWindow);
        let opened = NewStream {
            scheduled_at: Some(now + hours(5)),
            key_valid_from: Some(now - hours(1)),
            ..new_stream(&seller.id, "opened")
        };
        let opened = db.create_stream(opened).await.unwrap();
        db.begin_publish(&opened.stream_key).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn settings_round_trip() {
        let (_dir, db) = db().await;
        assert_eq!(db.settings().await.unwrap(), Settings::default());
        let changed = Settings::default().patched(serde_json::json!({"reconnect_window_seconds": 7})).unwrap();
        db.save_settings(&changed).await.unwrap();
        assert_eq!(db.settings().await.unwrap().reconnect_window_seconds, 7);
    }

    #[tokio::test]
    async fn viewer_tokens_map_shop_users_and_expire() {
        let (_dir, db) = db().await;
        let (shop, _) = db.create_user("shop", Role::Shop).await.unwrap();
        let (other_shop, _) = db.create_user("other shop", Role::Shop).await.unwrap();
        let first = db.shop_viewer(&shop.id, "u-1", "Grace").await.unwrap();
        let again = db.shop_viewer(&shop.id, "u-1", "Grace H.").await.unwrap();
        assert_eq!(again.id, first.id, "the same shop user is the same viewer");
        assert_eq!(again.name, "Grace H.", "the name follows the shop");
        assert_eq!(again.role, Role::Viewer);
        let elsewhere = db.shop_viewer(&other_shop.id, "u-1", "Grace").await.unwrap();
        assert_ne!(elsewhere.id, first.id, "user ids are per shop");

        let token = db.issue_viewer_token(&first.id, Utc::now() + chrono::Duration::seconds(60)).await.unwrap();
        assert_eq!(db.user_by_token(&token).await.unwrap().unwrap().id, first.id);
        let expired = db.issue_viewer_token(&first.id, Utc::now() - chrono::Duration::seconds(1)).await.unwrap();
        assert!(db.user_by_token(&expired).await.unwrap().is_none(), "an expired token signs nobody in");
        let guest = db.create_guest("Ada").await.unwrap();
        let guest_token = db.issue_viewer_token(&guest.id, Utc::now() + chrono::Duration::seconds(60)).await.unwrap();
        assert_eq!(db.user_by_token(&guest_token).await.unwrap().unwrap().name, "Ada");
        // Issuing sweeps expired tokens.
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM viewer_tokens").fetch_one(&db.pool).await.unwrap();
        assert_eq!(left, 2);
    }

    #[tokio::test]
    async fn restart_recovery_and_listing() {
        let (_dir, db) = db().await;
        let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
        for title in ["a", "b", "c"] {
            db.create_stream(new_stream(&seller.id, title)).await.unwrap();
        }
        let all = db.list_streams(&[StreamStatus::Scheduled], None, Page { limit: 10, offset: 0 }).await.unwrap();
        assert_eq!(all.iter().map(|s| s.title.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
        let second = db.list_streams(&[StreamStatus::Scheduled], None, Page { limit: 2, offset: 2 }).await.unwrap();
        assert_eq!(second.len(), 1);

        db.begin_publish(&all[0].stream_key).await.unwrap().unwrap();
        assert_eq!(db.recover_after_restart().await.unwrap(), 1);
        assert_eq!(db.stream(&all[0].id).await.unwrap().unwrap().status, StreamStatus::Reconnecting);
    }

    #[tokio::test]
    async fn engagement_and_commerce() {
        let (_dir, db) = db().await;
        let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
        let (viewer, _) = db.create_user("Vi", Role::Viewer).await.unwrap();
        let (shop, _) = db.create_user("Shop", Role::Shop).await.unwrap();
        let stream = db.create_stream(new_stream(&seller.id, "Shoes")).await.unwrap();
        let id = stream.id.as_str();

        // Reactions: one per user, changeable, removable.
        db.set_reaction(id, &viewer.id, Some(1)).await.unwrap();
        db.set_reaction(id, &seller.id, Some(1)).await.unwrap();
        assert_eq!(db.reaction_counts(id).await.unwrap(), (2, 0));
        db.set_reaction(id, &viewer.id, Some(-1)).await.unwrap();
        assert_eq!(db.reaction_counts(id).await.unwrap(), (1, 1));
        assert_eq!(db.reaction_of(id, &viewer.id).await.unwrap(), Some(-1));
        db.set_reaction(id, &viewer.id, None).await.unwrap();
        assert_eq!(db.reaction_counts(id).await.unwrap(), (1, 0));

        // Counters only grow.
        let c = ViewerCounters { peak: 3, unique: 5, replay_views: 1 };
        db.save_viewer_counters(&[(id.to_owned(), c)]).await.unwrap();
        db.save_viewer_counters(&[(id.to_owned(), ViewerCounters { peak: 2, unique: 6, replay_views: 0 })])
            .await
            .unwrap();
        assert_eq!(db.viewer_counters(id).await.unwrap(), ViewerCounters { peak: 3, unique: 6, replay_views: 1 });

        // Chat pages, oldest first within a page.
        for n in 0..5 {
            db.insert_chat(id, &viewer.id, &format!("m{n}"), None).await.unwrap();
        }
        let last = db.chat_page(id, None, None, 2).await.unwrap();
        assert_eq!(last.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m3", "m4"]);
        assert_eq!(last[0].user.name, "Vi");
        let before = db.chat_page(id, Some(last[0].id), None, 10).await.unwrap();
        assert_eq!(before.len(), 3);
        let after = db.chat_page(id, None, Some(before[0].id), 2).await.unwrap();
        assert_eq!(after.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
        assert!(db.delete_chat(id, last[1].id).await.unwrap());
        assert!(!db.delete_chat(id, last[1].id).await.unwrap());
        assert_eq!(db.chat_count(id).await.unwrap(), 4);
        db.mute(id, &viewer.id, &seller.id).await.unwrap();
        db.mute(id, &viewer.id, &seller.id).await.unwrap();
        assert!(db.is_muted(id, &viewer.id).await.unwrap());
        assert!(db.unmute(id, &viewer.id).await.unwrap());
        assert!(!db.is_muted(id, &viewer.id).await.unwrap());

        // Pins: one active per product.
        let new_pin = || NewPin {
            stream_id: id,
            product_id: "p1",
            title: "Red shoe",
            price: "19.99",
            currency: "EUR",
            image_url: None,
            url: Some("https://shop.example/p1"),
        };
        let pin = db.insert_pin(new_pin()).await.unwrap().unwrap();
        assert!(db.insert_pin(new_pin()).await.unwrap().is_none());
        let unpinned = db.unpin(id, "p1").await.unwrap().unwrap();
        assert_eq!((unpinned.id.as_str(), unpinned.unpinned_at.is_some()), (pin.id.as_str(), true));
        assert!(db.unpin(id, "p1").await.unwrap().is_none());
        db.insert_pin(new_pin()).await.unwrap().unwrap();
        assert_eq!(db.pins(id, false).await.unwrap().len(), 1);
        assert_eq!(db.pins(id, true).await.unwrap().len(), 2);

        // Orders: idempotent per (shop, order id); totals by product and currency.
        let order = |order_id: &str, product: &str, quantity, amount_e4, currency: &str| Order {
            order_id: order_id.into(),
            stream_id: id.into(),
            product_id: product.into(),
            quantity,
            amount_e4,
            currency: currency.into(),
            created_at: Utc::now(),
        };
        assert!(matches!(
            db.record_order(&shop.id, &order("o1", "p1", 2, 399_800, "EUR")).await.unwrap(),
            OrderRecorded::Created(_)
        ));
        assert!(matches!(
            db.record_order(&shop.id, &order("o1", "p1", 2, 399_800, "EUR")).await.unwrap(),
            OrderRecorded::Repeated(_)
        ));
        assert!(matches!(
            db.record_order(&shop.id, &order("o1", "p1", 3, 399_800, "EUR")).await.unwrap(),
            OrderRecorded::Mismatch(_)
        ));
        db.record_order(&shop.id, &order("o2", "p1", 1, 199_900, "EUR")).await.unwrap();
        db.record_order(&shop.id, &order("o3", "p2", 1, 100_000, "USD")).await.unwrap();
        let totals = db.order_totals(id).await.unwrap();
        assert_eq!((totals.orders, totals.units), (3, 4));
        assert_eq!(totals.revenue, vec![("EUR".to_owned(), 599_700), ("USD".to_owned(), 100_000)]);
        assert_eq!(totals.products.len(), 2);
        assert_eq!((totals.products[0].orders, totals.products[0].units), (2, 3));

        // A million orders of the largest amount: far past i64, still exact.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) \
             INSERT INTO orders (shop_id, order_id, stream_id, product_id, quantity, amount_e4, currency, created_at) \
             SELECT $1, 'big' || i, $2, 'p3', 1, $3, 'JPY', $4 FROM n",
        )
        .bind(&shop.id)
        .bind(id)
        .bind(crate::money::MAX_AMOUNT_E4)
        .bind(timestamp(Utc::now()))
        .execute(&db.pool)
        .await
        .unwrap();
        let totals = db.order_totals(id).await.unwrap();
        let jpy = totals.revenue.iter().find(|(c, _)| c == "JPY").unwrap().1;
        assert_eq!(jpy, 1_000_000 * i128::from(crate::money::MAX_AMOUNT_E4));
        assert_eq!(crate::money::format_amount(jpy), "1000000000000000.00");

        // Shops and the sellers they sell for.
        let (seller2, _) = db.create_user("other seller", Role::Seller).await.unwrap();
        assert!(!db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
        assert!(db.link_shop(&shop.id, &seller2.id).await.unwrap());
        assert!(!db.link_shop(&shop.id, &seller2.id).await.unwrap(), "linked once");
        assert!(db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
        assert_eq!(
            db.shop_sellers(&shop.id).await.unwrap().iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            [seller2.id.as_str()]
        );
        assert!(db.unlink_shop(&shop.id, &seller2.id).await.unwrap());
        assert!(!db.unlink_shop(&shop.id, &seller2.id).await.unwrap());
        assert!(!db.shop_sells_for(&shop.id, &seller2.id).await.unwrap());
    }
}
