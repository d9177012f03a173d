use time::RtmpTimestamp;
use super::chunk_header::{ChunkHeader, ChunkHeaderFormat};
use byteorder::{BigEndian, LittleEndian, ReadBytesExt};
use bytes::BytesMut;
use chunk_io::ChunkDeserializationError;
use messages::MessagePayload;
use std::cmp::min;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Cursor;
use std::mem;

const INITIAL_MAX_CHUNK_SIZE: usize = 128;
/// hawker: the most a message's first chunk header makes us allocate before its bytes arrive
/// (a 720p keyframe fits). Past it, the message is given its exact length once the peer has
/// sent this much of it.
const MAX_UPFRONT: usize = 256 * 1024;
/// hawker: the input buffer's size between reads, and the size past which a buffer grown for
/// one input is let go once consumed (`release_consumed_input`).
const INITIAL_INPUT_CAPACITY: usize = 4096;
const RETAINED_INPUT: usize = 16 * 1024;
/// hawker: chunk streams whose last header is remembered, and messages in progress at once.
/// Encoders use a handful of chunk streams; without a cap, a peer could make one connection
/// hold a header for each of the 65,599 chunk stream ids.
pub const MAX_CHUNK_STREAMS: usize = 64;
pub const MAX_PARTIAL_MESSAGES: usize = 8;
const MAX_INITIAL_TIMESTAMP: u32 = 16777215;
/// The largest chunk size the protocol can express (31 bits).
const PROTOCOL_MAX_CHUNK_SIZE: usize = 0x7FFF_FFFF;
/// The largest message length the protocol can express (24 bits).
const PROTOCOL_MAX_MESSAGE: usize = 0xFF_FFFF;

/// hawker: what a peer may make the deserializer hold. Every message length is the peer's
/// claim, read from a chunk header before the bytes arrive: each is checked there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Largest message accepted. It also bounds all the messages being received at once (their
    /// chunks interleaved on several chunk streams) together, so the partial messages held never
    /// exceed it.
    pub max_message_bytes: usize,
    /// Largest AMF message accepted (commands, data such as `@setDataFrame`, shared objects):
    /// their decoded values take several times their length in memory.
    pub max_amf_message_bytes: usize,
    /// Largest chunk size a peer may set with `SetChunkSize`.
    pub max_chunk_size: usize,
}

impl Default for ChunkLimits {
    /// The protocol's own maxima.
    fn default() -> Self {
        ChunkLimits {
            max_message_bytes: PROTOCOL_MAX_MESSAGE,
            max_amf_message_bytes: PROTOCOL_MAX_MESSAGE,
            max_chunk_size: PROTOCOL_MAX_CHUNK_SIZE,
        }
    }
}

/// AMF0 and AMF3 data, shared object and command messages.
fn is_amf(type_id: u8) -> bool {
    matches!(type_id, 15..=20)
}

/// Allows deserializing bytes representing RTMP chunks into RTMP message payloads.
///
/// Due to the nature of the RTMP chunk protocol it is required that every byte going through the
/// wire is sent to the same `ChunkDeserializer` instance, as future chunks can rely on previous
/// chunks, so any chunks missing from the stream may cause deserialization errors.
pub struct ChunkDeserializer {
    max_chunk_size: usize,
    limits: ChunkLimits,
    current_header_format: ChunkHeaderFormat,
    current_header: ChunkHeader,
    current_stage: ParseStage,
    /// hawker: the partial message of each chunk stream with one in progress (chunks of
    /// messages on different chunk streams may interleave). Upstream kept one for all streams.
    partial_messages: HashMap<u32, BytesMut>,
    /// hawker: the lengths of the messages in `partial_messages`, summed.
    partial_bytes: usize,
    buffer: BytesMut,
    /// hawker: `buffer` grew past `RETAINED_INPUT` for the input being read.
    large_input: bool,
    previous_headers: HashMap<u32, ChunkHeader>,
}

enum ParsedValue<T> {
    NotEnoughBytes,
    Value { val: T, next_index: u32 },
}

enum ParseStage {
    Csid,
    InitialTimestamp,
    MessageLength,
    MessageTypeId,
    MessageStreamId,
    MessagePayload,
    ExtendedTimestamp,
}

#[derive(Eq, PartialEq, Debug)]
enum ParseStageResult {
    Success,
    NotEnoughBytes,
}

impl ChunkDeserializer {
    /// Create a new `ChunkDeserializer` with its initial properties.
    ///
    /// Per the RTMP specification an initial `ChunkDeserializer` is expecting RTMP chunks with
    /// a max size of 128 bytes.
    pub fn new() -> ChunkDeserializer {
        ChunkDeserializer::with_limits(ChunkLimits::default())
    }

    /// hawker: a deserializer that refuses what exceeds `limits` with an error.
    pub fn with_limits(limits: ChunkLimits) -> ChunkDeserializer {
        ChunkDeserializer {
            max_chunk_size: INITIAL_MAX_CHUNK_SIZE,
            limits,
            current_header_format: ChunkHeaderFormat::Full,
            current_header: ChunkHeader::new(),
            current_stage: ParseStage::Csid,
            buffer: BytesMut::with_capacity(INITIAL_INPUT_CAPACITY),
            large_input: false,
            previous_headers: HashMap::new(),
            partial_messages: HashMap::new(),
            partial_bytes: 0,
        }
    }

    /// hawker: the bytes held for messages not yet complete (their claimed lengths, summed).
    pub fn partial_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// hawker: the memory allocated for messages not yet complete (their buffers' capacities).
    pub fn partial_capacity(&self) -> usize {
        self.partial_messages.values().map(BytesMut::capacity).fold(0, usize::saturating_add)
    }

    /// hawker: drops the partial message of chunk stream `csid`, as the peer's `Abort` asks.
    /// Only between chunks (as after a message was returned); ignored in the middle of one.
    pub fn abort(&mut self, csid: u32) {
        if !matches!(self.current_stage, ParseStage::Csid) {
            return;
        }
        if let Some(partial) = self.partial_messages.remove(&csid) {
            let length = self.previous_headers.get(&csid).map_or(partial.len(), |h| h.message_length as usize);
            self.partial_bytes = self.partial_bytes.saturating_sub(length);
        }
    }

    /// hawker: whether the chunk being read starts its chunk stream's next message.
    fn starts_message(&self) -> bool {
        !self.partial_messages.contains_key(&self.current_header.chunk_stream_id)
    }

