//! `/hls/{playback_id}/...`: playlists and media of live streams and replays. A stream
//! packaged here and on air is served from the packager's memory (live playlists, delta
//! updates, blocking reloads, parts in flight); everything else from the store. The media
//! playlist URL stays the same from go-live to replay: the live playlist while the stream is
//! on air, the replay's once it is archived. No request queries the database. With several
//! nodes, a request for a live stream another node holds is forwarded to that node.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::coding::negotiate;
use super::error::ApiError;
use crate::{AppState, HlsPath, HlsProgress, ProgressWatch, cluster};

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const SEGMENT: &str = "video/iso.segment";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// (content type, cache policy) by file name; anything else is not ours to serve.
fn kind_of(path: &str) -> Option<(&'static str, &'static str)> {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => Some((PLAYLIST, "no-cache")),
        Some("mp4") => Some(("video/mp4", IMMUTABLE)),
        Some("m4s") => Some((SEGMENT, IMMUTABLE)),
        Some("jpg") => Some(("image/jpeg", "public, max-age=5")),
        _ => None,
    }
}

fn body(content_type: &'static str, cache_control: &'static str, bytes: Bytes) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
    ];
    (headers, Body::from(bytes)).into_response()
}

/// Reads the request's headers and URI in place (the `HeaderMap` and `OriginalUri`
/// extractors copy them, for every viewer's every request).
pub async fn serve(
    State(state): State<AppState>,
    Path((playback_id, path)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (uri, headers) = (request.uri(), request.headers());
    let not_found = || ApiError::NotFound("media");
    let (content_type, cache_control) = kind_of(&path).ok_or_else(not_found)?;
    let playback = state.db.playback(&playback_id).ok_or_else(not_found)?;
    let stream_id = playback.stream_id.as_str();
    // Several nodes: a live stream another node holds is served by that node, where its live
    // HLS is in memory. Should it not answer, what the bucket holds is served from here.
    if playback.status.is_on_air()
        && state.hls.progress(stream_id).is_none()
        && !headers.contains_key(cluster::FORWARDED)
        && let Some(holder) = state.peers.holder(stream_id)
    {
        let path_and_query = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        match state.peers.forward(&holder, path_and_query, headers.get(header::ACCEPT_ENCODING)).await {
            Ok(response) => return Ok(response),
            Err(e) => tracing::warn!(stream = %stream_id, "the node holding the stream did not answer: {e}"),
        }
    }
    // LL-HLS: blocking playlist reload and preload-hinted parts wait for the packager.
    let progress = if playback.status.is_on_air() { state.hls.progress(stream_id) } else { None };
    let resolved = state.hls.resolve(&path);
    if let Some(progress) = progress
        && let Some(request) = LiveRequest::of(&resolved)
    {
        let live = LiveMedia { stream_id: playback.stream_id.clone(), progress, request };
        return live.serve(&state, &playback_id, uri.query(), headers).await;
    }
    match &resolved {
        HlsPath::MediaPlaylist { rendition } => {
            let text = state.hls.stored_playlist(&playback_id, rendition).await.map_err(ApiError::Internal)?;
            return Ok(body(PLAYLIST, "no-cache", text.ok_or_else(not_found)?));
        }
        // Parts are not stored objects: one not held any more is gone.
        HlsPath::Part { .. } => return Err(not_found()),
        HlsPath::Poster if playback.status.is_on_air() => {
            if let Some(poster) = state.hls.poster(stream_id).await {
                return Ok(body(content_type, cache_control, poster));
            }
        }
        HlsPath::Poster | HlsPath::Download | HlsPath::Object => {}
    }
    let key = state.hls.object_key(&playback_id, &path);
    let download = resolved == HlsPath::Download;
    // Redirect delivery: media already readable at the CDN or bucket is fetched there.
    // Playlists (fresh markers, counted viewers, LL-HLS) and objects still waiting in the
    // upload spool are served here; the store never offers a URL of an object not uploaded.
    if content_type != PLAYLIST
        && let Some(url) = state.store.public_url(&key).await
        && let Ok(location) = HeaderValue::from_str(&url)
    {
        let headers = [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
        return Ok((StatusCode::FOUND, headers).into_response());
    }
    if download {
        return serve_range(&state, &key, headers).await;
    }
    match state.store.get(&key).await {
        Ok(Some(object)) => Ok(body(content_type, cache_control, object.bytes)),
        Ok(None) | Err(hawker_storage::StoreError::InvalidKey) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// The template of the route `serve` answers, for the access log and `/metrics`.
pub(super) const ROUTE: &str = "/hls/{playback_id}/{*path}";

/// A request for a live playlist or part of a stream on air and packaged here: answered from
/// the packager's memory.
pub(super) struct LiveMedia {
    stream_id: String,
    progress: ProgressWatch,
    request: LiveRequest,
}

/// What of a live stream is answered from memory.
enum LiveRequest {
    Playlist { rendition: String },
    Part { rendition: String, msn: u64, index: u64 },
}

impl LiveRequest {
    fn of(path: &HlsPath) -> Option<Self> {
        match path {
            HlsPath::MediaPlaylist { rendition } => Some(Self::Playlist { rendition: rendition.clone() }),
            &HlsPath::Part { ref rendition, msn, index } => {
                Some(Self::Part { rendition: rendition.clone(), msn, index })
            }
            HlsPath::Poster | HlsPath::Download | HlsPath::Object => None,
        }
    }
}

impl LiveMedia {
    /// The request, when it is one for live media that needs nothing of the router: a GET or
    /// HEAD without a body, of a plain path (nothing percent-encoded) under `/hls/`. Every
    /// viewer asks twice per part (a blocking reload, then the part), so these skip the
    /// generic layers (routing, path extraction, compression, timeout, CORS, access-log
    /// middleware), each of which boxes or wraps every request; what those layers would do
    /// to such an answer is done here (see `answer`). Anything else, `None`: the router's.
    pub(super) fn of(state: &AppState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<(String, Self)> {
        if !(method == Method::GET || method == Method::HEAD)
            || headers.contains_key(header::TRANSFER_ENCODING)
            || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length != "0")
        {
            return None;
        }
        let (playback_id, path) = uri.path().strip_prefix("/hls/")?.split_once('/')?;
        if playback_id.is_empty() || path.is_empty() || uri.path().contains('%') {
            return None;
        }
        let request = LiveRequest::of(&state.hls.resolve(path))?;
        let playback = state.db.playback(playback_id).filter(|p| p.status.is_on_air())?;
        let progress = state.hls.progress(&playback.stream_id)?;
        Some((playback_id.to_owned(), Self { stream_id: playback.stream_id, progress, request }))
    }

    /// The answer to a request `of` took, as the router's layers would have left it: CORS's
    /// `Access-Control-Allow-Origin: *` on every answer; `Vary: Accept-Encoding` on a playlist
    /// (compression's, which never compresses media or an answer already encoded). No timeout
    /// but the waits' own (three target durations), and logged and counted as the router's.
    pub(super) async fn answer(
        self,
        state: &AppState,
        playback_id: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Response {
        let started = std::time::Instant::now();
        let playlist = matches!(self.request, LiveRequest::Playlist { .. });
        let mut response = match self.serve(state, playback_id, uri.query(), headers).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if playlist && !h.contains_key(header::VARY) {
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        super::log_request(method, Some(ROUTE), response.status(), started.elapsed());
        response
    }

    async fn serve(
        self,
        state: &AppState,
        playback_id: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let (stream_id, progress) = (self.stream_id.as_str(), &self.progress);
        match self.request {
            LiveRequest::Playlist { rendition } => {
                let directives = Directives::parse(query.unwrap_or(""))?;
                let ll = {
                    let p = progress.get();
                    p.part_target_ms.is_some() && !p.ended
                };
                if let Some(blocked) = block_reload(progress, &directives).await? {
                    return Ok(blocked);
                }
                let delta = ll && directives.skip;
                if let Some(text) = state.hls.playlist(stream_id, &rendition, delta) {
                    return Ok(live_playlist(state, stream_id, (&rendition, delta), text, headers).await);
                }
                // Ended and let go of between the two: its playlist is stored, final.
                let stored = state.hls.stored_playlist(playback_id, &rendition);
                let text = tokio::time::timeout(super::HLS_TIMEOUT, stored)
                    .await
                    .map_err(|_| ApiError::Internal(anyhow::anyhow!("reading a stored playlist timed out")))?
                    .map_err(ApiError::Internal)?;
                Ok(body(PLAYLIST, "no-cache", text.ok_or(ApiError::NotFound("media"))?))
            }
            LiveRequest::Part { rendition, msn, index } => {
                if let Some(unavailable) = wait_for_part(progress, (msn, index)).await {
                    return Ok(unavailable);
                }
                // Parts are not stored objects: one not held any more is gone.
                let part = state.hls.part(stream_id, &rendition, msn, index).await;
                Ok(body(SEGMENT, IMMUTABLE, part.ok_or(ApiError::NotFound("media"))?))
            }
        }
    }
}

/// A live playlist, compressed as the client accepts it, once per version for all viewers
/// (the router's compression layer passes an answer already encoded through).
async fn live_playlist(
    state: &AppState,
    stream_id: &str,
    playlist: (&str, bool),
    text: Bytes,
    request: &HeaderMap,
) -> Response {
    let coding = negotiate(request);
    let Some(encoding) = coding.header() else { return body(PLAYLIST, "no-cache", text) };
    let on_air = |id: &str| state.hls.progress(id).is_some();
    let compressed = state.compressed_playlists.get(stream_id, playlist, text, coding, on_air).await;
    let mut response = body(PLAYLIST, "no-cache", compressed);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_ENCODING, encoding);
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Bytes read from the store at a time while sending a large file.
const CHUNK: u64 = 1 << 20;

/// A large stored file (a replay's MP4), whole or one byte range (RFC 9110 §14), read from the
/// store a chunk at a time as the client takes it: a browser's `<video>` seeks by range.
async fn serve_range(state: &AppState, key: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let size = match state.store.size(key).await {
        Ok(Some(size)) => size,
        Ok(None) | Err(hawker_storage::StoreError::InvalidKey) => return Err(ApiError::NotFound("media")),
        Err(e) => return Err(e.into()),
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(|v| byte_range(v, size));
    let (status, start, end) = match range {
        None | Some(Ok(None)) => (StatusCode::OK, 0, size),
        Some(Ok(Some((start, end)))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Err(())) => {
            let headers = [(header::CONTENT_RANGE, format!("bytes */{size}"))];
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response());
        }
    };
    let (store, key) = (state.store.clone(), key.to_owned());
    let chunks = futures_util::stream::unfold(start, move |at| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            if at >= end {
                return None;
            }
            let len = CHUNK.min(end - at);
            let chunk = match store.get_range(&key, at, len).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(std::io::Error::other("the file changed while it was sent")),
                Err(e) => Err(std::io::Error::other(e)),
            };
            Some((chunk, at + len))
        }
    });
    let mut response = Response::new(Body::from_stream(chunks));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// The one byte range of a `Range` header as `[start, end)` within `size`: `Ok(None)` to send
/// the whole file (not a single bytes range: ignored, as RFC 9110 allows), `Err` when the
/// range is not satisfiable.
fn byte_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        // `bytes=-N`: the last N bytes.
        (Err(_), Ok(n)) if first.is_empty() => (n > 0 && size > 0).then(|| (size - n.min(size), size)),
        (Ok(start), Err(_)) if last.is_empty() => (start < size).then_some((start, size)),
        (Ok(start), Ok(last)) if start <= last => (start < size).then(|| (start, last.saturating_add(1).min(size))),
        _ => return Ok(None),
    };
    range.map(Some).ok_or(())
}

/// LL-HLS delivery directives of a media playlist request (RFC 8216bis §6.2.5).
#[derive(Debug, Default, PartialEq, Eq)]
struct Directives {
    msn: Option<u64>,
    part: Option<u64>,
    /// `_HLS_skip=YES` or `v2`: a delta update.
    skip: bool,
}

impl Directives {
    /// From a request's query string; other parameters are ignored, and of a repeated one
    /// the last counts.
    fn parse(query: &str) -> Result<Self, ApiError> {
        let (mut msn, mut part, mut skip) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "_HLS_msn" => msn = Some(value),
                "_HLS_part" => part = Some(value),
                "_HLS_skip" => skip = Some(value),
                _ => {}
            }
        }
        let number = |value: Option<std::borrow::Cow<str>>, name: &str| -> Result<Option<u64>, ApiError> {
            value.map(|v| v.parse().map_err(|_| ApiError::BadRequest(format!("{name} must be a number")))).transpose()
        };
        let d = Directives {
            msn: number(msn, "_HLS_msn")?,
            part: number(part, "_HLS_part")?,
            skip: matches!(skip.as_deref(), Some("YES" | "v2")),
        };
        if d.part.is_some() && d.msn.is_none() {
            return Err(ApiError::BadRequest("_HLS_part requires _HLS_msn".into()));
        }
        Ok(d)
    }
}

