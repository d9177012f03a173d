//! Viewers (player sessions kept by heartbeats), likes and dislikes, chat and mutes.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiJson;
use super::auth::Caller;
use super::client::{Client, same_site_json};
use super::error::ApiError;
use super::streams::{controlled_stream, visible_stream};
use crate::AppState;
use crate::engagement::{
    JOINS_PER_CLIENT_PER_MINUTE, JoinRefused, PRESENCE_AFTER, SESSION_TIMEOUT, SHARES_PER_HOUR, ViewerStats,
};
use crate::events::{Event, kind};
use crate::model::{ChatMessage, StreamStatus};

// ---- viewers ----

#[derive(Serialize)]
pub struct Joined {
    session_id: String,
    /// The session counts from its first heartbeat this long after the join or later.
    first_heartbeat_after_seconds: u64,
    /// Send a heartbeat at least this often.
    heartbeat_interval_seconds: u64,
    /// A session without a heartbeat for this long is gone.
    session_timeout_seconds: u64,
    /// Whether the session watches the replay (counted as a replay view).
    replay: bool,
}

const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A player session joins: anonymous players too. Live while on air, a replay view once
/// archived. It counts once its first heartbeat proves the player kept running; joins are
/// bounded per client address and per stream; only our own pages (or non-browser clients)
/// can join, with a JSON body.
pub async fn join(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Client(client): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Joined>), ApiError> {
    same_site_json(&headers)?;
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    if !stream.status.is_playable() {
        return Err(ApiError::Conflict(stream.status));
    }
    let replay = stream.status == StreamStatus::Archived;
    let per_client = state.db.settings().await?.viewer_sessions_per_address as usize;
    // Several nodes: an address's joins count on all of them (each node also counts its own).
    if state.db.is_shared()
        && let Err(wait) = state
            .db
            .allow_shared(&format!("join:{client}"), JOINS_PER_CLIENT_PER_MINUTE, Duration::from_secs(60))
            .await?
    {
        let message = format!("at most {JOINS_PER_CLIENT_PER_MINUTE} joins a minute from one address");
        return Err(ApiError::TooManyRequests(message, wait));
    }
    let joined = state.engagement.join(&state.db, (&stream.id, replay), (client, per_client), Instant::now()).await?;
    let session_id = match joined {
        Ok(session_id) => {
            if let Some(Caller(user)) = &caller {
                state.engagement.identify(&stream.id, &session_id, &user.id);
            }
            tracing::debug!(stream = %stream.id, replay, "viewer session joined");
            session_id
        }
        Err(JoinRefused::Client(wait)) => {
            let message = format!(
                "at most {per_client} players per stream and {JOINS_PER_CLIENT_PER_MINUTE} joins a minute from one address"
            );
            return Err(ApiError::TooManyRequests(message, wait));
        }
        Err(JoinRefused::Full) => {
            return Err(ApiError::TooManyRequests(
                "this stream has all the viewer sessions it can hold".into(),
                SESSION_TIMEOUT,
            ));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Joined {
            session_id,
            first_heartbeat_after_seconds: PRESENCE_AFTER.as_secs() + 1,
            heartbeat_interval_seconds: HEARTBEAT_INTERVAL.as_secs(),
            session_timeout_seconds: SESSION_TIMEOUT.as_secs(),
            replay,
        }),
    ))
}

