//! The repository: every SQL statement hawker runs. SQLite today; the queries are written
//! portably (`$n` placeholders, RETURNING, CHECK constraints) so a PostgreSQL twin can follow.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow};

use crate::model::{PublishDenied, PublishTicket, Role, Stream, StreamStatus, User};
use crate::settings::Settings;
use crate::secrets;

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
        Ok(Self { pool })
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

    pub async fn user_by_token(&self, token: &str) -> DbResult<Option<User>> {
        let row = sqlx::query("SELECT id, name, role FROM users WHERE token_hash = $1")
            .bind(secrets::digest(token))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(User {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role: Role::parse(&role).ok_or_else(|| DbError::Corrupt(format!("role {role}")))?,
            })
        })
        .transpose()
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

    pub async fn stream_by_playback_id(&self, playback_id: &str) -> DbResult<Option<Stream>> {
        let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE playback_id = $1");
        let row = sqlx::query(&sql).bind(playback_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// Streams in any of `statuses`, newest first.
    pub async fn list_streams(&self, statuses: &[StreamStatus], page: Page) -> DbResult<Vec<Stream>> {
        // Statuses are our own constants, never user text: safe to inline.
        let set = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE status IN ({set}) \
             ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(&sql).bind(page.limit).bind(page.offset).fetch_all(&self.pool).await?;
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
        row.as_ref().map(stream_from_row).transpose()
    }

    /// Gives a stream a new key; the old one stops matching at once.
    pub async fn reset_stream_key(&self, id: &str) -> DbResult<Option<Stream>> {
        let key = secrets::new_stream_key();
        let sql = format!(
            "UPDATE streams SET stream_key = $1, stream_key_hash = $2 \
             WHERE id = $3 AND status IN ('scheduled', 'live', 'reconnecting') RETURNING {STREAM_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&key)
            .bind(secrets::digest(&key))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
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
        match row.as_ref().map(stream_from_row).transpose()? {
            Some(live) => Ok(Ok(PublishTicket {
                stream_id: live.id,
                playback_id: live.playback_id,
                publish_seq: live.publish_seq,
            })),
            None => Ok(Err(PublishDenied::StreamOver)),
        }
    }

    /// A publisher left. If it was still the stream's current publisher, the stream waits for
    /// it (the reconnect window starts); a publisher that was taken over changes nothing.
    pub async fn publisher_gone(&self, stream_id: &str, publish_seq: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE streams SET status = 'reconnecting', reconnecting_since = $1 \
             WHERE id = $2 AND status = 'live' AND publish_seq = $3",
        )
        .bind(timestamp(Utc::now()))
        .bind(stream_id)
        .bind(publish_seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Streams whose publisher has been gone since before `since`.
    pub async fn reconnecting_since_before(&self, since: DateTime<Utc>) -> DbResult<Vec<Stream>> {
        let sql = format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE status = 'reconnecting' AND reconnecting_since <= $1"
        );
        let rows = sqlx::query(&sql).bind(timestamp(since)).fetch_all(&self.pool).await?;
        rows.iter().map(stream_from_row).collect()
    }

    /// At start-up no publisher is connected: streams a crash left `live` wait for theirs,
    /// with a fresh reconnect window.
    pub async fn recover_after_restart(&self) -> DbResult<u64> {
        let done = sqlx::query("UPDATE streams SET status = 'reconnecting', reconnecting_since = $1 WHERE status = 'live'")
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
        Settings::from_stored(stored).map_err(|e| DbError::Corrupt(format!("settings: {e}")))
    }

    pub async fn save_settings(&self, settings: &Settings) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        for (name, value) in settings.to_stored() {
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2")
                .bind(name)
                .bind(value.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
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

    fn new_stream<'a>(owner_id: &'a str, title: &'a str) -> NewStream<'a> {
        NewStream { owner_id, title, description: None, scheduled_at: None, key_valid_from: None, key_valid_until: None }
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
        assert!(db.transition(&stream.id, &[StreamStatus::Scheduled], StreamStatus::Cancelled).await.unwrap().is_none());
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
        let soon = NewStream { scheduled_at: Some(now + chrono::Duration::minutes(30)), ..new_stream(&seller.id, "soon") };
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
    async fn restart_recovery_and_listing() {
        let (_dir, db) = db().await;
        let (seller, _) = db.create_user("Sam", Role::Seller).await.unwrap();
        for title in ["a", "b", "c"] {
            db.create_stream(new_stream(&seller.id, title)).await.unwrap();
        }
        let all = db.list_streams(&[StreamStatus::Scheduled], Page { limit: 10, offset: 0 }).await.unwrap();
        assert_eq!(all.iter().map(|s| s.title.as_str()).collect::<Vec<_>>(), ["c", "b", "a"]);
        let second = db.list_streams(&[StreamStatus::Scheduled], Page { limit: 2, offset: 2 }).await.unwrap();
        assert_eq!(second.len(), 1);

        db.begin_publish(&all[0].stream_key).await.unwrap().unwrap();
        assert_eq!(db.recover_after_restart().await.unwrap(), 1);
        assert_eq!(db.stream(&all[0].id).await.unwrap().unwrap().status, StreamStatus::Reconnecting);
    }
}
