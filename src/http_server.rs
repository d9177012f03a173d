//! The HTTP listener. hyper is driven here rather than through `axum::serve` because a public
//! server needs what that does not bound: a deadline for request headers (which also ends
//! idle keep-alive connections), and caps on connections per client address and in total.

use std::collections::HashMap;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hawker_api::App;
use hawker_api::engagement::ClientKey;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Bounds of the HTTP listener (flags `--http-*`).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// Per client address (IPv6 by /64); a trusted proxy's connections are not capped.
    pub max_connections_per_ip: usize,
    /// A request's headers must arrive within this; an idle keep-alive connection is closed
    /// after it.
    pub header_timeout: Duration,
    /// How long a stop waits for requests in flight (and for live streams to store their
    /// media: one drain time from the signal).
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(15),
            drain: Duration::from_secs(15),
        }
    }
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// A connection's place in the caps; given back when dropped.
struct Permit {
    open: Arc<Mutex<Open>>,
    client: Option<ClientKey>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(client) = self.client
            && let Some(n) = open.per_client.get_mut(&client)
        {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&client);
            }
        }
    }
}

fn admit(open: &Arc<Mutex<Open>>, limits: &HttpLimits, client: Option<ClientKey>) -> Option<Permit> {
    let mut state = open.lock().unwrap_or_else(|p| p.into_inner());
    if state.total >= limits.max_connections {
        return None;
    }
    if let Some(client) = client {
        let n = state.per_client.entry(client).or_default();
        if *n >= limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
    }
    state.total += 1;
    Some(Permit { open: open.clone(), client })
}

/// Serves `app` until `stop` resolves, then lets requests in flight finish for up to
/// `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: HttpLimits,
    trusted_proxies: Vec<ipnet::IpNet>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(Some(limits.header_timeout));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: pause rather than spin.
                Err(err) => {
                    tracing::warn!(%err, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let trusted = trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
        let client = (!trusted).then(|| ClientKey::of(peer.ip()));
        let Some(permit) = admit(&open, &limits, client) else {
            tracing::debug!(peer = %peer.ip(), "HTTP connection refused: too many open");
            drop(stream);
            continue;
        };
        // A response's last partial segment goes out at once, not after the client's ACK of
        // the one before (Nagle), as nginx's `tcp_nodelay on` does for keep-alive connections.
        let _ = stream.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app.connection(peer)))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(peer = %peer.ip(), %err, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(drain = ?limits.drain, "HTTP requests still running at the end of the drain time");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_in_total() {
        let open = Arc::new(Mutex::new(Open::default()));
        let limits = HttpLimits { max_connections: 3, max_connections_per_ip: 2, ..HttpLimits::default() };
        let a = Some(ClientKey::of("192.0.2.1".parse().unwrap()));
        let b = Some(ClientKey::of("192.0.2.2".parse().unwrap()));
        let first = admit(&open, &limits, a).unwrap();
        let _second = admit(&open, &limits, a).unwrap();
        assert!(admit(&open, &limits, a).is_none(), "per address");
        let _third = admit(&open, &limits, b).unwrap();
        assert!(admit(&open, &limits, b).is_none(), "in total");
        drop(first);
        assert!(admit(&open, &limits, a).is_some(), "room again");
    }
}
