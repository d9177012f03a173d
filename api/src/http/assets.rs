//! The pages' static files (scripts, styles, hls.js), built into the binary. Each is served
//! under a content-hashed name (`/assets/watch.3f9a1c2b7d04.js`) that the pages link to:
//! immutable, so a returning viewer fetches hls.js once per version of it, not per visit.
//! The plain name (`/assets/watch.js`) still answers, revalidated by its strong ETag.
//! Each is compressed once, at its best (brotli 11, gzip 9), not per request.
//!
//! Hand-written rather than tower-http's `ServeDir` (whose precompressed files must lie on
//! disk): the files live in the binary, and the negotiation is a few lines.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

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
    /// `name` with the first 12 hex digits of the body's SHA-256 before its extension.
    hashed: String,
    content_type: &'static str,
    etag: HeaderValue,
    identity: bytes::Bytes,
    gzip: bytes::Bytes,
    brotli: bytes::Bytes,
}

struct Assets {
    files: Vec<Asset>,
    /// Plain name → hashed name, for rewriting the pages' links.
    names: HashMap<&'static str, String>,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(build);

/// Builds the table (hashing, rewriting, compressing: about a second for hls.js) off the
/// request path, so the first viewer does not wait for it.
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
            content_type,
            etag: HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header"),
            gzip: gzip(body.as_bytes()).into(),
            brotli: brotli(body.as_bytes()).into(),
            identity: body.into(),
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

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("writing to memory");
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// The best coding the client accepts (`Accept-Encoding`, RFC 9110 §12.5.3): brotli, then
/// gzip; a coding given `q=0` is refused.
fn negotiate(headers: &HeaderMap) -> Coding {
    let accepts = |coding: &str| {
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
            |item| {
                let mut parts = item.split(';').map(str::trim);
                let token = parts.next().unwrap_or("");
                let refused =
                    parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
                token.eq_ignore_ascii_case(coding) && !refused
            },
        )
    };
    if accepts("br") {
        Coding::Brotli
    } else if accepts("gzip") {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// `/assets/{name}`: a hashed name is immutable; a plain one is revalidated (304 when the
/// client's `If-None-Match` holds the current ETag).
pub fn serve(name: &str, request: &HeaderMap) -> Response {
    let assets = &*ASSETS;
    let found = assets.files.iter().find_map(|a| match name {
        n if n == a.hashed => Some((a, true)),
        n if n == a.name => Some((a, false)),
        _ => None,
    });
    let Some((asset, hashed)) = found else {
        if name == "hls.min.js" {
            let text = "hls.js was not built into this hawker: run `make web` and rebuild";
            return (StatusCode::NOT_FOUND, text).into_response();
        }
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(if hashed { IMMUTABLE } else { "no-cache" }));
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    let body = match negotiate(request) {
        Coding::Brotli => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            asset.brotli.clone()
        }
        Coding::Gzip => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            asset.gzip.clone()
        }
        Coding::Identity => asset.identity.clone(),
    };
    (headers, Body::from(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn picks_the_best_coding_accepted() {
        assert_eq!(negotiate(&accept("gzip, deflate, br, zstd")), Coding::Brotli);
        assert_eq!(negotiate(&accept("gzip;q=1.0, br;q=0")), Coding::Gzip);
        assert_eq!(negotiate(&accept("identity")), Coding::Identity);
        assert_eq!(negotiate(&accept("GZIP")), Coding::Gzip);
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
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
        // Decompressing gives the body back.
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&watch.gzip[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped.as_bytes(), &watch.identity[..]);
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(&mut &watch.brotli[..], &mut unbrotli).unwrap();
        assert_eq!(unbrotli, &watch.identity[..]);
    }
}
