//! Who is asking, as per-client limits see it, and whether a browser request comes from one
//! of our own pages.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::AppState;
use crate::engagement::ClientKey;

/// The client's address: the peer's, or when the peer is a trusted proxy, the nearest address
/// it forwarded that is not itself a trusted proxy (`X-Forwarded-For`, else `Forwarded`).
/// IPv6 clients are grouped by /64.
pub struct Client(pub ClientKey);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        // Without a socket (in-process tests) every request is one client.
        let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(Client(ClientKey::of(client_ip(peer, &parts.headers, &state.trusted_proxies))))
    }
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Each proxy appends the address it got the request from: read from the right, past
    // our own proxies; what a client wrote itself (further left) is never believed.
    let forwarded: Vec<IpAddr> = forwarded_for(headers);
    forwarded.iter().rev().find(|ip| !is_trusted(ip)).copied().unwrap_or(peer)
}

fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let xff: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    if !xff.is_empty() {
        return xff;
    }
    // RFC 7239: `Forwarded: for=192.0.2.1, for="[2001:db8::1]:4711"`.
    headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                if !name.eq_ignore_ascii_case("for") {
                    return None;
                }
                let value = value.trim_matches('"');
                let host = match value.strip_prefix('[') {
                    Some(v6) => v6.split(']').next()?,
                    None => value.split(':').next()?,
                };
                host.parse().ok()
            })
        })
        .collect()
}

/// A write a browser on another site must not be able to make for its visitor: the body is
/// JSON (a cross-site form cannot send that, and the API allows no cross-origin scripts), and
/// an `Origin`, when the browser sends one, is this server's.
pub fn same_site_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(ApiError::UnsupportedMediaType("send Content-Type: application/json (the body may be {})"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
        if origin_host != Some(host) {
            return Err(ApiError::Forbidden("cross-site requests are not accepted here"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let forged = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.9")]);
        // A trusted proxy chain: the nearest untrusted address; what the client wrote is ignored.
        assert_eq!(client_ip(proxy, &forged, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        // Anyone else's header is ignored.
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &forged, &trusted), stranger);
        assert_eq!(client_ip(proxy, &forged, &[]), proxy);
        let rfc = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(client_ip(proxy, &rfc, &trusted), "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let a = ClientKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(ClientKey::of("::ffff:192.0.2.1".parse().unwrap()), ClientKey::of("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn cross_site_writes_are_refused() {
        assert!(same_site_json(&headers(&[("content-type", "application/json"), ("host", "h:8080")])).is_ok());
        let same = [("content-type", "application/json"), ("host", "h:8080"), ("origin", "http://h:8080")];
        assert!(same_site_json(&headers(&same)).is_ok());
        let form = [("content-type", "application/x-www-form-urlencoded"), ("host", "h:8080")];
        assert!(matches!(same_site_json(&headers(&form)), Err(ApiError::UnsupportedMediaType(_))));
        let other = [("content-type", "application/json"), ("host", "h:8080"), ("origin", "https://evil.example")];
        assert!(matches!(same_site_json(&headers(&other)), Err(ApiError::Forbidden(_))));
        assert!(same_site_json(&HeaderMap::new()).is_err());
    }
}