    /// Attempts to read a complete RTMP message from the passed in bytes.
    ///
    /// It is normal that one set of bytes will not form a complete RTMP message (or even a
    /// complete RTMP chunk).  Therefore it can be assumed that the deserializer will store all
    /// partial message bytes passed into it and the same bytes should not be passed in repeatedly,
    /// otherwise deserialization errors will most likely occur.
    ///
    /// If the bytes that were passed in did not form a complete RTMP message, then the bytes are
    /// added to an internal buffer for storage and `Ok(None)` is returned while it waits for
    /// the next `get_next_message()` call to complete the message.
    ///
    /// If the bytes that were passed in formed multiple RTMP messages than only the first message
    /// is deserialized and any subsequent messages are not read until the next `get_next_message()`
    /// call.
    ///
    /// This is important because if the peer sends a `SendChunkSize` message (meaning it will
    /// change the maximum size of RTMP chunks it sends) you must process that message and call
    /// the `set_max_chunk_size()` method prior to the next `get_next_message()` call.   Otherwise
    /// if the peer sends a chunk larger than the previous max chunk size the message will not be
    /// deserialized properly (and most likely errors will occur).
    ///
    /// It is expected that consumers will call `get_next_message()` in a loop until `None` is
    /// returned.  Since it is important not to keep sending it the same bytes over and over again
    /// an empty slice must be passed in for subsequent calls.
    ///
    /// ## Examples
    ///
    /// ```
    /// # extern crate bytes;
    /// # extern crate rml_rtmp;
    /// # use bytes::Bytes;
    /// # use rml_rtmp::time::RtmpTimestamp;
    /// # use rml_rtmp::chunk_io::{ChunkSerializer, ChunkDeserializer};
    /// # use rml_rtmp::messages::MessagePayload;
    /// # fn main() {
    /// let input1 = MessagePayload {
    ///     timestamp: RtmpTimestamp::new(55),
    ///     message_stream_id: 1,
    ///     type_id: 15,
    ///     data: Bytes::from(vec![1, 2, 3, 4, 5, 6]),
    /// };
    ///
    /// let input2 = MessagePayload {
    ///     timestamp: RtmpTimestamp::new(65),
    ///     message_stream_id: 1,
    ///     type_id: 15,
    ///     data: Bytes::from(vec![8, 9, 10]),
    /// };
    ///
    /// let input3 = MessagePayload {
    ///     timestamp: RtmpTimestamp::new(75),
    ///     message_stream_id: 1,
    ///     type_id: 15,
    ///     data: Bytes::from(vec![1, 2, 3]),
    /// };
    ///
    /// let mut serializer = ChunkSerializer::new();
    /// let mut packet1 = serializer.serialize(&input1, false, false).unwrap();
    /// let mut packet2 = serializer.serialize(&input2, false, false).unwrap();
    /// let mut packet3 = serializer.serialize(&input3, false, false).unwrap();
    ///
    /// let mut all_bytes = Vec::new();
    /// all_bytes.append(&mut packet1.bytes);
    /// all_bytes.append(&mut packet2.bytes);
    /// all_bytes.append(&mut packet3.bytes);
    ///
    /// let mut deserializer = ChunkDeserializer::new();
    /// let message1 = deserializer.get_next_message(&all_bytes[..]).unwrap();
    /// let message2 = deserializer.get_next_message(&[]).unwrap();
    /// let message3 = deserializer.get_next_message(&[]).unwrap();
    /// let message4 = deserializer.get_next_message(&[]).unwrap();
    ///
    /// assert_eq!(message1, Some(input1));
    /// assert_eq!(message2, Some(input2));
    /// assert_eq!(message3, Some(input3));
    /// assert_eq!(message4, None);
    /// # }
    /// ```
    pub fn get_next_message(&mut self, bytes: &[u8]) -> Result<Option<MessagePayload>, ChunkDeserializationError> {
        if !bytes.is_empty() {
            self.buffer.extend_from_slice(bytes);
            // `capacity` counts from the first byte not yet consumed: known only here.
            self.large_input |= self.buffer.capacity() > RETAINED_INPUT;
        }

        loop {
            if self.large_input && matches!(self.current_stage, ParseStage::Csid) {
                self.release_consumed_input();
            }
            let mut complete_message = None;
            let result = match self.current_stage {
                ParseStage::Csid => self.form_header()?,
                ParseStage::InitialTimestamp => self.get_initial_timestamp()?,
                ParseStage::MessageLength => self.get_message_length()?,
                ParseStage::MessageTypeId => self.get_message_type_id()?,
                ParseStage::MessageStreamId => self.get_message_stream_id()?,
                ParseStage::ExtendedTimestamp => self.get_extended_timestamp()?,
                ParseStage::MessagePayload => self.get_message_data(&mut complete_message)?,
            };

            if result == ParseStageResult::NotEnoughBytes || complete_message.is_some() {
                return Ok(complete_message);
            }
        }
    }

    /// hawker: once what a large input brought is consumed, down to the few bytes of a chunk
    /// not yet complete, the buffer it grew to is let go. A connection's batched reads bring
    /// 64 KiB at a time; kept, that buffer (twice over after a reallocation) stayed with each
    /// connection for its life, though between reads it holds at most one partial chunk.
    fn release_consumed_input(&mut self) {
        if self.buffer.len() <= INITIAL_INPUT_CAPACITY {
            let mut small = BytesMut::with_capacity(INITIAL_INPUT_CAPACITY);
            small.extend_from_slice(&self.buffer);
            self.buffer = small;
            self.large_input = false;
        }
    }

    /// Tells the deserializer that the peer will start sending RTMP chunks with a different
    /// max chunk size.
    ///
    /// When an RTMP message is larger than the current max chunk size the serializer
    /// will split the message across multiple RTMP chunks, with each chunk only containing the number
    /// of bytes that fit into the max chunk size value.  Therefore, the sender and the receiver
    /// must be exactly in tune as to what max chunk size they are utilizing.  Any mismatch will
    /// cause errors in the deserialization process, as it will expect split chunks where there
    /// are noone, or encounter a split chunk where it wasn't expecting one.
    ///
    /// This method should almost always be called only in reaction to receiving a `SetChunkSize`
    /// message from the other end.
    pub fn set_max_chunk_size(&mut self, new_size: usize) -> Result<(), ChunkDeserializationError> {
        // hawker: 0 is invalid too (chunks would carry no payload), and the limit is ours.
        let max = min(self.limits.max_chunk_size, PROTOCOL_MAX_CHUNK_SIZE);
        if new_size == 0 || new_size > max {
            return Err(ChunkDeserializationError::InvalidMaxChunkSize { chunk_size: new_size, max });
        }

        self.max_chunk_size = new_size;
        Ok(())
    }

