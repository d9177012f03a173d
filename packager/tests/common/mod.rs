//! Test input: FLV files made by ffmpeg, read tag by tag and fed to a `PublishFeed` as the
//! ingest would (typed frames, FLV parsed here, in the test, as the ingest does for real).

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use hawker_packager::{PackagerError, PublishFeed};

pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;

pub struct Tag {
    pub kind: u8,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

impl Tag {
    /// A coded AVC keyframe (not the sequence header).
    pub fn is_keyframe(&self) -> bool {
        self.kind == VIDEO && self.body.len() > 5 && self.body[0] >> 4 == 1 && self.body[1] == 1
    }
}

/// The audio and video tags of an FLV file.
pub fn read_flv(path: &Path) -> Vec<Tag> {
    let data = std::fs::read(path).expect("read flv");
    assert_eq!(&data[..3], b"FLV");
    let mut pos = 13;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos];
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let body = Bytes::copy_from_slice(&data[pos + 11..pos + 11 + size]);
        if kind == AUDIO || kind == VIDEO {
            tags.push(Tag { kind, timestamp_ms: ts, body });
        }
        pos += 11 + size + 4;
    }
    tags
}

/// Feeds one AVC or AAC tag body as typed media.
pub fn push(feed: &mut PublishFeed, tag: &Tag) -> Result<(), PackagerError> {
    let body = &tag.body;
    match (tag.kind, body.get(1)) {
        (VIDEO, Some(0)) => feed.video_config(body.slice(5..)),
        (VIDEO, Some(1)) => {
            let cts = i32::from_be_bytes([body[2], body[3], body[4], 0]) >> 8;
            feed.video_frame(tag.timestamp_ms, cts, tag.is_keyframe(), body.slice(5..))
        }
        (AUDIO, Some(0)) => feed.audio_config(body.slice(2..)),
        (AUDIO, Some(1)) => feed.audio_frame(tag.timestamp_ms, body.slice(2..)),
        _ => Ok(()),
    }
}

pub fn push_all(feed: &mut PublishFeed, tags: &[Tag]) {
    for tag in tags {
        push(feed, tag).expect("push accepted");
    }
}
