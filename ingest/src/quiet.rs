//! A publisher's socket that stops waking the runtime while its connection sleeps until a
//! paced read (see `Limits::read_interval`).
//!
//! tokio registers sockets edge-triggered, and Linux signals every arrival: while the
//! connection sleeps, each TCP segment a publisher sends (an encoder sends a frame's header
//! and body apart, 40 to 50 a second) would wake a worker that finds nothing to do. So the
//! socket leaves the poller for the sleep (`Quiet::quiet`: one `epoll_ctl`), the read after it
//! goes straight to the socket, and the socket rejoins the poller only when a read finds
//! nothing waiting (one more `epoll_ctl`, which reports bytes that came in between, so none
//! is missed).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;

/// A byte stream the connection can quiet while it sleeps until its next read.
#[doc(hidden)]
pub trait Quiet {
    /// Stops signalling the stream's arrivals until its next read or write finds it quiet.
    fn quiet(&mut self) -> io::Result<()>;

    /// Ready once a read may find bytes (or the end), so that a connection waiting for its
    /// publisher's next bytes needs no read buffer meanwhile. Ready at once where that is not
    /// known: the read then waits.
    fn poll_read_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// In-memory streams (the fuzz target) wake nobody by themselves: nothing to do.
impl Quiet for DuplexStream {
    fn quiet(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// RTMPS: the TCP socket under the TLS session. Bytes TLS has already decrypted are read
/// before the socket anyway. (Whether TLS holds plaintext is not known from here, so a read
/// is never held back for the socket's readiness.)
impl<S: Quiet> Quiet for tokio_rustls::server::TlsStream<S> {
    fn quiet(&mut self) -> io::Result<()> {
        self.get_mut().0.quiet()
    }
}

/// A TCP socket, in the runtime's poller or out of it.
pub(crate) struct QuietTcp(State);

enum State {
    Polled(TcpStream),
    /// Out of the poller; nonblocking.
    Quiet(std::net::TcpStream),
    /// Lost in a failed move between the two (the poller refused it): every call fails.
    Lost,
}

impl QuietTcp {
    pub(crate) fn new(socket: TcpStream) -> Self {
        Self(State::Polled(socket))
    }

    /// The socket in the poller, moved back into it if needed.
    fn polled(&mut self) -> io::Result<&mut TcpStream> {
        if let State::Quiet(_) = self.0 {
            let State::Quiet(socket) = std::mem::replace(&mut self.0, State::Lost) else { unreachable!() };
            self.0 = State::Polled(TcpStream::from_std(socket)?);
        }
        match &mut self.0 {
            State::Polled(socket) => Ok(socket),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "socket lost leaving the poller")),
        }
    }

    fn polled_pin(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.polled().map(Pin::new)
    }
}

impl Quiet for QuietTcp {
    fn quiet(&mut self) -> io::Result<()> {
        if let State::Polled(_) = self.0 {
            let State::Polled(socket) = std::mem::replace(&mut self.0, State::Lost) else { unreachable!() };
            self.0 = State::Quiet(socket.into_std()?);
        }
        Ok(())
    }

    /// Out of the poller, the read goes straight to the socket (and waits there only if it
    /// finds nothing).
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.0 {
            State::Polled(socket) => socket.poll_read_ready(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for QuietTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let State::Quiet(socket) = &mut this.0 {
            loop {
                match socket.read(buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Nothing waiting: wait for it in the poller.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        this.polled_pin()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for QuietTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A write that fits goes straight out; the poller is needed only to wait for room.
        if let State::Quiet(socket) = &mut this.0 {
            match socket.write(buf) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                done => return Poll::Ready(done),
            }
        }
        this.polled_pin()?.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TCP sockets have nothing to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().polled_pin()?.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (QuietTcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (QuietTcp::new(server), client)
    }

    #[tokio::test]
    async fn bytes_sent_while_quiet_are_read_after_and_a_later_read_waits_for_more() {
        let (mut server, mut client) = pair().await;
        server.quiet().unwrap();
        assert!(matches!(server.0, State::Quiet(_)));
        client.write_all(b"sent while quiet").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"sent while quiet");
        // Straight from the socket: still out of the poller.
        assert!(matches!(server.0, State::Quiet(_)));
        // Nothing waiting: the read rejoins the poller and wakes for what comes next.
        let late = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            client.write_all(b"later").await.unwrap();
            client
        };
        let (read, mut client) = tokio::join!(server.read(&mut buf), late);
        assert_eq!(&buf[..read.unwrap()], b"later");
        assert!(matches!(server.0, State::Polled(_)));
        // Quiet again, then a write: it goes out, and the peer's close is read as the end.
        server.quiet().unwrap();
        server.write_all(b"reply").await.unwrap();
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
        drop(client);
        server.quiet().unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    }

    /// A connection waits for its publisher's bytes with no read buffer: in the poller, the
    /// socket is ready only once bytes wait; out of it, at once (the read goes to the socket).
    #[tokio::test]
    async fn ready_to_read_once_bytes_wait() {
        use std::future::poll_fn;
        let (mut server, mut client) = pair().await;
        let mut buf = [0u8; 8];
        // Readiness may be stale until a read finds nothing: one does.
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(20), server.read(&mut buf)).await;
        assert!(nothing.is_err(), "nothing sent yet");
        let ready = poll_fn(|cx| Poll::Ready(server.poll_read_ready(cx).is_ready())).await;
        assert!(!ready, "nothing waits");
        let send = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            client.write_all(b"bytes").await.unwrap();
        };
        let (ready, ()) = tokio::join!(poll_fn(|cx| server.poll_read_ready(cx)), send);
        ready.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 5);
        server.quiet().unwrap();
        assert!(poll_fn(|cx| Poll::Ready(server.poll_read_ready(cx).is_ready())).await);
    }
}
