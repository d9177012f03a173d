//! A stream's event socket, as the pages open it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::Server;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The stream's event socket; with a token, signed in by a single-use ticket.
pub async fn open_events(server: &Server, id: &str, token: Option<&str>) -> Socket {
    let base = server.http.replacen("http://", "ws://", 1);
    let url = match token {
        Some(token) => format!("{base}/api/v1/streams/{id}/events?ticket={}", ticket(server, id, token).await),
        None => format!("{base}/api/v1/streams/{id}/events"),
    };
    let (socket, response) = connect_async(url).await.expect("WebSocket connects");
    assert_eq!(response.status(), 101);
    socket
}

/// A single-use ticket for the stream's event socket.
pub async fn ticket(server: &Server, id: &str, token: &str) -> String {
    let (status, issued) = server.call("POST", &format!("/api/v1/streams/{id}/events/ticket"), Some(token), None).await;
    assert_eq!(status, 201, "{issued}");
    issued["ticket"].as_str().unwrap().to_owned()
}

/// Reads events until one of `kind` satisfies `check`; `seen` gets every event's type on the
/// way. Panics after `within`.
pub async fn wait_event_seeing(
    socket: &mut Socket,
    kind: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
    seen: &mut Vec<String>,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(left, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event within {within:?}; saw {seen:?}"))
            .expect("socket open")
            .expect("socket read");
        if !message.is_text() {
            continue;
        }
        let event: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        seen.push(event["type"].as_str().unwrap_or_default().to_owned());
        if event["type"] == kind && check(&event) {
            return event;
        }
    }
}

/// Reads events until one of `kind` satisfies `check`; panics after `within`.
pub async fn wait_event(socket: &mut Socket, kind: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
    wait_event_seeing(socket, kind, within, check, &mut Vec::new()).await
}
