//! Object storage: the `Store` trait and its backends — a local folder (the default) and any
//! S3-compatible service (AWS S3, MinIO, Cloudflare R2, Garage, s3s).
//!
//! Keys are `/`-separated relative paths (`streams/abc/v0/seg00001.m4s`). The store knows
//! nothing of HLS or streams: callers give each object its content type and cache policy,
//! and decide write order (a segment before the playlist that names it).
//!
//! The S3 backend never makes the caller wait for the network: `put` returns once the object
//! is in a local spool folder, and a bounded queue uploads it (in parallel, retried with
//! backoff). While an object waits, `get` answers from the spool, so whatever a caller wrote
//! is readable at once — also while the bucket is down, and after a restart.

mod local;
mod s3;
mod spool;
mod uploader;

pub use local::LocalStore;
pub use s3::{Delivery, S3Config, S3Store};
pub use uploader::{Histogram, UPLOAD_SECONDS_BUCKETS, UploadStats};

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

/// How an object is to be served; S3-like backends store it as object metadata.
///
/// Ordering rule of remote backends: an object whose cache policy is not `immutable` (a
/// playlist, which may name other objects) becomes readable remotely only after every object
/// put before it is. Immutable objects (segments, init segments, posters) upload in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// The cache policy of objects that never change once written.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

impl ObjectMeta {
    pub const fn new(content_type: &'static str, cache_control: &'static str) -> Self {
        Self { content_type, cache_control }
    }

    /// Objects that never change once written; the others order remote uploads.
    pub fn is_immutable(&self) -> bool {
        self.cache_control.contains("immutable")
    }
}

/// Maps a stored header value back to one of the values hawker writes.
pub(crate) fn intern_content_type(value: &str) -> &'static str {
    const KNOWN: [&str; 7] = [
        "application/vnd.apple.mpegurl",
        "video/mp4",
        "video/iso.segment",
        "video/mp2t",
        "image/jpeg",
        "application/json",
        "application/octet-stream",
    ];
    KNOWN.into_iter().find(|k| *k == value).unwrap_or("application/octet-stream")
}

pub(crate) fn intern_cache_control(value: &str) -> &'static str {
    const KNOWN: [&str; 4] = [IMMUTABLE, "no-cache", "public, max-age=5", "no-store"];
    match KNOWN.into_iter().find(|k| *k == value) {
        Some(known) => known,
        None if value.contains("immutable") => IMMUTABLE,
        None => "no-cache",
    }
}

