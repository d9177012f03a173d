//! hawker's domain and its HTTP face: users and roles, streams and their lifecycle, HLS
//! delivery. Knows axum, sqlx and the storage trait; RTMP and GStreamer stay behind
//! [`LiveControl`], which the composition root implements.

pub mod db;
mod http;
pub mod lifecycle;
pub mod model;
pub mod secrets;
pub mod settings;

use std::sync::Arc;

use async_trait::async_trait;
use hawker_storage::Store;

pub use db::{Db, DbError};
pub use http::router;

/// What the API asks of the live media side. Declared here, implemented by the root.
#[async_trait]
pub trait LiveControl: Send + Sync + 'static {
    /// Disconnects the stream's publisher, if one is connected.
    fn disconnect(&self, stream_id: &str);
    /// Stops packaging the stream; with `save`, its replay playlist is finalised. When this
    /// returns no more media objects of the stream are written.
    async fn finish(&self, stream_id: &str, playback_id: &str, save: bool) -> anyhow::Result<()>;
}

/// Public addresses printed in API responses.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// e.g. `rtmp://example.com:1935/live`: the OBS "Server" field.
    pub rtmp: String,
    /// e.g. `http://example.com:8080`: base of playback URLs.
    pub http: String,
}

impl PublicUrls {
    pub fn playback(&self, playback_id: &str) -> String {
        format!("{}/hls/{playback_id}/index.m3u8", self.http)
    }
}

/// Everything the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub store: Arc<dyn Store>,
    pub live: Arc<dyn LiveControl>,
    pub urls: Arc<PublicUrls>,
}

/// Storage prefix of every object of one stream.
pub fn stream_prefix(playback_id: &str) -> String {
    format!("streams/{playback_id}/")
}
