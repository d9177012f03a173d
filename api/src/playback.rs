//! Which streams can be played, by playback id, in memory: HLS requests never query the
//! database. The repository keeps it current as it applies each status change.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::model::{Stream, StreamStatus};

/// A playable stream (live, reconnecting or archived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playback {
    pub stream_id: String,
    pub status: StreamStatus,
}

#[derive(Clone, Default)]
pub struct PlaybackIndex(Arc<RwLock<HashMap<String, Playback>>>);

impl PlaybackIndex {
    pub fn get(&self, playback_id: &str) -> Option<Playback> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(playback_id).cloned()
    }

    /// Whether any stream has `status`.
    pub(crate) fn any(&self, status: StreamStatus) -> bool {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().any(|p| p.status == status)
    }

    /// Records a stream's status as the database now holds it.
    pub(crate) fn set(&self, playback_id: &str, stream_id: &str, status: StreamStatus) {
        let mut map = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if status.is_playable() {
            map.insert(playback_id.to_owned(), Playback { stream_id: stream_id.to_owned(), status });
        } else {
            map.remove(playback_id);
        }
    }

    pub(crate) fn apply(&self, stream: &Stream) {
        self.set(&stream.playback_id, &stream.id, stream.status);
    }

    /// Replaces the whole index (at start-up, from the database).
    pub(crate) fn reset(&self, streams: impl IntoIterator<Item = (String, String, StreamStatus)>) {
        let map = streams
            .into_iter()
            .filter(|(_, _, status)| status.is_playable())
            .map(|(playback_id, stream_id, status)| (playback_id, Playback { stream_id, status }))
            .collect();
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = map;
    }
}