#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub meta: ObjectMeta,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object key")]
    InvalidKey,
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The remote store failed (after its retries, where the operation has any).
    #[error("remote storage error: {0}")]
    Remote(String),
    /// The spool reached its size bound and holds nothing it may drop.
    #[error("spool full: {0}")]
    SpoolFull(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores an object atomically: a reader sees the old object or the new one, never a part.
    /// Once it returns, `get` finds the object (for a remote backend: from its spool until
    /// the upload is done).
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError>;
    /// Stores an object given as consecutive pieces, as `put` would their concatenation; a
    /// backend that can write them one after the other does, without joining them first.
    async fn put_pieces(&self, key: &str, pieces: Vec<Bytes>, meta: ObjectMeta) -> Result<(), StoreError> {
        let bytes = match <[Bytes; 1]>::try_from(pieces) {
            Ok([one]) => one,
            Err(pieces) => Bytes::from(pieces.concat()),
        };
        self.put(key, bytes, meta).await
    }
    /// `Ok(None)` when there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    /// `len` bytes of an object from `offset`; `Ok(None)` when there is no such object or it
    /// is shorter. A backend that can read a range without reading the whole object does.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError> {
        let Some(object) = self.get(key).await? else { return Ok(None) };
        let range = usize::try_from(offset).ok().zip(usize::try_from(offset.saturating_add(len)).ok());
        Ok(range.filter(|&(_, end)| end <= object.bytes.len()).map(|(start, end)| object.bytes.slice(start..end)))
    }
    /// The size of an object in bytes; `Ok(None)` when there is no such object. A backend
    /// that can tell without reading the object does.
    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.get(key).await?.map(|object| object.bytes.len() as u64))
    }
    /// Stores the file at `path` as an object (a replay's MP4: far larger than a segment),
    /// without holding it in memory where the backend can; the file may be moved or removed.
    /// Unlike `put`, a remote backend writes it to the remote directly and returns once it is
    /// there (no spool: the caller is off the live path and can retry).
    async fn put_file(&self, key: &str, path: &std::path::Path, meta: ObjectMeta) -> Result<(), StoreError> {
        let bytes = tokio::fs::read(path).await?;
        self.put(key, bytes.into(), meta).await
    }
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key that starts with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes every object under `prefix`; returns how many were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
    }
    /// Deletes these objects (a remote backend batches them); returns how many were asked.
    async fn delete_many(&self, keys: &[String]) -> Result<usize, StoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
    }
    /// Removes what writes cut short by a crash left under `prefix` (a local folder's
    /// temporary files); only for a prefix nothing is writing to. Returns how many.
    async fn remove_partials(&self, _prefix: &str) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Starts `key` as an object written piece by piece as its data comes (a segment as its
    /// parts are muxed), where the backend can do that without holding it in memory (the
    /// local folder). `Ok(None)`: it cannot; `put` the object whole instead.
    async fn append_to(&self, _key: &str, _meta: ObjectMeta) -> Result<Option<Arc<dyn Appender>>, StoreError> {
        Ok(None)
    }
    /// A URL where a viewer can fetch the object directly (a CDN, the bucket), when the
    /// backend delivers by redirect and the object is readable there now. `None`: serve it
    /// from `get`. Never a URL of an object still waiting in a spool.
    async fn public_url(&self, _key: &str) -> Option<String> {
        None
    }
    /// The origin (`https://host[:port]`) of the URLs `public_url` gives, when it gives any:
    /// the pages allow media from it (Content-Security-Policy).
    fn delivery_origin(&self) -> Option<&str> {
        None
    }
    /// The upload queue's figures, for a backend that spools and uploads (S3); `None` for one
    /// that writes in place.
    fn upload_stats(&self) -> Option<UploadStats> {
        None
    }
}

/// An object being written: readable by range while open, published under its key at
/// `finish` (atomically, as `put` would), discarded if dropped unfinished.
#[async_trait]
pub trait Appender: Send + Sync {
    /// Appends the pieces, in order; once this returns, `read_range` sees them. Meant for
    /// pieces of a part's size: a backend may write them without leaving the caller's thread.
    async fn append(&self, pieces: Vec<Bytes>) -> Result<(), StoreError>;
    /// `len` bytes from `offset` of what is written so far; `Ok(None)` if not all written.
    async fn read_range(&self, offset: u64, len: u64) -> Result<Option<Bytes>, StoreError>;
    /// Publishes the object; `get` finds it once this returns.
    async fn finish(&self) -> Result<(), StoreError>;
}

/// How a file being written starts its name, beside the objects (renamed when complete). No
/// key has a part named so, and a file named so after a crash is a write cut short.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// A random name for a file being written.
pub(crate) fn temp_name() -> String {
    format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>())
}

/// Rejects keys that could escape the store's root or are not plain relative paths.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && !part.starts_with(TEMP_PREFIX))
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'));
    if ok { Ok(()) } else { Err(StoreError::InvalidKey) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/.", "a b", "a/.tmp-x", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["a", "streams/abc/v0/seg00001.m4s", "x-y_z.m3u8"] {
            assert!(check_key(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn stored_headers_map_back() {
        assert_eq!(intern_content_type("video/iso.segment"), "video/iso.segment");
        assert_eq!(intern_content_type("text/evil"), "application/octet-stream");
        assert_eq!(intern_cache_control(IMMUTABLE), IMMUTABLE);
        assert_eq!(intern_cache_control("max-age=9, immutable"), IMMUTABLE);
        assert_eq!(intern_cache_control("whatever"), "no-cache");
        assert!(ObjectMeta::new("video/mp4", IMMUTABLE).is_immutable());
        assert!(!ObjectMeta::new("application/vnd.apple.mpegurl", "no-cache").is_immutable());
    }
}
