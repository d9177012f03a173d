//! Ending streams: by the seller, by an admin, or when the reconnect window expires.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::AppState;
use crate::db::{Db, DbResult};
use crate::events::{Event, Events, kind};
use crate::model::{EndAction, Pin, PublishDenied, PublishTicket, RefusalReason, Stream, StreamStatus, Trigger};
use crate::settings::Settings;

/// The ingest's question (see [`Db::begin_publish`]), announcing the stream going live.
pub async fn begin_publish(db: &Db, events: &Events, key: &str) -> DbResult<Result<PublishTicket, PublishDenied>> {
    let result = db.begin_publish(key).await?;
    if let Ok(ticket) = &result
        && ticket.previous_status != StreamStatus::Live
    {
        events.publish(Event::status(&ticket.stream_id, StreamStatus::Live));
    }
    Ok(result)
}

/// A publisher left (see [`Db::publisher_gone`]), announcing `reconnecting` if it applied.
pub async fn publisher_gone(db: &Db, events: &Events, stream_id: &str, publish_seq: i64) -> DbResult<()> {
    if db.publisher_gone(stream_id, publish_seq).await? {
        events.publish(Event::status(stream_id, StreamStatus::Reconnecting));
    }
    Ok(())
}

/// Ends an on-air stream: the status changes first (so its key cannot publish again while we
/// wind down), then the publisher is disconnected, packaging finishes and, for `delete`, the
/// media is removed. `None` when the stream was not on air.
pub async fn end_stream(state: &AppState, stream: &Stream, action: EndAction) -> anyhow::Result<Option<Stream>> {
    end_by(state, stream, Trigger::End(action)).await
}

async fn end_by(state: &AppState, stream: &Stream, trigger: Trigger) -> anyhow::Result<Option<Stream>> {
    // A stream held by another node is wound down there, when it hears of the change.
    let held_elsewhere = match state.db.is_shared() {
        true => state.db.lease_holder(&stream.id).await?.is_some_and(|node| node != state.db.node()),
        false => false,
    };
    let trigger = if stream.practice { trigger.for_practice() } else { trigger };
    let Some(ended) = state.db.transition(&stream.id, trigger).await? else {
        return Ok(None);
    };
    state.events.publish(Event::status(&stream.id, ended.status));
    if !held_elsewhere {
        wind_down(state, &ended).await?;
    }
    Ok(Some(ended))
}

/// After an ended stream's status changed: the publisher is disconnected, packaging finishes
/// and, for `archived`, the replay is announced; for `ended`, the media is removed.
async fn wind_down(state: &AppState, stream: &Stream) -> anyhow::Result<()> {
    let save = stream.status == StreamStatus::Archived;
    state.live.disconnect(&stream.id);
    // Packaging finishes: with `save`, the replay is written and the live-only objects go.
    state.live.finish(&stream.id, &stream.playback_id, save).await?;
    if save {
        state.events.publish(Event::new(
            kind::REPLAY_READY,
            &stream.id,
            serde_json::json!({
                "playback_url": state.urls.playback(&stream.playback_id),
            }),
        ));
        tracing::info!(stream = %stream.id, "stream ended and saved as a replay");
        crate::clips::highlights_on_save(state, stream).await;
        crate::replay_video::make_later(state, &stream.id, &stream.playback_id);
    } else {
        let removed = state.store.delete_prefix(&state.hls.stream_prefix(&stream.playback_id)).await?;
        state.db.delete_clips(&stream.id).await?;
        tracing::info!(stream = %stream.id, removed, "stream ended and its media deleted");
    }
    Ok(())
}

/// On a shared database, until the task is dropped: acts on what other nodes did to a stream
/// this node packages. A stream ended there (a seller's request that landed there) is wound
/// down here, where its publisher and its media are; a product pinned or unpinned there is
/// marked in the playlists here.
pub async fn follow_remote_changes(state: AppState) {
    if !state.db.is_shared() {
        return;
    }
    let mut events = state.events.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if !event.remote || state.live.ingest_health(&event.stream_id).is_none() {
            continue;
        }
        if event.kind == kind::PIN || event.kind == kind::UNPIN {
            mark_remote_pin(&state, &event).await;
            continue;
        }
        if !matches!(event.status_value(), Some("ended" | "archived")) {
            continue;
        }
        let stream = match state.db.stream(&event.stream_id).await {
            Ok(Some(stream)) => stream,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(stream = %event.stream_id, "reading a stream ended elsewhere: {e}");
                continue;
            }
        };
        match wind_down(&state, &stream).await {
            Ok(()) => tracing::info!(stream = %stream.id, "ended through another node: wound down here"),
            Err(e) => tracing::error!(stream = %stream.id, "winding down a stream ended elsewhere: {e:#}"),
        }
    }
}

async fn mark_remote_pin(state: &AppState, event: &Event) {
    let Ok(pin) = serde_json::from_value::<Pin>(event.body["pin"].clone()) else {
        tracing::warn!(stream = %event.stream_id, "an unreadable pin from another node");
        return;
    };
    if let Err(e) = state.live.add_marker(&event.stream_id, crate::http::commerce::pin_marker(&pin)).await {
        tracing::warn!(stream = %event.stream_id, pin = %pin.id, "pin made on another node not marked: {e:#}");
    }
}

