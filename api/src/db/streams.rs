//! Streams: creation, keys, publishes and status changes.

use super::*;

/// A new stream as the API creates it.
pub struct NewStream<'a> {
    pub owner_id: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub key_valid_from: Option<DateTime<Utc>>,
    pub key_valid_until: Option<DateTime<Utc>>,
    pub practice: bool,
    pub remind_minutes_before: Option<i64>,
}

#[cfg(test)]
impl<'a> NewStream<'a> {
    /// A stream with a title and nothing else set, for tests.
    pub(crate) fn titled(owner_id: &'a str, title: &'a str) -> Self {
        Self {
            owner_id,
            title,
            description: None,
            scheduled_at: None,
            key_valid_from: None,
            key_valid_until: None,
            practice: false,
            remind_minutes_before: None,
        }
    }
}

/// Which page of a stream list.
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// How long a node's hold on a live stream lasts unless renewed (see
/// [`crate::lifecycle::hold_leases`]): how long a stream whose node died stays `live`.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(10);

pub(super) const STREAM_COLUMNS: &str = "id, owner_id, playback_id, title, description, status, stream_key, \
     key_valid_from, key_valid_until, publish_seq, reconnecting_since, \
     created_at, scheduled_at, started_at, ended_at, practice, video_path, remind_minutes_before";

pub(super) fn stream_from_row(row: &impl RowExt) -> DbResult<Stream> {
    let status: String = row.text("status")?;
    Ok(Stream {
        id: row.text("id")?,
        owner_id: row.text("owner_id")?,
        playback_id: row.text("playback_id")?,
        title: row.text("title")?,
        description: row.text_opt("description")?,
        status: StreamStatus::parse(&status).ok_or_else(|| DbError::Corrupt(format!("status {status}")))?,
        stream_key: row.text("stream_key")?,
        key_valid_from: row.time_opt("key_valid_from")?,
        key_valid_until: row.time_opt("key_valid_until")?,
        publish_seq: row.int("publish_seq")?,
        reconnecting_since: row.time_opt("reconnecting_since")?,
        created_at: row.time("created_at")?,
        scheduled_at: row.time_opt("scheduled_at")?,
        started_at: row.time_opt("started_at")?,
        ended_at: row.time_opt("ended_at")?,
        practice: row.flag("practice")?,
        video_path: row.text_opt("video_path")?,
        remind_minutes_before: row.int_opt("remind_minutes_before")?,
    })
}

