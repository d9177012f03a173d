//! The web pages: the public live page (`/`), a stream's watch page (`/watch/{playback_id}`),
//! the seller's studio (`/studio`) and the admin page (`/admin`). Plain HTML, CSS and
//! JavaScript modules built into the binary; they talk to the API like any other client.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::error::ApiError;
use crate::AppState;
use crate::model::StreamStatus;

/// Scripts and styles only from hawker; media and sockets to hawker, and to the store's
/// origin when segments are delivered by redirect (a bucket or CDN); product images from
/// anywhere (the shop's CDN); hls.js runs its worker from a blob. Only the watch page may be
/// framed (the shop embeds it); the others would let a framing site click for a signed-in
/// seller or admin.
fn content_security_policy(media_origin: Option<&str>, framing: Framing) -> HeaderValue {
    let media = media_origin.map(|origin| format!(" {origin}")).unwrap_or_default();
    let ancestors = if framing == Framing::Any { "*" } else { "'none'" };
    let policy = format!(
        "default-src 'self'; img-src * data:; media-src 'self' blob:{media}; worker-src 'self' blob:; \
         connect-src 'self'{media}; style-src 'self'; script-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors {ancestors}"
    );
    HeaderValue::from_str(&policy).expect("an origin holds no control characters")
}

#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// Embeddable by any site.
    Any,
    Never,
}

/// The pages with their links to the assets' hashed names.
struct Pages {
    home: String,
    watch: String,
    studio: String,
    admin: String,
    not_found: String,
}

static PAGES: LazyLock<Pages> = LazyLock::new(|| Pages {
    home: assets::link_page(include_str!("../../web/pages/home.html")),
    watch: assets::link_page(include_str!("../../web/pages/watch.html")),
    studio: assets::link_page(include_str!("../../web/pages/studio.html")),
    admin: assets::link_page(include_str!("../../web/pages/admin.html")),
    not_found: assets::link_page(include_str!("../../web/pages/not-found.html")),
});

fn page(state: &AppState, status: StatusCode, html: String, framing: Framing) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, content_security_policy(state.store.delivery_origin(), framing));
    if framing == Framing::Never {
        // For browsers older than CSP's frame-ancestors.
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

pub async fn home(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::OK, PAGES.home.clone(), Framing::Never)
}

pub async fn studio(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::OK, PAGES.studio.clone(), Framing::Never)
}

pub async fn admin(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::OK, PAGES.admin.clone(), Framing::Never)
}

pub async fn not_found(State(state): State<AppState>) -> Response {
    page(&state, StatusCode::NOT_FOUND, PAGES.not_found.clone(), Framing::Never)
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
        return Ok(not_found(State(state)).await);
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
        &PAGES.watch,
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
    Ok(page(&state, StatusCode::OK, html, Framing::Any))
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&name, &headers).await
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
