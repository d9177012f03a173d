//! `/hls/{playback_id}/...`: playlists and media of live streams and replays, read from the
//! store. The media playlist URL stays the same from go-live to replay: it names the live
//! (sliding) playlist while the stream is on air and the VOD playlist once it is archived.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::{AppState, stream_prefix};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

/// (content type, cache policy) by file name; anything else is not ours to serve.
fn kind_of(path: &str) -> Option<(&'static str, &'static str)> {
    let immutable = "public, max-age=31536000, immutable";
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => Some((PLAYLIST, "no-cache")),
        Some("mp4") => Some(("video/mp4", immutable)),
        Some("m4s") => Some(("video/iso.segment", immutable)),
        Some("jpg") => Some(("image/jpeg", "public, max-age=5")),
        _ => None,
    }
}

pub async fn serve(
    State(state): State<AppState>,
    Path((playback_id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = ApiError::NotFound("media");
    let (content_type, cache_control) = kind_of(&path).ok_or(ApiError::NotFound("media"))?;
    let stream = state.db.stream_by_playback_id(&playback_id).await?.ok_or(ApiError::NotFound("media"))?;
    if !stream.status.is_playable() {
        return Err(not_found);
    }
    let object = match path.strip_suffix("/index.m3u8") {
        Some(rendition) if !rendition.contains('/') => {
            let playlist = if stream.status.is_on_air() { "live.m3u8" } else { "replay.m3u8" };
            format!("{}{rendition}/{playlist}", stream_prefix(&playback_id))
        }
        _ => format!("{}{path}", stream_prefix(&playback_id)),
    };
    let object = match state.store.get(&object).await {
        Ok(Some(object)) => object,
        Ok(None) | Err(hawker_storage::StoreError::InvalidKey) => return Err(not_found),
        Err(e) => return Err(e.into()),
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
    ];
    Ok((headers, Body::from(object.bytes)).into_response())
}
