//! The pages' static files (scripts, styles, hls.js), built into the binary. Each is served
//! under a content-hashed name (`/assets/watch.3f9a1c2b7d04.js`) that the pages link to:
//! immutable, so a returning viewer fetches hls.js once per version of it, not per visit.
//! The plain name (`/assets/watch.js`) still answers, revalidated by its strong ETag.
//! Each is compressed once, at its best (brotli 11, gzip 9), when first asked for: not per request.
//!
//! Hand-written rather than tower-http's `ServeDir` (whose precompressed files must lie on
//! disk): the files live in the binary, and the negotiation is a few lines.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::coding::{Coding, Effort, compress, negotiate};

/// hls.js from npm, copied in by build.rs (empty when it was not installed).
const HLS_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/hls.min.js"));

/// (name, content type, text), dependencies before the files that name them.
const SOURCES: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../web/pages/app.css")),
    ("hls.min.js", "text/javascript; charset=utf-8", HLS_JS),
    ("common.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/common.js")),
    ("home.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/home.js")),
    ("watch.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/watch.js")),
    ("studio.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/studio.js")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../../web/pages/admin.js")),
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

struct Asset {
    name: &'static str,
    /// `name` with `hash` before its extension.
    hashed: String,
    /// The first 12 hex digits of the body's SHA-256.
    hash: String,
    content_type: &'static str,
    identity: Bytes,
    /// Compressed on first asked for (off the async workers), then kept.
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
}

struct Assets {
    files: Vec<Asset>,
    /// Plain name → hashed name, for rewriting the pages' links.
    names: HashMap<&'static str, String>,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(build);

/// Builds the table (hashing, rewriting) off the request path, so the first viewer does not
/// wait for it.
pub fn prepare() {
    std::thread::spawn(|| LazyLock::force(&ASSETS));
}

fn build() -> Assets {
    let mut names = HashMap::new();
    let mut files = Vec::new();
    // In order: a file's links are rewritten with the hashed names of the files before it,
    // so its own hash changes when one of them does.
    for &(name, content_type, text) in SOURCES.iter().filter(|(_, _, text)| !text.is_empty()) {
        let body = rewrite_links(text, &names);
        let digest = format!("{:x}", Sha256::digest(body.as_bytes()));
        let hash = &digest[..12];
        let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
        let hashed = format!("{stem}.{hash}.{extension}");
        names.insert(name, hashed.clone());
        files.push(Asset {
            name,
            hashed,
            hash: hash.to_owned(),
            content_type,
            identity: body.into(),
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
        });
    }
    Assets { files, names }
}

/// `text` with each link to an asset (`"/assets/NAME"`, `'./NAME'`: the HTML pages' tags and
/// the modules' imports) pointing at its hashed name.
fn rewrite_links(text: &str, names: &HashMap<&'static str, String>) -> String {
    let mut out = text.to_owned();
    for (name, hashed) in names {
        for quote in ['"', '\''] {
            for prefix in ["/assets/", "./"] {
                out = out.replace(&format!("{quote}{prefix}{name}{quote}"), &format!("{quote}{prefix}{hashed}{quote}"));
            }
        }
    }
    out
}

/// An HTML page with its asset links pointing at the hashed names.
pub fn link_page(html: &str) -> String {
    rewrite_links(html, &ASSETS.names)
}

/// The asset's body in `coding`, compressing it on a blocking thread the first time; `None`
/// if that failed (then send it as it is).
async fn body_in(asset: &'static Asset, coding: Coding) -> Option<Bytes> {
    let cell: &'static OnceLock<Bytes> = match coding {
        Coding::Identity => return Some(asset.identity.clone()),
        Coding::Brotli => &asset.brotli,
        Coding::Gzip => &asset.gzip,
    };
    if let Some(body) = cell.get() {
        return Some(body.clone());
    }
    let compressed = move || cell.get_or_init(|| compress(&asset.identity, coding, Effort::Best).into()).clone();
    tokio::task::spawn_blocking(compressed).await.ok()
}

/// The strong ETag of the asset in one coding (each coding is a different representation).
fn etag(asset: &Asset, coding: Coding) -> HeaderValue {
    let suffix = match coding {
        Coding::Identity => "",
        Coding::Brotli => "-br",
        Coding::Gzip => "-gz",
    };
    HeaderValue::from_str(&format!("\"{}{suffix}\"", asset.hash)).expect("hex is a valid header")
}

/// `/assets/{name}`: a hashed name is immutable; a plain one is revalidated (304 when the
/// client's `If-None-Match` holds the current ETag). A hash that is not the current one (a
/// page from a node of another version, during a rolling upgrade) gets the current file,
/// revalidated rather than immutable.
pub async fn serve(name: &str, request: &HeaderMap) -> Response {
    let assets: &'static Assets = &ASSETS;
    let found = assets.files.iter().find_map(|a| match name {
        n if n == a.hashed => Some((a, true)),
        n if n == a.name || unhashed(n).as_deref() == Some(a.name) => Some((a, false)),
        _ => None,
    });
    let Some((asset, hashed)) = found else {
        if name == "hls.min.js" {
            let text = "hls.js was not built into this hawker: run `make web` and rebuild";
            return (StatusCode::NOT_FOUND, text).into_response();
        }
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut coding = negotiate(request);
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(if hashed { IMMUTABLE } else { "no-cache" }));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
    let ours = etag(asset, coding);
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == ours || tag == "*");
    if unchanged {
        headers.insert(header::ETAG, ours);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let body = match body_in(asset, coding).await {
        Some(body) => body,
        None => {
            coding = Coding::Identity;
            asset.identity.clone()
        }
    };
    headers.insert(header::ETAG, etag(asset, coding));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if let Some(encoding) = coding.header() {
        headers.insert(header::CONTENT_ENCODING, encoding);
    }
    (headers, Body::from(body)).into_response()
}

/// `watch.js` for `watch.0123456789ab.js`: a name with a 12-hex-digit hash taken out.
fn unhashed(name: &str) -> Option<String> {
    let (rest, extension) = name.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("{stem}.{extension}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        assert_eq!(unhashed("hls.min.0123456789ab.js").as_deref(), Some("hls.min.js"));
        assert_eq!(unhashed("watch.js"), None);
        assert_eq!(unhashed("hls.min.js"), None);
    }

    #[test]
    fn links_point_at_hashed_names_and_hashes_follow_dependencies() {
        let assets = &*ASSETS;
        let common = &assets.names["common.js"];
        assert!(common.starts_with("common.") && common.ends_with(".js") && common.len() == "common..js".len() + 12);
        let watch = assets.files.iter().find(|a| a.name == "watch.js").unwrap();
        let text = std::str::from_utf8(&watch.identity).unwrap();
        assert!(text.contains(&format!("'./{common}'")), "watch.js imports the hashed common.js");
        assert!(!text.contains("'./common.js'"));
        let page = link_page("<script src=\"/assets/watch.js\"></script><a href=\"/assets/watch.jsx\">");
        assert_eq!(page, format!("<script src=\"/assets/{}\"></script><a href=\"/assets/watch.jsx\">", watch.hashed));
    }
}