    /// Returns the maximum size of any RTMP chunks that should be received
    pub fn get_max_chunk_size(&self) -> usize {
        self.max_chunk_size
    }

    fn form_header(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        let first = match self.buffer.first() {
            Some(&first) => first,
            None => return Ok(ParseStageResult::NotEnoughBytes),
        };

        self.current_header_format = get_format(&first);
        let (csid, next_index) = match get_csid(&self.buffer[..]) {
            ParsedValue::NotEnoughBytes => return Ok(ParseStageResult::NotEnoughBytes),
            ParsedValue::Value { val, next_index } => (val, next_index),
        };

        self.current_header = match self.current_header_format {
            ChunkHeaderFormat::Full => {
                let mut new_header = ChunkHeader::new();
                new_header.chunk_stream_id = csid;
                new_header
            }

            _ => match self.previous_headers.remove(&csid) {
                None => return Err(ChunkDeserializationError::NoPreviousChunkOnStream { csid }),
                Some(header) => header,
            },
        };
        if !self.previous_headers.contains_key(&csid) && self.previous_headers.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkDeserializationError::TooManyChunkStreams { csid, max: MAX_CHUNK_STREAMS });
        }

        // hawker: only a type 3 chunk continues a message; another header mid-message would
        // change the length or type of the bytes already held.
        if self.current_header_format != ChunkHeaderFormat::Empty && self.partial_messages.contains_key(&csid) {
            return Err(ChunkDeserializationError::HeaderMidMessage { csid });
        }

        let _ = self.buffer.split_to(next_index as usize);
        self.current_stage = ParseStage::InitialTimestamp;
        Ok(ParseStageResult::Success)
    }

    fn get_initial_timestamp(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        if self.current_header_format == ChunkHeaderFormat::Empty {
            // Some encoders send an empty header after a type 1 header due to a message split
            // across multiple chunks.  We need to be careful *NOT* to apply the delta to each
            // type 3 chunk that's trying to serve a single message, otherwise timestamps will
            // get out of control.
            if self.starts_message() {
                // Since we don't have any payload data yet, that means this is the first
                // chunk of the message.  As it's the first chunk this is the only time we should
                // apply the previous header's delta to the timestamp
                self.current_header.timestamp = RtmpTimestamp::new(self.current_header.timestamp.value.wrapping_add(self.current_header.timestamp_field));
            }

            self.current_stage = ParseStage::MessageLength;
            return Ok(ParseStageResult::Success);
        }

        if self.buffer.len() < 3 {
            return Ok(ParseStageResult::NotEnoughBytes);
        }

        let timestamp;
        {
            let bytes = self.buffer.split_to(3);
            let mut cursor = Cursor::new(bytes);
            timestamp = cursor.read_u24::<BigEndian>()?;
        }

        if self.current_header_format == ChunkHeaderFormat::Full {
            self.current_header.timestamp.set(timestamp);
        } else {
            // Non full headers are deltas only
            self.current_header.timestamp = RtmpTimestamp::new(self.current_header.timestamp.value.wrapping_add(timestamp));
        }

        //apply the timestamp field
        self.current_header.timestamp_field = timestamp;

        self.current_stage = ParseStage::MessageLength;
        Ok(ParseStageResult::Success)
    }

    fn get_message_length(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        if self.current_header_format == ChunkHeaderFormat::TimeDeltaOnly
            || self.current_header_format == ChunkHeaderFormat::Empty
        {
            self.current_stage = ParseStage::MessageTypeId;
            return Ok(ParseStageResult::Success);
        }

        if self.buffer.len() < 3 {
            return Ok(ParseStageResult::NotEnoughBytes);
        }

        let length;
        {
            let bytes = self.buffer.split_to(3);
            let mut cursor = Cursor::new(bytes);
            length = cursor.read_u24::<BigEndian>()?;
        }

        self.current_header.message_length = length;
        self.current_stage = ParseStage::MessageTypeId;
        Ok(ParseStageResult::Success)
    }

    fn get_message_type_id(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        if self.current_header_format == ChunkHeaderFormat::TimeDeltaOnly
            || self.current_header_format == ChunkHeaderFormat::Empty
        {
            self.current_stage = ParseStage::MessageStreamId;
            return Ok(ParseStageResult::Success);
        }

        self.current_header.message_type_id = match self.buffer.first() {
            Some(&id) => id,
            None => return Ok(ParseStageResult::NotEnoughBytes),
        };
        let _ = self.buffer.split_to(1);
        self.current_stage = ParseStage::MessageStreamId;
        Ok(ParseStageResult::Success)
    }

    fn get_message_stream_id(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        if self.current_header_format != ChunkHeaderFormat::Full {
            self.current_stage = ParseStage::ExtendedTimestamp;
            return Ok(ParseStageResult::Success);
        }

        if self.buffer.len() < 4 {
            return Ok(ParseStageResult::NotEnoughBytes);
        }

        let stream_id;
        {
            let bytes = self.buffer.split_to(4);
            let mut cursor = Cursor::new(bytes);
            stream_id = cursor.read_u32::<LittleEndian>()?;
        }

        self.current_header.message_stream_id = stream_id;
        self.current_stage = ParseStage::ExtendedTimestamp;
        Ok(ParseStageResult::Success)
    }

    fn get_extended_timestamp(&mut self) -> Result<ParseStageResult, ChunkDeserializationError> {
        if self.current_header.timestamp_field < MAX_INITIAL_TIMESTAMP {
            self.current_stage = ParseStage::MessagePayload;
            return Ok(ParseStageResult::Success);
        }

        if self.buffer.len() < 4 {
            return Ok(ParseStageResult::NotEnoughBytes);
        }

        let timestamp;
        {
            let bytes = self.buffer.split_to(4);
            let mut cursor = Cursor::new(bytes);
            timestamp = cursor.read_u32::<BigEndian>()?;
        }

        // If the type 3 chunk is not the first chunk of a message, we just ignore it's extended timestamp because the timestamp of this message was already deserialized.
        if self.current_header_format == ChunkHeaderFormat::Full {
            self.current_header.timestamp.set(timestamp);
        } else if self.starts_message() {
            // Since we already added the MAX_INITIAL_TIMESTAMP to the timestamp, only add the delta difference
            // hawker: wrapping, as RTMP time does; an extended timestamp below 0xFFFFFF here is
            // a protocol error that upstream's subtraction panicked on.
            self.current_header.timestamp = RtmpTimestamp::new(
                self.current_header.timestamp.value.wrapping_add(timestamp.wrapping_sub(MAX_INITIAL_TIMESTAMP)),
            );
        }

        self.current_stage = ParseStage::MessagePayload;
        Ok(ParseStageResult::Success)
    }

    fn get_message_data(
        &mut self,
        message_to_return: &mut Option<MessagePayload>,
    ) -> Result<ParseStageResult, ChunkDeserializationError> {
        let csid = self.current_header.chunk_stream_id;
        let length = self.current_header.message_length as usize;
        let received = match self.partial_messages.get(&csid) {
            Some(partial) => partial.len(),
            None => {
                // hawker: a new message. Its length is the peer's claim: checked here, from
                // the header, before any of its bytes are awaited or allocated.
                self.check_new_message(csid, length)?;
                0
            }
        };
        let remaining_bytes = length
            .checked_sub(received)
            .ok_or(ChunkDeserializationError::HeaderMidMessage { csid })?;
        let chunk_length = min(remaining_bytes, self.max_chunk_size);

        if self.buffer.len() < chunk_length {
            return Ok(ParseStageResult::NotEnoughBytes);
        }

        let bytes = self.buffer.split_to(chunk_length);
        // hawker: the whole message is allocated at its first chunk, exactly. Upstream compared
        // against `remaining_mut()`, which for a BytesMut is `usize::MAX - len`, so it never
        // reserved: each chunk grew the buffer by doubling (a realloc copy per growth), and the
        // payload handed out kept up to twice its length for as long as a frame lives in the
        // packager. Only up to MAX_UPFRONT is taken on the peer's word (media frames are
        // smaller); a larger message gets its exact length once MAX_UPFRONT of it has arrived,
        // so no buffer is ever larger than its message.
        let partial = match self.partial_messages.entry(csid) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.partial_bytes = self.partial_bytes.saturating_add(length);
                entry.insert(BytesMut::with_capacity(min(length, MAX_UPFRONT)))
            }
        };
        if partial.capacity().saturating_sub(partial.len()) < bytes.len() {
            let mut whole = BytesMut::with_capacity(length);
            whole.extend_from_slice(partial);
            *partial = whole;
        }
        partial.extend_from_slice(&bytes[..]);

        if partial.len() == length {
            let data = self.partial_messages.remove(&csid).unwrap_or_default();
            self.partial_bytes = self.partial_bytes.saturating_sub(length);
            *message_to_return = Some(MessagePayload {
                timestamp: self.current_header.timestamp,
                type_id: self.current_header.message_type_id,
                message_stream_id: self.current_header.message_stream_id,
                data: data.freeze(),
            });
        }

        // This completes the current chunk, so cycle the header into the map and start a new one
        let current_header = mem::replace(&mut self.current_header, ChunkHeader::new());
        self.previous_headers.insert(current_header.chunk_stream_id, current_header);
        self.current_stage = ParseStage::Csid;
        Ok(ParseStageResult::Success)
    }

    /// hawker: refuses a message over the limits, alone or with those already in progress.
    fn check_new_message(&self, csid: u32, length: usize) -> Result<(), ChunkDeserializationError> {
        let type_id = self.current_header.message_type_id;
        let max = if is_amf(type_id) {
            min(self.limits.max_amf_message_bytes, self.limits.max_message_bytes)
        } else {
            self.limits.max_message_bytes
        };
        if length > max {
            return Err(ChunkDeserializationError::MessageTooLarge { csid, type_id, length, max });
        }
        if self.partial_messages.len() >= MAX_PARTIAL_MESSAGES {
            return Err(ChunkDeserializationError::TooManyPartialMessages {
                csid,
                bytes: self.partial_bytes,
                max: self.limits.max_message_bytes,
            });
        }
        let in_progress = self.partial_bytes.saturating_add(length);
        if in_progress > self.limits.max_message_bytes {
            return Err(ChunkDeserializationError::TooManyPartialMessages {
                csid,
                bytes: in_progress,
                max: self.limits.max_message_bytes,
            });
        }
        Ok(())
    }
}

