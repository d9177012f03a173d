//! Admin settings: persisted, validated, applied to streams as they run.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::EndAction;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How long a stream whose publisher dropped waits for it before it is ended, 0–1800 s.
    pub reconnect_window_seconds: u32,
    /// What ending at the window's expiry does: `save` (archive, replay plays) or `delete`.
    pub reconnect_default_action: EndAction,
}

pub const MAX_RECONNECT_WINDOW_SECONDS: u32 = 1800;

impl Default for Settings {
    fn default() -> Self {
        Self { reconnect_window_seconds: 60, reconnect_default_action: EndAction::Save }
    }
}

impl Settings {
    pub fn reconnect_window(&self) -> Duration {
        Duration::from_secs(self.reconnect_window_seconds.into())
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.reconnect_window_seconds > MAX_RECONNECT_WINDOW_SECONDS {
            return Err(format!("reconnect_window_seconds must be 0 to {MAX_RECONNECT_WINDOW_SECONDS}"));
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

    /// From the stored rows: defaults for settings never stored; names no longer known are ignored.
    pub(crate) fn from_stored(stored: Map<String, Value>) -> Result<Settings, String> {
        let mut fields = Settings::default().to_object();
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
    fn stored_rows_overlay_defaults() {
        let mut stored = Map::new();
        stored.insert("reconnect_window_seconds".into(), json!(10));
        stored.insert("retired_setting".into(), json!(true));
        let settings = Settings::from_stored(stored).unwrap();
        assert_eq!(settings.reconnect_window_seconds, 10);
        assert_eq!(settings.reconnect_default_action, EndAction::Save);
    }
}
