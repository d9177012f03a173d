//! Configuration: command-line flags, then `HAWKER_*` environment variables, then the
//! config file (TOML), then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The config file. Every field is optional; the file itself is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http: Option<SocketAddr>,
    pub rtmp: Option<SocketAddr>,
    pub rtmps: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<bool>,
    pub public_host: Option<String>,
    pub public_http_url: Option<String>,
    pub public_rtmp_url: Option<String>,
    pub public_rtmps_url: Option<String>,
    pub segment_duration: Option<f64>,
    pub live_window: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else { return Ok(Self::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The settings `serve` runs with, after every source is merged.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// RTMPS listener and its certificate; off without one.
    pub rtmps: Option<Rtmps>,
    pub public_host: String,
    pub public_http_url: Option<String>,
    pub public_rtmp_url: Option<String>,
    pub public_rtmps_url: Option<String>,
    pub segment_duration: Duration,
    pub live_window: usize,
}

#[derive(Debug, Clone)]
pub struct Rtmps {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Generate a self-signed pair at `cert`/`key` when they do not exist (local testing).
    pub self_signed: bool,
}

pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
pub const DEFAULT_RTMP: &str = "0.0.0.0:1935";
pub const DEFAULT_RTMPS: &str = "0.0.0.0:1936";

/// Segments between these bounds keep players and the packager sane.
pub fn segment_duration(seconds: f64) -> anyhow::Result<Duration> {
    if !(0.5..=10.0).contains(&seconds) {
        bail!("segment duration must be between 0.5 and 10 seconds, not {seconds}");
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub fn live_window(segments: usize) -> anyhow::Result<usize> {
    if !(3..=1000).contains(&segments) {
        bail!("live window must be between 3 and 1000 segments, not {segments}");
    }
    Ok(segments)
}

impl ServeConfig {
    /// `rtmp://host:port/live`, the OBS "Server" field, for the port actually bound.
    pub fn rtmp_url(&self, bound: SocketAddr) -> String {
        self.public_rtmp_url.clone().unwrap_or_else(|| format!("rtmp://{}:{}/live", self.public_host, bound.port()))
    }

    pub fn rtmps_url(&self, bound: SocketAddr) -> String {
        self.public_rtmps_url.clone().unwrap_or_else(|| format!("rtmps://{}:{}/live", self.public_host, bound.port()))
    }

    pub fn http_url(&self, bound: SocketAddr) -> String {
        let url = self.public_http_url.clone().unwrap_or_else(|| format!("http://{}:{}", self.public_host, bound.port()));
        url.trim_end_matches('/').to_owned()
    }
}
