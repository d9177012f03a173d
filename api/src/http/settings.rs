//! `/api/v1/settings`: the admin's settings.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::ApiJson;
use super::auth::Caller;
use super::error::ApiError;
use crate::AppState;
use crate::model::Role;
use crate::settings::Settings;

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.0.role == Role::Admin { Ok(()) } else { Err(ApiError::Forbidden("only admins manage settings")) }
}

pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Settings>, ApiError> {
    require_admin(&caller)?;
    Ok(Json(state.db.settings().await?))
}

/// Changes the settings named in the body; the others keep their values.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Settings>, ApiError> {
    require_admin(&caller)?;
    let settings = state.db.settings().await?.patched(patch).map_err(ApiError::BadRequest)?;
    state.db.save_settings(&settings).await?;
    tracing::info!(admin = %caller.0.id, ?settings, "settings changed");
    Ok(Json(settings))
}
