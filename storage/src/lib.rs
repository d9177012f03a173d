//! Object storage: the `Store` trait and its local-folder backend.
//!
//! Keys are `/`-separated relative paths (`streams/abc/v0/seg00001.m4s`). The store knows
//! nothing of HLS or streams: callers give each object its content type and cache policy,
//! and callers decide write order (a segment before the playlist that names it).

mod local;

pub use local::LocalStore;

use async_trait::async_trait;
use bytes::Bytes;

/// How an object is to be served; S3-like backends store it as object metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub content_type: &'static str,
    pub cache_control: &'static str,
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
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores an object atomically: a reader sees the old object or the new one, never a part.
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError>;
    /// `Ok(None)` when there is no such object.
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
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
}

/// Rejects keys that could escape the store's root or are not plain relative paths.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.starts_with(".tmp-"))
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'));
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
}
