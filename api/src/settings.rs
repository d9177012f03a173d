//! Admin settings: persisted, validated, applied to streams as they run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::EndAction;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long a stream whose publisher dropped waits for it before it is ended, 0–1800 s.
    pub reconnect_window_seconds: u32,
    /// What ending at the window's expiry does: `save` (archive, replay plays) or `delete`.
    pub reconnect_default_action: EndAction,
    /// RTMP server URL shown to sellers (`rtmp://` or `rtmps://`); null = the server's own.
    pub rtmp_public_url: Option<String>,
    /// Highest video bit rate a publish or a rendition may have, 100–100000 kbit/s.
    pub max_bitrate_kbps: u32,
    /// Target segment duration, 0.5–10 s.
    pub segment_duration_seconds: f64,
    /// LL-HLS part duration, 0.2–1 s, and at most the segment duration.
    pub part_duration_seconds: f64,
    /// Low-latency HLS (parts and preload hints) on or off.
    pub ll_hls: bool,
    /// Segments in the live playlist, 3–1000.
    pub playlist_window_segments: u32,
    /// The ABR ladder: renditions transcoded from the source (decoded once, x264 with zero
    /// latency, keyframes and segments aligned with the source's), listed after the source's
    /// passthrough `v0`; empty = the source rendition only. Applies to new streams.
    pub ladder: Vec<Rendition>,
    /// Poster thumbnails on or off, and how often, 1–3600 s.
    pub thumbnails_enabled: bool,
    pub thumbnail_interval_seconds: u32,
    /// Longest chat message, 1–2000 characters.
    pub chat_max_length: u32,
    /// Each user may post at most `chat_rate_limit_messages` (1–100) messages per
    /// `chat_rate_limit_seconds` (1–3600).
    pub chat_rate_limit_messages: u32,
    pub chat_rate_limit_seconds: u32,
    /// Player sessions one client address (an IPv6 /64) may hold on one stream, 1–100000: a
    /// household or office, not a script. Raise it where many viewers share an address
    /// (carrier-grade NAT, a campus).
    pub viewer_sessions_per_address: u32,
    /// Whether viewers may sign in by name alone (`POST /guest-tokens`) to like and chat.
    /// On for a stand-alone hawker; a shop that signs its users in through
    /// `POST /viewer-tokens` turns it off.
    pub guest_sign_in: bool,
    /// Where stream lifecycle events are POSTed (`http://` or `https://`); null = off.
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key signing webhook bodies (16–256 characters); required with `webhook_url`.
    pub webhook_secret: Option<String>,
    /// Whether webhooks may go to loopback, private, link-local and metadata addresses. Off:
    /// a webhook URL cannot reach inside the network hawker runs in.
    pub allow_private_webhooks: bool,
}

/// One rung of the ABR ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    /// 1–32 characters of `a-z 0-9 _ -`, unique in the ladder: the rendition's folder in
    /// `/hls/{playback_id}/`. `v0` is the source's, so a rung named `v0` is skipped.
    pub name: String,
    /// 16–7680 and even.
    pub width: u32,
    /// 16–4320 and even.
    pub height: u32,
    /// 100 up to `max_bitrate_kbps`.
    pub video_bitrate_kbps: u32,
}

pub const MAX_RECONNECT_WINDOW_SECONDS: u32 = 1800;
pub const MAX_LADDER_RENDITIONS: usize = 8;

impl Default for Settings {
    fn default() -> Self {
        Self {
            reconnect_window_seconds: 60,
            reconnect_default_action: EndAction::Save,
            rtmp_public_url: None,
            max_bitrate_kbps: 10_000,
            segment_duration_seconds: 2.0,
            part_duration_seconds: 0.2,
            ll_hls: true,
            playlist_window_segments: 6,
            ladder: Vec::new(),
            thumbnails_enabled: true,
            thumbnail_interval_seconds: 10,
            chat_max_length: 500,
            chat_rate_limit_messages: 5,
            chat_rate_limit_seconds: 10,
            viewer_sessions_per_address: 20,
            guest_sign_in: true,
            webhook_url: None,
            webhook_secret: None,
            allow_private_webhooks: false,
        }
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
    unit: &str,
) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("{name} must be {min} to {max}{unit}"));
    }
    Ok(())
}

fn check_url(name: &str, url: &str, schemes: &[&str]) -> Result<(), String> {
    let ok = schemes.iter().any(|scheme| {
        url.strip_prefix(scheme).and_then(|rest| rest.strip_prefix("://")).is_some_and(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !host.contains('@')
        })
    });
    if !ok || url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let schemes = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
        return Err(format!("{name} must be a {schemes} URL with a host"));
    }
    Ok(())
}

