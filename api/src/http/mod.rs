//! The HTTP face: routes, JSON bodies, CORS and limits.

mod auth;
mod error;
mod hls;
mod metrics;
mod settings;
mod streams;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};

use crate::AppState;
pub use error::ApiError;

/// A JSON body whose rejections (bad JSON, wrong content type, too large) are our JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// API bodies are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/streams", post(streams::create).get(streams::list))
        .route("/streams/{id}", get(streams::get))
        .route("/streams/{id}/end", post(streams::end))
        .route("/streams/{id}/cancel", post(streams::cancel))
        .route("/streams/{id}/reset-key", post(streams::reset_key))
        .route("/streams/{id}/stats", get(metrics::stream_stats))
        .route("/settings", get(settings::get).patch(settings::patch))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Players on any site may fetch the media.
    let hls = Router::new()
        .route("/{playback_id}/{*path}", get(hls::serve))
        .layer(CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::HEAD]));
    Router::new()
        .nest("/api/v1", api)
        .nest("/hls", hls)
        .route("/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/metrics", get(metrics::prometheus))
        .with_state(state)
}
