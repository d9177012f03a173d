//! Who is calling, and viewer sign-in: a shop exchanges its token for a viewer token of one
//! of its users; a guest signs in by name where the admin allows it.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use super::auth::Caller;
use super::client::Client;
use super::error::ApiError;
use crate::engagement::GUEST_SIGN_INS_PER_HOUR;
use crate::model::{Role, User};
use crate::{AppState, secrets};

/// How long a viewer token lasts: a shop signs its user in again after that.
const VIEWER_TOKEN_TTL: Duration = Duration::hours(24);
const MAX_NAME_CHARS: usize = 100;
const MAX_EXTERNAL_ID_CHARS: usize = 200;

#[derive(Serialize)]
pub struct Me {
    id: String,
    name: String,
    role: Role,
}

pub async fn me(caller: Caller) -> Json<Me> {
    let User { id, name, role } = caller.0;
    Json(Me { id, name, role })
}

#[derive(Serialize)]
pub struct ViewerToken {
    token: String,
    expires_at: DateTime<Utc>,
    user: ViewerUser,
}

#[derive(Serialize)]
struct ViewerUser {
    id: String,
    name: String,
}

/// A display name: trimmed, 1–100 characters, no control characters.
fn display_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(is_hidden_or_control) {
        return Err(ApiError::BadRequest(format!(
            "display_name must be 1 to {MAX_NAME_CHARS} characters without control, format or direction characters"
        )));
    }
    Ok(name)
}

/// Characters that make one name look like another: controls (Cc), line and paragraph
/// separators, and the format characters (Cf: bidi overrides and isolates, zero-width
/// joiners and spaces, invisible operators, tags; Unicode 15).
pub fn is_hidden_or_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

async fn issue(state: &AppState, user: User) -> Result<(StatusCode, Json<ViewerToken>), ApiError> {
    let expires_at = Utc::now() + VIEWER_TOKEN_TTL;
    let token = state.db.issue_viewer_token(&user.id, expires_at).await?;
    Ok((
        StatusCode::CREATED,
        Json(ViewerToken { token, expires_at, user: ViewerUser { id: user.id, name: user.name } }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopViewer {
    /// The shop's own id for its user: the same id is the same viewer (one like per stream).
    user_id: String,
    display_name: String,
}

/// `POST /viewer-tokens` (shop token): a viewer token for one of the shop's users.
pub async fn viewer_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ShopViewer>,
) -> Result<(StatusCode, Json<ViewerToken>), ApiError> {
    if caller.0.role != Role::Shop {
        return Err(ApiError::Forbidden("only a shop token may sign viewers in"));
    }
    let external_id = body.user_id.trim();
    if external_id.is_empty() || external_id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(ApiError::BadRequest(format!("user_id must be 1 to {MAX_EXTERNAL_ID_CHARS} characters")));
    }
    let name = display_name(&body.display_name)?;
    let user = state.db.shop_viewer(&caller.0.id, external_id, name).await?;
    issue(&state, user).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    display_name: String,
}

/// `POST /guest-tokens` (anonymous): a new guest viewer and its token, while the admin's
/// `guest_sign_in` is on; a few an hour per client address.
pub async fn guest_token(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<Guest>,
) -> Result<(StatusCode, Json<ViewerToken>), ApiError> {
    if !state.db.settings().await?.guest_sign_in {
        return Err(ApiError::Forbidden("guest sign-in is off: sign in through the shop"));
    }
    let name = display_name(&body.display_name)?;
    // Several nodes count together; one machine counts in memory.
    let allowed = match state.db.is_shared() {
        true => {
            let per = std::time::Duration::from_secs(3600);
            state.db.allow_shared(&format!("guest:{client}"), GUEST_SIGN_INS_PER_HOUR, per).await?
        }
        false => state.engagement.allow_guest_sign_in(&client.to_string(), Instant::now()),
    };
    if let Err(wait) = allowed {
        return Err(ApiError::TooManyRequests(
            "too many guest sign-ins from this address; try again later".into(),
            wait,
        ));
    }
    let user = state.db.create_guest(name).await?;
    issue(&state, user).await
}

// ---- staff tokens (admin) ----

#[derive(Serialize)]
pub struct Tokens {
    /// When the user's API token stops working; null: never.
    api_token_expires_at: Option<DateTime<Utc>>,
    /// Its live viewer tokens (shop or guest sign-ins), soonest to expire first.
    viewer_tokens: Vec<TokenExpiry>,
}

#[derive(Serialize)]
pub struct TokenExpiry {
    expires_at: DateTime<Utc>,
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.role == Role::Admin { Ok(()) } else { Err(ApiError::Forbidden("only admins manage tokens")) }
}

/// `GET /users/{id}/tokens` (admin): when the user's tokens expire. Tokens themselves are
/// never stored, so never shown again.
pub async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Tokens>, ApiError> {
    admin_only(&caller)?;
    let (api, viewer) = state.db.token_expiries(&id).await?.ok_or(ApiError::NotFound("user"))?;
    let viewer_tokens = viewer.into_iter().map(|expires_at| TokenExpiry { expires_at }).collect();
    Ok(Json(Tokens { api_token_expires_at: api, viewer_tokens }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    /// Days the new token works; absent: no expiry.
    expires_in_days: Option<u32>,
}

#[derive(Serialize)]
pub struct Rotated {
    token: String,
    expires_at: Option<DateTime<Utc>>,
}

/// `POST /users/{id}/tokens` (admin): a new API token for the user, shown once; the old one
/// stops working at once.
pub async fn rotate_token(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Rotated>), ApiError> {
    admin_only(&caller)?;
    // The body is optional: no body, no expiry.
    let Rotate { expires_in_days } = match body.is_empty() {
        true => Rotate::default(),
        false => serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))?,
    };
    let expires_at = secrets::token_expiry(expires_in_days).map_err(ApiError::BadRequest)?;
    let token = state.db.rotate_token(&id, expires_at).await?.ok_or(ApiError::NotFound("user"))?;
    tracing::info!(user = %id, by = %caller.0.id, "API token rotated");
    Ok((StatusCode::CREATED, Json(Rotated { token, expires_at })))
}

/// `DELETE /users/{id}/tokens` (admin): every token of the user stops working.
pub async fn revoke_tokens(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    if !state.db.revoke_tokens(&id).await? {
        return Err(ApiError::NotFound("user"));
    }
    tracing::info!(user = %id, by = %caller.0.id, "tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
