//! Outgoing webhooks: stream live / reconnecting / ended / archived, replay ready, replay and
//! clip MP4 ready, and stream reminders (queued by [`crate::reminders`]) are POSTed to the admin's `webhook_url` as JSON `{type, stream_id, at, ...}`, signed with
//! `X-Hawker-Signature: sha256=<hex HMAC-SHA256 of the body with webhook_secret>`.
//! Deliveries wait in the database's outbox (bounded: when it is full, new ones are dropped
//! with a log line), written once by the node where the event happened and sent by whichever
//! node claims them first, with retries and backoff; they survive restarts. A node that dies
//! while sending leaves its claim to lapse: the delivery is then sent again (at least once).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::{Notify, broadcast};

use crate::AppState;
use crate::db::OutboxEntry;
use crate::events::{Event, kind};

/// Deliveries waiting at most, over all nodes.
pub const OUTBOX_MAX: i64 = 10_000;
/// How long a node's claim on a delivery lasts: past it, another node may send it.
const CLAIM: Duration = Duration::from_secs(60);
/// How long a node with nothing to send waits at most before it looks at the outbox again,
/// for deliveries another node queued (which that node sends, unless it died): its own wake it
/// at once, and a retry when it is due.
const IDLE_LOOK: Duration = Duration::from_secs(30);
/// At least this between looks while deliveries are due but cannot be claimed (another node's
/// claim, or a stream's earlier delivery still waiting), and after a database error.
const POLL: Duration = Duration::from_secs(1);
/// Tries per delivery, and the wait before each retry.
pub const BACKOFF: [Duration; 4] =
    [Duration::from_millis(500), Duration::from_secs(2), Duration::from_secs(8), Duration::from_secs(30)];
const TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries this process made: answered 2xx, skipped (webhooks off, or an internal
/// target refused), failed (each failed attempt), and given up after the last retry (the
/// metrics).
pub struct Counters {
    pub delivered: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub abandoned: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    delivered: AtomicU64::new(0),
    skipped: AtomicU64::new(0),
    failed: AtomicU64::new(0),
    abandoned: AtomicU64::new(0),
};

/// The webhook type of a bus event, for the events that are delivered.
pub fn webhook_type(event: &Event) -> Option<&'static str> {
    match (event.kind, event.status_value()) {
        (kind::STATUS, Some("live")) => Some("stream.live"),
        (kind::STATUS, Some("reconnecting")) => Some("stream.reconnecting"),
        (kind::STATUS, Some("ended")) => Some("stream.ended"),
        (kind::STATUS, Some("archived")) => Some("stream.archived"),
        (kind::REPLAY_READY, _) => Some("replay.ready"),
        (kind::REPLAY_MP4_READY, _) => Some("replay.mp4_ready"),
        (kind::CLIP_MP4_READY, _) => Some("clip.mp4_ready"),
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

/// The Standard Webhooks signature (standardwebhooks.com): `v1,` and the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}`, keyed by the secret's bytes, or for a `whsec_` secret by the
/// base64 it carries (the convention's own form).
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = match secret.strip_prefix("whsec_").map(|b64| engine.decode(b64)) {
        Some(Ok(key)) => key,
        _ => secret.as_bytes().to_vec(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", engine.encode(mac.finalize().into_bytes()))
}

/// Addresses a webhook must not reach unless the admin allows it: this machine, private and
/// shared networks, link-local (cloud metadata lives at 169.254.169.254), and the like.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || a == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
            }
        },
    }
}

/// Resolves webhook hosts, keeping only the addresses a delivery may go to: checked on the
/// address actually connected to, at delivery time (a name that resolves elsewhere later, or
/// to several addresses, cannot slip an internal one through).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| !is_internal(addr.ip())).collect();
            if public.is_empty() {
                let refused = format!("{} resolves only to internal addresses", name.as_str());
                return Err(refused.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Writes this node's webhook events to the outbox and sends what is due, from any node.
/// Runs until the task is dropped.
pub async fn run(state: AppState) {
    tokio::join!(enqueue(state.clone()), send_due(state));
}

/// Wakes this process's sender when it queued a delivery.
static QUEUED: Notify = Notify::const_new();

async fn enqueue(state: AppState) {
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
        // Another node's event is written to the outbox by that node.
        if event.remote {
            continue;
        }
        let Some(kind) = webhook_type(&event) else { continue };
        // A practice stream is nobody's business but its seller's.
        if let Ok(Some(stream)) = state.db.stream(&event.stream_id).await
            && stream.practice
        {
            continue;
        }
        match state.db.settings().await {
            Ok(settings) if settings.webhook_url.is_some() && settings.webhook_secret.is_some() => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::error!("webhook settings: {e}");
                continue;
            }
        }
        let mut body = (*event.body).clone();
        body["type"] = Value::from(kind);
        match state.db.enqueue_webhook(&event.stream_id, kind, &body.to_string(), OUTBOX_MAX).await {
            Ok(true) => QUEUED.notify_one(),
            Ok(false) => tracing::warn!(kind, stream = %event.stream_id, "webhook outbox full: event dropped"),
            Err(e) => tracing::error!(kind, stream = %event.stream_id, "webhook not queued: {e}"),
        }
    }
}

/// Queues a webhook that no bus event carries (a reminder's subscriber list: too large for
/// an event); false when webhooks are off or the outbox is full.
pub async fn enqueue_body(state: &AppState, stream_id: &str, kind: &str, body: &Value) -> bool {
    match state.db.settings().await {
        Ok(settings) if settings.webhook_url.is_some() && settings.webhook_secret.is_some() => {}
        Ok(_) => return false,
        Err(e) => {
            tracing::error!("webhook settings: {e}");
            return false;
        }
    }
    match state.db.enqueue_webhook(stream_id, kind, &body.to_string(), OUTBOX_MAX).await {
        Ok(true) => {
            QUEUED.notify_one();
            true
        }
        Ok(false) => {
            tracing::warn!(kind, stream = %stream_id, "webhook outbox full: event dropped");
            false
        }
        Err(e) => {
            tracing::error!(kind, stream = %stream_id, "webhook not queued: {e}");
            false
        }
    }
}

