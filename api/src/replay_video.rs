//! The replay as one MP4 file (`video_url`): made after a stream is saved, off the live path
//! and one at a time on a node, so a long replay's remux never competes with live streams for
//! more than one core. A stream whose file is not made yet (the node stopped, or the remux
//! failed three times) is made again at the next start.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::events::{Event, kind};

/// Waits before the second and third try.
const RETRY: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(60)];

fn one_at_a_time() -> &'static Semaphore {
    static PERMIT: OnceLock<Semaphore> = OnceLock::new();
    PERMIT.get_or_init(|| Semaphore::new(1))
}

/// Makes the stream's replay MP4 in the background.
pub fn make_later(state: &AppState, stream_id: &str, playback_id: &str) {
    let (state, stream_id, playback_id) = (state.clone(), stream_id.to_owned(), playback_id.to_owned());
    tokio::spawn(async move { make(&state, &stream_id, &playback_id).await });
}

/// At start-up: makes the files of archived streams that have none yet.
pub async fn resume(state: AppState) {
    match state.db.archived_without_video().await {
        Ok(streams) => {
            for stream in streams {
                make(&state, &stream.id, &stream.playback_id).await;
            }
        }
        Err(e) => tracing::error!("listing replays without an MP4: {e}"),
    }
}

async fn make(state: &AppState, stream_id: &str, playback_id: &str) {
    let Ok(_permit) = one_at_a_time().acquire().await else { return };
    let mut waits = RETRY.iter();
    let video = loop {
        let started = std::time::Instant::now();
        match state.live.export_replay(playback_id).await {
            Ok(video) => {
                tracing::info!(
                    stream = %stream_id,
                    bytes = video.bytes,
                    media_seconds = video.duration_ms / 1000,
                    took_ms = started.elapsed().as_millis() as u64,
                    complete = video.complete,
                    "replay MP4 made"
                );
                break video;
            }
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(stream = %stream_id, "making the replay MP4 failed, retrying: {e:#}");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(stream = %stream_id, "making the replay MP4 failed: {e:#}");
                    return;
                }
            },
        }
    };
    match state.db.set_video_path(stream_id, &video.path).await {
        Ok(true) => {
            state.events.publish(Event::new(
                kind::REPLAY_MP4_READY,
                stream_id,
                json!({
                    "video_url": state.urls.media(playback_id, &video.path),
                    "bytes": video.bytes,
                    "duration_seconds": video.duration_ms as f64 / 1000.0,
                }),
            ));
        }
        // Deleted meanwhile: its media is gone, so is this file.
        Ok(false) => {
            let key = state.hls.object_key(playback_id, &video.path);
            if let Err(e) = state.store.delete(&key).await {
                tracing::warn!(stream = %stream_id, "removing the MP4 of a deleted stream: {e}");
            }
        }
        Err(e) => tracing::error!(stream = %stream_id, "recording the replay MP4: {e}"),
    }
}
