//! The seam between ingest, packager and API: the ingest's `PublishGate` (may this key
//! publish? where does its media go?) and the API's `LiveControl` (disconnect, finish).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use hawker_api::Db;
use hawker_api::model::PublishDenied;
use hawker_ingest::{EndReason, MediaSink, Publish, PublishGate, PublishRequest, Refusal, SinkError};
use hawker_packager::{Packager, PublishFeed, StreamPackager};
use tokio_util::sync::CancellationToken;

/// The RTMP application sellers publish to: `rtmp://host:1935/live`.
pub const RTMP_APP: &str = "live";

pub struct Live {
    db: Db,
    packager: Packager,
    /// Streams being packaged, by stream id; kept across reconnects until the stream ends.
    on_air: Mutex<HashMap<String, OnAir>>,
}

struct OnAir {
    packager: StreamPackager,
    /// Ends the current publisher's connection.
    kick: CancellationToken,
}

impl Live {
    pub fn new(db: Db, packager: Packager) -> Self {
        Self { db, packager, on_air: Mutex::new(HashMap::new()) }
    }

    fn on_air(&self) -> std::sync::MutexGuard<'_, HashMap<String, OnAir>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.on_air.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts packaging a publish of an authorised stream.
    async fn start(&self, stream_id: &str, playback_id: &str) -> anyhow::Result<(PublishFeed, CancellationToken)> {
        let existing = self.on_air().get(stream_id).map(|s| s.packager.clone());
        let packager = match existing {
            Some(packager) => packager,
            None => self.packager.open(playback_id).await?,
        };
        let feed = packager.start_publish()?;
        let kick = CancellationToken::new();
        self.on_air().insert(stream_id.to_owned(), OnAir { packager, kick: kick.clone() });
        Ok((feed, kick))
    }
}

impl PublishGate for Live {
    type Sink = LiveSink;

    async fn authorize(&self, request: PublishRequest) -> Result<Publish<LiveSink>, Refusal> {
        if request.app != RTMP_APP {
            return Err(Refusal::BadApp);
        }
        let ticket = match self.db.begin_publish(request.stream_key.expose()).await {
            Ok(Ok(ticket)) => ticket,
            Ok(Err(PublishDenied::BadKey)) => return Err(Refusal::BadKey),
            Ok(Err(PublishDenied::Busy)) => return Err(Refusal::Busy),
            Err(e) => {
                tracing::error!("publish check failed: {e}");
                return Err(Refusal::Unavailable);
            }
        };
        match self.start(&ticket.stream_id, &ticket.playback_id).await {
            Ok((feed, kick)) => {
                tracing::info!(stream = %ticket.stream_id, peer = %request.peer, "stream is live");
                let sink = LiveSink {
                    feed,
                    db: self.db.clone(),
                    stream_id: ticket.stream_id.clone(),
                    runtime: tokio::runtime::Handle::current(),
                };
                Ok(Publish { sink, kick, label: ticket.stream_id })
            }
            Err(e) => {
                tracing::error!(stream = %ticket.stream_id, "could not start packaging: {e:#}");
                let _ = self.db.publisher_gone(&ticket.stream_id).await;
                Err(Refusal::Unavailable)
            }
        }
    }
}

#[async_trait]
impl hawker_api::LiveControl for Live {
    fn disconnect(&self, stream_id: &str) {
        if let Some(on_air) = self.on_air().get(stream_id) {
            on_air.kick.cancel();
        }
    }

    async fn finish(&self, stream_id: &str, playback_id: &str, save: bool) -> anyhow::Result<()> {
        let on_air = self.on_air().remove(stream_id);
        match on_air {
            Some(on_air) => on_air.packager.finish(save).await?,
            // Nothing is packaging it (e.g. the server restarted since): finalise what is stored.
            None if save => self.packager.finalize_replay(playback_id).await?,
            None => {}
        }
        Ok(())
    }
}

/// One publish's media, on its way into the packager.
pub struct LiveSink {
    feed: PublishFeed,
    db: Db,
    stream_id: String,
    runtime: tokio::runtime::Handle,
}

impl MediaSink for LiveSink {
    fn video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        self.feed.push_video(timestamp_ms, data).map_err(|e| SinkError(e.to_string()))
    }

    fn audio(&mut self, timestamp_ms: u32, data: Bytes) -> Result<(), SinkError> {
        self.feed.push_audio(timestamp_ms, data).map_err(|e| SinkError(e.to_string()))
    }

    fn end(self, reason: EndReason) {
        self.feed.end();
        tracing::info!(stream = %self.stream_id, ?reason, "publisher left");
        // The stream waits for its publisher to come back (or for the seller to end it).
        let (db, stream_id) = (self.db, self.stream_id);
        self.runtime.spawn(async move {
            if let Err(e) = db.publisher_gone(&stream_id).await {
                tracing::error!(stream = %stream_id, "could not record the publisher leaving: {e}");
            }
        });
    }
}
