//! Live playlists compressed once per version, not once per viewer. Every LL-HLS viewer of a
//! stream asks for the same playlist after each part (their blocking reloads all wake on
//! it), and a browser accepts brotli: compressing per request made that the dominant cost of
//! a viewer (0.098 CPU-s per viewer-minute at 1,000 viewers, and half of them fell behind).
//! Here the first viewer to ask for a version in a coding compresses it; the others share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::coding::{Coding, Effort, compress};

/// One stream's playlists, by (rendition, delta update), in the codings asked for so far.
#[derive(Default)]
pub struct CompressedPlaylists {
    streams: Mutex<HashMap<String, Vec<Arc<Versions>>>>,
}

/// One playlist version (`text`) and what it compresses to.
struct Versions {
    rendition: String,
    delta: bool,
    text: Bytes,
    brotli: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
}

impl CompressedPlaylists {
    /// `text`, the live playlist of `stream_id`'s `rendition` now (its delta update with
    /// `delta`), in `coding`. A stream seen for the first time sweeps out the streams
    /// `on_air` no longer knows, so the table holds only what is live, plus the ended streams
    /// until the next new one.
    pub fn get(
        &self,
        stream_id: &str,
        (rendition, delta): (&str, bool),
        text: Bytes,
        coding: Coding,
        on_air: impl Fn(&str) -> bool,
    ) -> Bytes {
        let versions = {
            let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            if !streams.contains_key(stream_id) {
                streams.retain(|id, _| on_air(id));
                streams.insert(stream_id.to_owned(), Vec::new());
            }
            let playlists = streams.get_mut(stream_id).expect("inserted above");
            let at = playlists.iter().position(|v| v.rendition == rendition && v.delta == delta);
            match at {
                // The same bytes: the table holds them, so the allocation cannot have been
                // reused for another text; else compare the texts.
                Some(at) if same(&playlists[at].text, &text) => playlists[at].clone(),
                _ => {
                    let fresh = Arc::new(Versions {
                        rendition: rendition.to_owned(),
                        delta,
                        text,
                        brotli: OnceLock::new(),
                        gzip: OnceLock::new(),
                    });
                    match at {
                        Some(at) => playlists[at] = fresh.clone(),
                        None => playlists.push(fresh.clone()),
                    }
                    fresh
                }
            }
        };
        let cell = match coding {
            Coding::Identity => return versions.text.clone(),
            Coding::Brotli => &versions.brotli,
            Coding::Gzip => &versions.gzip,
        };
        // A few hundred microseconds for the first viewer of a version; those who come
        // meanwhile wait for it rather than compress it again.
        cell.get_or_init(|| compress(&versions.text, coding, Effort::Quick).into()).clone()
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

    #[test]
    fn a_version_is_compressed_once_and_a_new_one_again() {
        let cache = CompressedPlaylists::default();
        let on_air = |_: &str| true;
        let first = Bytes::from("#EXTM3U\n#EXT-X-PART:URI=\"seg000001.0.m4s\"\n".repeat(20));
        let a = cache.get("s1", ("v0", false), first.clone(), Coding::Brotli, on_air);
        // Another request for the same version (here a copy of its bytes) shares the result.
        let b = cache.get("s1", ("v0", false), Bytes::copy_from_slice(&first), Coding::Brotli, on_air);
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(unbrotli(&a), first);
        assert!(a.len() < first.len());
        // Each rendition, delta update and coding is its own.
        let delta = cache.get("s1", ("v0", true), first.clone(), Coding::Brotli, on_air);
        assert_ne!(delta.as_ptr(), a.as_ptr());
        let gzip = cache.get("s1", ("v0", false), first.clone(), Coding::Gzip, on_air);
        assert_eq!(&gzip[..2], [0x1f, 0x8b]);
        assert_eq!(cache.get("s1", ("v0", false), first.clone(), Coding::Identity, on_air), first);
        // A new version replaces the old.
        let second = Bytes::from(format!(
            "{first}#EXT-X-PART:URI=\"seg000001.1.m4s\"\n",
            first = std::str::from_utf8(&first).unwrap()
        ));
        let c = cache.get("s1", ("v0", false), second.clone(), Coding::Brotli, on_air);
        assert_eq!(unbrotli(&c), second);
    }

    #[test]
    fn ended_streams_are_swept_by_the_next_new_one() {
        let cache = CompressedPlaylists::default();
        let text = Bytes::from_static(b"#EXTM3U\n");
        for id in ["s1", "s2", "s3"] {
            cache.get(id, ("v0", false), text.clone(), Coding::Gzip, |_| true);
        }
        assert_eq!(cache.streams(), 3);
        cache.get("s4", ("v0", false), text.clone(), Coding::Gzip, |id| id == "s2");
        assert_eq!(cache.streams(), 2, "s2 and s4 remain");
    }
}