fn get_format(byte: &u8) -> ChunkHeaderFormat {
    const TYPE_0_MASK: u8 = 0b00000000;
    const TYPE_1_MASK: u8 = 0b01000000;
    const TYPE_2_MASK: u8 = 0b10000000;
    const FORMAT_MASK: u8 = 0b11000000;

    let format_id = *byte & FORMAT_MASK;

    match format_id {
        TYPE_0_MASK => ChunkHeaderFormat::Full,
        TYPE_1_MASK => ChunkHeaderFormat::TimeDeltaWithoutMessageStreamId,
        TYPE_2_MASK => ChunkHeaderFormat::TimeDeltaOnly,
        _ => ChunkHeaderFormat::Empty,
    }
}

fn get_csid(buffer: &[u8]) -> ParsedValue<u32> {
    const CSID_MASK: u8 = 0b00111111;

    // hawker: read with `get`, added without overflow (at most 65599).
    let first = match buffer.first() {
        Some(&first) => first,
        None => return ParsedValue::NotEnoughBytes,
    };

    match first & CSID_MASK {
        0 => match buffer.get(1) {
            Some(&low) => ParsedValue::Value { val: u32::from(low).wrapping_add(64), next_index: 2 },
            None => ParsedValue::NotEnoughBytes,
        },

        1 => match (buffer.get(1), buffer.get(2)) {
            (Some(&low), Some(&high)) => {
                ParsedValue::Value { val: u32::from(u16::from_le_bytes([low, high])).wrapping_add(64), next_index: 3 }
            }
            _ => ParsedValue::NotEnoughBytes,
        },

        x => ParsedValue::Value { val: x as u32, next_index: 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use byteorder::{BigEndian, LittleEndian, WriteBytesExt};
    use std::io::{Cursor, Write};
    use time::RtmpTimestamp;

    #[test]
    fn a_large_input_is_let_go_once_consumed_and_a_partial_chunk_kept() {
        let mut serializer = super::super::ChunkSerializer::new();
        let message = |n: u8| MessagePayload {
            timestamp: RtmpTimestamp::new(u32::from(n)),
            type_id: 9,
            message_stream_id: 1,
            data: bytes::Bytes::from(vec![n; 4000]),
        };
        let mut input = Vec::new();
        for n in 0..20 {
            input.extend(serializer.serialize(&message(n), false, false).unwrap().bytes);
        }
        // All of it but the last few bytes of the last message, in one input (a batched read).
        let (first, rest) = input.split_at(input.len() - 10);
        let mut deserializer = ChunkDeserializer::new();
        let mut next = deserializer.get_next_message(first).unwrap();
        // The buffer the input was copied into: what is left of it from here.
        let grown = deserializer.buffer.as_ptr() as usize
            ..deserializer.buffer.as_ptr() as usize + deserializer.buffer.capacity();
        let mut read = 0;
        while let Some(payload) = next {
            assert_eq!(payload, message(read));
            read += 1;
            next = deserializer.get_next_message(&[]).unwrap();
        }
        assert_eq!(read, 19);
        assert!(!grown.contains(&(deserializer.buffer.as_ptr() as usize)), "the grown buffer is kept");
        assert!(deserializer.buffer.len() < 200, "a partial chunk at most: {}", deserializer.buffer.len());
        assert_eq!(deserializer.get_next_message(rest).unwrap(), Some(message(19)));
    }

    #[test]
    fn can_read_type_0_chunk_with_small_chunk_stream_id_and_small_timestamp() {
        let csid = 50;
        let timestamp = 25u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_0_chunk_with_medium_chunk_stream_id_and_small_timestamp() {
        let csid = 500;
        let timestamp = 25u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_0_chunk_with_large_chunk_stream_id_and_small_timestamp() {
        let csid = 50000;
        let timestamp = 25u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_0_chunk_with_small_chunk_stream_id_and_large_timestamp() {
        let csid = 50;
        let timestamp = 16777216u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_0_chunk_with_medium_chunk_stream_id_and_large_timestamp() {
        let csid = 500;
        let timestamp = 16777216u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_0_chunk_with_large_chunk_stream_id_and_large_timestamp() {
        let csid = 50000;
        let timestamp = 16777216u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_1_chunk_with_small_chunk_stream_id_and_small_timestamp() {
        let csid = 50;
        let timestamp = 25u32;
        let delta = 10_u32;
        let message_stream_id = 5u32;
        let type_id1 = 3;
        let type_id2 = 4;
        let payload = [1_u8, 2_u8, 3_u8];

        let chunk_0_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id1, &payload, INITIAL_MAX_CHUNK_SIZE);
        let chunk_1_bytes = form_type_1_chunk(csid, delta, type_id2, &payload);
        let mut deserializer = ChunkDeserializer::new();
        let _ = deserializer.get_next_message(&chunk_0_bytes).unwrap().unwrap();
        let result = deserializer.get_next_message(&chunk_1_bytes).unwrap().unwrap();

        assert_eq!(result.type_id, type_id2, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp + delta), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_2_chunk_with_small_chunk_stream_id_and_small_timestamp() {
        let csid = 50;
        let timestamp = 25u32;
        let delta1 = 10_u32;
        let delta2 = 11_u32;
        let message_stream_id = 5u32;
        let type_id1 = 3;
        let type_id2 = 4;
        let payload = [1_u8, 2_u8, 3_u8];

        let chunk_0_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id1, &payload, INITIAL_MAX_CHUNK_SIZE);
        let chunk_1_bytes = form_type_1_chunk(csid, delta1, type_id2, &payload);
        let chunk_2_bytes = form_type_2_chunk(csid, delta2, &payload);
        let mut deserializer = ChunkDeserializer::new();
        let _ = deserializer.get_next_message(&chunk_0_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_1_bytes).unwrap().unwrap();
        let result = deserializer.get_next_message(&chunk_2_bytes).unwrap().unwrap();

        assert_eq!(result.type_id, type_id2, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp + delta1 + delta2), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_2_chunk_with_small_chunk_stream_id_and_large_timestamp() {
        let csid = 50;
        let timestamp = 25u32;
        let delta1 = 10_u32;
        let delta2 = 16777216_u32;
        let message_stream_id = 5u32;
        let type_id1 = 3;
        let type_id2 = 4;
        let payload = [1_u8, 2_u8, 3_u8];

        let chunk_0_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id1, &payload, INITIAL_MAX_CHUNK_SIZE);
        let chunk_1_bytes = form_type_1_chunk(csid, delta1, type_id2, &payload);
        let chunk_2_bytes = form_type_2_chunk(csid, delta2, &payload);
        let mut deserializer = ChunkDeserializer::new();
        let _ = deserializer.get_next_message(&chunk_0_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_1_bytes).unwrap().unwrap();
        let result = deserializer.get_next_message(&chunk_2_bytes).unwrap().unwrap();

        assert_eq!(result.type_id, type_id2, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp + delta1 + delta2), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_3_chunk_with_small_chunk_stream_id_and_small_timestamp() {
        let csid = 50;
        let timestamp = 25u32;
        let delta1 = 10_u32;
        let delta2 = 11_u32;
        let message_stream_id = 5u32;
        let type_id1 = 3;
        let type_id2 = 4;
        let payload = [1_u8, 2_u8, 3_u8];

        let chunk_0_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id1, &payload, INITIAL_MAX_CHUNK_SIZE);
        let chunk_1_bytes = form_type_1_chunk(csid, delta1, type_id2, &payload);
        let chunk_2_bytes = form_type_2_chunk(csid, delta2, &payload);
        let chunk_3_bytes = form_type_3_chunk(csid, &payload, INITIAL_MAX_CHUNK_SIZE, None);
        let mut deserializer = ChunkDeserializer::new();
        let _ = deserializer.get_next_message(&chunk_0_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_1_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_2_bytes).unwrap().unwrap();
        let result = deserializer.get_next_message(&chunk_3_bytes).unwrap().unwrap();

        assert_eq!(result.type_id, type_id2, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp + delta1 + delta2 + delta2), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_type_3_chunk_with_small_chunk_stream_id_and_large_timestamp() {
        let csid = 50;
        let timestamp = 10_u32;
        let delta1 = 10_u32;
        let delta2 = 16777216_u32;
        let message_stream_id = 5u32;
        let type_id1 = 3;
        let type_id2 = 4;
        let payload = [1_u8, 2_u8, 3_u8];

        let chunk_0_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id1, &payload, INITIAL_MAX_CHUNK_SIZE);
        let chunk_1_bytes = form_type_1_chunk(csid, delta1, type_id2, &payload);
        let chunk_2_bytes = form_type_2_chunk(csid, delta2, &payload);
        let chunk_3_bytes = form_type_3_chunk(csid, &payload, INITIAL_MAX_CHUNK_SIZE, Some(delta2));
        let mut deserializer = ChunkDeserializer::new();
        let _ = deserializer.get_next_message(&chunk_0_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_1_bytes).unwrap().unwrap();
        let _ = deserializer.get_next_message(&chunk_2_bytes).unwrap().unwrap();
        let result = deserializer.get_next_message(&chunk_3_bytes).unwrap().unwrap();

        assert_eq!(result.type_id, type_id2, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp + delta1 + delta2 + delta2), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_message_spread_across_multiple_deserialization_calls() {
        let csid = 50;
        let timestamp = 25u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [1_u8, 2_u8, 3_u8];

        let all_bytes =
            form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, INITIAL_MAX_CHUNK_SIZE);
        let (first, second) = all_bytes.split_at(all_bytes.len() / 2);
        let mut deserializer = ChunkDeserializer::new();
        match deserializer.get_next_message(first).unwrap() {
            Some(x) => panic!("Expected None but received {:?}", x),
            None => (),
        };

        let result = deserializer.get_next_message(second).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    #[test]
    fn can_read_message_exceeding_maximum_chunk_size() {
        let csid = 50;
        let timestamp = 25u32;
        let message_stream_id = 5u32;
        let type_id = 3;
        let payload = [100_u8; 500];
        let max_chunk_size = 100;

        let bytes = form_type_0_chunk(csid, timestamp, message_stream_id, type_id, &payload, max_chunk_size);
        let mut deserializer = ChunkDeserializer::new();
        deserializer.set_max_chunk_size(max_chunk_size).unwrap();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();

        assert_eq!(result.type_id, 3, "Incorrect type id");
        assert_eq!(result.timestamp, RtmpTimestamp::new(timestamp), "Incorrect timestamp");
        assert_eq!(&result.data[..], &payload[..], "Incorrect data");
    }

    // hawker: a payload spread over many chunks is allocated once, at its exact length.
    #[test]
    fn message_over_many_chunks_takes_exactly_its_length() {
        let payload = [7_u8; 1000];
        let bytes = form_type_0_chunk(50, 25, 5, 9, &payload, 128);
        let mut deserializer = ChunkDeserializer::new();
        let result = deserializer.get_next_message(&bytes).unwrap().unwrap();
        assert_eq!(&result.data[..], &payload[..]);
        let data = result.data.try_into_mut().expect("the payload is not shared");
        assert_eq!(data.capacity(), payload.len());
    }

    // hawker: a peer's claimed length is not allocated beyond MAX_UPFRONT before its bytes come.
    #[test]
    fn claimed_length_is_not_allocated_beyond_the_upfront_cap() {
        let chunk = 65536;
        let payload = vec![7_u8; 2 * MAX_UPFRONT];
        let bytes = form_type_0_chunk(50, 25, 5, 9, &payload, chunk);
        let mut deserializer = ChunkDeserializer::new();
        deserializer.set_max_chunk_size(chunk).unwrap();
        // The header and the first chunk only.
        assert!(deserializer.get_next_message(&bytes[..12 + chunk]).unwrap().is_none());
        assert_eq!(deserializer.partial_messages[&50].len(), chunk);
        assert!(deserializer.partial_messages[&50].capacity() <= MAX_UPFRONT);
        assert_eq!(deserializer.partial_bytes(), payload.len());
        let result = deserializer.get_next_message(&bytes[12 + chunk..]).unwrap().unwrap();
        assert_eq!(&result.data[..], &payload[..]);
        assert_eq!(deserializer.partial_bytes(), 0);
    }

    // hawker: chunks of messages on different chunk streams may interleave (RTMP 1.0, 5.3.1);
    // upstream kept one partial message and underflowed (a panic) when they did.
    #[test]
    fn interleaved_messages_are_reassembled_per_chunk_stream() {
        let video: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let first = form_type_0_chunk(6, 40, 1, 9, &video, 128);
        let audio = form_type_0_chunk(4, 42, 1, 8, &[2_u8; 10], 128);
        // Video's first chunk (12-byte header + 128), all of the audio, then video's rest.
        let mut bytes = first[..12 + 128].to_vec();
        bytes.extend_from_slice(&audio);
        bytes.extend_from_slice(&first[12 + 128..]);
        let mut deserializer = ChunkDeserializer::new();
        let audio_message = deserializer.get_next_message(&bytes).unwrap().unwrap();
        assert_eq!((audio_message.type_id, audio_message.timestamp.value), (8, 42));
        assert_eq!(&audio_message.data[..], &[2_u8; 10][..]);
        assert_eq!(deserializer.partial_bytes(), 300);
        let video_message = deserializer.get_next_message(&[]).unwrap().unwrap();
        assert_eq!((video_message.type_id, video_message.timestamp.value), (9, 40));
        assert_eq!(&video_message.data[..], &video[..]);
        assert!(deserializer.get_next_message(&[]).unwrap().is_none());
        assert_eq!(deserializer.partial_bytes(), 0);
    }

    #[test]
    fn a_new_header_mid_message_is_an_error() {
        let first = form_type_0_chunk(4, 0, 1, 9, &[1_u8; 300], 128);
        let again = form_type_0_chunk(4, 0, 1, 9, &[2_u8; 10], 128);
        let mut deserializer = ChunkDeserializer::new();
        assert!(deserializer.get_next_message(&first[..12 + 128]).unwrap().is_none());
        match deserializer.get_next_message(&again) {
            Err(ChunkDeserializationError::HeaderMidMessage { csid: 4 }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_abort_drops_the_partial_message() {
        let first = form_type_0_chunk(4, 0, 1, 9, &[1_u8; 300], 128);
        let mut deserializer = ChunkDeserializer::new();
        assert!(deserializer.get_next_message(&first[..12 + 128]).unwrap().is_none());
        deserializer.abort(4);
        assert_eq!(deserializer.partial_bytes(), 0);
        let next = form_type_0_chunk(4, 5, 1, 9, &[3_u8; 10], 128);
        let message = deserializer.get_next_message(&next).unwrap().unwrap();
        assert_eq!(&message.data[..], &[3_u8; 10][..]);
    }

    #[test]
    fn a_large_message_gets_its_exact_length_once_its_bytes_come() {
        let chunk = 65536;
        let payload = vec![9_u8; 3 * MAX_UPFRONT + 5];
        let bytes = form_type_0_chunk(7, 0, 1, 9, &payload, chunk);
        let mut deserializer = ChunkDeserializer::new();
        deserializer.set_max_chunk_size(chunk).unwrap();
        let upfront_chunks = MAX_UPFRONT / chunk;
        // Header + the chunks that fill the upfront buffer: nothing more reserved.
        let upfront_end = 12 + chunk + (upfront_chunks - 1) * (1 + chunk);
        assert!(deserializer.get_next_message(&bytes[..upfront_end]).unwrap().is_none());
        assert_eq!(deserializer.partial_capacity(), MAX_UPFRONT);
        // The next chunk: the buffer is grown once, to the message's length.
        assert!(deserializer.get_next_message(&bytes[upfront_end..upfront_end + 1 + chunk]).unwrap().is_none());
        assert_eq!(deserializer.partial_capacity(), payload.len());
        let message = deserializer.get_next_message(&bytes[upfront_end + 1 + chunk..]).unwrap().unwrap();
        assert_eq!(message.data.len(), payload.len());
    }

    #[test]
    fn chunk_streams_and_partial_messages_are_capped() {
        let mut deserializer = ChunkDeserializer::new();
        for csid in 2..2 + MAX_CHUNK_STREAMS as u32 {
            assert!(deserializer.get_next_message(&form_type_0_chunk(csid, 0, 1, 9, &[], 128)).unwrap().is_some());
        }
        let more = form_type_0_chunk(2 + MAX_CHUNK_STREAMS as u32, 0, 1, 9, &[], 128);
        match deserializer.get_next_message(&more) {
            Err(ChunkDeserializationError::TooManyChunkStreams { max, .. }) => assert_eq!(max, MAX_CHUNK_STREAMS),
            other => panic!("unexpected {other:?}"),
        }

        let mut deserializer = ChunkDeserializer::new();
        for csid in 2..2 + MAX_PARTIAL_MESSAGES as u32 {
            let started = form_type_0_chunk(csid, 0, 1, 9, &[1_u8; 200], 128);
            assert!(deserializer.get_next_message(&started[..12 + 128]).unwrap().is_none());
        }
        let one_more = form_type_0_chunk(40, 0, 1, 9, &[1_u8; 200], 128);
        match deserializer.get_next_message(&one_more[..12]) {
            Err(ChunkDeserializationError::TooManyPartialMessages { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    fn limited() -> ChunkDeserializer {
        ChunkDeserializer::with_limits(ChunkLimits { max_message_bytes: 1000, max_amf_message_bytes: 100, max_chunk_size: 4096 })
    }

    // hawker: a claimed length over the limit is refused from the header alone, before any
    // payload byte arrives.
    #[test]
    fn messages_over_the_limits_are_refused_from_their_header() {
        let video = form_type_0_chunk(4, 0, 1, 9, &[0_u8; 1001], 128);
        match limited().get_next_message(&video[..12]) {
            Err(ChunkDeserializationError::MessageTooLarge { csid: 4, type_id: 9, length: 1001, max: 1000 }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(limited().get_next_message(&form_type_0_chunk(4, 0, 1, 9, &[0_u8; 1000], 128)).unwrap().is_some());
        for type_id in [15, 17, 18, 20] {
            let amf = form_type_0_chunk(3, 0, 0, type_id, &[0_u8; 101], 128);
            match limited().get_next_message(&amf[..12]) {
                Err(ChunkDeserializationError::MessageTooLarge { length: 101, max: 100, .. }) => {}
                other => panic!("type {type_id}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn partial_messages_together_are_bounded() {
        let mut deserializer = limited();
        let first = form_type_0_chunk(4, 0, 1, 9, &[1_u8; 600], 128);
        let second = form_type_0_chunk(5, 0, 1, 9, &[1_u8; 600], 128);
        assert!(deserializer.get_next_message(&first[..12 + 128]).unwrap().is_none());
        match deserializer.get_next_message(&second[..12]) {
            Err(ChunkDeserializationError::TooManyPartialMessages { csid: 5, bytes: 1200, max: 1000 }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn chunk_sizes_outside_the_limit_are_refused() {
        for size in [0, 4097] {
            match limited().set_max_chunk_size(size) {
                Err(ChunkDeserializationError::InvalidMaxChunkSize { chunk_size, max: 4096 }) => assert_eq!(chunk_size, size),
                other => panic!("{size}: unexpected {other:?}"),
            }
        }
        assert!(limited().set_max_chunk_size(4096).is_ok());
    }

    #[test]
    fn error_when_setting_chunk_size_too_large() {
        const CHUNK_SIZE_VALUE: usize = 2147483648;
        let mut deserializer = ChunkDeserializer::new();
        match deserializer.set_max_chunk_size(CHUNK_SIZE_VALUE) {
            Err(ChunkDeserializationError::InvalidMaxChunkSize { chunk_size: CHUNK_SIZE_VALUE, .. }) => {} // success
            x => panic!("Unexpected set max chunk size result of {:?}", x),
        }
    }

    #[test]
    fn type_2_chunk_that_exceeds_max_chunk_size_does_not_keep_applying_delta_to_timestamp() {
        // It was noticed that OBS does not totally conform to the RTMP specification.  It will
        // send a type 1 chunk with a time delta for a video packet, but will send the remaining
        // parts of that chunk with a type 3 header (even though the delta should not be applied).
        // this test verifies we can handle that.

        let chunk1 = [0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x09, 0x01, 0x00, 0x00, 0x00, 0x01];
        let chunk2 = [0x44, 0x00, 0x00, 0x21, 0x00, 0x00, 0x05, 0x09, 0x01, 0x02, 0x03, 0x04, 0xc4, 0x05];

        let mut deserializer = ChunkDeserializer::new();
        deserializer.set_max_chunk_size(4).unwrap();

        let payload1 = deserializer.get_next_message(&chunk1).unwrap().unwrap();
        assert_eq!(payload1.type_id, 0x09, "Incorrect payload 1 type");
        assert_eq!(payload1.timestamp, RtmpTimestamp::new(0), "Incorrect payload 1 timestamp");
        assert_eq!(&payload1.data[..], &[0x01], "Incorrect payload 1 data");

        let payload2 = deserializer.get_next_message(&chunk2).unwrap().unwrap();
        assert_eq!(payload2.type_id, 0x09, "Incorrect payload 2 type");
        assert_eq!(payload2.timestamp, RtmpTimestamp::new(33), "Incorrect payload 2 timestamp");
        assert_eq!(&payload2.data[..], &[0x01, 0x02, 0x03, 0x04, 0x05], "Incorrect payload 2 data");
    }

    #[test]
    fn can_read_type_3_chunk_that_follows_type_0_has_extended_timestamp() {
        let chunk1 = [
            0x06, 0xff, 0xff, 0xff, 0x00, 0x00, 0x07, 0x09, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0x01, 0x02,
            0x03, 0x04,
        ];
        let chunk2 = [0xc6, 0x01, 0xff, 0xff, 0xff, 0x05, 0x06, 0x07];
        let mut deserializer = ChunkDeserializer::new();
        deserializer.set_max_chunk_size(4).unwrap();
        let _ = deserializer.get_next_message(&chunk1).unwrap();
        let payload = deserializer.get_next_message(&chunk2).unwrap().unwrap();
        assert_eq!(payload.type_id, 0x09, "Incorrect payload type");
        assert_eq!(payload.timestamp, RtmpTimestamp::new(0x1ffffff), "Incorrect payload timestamp");
        assert_eq!(&payload.data[..], &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07], "Incorrect payload data");
    }

    fn form_type_0_chunk(
        csid: u32,
        timestamp: u32,
        message_stream_id: u32,
        type_id: u8,
        payload: &[u8],
        max_chunk_length: usize,
    ) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        if csid < 64 {
            cursor.write_u8(csid as u8).unwrap();
        } else if csid < 319 {
            cursor.write_u8(0_u8).unwrap();
            cursor.write_u8((csid - 64) as u8).unwrap();
        } else {
            cursor.write_u8(1_u8).unwrap();
            cursor.write_u16::<BigEndian>((csid - 64) as u16).unwrap();
        }

        let standard_timestamp = if timestamp >= 16777215 { 16777215 } else { timestamp };
        cursor.write_u24::<BigEndian>(standard_timestamp).unwrap();
        cursor.write_u24::<BigEndian>(payload.len() as u32).unwrap();
        cursor.write_u8(type_id).unwrap();
        cursor.write_u32::<LittleEndian>(message_stream_id).unwrap();

        let mut option_extended_timestamp = None;
        if timestamp > 16777215 {
            cursor.write_u32::<BigEndian>(timestamp).unwrap();
            option_extended_timestamp = Some(timestamp);
        }

        // If the payload is over max_chunk_length, assume we want to form a split message
        // and therefore need to only write the max chunk amount of the payload in this request
        // and append a type 3 chunk with the rest
        if payload.len() > max_chunk_length {
            cursor.write(&payload[..max_chunk_length]).unwrap();

            let next_chunk =
                form_type_3_chunk(csid, &payload[max_chunk_length..], max_chunk_length, option_extended_timestamp);
            cursor.write(&next_chunk).unwrap();
        } else {
            cursor.write(payload).unwrap();
        }

        cursor.into_inner()
    }

    fn form_type_1_chunk(csid: u32, delta: u32, type_id: u8, payload: &[u8]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        if csid < 64 {
            cursor.write_u8((csid as u8) | 0b01000000).unwrap();
        } else if csid < 319 {
            cursor.write_u8(0_u8 | 0b01000000).unwrap();
            cursor.write_u8((csid - 64) as u8).unwrap();
        } else {
            cursor.write_u8(1_u8 | 0b01000000).unwrap();
            cursor.write_u16::<BigEndian>((csid - 64) as u16).unwrap();
        }

        let standard_timestamp = if delta >= 16777215 { 16777215 } else { delta };
        cursor.write_u24::<BigEndian>(standard_timestamp).unwrap();
        cursor.write_u24::<BigEndian>(payload.len() as u32).unwrap();
        cursor.write_u8(type_id).unwrap();

        if delta > 16777215 {
            cursor.write_u32::<BigEndian>(delta).unwrap();
        }

        cursor.write(payload).unwrap();

        cursor.into_inner()
    }

    fn form_type_2_chunk(csid: u32, delta: u32, payload: &[u8]) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        if csid < 64 {
            cursor.write_u8((csid as u8) | 0b10000000).unwrap();
        } else if csid < 319 {
            cursor.write_u8(0_u8 | 0b10000000).unwrap();
            cursor.write_u8((csid - 64) as u8).unwrap();
        } else {
            cursor.write_u8(1_u8 | 0b10000000).unwrap();
            cursor.write_u16::<BigEndian>((csid - 64) as u16).unwrap();
        }

        let standard_timestamp = if delta >= 16777215 { 16777215 } else { delta };
        cursor.write_u24::<BigEndian>(standard_timestamp).unwrap();

        if delta > 16777215 {
            cursor.write_u32::<BigEndian>(delta).unwrap();
        }

        cursor.write(payload).unwrap();

        cursor.into_inner()
    }

    fn form_type_3_chunk(
        csid: u32,
        payload: &[u8],
        max_chunk_length: usize,
        option_extended_timestamp: Option<u32>,
    ) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        if csid < 64 {
            cursor.write_u8((csid as u8) | 0b11000000).unwrap();
        } else if csid < 319 {
            cursor.write_u8(0_u8 | 0b11000000).unwrap();
            cursor.write_u8((csid - 64) as u8).unwrap();
        } else {
            cursor.write_u8(1_u8 | 0b11000000).unwrap();
            cursor.write_u16::<BigEndian>((csid - 64) as u16).unwrap();
        }

        if option_extended_timestamp != None {
            assert_eq!(
                option_extended_timestamp.unwrap() >= MAX_INITIAL_TIMESTAMP,
                true,
                "timestamp was less than 0xffffff"
            );
            cursor.write_u32::<BigEndian>(option_extended_timestamp.unwrap()).unwrap();
        }

        // If the payload is over max_chunk_length, assume we want to form a split message
        // and therefore need to only write the max chunk amount of the payload in this request
        // and append a type 3 chunk with the rest
        if payload.len() > max_chunk_length {
            cursor.write(&payload[..max_chunk_length]).unwrap();

            let next_chunk =
                form_type_3_chunk(csid, &payload[max_chunk_length..], max_chunk_length, option_extended_timestamp);
            cursor.write(&next_chunk).unwrap();
        } else {
            cursor.write(payload).unwrap();
        }

        cursor.into_inner()
    }
}
