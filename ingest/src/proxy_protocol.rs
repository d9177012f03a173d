//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on the RTMP and RTMPS listeners: a
//! trusted load balancer (`Limits::trusted_proxies`) may open its connection with a header
//! naming the client it carries, so that per-address limits, the wrong-key limiter and the
//! logs see the seller, not the balancer. The header comes before anything else (before TLS
//! on RTMPS). RTMP's first byte is 3 and TLS's 0x16, so a header is told apart by its first
//! bytes; a peer that is not trusted and sends one is refused.
//!
//! Parsing is the `ppp` crate's; this module only bounds what is read, and when.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// v2's 12-byte signature; v1 starts with `PROXY `.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header is at most 107 bytes (CRLF included).
const V1_MAX: usize = 107;
/// v2: 16 bytes, then addresses and TLVs. Addresses take at most 216 bytes (UNIX); load
/// balancers' TLVs (AWS, Azure, GCP) add a few hundred: more is refused.
const V2_MAX_BODY: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProxyError {
    #[error("a PROXY protocol header from {0}, which is not a trusted proxy")]
    Untrusted(IpAddr),
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("PROXY protocol header over {0} bytes")]
    TooLong(usize),
    #[error("connection closed or timed out in the PROXY protocol header")]
    Incomplete,
}

/// What the first bytes announce.
#[derive(Debug, PartialEq)]
enum Start {
    V1,
    V2,
    /// Not a PROXY header (RTMP, TLS, anything else).
    Other,
    /// Not enough bytes yet to tell.
    Undecided,
}

fn start_of(bytes: &[u8]) -> Start {
    let matches = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    match bytes.first() {
        None => Start::Undecided,
        Some(b'P') if matches(V1_PREFIX) => {
            if bytes.len() >= V1_PREFIX.len() {
                Start::V1
            } else {
                Start::Undecided
            }
        }
        Some(b'\r') if matches(V2_SIGNATURE) => {
            if bytes.len() >= V2_SIGNATURE.len() {
                Start::V2
            } else {
                Start::Undecided
            }
        }
        Some(_) => Start::Other,
    }
}

/// The client's address: from a PROXY header if the connection starts with one (only a
/// trusted peer may send it), else the peer's own. Reads nothing that is not the header, by
/// `deadline`.
pub async fn client_address(
    socket: &mut TcpStream,
    peer: SocketAddr,
    trusted: bool,
    deadline: Instant,
) -> Result<SocketAddr, ProxyError> {
    let mut probe = [0u8; V2_SIGNATURE.len()];
    let start = loop {
        let seen = match timeout_at(deadline, socket.peek(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Err(ProxyError::Incomplete),
            Ok(Ok(n)) => n,
        };
        match start_of(&probe[..seen]) {
            Start::Undecided => {
                // Part of a signature so far: wait a little for the rest.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                if Instant::now() >= deadline {
                    return Err(ProxyError::Incomplete);
                }
            }
            start => break start,
        }
    };
    if start == Start::Other {
        return Ok(peer);
    }
    if !trusted {
        return Err(ProxyError::Untrusted(peer.ip()));
    }
    let header = match timeout_at(deadline, read_header(socket, start)).await {
        Ok(result) => result?,
        Err(_) => return Err(ProxyError::Incomplete),
    };
    Ok(parse(&header)?.unwrap_or(peer))
}

/// The whole header's bytes, and not one byte more.
async fn read_header(socket: &mut TcpStream, start: Start) -> Result<Vec<u8>, ProxyError> {
    let incomplete = |_| ProxyError::Incomplete;
    if start == Start::V2 {
        let mut header = vec![0u8; 16];
        socket.read_exact(&mut header).await.map_err(incomplete)?;
        let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
        if length > V2_MAX_BODY {
            return Err(ProxyError::TooLong(16 + V2_MAX_BODY));
        }
        header.resize(16 + length, 0);
        socket.read_exact(&mut header[16..]).await.map_err(incomplete)?;
        return Ok(header);
    }
    // v1: up to CRLF, a byte at a time (at most 107; it is read once per connection).
    let mut header = Vec::with_capacity(V1_MAX);
    while !header.ends_with(b"\r\n") {
        if header.len() == V1_MAX {
            return Err(ProxyError::TooLong(V1_MAX));
        }
        header.push(socket.read_u8().await.map_err(incomplete)?);
    }
    Ok(header)
}

/// The source address a complete header names; `None` for a header that names none (v1
/// `UNKNOWN`, v2 `LOCAL`: a balancer's own health check), where the peer's stands.
fn parse(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    use ppp::{HeaderResult, v1, v2};
    let malformed = |e: &dyn std::fmt::Display| ProxyError::Malformed(e.to_string());
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (v2::Command::Local, _) => None,
            (_, v2::Addresses::IPv4(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            (_, v2::Addresses::IPv6(a)) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            (_, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
        }),
        HeaderResult::V1(Err(e)) => Err(malformed(&e)),
        HeaderResult::V2(Err(e)) => Err(malformed(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_header_from_rtmp_and_tls() {
        assert_eq!(start_of(b"PROXY TCP4"), Start::V1);
        assert_eq!(start_of(b"PRO"), Start::Undecided);
        assert_eq!(start_of(b"\r\n\r\n\0\r\nQUIT\n"), Start::V2);
        assert_eq!(start_of(b"\r\n\r"), Start::Undecided);
        assert_eq!(start_of(&[3, 0, 0, 0]), Start::Other, "RTMP's C0");
        assert_eq!(start_of(&[0x16, 3, 1]), Start::Other, "a TLS ClientHello");
        assert_eq!(start_of(b"PUT /"), Start::Other);
        assert_eq!(start_of(b""), Start::Undecided);
    }

    #[test]
    fn parses_v1_and_v2() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 1935\r\n";
        assert_eq!(parse(v1).unwrap(), Some("203.0.113.7:51234".parse().unwrap()));
        let v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 1935\r\n";
        assert_eq!(parse(v1).unwrap(), Some("[2001:db8::7]:51234".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap(), None);
        assert!(parse(b"PROXY TCP4 300.0.0.1 10.0.0.1 1 2\r\n").is_err());
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend([0x21, 0x11, 0, 12, 203, 0, 113, 7, 10, 0, 0, 1, 0xC8, 0x22, 0x07, 0x8F]);
        assert_eq!(parse(&v2).unwrap(), Some("203.0.113.7:51234".parse().unwrap()));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap(), None, "a balancer's own health check");
    }
}
