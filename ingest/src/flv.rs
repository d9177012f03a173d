//! FLV tag bodies parsed into typed media, once, here (FLV spec v10.1, annex E.4.2 and
//! E.4.3.1; Enhanced RTMP v1). Nothing downstream sees FLV.
//!
//! v1 accepts H.264 and AAC only.

use bytes::Bytes;

/// What a media tag body holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Tag<T> {
    Media(T),
    /// Nothing to forward: no bytes at all (some encoders send these), an AVC end of sequence,
    /// or a body too short to hold what its header announces (counted as dropped).
    Empty,
    Malformed,
}

/// A video tag body's content; the timestamp is the caller's.
#[derive(Debug, PartialEq, Eq)]
pub enum VideoBody {
    /// AVCDecoderConfigurationRecord.
    Config(Bytes),
    /// One access unit of length-prefixed NAL units.
    Frame { keyframe: bool, cts_ms: i32, data: Bytes },
}

/// An audio tag body's content.
#[derive(Debug, PartialEq, Eq)]
pub enum AudioBody {
    /// AudioSpecificConfig.
    Config(Bytes),
    /// One raw AAC frame.
    Frame(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedCodec {
    #[error("video codec id {id} ({name})")]
    Video { id: u8, name: &'static str },
    #[error("enhanced RTMP video '{fourcc}'")]
    EnhancedVideo { fourcc: String },
    #[error("audio sound format {id} ({name})")]
    Audio { id: u8, name: &'static str },
}

const AVC: u8 = 7;
const AAC: u8 = 10;
/// Enhanced RTMP: the high bit of a video tag's first byte says a FourCC follows.
const EX_HEADER: u8 = 0x80;

/// Parses a VIDEODATA body: `[frame type | codec id] [AVC packet type] [composition time: s24]`
/// then the payload.
pub fn parse_video(body: &Bytes) -> Result<Tag<VideoBody>, UnsupportedCodec> {
    let Some(&first) = body.first() else {
        return Ok(Tag::Empty);
    };
    if first & EX_HEADER != 0 {
        return Err(UnsupportedCodec::EnhancedVideo { fourcc: fourcc(body) });
    }
    if first & 0x0F != AVC {
        let id = first & 0x0F;
        return Err(UnsupportedCodec::Video { id, name: video_codec_name(id) });
    }
    let [_, packet_type, c0, c1, c2, ..] = body[..] else {
        return Ok(Tag::Malformed);
    };
    let payload = body.slice(5..);
    Ok(match packet_type {
        0 if !payload.is_empty() => Tag::Media(VideoBody::Config(payload)),
        1 if !payload.is_empty() => {
            // CompositionTime: signed 24-bit.
            let cts_ms = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
            Tag::Media(VideoBody::Frame { keyframe: first >> 4 == 1, cts_ms, data: payload })
        }
        2 => Tag::Empty,
        _ => Tag::Malformed,
    })
}

/// Parses an AUDIODATA body: `[format | rate | size | type] [AAC packet type]` then the payload.
pub fn parse_audio(body: &Bytes) -> Result<Tag<AudioBody>, UnsupportedCodec> {
    let Some(&first) = body.first() else {
        return Ok(Tag::Empty);
    };
    if first >> 4 != AAC {
        let id = first >> 4;
        return Err(UnsupportedCodec::Audio { id, name: sound_format_name(id) });
    }
    let payload = body.slice(body.len().min(2)..);
    Ok(match body.get(1) {
        Some(0) if !payload.is_empty() => Tag::Media(AudioBody::Config(payload)),
        Some(1) if !payload.is_empty() => Tag::Media(AudioBody::Frame(payload)),
        _ => Tag::Malformed,
    })
}

/// The FourCC of an Enhanced RTMP video tag, printable for a log line.
fn fourcc(body: &[u8]) -> String {
    match body.get(1..5) {
        Some(code) if code.iter().all(u8::is_ascii_graphic) => code.iter().map(|&b| char::from(b)).collect(),
        _ => "?".to_owned(),
    }
}

fn video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 with alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard FLV)",
        _ => "unknown",
    }
}

fn sound_format_name(id: u8) -> &'static str {
    match id {
        0 | 3 => "linear PCM",
        1 => "ADPCM",
        2 | 14 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        9 => "enhanced RTMP audio",
        11 => "Speex",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &'static [u8]) -> Result<Tag<VideoBody>, UnsupportedCodec> {
        parse_video(&Bytes::from_static(bytes))
    }

