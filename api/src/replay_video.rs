//! MP4 files: the replay's (`video_url`), made after a stream is saved, and a clip's, made on
//! request. Off the live path and one at a time on a node, so a long replay's remux never
//! competes with live streams for more than one core; each file by one node (a claim in the
//! database). A replay whose file is not made yet (the
//! node stopped, or the remux failed three times) is made again at the next start; a clip's is
//! made again when asked again.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use crate::events::{Event, kind};
use crate::model::Clip;
use crate::{AppState, ReplayVideo};

/// Waits before the second and third try.
const RETRY: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(60)];

fn one_at_a_time() -> &'static Semaphore {
    static PERMIT: OnceLock<Semaphore> = OnceLock::new();
    PERMIT.get_or_init(|| Semaphore::new(1))
}

/// The files being made or waiting their turn on this node: asking again for one of them
/// does not queue a second export.
fn in_flight() -> &'static Mutex<HashSet<String>> {
    static NAMES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// How long a node's claim on an export holds (its wait for its turn included) if the node
/// never gives it back: it died.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::hours(1);

/// A claim on making one file: in [`in_flight`] on this node, and in the database across
/// nodes (several nodes starting at once each resume the same replays; a clip's MP4 may be
/// asked of two nodes). Given back when dropped.
struct Claim {
    name: String,
    db: Option<crate::db::Db>,
}

impl Claim {
    async fn take(state: &AppState, name: String) -> Option<Self> {
        let fresh = in_flight().lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone());
        // Made only when claimed: a claim dropped here would lock the set again.
        let mut claim = fresh.then(|| Self { name, db: None })?;
        match state.db.claim_export(&claim.name, chrono::Utc::now() + CLAIM_LEASE).await {
            Ok(true) => claim.db = Some(state.db.clone()),
            Ok(false) => {
                tracing::info!(name = %claim.name, "made by another node");
                return None;
            }
            // The database is out of reach: made here all the same (at worst twice).
            Err(e) => tracing::warn!(name = %claim.name, "claiming an export: {e}"),
        }
        Some(claim)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        in_flight().lock().unwrap_or_else(|e| e.into_inner()).remove(&self.name);
        if let (Some(db), Ok(runtime)) = (self.db.take(), tokio::runtime::Handle::try_current()) {
            let name = std::mem::take(&mut self.name);
            runtime.spawn(async move {
                if let Err(e) = db.release_export(&name).await {
                    tracing::warn!(name, "giving an export claim back (it lapses): {e}");
                }
            });
        }
    }
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
    let Some(_claim) = Claim::take(state, format!("stream/{stream_id}")).await else { return };
    let Some(video) = export(stream_id, || state.live.export_replay(playback_id)).await else { return };
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
        Ok(false) => forget(state, stream_id, playback_id, &video.path).await,
        Err(e) => tracing::error!(stream = %stream_id, "recording the replay MP4: {e}"),
    }
}

/// Makes a clip's MP4 in the background; `video_url` appears on the clip once it is stored.
pub fn make_clip_later(state: &AppState, playback_id: &str, clip: &Clip) {
    let (state, playback_id, clip) = (state.clone(), playback_id.to_owned(), clip.clone());
    tokio::spawn(async move {
        let Some(_claim) = Claim::take(&state, format!("clip/{}", clip.id)).await else { return };
        let span = clip.video_span();
        let made = export(&clip.stream_id, || state.live.export_clip(&playback_id, &clip.id, span)).await;
        let Some(video) = made else { return };
        match state.db.set_clip_video_path(&clip.id, &video.path).await {
            Ok(true) => {
                state.events.publish(Event::new(
                    kind::CLIP_MP4_READY,
                    &clip.stream_id,
                    json!({
                        "clip_id": clip.id,
                        "video_url": state.urls.media(&playback_id, &video.path),
                        "bytes": video.bytes,
                        "duration_seconds": video.duration_ms as f64 / 1000.0,
                    }),
                ));
            }
            Ok(false) => forget(&state, &clip.stream_id, &playback_id, &video.path).await,
            Err(e) => tracing::error!(clip = %clip.id, "recording the clip MP4: {e}"),
        }
    });
}

/// One export at a time on this node, tried up to three times.
async fn export<F, Fut>(stream_id: &str, run: F) -> Option<ReplayVideo>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ReplayVideo>>,
{
    let _permit = one_at_a_time().acquire().await.ok()?;
    let mut waits = RETRY.iter();
    loop {
        let started = std::time::Instant::now();
        match run().await {
            Ok(video) => {
                tracing::info!(
                    stream = %stream_id,
                    path = %video.path,
                    bytes = video.bytes,
                    media_seconds = video.duration_ms / 1000,
                    took_ms = started.elapsed().as_millis() as u64,
                    complete = video.complete,
                    "MP4 made"
                );
                return Some(video);
            }
            Err(e) => match waits.next() {
                Some(wait) => {
                    tracing::warn!(stream = %stream_id, "making an MP4 failed, retrying: {e:#}");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(stream = %stream_id, "making an MP4 failed: {e:#}");
                    return None;
                }
            },
        }
    }
}

/// Removes a file made for a stream deleted meanwhile.
async fn forget(state: &AppState, stream_id: &str, playback_id: &str, path: &str) {
    let key = state.hls.object_key(playback_id, path);
    if let Err(e) = state.store.delete(&key).await {
        tracing::warn!(stream = %stream_id, "removing the MP4 of a deleted stream: {e}");
    }
}
