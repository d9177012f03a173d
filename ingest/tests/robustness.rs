//! Misbehaving clients, written by hand: each must be closed without harm to the server.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use hawker_ingest::{Audio, Limits, Video};
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

fn short_limits() -> Limits {
    Limits {
        handshake_timeout: Duration::from_millis(300),
        read_timeout: Duration::from_millis(300),
        publish_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_closed() {
    let server = TestServer::start(Limits::default()).await;
    let mut socket = TcpStream::connect(server.addr).await.expect("connect");
    socket.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let sent = Instant::now();
    let closed = closed_by_server(&mut socket).await;
    assert!(closed - sent < Duration::from_secs(1), "closed at once, not by a timeout");
    assert!(server.stop().await.is_empty());
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_handshake_timeout() {
    let server = TestServer::start(short_limits()).await;
    let mut socket = TcpStream::connect(server.addr).await.expect("connect");
    let connected = Instant::now();
    let waited = closed_by_server(&mut socket).await - connected;
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(2), "closed after {waited:?}");
    server.stop().await;
}

#[tokio::test]
async fn silence_after_the_handshake_is_closed_after_the_read_timeout() {
    let server = TestServer::start(Limits { publish_timeout: Duration::from_secs(30), ..short_limits() }).await;
    let mut socket = handshaken(server.addr).await;
    let handshaken_at = Instant::now();
    let waited = closed_by_server(&mut socket).await - handshaken_at;
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(2), "closed after {waited:?}");
    server.stop().await;
}

fn command(name: &str, transaction: f64, object: Amf0Value, args: Vec<Amf0Value>, stream: u32) -> MessagePayload {
    RtmpMessage::Amf0Command {
        command_name: name.to_owned(),
        transaction_id: transaction,
        command_object: object,
        additional_arguments: args,
    }
    .into_message_payload(RtmpTimestamp::new(0), stream)
    .expect("payload")
}

fn chunks(serializer: &mut ChunkSerializer, message: &MessagePayload) -> Vec<u8> {
    serializer.serialize(message, false, false).expect("chunks").bytes
}

#[tokio::test]
async fn publish_and_media_before_connect_are_closed_cleanly() {
    let server = TestServer::start(short_limits()).await;
    let mut socket = handshaken(server.addr).await;
    let mut s = ChunkSerializer::new();
    let publish = command(
        "publish",
        5.0,
        Amf0Value::Null,
        vec![Amf0Value::Utf8String(good_key("early")), Amf0Value::Utf8String("live".into())],
        1,
    );
    let video = RtmpMessage::VideoData { data: Bytes::from_static(&[0x17, 0x00, 0, 0, 0]) }
        .into_message_payload(RtmpTimestamp::new(0), 1)
        .expect("payload");
    let mut bytes = chunks(&mut s, &publish);
    bytes.extend(chunks(&mut s, &video));
    socket.write_all(&bytes).await.expect("write");
    // Pings keep it alive past the read timeout; the publish deadline still closes it.
    let ping = RtmpMessage::UserControl {
        event_type: rml_rtmp::messages::UserControlEventType::PingRequest,
        stream_id: None,
        buffer_length: None,
        timestamp: Some(RtmpTimestamp::new(1)),
    }
    .into_message_payload(RtmpTimestamp::new(0), 0)
    .expect("payload");
    let start = Instant::now();
    while socket.write_all(&chunks(&mut s, &ping)).await.is_ok() && start.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start.elapsed() < Duration::from_secs(3), "closed by the publish deadline");
    assert!(server.stop().await.is_empty(), "the gate was never asked, no sink was made");
}

