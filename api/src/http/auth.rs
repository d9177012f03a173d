//! Bearer-token authentication: `Authorization: Bearer <token>`.

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::AppState;
use crate::model::{Role, Stream, User};

/// The signed-in caller. As an `Option<Caller>` extractor it allows anonymous requests,
/// but a token that is present and wrong is still refused.
pub struct Caller(pub User);

impl Caller {
    /// The stream's owner or an admin: may see its key and change it.
    pub fn controls(&self, stream: &Stream) -> bool {
        self.0.role == Role::Admin || self.0.id == stream.owner_id
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized),
    }
}

impl<S> OptionalFromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, ApiError> {
        let Some(token) = bearer(parts)? else {
            return Ok(None);
        };
        let state = AppState::from_ref(state);
        match state.db.user_by_token(token).await? {
            Some(user) => Ok(Some(Caller(user))),
            None => Err(ApiError::Unauthorized),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        <Caller as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?.ok_or(ApiError::Unauthorized)
    }
}
