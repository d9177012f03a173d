//! Follows RTMP chunk framing (RTMP 1.0 spec, section 5.3) alongside rml_rtmp, keeping no payloads.
//!
//! rml_rtmp accepts message lengths up to 2^24 and chunk sizes up to 2^31, and reserves memory for
//! a whole message from its first chunk header. It also keeps one partial message for all chunk
//! streams, so interleaved chunk streams corrupt it (and can panic it: rust-media-libs PR #50).
//! Every byte passes through this guard first; what it refuses closes the connection before
//! rml_rtmp sees it. The framing rules mirror rml_rtmp's deserializer so the two stay in step.
//!
//! It also refuses two inputs that panic rml_rtmp 0.8 (found by fuzzing, `ingest/fuzz`):
//! - an AMF0 command (type 20, or 17) of fewer than three AMF0 values: its deserializer takes
//!   `drain(..3)` of them;
//! - a compressed header (format 1 to 3) starting a message with an extended timestamp below
//!   0xFFFFFF: its deserializer subtracts 0xFFFFFF from it (an overflow panic in debug builds).

use std::collections::HashMap;
use std::io::Cursor;

const INITIAL_CHUNK_SIZE: u32 = 128;
/// A 3-byte timestamp field with this value means a 4-byte extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
const SET_CHUNK_SIZE: u8 = 1;
const AMF3_COMMAND: u8 = 17;
const AMF0_COMMAND: u8 = 20;
/// Largest command message accepted. Commands are a few hundred bytes; the guard keeps them whole
/// to check them, so they get a cap of their own, far below the media message cap.
const MAX_COMMAND: u32 = 64 * 1024;
/// Longest chunk header: 3-byte basic header, 11-byte message header, 4-byte extended timestamp.
const MAX_HEADER: usize = 18;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {length} bytes exceeds the {max}-byte limit")]
    MessageTooLarge { length: u32, max: u32 },
    #[error("chunk size {size} is outside 1..={max}")]
    BadChunkSize { size: u32, max: u32 },
    #[error("chunk on stream {csid} refers to a header it never received")]
    NoPreviousHeader { csid: u32 },
    #[error("chunk on stream {csid} interleaved with an unfinished message (unsupported)")]
    Interleaved { csid: u32 },
    #[error("new message header on chunk stream {csid} before its message ended")]
    HeaderMidMessage { csid: u32 },
    #[error("command message of {length} bytes exceeds the {max}-byte limit")]
    CommandTooLarge { length: u32, max: u32 },
    #[error("command message with fewer than three AMF0 values")]
    ShortCommand,
    #[error("compressed header on chunk stream {csid} with an extended timestamp below 0xFFFFFF")]
    SmallExtendedTimestamp { csid: u32 },
}

/// What the last header on a chunk stream said; later compressed headers inherit it.
#[derive(Debug, Clone, Copy, Default)]
struct StreamHeader {
    length: u32,
    type_id: u8,
    extended_timestamp: bool,
}

/// One parsed chunk header.
struct Header {
    csid: u32,
    format: u8,
    /// Message length and type id, present in format 0 and 1 headers only.
    announced: Option<(u32, u8)>,
    extended_timestamp: bool,
    /// The 4-byte extended timestamp field, if present.
    extended: Option<u32>,
}

/// The message whose chunks are being received.
#[derive(Debug, Clone, Copy)]
struct Message {
    csid: u32,
    type_id: u8,
    /// Payload bytes not yet covered by a chunk header.
    unannounced: u32,
}

enum Stage {
    Header,
    Payload { left: u32 },
}

pub struct ChunkGuard {
    max_message: u32,
    max_chunk: u32,
    chunk_size: u32,
    streams: HashMap<u32, StreamHeader>,
    stage: Stage,
    header: [u8; MAX_HEADER],
    header_len: usize,
    message: Option<Message>,
    /// The payload of a SetChunkSize message being received (it is 4 bytes long).
    control: [u8; 4],
    control_len: usize,
    /// The payload of a command message being received, checked once it is whole.
    command: Vec<u8>,
}