/// The last MSN the live playlist shows (the segment being built counts).
fn last_msn(p: &HlsProgress) -> Option<u64> {
    p.last_part.map(|(m, _)| m).max(p.last_segment)
}

/// Parts a request may ask ahead of the playlist: 3 / PART-TARGET below 1 s, else 3.
fn advance_part_limit(part_target_ms: u64) -> u64 {
    if part_target_ms < 1000 { 3000 / part_target_ms.max(1) } else { 3 }
}

/// Whether the playlist contains segment `msn` (or, with `part`, part `part` of it, where a
/// part past a complete segment's last means the next segment's first).
fn reached(p: &HlsProgress, msn: u64, part: Option<u64>) -> bool {
    if p.ended {
        return true;
    }
    match part {
        None => p.last_segment.is_some_and(|s| s >= msn),
        Some(n) => {
            p.last_part.is_some_and(|(m, i)| (m, i as u64) >= (msn, n)) || p.last_segment.is_some_and(|s| s > msn)
        }
    }
}

/// Why a request for (`msn`, `part`) is refused at once, if it is.
fn out_of_range(p: &HlsProgress, msn: u64, part: Option<u64>) -> Option<String> {
    let last = last_msn(p);
    if last.map_or(msn > 1, |last| msn > last + 2) {
        return Some(format!("_HLS_msn={msn} is more than two segments ahead of the playlist"));
    }
    let (Some(n), Some(target)) = (part, p.part_target_ms) else { return None };
    let limit = advance_part_limit(target);
    let ahead = match p.last_part {
        Some((m, i)) if m == msn => n.saturating_sub(i as u64),
        Some((m, _)) if m > msn => 0,
        _ => n + 1,
    };
    (ahead > limit).then(|| format!("_HLS_part={n} is beyond the advance part limit ({limit})"))
}