#[tokio::test]
async fn an_absurd_chunk_size_is_refused() {
    let server = TestServer::start(Limits::default()).await;
    let mut socket = handshaken(server.addr).await;
    let mut s = ChunkSerializer::new();
    let packet = s.set_max_chunk_size(0x7FFF_FFFF, RtmpTimestamp::new(0)).expect("packet");
    socket.write_all(&packet.bytes).await.expect("write");
    let sent = Instant::now();
    assert!(closed_by_server(&mut socket).await - sent < Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test]
async fn an_absurd_message_length_is_refused_from_its_header() {
    let server = TestServer::start(Limits::default()).await;
    let mut socket = handshaken(server.addr).await;
    // A type 0 chunk header announcing a 16 MiB - 1 video message, and no payload.
    socket.write_all(&[0x04, 0, 0, 0, 0xFF, 0xFF, 0xFE, 9, 1, 0, 0, 0]).await.expect("write");
    let sent = Instant::now();
    assert!(closed_by_server(&mut socket).await - sent < Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let server = TestServer::start(Limits { max_connections: 1, ..Limits::default() }).await;
    let _first = handshaken(server.addr).await;
    let mut second = TcpStream::connect(server.addr).await.expect("connect");
    let connected = Instant::now();
    assert!(closed_by_server(&mut second).await - connected < Duration::from_secs(1));
    server.stop().await;
}

#[tokio::test]
async fn commands_sent_in_one_write_are_answered_in_order() {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let server = TestServer::start(Limits::default()).await;
    // The handshake's last part (C2) and every command go out in one write: rml_rtmp must
    // answer them in order (connect accepted before createStream and publish).
    let mut socket = TcpStream::connect(server.addr).await.expect("connect");
    let mut handshake = Handshake::new(PeerType::Client);
    socket.write_all(&handshake.generate_outbound_p0_and_p1().expect("c0c1")).await.expect("write");
    let mut buf = [0u8; 4096];
    let mut bytes = loop {
        let n = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await.expect("read");
        assert!(n > 0, "closed during the handshake");
        match handshake.process_bytes(&buf[..n]).expect("handshake") {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.expect("write")
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => break response_bytes,
        }
    };
    let mut s = ChunkSerializer::new();
    let app = Amf0Value::Object([("app".to_owned(), Amf0Value::Utf8String("live".into()))].into());
    bytes.extend(chunks(&mut s, &command("connect", 1.0, app, vec![], 0)));
    bytes.extend(chunks(&mut s, &command("createStream", 2.0, Amf0Value::Null, vec![], 0)));
    let key = Amf0Value::Utf8String(good_key("pipelined"));
    let publish = command("publish", 3.0, Amf0Value::Null, vec![key, Amf0Value::Utf8String("live".into())], 1);
    bytes.extend(chunks(&mut s, &publish));
    socket.write_all(&bytes).await.expect("write");

    // The replies are raw RTMP; the publish status is plain text inside them.
    let mut replies = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while !replies.windows(23).any(|w| w == b"NetStream.Publish.Start") {
            let n = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await.expect("read");
            assert!(n > 0, "closed before the publish was accepted");
            replies.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(found.is_ok(), "a pipelined publish was not accepted");
    drop(socket);
    server.stop().await;
}

/// One chunk with a type 0 header (chunk stream ids 2..=63), carrying `payload` whole or its
/// first `chunk_size` bytes.
fn type0_chunk(csid: u8, timestamp: u32, length: usize, type_id: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![csid];
    bytes.extend_from_slice(&timestamp.to_be_bytes()[1..]);
    bytes.extend_from_slice(&u32::try_from(length).unwrap().to_be_bytes()[1..]);
    bytes.push(type_id);
    bytes.extend_from_slice(&stream.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

#[tokio::test]
async fn a_deeply_nested_command_closes_only_its_connection() {
    // A `connect` of 60 KiB, under the AMF message cap: its command object nests objects 15,000
    // levels deep. rml_amf0 0.3 recursed once per level and overflowed the stack (an abort of
    // the whole server, before any key was checked); the core now refuses past 32 levels.
    let server = TestServer::start(Limits::default()).await;
    let mut socket = handshaken(server.addr).await;
    let mut payload = vec![2, 0, 7];
    payload.extend_from_slice(b"connect");
    payload.extend_from_slice(&[0, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]); // transaction 1.0
    for _ in 0..15_000 {
        payload.extend_from_slice(&[3, 0, 1, b'a']);
    }
    let mut bytes = Vec::new();
    for (i, piece) in payload.chunks(128).enumerate() {
        if i == 0 {
            bytes.extend(type0_chunk(3, 0, payload.len(), 20, 0, piece));
        } else {
            bytes.push(0xC3); // type 3 on chunk stream 3
            bytes.extend_from_slice(piece);
        }
    }
    socket.write_all(&bytes).await.expect("write");
    let sent = Instant::now();
    assert!(closed_by_server(&mut socket).await - sent < Duration::from_secs(1));

    let publisher = RawPublisher::publish(handshaken(server.addr).await, &good_key("after-nesting")).await;
    assert!(publisher.is_ok(), "the server still accepts publishes: {:?}", publisher.err());
    drop(publisher);
    server.stop().await;
}

#[tokio::test]
async fn chunks_of_audio_interleaved_with_a_video_frame_arrive_whole() {
    // RTMP lets chunk streams interleave (RTMP 1.0, 5.3.1): an audio message sent between the
    // chunks of a large video frame. Both reach the sink whole and in order of completion.
    let mut server = TestServer::start(Limits::default()).await;
    let mut publisher =
        RawPublisher::publish(handshaken(server.addr).await, &good_key("interleaved")).await.expect("publish");
    publisher.video(0, AVC_HEADER).await.expect("video");
    publisher.audio(0, AAC_HEADER).await.expect("audio");
    // A 10,000-byte keyframe (one NAL unit) on chunk stream 20, chunk size 4096 (rml_rtmp's
    // client sets it), with an AAC frame on chunk stream 21 between its first and second chunks.
    let mut frame = vec![0x17, 0x01, 0, 0, 0];
    frame.extend_from_slice(&(10_000u32 - 9).to_be_bytes());
    frame.push(0x65);
    frame.resize(10_000, 0xAB);
    let mut bytes = type0_chunk(20, 40, frame.len(), 9, 1, &frame[..4096]);
    bytes.extend(type0_chunk(21, 42, AAC_FRAME.len(), 8, 1, AAC_FRAME));
    for piece in frame[4096..].chunks(4096) {
        bytes.push(0xC0 | 20);
        bytes.extend_from_slice(piece);
    }
    publisher.socket.write_all(&bytes).await.expect("write");
    let recs = server
        .wait_until("interleaved", |recs| recs.iter().filter(|r| matches!(r, Rec::Video(Video::Frame(_)))).count() == 1)
        .await;
    let frames: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            Rec::Video(Video::Frame(f)) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(frames[0].nalus.len(), 10_000 - 5, "the keyframe arrived whole");
    assert!(frames[0].nalus[5..].iter().all(|&b| b == 0xAB));
    assert!(recs.iter().any(|r| matches!(r, Rec::Audio(Audio::Frame(_)))), "the interleaved audio arrived");
    drop(publisher);
    server.stop().await;
}
