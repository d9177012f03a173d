//! A stream's live HLS in memory: each rendition's live playlist and its delta update as last
//! rendered, the parts of the segment being built, the live edge and the progress blocking
//! reloads wait on. The writer keeps it current; viewers' requests are answered from it
//! without going to storage (the objects are still stored, for S3/CDN delivery and the replay).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::{Progress, lock};

/// Cheap to clone; every clone sees the same stream.
#[derive(Clone)]
pub struct LiveState {
    inner: Arc<Shared>,
}

struct Shared {
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
    open: Option<(u64, Vec<Bytes>)>,
}

impl LiveState {
    pub(crate) fn new(renditions: &[String], progress: Progress) -> Self {
        let renditions =
            renditions.iter().map(|name| Rendition { name: name.clone(), playlist: None, delta: None, open: None });
        Self {
            inner: Arc::new(Shared {
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

    /// Part `index` of segment `msn` while that segment is being built; older parts are read
    /// from storage.
    pub fn part(&self, rendition: &str, msn: u64, index: u64) -> Option<Bytes> {
        let renditions = lock(&self.inner.renditions);
        let (open, parts) = renditions.iter().find(|r| r.name == rendition)?.open.as_ref()?;
        (*open == msn).then(|| parts.get(usize::try_from(index).ok()?).cloned()).flatten()
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

    /// A part of segment `msn` was stored: it is served from here while the segment is open.
    pub(crate) fn add_part(&self, r: usize, msn: u64, bytes: Bytes) {
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r) {
            match &mut rendition.open {
                Some((open, parts)) if *open == msn => parts.push(bytes),
                open => *open = Some((msn, vec![bytes])),
            }
        }
    }

    /// The open segment of rendition `r` is complete (or lost): its parts are read from storage.
    pub(crate) fn close_segment(&self, r: usize) {
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r) {
            rendition.open = None;
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
        }
        self.inner.progress.send_modify(|p| p.ended = true);
    }
}
