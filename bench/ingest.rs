//! Ingest figures (issue 3), printed, not asserted: wrong-key refusal time (median of 100),
//! server memory with 500 idle connections, and publisher reconnect -> next segment listed.
//!
//! Run: `cargo bench --bench ingest` (builds the release binary and drives it on loopback).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// A connection from a chosen loopback source address, handshaken.
async fn connect_from(source: std::net::IpAddr, addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((source, 0).into()).unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    handshake(stream).await
}

async fn handshake(mut socket: TcpStream) -> TcpStream {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut handshake = Handshake::new(PeerType::Client);
    socket.write_all(&handshake.generate_outbound_p0_and_p1().unwrap()).await.unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0);
        match handshake.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => socket.write_all(&response_bytes).await.unwrap(),
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                socket.write_all(&response_bytes).await.unwrap();
                return socket;
            }
        }
    }
}

async fn write_results(socket: &mut TcpStream, results: Vec<ClientSessionResult>) {
    for result in results {
        if let ClientSessionResult::OutboundResponse(packet) = result {
            socket.write_all(&packet.bytes).await.unwrap();
        }
    }
}

/// Connects from `source`, then times a publish with a wrong key until the server closes.
async fn refusal_time(source: std::net::IpAddr, addr: &str) -> Duration {
    let mut socket = connect_from(source, addr).await;
    let (mut session, results) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    write_results(&mut socket, results).await;
    write_results(&mut socket, vec![session.request_connection("live".into()).unwrap()]).await;
    let mut buf = [0u8; 8192];
    'connected: loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before connect was accepted");
        for result in session.handle_input(&buf[..n]).unwrap() {
            if let ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) = result {
                break 'connected;
            }
        }
    }
    // rml_rtmp's client sends createStream first and publish on its result: keep answering
    // the server until it closes. The time includes that one loopback round trip.
    let wrong = format!("sk_{}", "W".repeat(43));
    let publish = session.request_publishing(wrong, PublishRequestType::Live).unwrap();
    let sent = Instant::now();
    write_results(&mut socket, vec![publish]).await;
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return sent.elapsed(),
            Ok(n) => {
                let results = session.handle_input(&buf[..n]).unwrap_or_default();
                for result in results {
                    if let ClientSessionResult::OutboundResponse(packet) = result {
                        let _ = socket.write_all(&packet.bytes).await;
                    }
                }
            }
        }
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::main]
async fn main() {
    let server = Server::start_with(&[]);
    let addr = server.rtmp_addr();
    let seller = server.user("seller", "seller");

    // 1. Wrong-key refusals: one attempt per source address, so the per-address limiter
    // (5 wrong keys a minute) never answers in the gate's place.
    let mut refusals = Vec::new();
    for i in 0..100u8 {
        let source = std::net::IpAddr::from([127, 0, 1, i + 1]);
        refusals.push(refusal_time(source, &addr).await.as_secs_f64() * 1000.0);
    }

    // 2. Memory with 500 idle (handshaken) connections, 20 per address (the per-address cap).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.pid();
    let before = rss_kb(pid);
    let mut idle = Vec::new();
    for i in 0..500u32 {
        let source = std::net::IpAddr::from([127, 0, 2, (i / 20 + 1) as u8]);
        idle.push(connect_from(source, &addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with_idle = rss_kb(pid);
    drop(idle);

    // 3. Reconnect -> next segment listed: publish, drop, publish again, 5 times.
    let created = server.create_stream(&seller, "Reconnects").await;
    let (pid_str, key) =
        (created["playback_id"].as_str().unwrap().to_owned(), created["stream_key"].as_str().unwrap().to_owned());
    let url = format!("{}/{key}", server.rtmp);
    let listed = |text: Option<String>| {
        text.map_or(0, |t| {
            let p = parse_media(&t);
            p.media_sequence as usize + p.segments.len()
        })
    };
    let mut reconnects = Vec::new();
    let mut publisher = ffmpeg_publish(&url, 600);
    for _ in 0..6 {
        // Run until at least two segments of this publish are listed, then drop it.
        let start = listed(server.media_playlist(&pid_str).await);
        while listed(server.media_playlist(&pid_str).await) < start + 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        publisher.kill().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = listed(server.media_playlist(&pid_str).await);
        let reconnected = Instant::now();
        publisher = ffmpeg_publish(&url, 600);
        while listed(server.media_playlist(&pid_str).await) <= before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reconnects.push(reconnected.elapsed().as_secs_f64());
    }
    let _ = publisher.kill().await;
    reconnects.remove(0); // the first includes the stream's cold start

    println!("hawker ingest figures (release build, loopback, 2 s GOP)");
    println!("{:<58} {:>10}", "figure", "value");
    println!(
        "{:<58} {:>7.2} ms",
        "wrong-key refusal, publish request -> socket closed, median",
        median(refusals.clone())
    );
    println!("{:<58} {:>7.2} ms", "wrong-key refusal, p99 of 100", percentile(refusals, 0.99));
    println!("{:<58} {:>7.1} MB", "server RSS before idle connections", before as f64 / 1024.0);
    println!("{:<58} {:>7.1} MB", "server RSS with 500 idle connections", with_idle as f64 / 1024.0);
    println!("{:<58} {:>7.1} KB", "per idle connection", (with_idle.saturating_sub(before)) as f64 / 500.0);
    println!("{:<58} {:>7.2} s", "publisher reconnect -> next segment listed, median of 5", median(reconnects.clone()));
    println!("{:<58} {:>7.2} s", "  (its max)", reconnects.iter().cloned().fold(0.0, f64::max));
}
