//! The accept loops: connection caps (total and per address), TCP_NODELAY, one task per
//! connection on the server's connection runtimes, panic isolation. RTMP and RTMPS listeners
//! of one [`Server`] share their caps, their invalid-key limiter and their [`IngestStats`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::per_addr::{AddrKey, AddrSlot, ConnectionsPerAddr, KeyFailures};
use crate::quiet::QuietTcp;
use crate::read_buffers::ReadBuffers;
use crate::stats::IngestStats;
use crate::{Limits, PublishGate, connection, proxy_protocol};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every connection of a server shares.
pub(crate) struct Context<G> {
    pub gate: Arc<G>,
    pub limits: Arc<Limits>,
    pub stats: Arc<IngestStats>,
    pub key_failures: KeyFailures,
    pub read_buffers: ReadBuffers,
}

impl<G> Context<G> {
    pub fn new(gate: Arc<G>, limits: Arc<Limits>, stats: Arc<IngestStats>) -> Self {
        let key_failures =
            KeyFailures::new(limits.bad_key_max_failures, limits.bad_key_window, limits.bad_key_max_addresses);
        let read_buffers = ReadBuffers::new(limits.max_buffered_bytes);
        Self { gate, limits, stats, key_failures, read_buffers }
    }
}

/// An RTMP/RTMPS ingest server: one gate, one set of limits, counters and caps shared by all
/// the listeners it serves. Cheap to clone (it is a handle).
pub struct Server<G> {
    context: Arc<Context<G>>,
    permits: Arc<Semaphore>,
    per_addr: Arc<ConnectionsPerAddr>,
    /// Where connections run, taken in turn; empty: the accept loop's runtime.
    runtimes: Arc<[Handle]>,
    next_runtime: Arc<AtomicUsize>,
}

impl<G> Clone for Server<G> {
    fn clone(&self) -> Self {
        Self {
            context: self.context.clone(),
            permits: self.permits.clone(),
            per_addr: self.per_addr.clone(),
            runtimes: self.runtimes.clone(),
            next_runtime: self.next_runtime.clone(),
        }
    }
}

impl<G: PublishGate> Server<G> {
    pub fn new(gate: Arc<G>, limits: Limits) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
        let per_addr = Arc::new(ConnectionsPerAddr::new(limits.max_connections_per_ip));
        let context = Arc::new(Context::new(gate, Arc::new(limits), Arc::new(IngestStats::new())));
        Self { context, permits, per_addr, runtimes: Arc::new([]), next_runtime: Arc::default() }
    }

    /// Runs connections on these runtimes, one after the other, instead of the accept loop's.
    /// A connection's socket moves to its runtime's reactor, so its reads wake that runtime
    /// alone: with current-thread runtimes, one thread per runtime serves its connections
    /// (and whatever they spawn) with no hand-offs between worker threads.
    pub fn with_runtimes(mut self, runtimes: Vec<Handle>) -> Self {
        self.runtimes = runtimes.into();
        self
    }

    /// The server-wide counters; keep the `Arc` and call [`IngestStats::snapshot`].
    pub fn stats(&self) -> Arc<IngestStats> {
        self.context.stats.clone()
    }

    /// Accepts RTMP publishers on `listener` until `shutdown` is cancelled, then closes every
    /// connection (their publishes end with `EndReason::Failed`) and returns once they are gone.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        self.accept_loop(listener, None, shutdown).await
    }

    /// As [`Server::serve`], for RTMPS: every connection is TLS first. The TLS handshake counts
    /// against `Limits::handshake_timeout`, together with the RTMP handshake.
    pub async fn serve_tls(self, listener: TcpListener, tls: Arc<ServerConfig>, shutdown: CancellationToken) {
        self.accept_loop(listener, Some(TlsAcceptor::from(tls)), shutdown).await
    }

    async fn accept_loop(self, listener: TcpListener, tls: Option<TlsAcceptor>, shutdown: CancellationToken) {
        let scheme = if tls.is_some() { "RTMPS" } else { "RTMP" };
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // Reap finished connections so the set does not grow with every connection ever made.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        if let Some(task) = self.admit(socket, peer, tls.clone(), &shutdown) {
                            match self.runtime() {
                                Some(runtime) => connections.spawn_on(task, &runtime),
                                None => connections.spawn(task),
                            };
                        }
                    }
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        info!(open = connections.len(), "{scheme} server stopping; closing connections");
        while connections.join_next().await.is_some() {}
    }

    /// The runtime the next connection runs on; `None`: the accept loop's.
    fn runtime(&self) -> Option<Handle> {
        let n = self.runtimes.len();
        (n > 0).then(|| self.runtimes[self.next_runtime.fetch_add(1, Ordering::Relaxed) % n].clone())
    }

    /// The connection's task, or `None` if a cap closes it at once (by dropping the socket).
    fn admit(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        shutdown: &CancellationToken,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let addr = AddrKey::of(peer.ip());
        let stats = &self.context.stats;
        // A load balancer's address is every publisher's behind it: not capped.
        let shared = self.context.limits.is_shared_address(peer.ip());
        let slot = match shared {
            true => None,
            false => Some(self.per_addr.try_open(addr).or_else(|| {
                stats.rejected_per_ip_cap();
                if self.per_addr.should_log(addr, Instant::now()) {
                    warn!(
                        %addr,
                        max = self.context.limits.max_connections_per_ip,
                        "too many connections from one address; closing new ones (logged once a minute)"
                    );
                }
                None
            })?),
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            stats.rejected_total_cap();
            warn!(%peer, "connection limit reached; closing the new connection");
            return None;
        };
        // Out of this runtime's reactor: the task registers it with its own.
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(error) => {
                warn!(%peer, %error, "could not take the accepted socket; closing it");
                return None;
            }
        };
        stats.connection_opened();
        let held = Held { _permit: permit, _slot: slot, stats: stats.clone() };
        let per_addr = self.per_addr.clone();
        Some(supervise(socket, peer, self.context.clone(), shutdown.clone(), tls, (held, per_addr)))
    }
}

