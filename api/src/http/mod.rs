//! The HTTP face: routes, JSON bodies, CORS and limits.

mod assets;
mod auth;
mod client;
mod clips;
mod coding;
pub(crate) mod commerce;
pub(crate) mod compressed_playlists;
mod engagement;
mod error;
mod events;
mod health;
mod hls;
mod identity;
mod metrics;
mod openapi;
mod pages;
mod reminders;
mod settings;
mod streams;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::routing::{delete, get, post, put};
use futures_util::future::{BoxFuture, Either};

use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::AppState;
pub use error::ApiError;

/// A JSON body whose rejections (bad JSON, wrong content type, too large) are our JSON errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// API bodies are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// No API request takes longer (an event socket's upgrade answers at once).
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Above the longest LL-HLS blocking reload (three target durations of 10 s segments).
const HLS_TIMEOUT: Duration = Duration::from_secs(45);

/// `/metrics` alone, for a listener of its own (`--metrics-listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(metrics::prometheus)).layer(compression()).with_state(state)
}

/// hawker's HTTP service. A request for live media of a stream packaged here is answered
/// before the router (`hls::LiveMedia`: viewers' blocking reloads and parts, thousands a
/// second); everything else is the router's.
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

impl App {
    pub fn new(state: AppState) -> Self {
        Self { router: router(state.clone()), state }
    }

    /// The service of one client connection, from `peer`.
    pub fn connection(&self, peer: SocketAddr) -> Connection {
        Connection { app: self.clone(), peer }
    }
}

/// [`App`] on one client connection.
#[derive(Clone)]
pub struct Connection {
    app: App,
    peer: SocketAddr,
}

impl<B> tower::Service<Request<B>> for Connection
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<RouteFuture<Infallible>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        // As axum's router always is.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let state = &self.app.state;
        if let Some((playback_id, live)) = hls::LiveMedia::of(state, request.method(), request.uri(), request.headers())
        {
            let state = state.clone();
            let (parts, _) = request.into_parts();
            return Either::Right(Box::pin(async move {
                Ok(live.answer(&state, &playback_id, &parts.method, &parts.uri, &parts.headers).await)
            }));
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Left(self.app.router.call(request))
    }
}

fn router(state: AppState) -> Router {
    let metrics_here = !state.metrics.own_listener;
    let api = Router::new()
        .route("/streams", post(streams::create).get(streams::list))
        .route("/streams/{id}", get(streams::get))
        .route("/streams/{id}/end", post(streams::end))
        .route("/streams/{id}/cancel", post(streams::cancel))
        .route("/streams/{id}/reset-key", post(streams::reset_key))
        .route("/streams/{id}/stats", get(metrics::stream_stats))
        .route("/streams/{id}/viewers", post(engagement::join).get(engagement::viewers))
        .route("/streams/{id}/viewers/{session_id}", delete(engagement::leave))
        .route("/streams/{id}/viewers/{session_id}/heartbeat", post(engagement::heartbeat))
        .route("/streams/{id}/audience", get(engagement::audience))
        .route("/streams/{id}/shares", post(engagement::share))
        .route(
            "/streams/{id}/reaction",
            get(engagement::get_reaction).put(engagement::set_reaction).delete(engagement::remove_reaction),
        )
        .route("/streams/{id}/chat", get(engagement::list_chat).post(engagement::post_chat))
        .route("/streams/{id}/chat/{message_id}", delete(engagement::delete_chat))
        .route("/streams/{id}/mutes/{user_id}", put(engagement::mute).delete(engagement::unmute))
        .route("/streams/{id}/pins", get(commerce::list_pins).post(commerce::pin))
        .route("/streams/{id}/pins/{product_id}", delete(commerce::unpin))
        .route("/streams/{id}/orders", post(commerce::report_order).get(commerce::list_orders))
        .route("/streams/{id}/clips", post(clips::create).get(clips::list))
        .route("/streams/{id}/clips/{clip_id}", get(clips::get))
        .route("/streams/{id}/clips/{clip_id}/mp4", post(clips::make_mp4))
        .route("/products/{product_id}/highlights", get(clips::highlights))
        .route("/shops/{shop_id}/sellers", get(commerce::list_sellers))
        .route("/shops/{shop_id}/sellers/{seller_id}", put(commerce::link_seller).delete(commerce::unlink_seller))
        .route("/streams/{id}/reminder", put(reminders::put).delete(reminders::delete).get(reminders::get))
        .route("/streams/{id}/calendar.ics", get(reminders::calendar))
        .route("/events", get(events::site_events))
        .route("/streams/{id}/events", get(events::events))
        .route("/streams/{id}/events/ticket", post(events::ticket))
        .route("/users/{id}/tokens", get(identity::tokens).post(identity::rotate_token).delete(identity::revoke_tokens))
        .route("/settings", get(settings::get).patch(settings::patch))
        .route("/me", get(identity::me))
        .route("/viewer-tokens", post(identity::viewer_token))
        .route("/guest-tokens", post(identity::guest_token))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, API_TIMEOUT));
    // Players on any site may fetch the media. A route of its own, not a nested router: the
    // path every viewer asks for several times a second is not rewritten on its way in. Live
    // playlists and parts never reach these layers (`hls::LiveMedia`, answered before the
    // router): what a layer here adds to an answer, `LiveMedia::answer` adds too.
    let hls = get(hls::serve)
        .layer::<_, std::convert::Infallible>(
            // Any origin gets the same answer: no `Vary` (built for every response otherwise).
            CorsLayer::new().allow_origin(Any).allow_methods([Method::GET, Method::HEAD]).vary([]),
        )
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, HLS_TIMEOUT));
    let pages = Router::new()
        .nest("/api/v1", api)
        .route(hls::ROUTE, hls)
        .route("/healthz", get(|| async { StatusCode::NO_CONTENT }))
        .route("/readyz", get(health::ready))
        .route("/", get(pages::home))
        .route("/watch/{playback_id}", get(pages::watch))
        .route("/studio", get(pages::studio))
        .route("/admin", get(pages::admin))
        .route("/assets/{name}", get(pages::asset));
    let pages = if metrics_here { pages.route("/metrics", get(metrics::prometheus)) } else { pages };
    assets::prepare();
    pages.fallback(pages::not_found).layer(compression()).layer(axum::middleware::from_fn(access_log)).with_state(state)
}