impl ChunkGuard {
    pub fn new(max_message_bytes: usize, max_chunk_size: u32) -> Self {
        Self {
            max_message: u32::try_from(max_message_bytes).unwrap_or(u32::MAX),
            max_chunk: max_chunk_size,
            chunk_size: INITIAL_CHUNK_SIZE,
            streams: HashMap::new(),
            stage: Stage::Header,
            header: [0; MAX_HEADER],
            header_len: 0,
            message: None,
            control: [0; 4],
            control_len: 0,
            command: Vec::new(),
        }
    }

    /// Follows `bytes`, the next bytes of the connection after the handshake.
    pub fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), ChunkError> {
        while !bytes.is_empty() {
            bytes = match self.stage {
                Stage::Header => self.read_header(bytes)?,
                Stage::Payload { left } => self.read_payload(bytes, left)?,
            };
        }
        Ok(())
    }

    fn read_header<'a>(&mut self, mut bytes: &'a [u8]) -> Result<&'a [u8], ChunkError> {
        // A header is at most 18 bytes: taking it byte by byte is cheap and keeps parsing simple.
        while let Some((&byte, rest)) = bytes.split_first() {
            bytes = rest;
            self.header[self.header_len] = byte;
            self.header_len += 1;
            if let Some(header) = self.parse_header()? {
                self.header_len = 0;
                self.start_chunk(header)?;
                break;
            }
        }
        Ok(bytes)
    }

    /// The header collected so far, or `None` if more bytes are needed.
    fn parse_header(&self) -> Result<Option<Header>, ChunkError> {
        let h = &self.header[..self.header_len];
        let format = h[0] >> 6;
        let (csid, basic_len) = match h[0] & 0x3F {
            0 if h.len() >= 2 => (u32::from(h[1]) + 64, 2),
            1 if h.len() >= 3 => (u32::from(h[2]) * 256 + u32::from(h[1]) + 64, 3),
            0 | 1 => return Ok(None),
            id => (u32::from(id), 1),
        };
        let message_len = [11, 7, 3, 0][usize::from(format)];
        let Some(fields) = h.get(basic_len..basic_len + message_len) else {
            return Ok(None);
        };
        let extended_timestamp = match fields.get(..3) {
            Some(timestamp) => u24(timestamp) >= EXTENDED_TIMESTAMP,
            // Format 3 repeats the stream's previous header, extended timestamp included.
            None => self.previous(csid)?.extended_timestamp,
        };
        let total = basic_len + message_len + if extended_timestamp { 4 } else { 0 };
        if h.len() < total {
            return Ok(None);
        }
        let announced = fields.get(3..7).map(|f| (u24(&f[..3]), f[3]));
        let extended = extended_timestamp.then(|| {
            let f = &h[total - 4..total];
            u32::from_be_bytes([f[0], f[1], f[2], f[3]])
        });
        Ok(Some(Header { csid, format, announced, extended_timestamp, extended }))
    }

    fn previous(&self, csid: u32) -> Result<StreamHeader, ChunkError> {
        self.streams.get(&csid).copied().ok_or(ChunkError::NoPreviousHeader { csid })
    }

    fn start_chunk(&mut self, header: Header) -> Result<(), ChunkError> {
        let csid = header.csid;
        let continuing = match self.message {
            Some(message) if message.csid != csid => return Err(ChunkError::Interleaved { csid }),
            Some(_) if header.format != 3 => return Err(ChunkError::HeaderMidMessage { csid }),
            Some(_) => true,
            None => false,
        };
        // rml_rtmp computes `extended - 0xFFFFFF` for the first chunk of a message under a
        // compressed header. Senders use the extended field only for values of 0xFFFFFF and up.
        if !continuing && header.format != 0 && header.extended.is_some_and(|t| t < EXTENDED_TIMESTAMP) {
            return Err(ChunkError::SmallExtendedTimestamp { csid });
        }
        // Compressed headers inherit from the stream's last header; rml_rtmp requires one for all
        // of them, format 1 included.
        let base = match header.format {
            0 => StreamHeader::default(),
            _ => self.previous(csid)?,
        };
        let (length, type_id) = header.announced.unwrap_or((base.length, base.type_id));
        let stream = StreamHeader { length, type_id, extended_timestamp: header.extended_timestamp };
        self.streams.insert(csid, stream);
        if !continuing {
            self.start_message(csid, stream)?;
        }
        self.announce_chunk()
    }

    fn start_message(&mut self, csid: u32, stream: StreamHeader) -> Result<(), ChunkError> {
        if stream.length > self.max_message {
            return Err(ChunkError::MessageTooLarge { length: stream.length, max: self.max_message });
        }
        if is_command(stream.type_id) && stream.length > MAX_COMMAND {
            return Err(ChunkError::CommandTooLarge { length: stream.length, max: MAX_COMMAND });
        }
        self.message = Some(Message { csid, type_id: stream.type_id, unannounced: stream.length });
        self.control_len = 0;
        self.command.clear();
        Ok(())
    }

    /// Moves to the payload of the chunk whose header was just read.
    fn announce_chunk(&mut self) -> Result<(), ChunkError> {
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        let len = message.unannounced.min(self.chunk_size);
        message.unannounced -= len;
        self.stage = Stage::Payload { left: len };
        if len == 0 {
            self.end_chunk()?;
        }
        Ok(())
    }

    fn read_payload<'a>(&mut self, bytes: &'a [u8], left: u32) -> Result<&'a [u8], ChunkError> {
        let take = bytes.len().min(left as usize);
        let (payload, rest) = bytes.split_at(take);
        self.collect(payload);
        // `take` is at most `left`, a u32.
        let left = left - take as u32;
        self.stage = Stage::Payload { left };
        if left == 0 {
            self.end_chunk()?;
        }
        Ok(rest)
    }

    fn collect(&mut self, payload: &[u8]) {
        match self.message.map(|m| m.type_id) {
            Some(SET_CHUNK_SIZE) => {
                let n = payload.len().min(self.control.len() - self.control_len);
                self.control[self.control_len..self.control_len + n].copy_from_slice(&payload[..n]);
                self.control_len += n;
            }
            Some(type_id) if is_command(type_id) => self.command.extend_from_slice(payload),
            _ => {}
        }
    }

    fn end_chunk(&mut self) -> Result<(), ChunkError> {
        self.stage = Stage::Header;
        match self.message {
            Some(message) if message.unannounced == 0 => {
                self.message = None;
                if message.type_id == SET_CHUNK_SIZE && self.control_len == self.control.len() {
                    self.set_chunk_size(u32::from_be_bytes(self.control))?;
                }
                if is_command(message.type_id) {
                    check_command(message.type_id, &self.command)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > self.max_chunk {
            return Err(ChunkError::BadChunkSize { size, max: self.max_chunk });
        }
        self.chunk_size = size;
        Ok(())
    }
}

fn is_command(type_id: u8) -> bool {
    type_id == AMF0_COMMAND || type_id == AMF3_COMMAND
}

/// Refuses a command that rml_rtmp would panic on. Like rml_rtmp, reads an AMF3 command (type 17)
/// as AMF0 after one leading zero byte.
fn check_command(type_id: u8, payload: &[u8]) -> Result<(), ChunkError> {
    let amf0 = match payload {
        [0, rest @ ..] if type_id == AMF3_COMMAND => rest,
        _ => payload,
    };
    match rml_rtmp::rml_amf0::deserialize(&mut Cursor::new(amf0)) {
        Ok(values) if values.len() < 3 => Err(ChunkError::ShortCommand),
        // An undecodable command is rml_rtmp's error to report; it does not panic on it.
        _ => Ok(()),
    }
}

fn u24(bytes: &[u8]) -> u32 {
    bytes.iter().take(3).fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    const MAX_MESSAGE: usize = 64 * 1024;
    const MAX_CHUNK: u32 = 4096;

    fn payload(type_id: u8, len: usize, timestamp: u32) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(timestamp),
            message_stream_id: 1,
            type_id,
            data: Bytes::from(vec![0xAB; len]),
        }
    }

    fn serialize(serializer: &mut ChunkSerializer, message: &MessagePayload) -> Vec<u8> {
        serializer.serialize(message, false, false).expect("serializable").bytes
    }

    /// A realistic stream: small commands, a chunk size change, big and small media messages,
    /// an extended timestamp (which repeats on type 3 chunks) and a zero-length message.
    fn valid_stream() -> Vec<u8> {
        let mut s = ChunkSerializer::new();
        let mut bytes = serialize(&mut s, &payload(20, 300, 0));
        bytes.extend(s.set_max_chunk_size(4096, RtmpTimestamp::new(0)).expect("packet").bytes);
        for (i, len) in [10_000, 37, 4096, 4097, 0, 60_000].into_iter().enumerate() {
            bytes.extend(serialize(&mut s, &payload(9, len, 40 * i as u32)));
        }
        bytes.extend(serialize(&mut s, &payload(8, 9000, 0x0100_0000)));
        bytes.extend(serialize(&mut s, &payload(8, 9000, 0x0100_0010)));
        bytes
    }

    fn guard() -> ChunkGuard {
        ChunkGuard::new(MAX_MESSAGE, MAX_CHUNK)
    }

    #[test]
    fn follows_a_valid_stream_in_any_split() {
        let bytes = valid_stream();
        for split in [1, 2, 7, 128, 1000, bytes.len()] {
            let mut g = guard();
            for piece in bytes.chunks(split) {
                assert_eq!(g.inspect(piece), Ok(()), "split {split}");
            }
            assert!(matches!(g.stage, Stage::Header), "split {split}: ends between chunks");
            assert!(g.message.is_none());
            assert_eq!(g.chunk_size, 4096);
        }
    }

    #[test]
    fn refuses_a_message_over_the_limit_from_its_header() {
        let mut s = ChunkSerializer::new();
        let bytes = serialize(&mut s, &payload(9, MAX_MESSAGE + 1, 0));
        // The first header alone is enough: nothing of the payload needs to arrive.
        assert_eq!(
            guard().inspect(&bytes[..12]),
            Err(ChunkError::MessageTooLarge { length: MAX_MESSAGE as u32 + 1, max: MAX_MESSAGE as u32 })
        );
    }

    #[test]
    fn refuses_chunk_sizes_over_the_cap_and_zero() {
        for size in [MAX_CHUNK + 1, 0x7FFF_FFFF] {
            let mut s = ChunkSerializer::new();
            let bytes = s.set_max_chunk_size(size, RtmpTimestamp::new(0)).expect("packet").bytes;
            assert_eq!(guard().inspect(&bytes), Err(ChunkError::BadChunkSize { size, max: MAX_CHUNK }));
        }
        // Serializers refuse to write a zero chunk size, so spell it out: csid 2, type 1, length 4.
        let zero = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(guard().inspect(&zero), Err(ChunkError::BadChunkSize { size: 0, max: MAX_CHUNK }));
    }

    #[test]
    fn refuses_compressed_headers_on_unknown_streams() {
        for first in [0x43, 0x83, 0xC3] {
            assert_eq!(guard().inspect(&[first, 0, 0, 0, 0, 0, 0, 0]), Err(ChunkError::NoPreviousHeader { csid: 3 }));
        }
    }

    #[test]
    fn refuses_interleaved_chunk_streams() {
        let mut s = ChunkSerializer::new();
        let mut bytes = serialize(&mut s, &payload(9, 300, 0));
        // Keep the first chunk of the 300-byte message (12-byte header + 128 bytes), then start
        // a message on another chunk stream (the video went on csid 4): csid 5, type 0 header.
        bytes.truncate(12 + 128);
        bytes.extend([0x05, 0, 0, 0, 0, 0, 10, 8, 1, 0, 0, 0]);
        let csid = 5;
        assert_eq!(guard().inspect(&bytes), Err(ChunkError::Interleaved { csid }));
    }

    /// A command message on csid 3, message stream 0, in one chunk.
    fn command_message(type_id: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut bytes = vec![0x03, 0, 0, 0];
        bytes.extend(&len.to_be_bytes()[1..]);
        bytes.extend([type_id, 0, 0, 0, 0]);
        bytes.extend(payload);
        bytes
    }

    /// Fuzzer find: rml_rtmp 0.8 panics with "range end index 3 out of range" on a command of
    /// fewer than three AMF0 values (`amf0_command::deserialize` drains `..3`).
    #[test]
    fn refuses_commands_of_fewer_than_three_values() {
        let connect_only = [&[0x02, 0x00, 0x07][..], b"connect"].concat();
        let with_transaction = [&connect_only[..], &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]].concat();
        for payload in [&connect_only[..], &with_transaction[..], &[]] {
            assert_eq!(guard().inspect(&command_message(20, payload)), Err(ChunkError::ShortCommand));
        }
        // An "AMF3" command (type 17) is AMF0 after a zero byte.
        let amf3 = [&[0][..], &connect_only].concat();
        assert_eq!(guard().inspect(&command_message(17, &amf3)), Err(ChunkError::ShortCommand));
        // Three values (name, transaction id, null command object) pass.
        let whole = [&with_transaction[..], &[0x05]].concat();
        assert_eq!(guard().inspect(&command_message(20, &whole)), Ok(()));
        // Split across reads, the check waits for the whole message.
        let mut g = guard();
        let bytes = command_message(20, &connect_only);
        assert_eq!(g.inspect(&bytes[..14]), Ok(()));
        assert_eq!(g.inspect(&bytes[14..]), Err(ChunkError::ShortCommand));
    }

    #[test]
    fn refuses_oversized_commands_from_their_header() {
        let mut s = ChunkSerializer::new();
        let mut guard = ChunkGuard::new(4 * MAX_MESSAGE, MAX_CHUNK);
        let bytes = serialize(&mut s, &payload(20, MAX_COMMAND as usize + 1, 0));
        assert_eq!(
            guard.inspect(&bytes[..12]),
            Err(ChunkError::CommandTooLarge { length: MAX_COMMAND + 1, max: MAX_COMMAND })
        );
    }

    /// Fuzzer find (known upstream): a compressed header that starts a message with an extended
    /// timestamp below 0xFFFFFF makes rml_rtmp compute `timestamp - 0xFFFFFF`, which panics
    /// ("attempt to subtract with overflow") in debug builds.
    #[test]
    fn refuses_small_extended_timestamps_on_compressed_headers() {
        // csid 4, format 0, timestamp 0xFFFFFF + extended 0x01000000, 1-byte video message.
        let first = [0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 1, 0, 0, 0, 0x01, 0, 0, 0, 0x17];
        // A new message on a format 3 header: the extended field repeats, here below 0xFFFFFF.
        let small = [0xC4, 0, 0, 0, 5, 0x17];
        let mut g = guard();
        assert_eq!(g.inspect(&first), Ok(()));
        assert_eq!(g.inspect(&small), Err(ChunkError::SmallExtendedTimestamp { csid: 4 }));
        // Format 1 and 2 headers with the 0xFFFFFF marker and a small delta, likewise.
        for header in [
            &[0x44, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0, 0, 0, 5, 0x17][..],
            &[0x84, 0xFF, 0xFF, 0xFF, 0, 0, 0, 5, 0x17][..],
        ] {
            let mut g = guard();
            assert_eq!(g.inspect(&first), Ok(()));
            assert_eq!(g.inspect(header), Err(ChunkError::SmallExtendedTimestamp { csid: 4 }));
        }
        // The same with an extended field of 0xFFFFFF or more is fine.
        let mut g = guard();
        assert_eq!(g.inspect(&first), Ok(()));
        assert_eq!(g.inspect(&[0xC4, 0x01, 0, 0, 0x28, 0x17]), Ok(()));
    }
}
