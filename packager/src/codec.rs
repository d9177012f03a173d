//! What the pipeline's caps and the posters need from the publisher's configuration records:
//! the picture size, frame rate and pixel format from the AVCDecoderConfigurationRecord's first
//! SPS (ISO/IEC 14496-15 §5.3.3, H.264 §7.3.2.1), the sample rate and channels from the
//! AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), and the RFC 6381 CODECS strings of both.
//!
//! Hand-written rather than taken from a crate: the SPS fields up to the VUI timing are all we
//! read, and this is the one place that reads them (h264parse, which did, is gone from the
//! passthrough path).

/// What the muxer, the multivariant playlist and the posters need of the video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AvcInfo {
    pub width: u32,
    pub height: u32,
    /// From the SPS's VUI timing, when the encoder wrote it.
    pub frame_rate: Option<(u32, u32)>,
    /// 8-bit 4:2:0 (what cameras and OBS send): a decoder's pictures are I420.
    pub i420: bool,
    /// Bytes of each NAL unit's length prefix in the samples (lengthSizeMinusOne + 1).
    pub nal_length_size: usize,
}

/// Reads the first SPS of an AVCDecoderConfigurationRecord.
pub(crate) fn avc_info(record: &[u8]) -> Option<AvcInfo> {
    // configurationVersion 1, profile, compatibility, level, lengthSizeMinusOne, numOfSPS.
    if record.len() < 8 || record[0] != 1 || record[5] & 0x1F == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([record[6], record[7]]));
    let nal = record.get(8..8 + len)?;
    // NAL header: type 7 (SPS).
    if nal.first()? & 0x1F != 7 {
        return None;
    }
    sps(&unescape(&nal[1..]), usize::from(record[4] & 3) + 1)
}

/// Whether an access unit (NAL units with `length_size`-byte length prefixes) holds an IDR
/// slice: a picture that decodes on its own.
pub(crate) fn has_idr(access_unit: &[u8], length_size: usize) -> bool {
    let mut rest = access_unit;
    while rest.len() > length_size {
        let (prefix, after) = rest.split_at(length_size);
        let len = prefix.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        let Some(nal) = after.get(..len) else { return false };
        if nal.first().is_some_and(|header| header & 0x1F == 5) {
            return true;
        }
        rest = &after[len..];
    }
    false
}

/// The RBSP of a NAL unit: emulation prevention bytes (00 00 03) removed.
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An MSB-first bit reader with Exp-Golomb codes; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.at / 8)?;
        let bit = (byte >> (7 - self.at % 8)) & 1;
        self.at += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn flag(&mut self) -> Option<bool> {
        Some(self.bit()? == 1)
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        ((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)).try_into().ok()
    }

    fn se(&mut self) -> Option<i32> {
        let k = i64::from(self.ue()?);
        i32::try_from(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) }).ok()
    }

    fn skip_scaling_list(&mut self, size: usize) -> Option<()> {
        let (mut last, mut next) = (8i32, 8i32);
        for _ in 0..size {
            if next != 0 {
                next = (last + self.se()? + 256) % 256;
            }
            last = if next == 0 { last } else { next };
        }
        Some(())
    }
}

/// H.264 §7.3.2.1.1 up to the VUI's timing information; `rbsp` starts after the NAL header.
fn sps(rbsp: &[u8], nal_length_size: usize) -> Option<AvcInfo> {
    let mut r = Bits { data: rbsp, at: 0 };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format, mut deeper) = (1, false);
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        deeper = r.ue()? != 0; // bit_depth_luma_minus8
        deeper |= r.ue()? != 0; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    r.skip_scaling_list(if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.flag()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Crop units (Table 6-1): 4:2:0 halves both directions, 4:2:2 only the width.
        let (unit_x, unit_y) = match chroma_format {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let unit_y = unit_y * (2 - frame_mbs_only);
        crop_x = unit_x * left.checked_add(right)?;
        crop_y = unit_y * top.checked_add(bottom)?;
    }
    let width = (width_mbs.checked_mul(16)?).checked_sub(crop_x)?;
    let height = (height_units.checked_mul(16)?.checked_mul(2 - frame_mbs_only)?).checked_sub(crop_y)?;
    if width == 0 || height == 0 {
        return None;
    }
    let frame_rate = vui_frame_rate(&mut r);
    Some(AvcInfo { width, height, frame_rate, i420: chroma_format == 1 && !deeper, nal_length_size })
}

