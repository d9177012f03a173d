//! Timestamp sanity for one publish: what the sink sees is non-decreasing per track and never
//! jumps by more than `max_jump`, whatever the publisher sends.
//!
//! FLV/RTMP timestamps are decode times, so each track's must not go backwards. A publisher
//! whose clock jumps (an encoder restart, a relay switching sources, the 32-bit wrap after 49
//! days) is re-based: one offset, shared by audio and video so their sync is kept, is added to
//! every later timestamp, chosen so that the tag that jumped continues right after the previous
//! tag of its track (plus one frame duration, learned from the track).
//!
//! What counts as a jump:
//! - backwards, beyond [`BACKWARD_TOLERANCE`], from the previous tag of the same track (less than
//!   that is jitter: the tag is clamped to the previous timestamp);
//! - forwards, by more than `max_jump`, from the latest timestamp of *either* track. Measuring
//!   forward jumps against both tracks means a track that merely paused (audio muted for a while
//!   by a sender that stops sending it) resumes without a re-base while the other kept the clock;
//! - the first tag of a track more than `max_jump` away from the other track.

use std::time::Duration;

/// Backward steps up to this are jitter, clamped rather than re-based.
pub const BACKWARD_TOLERANCE: Duration = Duration::from_millis(100);
const DEFAULT_VIDEO_FRAME_MS: i64 = 33;
/// 1024 AAC samples at 44.1 kHz.
const DEFAULT_AUDIO_FRAME_MS: i64 = 23;
/// Steps above this are not taken as a track's frame duration.
const MAX_FRAME_MS: i64 = 1000;
/// A publish whose first timestamp is past this (24.8 days) is moved to start at 0, so that its
/// output has room to grow before u32 runs out.
const FAR_START_MS: i64 = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video = 0,
    Audio = 1,
}

/// A re-base: `jump_ms` is how far the incoming timestamp was from where its track stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discontinuity {
    pub track: Track,
    pub jump_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct TrackState {
    last_out: Option<i64>,
    frame_ms: i64,
}

#[derive(Debug)]
pub struct Timeline {
    max_jump_ms: i64,
    tolerance_ms: i64,
    /// Added to every incoming timestamp.
    offset: i64,
    tracks: [TrackState; 2],
}

impl Timeline {
    pub fn new(max_jump: Duration) -> Self {
        Self {
            max_jump_ms: i64::try_from(max_jump.as_millis()).unwrap_or(i64::MAX),
            tolerance_ms: BACKWARD_TOLERANCE.as_millis() as i64,
            offset: 0,
            tracks: [
                TrackState { last_out: None, frame_ms: DEFAULT_VIDEO_FRAME_MS },
                TrackState { last_out: None, frame_ms: DEFAULT_AUDIO_FRAME_MS },
            ],
        }
    }

