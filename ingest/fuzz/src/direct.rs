//! Harnesses that fuzz the RTMP core (`rml_rtmp`, `rml_amf0`: the workspace's forks) directly,
//! without the connection around it: many more executions per second, and properties checked
//! beyond "no panic". One function per cargo-fuzz target (`fuzz_targets/*.rs`); the regression
//! test (`ingest/tests/fuzz_regressions.rs`) replays crash inputs through the same functions.
//!
//! The chunk-stream targets share the connection target's input layout (a flags byte, then the
//! client's bytes after the handshake), so its seeds are theirs too.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;

use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkLimits, ChunkSerializer};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};
use rml_rtmp::time::RtmpTimestamp;

use super::{REFUSE, WRITE_SIZES};

/// The ingest's default limits, so the targets explore what a connection can reach, with the
/// memory bound checked against them.
fn limits() -> ChunkLimits {
    hawker_ingest::Limits::default().chunk_limits()
}

fn write_size(flags: u8) -> usize {
    WRITE_SIZES[usize::from(flags >> 2) & 7]
}

/// What a chunk stream decoded to: its messages, and whether it ended in an error.
type Decoded = (Vec<MessagePayload>, bool);

/// Decodes `input` given in pieces of `piece` bytes, applying `SetChunkSize` and `Abort` as a
/// session does. After every call, the memory held for partial messages (their buffers'
/// capacities) must be within the limit.
fn decode(input: &[u8], piece: usize) -> Decoded {
    let limits = limits();
    let mut deserializer = ChunkDeserializer::with_limits(limits);
    let mut messages = Vec::new();
    for bytes in input.chunks(piece) {
        let mut next = bytes;
        loop {
            let result = deserializer.get_next_message(next);
            next = &[];
            assert!(
                deserializer.partial_capacity() <= limits.max_message_bytes,
                "partial messages hold {} bytes, over the limit",
                deserializer.partial_capacity()
            );
            let message = match result {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => return (messages, true),
            };
            assert!(message.data.len() <= limits.max_message_bytes, "a message over the limit");
            if message.type_id == 2
                && let Ok(RtmpMessage::Abort { stream_id }) = message.to_rtmp_message()
            {
                deserializer.abort(stream_id);
            }
            if message.type_id == 1
                && let Ok(RtmpMessage::SetChunkSize { size }) = message.to_rtmp_message()
                && deserializer.set_max_chunk_size(size as usize).is_err()
            {
                messages.push(message);
                return (messages, true);
            }
            messages.push(message);
        }
    }
    (messages, false)
}

/// The chunk decoder: the same bytes give the same messages (and the same error) however they
/// are split across reads; the partial messages held never exceed the limit; and the messages
/// decoded, chunked again by the serializer, decode to themselves.
pub fn chunk_decoder(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let split = decode(input, write_size(flags).min(input.len().max(1)));
    assert_eq!(whole, split, "the split into reads changed what was decoded");
    round_trip(&whole.0);
}

/// Serializes `messages` (SetChunkSize and Abort left out: they change the framing) and decodes
/// the result: the same messages come back.
fn round_trip(messages: &[MessagePayload]) {
    let messages: Vec<&MessagePayload> = messages.iter().filter(|m| m.type_id != 1 && m.type_id != 2).collect();
    let mut serializer = ChunkSerializer::new();
    let mut bytes = Vec::new();
    for message in &messages {
        match serializer.serialize(message, false, false) {
            Ok(packet) => bytes.extend_from_slice(&packet.bytes),
            Err(_) => return, // a message the encoder refuses is not a decoder property
        }
    }
    let (again, failed) = decode(&bytes, bytes.len().max(1));
    assert!(!failed, "the serializer's chunks did not decode");
    let again: Vec<&MessagePayload> = again.iter().collect();
    assert_eq!(messages, again, "serialize then decode changed the messages");
}

/// AMF0: whatever decodes re-encodes, and decodes again to the same values.
pub fn amf0(data: &[u8]) {
    let Ok(values) = rml_amf0::deserialize(&mut Cursor::new(data)) else {
        return;
    };
    let encoded = rml_amf0::serialize(&values).expect("decoded values encode");
    let again = rml_amf0::deserialize(&mut Cursor::new(&encoded)).expect("encoded values decode");
    assert!(same_values(&values, &again), "round trip changed {values:?} into {again:?}");
}

/// Equality with numbers compared bit for bit (NaN included): what the encoder writes.
fn same_values(a: &[Amf0Value], b: &[Amf0Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

fn same(a: &Amf0Value, b: &Amf0Value) -> bool {
    match (a, b) {
        (Amf0Value::Number(a), Amf0Value::Number(b)) => a.to_bits() == b.to_bits(),
        (Amf0Value::Object(a), Amf0Value::Object(b)) => same_properties(a, b),
        (Amf0Value::StrictArray(a), Amf0Value::StrictArray(b)) => same_values(a, b),
        (a, b) => a == b,
    }
}

fn same_properties(a: &HashMap<String, Amf0Value>, b: &HashMap<String, Amf0Value>) -> bool {
    a.len() == b.len() && a.iter().all(|(key, value)| b.get(key).is_some_and(|other| same(value, other)))
}

/// RTMP messages: a message type byte, then its payload. Parsing and encoding what parsed must
/// not panic (an error is an answer).
pub fn message(data: &[u8]) {
    let Some((&type_id, payload)) = data.split_first() else {
        return;
    };
    let payload = MessagePayload {
        timestamp: RtmpTimestamp::new(0),
        type_id,
        message_stream_id: 1,
        data: bytes::Bytes::copy_from_slice(payload),
    };
    if let Ok(message) = payload.to_rtmp_message() {
        // An encoding error is an answer; only a panic is a failure.
        let _ = message.into_message_payload(RtmpTimestamp::new(0), 1);
    }
}

/// The server session's state machine: the client's bytes after the handshake, in pieces; every
/// request (connect, releaseStream, publish, play) accepted, or refused with [`REFUSE`], and the
/// answers handled as a server handles them.
pub fn session(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let config = ServerSessionConfig { peer_limits: limits(), ..ServerSessionConfig::new() };
    let Ok((mut session, _)) = ServerSession::new(config) else {
        return;
    };
    for bytes in input.chunks(write_size(flags)) {
        let Ok(results) = session.handle_input(bytes) else {
            return; // A protocol error closes the connection.
        };
        let mut pending = VecDeque::from(results);
        while let Some(result) = pending.pop_front() {
            let ServerSessionResult::RaisedEvent(event) = result else {
                continue;
            };
            let request_id = match event {
                ServerSessionEvent::ConnectionRequested { request_id, .. }
                | ServerSessionEvent::ReleaseStreamRequested { request_id, .. }
                | ServerSessionEvent::PublishStreamRequested { request_id, .. }
                | ServerSessionEvent::PlayStreamRequested { request_id, .. } => request_id,
                _ => continue,
            };
            let answer = if flags & REFUSE != 0 {
                session.reject_request(request_id, "NetConnection.Connect.Rejected", "refused")
            } else {
                session.accept_request(request_id)
            };
            if let Ok(more) = answer {
                pending.extend(more);
            }
        }
    }
}

/// The server's side of the handshake: the client's bytes in pieces of the flags' write size.
pub fn handshake(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut handshake = Handshake::new(PeerType::Server);
    for bytes in input.chunks(write_size(flags)) {
        match handshake.process_bytes(bytes) {
            Ok(HandshakeProcessResult::InProgress { .. }) => {}
            Ok(HandshakeProcessResult::Completed { .. }) | Err(_) => return,
        }
    }
}
