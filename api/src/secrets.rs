//! Secrets: API tokens, stream keys and public ids, all from the OS CSPRNG.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.try_fill_bytes(&mut buf).expect("the OS random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A stream key: 256 bits, URL-safe, prefixed so it is recognisable if it leaks.
pub fn new_stream_key() -> String {
    format!("sk_{}", random_token(32))
}

/// Whether `text` has the shape of a key `new_stream_key` makes (for skipping lookups of
/// what cannot be one).
pub fn looks_like_stream_key(text: &str) -> bool {
    text.strip_prefix("sk_").is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// An API token: 256 bits, URL-safe.
pub fn new_api_token() -> String {
    format!("hk_{}", random_token(32))
}

/// The public id in playback URLs: 128 bits, unrelated to the key.
pub fn new_playback_id() -> String {
    random_token(16)
}

/// Internal ids: 128 bits.
pub fn new_id() -> String {
    random_token(16)
}

/// Lookup digest for high-entropy secrets (tokens, keys); a slow KDF buys nothing at 256 bits.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Longest lifetime an API token may be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// When a token given `days` to live (1 to [`MAX_TOKEN_DAYS`]) expires; `None`: never.
pub fn token_expiry(days: Option<u32>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    match days {
        None => Ok(None),
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
            Ok(Some(chrono::Utc::now() + chrono::Duration::days(days.into())))
        }
        Some(days) => Err(format!("expires_in_days must be 1 to {MAX_TOKEN_DAYS}, not {days}")),
    }
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_url_safe() {
        let a = new_stream_key();
        let b = new_stream_key();
        assert!(looks_like_stream_key(&a) && looks_like_stream_key(&b));
        assert!(!looks_like_stream_key("sk_wrong") && !looks_like_stream_key(&a.replace("sk_", "hk_")));
        assert_ne!(a, b);
        assert!(a.len() >= 3 + 43, "{a} is too short");
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(new_playback_id().len(), 22);
    }

    #[test]
    fn digest_and_compare() {
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(constant_time_eq("sk_x", "sk_x"));
        assert!(!constant_time_eq("sk_x", "sk_y"));
        assert!(!constant_time_eq("sk_x", "sk_xx"));
    }
}
