//! Ending streams: by the seller, by an admin, or when the reconnect window expires.

use std::time::Duration;

use chrono::Utc;

use crate::model::{EndAction, Stream, StreamStatus};
use crate::{AppState, stream_prefix};

/// Ends an on-air stream: the status changes first (so its key cannot publish again while we
/// wind down), then the publisher is disconnected, packaging finishes and, for `delete`, the
/// media is removed. `None` when the stream was not on air.
pub async fn end_stream(state: &AppState, stream: &Stream, action: EndAction) -> anyhow::Result<Option<Stream>> {
    end_from(state, stream, action, &[StreamStatus::Live, StreamStatus::Reconnecting]).await
}

async fn end_from(
    state: &AppState,
    stream: &Stream,
    action: EndAction,
    from: &[StreamStatus],
) -> anyhow::Result<Option<Stream>> {
    let save = action == EndAction::Save;
    let to = if save { StreamStatus::Archived } else { StreamStatus::Ended };
    let Some(ended) = state.db.transition(&stream.id, from, to).await? else {
        return Ok(None);
    };
    state.live.disconnect(&stream.id);
    state.live.finish(&stream.id, &stream.playback_id, save).await?;
    if save {
        tracing::info!(stream = %stream.id, "stream ended and saved as a replay");
    } else {
        let removed = state.store.delete_prefix(&stream_prefix(&stream.playback_id)).await?;
        tracing::info!(stream = %stream.id, removed, "stream ended and its media deleted");
    }
    Ok(Some(ended))
}

/// How often expired reconnect windows are looked for.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Ends, with the admin's default action, every stream whose publisher stayed away longer than
/// the reconnect window. Runs until the task is dropped.
pub async fn expire_reconnect_windows(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&state).await {
            tracing::error!("reconnect window sweep failed: {e:#}");
        }
    }
}

async fn sweep(state: &AppState) -> anyhow::Result<()> {
    let settings = state.db.settings().await?;
    let deadline = Utc::now() - chrono::Duration::from_std(settings.reconnect_window())?;
    for stream in state.db.reconnecting_since_before(deadline).await? {
        // Only from `reconnecting`: a publisher that came back meanwhile keeps its stream.
        let action = settings.reconnect_default_action;
        if end_from(state, &stream, action, &[StreamStatus::Reconnecting]).await?.is_some() {
            tracing::info!(stream = %stream.id, ?action, "reconnect window expired");
        }
    }
    Ok(())
}