async fn send_due(state: AppState) {
    // Redirects are never followed: a 3xx could point anywhere.
    let builder = || reqwest::Client::builder().timeout(TIMEOUT).redirect(reqwest::redirect::Policy::none());
    let clients = builder()
        .build()
        .and_then(|private| Ok((builder().dns_resolver(std::sync::Arc::new(PublicOnly)).build()?, private)));
    let (public, private) = match clients {
        Ok(clients) => clients,
        Err(e) => {
            tracing::error!("webhooks are off: no HTTP client: {e}");
            return;
        }
    };
    loop {
        let entry = match state.db.claim_webhook(CLAIM).await {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                let wait = match state.db.next_webhook_at().await {
                    Ok(Some(at)) => (at - chrono::Utc::now()).to_std().unwrap_or_default().clamp(POLL, IDLE_LOOK),
                    Ok(None) => IDLE_LOOK,
                    Err(e) => {
                        tracing::error!("reading the webhook outbox: {e}");
                        POLL
                    }
                };
                let _ = tokio::time::timeout(wait, QUEUED.notified()).await;
                continue;
            }
            Err(e) => {
                tracing::error!("reading the webhook outbox: {e}");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let outcome = send(&state, (&public, &private), &entry).await;
        let counter = match outcome {
            Ok(Sent::Delivered) => &COUNTERS.delivered,
            Ok(Sent::Skipped) => &COUNTERS.skipped,
            Err(_) => &COUNTERS.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let done = match outcome {
            Ok(_) => state.db.drop_webhook(entry.id).await,
            Err(failure) => match usize::try_from(entry.attempts).ok().and_then(|n| BACKOFF.get(n)) {
                Some(wait) => {
                    tracing::warn!(
                        kind = entry.kind,
                        attempt = entry.attempts + 1,
                        "webhook failed ({failure}); retrying"
                    );
                    let next = chrono::Utc::now() + chrono::Duration::from_std(*wait).expect("a small duration");
                    state.db.retry_webhook(entry.id, next).await
                }
                None => {
                    COUNTERS.abandoned.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(kind = entry.kind, "webhook failed ({failure}); giving up");
                    state.db.drop_webhook(entry.id).await
                }
            },
        };
        if let Err(e) = done {
            tracing::error!(kind = entry.kind, "updating the webhook outbox: {e}");
        }
    }
}

/// What became of a delivery that needs no retry.
enum Sent {
    /// Answered 2xx.
    Delivered,
    /// Not sent: webhooks were turned off since, or the target is an internal address.
    Skipped,
}

/// Sends one delivery to the admin's current webhook URL, signed with the current secret.
async fn send(
    state: &AppState,
    (public, private): (&reqwest::Client, &reqwest::Client),
    entry: &OutboxEntry,
) -> Result<Sent, String> {
    let settings = state.db.settings().await.map_err(|e| format!("settings: {e}"))?;
    let (Some(url), Some(secret)) = (settings.webhook_url, settings.webhook_secret) else {
        // Turned off since: nothing to send to.
        return Ok(Sent::Skipped);
    };
    let client = if settings.allow_private_webhooks {
        private
    } else if let Some(why) = internal_target(&url).await {
        // Not retried: it would be refused again. (The public client checks the address it
        // connects to as well, for a name that changes its answer in between.)
        tracing::error!(kind = entry.kind, "webhook refused: {why} (allow_private_webhooks is off)");
        return Ok(Sent::Skipped);
    } else {
        public
    };
    let webhook_id = format!("msg_{}", entry.event_id.clone().unwrap_or_else(|| entry.id.to_string()));
    let timestamp = chrono::Utc::now().timestamp();
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header("x-hawker-event", &entry.kind)
        .header("x-hawker-signature", signature(&secret, entry.body.as_bytes()))
        // Standard Webhooks: the event's id, the same on every retry (a receiver drops a
        // repeat by it); the timestamp is the attempt's.
        .header("webhook-id", &webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", standard_signature(&secret, &webhook_id, timestamp, entry.body.as_bytes()))
        .body(entry.body.clone())
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => Ok(Sent::Delivered),
        Ok(response) => Err(format!("status {}", response.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Why `url` may not be delivered to: its host is an internal address, or a name that
/// resolves only to internal addresses.
async fn internal_target(url: &str) -> Option<String> {
    if let Some(ip) = literal_internal_ip(url) {
        return Some(format!("{ip} is an internal address"));
    }
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await.ok()?.collect();
    (!found.is_empty() && found.iter().all(|addr| is_internal(addr.ip())))
        .then(|| format!("{host} resolves only to internal addresses"))
}

/// The host of `url` when it is an internal IP address literal.
fn literal_internal_ip(url: &str) -> Option<IpAddr> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let ip: IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    is_internal(ip).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signatures_match_the_conventions_own_example() {
        // The example of the Standard Webhooks specification.
        let signed = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        // Another secret signs otherwise.
        assert_ne!(standard_signature("whsec_other", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, b"{}"), signed);
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
        assert_eq!(literal_internal_ip("http://[::1]:9/x"), Some("::1".parse().unwrap()));
        assert_eq!(
            literal_internal_ip("http://169.254.169.254/latest/meta-data"),
            Some("169.254.169.254".parse().unwrap())
        );
        assert_eq!(literal_internal_ip("https://hooks.example.com/x"), None);
    }
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
