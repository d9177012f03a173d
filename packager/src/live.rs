//! A stream's live HLS in memory: each rendition's live playlist and its delta update as last
//! rendered, the parts of the segment being built, the live edge and the progress blocking
//! reloads wait on. The writer keeps it current; viewers' requests are answered from it
//! without going to storage for a playlist (segments are stored, for S3/CDN delivery and the
//! replay).
//!
//! LL-HLS parts are never stored as objects of their own: a segment is its parts end to end,
//! and a part is read as a byte range of it. While the segment is open, where the store
//! writes it as it comes (the local folder), only its newest parts stay in memory (those
//! players at the live edge ask for) and older ones are read back from what is written; where
//! it cannot (S3: a segment is uploaded whole), every part of the open segment is in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hawker_storage::{Appender, Store};
use tokio::sync::watch;

use crate::{Progress, lock};

/// Complete segments whose parts stay downloadable: those the live playlist lists parts for,
/// and some more for players holding an older playlist (RFC 8216bis §6.2.2 asks for three
/// target durations after a part leaves the playlist).
const EXTRA_PART_SEGMENTS: usize = 4;

/// Parts of the open segment kept in memory when the segment is also being written: the part
/// a player at the live edge asks for is the newest, or one before it. Each is about 75 KB at
/// 3 Mb/s; older ones are read from the written segment (the page cache, as every part is once
/// its segment is complete).
const OPEN_PARTS_IN_MEMORY: usize = 2;

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
    /// The segment being built.
    open: Option<OpenSegment>,
    /// Recent complete segments: where each is stored and its parts' sizes, oldest first.
    closed: VecDeque<Closed>,
}

struct OpenSegment {
    msn: u64,
    parts: Vec<OpenPart>,
    /// The segment as written so far, while the store writes it as it comes.
    written: Option<Arc<dyn Appender>>,
}

/// A part of the segment being built: the muxer's buffers as they came (the frames are the
/// publisher's own bytes, not copies), joined into one the first time a player asks. Its
/// pieces are let go once it is older than the newest few and `written` holds it.
struct OpenPart {
    pieces: Vec<Bytes>,
    joined: std::sync::OnceLock<Bytes>,
    /// Where it starts in its segment, and its size.
    offset: u64,
    len: u64,
}

impl OpenPart {
    fn in_memory(&self) -> Option<Bytes> {
        if self.pieces.is_empty() && self.len > 0 {
            return None;
        }
        Some(self.joined.get_or_init(|| Bytes::from(self.pieces.concat())).clone())
    }
}

/// Where a part is read from when it is not in memory.
enum Source {
    Open(Arc<dyn Appender>),
    Stored(String),
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
        let (from, offset, len) = {
            let renditions = lock(&self.inner.renditions);
            let r = renditions.iter().find(|r| r.name == rendition)?;
            match &r.open {
                Some(open) if open.msn == msn => {
                    let part = open.parts.get(index)?;
                    if let Some(bytes) = part.in_memory() {
                        return Some(bytes);
                    }
                    (Source::Open(open.written.clone()?), part.offset, part.len)
                }
                _ => {
                    let closed = r.closed.iter().find(|c| c.msn == msn)?;
                    let len = *closed.part_sizes.get(index)?;
                    (Source::Stored(closed.key.clone()), closed.part_sizes[..index].iter().sum::<u64>(), len)
                }
            }
        };
        let read = match &from {
            Source::Open(written) => written.read_range(offset, len).await,
            Source::Stored(key) => self.inner.store.get_range(key, offset, len).await,
        };
        read.unwrap_or_else(|err| {
            tracing::warn!(%err, "reading a part of a segment failed");
            None
        })
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

    /// A part of segment `msn`, served from here while the segment is open. `written`: the
    /// segment as the store writes it, this part included (`None`: not written as it comes, or
    /// a write failed: parts stay in memory from then on).
    pub(crate) fn add_part(&self, r: usize, msn: u64, pieces: Vec<Bytes>, written: Option<Arc<dyn Appender>>) {
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        let mut renditions = lock(&self.inner.renditions);
        let Some(rendition) = renditions.get_mut(r) else { return };
        let open = match &mut rendition.open {
            Some(open) if open.msn == msn => open,
            other => other.insert(OpenSegment { msn, parts: Vec::new(), written: None }),
        };
        let offset = open.parts.last().map_or(0, |p| p.offset + p.len);
        open.parts.push(OpenPart { pieces, joined: std::sync::OnceLock::new(), offset, len });
        // Only while the segment is written as it comes are older parts let go.
        if let Some(written) = written {
            open.written = Some(written);
            if let Some(old) = open.parts.len().checked_sub(OPEN_PARTS_IN_MEMORY + 1) {
                let part = &mut open.parts[old];
                part.pieces = Vec::new();
                part.joined = std::sync::OnceLock::new();
            }
        }
    }

    /// The open segment of rendition `r` is complete and stored under `key` (`None`: lost):
    /// its parts are read from there from now on.
    pub(crate) fn close_segment(&self, r: usize, key: Option<String>) {
        let kept = self.inner.closed_kept;
        if let Some(rendition) = lock(&self.inner.renditions).get_mut(r)
            && let Some(open) = rendition.open.take()
            && let Some(key) = key
        {
            let part_sizes = open.parts.iter().map(|p| p.len).collect();
            rendition.closed.push_back(Closed { msn: open.msn, key, part_sizes });
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

#[cfg(test)]
mod tests {
    use super::*;
    use hawker_storage::LocalStore;

    fn part(n: u8) -> Vec<Bytes> {
        vec![Bytes::from(vec![n; 10]), Bytes::from(vec![n; 5])]
    }

    /// Written as it comes, the open segment keeps only its newest parts in memory and
    /// serves the older ones from what is written; once stored, from the stored segment.
    #[tokio::test]
    async fn open_parts_leave_memory_once_written_and_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let live = LiveState::new(store.clone(), 3, &["v0".to_owned()], Progress::default());
        let meta = hawker_storage::ObjectMeta::new("video/iso.segment", "no-cache");
        let written = store.append_to("s/v0/seg7.m4s", meta).await.unwrap().unwrap();
        for n in 0..6u8 {
            written.append(part(n)).await.unwrap();
            live.add_part(0, 7, part(n), Some(written.clone()));
        }
        {
            let renditions = lock(&live.inner.renditions);
            let open = renditions[0].open.as_ref().unwrap();
            let in_memory: Vec<bool> = open.parts.iter().map(|p| !p.pieces.is_empty()).collect();
            assert_eq!(in_memory, [false, false, false, false, true, true]);
        }
        for n in 0..6u8 {
            assert_eq!(live.part("v0", 7, u64::from(n)).await.unwrap(), Bytes::from(part(n).concat()), "part {n}");
        }
        assert!(live.part("v0", 7, 6).await.is_none());
        written.finish().await.unwrap();
        live.close_segment(0, Some("s/v0/seg7.m4s".to_owned()));
        assert_eq!(live.part("v0", 7, 1).await.unwrap(), Bytes::from(part(1).concat()));
    }
}
