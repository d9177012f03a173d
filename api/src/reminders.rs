//! Reminders of upcoming streams. Signed-in viewers subscribe to a scheduled stream; when it
//! first goes live (and, if its seller asked, `remind_minutes_before` its scheduled start),
//! a `reminder` event goes on the bus (stream and site-wide sockets: the home page shows "X is
//! live now") and a `stream.reminder` webhook carries the subscribers the shop knows (its own
//! user ids), for the shop to e-mail or push. Each reminder goes out once, from whichever node
//! marks it sent first.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::broadcast;

use crate::AppState;
use crate::db::{ReminderMoment, ShopSubscriber};
use crate::events::{Event, kind};
use crate::model::{Stream, StreamStatus};
use crate::webhooks;

/// How often due reminders are looked for (a go-live is also acted on at once).
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Subscribers per `stream.reminder` webhook: a larger list goes in several.
pub const SUBSCRIBERS_PER_WEBHOOK: usize = 500;
/// `stream.reminder` webhooks one reminder may queue (100,000 subscribers), a fraction of the
/// outbox.
const MAX_PARTS: usize = 200;

/// Sends reminders as they fall due. Runs until the task is dropped.
pub async fn run(state: AppState) {
    let mut events = state.events.subscribe();
    let mut tick = crate::shared_interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.recv() => match event {
                Ok(event) if !event.remote && event.status_value() == Some(StreamStatus::Live.as_str()) => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
        if let Err(e) = sweep(&state).await {
            tracing::error!("sending reminders: {e}");
        }
    }
}

async fn sweep(state: &AppState) -> anyhow::Result<()> {
    for (stream, moment) in state.db.due_reminders(Utc::now()).await? {
        if !state.db.claim_reminder(&stream.id, moment).await? {
            continue;
        }
        // One stream's failure neither loses its reminder (given back, tried at the next
        // sweep) nor holds up the others'.
        if let Err(e) = remind(state, &stream, moment).await {
            tracing::error!(stream = %stream.id, moment = moment.as_str(), "reminder not sent, retried: {e:#}");
            if let Err(e) = state.db.release_reminder(&stream.id, moment).await {
                tracing::error!(stream = %stream.id, "giving the reminder back: {e}");
            }
        }
    }
    Ok(())
}

async fn remind(state: &AppState, stream: &Stream, moment: ReminderMoment) -> anyhow::Result<()> {
    let seller = state.db.user(&stream.owner_id).await?.map(|u| u.name).unwrap_or_default();
    let fields = json!({
        "moment": moment.as_str(),
        "title": stream.title,
        "seller": seller,
        "playback_id": stream.playback_id,
        "watch_url": state.urls.watch(&stream.playback_id),
        "scheduled_at": stream.scheduled_at,
        "minutes_before": minutes_left(stream, moment),
    });
    state.events.publish(Event::new(kind::REMINDER, &stream.id, fields.clone()));
    // Read a page at a time: one page in memory, and at most `MAX_PARTS` outbox rows, so a
    // huge audience cannot crowd out the other webhooks.
    let total = usize::try_from(state.db.shop_subscriber_count(&stream.id).await?).unwrap_or(0);
    let parts = total.div_ceil(SUBSCRIBERS_PER_WEBHOOK);
    let mut queued = 0;
    for part in 0..parts.min(MAX_PARTS) {
        let batch =
            state.db.shop_subscribers(&stream.id, part * SUBSCRIBERS_PER_WEBHOOK, SUBSCRIBERS_PER_WEBHOOK).await?;
        let body = webhook_body(stream, &fields, &batch, part, total);
        // Webhooks off, or the outbox full: the next parts would go nowhere either.
        if batch.is_empty() || !webhooks::enqueue_body(state, &stream.id, "stream.reminder", &body).await {
            break;
        }
        queued += 1;
    }
    if parts > MAX_PARTS {
        tracing::warn!(stream = %stream.id, subscribers = total, "reminder webhooks capped: later subscribers not listed");
    }
    tracing::info!(stream = %stream.id, moment = moment.as_str(), subscribers = total, webhooks = queued, "reminder sent");
    Ok(())
}

/// For the early reminder, the whole minutes left until the scheduled start (the reminder may
/// go out late: a stream scheduled at short notice, a node that was down).
fn minutes_left(stream: &Stream, moment: ReminderMoment) -> Option<i64> {
    let at = stream.scheduled_at.filter(|_| moment == ReminderMoment::Soon)?;
    let seconds = (at - Utc::now()).num_seconds().max(0);
    Some((seconds + 59) / 60)
}

/// One `stream.reminder` webhook: the event's fields and one batch of the shop's subscribers.
fn webhook_body(
    stream: &Stream,
    fields: &serde_json::Value,
    batch: &[ShopSubscriber],
    part: usize,
    total: usize,
) -> serde_json::Value {
    let mut body = json!({
        "type": "stream.reminder",
        "stream_id": stream.id,
        "at": Utc::now(),
        "subscribers": batch,
        "part": part + 1,
        "parts": total.div_ceil(SUBSCRIBERS_PER_WEBHOOK),
        "subscriber_count": total,
    });
    if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
        body.extend(fields.clone());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_early_reminder_tells_the_minutes_actually_left() {
        let stream = |in_seconds: i64| Stream {
            id: "s".into(),
            owner_id: "o".into(),
            playback_id: "p".into(),
            title: "t".into(),
            description: None,
            status: StreamStatus::Scheduled,
            stream_key: String::new(),
            key_valid_from: None,
            key_valid_until: None,
            publish_seq: 0,
            reconnecting_since: None,
            created_at: Utc::now(),
            scheduled_at: Some(Utc::now() + chrono::Duration::seconds(in_seconds)),
            started_at: None,
            ended_at: None,
            practice: false,
            video_path: None,
            remind_minutes_before: Some(40),
        };
        assert_eq!(minutes_left(&stream(150), ReminderMoment::Soon), Some(3));
        assert_eq!(minutes_left(&stream(40 * 60 - 1), ReminderMoment::Soon), Some(40));
        assert_eq!(minutes_left(&stream(-5), ReminderMoment::Soon), Some(0));
        assert_eq!(minutes_left(&stream(150), ReminderMoment::Live), None);
    }
}