/// How long a request may be held: three target durations, then 503.
fn hold_limit(p: &HlsProgress) -> Duration {
    Duration::from_secs(3 * p.target_duration_secs.max(1))
}

fn unavailable(what: &str) -> Response {
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::RETRY_AFTER, HeaderValue::from_static("1")),
    ];
    (StatusCode::SERVICE_UNAVAILABLE, headers, format!("{what} did not appear in time\n")).into_response()
}

/// Holds a blocking playlist reload until the playlist has what it asks for. Returns a
/// response to send instead of the playlist (503 after three target durations), or an error
/// (400) for a request out of range. Directives are ignored without LL-HLS or after ENDLIST.
async fn block_reload(progress: &ProgressWatch, d: &Directives) -> Result<Option<Response>, ApiError> {
    let Some(msn) = d.msn else { return Ok(None) };
    let (limit, refusal) = {
        let p = progress.get();
        if p.ended || p.part_target_ms.is_none() || reached(&p, msn, d.part) {
            return Ok(None);
        }
        (hold_limit(&p), out_of_range(&p, msn, d.part))
    };
    if let Some(why) = refusal {
        return Err(ApiError::BadRequest(why));
    }
    match tokio::time::timeout(limit, progress.wait_for(|p| reached(p, msn, d.part))).await {
        Ok(_) => Ok(None), // reached, or the stream ended (its playlist is final)
        Err(_) => Ok(Some(unavailable("the requested segment or part"))),
    }
}