/// What an open connection holds, released when its task ends, panic or not.
struct Held {
    _permit: OwnedSemaphorePermit,
    _slot: Option<AddrSlot>,
    stats: Arc<IngestStats>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stats.connection_closed();
    }
}

/// Accepts RTMP publishers on `listener` until `shutdown` is cancelled, then closes every
/// connection and returns once they are gone. Shorthand for [`Server::new`] + [`Server::serve`],
/// for a single listener whose counters nobody reads.
pub async fn serve<G: PublishGate>(listener: TcpListener, gate: Arc<G>, limits: Limits, shutdown: CancellationToken) {
    Server::new(gate, limits).serve(listener, shutdown).await
}

/// RTMPS counterpart of [`serve`]: shorthand for [`Server::new`] + [`Server::serve_tls`].
pub async fn serve_tls<G: PublishGate>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    gate: Arc<G>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    Server::new(gate, limits).serve_tls(listener, tls, shutdown).await
}

/// Runs one connection on its own task, so that a panic in it (rml_rtmp is known to panic on
/// some malformed input) ends that connection only. The sink's `end` is then called by the
/// connection's sink guard as the task unwinds.
async fn supervise<G: PublishGate>(
    socket: std::net::TcpStream,
    peer: SocketAddr,
    context: Arc<Context<G>>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
    (_held, per_addr): (Held, Arc<ConnectionsPerAddr>),
) {
    let mut socket = match TcpStream::from_std(socket) {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%peer, %error, "could not register the socket; closing it");
            return;
        }
    };
    if let Err(error) = socket.set_nodelay(true) {
        warn!(%peer, %error, "could not set TCP_NODELAY");
    }
    // Behind a trusted proxy sending the PROXY protocol, the client is the one it names.
    let trusted = context.limits.is_shared_address(peer.ip());
    let deadline = Instant::now() + context.limits.handshake_timeout;
    let client = match proxy_protocol::client_address(&mut socket, peer, trusted, deadline).await {
        Ok(client) => client,
        Err(error) => {
            context.stats.handshake_failed();
            info!(%peer, %error, "closing");
            return;
        }
    };
    // That client is capped per address like one that connects directly.
    let _client_slot = match client.ip() == peer.ip() || context.limits.is_shared_address(client.ip()) {
        true => None,
        false => match per_addr.try_open(AddrKey::of(client.ip())) {
            Some(slot) => Some(slot),
            None => {
                context.stats.rejected_per_ip_cap();
                let addr = AddrKey::of(client.ip());
                if per_addr.should_log(addr, Instant::now()) {
                    warn!(%addr, via = %peer, "too many connections from one address; closing new ones (logged once a minute)");
                }
                return;
            }
        },
    };
    let peer = client;
    let span = info_span!("rtmp", %peer, tls = tls.is_some(), stream = tracing::field::Empty);
    let task =
        tokio::spawn(connection::handle(QuietTcp::new(socket), peer, context, shutdown, tls).instrument(span.clone()));
    if let Err(join_error) = task.await {
        // The panic message itself went to stderr through the panic hook; it is not repeated here
        // because a sink's panic message could carry anything.
        error!(parent: &span, panicked = join_error.is_panic(), "connection task failed; connection closed");
    }
}
