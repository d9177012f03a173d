//! `GET /api/v1/streams/{id}/events`: a WebSocket of the stream's events. The first message
//! is a `hello` snapshot; then every bus event of the stream as it happens (viewer counts at
//! most once a second). The owner's and admins' sockets (token in `Authorization` or
//! `?token=`) also get `stats` every few seconds.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::auth::Caller;
use super::error::ApiError;
use super::metrics::stats_of;
use super::streams::visible_stream;
use crate::AppState;
use crate::events::Event;
use crate::model::Stream;

/// How often a seller's socket gets the stream's stats.
pub const STATS_EVERY: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// An API token, for clients that cannot set headers on a WebSocket (browsers).
    token: Option<String>,
}

pub async fn events(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let caller = match (caller, query.token) {
        (Some(caller), _) => Some(caller),
        (None, Some(token)) => Some(Caller(state.db.user_by_token(&token).await?.ok_or(ApiError::Unauthorized)?)),
        (None, None) => None,
    };
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(format!("a WebSocket upgrade is required: {e}")))?;
    let seller = caller.as_ref().is_some_and(|c| c.controls(&stream));
    // Subscribed before the upgrade: nothing that happens meanwhile is missed.
    let events = state.events.subscribe();
    Ok(upgrade.on_upgrade(move |socket| serve_socket(state, stream, seller, events, socket)))
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
    stream: Stream,
    seller: bool,
    mut events: broadcast::Receiver<Event>,
    mut socket: WebSocket,
) {
    match hello(&state, &stream).await {
        Ok(hello) if send(&mut socket, &hello).await => {}
        Ok(_) => return,
        Err(e) => {
            tracing::error!(stream = %stream.id, "event socket hello: {e}");
            return;
        }
    }
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) if event.stream_id == stream.id => {
                    if !send(&mut socket, &event.body).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let lagged = json!({ "type": "lagged", "stream_id": stream.id, "at": Utc::now(), "missed": missed });
                    if !send(&mut socket, &lagged).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stats_tick.tick(), if seller => match stats_message(&state, &stream.id).await {
                Ok(Some(stats)) => {
                    if !send(&mut socket, &stats).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => tracing::warn!(stream = %stream.id, "event socket stats: {e}"),
            },
            incoming = socket.recv() => match incoming {
                // Clients only listen; pings are answered by the WebSocket layer.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