    /// The timestamp to give the sink for a tag of `track` that arrived with `raw`.
    pub fn normalize(&mut self, track: Track, raw: u32) -> (u32, Option<Discontinuity>) {
        let raw = i64::from(raw);
        let own = self.tracks[track as usize];
        let other = self.tracks[1 - track as usize];
        let head = match (own.last_out, other.last_out) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let candidate = raw + self.offset;
        let mut discontinuity = None;
        let out = match head {
            None if raw >= FAR_START_MS => {
                // Leave room below u32::MAX: a publisher starting this late starts at 0 instead.
                self.offset = -raw;
                0
            }
            None => candidate,
            Some(head) => {
                let forward = candidate - head > self.max_jump_ms;
                let backward = match own.last_out {
                    Some(last) => candidate < last - self.tolerance_ms,
                    None => candidate < head - self.max_jump_ms,
                };
                if forward || backward {
                    let target = own.last_out.map_or(head, |last| last + own.frame_ms);
                    discontinuity = Some(Discontinuity { track, jump_ms: candidate - own.last_out.unwrap_or(head) });
                    self.offset = target - raw;
                    target
                } else {
                    // Jitter backwards is clamped.
                    own.last_out.map_or(candidate, |last| candidate.max(last))
                }
            }
        };
        let out = out.clamp(0, i64::from(u32::MAX));
        let state = &mut self.tracks[track as usize];
        if discontinuity.is_none()
            && let Some(last) = state.last_out
            && (1..=MAX_FRAME_MS).contains(&(out - last))
        {
            state.frame_ms = out - last;
        }
        state.last_out = Some(out);
        // `out` was clamped into u32's range.
        (out as u32, discontinuity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Track::{Audio, Video};

    const HOUR: u32 = 3_600_000;

    fn timeline() -> Timeline {
        Timeline::new(Duration::from_secs(5))
    }

    /// Feeds `(track, raw)` tags; returns the output timestamps and the discontinuity count.
    fn run(t: &mut Timeline, tags: &[(Track, u32)]) -> (Vec<u32>, usize) {
        let mut jumps = 0;
        let out = tags
            .iter()
            .map(|&(track, raw)| {
                let (ts, d) = t.normalize(track, raw);
                jumps += usize::from(d.is_some());
                ts
            })
            .collect();
        (out, jumps)
    }

    /// Interleaved 30 fps video and ~43 Hz audio from `start` for `ms`.
    fn av(start: u32, ms: u32) -> Vec<(Track, u32)> {
        let mut tags = Vec::new();
        let (mut v, mut a) = (0u32, 0u32);
        while v < ms || a < ms {
            if v <= a {
                tags.push((Video, start + v));
                v += 33;
            } else {
                tags.push((Audio, start + a));
                a += 23;
            }
        }
        tags
    }

    /// Each track is non-decreasing and steps by at most `max_step` (if given), and the head of
    /// both together never moves forward by more than the 5 s limit in one tag.
    fn assert_sane(tags: &[(Track, u32)], out: &[u32], max_step: Option<u32>) {
        let mut head = 0;
        for (i, &o) in out.iter().enumerate() {
            if i > 0 {
                assert!(o <= head + 5000, "head jumped from {head} to {o}");
            }
            head = head.max(o);
        }
        for track in [Video, Audio] {
            let ts: Vec<u32> = tags.iter().zip(out).filter(|((t, _), _)| *t == track).map(|(_, &o)| o).collect();
            for w in ts.windows(2) {
                assert!(w[1] >= w[0], "{track:?} went backwards: {w:?}");
                if let Some(max) = max_step {
                    assert!(w[1] - w[0] <= max, "{track:?} jumped: {w:?}");
                }
            }
        }
    }

    #[test]
    fn a_clean_stream_passes_unchanged() {
        let tags = av(0, 10_000);
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!(jumps, 0);
        assert_eq!(out, tags.iter().map(|t| t.1).collect::<Vec<_>>());
        // A stream starting at a large timestamp is not moved either.
        let tags = av(7 * HOUR, 1000);
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!((out[0], jumps), (7 * HOUR, 0));
    }

    #[test]
    fn jumps_forward_and_back_by_hours_are_rebased_continuously() {
        let mut tags = av(0, 2000);
        tags.extend(av(5 * HOUR, 2000));
        tags.extend(av(1000, 2000));
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!(jumps, 2, "one re-base per jump: the other track follows the shared offset");
        assert_sane(&tags, &out, Some(100));
        let last = *out.last().expect("tags");
        assert!((5900..=6100).contains(&last), "about 6 s of media: {last}");
    }

    #[test]
    fn the_tag_after_a_jump_continues_one_frame_after_its_track() {
        let mut t = timeline();
        let tags = [(Video, 0), (Video, 40), (Video, 80), (Video, 80 + HOUR)];
        let (out, _) = run(&mut t, &tags);
        assert_eq!(out, [0, 40, 80, 120]);
        assert_eq!(t.normalize(Video, 120 + HOUR).0, 160);
    }

    #[test]
    fn small_backward_jitter_is_clamped_not_rebased() {
        let tags = [(Audio, 100), (Audio, 123), (Audio, 120), (Audio, 146)];
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!((out, jumps), (vec![100, 123, 123, 146], 0));
    }

    #[test]
    fn a_track_that_pauses_resumes_without_a_rebase() {
        let mut tags = av(0, 1000);
        // Audio stops for 8 s while video carries on, then comes back in sync.
        tags.extend((1000..9000).step_by(33).map(|v| (Video, v)));
        tags.extend(av(9000, 1000));
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!(jumps, 0);
        assert_eq!(out, tags.iter().map(|t| t.1).collect::<Vec<_>>());
    }

    #[test]
    fn a_first_tag_far_from_the_other_track_is_rebased() {
        let tags = [(Video, 0), (Video, 33), (Audio, 3 * HOUR), (Audio, 3 * HOUR + 23)];
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!((out, jumps), (vec![0, 33, 33, 56], 1));
        // But a track starting a second or two off its partner keeps its place (A/V sync).
        let tags = [(Audio, 0), (Audio, 2000), (Video, 100)];
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!((out, jumps), (vec![0, 2000, 100], 0));
    }

    #[test]
    fn the_32_bit_wrap_is_a_continuation() {
        let start = u32::MAX - 500;
        let tags: Vec<(Track, u32)> = (0..40u32).map(|i| (Video, start.wrapping_add(i * 33))).collect();
        let (out, jumps) = run(&mut timeline(), &tags);
        assert_eq!(jumps, 1);
        assert_sane(&tags, &out, Some(33));
        assert_eq!((out[0], out[39]), (0, 39 * 33), "a late start is moved to 0");
    }

    #[test]
    fn any_input_comes_out_sane() {
        // A deterministic pseudo-random mix of steady runs, jitter and wild values.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut tags = Vec::new();
        let (mut v, mut a) = (0u32, 0u32);
        for _ in 0..20_000 {
            let r = next();
            let track = if r & 1 == 0 { Video } else { Audio };
            let clock = if track == Video { &mut v } else { &mut a };
            *clock = match r % 97 {
                0 => next() as u32,
                1 => clock.saturating_sub(50),
                _ => clock.wrapping_add((r >> 8) as u32 % 60),
            };
            tags.push((track, *clock));
        }
        let (out, _) = run(&mut timeline(), &tags);
        assert_sane(&tags, &out, None);
    }
}
