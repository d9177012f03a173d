//! Live playlists compressed once per version, not once per viewer. Every LL-HLS viewer of a
//! stream asks for the same playlist after each part (their blocking reloads all wake on
//! it), and a browser accepts brotli: compressing per request made that the dominant cost of
//! a viewer (0.098 CPU-s per viewer-minute at 1,000 viewers, and half of them fell behind).
//! Here the first viewer to ask for a version in a coding compresses it; the others share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::coding::{Coding, Effort, compress};

/// The live streams' playlists now, by stream, then by (rendition, delta update), in the
/// codings asked for so far.
#[derive(Default)]
pub struct CompressedPlaylists {
    streams: Mutex<HashMap<String, Vec<(String, bool, Arc<Version>)>>>,
}

/// One playlist version (`text`) and what it compresses to.
struct Version {
    text: Bytes,
    brotli: OnceCell<Bytes>,
    gzip: OnceCell<Bytes>,
}

/// Above this a playlist (a long live window) is compressed off the async workers.
const COMPRESS_INLINE: usize = 64 * 1024;

impl CompressedPlaylists {
    /// Forgets the streams `on_air` no longer knows (ended, or let go to another node).
    pub fn sweep(&self, on_air: impl Fn(&str) -> bool) {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).retain(|id, _| on_air(id));
    }

    /// `text`, the live playlist of `stream_id`'s `rendition` now (its delta update with
    /// `delta`), in `coding`. A stream seen for the first time sweeps out the streams
    /// `on_air` no longer knows, so the table holds only what is live, plus the streams ended
    /// since the last sweep ([`Self::sweep`] runs every few seconds too).
    pub async fn get(
        &self,
        stream_id: &str,
        (rendition, delta): (&str, bool),
        text: Bytes,
        coding: Coding,
        on_air: impl Fn(&str) -> bool,
    ) -> Bytes {
        let version = {
            let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            if !streams.contains_key(stream_id) {
                streams.retain(|id, _| on_air(id));
                streams.insert(stream_id.to_owned(), Vec::new());
            }
            let playlists = streams.get_mut(stream_id).expect("inserted above");
            let slot = playlists.iter().position(|(r, d, _)| r == rendition && *d == delta);
            // The same bytes: the table holds them, so the allocation cannot have been reused
            // for another text; else compare the texts. A delta update that skips nothing is
            // the whole playlist: one version for both.
            let known = slot
                .map(|at| &playlists[at].2)
                .filter(|v| same(&v.text, &text))
                .or_else(|| playlists.iter().map(|(_, _, v)| v).find(|v| same(&v.text, &text)))
                .cloned();
            let version =
                known.unwrap_or_else(|| Arc::new(Version { text, brotli: OnceCell::new(), gzip: OnceCell::new() }));
            match slot {
                Some(at) => playlists[at].2 = version.clone(),
                None => playlists.push((rendition.to_owned(), delta, version.clone())),
            }
            version
        };
        let cell = match coding {
            Coding::Identity => return version.text.clone(),
            Coding::Brotli => &version.brotli,
            Coding::Gzip => &version.gzip,
        };
        // The first viewer of a version compresses it; those who come meanwhile wait for it
        // (without holding a worker) rather than compress it again.
        let compressed = cell.get_or_init(|| async {
            let text = version.text.clone();
            if text.len() <= COMPRESS_INLINE {
                return Bytes::from(compress(&text, coding, Effort::Quick));
            }
            let compressed = tokio::task::spawn_blocking(move || compress(&text, coding, Effort::Quick));
            Bytes::from(compressed.await.expect("compressing in memory cannot fail"))
        });
        compressed.await.clone()
    }

    /// How many streams the table holds.
    #[cfg(test)]
    fn streams(&self) -> usize {
        self.streams.lock().unwrap().len()
    }
}

fn same(a: &Bytes, b: &Bytes) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unbrotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &data[..], &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn a_version_is_compressed_once_and_a_new_one_again() {
        let cache = CompressedPlaylists::default();
        let on_air = |_: &str| true;
        let first = Bytes::from("#EXTM3U\n#EXT-X-PART:URI=\"seg000001.0.m4s\"\n".repeat(20));
        let a = cache.get("s1", ("v0", false), first.clone(), Coding::Brotli, on_air).await;
        // Another request for the same version (here a copy of its bytes) shares the result.
        let b = cache.get("s1", ("v0", false), Bytes::copy_from_slice(&first), Coding::Brotli, on_air).await;
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(unbrotli(&a), first);
        assert!(a.len() < first.len());
        // A delta update that skips nothing is the same text: compressed once for both.
        let delta = cache.get("s1", ("v0", true), first.clone(), Coding::Brotli, on_air).await;
        assert_eq!(delta.as_ptr(), a.as_ptr());
        let skipping = Bytes::from_static(b"#EXTM3U\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n");
        let delta = cache.get("s1", ("v0", true), skipping.clone(), Coding::Brotli, on_air).await;
        assert_eq!(unbrotli(&delta), skipping);
        let gzip = cache.get("s1", ("v0", false), first.clone(), Coding::Gzip, on_air).await;
        assert_eq!(&gzip[..2], [0x1f, 0x8b]);
        assert_eq!(cache.get("s1", ("v0", false), first.clone(), Coding::Identity, on_air).await, first);
        // A new version replaces the old.
        let second = Bytes::from(format!(
            "{first}#EXT-X-PART:URI=\"seg000001.1.m4s\"\n",
            first = std::str::from_utf8(&first).unwrap()
        ));
        let c = cache.get("s1", ("v0", false), second.clone(), Coding::Brotli, on_air).await;
        assert_eq!(unbrotli(&c), second);
        // A request that read the older text just before is answered with the older text.
        let late = cache.get("s1", ("v0", false), first.clone(), Coding::Brotli, on_air).await;
        assert_eq!(unbrotli(&late), first);
        // A long window's playlist is compressed off the workers, to the same result.
        let long = Bytes::from(std::str::from_utf8(&second).unwrap().repeat(100));
        assert!(long.len() > COMPRESS_INLINE);
        let compressed = cache.get("s1", ("v1", false), long.clone(), Coding::Brotli, on_air).await;
        assert_eq!(unbrotli(&compressed), long);
    }

    #[tokio::test]
    async fn ended_streams_are_swept_by_the_next_new_one() {
        let cache = CompressedPlaylists::default();
        let text = Bytes::from_static(b"#EXTM3U\n");
        for id in ["s1", "s2", "s3"] {
            cache.get(id, ("v0", false), text.clone(), Coding::Gzip, |_| true).await;
        }
        assert_eq!(cache.streams(), 3);
        cache.get("s4", ("v0", false), text.clone(), Coding::Gzip, |id| id == "s2").await;
        assert_eq!(cache.streams(), 2, "s2 and s4 remain");
        cache.sweep(|id| id == "s4");
        assert_eq!(cache.streams(), 1);
    }
}