impl Settings {
    pub fn reconnect_window(&self) -> Duration {
        Duration::from_secs(self.reconnect_window_seconds.into())
    }

    pub fn validate(&self) -> Result<(), String> {
        check_range("reconnect_window_seconds", self.reconnect_window_seconds, 0, MAX_RECONNECT_WINDOW_SECONDS, "")?;
        if let Some(url) = &self.rtmp_public_url {
            check_url("rtmp_public_url", url, &["rtmp", "rtmps"])?;
        }
        check_range("max_bitrate_kbps", self.max_bitrate_kbps, 100, 100_000, " kbit/s")?;
        let segment = self.segment_duration_seconds;
        if !segment.is_finite() {
            return Err("segment_duration_seconds must be 0.5 to 10 s".into());
        }
        check_range("segment_duration_seconds", segment, 0.5, 10.0, " s")?;
        let part = self.part_duration_seconds;
        if !part.is_finite() {
            return Err("part_duration_seconds must be 0.2 to 1 s".into());
        }
        check_range("part_duration_seconds", part, 0.2, 1.0, " s")?;
        if part > segment {
            return Err("part_duration_seconds must not exceed segment_duration_seconds".into());
        }
        check_range("playlist_window_segments", self.playlist_window_segments, 3, 1000, "")?;
        if self.ladder.len() > MAX_LADDER_RENDITIONS {
            return Err(format!("ladder may have at most {MAX_LADDER_RENDITIONS} renditions"));
        }
        for (i, r) in self.ladder.iter().enumerate() {
            let valid_name = (1..=32).contains(&r.name.len())
                && r.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid_name {
                return Err(format!("ladder[{i}].name must be 1 to 32 characters of a-z, 0-9, _ and -"));
            }
            if self.ladder[..i].iter().any(|other| other.name == r.name) {
                return Err(format!("ladder[{i}].name {:?} is used twice", r.name));
            }
            check_range(&format!("ladder[{i}].width"), r.width, 16, 7680, "")?;
            check_range(&format!("ladder[{i}].height"), r.height, 16, 4320, "")?;
            if r.width % 2 != 0 || r.height % 2 != 0 {
                return Err(format!("ladder[{i}] width and height must be even"));
            }
            check_range(
                &format!("ladder[{i}].video_bitrate_kbps"),
                r.video_bitrate_kbps,
                100,
                self.max_bitrate_kbps,
                " kbit/s (max_bitrate_kbps)",
            )?;
        }
        check_range("thumbnail_interval_seconds", self.thumbnail_interval_seconds, 1, 3600, " s")?;
        check_range("chat_max_length", self.chat_max_length, 1, 2000, " characters")?;
        check_range("chat_rate_limit_messages", self.chat_rate_limit_messages, 1, 100, "")?;
        check_range("chat_rate_limit_seconds", self.chat_rate_limit_seconds, 1, 3600, " s")?;
        check_range("viewer_sessions_per_address", self.viewer_sessions_per_address, 1, 100_000, "")?;
        if let Some(url) = &self.webhook_url {
            check_url("webhook_url", url, &["http", "https"])?;
            if self.webhook_secret.is_none() {
                return Err("webhook_secret is required with webhook_url".into());
            }
        }
        if let Some(secret) = &self.webhook_secret {
            check_range("webhook_secret length", secret.chars().count(), 16, 256, " characters")?;
            // The Standard Webhooks form: its base64 must decode, or receivers could not verify.
            if let Some(encoded) = secret.strip_prefix("whsec_") {
                use base64::Engine;
                if base64::engine::general_purpose::STANDARD.decode(encoded).is_err() {
                    return Err("webhook_secret: after whsec_, standard base64 (A-Z a-z 0-9 + /, padded)".into());
                }
            }
        }
        Ok(())
    }

    /// These settings with the fields of `patch` (a JSON object) replaced, validated.
    pub fn patched(&self, patch: Value) -> Result<Settings, String> {
        let Value::Object(patch) = patch else {
            return Err("settings must be a JSON object".into());
        };
        let mut fields = self.to_object();
        for (name, value) in patch {
            if !fields.contains_key(&name) {
                return Err(format!("unknown setting {name:?}"));
            }
            fields.insert(name, value);
        }
        let settings: Settings = serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?;
        settings.validate()?;
        Ok(settings)
    }

