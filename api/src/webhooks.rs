//! Outgoing webhooks: stream live / reconnecting / ended / archived and replay ready are
//! POSTed to the admin's `webhook_url` as JSON `{type, stream_id, at, ...}`, signed with
//! `X-Hawker-Signature: sha256=<hex HMAC-SHA256 of the body with webhook_secret>`.
//! Deliveries wait in a bounded queue (the oldest are kept; new ones are dropped with a log
//! line when it is full) and are retried with backoff.

use std::net::{IpAddr, SocketAddr};
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
    /// The admin's `allow_private_webhooks`.
    allow_private: bool,
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
        // Another node's event is that node's to deliver.
        if event.remote {
            continue;
        }
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
        let allow_private = settings.allow_private_webhooks;
        if tx.try_send(Delivery { url, secret, kind, body, allow_private }).is_err() {
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
    while let Some(delivery) = rx.recv().await {
        if delivery.allow_private {
            deliver(&private, &delivery).await;
        } else if let Some(why) = internal_target(&delivery.url).await {
            // Not retried: it would be refused again. (The public client checks the address
            // it connects to as well, for a name that changes its answer in between.)
            tracing::error!(kind = delivery.kind, "webhook refused: {why} (allow_private_webhooks is off)");
        } else {
            deliver(&public, &delivery).await;
        }
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
