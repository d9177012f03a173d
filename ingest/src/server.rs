//! The accept loop: connection cap, TCP_NODELAY, one task per connection, panic isolation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::{Limits, PublishGate, connection};

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts RTMP publishers on `listener` until `shutdown` is cancelled, then closes every
/// connection (their publishes end with `EndReason::Failed`) and returns once they are gone.
pub async fn serve<G: PublishGate>(
    listener: TcpListener,
    gate: Arc<G>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Reap finished connections so the set does not grow with every connection ever made.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        warn!(%peer, "connection limit reached; closing the new connection");
                        continue;
                    };
                    let task = supervise(socket, peer, gate.clone(), limits.clone(), shutdown.clone(), permit);
                    connections.spawn(task);
                }
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    info!(
        open = connections.len(),
        "RTMP server stopping; closing connections"
    );
    while connections.join_next().await.is_some() {}
}

/// Runs one connection on its own task, so that a panic in it (rml_rtmp is known to panic on
/// some malformed input) ends that connection only. The sink's `end` is then called by the
/// connection's sink guard as the task unwinds.
async fn supervise<G: PublishGate>(
    socket: TcpStream,
    peer: SocketAddr,
    gate: Arc<G>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    if let Err(error) = socket.set_nodelay(true) {
        warn!(%peer, %error, "could not set TCP_NODELAY");
    }
    let span = info_span!("rtmp", %peer, stream = tracing::field::Empty);
    let task = tokio::spawn(
        connection::handle(socket, peer, gate, limits, shutdown).instrument(span.clone()),
    );
    if let Err(join_error) = task.await {
        // The panic message itself went to stderr through the panic hook; it is not repeated here
        // because a sink's panic message could carry anything.
        error!(parent: &span, panicked = join_error.is_panic(), "connection task failed; connection closed");
    }
}