    /// The stored rows over `defaults` (for settings never stored); names no longer known are
    /// ignored.
    pub(crate) fn from_stored(defaults: &Settings, stored: Map<String, Value>) -> Result<Settings, String> {
        let mut fields = defaults.to_object();
        for (name, value) in stored {
            if fields.contains_key(&name) {
                fields.insert(name, value);
            }
        }
        serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())
    }

    pub(crate) fn to_stored(&self) -> Map<String, Value> {
        self.to_object()
    }

    fn to_object(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            _ => unreachable!("Settings serialises to an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_are_validated() {
        let base = Settings::default();
        let patched = base.patched(json!({"reconnect_window_seconds": 5})).unwrap();
        assert_eq!(patched.reconnect_window_seconds, 5);
        assert_eq!(patched.reconnect_default_action, EndAction::Save);
        let patched = base.patched(json!({"reconnect_default_action": "delete"})).unwrap();
        assert_eq!(patched.reconnect_default_action, EndAction::Delete);

        let err = base.patched(json!({"reconnect_window_seconds": 1801})).unwrap_err();
        assert!(err.contains("0 to 1800"), "{err}");
        assert!(base.patched(json!({"reconnect_window_seconds": -1})).is_err());
        assert!(base.patched(json!({"reconnect_default_action": "explode"})).is_err());
        assert!(base.patched(json!({"nope": 1})).unwrap_err().contains("unknown setting"));
        assert!(base.patched(json!([1])).is_err());
    }

    #[test]
    fn new_settings_are_validated_with_clear_errors() {
        let base = Settings::default();
        let ok = base
            .patched(json!({
                "rtmp_public_url": "rtmps://ingest.example.com:443/live",
                "segment_duration_seconds": 1.0, "part_duration_seconds": 0.2, "ll_hls": true,
                "ladder": [{"name": "720p", "width": 1280, "height": 720, "video_bitrate_kbps": 2500}],
                "chat_max_length": 200, "webhook_url": "https://hooks.example.com/h", "webhook_secret": "0123456789abcdef"
            }))
            .unwrap();
        assert_eq!(ok.ladder[0].height, 720);
        assert!(base.patched(json!({"webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})).is_ok());
        let cases = [
            (json!({"segment_duration_seconds": 0.4}), "segment_duration_seconds must be 0.5 to 10"),
            (json!({"segment_duration_seconds": 11}), "segment_duration_seconds"),
            (json!({"part_duration_seconds": 0.1}), "part_duration_seconds must be 0.2 to 1"),
            (json!({"part_duration_seconds": 1.0, "segment_duration_seconds": 0.5}), "must not exceed"),
            (json!({"playlist_window_segments": 2}), "playlist_window_segments"),
            (json!({"max_bitrate_kbps": 50}), "max_bitrate_kbps"),
            (json!({"rtmp_public_url": "http://x/live"}), "rtmp_public_url"),
            (json!({"webhook_url": "ftp://x"}), "webhook_url"),
            (json!({"webhook_url": "https://x/h"}), "webhook_secret is required"),
            (json!({"webhook_secret": "short"}), "webhook_secret length"),
            (json!({"webhook_secret": "whsec_not-base64_at-all"}), "after whsec_, standard base64"),
            (json!({"chat_max_length": 0}), "chat_max_length"),
            (json!({"chat_rate_limit_messages": 1000}), "chat_rate_limit_messages"),
            (
                json!({"ladder": [{"name": "A B", "width": 640, "height": 360, "video_bitrate_kbps": 800}]}),
                "ladder[0].name",
            ),
            (json!({"ladder": [{"name": "a", "width": 641, "height": 360, "video_bitrate_kbps": 800}]}), "even"),
            (
                json!({"ladder": [{"name": "a", "width": 640, "height": 360, "video_bitrate_kbps": 20000}]}),
                "video_bitrate_kbps",
            ),
            (json!({"ladder": [{"name": "a", "width": 640, "height": 360}]}), "video_bitrate_kbps"),
        ];
        for (patch, want) in cases {
            let err = base.patched(patch.clone()).unwrap_err();
            assert!(err.contains(want), "{patch}: {err}");
        }
    }

    #[test]
    fn stored_rows_overlay_defaults() {
        let mut stored = Map::new();
        stored.insert("reconnect_window_seconds".into(), json!(10));
        stored.insert("retired_setting".into(), json!(true));
        let settings = Settings::from_stored(&Settings::default(), stored).unwrap();
        assert_eq!(settings.reconnect_window_seconds, 10);
        assert_eq!(settings.reconnect_default_action, EndAction::Save);
    }
}