/// How often on-air streams are checked: with the engagement tick (`shared_interval`).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Applies the admin's rules to on-air streams until the task is dropped: ends streams whose
/// publisher stayed away longer than the reconnect window, and disconnects publishers far
/// over the bit rate cap.
pub async fn sweep_on_air_streams(state: AppState) {
    let mut tick = crate::shared_interval(SWEEP_EVERY);
    let mut settings = RecentSettings::default();
    loop {
        tick.tick().await;
        if let Err(e) = sweep(&state, &mut settings).await {
            tracing::error!("on-air sweep failed: {e:#}");
        }
    }
}

/// How long the sweep keeps the settings it read, unless they are saved on this node: another
/// node's change to the bit rate cap or the reconnect window applies within this. Reading
/// them every tick was most of an idle server's work.
const SETTINGS_FRESH_FOR: Duration = Duration::from_secs(5);

/// The settings the sweep read last, when, and the count of saves then.
#[derive(Default)]
struct RecentSettings(Option<(Settings, Instant, u64)>);

impl RecentSettings {
    async fn get(&mut self, db: &Db) -> DbResult<&Settings> {
        let (now, saved) = (Instant::now(), db.settings_saved());
        let entry = match self.0.take() {
            Some(entry) if entry.2 == saved && now.duration_since(entry.1) < SETTINGS_FRESH_FOR => entry,
            _ => (db.settings().await?, now, saved),
        };
        Ok(&self.0.insert(entry).0)
    }
}

/// A publish is judged against the cap only after this long, over the ingest's bit rate window.
const BITRATE_GRACE_SECONDS: f64 = 5.0;

async fn sweep(state: &AppState, settings: &mut RecentSettings) -> anyhow::Result<()> {
    let judged: Vec<_> = state
        .live
        .all_ingest_health()
        .into_iter()
        .filter(|(_, health)| health.connected && health.uptime_seconds >= BITRATE_GRACE_SECONDS)
        .collect();
    // One node: the playback index holds every stream's status, so with no stream reconnecting
    // there is no window to check, and with no publisher to judge either, nothing to ask the
    // database.
    let windows_to_check = state.db.is_shared() || state.db.any_reconnecting();
    if judged.is_empty() && !windows_to_check {
        return Ok(());
    }
    let settings = settings.get(&state.db).await?;
    // Encoders overshoot their nominal rate in bursts (keyframes): allow half as much again.
    let cap_bps = u64::from(settings.max_bitrate_kbps) * 1000 * 3 / 2;
    for (stream_id, health) in judged {
        if health.bitrate_in_bps > cap_bps {
            tracing::warn!(stream = %stream_id, bitrate_bps = health.bitrate_in_bps, cap_bps, "publisher over the bit rate cap: disconnected");
            state.live.disconnect(&stream_id);
            let detail = format!(
                "{} kbit/s sent, over the cap of {} kbit/s (bursts up to {} kbit/s allowed): disconnected",
                health.bitrate_in_bps / 1000,
                settings.max_bitrate_kbps,
                cap_bps / 1000
            );
            crate::refusals::note(&state.db, &stream_id, RefusalReason::Bitrate, &detail).await;
        }
    }
    if !windows_to_check {
        return Ok(());
    }
    if state.db.is_shared() {
        for stream in state.db.expire_leases().await? {
            tracing::warn!(stream = %stream.id, "its node stopped holding the stream: waiting for the publisher");
            state.events.publish(Event::status(&stream.id, stream.status));
        }
    }
    let deadline = Utc::now() - chrono::Duration::from_std(settings.reconnect_window())?;
    // Several nodes: the node that packaged a stream winds it down (its replay is in that
    // node's memory); the others step in only if that node has not a little later (it died).
    let step_in = match state.db.is_shared() {
        true => {
            let later = deadline - chrono::Duration::from_std(STEP_IN_AFTER)?;
            Some(state.db.reconnecting_since_before(later).await?.into_iter().map(|s| s.id).collect::<Vec<_>>())
        }
        false => None,
    };
    for stream in state.db.reconnecting_since_before(deadline).await? {
        if let Some(step_in) = &step_in
            && state.live.ingest_health(&stream.id).is_none()
            && !step_in.contains(&stream.id)
        {
            continue;
        }
        // Only from `reconnecting`: a publisher that came back meanwhile keeps its stream.
        let action = settings.reconnect_default_action;
        if end_by(state, &stream, Trigger::WindowExpired(action)).await?.is_some() {
            tracing::info!(stream = %stream.id, ?action, "reconnect window expired");
        }
    }
    Ok(())
}

/// How long past its reconnect window a stream packaged on another node waits for that node
/// to end it, before any node does (from the replay journal in the bucket).
const STEP_IN_AFTER: Duration = Duration::from_secs(5);

/// How often a node renews the leases of the streams published to it (see [`crate::db::LEASE`]).
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// On a shared database, until the task is dropped: renews the leases of the streams whose
/// publisher is connected here, and disconnects a publisher whose stream this node no longer
/// holds (taken over on another node, or ended there).
pub async fn hold_leases(state: AppState) {
    if !state.db.is_shared() {
        return;
    }
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Read before renewing: a stream is on air here only once its publish set its lease,
        // so a publish that lands during the renewal is not mistaken for a lost lease.
        let on_air = state.live.all_ingest_health();
        let held = match state.db.renew_leases().await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!("renewing stream leases: {e}");
                continue;
            }
        };
        for (stream_id, health) in on_air {
            if health.connected && !held.contains(&stream_id) {
                tracing::info!(stream = %stream_id, "the stream is held elsewhere now: publisher disconnected");
                state.live.disconnect(&stream_id);
            }
        }
    }
}