    fn audio(bytes: &'static [u8]) -> Result<Tag<AudioBody>, UnsupportedCodec> {
        parse_audio(&Bytes::from_static(bytes))
    }

    #[test]
    fn parses_avc_headers_and_frames() {
        assert_eq!(
            video(&[0x17, 0x00, 0, 0, 0, 1, 0x64]),
            Ok(Tag::Media(VideoBody::Config(Bytes::from_static(&[1, 0x64]))))
        );
        assert_eq!(
            video(&[0x17, 0x01, 0, 0, 66, 0, 0, 0, 1, 0x65]),
            Ok(Tag::Media(VideoBody::Frame {
                keyframe: true,
                cts_ms: 66,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65])
            }))
        );
        // Negative composition time; an inter frame.
        assert_eq!(
            video(&[0x27, 0x01, 0xFF, 0xFF, 0xFE, 7]),
            Ok(Tag::Media(VideoBody::Frame { keyframe: false, cts_ms: -2, data: Bytes::from_static(&[7]) }))
        );
        assert_eq!(video(&[]), Ok(Tag::Empty));
        assert_eq!(video(&[0x17, 0x02, 0, 0, 0]), Ok(Tag::Empty), "end of sequence");
        assert_eq!(video(&[0x17, 0x01, 0]), Ok(Tag::Malformed));
        assert_eq!(video(&[0x17, 0x01, 0, 0, 0]), Ok(Tag::Malformed), "a frame without NAL units");
        assert_eq!(video(&[0x17, 0x09, 0, 0, 0, 1]), Ok(Tag::Malformed));
    }

    #[test]
    fn refuses_other_video_codecs() {
        assert_eq!(video(&[0x12]), Err(UnsupportedCodec::Video { id: 2, name: "Sorenson H.263" }));
        assert_eq!(video(&[0x1C]), Err(UnsupportedCodec::Video { id: 12, name: "HEVC (non-standard FLV)" }));
        assert_eq!(
            video(&[0x90, b'h', b'v', b'c', b'1']),
            Err(UnsupportedCodec::EnhancedVideo { fourcc: "hvc1".into() })
        );
        // An ex-header is refused even if its low bits happen to read 7.
        assert!(matches!(video(&[0x97]), Err(UnsupportedCodec::EnhancedVideo { fourcc }) if fourcc == "?"));
    }

    #[test]
    fn parses_aac_and_refuses_other_audio() {
        assert_eq!(
            audio(&[0xAF, 0x00, 0x12, 0x10]),
            Ok(Tag::Media(AudioBody::Config(Bytes::from_static(&[0x12, 0x10]))))
        );
        assert_eq!(
            audio(&[0xAF, 0x01, 0x21, 0x1A]),
            Ok(Tag::Media(AudioBody::Frame(Bytes::from_static(&[0x21, 0x1A]))))
        );
        assert_eq!(audio(&[]), Ok(Tag::Empty));
        assert_eq!(audio(&[0xAF]), Ok(Tag::Malformed));
        assert_eq!(audio(&[0xAF, 0x01]), Ok(Tag::Malformed));
        assert_eq!(audio(&[0x2F]), Err(UnsupportedCodec::Audio { id: 2, name: "MP3" }));
        assert_eq!(audio(&[0x9F]), Err(UnsupportedCodec::Audio { id: 9, name: "enhanced RTMP audio" }));
    }
}