/// A request for a part not yet written (the preload hint, or a little ahead) is held until
/// the part is complete; 503 after three target durations. Parts far ahead are not waited for.
async fn wait_for_part(progress: &ProgressWatch, (msn, index): (u64, u64)) -> Option<Response> {
    let done = |p: &HlsProgress| p.ended || p.last_segment.is_some_and(|s| s >= msn) || reached(p, msn, Some(index));
    let limit = {
        let p = progress.get();
        if p.part_target_ms.is_none() || done(&p) || out_of_range(&p, msn, Some(index)).is_some() {
            return None;
        }
        hold_limit(&p)
    };
    match tokio::time::timeout(limit, progress.wait_for(done)).await {
        Ok(_) => None,
        Err(_) => Some(unavailable("the requested part")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(last_segment: Option<u64>, last_part: Option<(u64, usize)>) -> HlsProgress {
        HlsProgress { last_segment, last_part, target_duration_secs: 2, part_target_ms: Some(200), ended: false }
    }

    #[test]
    fn directives_parse_and_part_needs_msn() {
        assert_eq!(Directives::parse("").unwrap(), Directives::default());
        let d = Directives::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&token=x").unwrap();
        assert_eq!(d, Directives { msn: Some(5), part: Some(2), skip: true });
        assert!(Directives::parse("_HLS_part=2").is_err());
        assert!(Directives::parse("_HLS_msn=x").is_err());
        assert!(!Directives::parse("_HLS_skip=NO").unwrap().skip);
        // Of a repeated directive the last counts; percent-encoding is decoded.
        assert_eq!(Directives::parse("_HLS_msn=x&_HLS_msn=%37").unwrap().msn, Some(7));
        assert!(Directives::parse("_HLS_msn").is_err());
    }

    #[test]
    fn reached_orders_parts_and_rolls_over() {
        // Segment 4 complete with 8 parts (0..=7); nothing of 5 yet.
        let progress = p(Some(4), Some((4, 7)));
        assert!(reached(&progress, 4, None));
        assert!(reached(&progress, 4, Some(7)));
        // Part 8 of a complete 4 means part 0 of 5.
        assert!(!reached(&progress, 4, Some(8)));
        assert!(!reached(&progress, 5, None));
        assert!(reached(&p(Some(4), Some((5, 0))), 4, Some(8)));
        assert!(reached(&HlsProgress { ended: true, ..p(None, None) }, 9, Some(9)));
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Ok(Some((0, 100))));
        assert_eq!(byte_range("bytes=900-", 1000), Ok(Some((900, 1000))));
        assert_eq!(byte_range("bytes=-100", 1000), Ok(Some((900, 1000))));
        assert_eq!(byte_range("bytes=-5000", 1000), Ok(Some((0, 1000))));
        assert_eq!(byte_range("bytes=990-5000", 1000), Ok(Some((990, 1000))));
        assert_eq!(byte_range("bytes=1000-", 1000), Err(()));
        assert_eq!(byte_range("bytes=-0", 1000), Err(()));
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), Ok(None));
        assert_eq!(byte_range("bytes=9-1", 1000), Ok(None));
        assert_eq!(byte_range("items=0-1", 1000), Ok(None));
        assert_eq!(byte_range("bytes=x-1", 1000), Ok(None));
    }

    #[test]
    fn out_of_range_requests() {
        let progress = p(Some(4), Some((5, 2)));
        assert!(out_of_range(&progress, 7, None).is_none());
        assert!(out_of_range(&progress, 8, None).is_some());
        // 200 ms parts: 15 parts of advance.
        assert_eq!(advance_part_limit(200), 15);
        assert_eq!(advance_part_limit(1000), 3);
        assert!(out_of_range(&progress, 5, Some(17)).is_none());
        assert!(out_of_range(&progress, 5, Some(18)).is_some());
        assert!(out_of_range(&progress, 6, Some(15)).is_some());
        assert!(out_of_range(&p(None, None), 2, None).is_some());
        assert!(out_of_range(&p(None, None), 0, Some(0)).is_none());
    }
}
