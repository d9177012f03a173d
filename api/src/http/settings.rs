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

/// The settings as shown: the webhook secret is never echoed back.
fn shown(settings: &Settings) -> Value {
    let mut value = serde_json::to_value(settings).expect("settings serialise");
    if settings.webhook_secret.is_some() {
        value["webhook_secret"] = Value::from("********");
    }
    value
}

pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    Ok(Json(shown(&state.db.settings().await?)))
}

/// Changes the settings named in the body; the others keep their values.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let changed: Vec<String> = patch.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let settings = state.db.settings().await?.patched(patch).map_err(ApiError::BadRequest)?;
    state.db.save_settings(&settings).await?;
    // Names only: values may be secret (webhook_secret).
    tracing::info!(admin = %caller.0.id, ?changed, "settings changed");
    Ok(Json(shown(&settings)))
}
