//! MP4 files: the replay's (`video_url`), made after a stream is saved, and a clip's, made on
//! request. Off the live path and one at a time on a node, so a long replay's remux never
//! competes with live streams for more than one core; each file by one node (a claim in the
//! database). A replay whose file is not made yet (the node stopped, the remux failed three
//! times, or another node held the claim) is made again at the next start; a clip's is made
//! again when asked again.

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

/// How long a node's claim on an export holds if the node never gives it back (it died): an
/// export that stops writing is killed after two minutes, and an hour of media takes ~20 s.
const CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// A claim on a name in [`in_flight`], given back when dropped.
struct Claim(String);

impl Claim {
    fn take(name: String) -> Option<Self> {
        let fresh = in_flight().lock().unwrap_or_else(|e| e.into_inner()).insert(name.clone());
        // Made only when claimed: a claim dropped here would lock the set again.
        fresh.then(|| Self(name))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        in_flight().lock().unwrap_or_else(|e| e.into_inner()).remove(&self.0);
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
    let Some(claim) = Claim::take(format!("stream/{stream_id}")) else { return };
    let Some(video) = export(state, &claim, || state.live.export_replay(playback_id)).await else { return };
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
    let Some(claim) = Claim::take(format!("clip/{}", clip.id)) else { return };
    let (state, playback_id, clip) = (state.clone(), playback_id.to_owned(), clip.clone());
    tokio::spawn(async move {
        let span = clip.video_span();
        let made = export(&state, &claim, || state.live.export_clip(&playback_id, &clip.id, span)).await;
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

/// One export at a time on this node, by one node (claimed in the database once its turn
/// comes: several nodes starting together each resume the same replays, and a clip's MP4 may
/// be asked of two nodes), tried up to three times.
async fn export<F, Fut>(state: &AppState, claim: &Claim, run: F) -> Option<ReplayVideo>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ReplayVideo>>,
{
    let _permit = one_at_a_time().acquire().await.ok()?;
    let name = claim.0.as_str();
    match state.db.claim_export(name, chrono::Utc::now() + CLAIM_LEASE).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(name, "MP4 being made by another node");
            return None;
        }
        // The database is out of reach: made here all the same (at worst twice).
        Err(e) => tracing::warn!(name, "claiming an export: {e}"),
    }
    let made = export_claimed(name, run).await;
    if let Err(e) = state.db.release_export(name).await {
        tracing::warn!(name, "giving an export claim back (it lapses): {e}");
    }
    made
}

async fn export_claimed<F, Fut>(name: &str, run: F) -> Option<ReplayVideo>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ReplayVideo>>,
{
    let mut waits = RETRY.iter();
    loop {
        let started = std::time::Instant::now();
        match run().await {
            Ok(video) => {
                tracing::info!(
                    export = %name,
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
                    tracing::warn!(export = %name, "making an MP4 failed, retrying: {e:#}");
                    tokio::time::sleep(*wait).await;
                }
                None => {
                    tracing::error!(export = %name, "making an MP4 failed: {e:#}");
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
