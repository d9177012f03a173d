//! FLV framing for the pipeline's `appsrc`: the ingest hands us tag bodies, flvdemux wants a file.

/// Tag types of the FLV spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagKind {
    Audio = 8,
    Video = 9,
}

/// The largest body an FLV tag header can describe (24-bit size field).
pub(crate) const MAX_BODY: usize = 0xFF_FFFF;

/// 9-byte FLV header plus the first (zero) PreviousTagSize.
pub(crate) fn file_header(has_audio: bool) -> [u8; 13] {
    // flags: bit 0 video, bit 2 audio.
    let flags = 0x01 | if has_audio { 0x04 } else { 0 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// One whole tag: 11-byte header, body, 4-byte PreviousTagSize. The caller checks `MAX_BODY`.
#[cfg(test)]
pub(crate) fn tag(kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_tag(&mut out, kind, timestamp_ms, body);
    out
}

/// Appends one whole tag (see `tag`) to `out`: FLV is a byte stream, so tags can share a buffer.
pub(crate) fn append_tag(out: &mut Vec<u8>, kind: TagKind, timestamp_ms: u32, body: &[u8]) {
    let len = body.len();
    out.reserve(11 + len + 4);
    out.push(kind as u8);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    let ts = timestamp_ms.to_be_bytes();
    // Lower 24 bits first, then the extended (most significant) byte.
    out.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&((11 + len) as u32).to_be_bytes());
}

/// The presentation time (ms) of an AVC keyframe body at decode time `dts_ms`; `None` for
/// anything that is not a coded keyframe.
pub(crate) fn avc_keyframe_pts(body: &[u8], dts_ms: u32) -> Option<u32> {
    if body.len() < 5 || body[0] >> 4 != 1 || !is_avc_frame(body) {
        return None;
    }
    // CompositionTime: signed 24-bit.
    let cts = i32::from_be_bytes([body[2], body[3], body[4], 0]) >> 8;
    Some(dts_ms.wrapping_add_signed(cts))
}

/// Whether a VIDEODATA body carries a coded AVC frame (not the sequence header / end marker).
pub(crate) fn is_avc_frame(body: &[u8]) -> bool {
    body.len() > 1 && body[0] & 0x0F == 7 && body[1] == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_flags() {
        assert_eq!(file_header(true)[4], 5);
        assert_eq!(file_header(false)[4], 1);
        assert_eq!(&file_header(true)[..3], b"FLV");
    }

    #[test]
    fn tag_layout_with_extended_timestamp() {
        let t = tag(TagKind::Video, 0x0102_0304, &[0xAA, 0xBB]);
        assert_eq!(t.len(), 11 + 2 + 4);
        assert_eq!(t[0], 9);
        assert_eq!(&t[1..4], &[0, 0, 2]);
        assert_eq!(&t[4..8], &[0x02, 0x03, 0x04, 0x01]);
        assert_eq!(&t[8..11], &[0, 0, 0]);
        assert_eq!(&t[11..13], &[0xAA, 0xBB]);
        assert_eq!(&t[13..], &13u32.to_be_bytes());
    }

    #[test]
    fn appended_tags_are_back_to_back() {
        let mut out = Vec::new();
        append_tag(&mut out, TagKind::Audio, 5, &[1, 2, 3]);
        append_tag(&mut out, TagKind::Video, 0x0102_0304, &[0xAA, 0xBB]);
        let audio = tag(TagKind::Audio, 5, &[1, 2, 3]);
        assert_eq!(&out[..audio.len()], &audio[..]);
        assert_eq!(&out[audio.len()..], &tag(TagKind::Video, 0x0102_0304, &[0xAA, 0xBB])[..]);
    }

    #[test]
    fn keyframe_pts() {
        assert_eq!(avc_keyframe_pts(&[0x17, 1, 0, 0, 66, 0], 1000), Some(1066));
        // Negative composition time.
        assert_eq!(avc_keyframe_pts(&[0x17, 1, 0xFF, 0xFF, 0xFE, 0], 1000), Some(998));
        assert_eq!(avc_keyframe_pts(&[0x27, 1, 0, 0, 0, 0], 1000), None);
        assert_eq!(avc_keyframe_pts(&[0x17, 0, 0, 0, 0, 0], 1000), None);
        assert_eq!(avc_keyframe_pts(&[0x17, 1, 0], 1000), None);
    }

    #[test]
    fn avc_frame_detection() {
        assert!(is_avc_frame(&[0x17, 1, 0, 0, 0]));
        assert!(is_avc_frame(&[0x27, 1, 0, 0, 0]));
        assert!(!is_avc_frame(&[0x17, 0, 0, 0, 0]));
        assert!(!is_avc_frame(&[0x17]));
        assert!(!is_avc_frame(&[0x1C, 1]));
    }
}
