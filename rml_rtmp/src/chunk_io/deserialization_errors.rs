use std::io;
use thiserror::Error;

/// Data for when an error occurs while attempting to deserialize a RTMP chunk
/// An enumeration defining all the possible errors that could occur while deserializing
/// RTMP chunks.
#[derive(Debug, Error)]
pub enum ChunkDeserializationError {
    /// The RTMP chunk format requires that RTMP chunks that are not type 0 utilize information
    /// from the previously received chunk on that same chunk stream id.  This error occurs when a
    /// non-0 chunk is received on a stream that has not received a type 0 chunk yet.
    #[error("Received chunk with non-zero chunk type on csid {csid} prior to receiving a type 0 chunk")]
    NoPreviousChunkOnStream { csid: u32 },

    /// The max chunk size does not allow chunk sizes more than 2,147,483,647 (since it's encoded in only
    /// 31 bytes of the SetChunkSize message), so this error occurs when a chunk size of greater than
    /// this value is attempted to be set. hawker: or 0, or over the deserializer's limit.
    #[error("chunk size {chunk_size} is outside 1..={max}")]
    InvalidMaxChunkSize { chunk_size: usize, max: usize },

    /// hawker: a chunk with a type 0, 1 or 2 header on a chunk stream whose message was not
    /// complete (only type 3 chunks continue a message). Upstream underflowed (and panicked).
    #[error("new message header on chunk stream {csid} before its message ended")]
    HeaderMidMessage { csid: u32 },

    /// hawker: a message whose header claims more than the deserializer's limit.
    #[error("message of type {type_id} on chunk stream {csid}: {length} bytes exceeds the {max}-byte limit")]
    MessageTooLarge { csid: u32, type_id: u8, length: usize, max: usize },

    /// hawker: messages in progress on several chunk streams at once, together over the limit
    /// (in bytes, or more than `MAX_PARTIAL_MESSAGES` of them).
    #[error("a new message on chunk stream {csid}: too many partial messages ({bytes} bytes held, {max} at most)")]
    TooManyPartialMessages { csid: u32, bytes: usize, max: usize },

    /// hawker: more chunk streams than the deserializer remembers headers for.
    #[error("chunk stream {csid}: more than {max} chunk streams on one connection")]
    TooManyChunkStreams { csid: u32, max: usize },

    /// An I/O error occurred while reading the input buffer
    #[error("{0}")]
    Io(#[from] io::Error),
}