/// Keeps a session alive; with a viewer's token, also says who watches (the seller's
/// audience list), e.g. once the viewer signed in after the player joined.
pub async fn heartbeat(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path((id, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.engagement.heartbeat(&id, &session_id, Instant::now()) {
        if let Some(Caller(user)) = caller {
            state.engagement.identify(&id, &session_id, &user.id);
        }
        Ok(StatusCode::NO_CONTENT)
    } else {
        tracing::debug!(stream = %id, "heartbeat for a viewer session gone or unknown");
        Err(ApiError::NotFound("viewer session"))
    }
}

pub async fn leave(
    State(state): State<AppState>,
    Path((id, session_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.engagement.leave(&id, &session_id) {
        tracing::debug!(stream = %id, "viewer session left");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("viewer session"))
    }
}

pub async fn viewers(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ViewerStats>, ApiError> {
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    Ok(Json(state.engagement.viewer_stats(&state.db, &stream.id).await?))
}

/// Names an audience list shows at most.
pub const AUDIENCE_NAMES: usize = 1000;

#[derive(Serialize)]
pub struct SignedInViewer {
    id: String,
    name: String,
}

#[derive(Serialize)]
pub struct Audience {
    /// Signed-in viewers watching now, by name (at most [`AUDIENCE_NAMES`]), each once
    /// however many players they have open.
    signed_in: Vec<SignedInViewer>,
    /// Viewers signed in as guests (by name only), counted.
    guests: i64,
    /// Players nobody signed in to, counted.
    anonymous: i64,
}

/// Who watches the stream now (the stream's owner and admins): counted sessions only.
pub async fn audience(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Audience>, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    let (user_ids, anonymous) = state.engagement.audience(&stream.id, AUDIENCE_NAMES);
    let users = state.db.users_with_guest_flag(&user_ids).await?;
    let guests = users.iter().filter(|(_, guest)| *guest).count() as i64;
    let signed_in = users
        .into_iter()
        .filter(|(_, guest)| !guest)
        .map(|(user, _)| SignedInViewer { id: user.id, name: user.name })
        .collect();
    Ok(Json(Audience { signed_in, guests, anonymous }))
}

// ---- shares ----

/// Where a link was shared: the watch page's share button says `native` (the Web Share
/// API) or `copy` (copied link); an embedding shop may name the network.
pub const SHARE_CHANNELS: [&str; 8] = ["native", "copy", "facebook", "x", "whatsapp", "telegram", "email", "other"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    channel: String,
}

/// A viewer shared the stream's link (anonymous; a few an hour per address and stream; only
/// our pages or non-browser clients, with a JSON body). Counted in the seller's stats.
pub async fn share(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Client(client): Client,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Share>,
) -> Result<StatusCode, ApiError> {
    same_site_json(&headers)?;
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    if matches!(stream.status, StreamStatus::Ended | StreamStatus::Cancelled) {
        return Err(ApiError::Conflict(stream.status));
    }
    let Some(channel) = SHARE_CHANNELS.iter().find(|c| **c == body.channel) else {
        return Err(ApiError::BadRequest(format!("channel must be one of {}", SHARE_CHANNELS.join(", "))));
    };
    let key = format!("share:{client}:{}", stream.id);
    let allowed = match state.db.is_shared() {
        true => state.db.allow_shared(&key, SHARES_PER_HOUR, Duration::from_secs(3600)).await?,
        false => state.engagement.allow_share(&key, Instant::now()),
    };
    if let Err(wait) = allowed {
        return Err(ApiError::TooManyRequests(
            format!("at most {SHARES_PER_HOUR} shares of a stream an hour from one address"),
            wait,
        ));
    }
    state.db.record_share(&stream.id, channel).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- likes and dislikes ----

#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReactionKind {
    Like,
    Dislike,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetReaction {
    reaction: ReactionKind,
}

#[derive(Serialize)]
pub struct Reactions {
    /// The caller's own reaction; null when none (or anonymous).
    reaction: Option<ReactionKind>,
    likes: i64,
    dislikes: i64,
}

async fn reactions_of(state: &AppState, stream_id: &str, user_id: Option<&str>) -> Result<Reactions, ApiError> {
    let (likes, dislikes) = state.db.reaction_counts(stream_id).await?;
    let mine = match user_id {
        Some(user_id) => state.db.reaction_of(stream_id, user_id).await?,
        None => None,
    };
    let reaction = mine.map(|v| if v > 0 { ReactionKind::Like } else { ReactionKind::Dislike });
    Ok(Reactions { reaction, likes, dislikes })
}

pub async fn get_reaction(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Reactions>, ApiError> {
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    Ok(Json(reactions_of(&state, &stream.id, caller.as_ref().map(|c| c.0.id.as_str())).await?))
}

async fn change_reaction(
    state: &AppState,
    caller: &Caller,
    id: &str,
    value: Option<i64>,
) -> Result<Reactions, ApiError> {
    let stream = visible_stream(state, id, Some(caller)).await?;
    if !matches!(
        stream.status,
        StreamStatus::Scheduled | StreamStatus::Live | StreamStatus::Reconnecting | StreamStatus::Archived
    ) {
        return Err(ApiError::Conflict(stream.status));
    }
    state.db.set_reaction(&stream.id, &caller.0.id, value).await?;
    let reactions = reactions_of(state, &stream.id, Some(&caller.0.id)).await?;
    state.events.publish(Event::new(
        kind::REACTIONS,
        &stream.id,
        json!({ "likes": reactions.likes, "dislikes": reactions.dislikes }),
    ));
    Ok(reactions)
}

/// Likes or dislikes the stream: one reaction per signed-in user, replaced by the next.
pub async fn set_reaction(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetReaction>,
) -> Result<Json<Reactions>, ApiError> {
    let value = if body.reaction == ReactionKind::Like { 1 } else { -1 };
    Ok(Json(change_reaction(&state, &caller, &id, Some(value)).await?))
}

pub async fn remove_reaction(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Reactions>, ApiError> {
    Ok(Json(change_reaction(&state, &caller, &id, None).await?))
}

// ---- chat ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatQuery {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct ChatPage {
    /// Oldest first.
    messages: Vec<ChatMessage>,
    /// Pass as `before` for the page of older messages; null when there are none (and for
    /// `after` queries, which continue with the last message's id as `after`).
    next_before: Option<i64>,
}

const DEFAULT_CHAT_PAGE: i64 = 50;
const MAX_CHAT_PAGE: i64 = 200;

/// Everyone reads: the newest messages, or older ones with `before`, newer ones with `after`.
pub async fn list_chat(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ChatQuery>, QueryRejection>,
) -> Result<Json<ChatPage>, ApiError> {
    let Query(query) = query?;
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    let limit = query.limit.unwrap_or(DEFAULT_CHAT_PAGE);
    if !(1..=MAX_CHAT_PAGE).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_CHAT_PAGE}")));
    }
    if query.before.is_some() && query.after.is_some() {
        return Err(ApiError::BadRequest("give before or after, not both".into()));
    }
    // One extra row tells whether older messages remain.
    let mut messages = state.db.chat_page(&stream.id, query.before, query.after, limit + 1).await?;
    let more = messages.len() as i64 > limit;
    let next_before = if query.after.is_some() {
        // Polling forward: the client continues with the last id as `after`.
        messages.truncate(limit as usize);
        None
    } else {
        if more {
            messages.remove(0);
        }
        more.then(|| messages.first().map(|m| m.id)).flatten()
    };
    Ok(Json(ChatPage { messages, next_before }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostChat {
    text: String,
}

/// A signed-in user posts; length and rate are limited by the admin's settings; muted users
/// are refused. The message carries the server time and the live edge's media time.
pub async fn post_chat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PostChat>,
) -> Result<(StatusCode, Json<ChatMessage>), ApiError> {
    let stream = visible_stream(&state, &id, Some(&caller)).await?;
    if !matches!(stream.status, StreamStatus::Scheduled | StreamStatus::Live | StreamStatus::Reconnecting) {
        return Err(ApiError::Conflict(stream.status));
    }
    let settings = state.db.settings().await?;
    let text = body.text.trim();
    let max = settings.chat_max_length as usize;
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::BadRequest(format!("text must be 1 to {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::BadRequest("text must not contain control characters".into()));
    }
    // Only the seller and staff chat under their own names; a viewer who took one cannot.
    if !caller.controls(&stream) && state.db.is_reserved_name(&caller.0.name, &stream.owner_id).await? {
        return Err(ApiError::Forbidden(
            "this name is reserved for the seller and the moderators; sign in with another",
        ));
    }
    if state.db.is_muted(&stream.id, &caller.0.id).await? {
        return Err(ApiError::Forbidden("you are muted in this stream's chat"));
    }
    let per = Duration::from_secs(settings.chat_rate_limit_seconds.into());
    let max = settings.chat_rate_limit_messages;
    // Several nodes count together; one machine counts in memory.
    let allowed = match state.db.is_shared() {
        true => state.db.allow_shared(&format!("chat:{}", caller.0.id), max, per).await?,
        false => state.engagement.allow_chat(&caller.0.id, max, per, Instant::now()),
    };
    if let Err(wait) = allowed {
        let message = format!(
            "at most {} messages per {} s",
            settings.chat_rate_limit_messages, settings.chat_rate_limit_seconds
        );
        return Err(ApiError::TooManyRequests(message, wait));
    }
    let media_time = if stream.status.is_on_air() { state.hls.live_edge(&stream.id) } else { None };
    let message = state.db.insert_chat(&stream.id, &caller.0.id, text, media_time).await?;
    state.events.publish(Event::new(kind::CHAT, &stream.id, json!({ "message": message })));
    Ok((StatusCode::CREATED, Json(message)))
}

pub async fn delete_chat(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message_id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    if !state.db.delete_chat(&stream.id, message_id).await? {
        return Err(ApiError::NotFound("message"));
    }
    state.events.publish(Event::new(kind::CHAT_DELETED, &stream.id, json!({ "message_id": message_id })));
    Ok(StatusCode::NO_CONTENT)
}

/// The owner or an admin mutes a user in the stream's chat.
pub async fn mute(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    if state.db.user(&user_id).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    state.db.mute(&stream.id, &user_id, &caller.0.id).await?;
    tracing::info!(stream = %stream.id, user = %user_id, by = %caller.0.id, "user muted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unmute(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    if !state.db.unmute(&stream.id, &user_id).await? {
        return Err(ApiError::NotFound("mute"));
    }
    Ok(StatusCode::NO_CONTENT)
}
