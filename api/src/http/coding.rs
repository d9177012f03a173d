//! Content codings for answers compressed once and sent many times (the pages' assets, live
//! playlists), rather than per request by the router's compression layer. Hand-written: the
//! negotiation is a few lines, and tower-http keeps its own private.

use std::io::Write;

use axum::http::{HeaderMap, HeaderValue, header};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` to send; `None` for identity.
    pub fn header(self) -> Option<HeaderValue> {
        match self {
            Coding::Brotli => Some(HeaderValue::from_static("br")),
            Coding::Gzip => Some(HeaderValue::from_static("gzip")),
            Coding::Identity => None,
        }
    }
}

/// The coding the client prefers among brotli and gzip (`Accept-Encoding`, RFC 9110
/// §12.5.3: by q-value, brotli on a tie; `q=0` refuses; `*` covers the unnamed), else identity.
pub fn negotiate(headers: &HeaderMap) -> Coding {
    let (mut brotli, mut gzip, mut any) = (None, None, None);
    let items =
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for item in items {
        let mut parts = item.split(';').map(str::trim);
        let token = parts.next().unwrap_or("");
        let q = parts
            .find_map(|p| p.split_once('=').filter(|(k, _)| k.trim().eq_ignore_ascii_case("q")).map(|(_, v)| v.trim()))
            .map_or(1.0, |v| v.parse::<f32>().unwrap_or(0.0));
        if token.eq_ignore_ascii_case("br") {
            brotli = Some(q);
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(q);
        } else if token == "*" {
            any = Some(q);
        }
    }
    let (brotli, gzip) = (brotli.or(any).unwrap_or(0.0), gzip.or(any).unwrap_or(0.0));
    match (brotli, gzip) {
        (b, g) if b <= 0.0 && g <= 0.0 => Coding::Identity,
        (b, g) if b >= g => Coding::Brotli,
        _ => Coding::Gzip,
    }
}

/// How hard to compress: once for the life of the binary, or once per version of a text
/// that changes several times a second.
#[derive(Debug, Clone, Copy)]
pub enum Effort {
    Best,
    Quick,
}

/// `data` in `coding` (identity: as it is).
pub fn compress(data: &[u8], coding: Coding, effort: Effort) -> Vec<u8> {
    match coding {
        Coding::Identity => data.to_vec(),
        Coding::Gzip => {
            let level = match effort {
                Effort::Best => flate2::Compression::best(),
                Effort::Quick => flate2::Compression::new(6),
            };
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(data).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        }
        Coding::Brotli => {
            let quality = match effort {
                Effort::Best => 11,
                Effort::Quick => 5,
            };
            // The window need not be larger than the text (a smaller one allocates less).
            let lgwin = (usize::BITS - data.len().max(1 << 10).leading_zeros()).clamp(10, 22) as i32;
            let params = brotli::enc::BrotliEncoderParams { quality, lgwin, ..Default::default() };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("writing to memory");
            out
        }
    }
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
        assert_eq!(negotiate(&accept("gzip;q=1, br;q=0.1")), Coding::Gzip);
        assert_eq!(negotiate(&accept("br;Q=0, gzip;q=0")), Coding::Identity);
        assert_eq!(negotiate(&accept("identity")), Coding::Identity);
        assert_eq!(negotiate(&accept("GZIP")), Coding::Gzip);
        assert_eq!(negotiate(&accept("*")), Coding::Brotli);
        assert_eq!(negotiate(&accept("*;q=0.5, br;q=0")), Coding::Gzip);
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
    }

    #[test]
    fn compressed_text_decodes_to_itself() {
        let text: Vec<u8> =
            (0..20_000u32).flat_map(|i| format!("#EXT-X-PART:DURATION=0.2,URI=\"{i}\"\n").into_bytes()).collect();
        for effort in [Effort::Best, Effort::Quick] {
            for data in [&text[..], b"", b"#EXTM3U\n"] {
                let mut unzipped = Vec::new();
                let zipped = compress(data, Coding::Gzip, effort);
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut unzipped).unwrap();
                assert_eq!(unzipped, data);
                let mut unbrotli = Vec::new();
                brotli::BrotliDecompress(&mut &compress(data, Coding::Brotli, effort)[..], &mut unbrotli).unwrap();
                assert_eq!(unbrotli, data);
            }
        }
        assert!(compress(&text, Coding::Brotli, Effort::Quick).len() < text.len() / 4);
    }
}
