//! Clips: a span of a stream, live or saved, played at once through its own VOD playlist over
//! the stream's stored segments (cut on segment boundaries, nothing copied); its MP4 is made
//! on request. Clips stay with a saved stream and go with a deleted one.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use super::auth::Caller;
use super::error::ApiError;
use super::streams::{controlled_stream, visible_stream};
use crate::model::{Clip, ClipKind, Stream};
use crate::{AppState, replay_video};

/// The longest clip, and the shortest.
const MAX_CLIP: Duration = Duration::from_secs(30 * 60);
const MIN_CLIP: Duration = Duration::from_secs(1);
/// Clips one user may make of one stream per hour (each is a stored playlist).
const CLIPS_PER_HOUR: i64 = 60;
/// A viewer's clips: of a stream on air, at most this long, at most so many an hour.
const VIEWER_CLIP: Duration = Duration::from_secs(30);
const VIEWER_CLIPS_PER_HOUR: i64 = 5;
/// Clips listed.
const LIST_LIMIT: i64 = 200;

/// A moment: seconds from the stream's start (go-live), or a program date-time.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Moment {
    Seconds(f64),
    At(DateTime<Utc>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClip {
    start: Moment,
    end: Moment,
    title: Option<String>,
}

#[derive(Serialize)]
pub struct ClipView {
    id: String,
    stream_id: String,
    title: Option<String>,
    /// What the clip covers: the span asked for, widened to whole segments.
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    duration_seconds: f64,
    /// The span asked for (null for clips made before it was kept): what the MP4 shows, cut
    /// to the frame.
    requested_start: Option<DateTime<Utc>>,
    requested_end: Option<DateTime<Utc>>,
    /// Its VOD playlist (HLS).
    playback_url: String,
    /// Its page: the watch page playing the clip (`/watch/{playback_id}?clip={id}`), with a
    /// link to the whole stream. The link to share.
    share_url: String,
    /// Its MP4 once made (`POST …/clips/{clip_id}/mp4`): the span asked for, to the frame,
    /// within what is stored; null before.
    video_url: Option<String>,
    created_at: DateTime<Utc>,
    /// `clip` (the seller's), `highlight` (a product's pin) or `receipt` (before an order).
    kind: &'static str,
    /// A highlight's product.
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<String>,
}

impl ClipView {
    fn new(state: &AppState, stream: &Stream, clip: Clip) -> Self {
        Self::of(state, &stream.playback_id, clip)
    }

    pub(super) fn of(state: &AppState, playback_id: &str, clip: Clip) -> Self {
        let url = |path: &str| state.urls.media(playback_id, path);
        Self {
            kind: clip.kind.as_str(),
            product_id: match &clip.kind {
                ClipKind::Highlight { product_id } => Some(product_id.clone()),
                _ => None,
            },
            duration_seconds: (clip.end - clip.start).num_milliseconds() as f64 / 1000.0,
            requested_start: clip.requested.map(|(from, _)| from),
            requested_end: clip.requested.map(|(_, to)| to),
            playback_url: url(&clip.playlist_path),
            share_url: format!("{}?clip={}", state.urls.watch(playback_id), clip.id),
            video_url: clip.video_path.as_deref().map(url),
            id: clip.id,
            stream_id: clip.stream_id,
            title: clip.title,
            start: clip.start,
            end: clip.end,
            created_at: clip.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct ClipList {
    clips: Vec<ClipView>,
}

fn resolve(moment: &Moment, stream: &Stream) -> Result<DateTime<Utc>, ApiError> {
    match *moment {
        Moment::At(at) => Ok(at),
        Moment::Seconds(s) if s.is_finite() && s >= 0.0 && s <= MAX_CLIP.as_secs_f64() * 1000.0 => {
            let started = stream.started_at.ok_or_else(|| ApiError::BadRequest("the stream has not started".into()))?;
            Ok(started + chrono::Duration::milliseconds((s * 1000.0) as i64))
        }
        Moment::Seconds(_) => Err(ApiError::BadRequest("seconds must be a number from 0".into())),
    }
}

/// Makes a clip: the owner and admins of any span, live or after the stream was saved; any
/// other signed-in user (a viewer) of at most the last 30 s while the stream is on air, a few
/// an hour.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewClip>,
) -> Result<(StatusCode, Json<ClipView>), ApiError> {
    let stream = visible_stream(&state, &id, Some(&caller)).await?;
    let owner = caller.controls(&stream);
    let playable = if owner { stream.status.is_playable() } else { stream.status.is_on_air() };
    if !playable {
        return Err(ApiError::Conflict(stream.status));
    }
    let (longest, per_hour) = if owner { (MAX_CLIP, CLIPS_PER_HOUR) } else { (VIEWER_CLIP, VIEWER_CLIPS_PER_HOUR) };
    let title = body.title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    if title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ApiError::BadRequest("title: at most 200 characters".into()));
    }
    let (start, end) = (resolve(&body.start, &stream)?, resolve(&body.end, &stream)?);
    if end - start < chrono::Duration::from_std(MIN_CLIP).unwrap_or_default() {
        return Err(ApiError::BadRequest(format!("end must be at least {} s after start", MIN_CLIP.as_secs())));
    }
    if (end - start).to_std().unwrap_or(Duration::MAX) > longest {
        return Err(ApiError::BadRequest(format!("a clip lasts at most {} s", longest.as_secs())));
    }
    // A viewer clips what was just on air, not the whole stream.
    if !owner && end < Utc::now() - chrono::Duration::seconds(60) {
        return Err(ApiError::BadRequest("viewers clip the last moments of a live stream".into()));
    }
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    if state.db.count_clips_since(&stream.id, &caller.0.id, hour_ago).await? >= per_hour {
        return Err(ApiError::TooManyRequests(
            format!("at most {per_hour} clips of a stream per hour"),
            Duration::from_secs(60),
        ));
    }
    let clip = crate::clips::make(&state, &stream, (start, end), (title, ClipKind::Clip, &caller.0.id))
        .await?
        .ok_or_else(|| ApiError::BadRequest("no media of the stream in that span".into()))?;
    Ok((StatusCode::CREATED, Json(ClipView::new(&state, &stream, clip))))
}

/// A stream's clips, newest first: anyone who may watch the stream. Video receipts (titled by
/// their order) only for the owner and admins: orders are the seller's business.
pub async fn list(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ClipList>, ApiError> {
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    if !stream.status.is_playable() {
        return Ok(Json(ClipList { clips: Vec::new() }));
    }
    let seller = caller.as_ref().is_some_and(|c| c.controls(&stream));
    let clips = state.db.clips(&stream.id, LIST_LIMIT).await?;
    let shown = clips.into_iter().filter(|c| seller || !matches!(c.kind, ClipKind::Receipt { .. }));
    Ok(Json(ClipList { clips: shown.map(|c| ClipView::new(&state, &stream, c)).collect() }))
}

/// One clip: as [`list`] shows it (a receipt only to the owner and admins).
pub async fn get(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path((id, clip_id)): Path<(String, String)>,
) -> Result<Json<ClipView>, ApiError> {
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    let seller = caller.as_ref().is_some_and(|c| c.controls(&stream));
    let clip = state.db.clip(&stream.id, &clip_id).await?;
    let shown = clip.filter(|c| stream.status.is_playable() && (seller || !matches!(c.kind, ClipKind::Receipt { .. })));
    Ok(Json(ClipView::new(&state, &stream, shown.ok_or(ApiError::NotFound("clip"))?)))
}

/// A product's highlights across saved streams, newest first: public (listed streams only).
pub async fn highlights(
    State(state): State<AppState>,
    Path(product_id): Path<String>,
) -> Result<Json<ClipList>, ApiError> {
    let found = state.db.highlights(&product_id, LIST_LIMIT).await?;
    Ok(Json(ClipList { clips: found.into_iter().map(|(clip, pid)| ClipView::of(&state, &pid, clip)).collect() }))
}

/// Asks for a clip's MP4 (owner and admins): 202 while it is made (`video_url` appears on the
/// clip), 200 once it exists.
pub async fn make_mp4(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, clip_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ClipView>), ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    if !stream.status.is_playable() {
        return Err(ApiError::Conflict(stream.status));
    }
    let clip = state.db.clip(&stream.id, &clip_id).await?.ok_or(ApiError::NotFound("clip"))?;
    if clip.video_path.is_some() {
        return Ok((StatusCode::OK, Json(ClipView::new(&state, &stream, clip))));
    }
    replay_video::make_clip_later(&state, &stream.playback_id, &clip);
    Ok((StatusCode::ACCEPTED, Json(ClipView::new(&state, &stream, clip))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_as_seconds_or_dates() {
        let m: Moment = serde_json::from_str("12.5").unwrap();
        assert!(matches!(m, Moment::Seconds(s) if s == 12.5));
        let m: Moment = serde_json::from_str("\"2026-12-03T10:00:00Z\"").unwrap();
        assert!(matches!(m, Moment::At(_)));
        assert!(serde_json::from_str::<Moment>("\"yesterday\"").is_err());
    }
}
