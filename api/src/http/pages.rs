//! The web pages: the public live page (`/`), a stream's watch page (`/watch/{playback_id}`),
//! the seller's studio (`/studio`) and the admin page (`/admin`). Plain HTML, CSS and
//! JavaScript modules built into the binary; they talk to the API like any other client.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::AppState;
use crate::model::StreamStatus;

/// hls.js from npm, copied in by build.rs (empty when it was not installed).
const HLS_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/hls.min.js"));

const HOME: &str = include_str!("../../web/pages/home.html");
const WATCH: &str = include_str!("../../web/pages/watch.html");
const STUDIO: &str = include_str!("../../web/pages/studio.html");
const ADMIN: &str = include_str!("../../web/pages/admin.html");
const NOT_FOUND: &str = include_str!("../../web/pages/not-found.html");

/// `/assets/{name}`: (name, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/pages/app.css")),
    ("common.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/common.js")),
    ("home.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/home.js")),
    ("watch.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/watch.js")),
    ("studio.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/studio.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/admin.js")),
    ("hls.min.js", "text/javascript; charset=utf-8", HLS_JS),
];

/// Scripts and styles only from hawker; media and sockets to hawker; product images from
/// anywhere (the shop's CDN); hls.js runs its worker from a blob. Only the watch page may be
/// framed (the shop embeds it); the others would let a framing site click for a signed-in
/// seller or admin.
const CSP_FRAMEABLE: &str = "default-src 'self'; img-src * data:; media-src 'self' blob:; worker-src 'self' blob:; \
                   connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; \
                   base-uri 'none'; frame-ancestors *";
const CSP: &str = "default-src 'self'; img-src * data:; media-src 'self' blob:; worker-src 'self' blob:; \
                   connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'";

#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// Embeddable by any site.
    Any,
    Never,
}

fn page(status: StatusCode, html: String) -> Response {
    framed_page(status, html, Framing::Never)
}

fn framed_page(status: StatusCode, html: String, framing: Framing) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let csp = if framing == Framing::Any { CSP_FRAMEABLE } else { CSP };
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    if framing == Framing::Never {
        // For browsers older than CSP's frame-ancestors.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

pub async fn home() -> Response {
    page(StatusCode::OK, HOME.to_owned())
}

pub async fn studio() -> Response {
    page(StatusCode::OK, STUDIO.to_owned())
}

pub async fn admin() -> Response {
    page(StatusCode::OK, ADMIN.to_owned())
}

pub async fn not_found() -> Response {
    page(StatusCode::NOT_FOUND, NOT_FOUND.to_owned())
}

/// Text safe inside HTML content and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `template` with each `{{NAME}}` replaced by its value, in one pass: a value that itself
/// reads `{{…}}` (a seller's title) stays as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| values.iter().find(|(name, _)| *name == &after[..end]).map(|v| (end, v)))
        {
            Some((end, (_, value))) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest description a link preview gets, in characters.
const SUMMARY_MAX: usize = 200;

/// The watch page of a live stream or a replay; the stream's id and title are filled in so
/// the page needs no lookup by playback id, and Open Graph and Twitter card tags (title,
/// seller, poster) so that a shared link shows a preview.
pub async fn watch(State(state): State<AppState>, Path(playback_id): Path<String>) -> Result<Response, ApiError> {
    let stream = state.db.stream_by_playback_id(&playback_id).await?;
    let Some(stream) = stream.filter(|s| !matches!(s.status, StreamStatus::Ended | StreamStatus::Cancelled)) else {
        return Ok(not_found().await);
    };
    let seller = state.db.user(&stream.owner_id).await?.map(|u| u.name).unwrap_or_default();
    let when = match stream.status {
        StreamStatus::Live | StreamStatus::Reconnecting => "live now",
        StreamStatus::Archived => "replay",
        _ => "upcoming",
    };
    let mut summary = format!("{seller}, {when}");
    if let Some(description) = stream.description.as_deref().filter(|d| !d.trim().is_empty()) {
        summary.push_str(": ");
        summary.extend(description.chars().take(SUMMARY_MAX));
    }
    let base = &state.urls.http;
    // A poster exists once the stream has been on air.
    let image = match stream.status.is_playable() {
        true => {
            let poster = escape_html(&format!("{base}/hls/{}/poster.jpg", stream.playback_id));
            format!(
                "  <meta property=\"og:image\" content=\"{poster}\">\n  <meta name=\"twitter:image\" content=\"{poster}\">\n"
            )
        }
        false => String::new(),
    };
    let (id, pid, title) = (escape_html(&stream.id), escape_html(&stream.playback_id), escape_html(&stream.title));
    let html = fill(
        WATCH,
        &[
            ("STREAM_ID", &id),
            ("PLAYBACK_ID", &pid),
            ("TITLE", &title),
            ("SUMMARY", &escape_html(&summary)),
            ("URL", &escape_html(&format!("{base}/watch/{}", stream.playback_id))),
            ("CARD", if image.is_empty() { "summary" } else { "summary_large_image" }),
            ("IMAGE", image.trim_end()),
        ],
    );
    Ok(framed_page(StatusCode::OK, html, Framing::Any))
}

pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(asset, _, body)| *asset == name && !body.is_empty()) {
        Some((_, content_type, body)) => {
            let mut response = (*body).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // Small and served from loopback or the LAN: always revalidated, never stale
            // after an upgrade.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }
        None if name == "hls.min.js" => {
            (StatusCode::NOT_FOUND, "hls.js was not built into this hawker: run `make web` and rebuild").into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape_html(r#"<b a="x">'&'</b>"#), "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
    }

    #[test]
    fn fills_a_template_in_one_pass() {
        let values = [("A", "{{B}}"), ("B", "b")];
        assert_eq!(fill("<{{A}}|{{B}}|{{C}}|{{", &values), "<{{B}}|b|{{C}}|{{");
    }
}
