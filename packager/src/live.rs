//! A stream's live HLS in memory: each rendition's live playlist and its delta update as last
//! rendered, the parts of the segment being built, the live edge and the progress blocking
//! reloads wait on. The writer keeps it current; viewers' requests are answered from it
//! without going to storage for a playlist (segments are stored, for S3/CDN delivery and the
//! replay).
//!
//! LL-HLS parts are never stored as objects of their own: a part of the open segment is
//! served from memory, a part of a complete segment is read as a byte range of the stored
//! segment, which is its parts end to end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::Store;
use tokio::sync::watch;

use crate::{Progress, lock};

/// Complete segments whose parts stay downloadable: those the live playlist lists parts for,
/// and some more for players holding an older playlist (RFC 8216bis §6.2.2 asks for three
/// target durations after a part leaves the playlist).
const EXTRA_PART_SEGMENTS: usize = 4;

/// Cheap to clone; every clone sees the same stream.
#[derive(Clone)]
pub struct LiveState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    /// How many complete segments' parts are kept downloadable.
    closed_kept: usize,
    progress: watch::Sender<Progress>,
    renditions: Mutex<Vec<Rendition>>,
    /// Program date-time of the end of the source's newest part or segment.
    live_edge: Mutex<Option<DateTime<Utc>>>,
}

struct Rendition {
    name: String,
    playlist: Option<Bytes>,
    delta: Option<Bytes>,
    /// MSN of the segment being built, and its parts so far.
    open: Option<(u64, Vec<OpenPart>)>,
    /// Recent complete segments: where each is stored and its parts' sizes, oldest first.
    closed: VecDeque<Closed>,
}

/// A part of the segment being built: the muxer's buffers as they came (the frames are the
/// publisher's own bytes, not copies), joined into one the first time a player asks.
struct OpenPart {
    pieces: Vec<Bytes>,
    joined: std::sync::OnceLock<Bytes>,
}

impl OpenPart {
    fn len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len() as u64).sum()
    }

    fn bytes(&self) -> Bytes {
        self.joined.get_or_init(|| Bytes::from(self.pieces.concat())).clone()
    }
}

struct Closed {
    msn: u64,
    key: String,
    part_sizes: Vec<u64>,
}

impl LiveState {
    /// `live_window`: the complete segments the live playlist lists parts for.
    pub(crate) fn new(store: Arc<dyn Store>, live_window: usize, renditions: &[String], progress: Progress) -> Self {
        let renditions = renditions.iter().map(|name| Rendition {
            name: name.clone(),
            playlist: None,
            delta: None,
            open: None,
            closed: VecDeque::new(),
        });
        Self {
            inner: Arc::new(Shared {
                store,
                closed_kept: live_window.max(1) + EXTRA_PART_SEGMENTS,
                progress: watch::Sender::new(progress),
                renditions: Mutex::new(renditions.collect()),
                live_edge: Mutex::new(None),
            }),
        }
    }

    /// How far the live playlists have got; changes after each part or segment.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// A rendition's live playlist now, or with `delta` its `_HLS_skip` delta update (the
    /// whole playlist where there is none). `None` before its first part or segment.
    pub fn playlist(&self, rendition: &str, delta: bool) -> Option<Bytes> {
        let renditions = lock(&self.inner.renditions);
        let r = renditions.iter().find(|r| r.name == rendition)?;
        if delta { r.delta.clone().or_else(|| r.playlist.clone()) } else { r.playlist.clone() }
    }

    /// Part `index` of segment `msn`: from memory while the segment is being built, then as
    /// a range of the stored segment. `None`: no such part (any more).
    pub async fn part(&self, rendition: &str, msn: u64, index: u64) -> Option<Bytes> {
        let index = usize::try_from(index).ok()?;
        let (key, offset, len) = {
            let renditions = lock(&self.inner.renditions);
            let r = renditions.iter().find(|r| r.name == rendition)?;
            match &r.open {
                Some((open, parts)) if *open == msn => return parts.get(index).map(OpenPart::bytes),
                _ => {}
            }
            let closed = r.closed.iter().find(|c| c.msn == msn)?;
            let len = *closed.part_sizes.get(index)?;
            (closed.key.clone(), closed.part_sizes[..index].iter().sum::<u64>(), len)
        };
        match self.inner.store.get_range(&key, offset, len).await {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(key, %err, "reading a part of a stored segment failed");
                None
            }
        }
    }

    /// Program date-time of the newest media in the live playlist.
    pub fn live_edge(&self) -> Option<DateTime<Utc>> {
        *lock(&self.inner.live_edge)
    }

    pub(crate) fn progress_sender(&self) -> &watch::Sender<Progress> {
        &self.inner.progress
    }

    pub(crate) fn set_playlists(&self, r: usize, playlist: Bytes, delta: Option<Bytes>) {
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r) {
            rendition.playlist = Some(playlist);
            rendition.delta = delta;
        }
    }

    /// A part of segment `msn`: it is served from here while the segment is open.
    pub(crate) fn add_part(&self, r: usize, msn: u64, pieces: Vec<Bytes>) {
        let part = OpenPart { pieces, joined: std::sync::OnceLock::new() };
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r) {
            match &mut rendition.open {
                Some((open, parts)) if *open == msn => parts.push(part),
                open => *open = Some((msn, vec![part])),
            }
        }
    }

    /// The open segment of rendition `r` is complete and stored under `key` (`None`: lost):
    /// its parts are read from there from now on.
    pub(crate) fn close_segment(&self, r: usize, key: Option<String>) {
        let kept = self.inner.closed_kept;
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r)
            && let Some((msn, parts)) = rendition.open.take()
            && let Some(key) = key
        {
            let part_sizes = parts.iter().map(OpenPart::len).collect();
            rendition.closed.push_back(Closed { msn, key, part_sizes });
            while rendition.closed.len() > kept {
                rendition.closed.pop_front();
            }
        }
    }

    pub(crate) fn set_live_edge(&self, edge: DateTime<Utc>) {
        *lock(&self.inner.live_edge) = Some(edge);
    }

    /// The stream is over: nothing is served from memory any more.
    pub(crate) fn end(&self) {
        for rendition in lock(&self.inner.renditions).iter_mut() {
            rendition.playlist = None;
            rendition.delta = None;
            rendition.open = None;
            rendition.closed.clear();
        }
        self.inner.progress.send_modify(|p| p.ended = true);
    }
}