/// The frame rate of the VUI's timing information (E.1.1), if present.
fn vui_frame_rate(r: &mut Bits) -> Option<(u32, u32)> {
    if !r.flag()? {
        return None;
    }
    if r.flag()? && r.bits(8)? == 255 {
        r.bits(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.bits(24)?; // colour description
        }
    }
    if r.flag()? {
        r.ue()?;
        r.ue()?;
    }
    if !r.flag()? {
        return None;
    }
    let num_units_in_tick = r.bits(32)?;
    let time_scale = r.bits(32)?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return None;
    }
    // A frame is two fields' ticks.
    let (numerator, denominator) = (u64::from(time_scale), 2 * u64::from(num_units_in_tick));
    let gcd = gcd(numerator, denominator);
    Some((u32::try_from(numerator / gcd).ok()?, u32::try_from(denominator / gcd).ok()?))
}

pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// What the muxer needs of the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AacInfo {
    pub rate: u32,
    pub channels: u32,
}

const AAC_RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

/// Reads an AudioSpecificConfig: object type, sampling frequency, channel configuration.
pub(crate) fn aac_info(asc: &[u8]) -> Option<AacInfo> {
    let mut r = Bits { data: asc, at: 0 };
    if r.bits(5)? == 31 {
        r.bits(6)?; // audioObjectTypeExt
    }
    let rate = match r.bits(4)? {
        15 => r.bits(24)?,
        index => *AAC_RATES.get(usize::try_from(index).ok()?)?,
    };
    let channels = match r.bits(4)? {
        // 0: defined in a program config element; stereo is what players assume.
        0 => 2,
        7 => 8,
        c @ 1..=6 => c,
        _ => return None,
    };
    (rate > 0).then_some(AacInfo { rate, channels })
}

/// `avc1.PPCCLL` from the avcC record (profile, constraint flags, level).
pub(crate) fn avc_codec(avcc: Option<&[u8]>) -> String {
    match avcc {
        Some([1, profile, compat, level, ..]) => format!("avc1.{profile:02x}{compat:02x}{level:02x}"),
        // Main 3.1 is the usual assumption when the record is missing.
        _ => "avc1.4d401f".to_owned(),
    }
}

/// `mp4a.40.{object type}` from the AudioSpecificConfig.
pub(crate) fn aac_codec(asc: Option<&[u8]>) -> String {
    let aot = match asc {
        Some([a, b, ..]) if a >> 3 == 31 => 32 + (((a & 0x07) << 3) | (b >> 5)),
        Some([a, ..]) if a >> 3 != 0 => a >> 3,
        _ => 2,
    };
    format!("mp4a.40.{aot}")
}

