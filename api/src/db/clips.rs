//! Clips: spans of a stream's media, each played through its own VOD playlist.

use super::*;

const CLIP_COLUMNS: &str = "id, stream_id, title, start_at, end_at, playlist_path, created_by, created_at, video_path, kind, product_id, order_ref, requested_start_at, requested_end_at";

fn clip_from_row(row: &impl RowExt) -> DbResult<Clip> {
    Ok(Clip {
        id: row.text("id")?,
        stream_id: row.text("stream_id")?,
        title: row.text_opt("title")?,
        start: row.time("start_at")?,
        end: row.time("end_at")?,
        playlist_path: row.text("playlist_path")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
        video_path: row.text_opt("video_path")?,
        kind: match (row.text("kind")?.as_str(), row.text_opt("product_id")?, row.text_opt("order_ref")?) {
            ("highlight", Some(product_id), _) => ClipKind::Highlight { product_id },
            ("receipt", _, Some(order_ref)) => ClipKind::Receipt { order_ref },
            _ => ClipKind::Clip,
        },
        requested: row.time_opt("requested_start_at")?.zip(row.time_opt("requested_end_at")?),
    })
}

impl Db {
    pub async fn insert_clip(&self, clip: &Clip) -> DbResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO clips (id, stream_id, title, start_at, end_at, playlist_path, created_by, created_at, \
                 kind, product_id, order_ref, requested_start_at, requested_end_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&clip.id)
            .bind(&clip.stream_id)
            .bind(&clip.title)
            .bind(ts(clip.start))
            .bind(ts(clip.end))
            .bind(&clip.playlist_path)
            .bind(&clip.created_by)
            .bind(ts(clip.created_at))
            .bind(clip.kind.as_str())
            .bind(match &clip.kind { ClipKind::Highlight { product_id } => Some(product_id), _ => None })
            .bind(match &clip.kind { ClipKind::Receipt { order_ref } => Some(order_ref), _ => None })
            .bind(clip.requested.map(|(from, _)| ts(from)))
            .bind(clip.requested.map(|(_, to)| ts(to)))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn clip(&self, stream_id: &str, clip_id: &str) -> DbResult<Option<Clip>> {
        on_pool!(self, pool => {
            let sql = format!("SELECT {CLIP_COLUMNS} FROM clips WHERE stream_id = $1 AND id = $2");
            let row = sqlx::query(&sql).bind(stream_id).bind(clip_id).fetch_optional(pool).await?;
            row.as_ref().map(clip_from_row).transpose()
        })
    }

    /// A stream's clips, newest first, at most `limit`.
    pub async fn clips(&self, stream_id: &str, limit: i64) -> DbResult<Vec<Clip>> {
        on_pool!(self, pool => {
            let sql = format!(
                "SELECT {CLIP_COLUMNS} FROM clips WHERE stream_id = $1 ORDER BY created_at DESC, id LIMIT $2"
            );
            let rows = sqlx::query(&sql).bind(stream_id).bind(limit).fetch_all(pool).await?;
            rows.iter().map(clip_from_row).collect()
        })
    }

    /// Clips made since `since` on a stream by `created_by` (a bound per author).
    pub async fn count_clips_since(&self, stream_id: &str, created_by: &str, since: DateTime<Utc>) -> DbResult<i64> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM clips WHERE stream_id = $1 AND created_by = $2 AND created_at >= $3",
            )
            .bind(stream_id)
            .bind(created_by)
            .bind(ts(since))
            .fetch_one(pool)
            .await?;
            row.int("n")
        })
    }

    /// A product's highlights on saved, listed streams, newest first, each with its stream's
    /// playback id.
    pub async fn highlights(&self, product_id: &str, limit: i64) -> DbResult<Vec<(Clip, String)>> {
        on_pool!(self, pool => {
            let columns = CLIP_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT {columns}, s.playback_id FROM clips c JOIN streams s ON s.id = c.stream_id \
                 WHERE c.product_id = $1 AND c.kind = 'highlight' AND s.status = 'archived' AND s.practice = FALSE \
                 ORDER BY c.created_at DESC, c.id LIMIT $2"
            );
            let rows = sqlx::query(&sql).bind(product_id).bind(limit).fetch_all(pool).await?;
            rows.iter().map(|row| Ok((clip_from_row(row)?, row.text("playback_id")?))).collect()
        })
    }

    /// The video receipts of these orders (`{shop_id}/{order_id}`) of a stream.
    pub async fn receipts(&self, stream_id: &str, order_refs: &[String]) -> DbResult<Vec<Clip>> {
        if order_refs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {CLIP_COLUMNS} FROM clips WHERE stream_id = $1 AND kind = 'receipt' AND order_ref IN ({})",
            placeholders(2, order_refs.len())
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query(&sql).bind(stream_id);
            for order_ref in order_refs {
                query = query.bind(order_ref);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(clip_from_row).collect()
        })
    }

    pub async fn set_clip_video_path(&self, clip_id: &str, path: &str) -> DbResult<bool> {
        on_pool!(self, pool => {
            let done = sqlx::query("UPDATE clips SET video_path = $1 WHERE id = $2").bind(path).bind(clip_id).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Forgets a stream's clips (its media was deleted).
    pub async fn delete_clips(&self, stream_id: &str) -> DbResult<u64> {
        on_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM clips WHERE stream_id = $1").bind(stream_id).execute(pool).await?.rows_affected())
        })
    }
}