impl Db {
    pub async fn create_stream(&self, new: NewStream<'_>) -> DbResult<Stream> {
        on_pool!(self, pool => {
            let key = secrets::new_stream_key();
            let sql = format!(
                "INSERT INTO streams (id, owner_id, playback_id, title, description, status, stream_key, \
                 stream_key_hash, created_at, scheduled_at, key_valid_from, key_valid_until, practice, \
                 remind_minutes_before) \
                 VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {STREAM_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(secrets::new_id())
                .bind(new.owner_id)
                .bind(secrets::new_playback_id())
                .bind(new.title)
                .bind(new.description)
                .bind(&key)
                .bind(secrets::digest(&key))
                .bind(Ts::now())
                .bind(new.scheduled_at.map(ts))
                .bind(new.key_valid_from.map(ts))
                .bind(new.key_valid_until.map(ts))
                .bind(new.practice)
                .bind(new.remind_minutes_before)
                .fetch_one(pool)
                .await?;
            stream_from_row(&row)
        })
    }

    pub async fn stream(&self, id: &str) -> DbResult<Option<Stream>> {
        on_pool!(self, pool => {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = $1");
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(stream_from_row).transpose()
        })
    }

    /// A playable stream's id and status, from memory (see [`Db::load_playback_index`]).
    pub fn playback(&self, playback_id: &str) -> Option<Playback> {
        self.playback.get(playback_id)
    }

    /// Whether a stream is reconnecting, from memory. Complete on one node only: on a shared
    /// database another node's changes reach the index through events.
    pub fn any_reconnecting(&self) -> bool {
        self.playback.any(StreamStatus::Reconnecting)
    }

    /// Fills the in-memory playback index from the database; call once the server's status
    /// changes at start-up are applied.
    pub async fn load_playback_index(&self) -> DbResult<()> {
        on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT playback_id, id, status FROM streams WHERE status IN ('live', 'reconnecting', 'archived')",
            )
            .fetch_all(pool)
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
        })
    }

    /// Re-reads one stream's entry in the playback index: another node changed its status.
    pub async fn refresh_playback(&self, stream_id: &str) -> DbResult<()> {
        if let Some(stream) = self.stream(stream_id).await? {
            self.playback.apply(&stream);
        }
        Ok(())
    }

    pub async fn stream_by_playback_id(&self, playback_id: &str) -> DbResult<Option<Stream>> {
        on_pool!(self, pool => {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE playback_id = $1");
            let row = sqlx::query(&sql).bind(playback_id).fetch_optional(pool).await?;
            row.as_ref().map(stream_from_row).transpose()
        })
    }

    /// Streams in any of `statuses`, newest first.
    /// Streams in one of `statuses`, newest first; only `owner`'s when given.
    /// Streams in `statuses`, newest first; `owner`'s only if given; practice streams only
    /// with `practice` (the owner's and admins' lists).
    pub async fn list_streams(
        &self,
        statuses: &[StreamStatus],
        (owner, practice): (Option<&str>, bool),
        page: Page,
    ) -> DbResult<Vec<Stream>> {
        on_pool!(self, pool => {
            // Statuses are our own constants, never user text: safe to inline.
            let set = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
            let rehearsals = if practice { "" } else { " AND practice = FALSE" };
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE status IN ({set}) AND ($3 IS NULL OR owner_id = $3){rehearsals} \
                 ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
            );
            let query = sqlx::query(&sql).bind(page.limit).bind(page.offset).bind(owner);
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(stream_from_row).collect()
        })
    }

    /// Applies `trigger` (see [`crate::model::next_status`]) atomically. Returns the updated
    /// stream, or `None` when the trigger does not apply to its status (the caller reports the
    /// current status).
    pub async fn transition(&self, id: &str, trigger: Trigger) -> DbResult<Option<Stream>> {
        let transition = Transition::of(trigger);
        let (set, to) = (transition.from_sql(), transition.to);
        on_pool!(self, pool => {
            let now = Ts::now();
            // started_at is the first go-live; ended_at is set by any terminal status; the
            // reconnect window runs only while reconnecting.
            let sql = format!(
                "UPDATE streams SET status = $1, \
                 started_at = CASE WHEN $1 = 'live' THEN COALESCE(started_at, $2) ELSE started_at END, \
                 ended_at = CASE WHEN $1 IN ('ended', 'archived', 'cancelled') THEN $2 ELSE ended_at END, \
                 reconnecting_since = CASE WHEN $1 = 'reconnecting' THEN $2 ELSE NULL END, \
                 lease_node = CASE WHEN $1 = 'live' THEN lease_node ELSE NULL END, \
                 lease_expires_at = CASE WHEN $1 = 'live' THEN lease_expires_at ELSE NULL END \
                 WHERE id = $3 AND status IN ({set}) RETURNING {STREAM_COLUMNS}"
            );
            let row = sqlx::query(&sql).bind(to.as_str()).bind(now).bind(id).fetch_optional(pool).await?;
            let stream = row.as_ref().map(stream_from_row).transpose()?;
            if let Some(stream) = &stream {
                self.playback.apply(stream);
            }
            Ok(stream)
        })
    }

    /// Records that an archived stream's replay MP4 is stored at `path` (under its HLS
    /// folder). False when the stream is gone or no longer archived (deleted meanwhile).
    pub async fn set_video_path(&self, id: &str, path: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let sql = "UPDATE streams SET video_path = $1 WHERE id = $2 AND status = 'archived'";
            Ok(sqlx::query(sql).bind(path).bind(id).execute(pool).await?.rows_affected() == 1)
        })
    }

    /// Archived streams whose replay MP4 is not made yet, oldest first.
    pub async fn archived_without_video(&self) -> DbResult<Vec<Stream>> {
        on_pool!(self, pool => {
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE status = 'archived' AND video_path IS NULL \
                 ORDER BY ended_at"
            );
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter().map(stream_from_row).collect()
        })
    }

    /// Gives a stream a new key; the old one stops matching at once.
    pub async fn reset_stream_key(&self, id: &str) -> DbResult<Option<Stream>> {
        on_pool!(self, pool => {
            let key = secrets::new_stream_key();
            let sql = format!(
                "UPDATE streams SET stream_key = $1, stream_key_hash = $2 \
                 WHERE id = $3 AND status IN ('scheduled', 'live', 'reconnecting') RETURNING {STREAM_COLUMNS}"
            );
            let row = sqlx::query(&sql).bind(&key).bind(secrets::digest(&key)).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(stream_from_row).transpose()
        })
    }

    /// The ingest's question: may this key publish now? If so the stream is `live` on return
    /// with a new publish number. A stream that is already live is taken over: the caller
    /// disconnects the previous publisher.
    pub async fn begin_publish(&self, key: &str) -> DbResult<Result<PublishTicket, PublishDenied>> {
        on_pool!(self, pool => {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE stream_key_hash = $1");
            let row = sqlx::query(&sql).bind(secrets::digest(key)).fetch_optional(pool).await?;
            let Some(stream) = row.as_ref().map(stream_from_row).transpose()? else {
                return Ok(Err(PublishDenied::UnknownKey));
            };
            // The digest matched; compare the key itself too, in constant time.
            if !secrets::constant_time_eq(&stream.stream_key, key) {
                return Ok(Err(PublishDenied::UnknownKey));
            }
            if !stream.key_valid_at(Utc::now()) {
                return Ok(Err(PublishDenied::OutsideKeyWindow(stream.id)));
            }
            // The key is re-checked in the update: a reset between the two statements wins.
            let publish = Transition::of(Trigger::Publish);
            let (set, to) = (publish.from_sql(), publish.to.as_str());
            let sql = format!(
                "UPDATE streams SET status = '{to}', publish_seq = publish_seq + 1, reconnecting_since = NULL, \
                 started_at = COALESCE(started_at, $1), lease_node = $4, lease_expires_at = $5 \
                 WHERE id = $2 AND stream_key_hash = $3 AND status IN ({set}) \
                 RETURNING {STREAM_COLUMNS}"
            );
            let row = sqlx::query(&sql)
                .bind(Ts::now())
                .bind(&stream.id)
                .bind(secrets::digest(key))
                .bind(self.node())
                .bind(ts(Utc::now() + LEASE))
                .fetch_optional(pool)
                .await?;
            let Some(live) = row.as_ref().map(stream_from_row).transpose()? else {
                return Ok(Err(PublishDenied::StreamOver(stream.id)));
            };
            self.playback.apply(&live);
            Ok(Ok(PublishTicket {
                stream_id: live.id,
                playback_id: live.playback_id,
                publish_seq: live.publish_seq,
                previous_status: stream.status,
            }))
        })
    }

    /// The id of the stream whose key this is, if any (the key compared in constant time).
    pub async fn stream_id_by_key(&self, key: &str) -> DbResult<Option<String>> {
        on_pool!(self, pool => {
            let row = sqlx::query("SELECT id, stream_key FROM streams WHERE stream_key_hash = $1")
                .bind(secrets::digest(key))
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let stored = row.text("stream_key")?;
            Ok(secrets::constant_time_eq(&stored, key).then(|| row.text("id")).transpose()?)
        })
    }

    /// Records a publish refused or dropped for a reason the seller can fix (the latest wins).
    pub async fn note_refusal(&self, stream_id: &str, reason: RefusalReason, detail: &str) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "UPDATE streams SET last_refusal_reason = $1, last_refusal_detail = $2, last_refusal_at = $3 WHERE id = $4",
            )
            .bind(reason.as_str())
            .bind(detail)
            .bind(Ts::now())
            .bind(stream_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The stream's last refusal: reason, detail, when.
    pub async fn last_refusal(&self, stream_id: &str) -> DbResult<Option<(RefusalReason, String, DateTime<Utc>)>> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT last_refusal_reason, last_refusal_detail, last_refusal_at FROM streams \
                 WHERE id = $1 AND last_refusal_at IS NOT NULL",
            )
            .bind(stream_id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let reason = row.text_opt("last_refusal_reason")?.as_deref().and_then(RefusalReason::parse);
            Ok(match reason {
                Some(reason) => Some((reason, row.text_opt("last_refusal_detail")?.unwrap_or_default(), row.time("last_refusal_at")?)),
                None => None,
            })
        })
    }

    /// A publisher left. If it was still the stream's current publisher, the stream waits for
    /// it (the reconnect window starts); a publisher that was taken over changes nothing.
    /// Returns whether the stream moved to `reconnecting`.
    pub async fn publisher_gone(&self, stream_id: &str, publish_seq: i64) -> DbResult<bool> {
        on_pool!(self, pool => {
            let gone = Transition::of(Trigger::PublisherGone);
            let sql = format!(
                "UPDATE streams SET status = '{}', reconnecting_since = $1, lease_node = NULL, lease_expires_at = NULL \
                 WHERE id = $2 AND status IN ({}) AND publish_seq = $3 RETURNING playback_id",
                gone.to.as_str(),
                gone.from_sql()
            );
            let row = sqlx::query(&sql)
            .bind(Ts::now())
            .bind(stream_id)
            .bind(publish_seq)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(false) };
            self.playback.set(&row.try_get::<String, _>("playback_id")?, stream_id, gone.to);
            Ok(true)
        })
    }

    /// Streams whose publisher has been gone since before `since`.
    pub async fn reconnecting_since_before(&self, since: DateTime<Utc>) -> DbResult<Vec<Stream>> {
        on_pool!(self, pool => {
            let sql =
                format!("SELECT {STREAM_COLUMNS} FROM streams WHERE status = 'reconnecting' AND reconnecting_since <= $1");
            let rows = sqlx::query(&sql).bind(ts(since)).fetch_all(pool).await?;
            rows.iter().map(stream_from_row).collect()
        })
    }

    /// At start-up no publisher is connected here: streams a crash left `live` wait for theirs,
    /// with a fresh reconnect window. On a shared database only this node's and those whose
    /// lease expired: the others are live on other nodes. Returns their playback ids.
    pub async fn recover_after_restart(&self) -> DbResult<Vec<String>> {
        let restart = Transition::of(Trigger::Restart);
        let leases = match self.is_shared() {
            true => " AND (lease_node = $2 OR lease_node IS NULL OR lease_expires_at < $1)",
            false => "",
        };
        let sql = format!(
            "UPDATE streams SET status = '{}', reconnecting_since = $1, lease_node = NULL, lease_expires_at = NULL \
             WHERE status IN ({}){leases} RETURNING playback_id",
            restart.to.as_str(),
            restart.from_sql()
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query_scalar(&sql).bind(Ts::now());
            if self.is_shared() {
                query = query.bind(self.node());
            }
            Ok(query.fetch_all(pool).await?)
        })
    }

    /// The node holding a live stream, if any.
    pub async fn lease_holder(&self, id: &str) -> DbResult<Option<String>> {
        on_pool!(self, pool => {
            let holder: Option<Option<String>> =
                sqlx::query_scalar("SELECT lease_node FROM streams WHERE id = $1 AND status = 'live'")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            Ok(holder.flatten())
        })
    }

    /// How many publishes each of these streams has had, on any node.
    pub async fn publish_counts(&self, ids: &[String]) -> DbResult<Vec<(String, i64)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT id, publish_seq FROM streams WHERE id IN ({})", placeholders(1, ids.len()));
        on_pool!(self, pool => {
            let mut query = sqlx::query(&sql);
            for id in ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(|row| Ok((row.text("id")?, row.int("publish_seq")?))).collect()
        })
    }

    /// Renews the leases of the live streams published to this node; returns their ids.
    pub async fn renew_leases(&self) -> DbResult<Vec<String>> {
        on_pool!(self, pool => {
            let ids = sqlx::query_scalar(
                "UPDATE streams SET lease_expires_at = $1 WHERE lease_node = $2 AND status = 'live' RETURNING id",
            )
            .bind(ts(Utc::now() + LEASE))
            .bind(self.node())
            .fetch_all(pool)
            .await?;
            Ok(ids)
        })
    }

    /// Live streams whose node stopped renewing their lease (it died) wait for their
    /// publisher, who may come back on any node. Returns them.
    pub async fn expire_leases(&self) -> DbResult<Vec<Stream>> {
        let expired = Transition::of(Trigger::LeaseExpired);
        let sql = format!(
            "UPDATE streams SET status = '{}', reconnecting_since = $1, lease_node = NULL, lease_expires_at = NULL \
             WHERE status IN ({}) AND lease_expires_at < $1 RETURNING {STREAM_COLUMNS}",
            expired.to.as_str(),
            expired.from_sql()
        );
        on_pool!(self, pool => {
            let rows = sqlx::query(&sql).bind(Ts::now()).fetch_all(pool).await?;
            let streams = rows.iter().map(stream_from_row).collect::<DbResult<Vec<_>>>()?;
            for stream in &streams {
                self.playback.apply(stream);
            }
            Ok(streams)
        })
    }
}
