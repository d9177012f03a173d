//! `GET /api/v1/streams/{id}/events`: a WebSocket of the stream's events. The first message
//! is a `hello` snapshot; then every bus event of the stream as it happens (viewer counts at
//! most once a second). The owner's and admins' sockets (token in `Authorization`, or from
//! a browser a single-use `?ticket=`) also get `stats` every few seconds and the `orders`
//! events; nobody else does.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code, rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::auth::Caller;
use super::client::Client;
use super::error::ApiError;
use super::metrics::stats_of;
use super::streams::{controlled_stream, visible_stream};
use crate::AppState;
use crate::engagement::{ClientKey, SOCKETS_PER_CLIENT, SOCKETS_TOTAL, SocketPermit, TICKET_TTL, TICKETS_MAX};
use crate::events::{Event, kind};
use crate::model::Stream;

/// How often a seller's socket gets the stream's stats.
pub const STATS_EVERY: Duration = Duration::from_secs(2);
/// How often the server pings; a socket that has answered nothing for two pings is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// Clients only listen: the largest frame or message the server accepts from one (a close
/// with a reason, a pong).
const MAX_CLIENT_MESSAGE: usize = 256;
/// Events waiting to be written to a slow socket before it is dropped.
const MAX_WRITE_BUFFER: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A single-use ticket from `POST /streams/{id}/events/ticket`, for browsers (which
    /// cannot set headers on a WebSocket): no long-lived token in a URL.
    ticket: Option<String>,
}

#[derive(Serialize)]
pub struct Ticket {
    ticket: String,
    expires_in_seconds: u64,
}

/// `POST /streams/{id}/events/ticket` (the owner and admins): a ticket for one event socket
/// of the stream, used once within 30 s.
pub async fn ticket(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    let expires_at = Utc::now() + chrono::Duration::from_std(TICKET_TTL).expect("30 s");
    let issued = state.db.issue_socket_ticket(&stream.id, &caller.0.id, expires_at, TICKETS_MAX as i64).await?;
    let Some(ticket) = issued else {
        return Err(ApiError::TooManyRequests("too many unused tickets; try again shortly".into(), TICKET_TTL));
    };
    Ok((StatusCode::CREATED, Json(Ticket { ticket, expires_in_seconds: TICKET_TTL.as_secs() })))
}

pub async fn events(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Client(client): Client,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let caller = match (caller, query.ticket) {
        (Some(caller), _) => Some(caller),
        (None, Some(ticket)) => {
            let user = match state.db.redeem_socket_ticket(&ticket, &id).await? {
                Some(user_id) => state.db.user(&user_id).await?,
                None => None,
            };
            Some(Caller(user.ok_or(ApiError::Unauthorized)?))
        }
        (None, None) => None,
    };
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    let (upgrade, permit, events) = accept(&state, client, upgrade)?;
    let seller = caller.as_ref().is_some_and(|c| c.controls(&stream));
    Ok(upgrade.on_upgrade(move |socket| async move {
        let hello = match hello(&state, &stream).await {
            Ok(hello) => hello,
            Err(e) => return tracing::error!(stream = %stream.id, "event socket hello: {e}"),
        };
        serve_socket(state, Scope::Stream { id: stream.id, seller }, hello, events, socket).await;
        drop(permit);
    }))
}

/// `GET /api/v1/events`: the site-wide WebSocket, for anyone: a `hello`, then the `reminder`
/// events of every listed stream (it went live for the first time, or starts soon).
pub async fn site_events(
    State(state): State<AppState>,
    Client(client): Client,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (upgrade, permit, events) = accept(&state, client, upgrade)?;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let hello = json!({ "type": "hello", "at": Utc::now() });
        serve_socket(state, Scope::Site, hello, events, socket).await;
        drop(permit);
    }))
}

