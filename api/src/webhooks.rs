//! Outgoing webhooks: stream live / reconnecting / ended / archived and replay ready are
//! POSTed to the admin's `webhook_url` as JSON `{type, stream_id, at, ...}`, signed with
//! `X-Hawker-Signature: sha256=<hex HMAC-SHA256 of the body with webhook_secret>`.
//! Deliveries wait in a bounded queue (the oldest are kept; new ones are dropped with a log
//! line when it is full) and are retried with backoff.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc};

use crate::AppState;
use crate::events::{Event, kind};

/// Deliveries waiting at most.
pub const QUEUE: usize = 256;
/// Tries per delivery, and the wait before each retry.
pub const BACKOFF: [Duration; 4] =
    [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(8), Duration::from_secs(30)];
const TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook type of a bus event, for the events that are delivered.
pub fn webhook_type(event: &Event) -> Option<&'static str> {
    match (event.kind, event.status_value()) {
        (kind::STATUS, Some("live")) => Some("stream.live"),
        (kind::STATUS, Some("reconnecting")) => Some("stream.reconnecting"),
        (kind::STATUS, Some("ended")) => Some("stream.ended"),
        (kind::STATUS, Some("archived")) => Some("stream.archived"),
        (kind::REPLAY_READY, _) => Some("replay.ready"),
        _ => None,
    }
}

/// `sha256=<hex>` of the body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

struct Delivery {
    url: String,
    secret: String,
    kind: &'static str,
    body: Vec<u8>,
}

/// Listens to the bus and delivers webhooks. Runs until the task is dropped.
pub async fn run(state: AppState) {
    let (tx, rx) = mpsc::channel::<Delivery>(QUEUE);
    let sender = tokio::spawn(deliver_all(rx));
    let _stop_sender = AbortOnDrop(sender);
    let mut events = state.events.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "webhooks fell behind the event bus");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(kind) = webhook_type(&event) else { continue };
        let settings = match state.db.settings().await {
            Ok(settings) => settings,
            Err(e) => {
                tracing::error!("webhook settings: {e}");
                continue;
            }
        };
        let (Some(url), Some(secret)) = (settings.webhook_url, settings.webhook_secret) else { continue };
        let mut body = (*event.body).clone();
        body["type"] = Value::from(kind);
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        if tx.try_send(Delivery { url, secret, kind, body }).is_err() {
            tracing::warn!(kind, stream = %event.stream_id, "webhook queue full: event dropped");
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn deliver_all(mut rx: mpsc::Receiver<Delivery>) {
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("webhooks are off: no HTTP client: {e}");
            return;
        }
    };
    while let Some(delivery) = rx.recv().await {
        deliver(&client, &delivery).await;
    }
}

async fn deliver(client: &reqwest::Client, delivery: &Delivery) {
    let signature = signature(&delivery.secret, &delivery.body);
    for attempt in 0..=BACKOFF.len() {
        let result = client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("x-hawker-event", delivery.kind)
            .header("x-hawker-signature", &signature)
            .body(delivery.body.clone())
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("status {}", response.status()),
            Err(e) => e.to_string(),
        };
        match BACKOFF.get(attempt) {
            Some(wait) => {
                tracing::warn!(kind = delivery.kind, attempt = attempt + 1, "webhook failed ({failure}); retrying");
                tokio::time::sleep(*wait).await;
            }
            None => tracing::error!(kind = delivery.kind, "webhook failed ({failure}); giving up"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StreamStatus;

    #[test]
    fn types_and_signatures() {
        assert_eq!(webhook_type(&Event::status("s", StreamStatus::Live)), Some("stream.live"));
        assert_eq!(webhook_type(&Event::status("s", StreamStatus::Cancelled)), None);
        assert_eq!(webhook_type(&Event::new(kind::CHAT, "s", serde_json::json!({}))), None);
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