/// Text answers compressed (brotli or gzip, as the client accepts) at a level cheap enough
/// per request (4: JSON, pages, replay playlists); media never (it is compressed already).
/// The assets and live playlists come compressed once for all their clients and pass through
/// untouched.
fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Precise(4))
        .compress_when(SizeAbove::new(256).and(TextBody))
}

/// Compressible content types: playlists, HTML, scripts, styles, JSON, metrics, calendars.
#[derive(Clone, Copy)]
struct TextBody;

impl Predicate for TextBody {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        const TEXT: &[&str] = &["text/", "application/json", "application/vnd.apple.mpegurl", "application/x-mpegurl"];
        let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        TEXT.iter().any(|prefix| {
            content_type.len() >= prefix.len() && content_type[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
    }
}

/// The access log's target: one line per request, at DEBUG (`--access-log` turns it on).
pub const ACCESS_LOG: &str = "hawker::access";

/// Logs each request: method, route template (never the path, which names streams and
/// clips; never the query, which may carry a token), status and duration; and counts it for
/// `/metrics` by the same labels. A router's layer runs after routing: the matched route's
/// template (nested routers' prefixes included) is known; a fallback's request has none.
/// Also closes the connection after a refused body (one middleware, not two: each boxes the
/// request's future and clones the service under it, for every request).
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = request.method().clone();
    // Shared, not copied: this runs for every request.
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let body_may_be_left = body_may_be_left(request.headers());
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    if body_may_be_left && !response.status().is_success() {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let route = route.as_ref().map(axum::extract::MatchedPath::as_str);
    log_request(&method, route, response.status(), started.elapsed());
    response
}

/// One line of the access log, and the request counted for `/metrics`; a request no route
/// matched has no `route`.
fn log_request(method: &Method, route: Option<&str>, status: StatusCode, took: Duration) {
    let route = route.unwrap_or("(no route)");
    let status = status.as_u16();
    metrics::record_request(method.as_str(), route, status, took);
    tracing::debug!(
        target: ACCESS_LOG,
        method = %method,
        route,
        status,
        duration_ms = (took.as_secs_f64() * 1000.0 * 100.0).round() / 100.0,
        "request"
    );
}

/// Whether a refused request may leave its body on the wire: then the server closes the
/// connection after answering, and saying so in the answer keeps a client from sending its
/// next request on a connection about to close. (Reads the request's headers in place:
/// extracting `Parts` would copy them for every request.)
fn body_may_be_left(headers: &axum::http::HeaderMap) -> bool {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    length.map_or(headers.contains_key(header::TRANSFER_ENCODING), |n| n > 16 * 1024)
}