/// The avcC record x264 writes (through ffmpeg's FLV muxer) for 1280x720 High at 30 fps.
#[cfg(test)]
pub(crate) const X264_720P_RECORD: &[u8] = &[
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01,
    0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68,
    0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings() {
        assert_eq!(avc_codec(Some(&[1, 0x64, 0x00, 0x1f, 0xff])), "avc1.64001f");
        assert_eq!(avc_codec(Some(&[1, 0x42, 0xc0, 0x1e])), "avc1.42c01e");
        assert_eq!(avc_codec(Some(&[0])), "avc1.4d401f");
        assert_eq!(avc_codec(None), "avc1.4d401f");
        // AAC-LC 48 kHz stereo: 0x11 0x90.
        assert_eq!(aac_codec(Some(&[0x11, 0x90])), "mp4a.40.2");
        // HE-AAC (SBR) = 5.
        assert_eq!(aac_codec(Some(&[0x2b, 0x92])), "mp4a.40.5");
        // Escape value 31: 32 + 6 bits.
        assert_eq!(aac_codec(Some(&[0xf8, 0x20])), "mp4a.40.33");
        assert_eq!(aac_codec(None), "mp4a.40.2");
    }

    #[test]
    fn aac_configs() {
        assert_eq!(aac_info(&[0x11, 0x90]), Some(AacInfo { rate: 48000, channels: 2 }));
        assert_eq!(aac_info(&[0x12, 0x10]), Some(AacInfo { rate: 44100, channels: 2 }));
        assert_eq!(aac_info(&[0x11, 0x88]), Some(AacInfo { rate: 48000, channels: 1 }));
        assert_eq!(aac_info(&[0x12]), None);
        assert_eq!(aac_info(&[]), None);
    }

    #[test]
    fn an_idr_slice_is_found_among_the_access_units_nal_units() {
        // AUD, SEI, then an IDR slice; 4-byte lengths.
        let idr = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 3, 0x65, 0x88, 0x84];
        assert!(has_idr(&idr, 4));
        // A non-IDR slice (type 1) is not one, whatever the container's keyframe flag says.
        let p_slice = [0, 0, 0, 2, 0x09, 0xf0, 0, 0, 0, 3, 0x41, 0x9a, 0x02];
        assert!(!has_idr(&p_slice, 4));
        // 2-byte lengths.
        assert!(has_idr(&[0, 2, 0x09, 0xf0, 0, 2, 0x65, 0x88], 2));
        // A length past the end is not read.
        assert!(!has_idr(&[0, 0, 0, 9, 0x65, 0x88], 4));
        assert!(!has_idr(&[], 4));
    }

    /// The avcC records x264 wrote (through ffmpeg's FLV muxer) for 1280x720 High at 30 fps
    /// and 640x360 Constrained Baseline at 25 fps (368 coded rows, cropped).
    #[test]
    fn avc_configs_from_x264() {
        let hd = X264_720P_RECORD;
        assert_eq!(
            avc_info(hd),
            Some(AvcInfo { width: 1280, height: 720, frame_rate: Some((30, 1)), i420: true, nal_length_size: 4 })
        );
        let sd = [
            0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70,
            0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2e, 0x48, 0x01, 0x00, 0x05,
            0x68, 0xcb, 0x83, 0xcb, 0x20,
        ];
        assert_eq!(
            avc_info(&sd),
            Some(AvcInfo { width: 640, height: 360, frame_rate: Some((25, 1)), i420: true, nal_length_size: 4 })
        );
        // 4:2:2 (High 4:2:2) and 10-bit 4:2:0 (High 10), 320x240 at 25 fps: not I420.
        let yuv422 = [
            0x01, 0x7a, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x7a, 0x00, 0x0d, 0xbc, 0xd9, 0x41, 0x41, 0xfb, 0x01,
            0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60, 0x01, 0x00, 0x04,
            0x68, 0xef, 0x8f, 0xcb, 0xfe, 0xf8, 0xf8, 0x00,
        ];
        let ten_bit = [
            0x01, 0x6e, 0x00, 0x0d, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x6e, 0x00, 0x0d, 0xa6, 0xcd, 0x94, 0x14, 0x1f, 0xb0,
            0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x14, 0x29, 0x96, 0x01, 0x00, 0x04,
            0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xfa, 0xfa, 0x00,
        ];
        for record in [&yuv422[..], &ten_bit[..]] {
            let info = avc_info(record).expect("an SPS");
            assert_eq!((info.width, info.height, info.frame_rate, info.i420), (320, 240, Some((25, 1)), false));
        }
        assert_eq!(avc_info(&hd[..14]), None, "a truncated SPS");
        assert_eq!(avc_info(&[1, 0x64, 0, 0x1f, 0xff, 0xe0]), None, "no SPS");
        assert_eq!(avc_info(&[]), None);
        assert_eq!(aac_info(&[0x11, 0x88, 0x56, 0xe5, 0x00]), Some(AacInfo { rate: 48000, channels: 1 }));
    }
}
