//! `/api/v1/streams`: create, read, list and the lifecycle transitions.

use super::ApiJson;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use crate::AppState;
use crate::db::{MAX_REMIND_MINUTES, NewStream, Page};
use crate::lifecycle;
use crate::model::{EndAction, Role, Stream, StreamStatus, Trigger};

/// A stream as the API shows it. `stream_key` only for its owner and admins.
#[derive(Serialize)]
pub struct StreamView {
    id: String,
    playback_id: String,
    title: String,
    description: Option<String>,
    status: StreamStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_key: Option<String>,
    /// When the key may publish (owner and admins only): from one hour before `scheduled_at`
    /// unless set; null = no bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_valid_from: Option<Option<DateTime<Utc>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_valid_until: Option<Option<DateTime<Utc>>>,
    /// Times the publisher came back after a drop.
    reconnects: i64,
    /// Who streams it.
    seller: Seller,
    /// Live viewer sessions right now.
    viewers: i64,
    /// Most live viewer sessions at once; kept on the replay.
    peak_viewers: i64,
    likes: i64,
    dislikes: i64,
    /// The admin's `rtmp_public_url` when set, else the server's own RTMP URL.
    rtmp_url: String,
    /// The RTMPS server URL, when RTMPS is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmps_url: Option<String>,
    playback_url: String,
    /// The stream's page for viewers.
    watch_url: String,
    /// The latest poster (JPEG) once the stream has been live; null before.
    poster_url: Option<String>,
    /// The replay as one MP4 file (plays in a `<video>` element, downloads whole), once made
    /// after the stream is saved; null before.
    video_url: Option<String>,
    /// From go-live to the end (or to now while on air), seconds.
    duration_seconds: Option<i64>,
    created_at: DateTime<Utc>,
    scheduled_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    /// A rehearsal: never listed publicly, no webhooks, deleted (media and all) when it ends.
    practice: bool,
    /// Subscribers are also reminded this many minutes before `scheduled_at` (owner and
    /// admins only; null: at go-live only).
    #[serde(skip_serializing_if = "Option::is_none")]
    remind_minutes_before: Option<Option<i64>>,
    /// Viewers who asked to be reminded (owner and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reminder_count: Option<i64>,
}

#[derive(Clone, Serialize)]
struct Seller {
    id: String,
    name: String,
}

/// What every view in one response shares.
struct ViewContext {
    rtmp_url: String,
    /// Sellers already looked up, by id.
    sellers: HashMap<String, Seller>,
}

async fn view_context(state: &AppState) -> Result<ViewContext, ApiError> {
    let settings = state.db.settings().await?;
    let rtmp_url = settings.rtmp_public_url.unwrap_or_else(|| state.urls.rtmp.clone());
    Ok(ViewContext { rtmp_url, sellers: HashMap::new() })
}

/// The stream as the caller may see it, with its live figures.
async fn view(state: &AppState, stream: Stream, caller: Option<&Caller>) -> Result<StreamView, ApiError> {
    let mut context = view_context(state).await?;
    view_in(state, &mut context, stream, caller).await
}

async fn view_in(
    state: &AppState,
    context: &mut ViewContext,
    stream: Stream,
    caller: Option<&Caller>,
) -> Result<StreamView, ApiError> {
    let (likes, dislikes) = state.db.reaction_counts(&stream.id).await?;
    let (viewers, peak_viewers) = match state.engagement.live_stats(&stream.id) {
        Some(live) => (live.current, live.peak),
        None => (0, state.db.viewer_counters(&stream.id).await?.peak),
    };
    let seller = match context.sellers.get(&stream.owner_id) {
        Some(seller) => seller.clone(),
        None => {
            let user = state.db.user(&stream.owner_id).await?;
            let name = user.map_or_else(String::new, |u| u.name);
            let seller = Seller { id: stream.owner_id.clone(), name };
            context.sellers.insert(seller.id.clone(), seller.clone());
            seller
        }
    };
    let show_reminders = caller.is_some_and(|c| c.controls(&stream));
    let reminder_count = match show_reminders {
        true => Some(state.db.reminder_count(&stream.id).await?),
        false => None,
    };
    let mut view = StreamView::new(state, context, stream, caller, seller);
    (view.likes, view.dislikes, view.viewers, view.peak_viewers) = (likes, dislikes, viewers, peak_viewers);
    view.reminder_count = reminder_count;
    Ok(view)
}

