//! The seam between ingest, packager and API: the ingest's `PublishGate` (may this key
//! publish? where does its media go?) and the API's `LiveControl` (disconnect, finish).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use hawker_api::Db;
use hawker_api::model::PublishTicket;
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
    /// Ends the current publisher's connection; cancelled once that publisher is gone.
    kick: CancellationToken,
}

impl Drop for OnAir {
    /// Whoever stops tracking a stream also ends its publisher's connection.
    fn drop(&mut self) {
        self.kick.cancel();
    }
}

impl Live {
    pub fn new(db: Db, packager: Packager) -> Self {
        Self { db, packager, on_air: Mutex::new(HashMap::new()) }
    }

    fn on_air(&self) -> std::sync::MutexGuard<'_, HashMap<String, OnAir>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.on_air.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts packaging a publish of an authorised stream. A publisher still connected to the
    /// stream is taken over: its connection is closed and the new one continues the playlist.
    async fn start(&self, ticket: &PublishTicket) -> anyhow::Result<(PublishFeed, CancellationToken)> {
        let existing = self.on_air().get(&ticket.stream_id).map(|s| s.packager.clone());
        let packager = match existing {
            Some(packager) => packager,
            None => self.packager.open(&ticket.playback_id).await?,
        };
        let feed = packager.start_publish()?;
        let kick = CancellationToken::new();
        let on_air = OnAir { packager, kick: kick.clone() };
        // Dropping the replaced entry kicks the previous publisher, if one is still connected.
        if let Some(previous) = self.on_air().insert(ticket.stream_id.clone(), on_air)
            && !previous.kick.is_cancelled()
        {
            tracing::info!(stream = %ticket.stream_id, "publisher taken over by a new connection");
        }
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
            Ok(Err(denied)) => {
                // The publisher learns only "invalid stream key"; the reason stays here.
                tracing::info!(peer = %request.peer, reason = ?denied, "publish refused");
                return Err(Refusal::BadKey);
            }
            Err(e) => {
                tracing::error!("publish check failed: {e}");
                return Err(Refusal::Unavailable);
            }
        };
        match self.start(&ticket).await {
            Ok((feed, kick)) => {
                tracing::info!(stream = %ticket.stream_id, peer = %request.peer, publish = ticket.publish_seq, "stream is live");
                let sink = LiveSink {
                    feed,
                    db: self.db.clone(),
                    stream_id: ticket.stream_id.clone(),
                    publish_seq: ticket.publish_seq,
                    gone: kick.clone(),
                    runtime: tokio::runtime::Handle::current(),
                };
                Ok(Publish { sink, kick, label: ticket.stream_id })
            }
            Err(e) => {
                tracing::error!(stream = %ticket.stream_id, "could not start packaging: {e:#}");
                let _ = self.db.publisher_gone(&ticket.stream_id, ticket.publish_seq).await;
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
    publish_seq: i64,
    /// The publish's kick token, cancelled on the way out: marks this publisher gone.
    gone: CancellationToken,
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
        self.gone.cancel();
        self.feed.end();
        tracing::info!(stream = %self.stream_id, ?reason, "publisher left");
        // The stream waits for its publisher to come back (unless a new one took over).
        let (db, stream_id, publish_seq) = (self.db, self.stream_id, self.publish_seq);
        self.runtime.spawn(async move {
            if let Err(e) = db.publisher_gone(&stream_id, publish_seq).await {
                tracing::error!(stream = %stream_id, "could not record the publisher leaving: {e}");
            }
        });
    }
}
