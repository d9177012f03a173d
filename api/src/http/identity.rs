//! Who is calling, and viewer sign-in: a shop exchanges its token for a viewer token of one
//! of its users; a guest signs in by name where the admin allows it.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::ApiJson;
use super::auth::Caller;
use super::error::ApiError;
use crate::AppState;
use crate::model::{Role, User};

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
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "display_name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name)
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
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(body): ApiJson<Guest>,
) -> Result<(StatusCode, Json<ViewerToken>), ApiError> {
    if !state.db.settings().await?.guest_sign_in {
        return Err(ApiError::Forbidden("guest sign-in is off: sign in through the shop"));
    }
    let name = display_name(&body.display_name)?;
    let client = client.map_or_else(String::new, |Extension(ConnectInfo(addr))| addr.ip().to_string());
    if !state.engagement.allow_guest_sign_in(&client, Instant::now()) {
        return Err(ApiError::TooManyRequests("too many guest sign-ins from this address; try again later".into()));
    }
    let user = state.db.create_guest(name).await?;
    issue(&state, user).await
}
