//! Publishes refused or dropped for a reason the seller can fix: the latest is kept on the
//! stream and shown to its owner (studio, `GET /streams/{id}/stats`) with a one-line fix. The
//! publisher itself only gets the protocol's refusal (no reason leaks to whoever holds a key).

use chrono::{DateTime, Utc};

use crate::db::{Db, DbResult};
use crate::model::{LastRefusal, PublishDenied, RefusalReason, StreamStatus};

/// Records it; a failure is logged, not returned: the refusal stands either way.
pub async fn note(db: &Db, stream_id: &str, reason: RefusalReason, detail: &str) {
    match db.note_refusal(stream_id, reason, detail).await {
        Ok(()) => {
            tracing::info!(stream = %stream_id, reason = reason.as_str(), detail, "publish refused: the seller is told")
        }
        Err(e) => tracing::warn!(stream = %stream_id, "recording a refused publish: {e}"),
    }
}

/// How to fix it, in the words of OBS's settings; `max_bitrate_kbps` is the admin's cap (asked
/// for only for a bit rate refusal).
fn fix(reason: RefusalReason, max_bitrate_kbps: u32) -> String {
    match reason {
        RefusalReason::VideoCodec => {
            "OBS: Settings → Output → Encoder: x264 (or a hardware H.264 encoder; not HEVC or AV1)".to_owned()
        }
        RefusalReason::AudioCodec => "OBS: Settings → Output → Audio Encoder: AAC".to_owned(),
        RefusalReason::Bitrate => {
            format!("OBS: Settings → Output → Video Bitrate: at most {max_bitrate_kbps} Kbps")
        }
        RefusalReason::KeyWindow => {
            "Go live within the key's window, or create a stream for now in the studio".to_owned()
        }
        RefusalReason::StreamOver => {
            "Create a new stream in the studio and paste its key in OBS: Settings → Stream → Stream Key".to_owned()
        }
        RefusalReason::TooManyWrongKeys => {
            "Wait, then check that OBS: Settings → Stream → Stream Key is the studio's key for this stream".to_owned()
        }
    }
}

/// The stream's last refusal, with its fix.
pub async fn last(db: &Db, stream_id: &str) -> DbResult<Option<LastRefusal>> {
    let Some((reason, detail, at)) = db.last_refusal(stream_id).await? else { return Ok(None) };
    // The settings only for the one fix that quotes them: the seller's socket asks every 2 s.
    let cap = match reason {
        RefusalReason::Bitrate => db.settings().await?.max_bitrate_kbps,
        _ => 0,
    };
    Ok(Some(LastRefusal { reason, detail, fix: fix(reason, cap), at }))
}

/// "from … until …" of a key window, for a refusal's detail.
pub fn window_text(from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> String {
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    match (from, until) {
        (Some(from), Some(until)) => format!("the key works from {} until {}", at(from), at(until)),
        (Some(from), None) => format!("the key works from {}", at(from)),
        (None, Some(until)) => format!("the key worked until {}", at(until)),
        (None, None) => "the key is outside its window".to_owned(),
    }
}

/// A key the database refused: recorded on its stream when it names one.
pub async fn note_denied(db: &Db, denied: &PublishDenied) {
    match denied {
        PublishDenied::UnknownKey => {}
        // Also returned when a key reset raced the publish: only an ended stream is "over".
        PublishDenied::StreamOver(id) => match db.stream(id).await {
            Ok(Some(stream))
                if matches!(stream.status, StreamStatus::Ended | StreamStatus::Archived | StreamStatus::Cancelled) =>
            {
                note(db, id, RefusalReason::StreamOver, &format!("the stream is {}", stream.status.as_str())).await;
            }
            _ => {}
        },
        PublishDenied::OutsideKeyWindow(id) => {
            let detail = match db.stream(id).await {
                Ok(Some(stream)) => window_text(stream.key_opens_at(), stream.key_valid_until),
                _ => window_text(None, None),
            };
            note(db, id, RefusalReason::KeyWindow, &detail).await;
        }
    }
}

/// A publish refused after too many wrong keys from `peer`: recorded on the stream whose key
/// it sent, if any (the right key, typed after wrong ones).
pub async fn note_rate_limited(db: &Db, key: &str, peer: std::net::IpAddr, retry_after: std::time::Duration) {
    if !crate::secrets::looks_like_stream_key(key) {
        return;
    }
    match db.stream_id_by_key(key).await {
        Ok(Some(id)) => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let detail = format!("too many wrong stream keys came from {peer}: refused for {seconds} s more");
            note(db, &id, RefusalReason::TooManyWrongKeys, &detail).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("looking up a rate-limited key: {e}"),
    }
}