/// Takes an event socket: the upgrade with our limits, a place among the client's sockets,
/// and the bus subscribed before the upgrade (nothing that happens meanwhile is missed).
fn accept(
    state: &AppState,
    client: ClientKey,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<(WebSocketUpgrade, SocketPermit, broadcast::Receiver<Event>), ApiError> {
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(format!("a WebSocket upgrade is required: {e}")))?;
    let Some(permit) = state.engagement.open_socket(client) else {
        let message = format!("at most {SOCKETS_PER_CLIENT} event sockets per address (and {SOCKETS_TOTAL} in all)");
        return Err(ApiError::TooManyRequests(message, PING_EVERY));
    };
    let upgrade = upgrade
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    Ok((upgrade, permit, state.events.subscribe()))
}

/// Which events a socket sends.
enum Scope {
    /// One stream's; `seller`: its owner's or an admin's (stats, orders, clips' files).
    Stream { id: String, seller: bool },
    /// Every listed stream's reminders.
    Site,
}

impl Scope {
    fn passes(&self, event: &Event) -> bool {
        match self {
            // Revenue, order counts and clips' files (a receipt names an order) are the
            // seller's business, not the audience's.
            Self::Stream { id, seller } => event.stream_id == *id && (*seller || !kind::sellers_only(event.kind)),
            Self::Site => event.kind == kind::REMINDER,
        }
    }

    fn seller_of(&self) -> Option<&str> {
        match self {
            Self::Stream { id, seller: true } => Some(id),
            _ => None,
        }
    }
}

async fn hello(state: &AppState, stream: &Stream) -> Result<Value, ApiError> {
    let viewers = state.engagement.viewer_stats(&state.db, &stream.id).await?;
    let (likes, dislikes) = state.db.reaction_counts(&stream.id).await?;
    let pins = state.db.pins(&stream.id, false).await?;
    Ok(json!({
        "type": "hello", "stream_id": stream.id, "at": Utc::now(), "status": stream.status,
        "viewers": viewers, "likes": likes, "dislikes": dislikes, "pins": pins,
    }))
}

async fn stats_message(state: &AppState, stream_id: &str) -> Result<Option<Value>, ApiError> {
    let Some(stream) = state.db.stream(stream_id).await? else { return Ok(None) };
    let stats = stats_of(state, &stream).await?;
    Ok(Some(json!({ "type": "stats", "stream_id": stream_id, "at": Utc::now(), "stats": stats })))
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket.send(Message::Text(value.to_string().into())).await.is_ok()
}

async fn serve_socket(
    state: AppState,
    scope: Scope,
    hello: Value,
    mut events: broadcast::Receiver<Event>,
    mut socket: WebSocket,
) {
    if !send(&mut socket, &hello).await {
        return;
    }
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ping_tick = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    // Pings sent since the client last said anything (a pong, usually).
    let mut unanswered = 0u32;
    let seller_of = scope.seller_of().map(str::to_owned);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) if scope.passes(&event) => {
                    if !send(&mut socket, &event.body).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let stream_id = match &scope {
                        Scope::Stream { id, .. } => Some(id.as_str()),
                        Scope::Site => None,
                    };
                    let lagged = json!({ "type": "lagged", "stream_id": stream_id, "at": Utc::now(), "missed": missed });
                    if !send(&mut socket, &lagged).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stats_tick.tick(), if seller_of.is_some() => {
                let Some(id) = seller_of.as_deref() else { continue };
                match stats_message(&state, id).await {
                    Ok(Some(stats)) => {
                        if !send(&mut socket, &stats).await {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => tracing::warn!(stream = %id, "event socket stats: {e}"),
                }
            },
            _ = ping_tick.tick() => {
                if unanswered >= 2 {
                    return;
                }
                unanswered += 1;
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Pong(_) | Message::Ping(_))) => unanswered = 0,
                // Clients only listen: data from one is misuse, and ends the socket.
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    let close = CloseFrame { code: close_code::POLICY, reason: "this socket only sends".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
                // Closed, or a frame over the limit.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
        }
    }
}