impl StreamView {
    fn new(state: &AppState, context: &ViewContext, stream: Stream, caller: Option<&Caller>, seller: Seller) -> Self {
        let show_key = caller.is_some_and(|c| c.controls(&stream));
        let duration_seconds =
            stream.started_at.map(|start| (stream.ended_at.unwrap_or_else(Utc::now) - start).num_seconds().max(0));
        let poster_url = (stream.started_at.is_some() && stream.status.is_playable())
            .then(|| format!("{}/hls/{}/poster.jpg", state.urls.http, stream.playback_id));
        Self {
            seller,
            viewers: 0,
            peak_viewers: 0,
            likes: 0,
            dislikes: 0,
            watch_url: state.urls.watch(&stream.playback_id),
            poster_url,
            video_url: stream
                .video_path
                .as_deref()
                .filter(|_| stream.status == StreamStatus::Archived)
                .map(|path| state.urls.media(&stream.playback_id, path)),
            duration_seconds,
            key_valid_from: show_key.then(|| stream.key_opens_at()),
            key_valid_until: show_key.then_some(stream.key_valid_until),
            reconnects: (stream.publish_seq - 1).max(0),
            playback_url: state.urls.playback(&stream.playback_id),
            rtmp_url: context.rtmp_url.clone(),
            rtmps_url: state.urls.rtmps.clone(),
            stream_key: show_key.then_some(stream.stream_key),
            id: stream.id,
            playback_id: stream.playback_id,
            title: stream.title,
            description: stream.description,
            status: stream.status,
            created_at: stream.created_at,
            scheduled_at: stream.scheduled_at,
            started_at: stream.started_at,
            ended_at: stream.ended_at,
            practice: stream.practice,
            remind_minutes_before: show_key.then_some(stream.remind_minutes_before),
            reminder_count: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateStream {
    title: String,
    description: Option<String>,
    scheduled_at: Option<DateTime<Utc>>,
    key_valid_from: Option<DateTime<Utc>>,
    key_valid_until: Option<DateTime<Utc>>,
    /// A rehearsal (see [`StreamView::practice`]).
    #[serde(default)]
    practice: bool,
    /// Subscribers are also reminded this long before `scheduled_at` (minutes).
    remind_minutes_before: Option<i64>,
}

const MAX_TITLE_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 5000;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateStream>,
) -> Result<(StatusCode, Json<StreamView>), ApiError> {
    if !matches!(caller.0.role, Role::Seller | Role::Admin) {
        return Err(ApiError::Forbidden("only sellers and admins create streams"));
    }
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::BadRequest(format!("title must be 1 to {MAX_TITLE_CHARS} characters")));
    }
    let description = body.description.as_deref().map(str::trim).filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        return Err(ApiError::BadRequest(format!("description must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    if let (Some(from), Some(until)) = (body.key_valid_from, body.key_valid_until)
        && from >= until
    {
        return Err(ApiError::BadRequest("key_valid_from must be before key_valid_until".into()));
    }
    if let Some(minutes) = body.remind_minutes_before {
        if !(1..=MAX_REMIND_MINUTES).contains(&minutes) {
            return Err(ApiError::BadRequest(format!("remind_minutes_before must be 1 to {MAX_REMIND_MINUTES}")));
        }
        if body.scheduled_at.is_none() {
            return Err(ApiError::BadRequest("remind_minutes_before needs scheduled_at".into()));
        }
    }
    let new = NewStream {
        owner_id: &caller.0.id,
        title,
        description,
        scheduled_at: body.scheduled_at,
        key_valid_from: body.key_valid_from,
        key_valid_until: body.key_valid_until,
        practice: body.practice,
        remind_minutes_before: body.remind_minutes_before,
    };
    let stream = state.db.create_stream(new).await?;
    Ok((StatusCode::CREATED, Json(view(&state, stream, Some(&caller)).await?)))
}

/// A stream the caller may see: ended and cancelled streams are hidden from everyone but
/// their owner and admins.
pub(super) async fn visible_stream(state: &AppState, id: &str, caller: Option<&Caller>) -> Result<Stream, ApiError> {
    let stream = state.db.stream(id).await?.ok_or(ApiError::NotFound("stream"))?;
    let hidden = matches!(stream.status, StreamStatus::Ended | StreamStatus::Cancelled);
    if hidden && !caller.is_some_and(|c| c.controls(&stream)) {
        return Err(ApiError::NotFound("stream"));
    }
    Ok(stream)
}

/// A stream the caller may change: its owner or an admin.
pub(super) async fn controlled_stream(state: &AppState, id: &str, caller: &Caller) -> Result<Stream, ApiError> {
    let stream = visible_stream(state, id, Some(caller)).await?;
    if !caller.controls(&stream) {
        return Err(ApiError::Forbidden("only the stream's owner or an admin may do this"));
    }
    Ok(stream)
}

pub async fn get(
    State(state): State<AppState>,
    caller: Option<Caller>,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let stream = visible_stream(&state, &id, caller.as_ref()).await?;
    Ok(Json(view(&state, stream, caller.as_ref()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    /// `public` (default): what everyone sees; `mine`: the caller's own streams, every
    /// status, keys included; `all`: every stream (admins only).
    scope: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Serialize)]
pub struct StreamList {
    streams: Vec<StreamView>,
    /// The `offset` of the next page, or null on the last page.
    next_offset: Option<i64>,
}

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// Public lists: live now (including streams waiting for their publisher), upcoming, replays;
/// and a seller's own streams or, for admins, every stream.
pub async fn list(
    State(state): State<AppState>,
    caller: Option<Caller>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<StreamList>, ApiError> {
    let Query(query) = query?;
    let owner = match query.scope.as_deref() {
        None | Some("public") => None,
        Some("mine") => Some(caller.as_ref().ok_or(ApiError::Unauthorized)?.0.id.clone()),
        Some("all") => match &caller {
            Some(c) if c.0.role == Role::Admin => None,
            Some(_) => return Err(ApiError::Forbidden("only admins list every stream")),
            None => return Err(ApiError::Unauthorized),
        },
        Some(_) => return Err(ApiError::BadRequest("scope must be public, mine or all".into())),
    };
    let every_status = query.scope.as_deref().is_some_and(|scope| scope != "public");
    let statuses: &[StreamStatus] = match query.status.as_deref() {
        None if every_status => &StreamStatus::ALL,
        None => &[StreamStatus::Live, StreamStatus::Reconnecting, StreamStatus::Scheduled, StreamStatus::Archived],
        Some("live") => &[StreamStatus::Live, StreamStatus::Reconnecting],
        Some("scheduled") => &[StreamStatus::Scheduled],
        Some("archived") => &[StreamStatus::Archived],
        Some("ended") if every_status => &[StreamStatus::Ended],
        Some("cancelled") if every_status => &[StreamStatus::Cancelled],
        Some(_) => {
            return Err(ApiError::BadRequest(
                "status must be live, scheduled or archived (or ended, cancelled with scope mine or all)".into(),
            ));
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let offset = query.offset.unwrap_or(0);
    if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(format!("limit must be 1 to {MAX_PAGE}, offset at least 0")));
    }
    // One extra row tells whether another page follows.
    // Practice streams show in their owner's and the admins' lists only.
    let practice = query.scope.as_deref().is_some_and(|scope| scope != "public");
    let page = Page { limit: limit + 1, offset };
    let mut streams = state.db.list_streams(statuses, (owner.as_deref(), practice), page).await?;
    // An offset near i64::MAX has no next page (and must not overflow into one).
    let next_offset = (streams.len() as i64 > limit).then(|| offset.checked_add(limit)).flatten();
    streams.truncate(limit as usize);
    let mut context = view_context(&state).await?;
    let caller = caller.filter(|_| every_status);
    let mut views = Vec::with_capacity(streams.len());
    for stream in streams {
        let mut view = view_in(&state, &mut context, stream, caller.as_ref()).await?;
        // A list never carries keys, not even the caller's own: one stream's view does.
        view.stream_key = None;
        views.push(view);
    }
    let streams = views;
    Ok(Json(StreamList { streams, next_offset }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndStream {
    action: EndAction,
}

/// Refuses an illegal transition with 409 and the stream's current status.
async fn conflict(state: &AppState, id: &str) -> ApiError {
    match state.db.stream(id).await {
        Ok(Some(stream)) => ApiError::Conflict(stream.status),
        Ok(None) => ApiError::NotFound("stream"),
        Err(e) => e.into(),
    }
}

pub async fn end(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndStream>,
) -> Result<Json<StreamView>, ApiError> {
    let stream = controlled_stream(&state, &id, &caller).await?;
    match lifecycle::end_stream(&state, &stream, body.action).await? {
        Some(ended) => Ok(Json(view(&state, ended, Some(&caller)).await?)),
        None => Err(conflict(&state, &id).await),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    controlled_stream(&state, &id, &caller).await?;
    match state.db.transition(&id, Trigger::Cancel).await? {
        Some(stream) => {
            state.events.publish(crate::events::Event::status(&stream.id, StreamStatus::Cancelled));
            Ok(Json(view(&state, stream, Some(&caller)).await?))
        }
        None => Err(conflict(&state, &id).await),
    }
}

pub async fn reset_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    controlled_stream(&state, &id, &caller).await?;
    let Some(stream) = state.db.reset_stream_key(&id).await? else {
        return Err(conflict(&state, &id).await);
    };
    // A publisher on the old key goes now; the stream waits for the new key.
    state.live.disconnect(&id);
    tracing::info!(stream = %id, "stream key reset");
    Ok(Json(view(&state, stream, Some(&caller)).await?))
}
