//! Configuration: command-line flags, then `HAWKER_*` environment variables, then the
//! config file (TOML), then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// The config file. Every field is optional; the file itself is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `postgres://…`: PostgreSQL instead of SQLite in the data folder.
    pub database_url: Option<String>,
    pub node_id: Option<String>,
    pub advertise_url: Option<String>,
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
    pub poster_interval: Option<f64>,
    /// LL-HLS on (default) or off.
    pub ll_hls: Option<bool>,
    /// LL-HLS part target, seconds.
    pub part_duration: Option<f64>,
    /// `local` (default) or `s3`.
    pub storage: Option<StorageKind>,
    pub s3_endpoint: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_region: Option<String>,
    pub s3_prefix: Option<String>,
    pub s3_path_style: Option<bool>,
    pub s3_delivery: Option<DeliveryArg>,
    pub s3_public_base_url: Option<String>,
    pub s3_create_bucket: Option<bool>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_upload_concurrency: Option<usize>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<u64>,
    pub rtmp_threads: Option<usize>,
    pub rtmp_max_connections: Option<usize>,
    pub rtmp_max_connections_per_ip: Option<usize>,
    pub rtmp_bad_key_max_failures: Option<u32>,
    pub rtmp_bad_key_window: Option<f64>,
    pub rtmp_handshake_timeout: Option<f64>,
    pub rtmp_read_timeout: Option<f64>,
    pub rtmp_read_interval: Option<f64>,
    pub rtmp_publish_timeout: Option<f64>,
    pub rtmp_first_keyframe_timeout: Option<f64>,
    /// Reverse proxies (CIDR) whose X-Forwarded-For / Forwarded is believed.
    pub trusted_proxies: Option<Vec<IpNet>>,
    pub http_max_connections: Option<usize>,
    pub http_max_connections_per_ip: Option<usize>,
    pub http_header_timeout: Option<f64>,
    pub drain_timeout: Option<f64>,
    pub metrics_token: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
}

/// Where the database is: PostgreSQL at `url` (flag, `HAWKER_DATABASE_URL` or the config
/// file's `database_url`), else the SQLite file in the data folder.
pub fn database_url(flag: Option<String>, file: &FileConfig) -> anyhow::Result<Option<String>> {
    let Some(url) = flag.or_else(|| file.database_url.clone()).filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    // The URL may carry a password: the error names the scheme only.
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    anyhow::ensure!(
        matches!(scheme, "postgres" | "postgresql"),
        "database_url must be postgres://user:password@host:port/database (got a {scheme:?} URL); \
         without it hawker uses SQLite in the data folder"
    );
    Ok(Some(url))
}

/// A node's name when none is set: the host's name and the data folder, so that a node keeps
/// its name across restarts (and takes back its streams' leases) and two nodes on one host
/// differ.
pub fn default_node_id(data_dir: &Path) -> anyhow::Result<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let dir = std::fs::create_dir_all(data_dir).and_then(|()| data_dir.canonicalize());
    let dir = dir.with_context(|| format!("data dir {}", data_dir.display()))?;
    Ok(format!("{}:{}", host.trim(), dir.display()))
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
    pub node_id: String,
    /// Where the other nodes reach this node's HTTP side; `None`: derived from the listener.
    pub advertise_url: Option<String>,
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
    /// Zero: no posters.
    pub poster_interval: Duration,
    /// LL-HLS part target; `None`: LL-HLS off.
    pub part_duration: Option<Duration>,
    pub storage: StorageConfig,
    /// The RTMP ingest's caps and deadlines.
    pub ingest: hawker_ingest::Limits,
    /// Threads of their own for the RTMP connections and their streams' packaging; 0: none.
    pub rtmp_threads: usize,
    pub trusted_proxies: Vec<IpNet>,
    /// The HTTP listener's caps and deadlines.
    pub http_limits: crate::http_server::HttpLimits,
    pub metrics_token: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
}

/// The HTTP listener's bounds, defaults filled in and checked.
pub fn http_limits(
    max_connections: Option<usize>,
    max_per_ip: Option<usize>,
    header_timeout: Option<f64>,
    drain: Option<f64>,
) -> anyhow::Result<crate::http_server::HttpLimits> {
    let defaults = crate::http_server::HttpLimits::default();
    let limits = crate::http_server::HttpLimits {
        max_connections: max_connections.unwrap_or(defaults.max_connections),
        max_connections_per_ip: max_per_ip.unwrap_or(defaults.max_connections_per_ip),
        header_timeout: match header_timeout {
            Some(secs) if (1.0..=3600.0).contains(&secs) => Duration::from_secs_f64(secs),
            Some(secs) => bail!("--http-header-timeout must be 1 to 3600 seconds, not {secs}"),
            None => defaults.header_timeout,
        },
        drain: match drain {
            Some(secs) if (1.0..=3600.0).contains(&secs) => Duration::from_secs_f64(secs),
            Some(secs) => bail!("--drain-timeout must be 1 to 3600 seconds, not {secs}"),
            None => defaults.drain,
        },
    };
    if limits.max_connections == 0 || limits.max_connections_per_ip == 0 {
        bail!("--http-max-connections and --http-max-connections-per-ip must be at least 1");
    }
    Ok(limits)
}

/// Where media objects go.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once at start-up
pub enum StorageConfig {
    /// Files under `DATA_DIR/media`.
    Local,
    S3(hawker_storage::S3Config),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Local,
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryArg {
    Serve,
    Redirect,
}

/// Storage flags of `serve` (each also an environment variable and a config-file field).
#[derive(Debug, clap::Args)]
pub struct StorageArgs {
    /// Where media goes: `local` (files under DATA_DIR/media) or `s3` [default: local]
    #[arg(long, env = "HAWKER_STORAGE", value_enum)]
    pub storage: Option<StorageKind>,
    /// S3 endpoint URL (MinIO, R2, Garage, s3s…); unset for AWS S3
    #[arg(long, env = "HAWKER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket (required with --storage s3)
    #[arg(long, env = "HAWKER_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 region [default: AWS_REGION / the AWS profile, else us-east-1]
    #[arg(long, env = "HAWKER_S3_REGION")]
    pub s3_region: Option<String>,
    /// Prefix of every object key in the bucket, e.g. `hawker/` [default: none]
    #[arg(long, env = "HAWKER_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// Path-style addressing (endpoint/bucket/key) [default: true with --s3-endpoint, else false]
    #[arg(long, env = "HAWKER_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// `serve`: hawker serves segments from the store; `redirect`: segments already uploaded
    /// are answered with a redirect to --s3-public-base-url (or a presigned URL) [default: serve]
    #[arg(long, env = "HAWKER_S3_DELIVERY", value_enum)]
    pub s3_delivery: Option<DeliveryArg>,
    /// Public base URL of the bucket's keys (a CDN or the bucket's public URL), for redirects
    #[arg(long, env = "HAWKER_S3_PUBLIC_BASE_URL")]
    pub s3_public_base_url: Option<String>,
    /// Create the bucket on start when it does not exist [default: false]
    #[arg(long, env = "HAWKER_S3_CREATE_BUCKET")]
    pub s3_create_bucket: Option<bool>,
    /// Parallel uploads [default: 4]
    #[arg(long, env = "HAWKER_S3_UPLOAD_CONCURRENCY")]
    pub s3_upload_concurrency: Option<usize>,
    /// Folder where objects wait for upload [default: DATA_DIR/spool]
    #[arg(long, env = "HAWKER_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Bound of the spool in bytes [default: 2 GiB]
    #[arg(long, env = "HAWKER_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
}

/// The RTMP ingest's caps and deadlines (each also an environment variable and a config-file
/// field). Behind a TCP load balancer or an encoder farm every publisher may share one address:
/// raise the per-address cap there, or turn the wrong-key limit off.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Threads of their own for RTMP(S) connections and their streams' packaging, a
    /// connection staying on one; 0 runs them on the server's shared runtime. Measured at
    /// 0.84-1.01x the CPU per stream of 0, depending on the day; viewers are woken on the
    /// server's runtime either way [default: 0]
    #[arg(long, env = "HAWKER_RTMP_THREADS")]
    pub rtmp_threads: Option<usize>,
    /// RTMP(S) connections open at once, publishing or not [default: 1000]
    #[arg(long, env = "HAWKER_RTMP_MAX_CONNECTIONS")]
    pub rtmp_max_connections: Option<usize>,
    /// RTMP(S) connections open at once from one address (an IPv6 /64 counts as one) [default: 20]
    #[arg(long, env = "HAWKER_RTMP_MAX_CONNECTIONS_PER_IP")]
    pub rtmp_max_connections_per_ip: Option<usize>,
    /// Wrong stream keys one address may try within --rtmp-bad-key-window before its publishes
    /// are refused at once; 0 turns the limit off [default: 5]
    #[arg(long, env = "HAWKER_RTMP_BAD_KEY_MAX_FAILURES")]
    pub rtmp_bad_key_max_failures: Option<u32>,
    /// Seconds the wrong-key limit looks back [default: 60]
    #[arg(long, env = "HAWKER_RTMP_BAD_KEY_WINDOW")]
    pub rtmp_bad_key_window: Option<f64>,
    /// Seconds the RTMP handshake (TLS included) may take [default: 5]
    #[arg(long, env = "HAWKER_RTMP_HANDSHAKE_TIMEOUT")]
    pub rtmp_handshake_timeout: Option<f64>,
    /// Seconds a connection may stay silent [default: 10]
    #[arg(long, env = "HAWKER_RTMP_READ_TIMEOUT")]
    pub rtmp_read_timeout: Option<f64>,
    /// Seconds between reads of a publisher's socket, 0.005 to 0.5, except near the end of a
    /// part or segment (then as bytes arrive); 0 reads as bytes arrive [default: 0.2]
    #[arg(long, env = "HAWKER_RTMP_READ_INTERVAL")]
    pub rtmp_read_interval: Option<f64>,
    /// Seconds from connecting to an accepted publish [default: 10]
    #[arg(long, env = "HAWKER_RTMP_PUBLISH_TIMEOUT")]
    pub rtmp_publish_timeout: Option<f64>,
    /// Seconds from an accepted publish to its first keyframe [default: 10]
    #[arg(long, env = "HAWKER_RTMP_FIRST_KEYFRAME_TIMEOUT")]
    pub rtmp_first_keyframe_timeout: Option<f64>,
}

/// Merges the ingest flags, variables and file fields over the ingest's defaults.
pub fn ingest_limits(args: IngestArgs, file: &FileConfig) -> anyhow::Result<hawker_ingest::Limits> {
    let defaults = hawker_ingest::Limits::default();
    let count = |name: &str, value: Option<usize>, default: usize| match value {
        Some(0) => bail!("{name} must be at least 1"),
        Some(n) if n > 1_000_000 => bail!("{name} must be at most 1000000, not {n}"),
        value => Ok(value.unwrap_or(default)),
    };
    let seconds = |name: &str, value: Option<f64>, default: Duration| match value {
        Some(s) if !(0.1..=3600.0).contains(&s) => bail!("{name} must be between 0.1 and 3600 seconds, not {s}"),
        Some(s) => Ok(Duration::from_secs_f64(s)),
        None => Ok(default),
    };
    Ok(hawker_ingest::Limits {
        max_connections: count(
            "rtmp_max_connections",
            args.rtmp_max_connections.or(file.rtmp_max_connections),
            defaults.max_connections,
        )?,
        max_connections_per_ip: count(
            "rtmp_max_connections_per_ip",
            args.rtmp_max_connections_per_ip.or(file.rtmp_max_connections_per_ip),
            defaults.max_connections_per_ip,
        )?,
        bad_key_max_failures: args
            .rtmp_bad_key_max_failures
            .or(file.rtmp_bad_key_max_failures)
            .unwrap_or(defaults.bad_key_max_failures),
        bad_key_window: seconds(
            "rtmp_bad_key_window",
            args.rtmp_bad_key_window.or(file.rtmp_bad_key_window),
            defaults.bad_key_window,
        )?,
        handshake_timeout: seconds(
            "rtmp_handshake_timeout",
            args.rtmp_handshake_timeout.or(file.rtmp_handshake_timeout),
            defaults.handshake_timeout,
        )?,
        read_timeout: seconds(
            "rtmp_read_timeout",
            args.rtmp_read_timeout.or(file.rtmp_read_timeout),
            defaults.read_timeout,
        )?,
        read_interval: match args.rtmp_read_interval.or(file.rtmp_read_interval) {
            Some(s) if s != 0.0 && !(0.005..=0.5).contains(&s) => {
                bail!("rtmp_read_interval must be 0 or 0.005 to 0.5 seconds, not {s}")
            }
            Some(s) => Duration::from_secs_f64(s),
            None => defaults.read_interval,
        },
        publish_timeout: seconds(
            "rtmp_publish_timeout",
            args.rtmp_publish_timeout.or(file.rtmp_publish_timeout),
            defaults.publish_timeout,
        )?,
        first_keyframe_timeout: seconds(
            "rtmp_first_keyframe_timeout",
            args.rtmp_first_keyframe_timeout.or(file.rtmp_first_keyframe_timeout),
            defaults.first_keyframe_timeout,
        )?,
        ..defaults
    })
}

/// The RTMP connection threads: 0 (the shared runtime) to 64.
pub fn rtmp_threads(args: &IngestArgs, file: &FileConfig) -> anyhow::Result<usize> {
    match args.rtmp_threads.or(file.rtmp_threads).unwrap_or(0) {
        n @ 0..=64 => Ok(n),
        n => bail!("rtmp_threads must be 0 to 64, not {n}"),
    }
}

/// Merges the storage flags, variables and file fields. Credentials: the config file's
/// `s3_access_key_id`/`s3_secret_access_key`, else the AWS chain (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`…), read by the SDK.
pub fn storage(
    args: StorageArgs,
    file: &FileConfig,
    data_dir: &Path,
    segment_duration: Duration,
) -> anyhow::Result<StorageConfig> {
    if args.storage.or(file.storage).unwrap_or(StorageKind::Local) == StorageKind::Local {
        return Ok(StorageConfig::Local);
    }
    let Some(bucket) = args.s3_bucket.or_else(|| file.s3_bucket.clone()).filter(|b| !b.is_empty()) else {
        bail!("S3 storage needs a bucket: --s3-bucket, HAWKER_S3_BUCKET or s3_bucket in the config file");
    };
    let endpoint = args.s3_endpoint.or_else(|| file.s3_endpoint.clone()).filter(|e| !e.is_empty());
    let credentials = match (&file.s3_access_key_id, &file.s3_secret_access_key) {
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
        (None, None) => None,
        _ => bail!("the config file needs both s3_access_key_id and s3_secret_access_key, or neither"),
    };
    let delivery = match args.s3_delivery.or(file.s3_delivery).unwrap_or(DeliveryArg::Serve) {
        DeliveryArg::Serve => hawker_storage::Delivery::Serve,
        DeliveryArg::Redirect => hawker_storage::Delivery::Redirect,
    };
    let public_base_url = args.s3_public_base_url.or_else(|| file.s3_public_base_url.clone()).filter(|u| !u.is_empty());
    if let Some(url) = &public_base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("the S3 public base URL must start with http:// or https://, not {url:?}");
    }
    let concurrency = args.s3_upload_concurrency.or(file.s3_upload_concurrency).unwrap_or(4);
    if !(1..=64).contains(&concurrency) {
        bail!("S3 upload concurrency must be between 1 and 64, not {concurrency}");
    }
    let spool_max_bytes = args.spool_max_bytes.or(file.spool_max_bytes).unwrap_or(2 << 30);
    if spool_max_bytes < 16 << 20 {
        bail!("the spool bound must be at least 16 MiB (16777216 bytes), not {spool_max_bytes}");
    }
    let mut s3 = hawker_storage::S3Config::new(
        bucket,
        args.spool_dir.or_else(|| file.spool_dir.clone()).unwrap_or_else(|| data_dir.join("spool")),
    );
    s3.path_style = args.s3_path_style.or(file.s3_path_style).unwrap_or(endpoint.is_some());
    s3.endpoint = endpoint;
    s3.region = args.s3_region.or_else(|| file.s3_region.clone()).filter(|r| !r.is_empty());
    s3.prefix = args.s3_prefix.or_else(|| file.s3_prefix.clone()).unwrap_or_default();
    s3.credentials = credentials;
    s3.create_bucket = args.s3_create_bucket.or(file.s3_create_bucket).unwrap_or(false);
    s3.delivery = delivery;
    s3.public_base_url = public_base_url;
    s3.spool_max_bytes = spool_max_bytes;
    s3.upload_concurrency = concurrency;
    s3.slow_upload_warning = Some(segment_duration.mul_f64(0.9));
    Ok(StorageConfig::S3(s3))
}

/// Opens the configured store.
pub async fn open_store(config: &ServeConfig) -> anyhow::Result<std::sync::Arc<dyn hawker_storage::Store>> {
    Ok(match &config.storage {
        StorageConfig::Local => std::sync::Arc::new(hawker_storage::LocalStore::new(config.data_dir.join("media"))?),
        StorageConfig::S3(s3) => {
            let store = hawker_storage::S3Store::connect(s3.clone()).await.context("opening S3 storage")?;
            tracing::info!(
                bucket = %s3.bucket,
                endpoint = s3.endpoint.as_deref().unwrap_or("AWS"),
                delivery = ?s3.delivery,
                spool = %s3.spool_dir.display(),
                "media goes to S3"
            );
            std::sync::Arc::new(store)
        }
    })
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

/// Zero turns posters off; otherwise 1 s to 1 h.
pub fn poster_interval(seconds: f64) -> anyhow::Result<Duration> {
    if seconds != 0.0 && !(1.0..=3600.0).contains(&seconds) {
        bail!("poster interval must be 0 (off) or between 1 and 3600 seconds, not {seconds}");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The LL-HLS part target when `ll_hls` is on.
pub fn part_duration(ll_hls: bool, seconds: f64) -> anyhow::Result<Option<Duration>> {
    if !(0.2..=1.0).contains(&seconds) {
        bail!("part duration must be between 0.2 and 1.0 seconds, not {seconds}");
    }
    Ok(ll_hls.then(|| Duration::from_secs_f64(seconds)))
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

    /// Where the other nodes sharing the database reach this node's HTTP side: the setting,
    /// else the listener's address (the host's name in place of a wildcard address).
    pub fn advertise_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.advertise_url {
            return url.trim_end_matches('/').to_owned();
        }
        match bound.ip().is_unspecified() {
            true => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                format!("http://{}:{}", host.trim(), bound.port())
            }
            false => format!("http://{bound}"),
        }
    }

    pub fn http_url(&self, bound: SocketAddr) -> String {
        let url =
            self.public_http_url.clone().unwrap_or_else(|| format!("http://{}:{}", self.public_host, bound.port()));
        url.trim_end_matches('/').to_owned()
    }
}

#[cfg(test)]
mod storage_tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        ingest: IngestArgs,
    }

    #[test]
    fn ingest_limits_are_settings() {
        let file: FileConfig = toml::from_str(
            "rtmp_max_connections_per_ip = 200\nrtmp_bad_key_max_failures = 0\nrtmp_read_timeout = 30\n\
             rtmp_read_interval = 0\n",
        )
        .unwrap();
        let parse = |args: &[&str]| Args::try_parse_from([&["x"], args].concat()).unwrap().ingest;
        let limits = ingest_limits(parse(&["--rtmp-max-connections", "5000"]), &file).unwrap();
        assert_eq!(limits.max_connections, 5000);
        assert_eq!(limits.max_connections_per_ip, 200);
        assert_eq!(limits.bad_key_max_failures, 0, "0 turns the wrong-key limit off");
        assert_eq!(limits.read_timeout, Duration::from_secs(30));
        assert_eq!(limits.read_interval, Duration::ZERO, "0 reads as bytes arrive");
        let paced = ingest_limits(parse(&["--rtmp-read-interval", "0.1"]), &FileConfig::default()).unwrap();
        assert_eq!(paced.read_interval, Duration::from_millis(100));
        let slow = ingest_limits(parse(&["--rtmp-read-interval", "2"]), &FileConfig::default()).unwrap_err();
        assert!(slow.to_string().contains("rtmp_read_interval"), "{slow}");
        let flag_wins = ingest_limits(parse(&["--rtmp-max-connections-per-ip", "7"]), &file).unwrap();
        assert_eq!(flag_wins.max_connections_per_ip, 7);
        let defaults = ingest_limits(parse(&[]), &FileConfig::default()).unwrap();
        assert_eq!(defaults.max_connections_per_ip, hawker_ingest::Limits::default().max_connections_per_ip);
        let zero = ingest_limits(parse(&["--rtmp-max-connections", "0"]), &FileConfig::default()).unwrap_err();
        assert!(zero.to_string().contains("rtmp_max_connections"), "{zero}");
        let command = Args::command();
        let env =
            |id: &str| command.get_arguments().find(|a| a.get_id() == id).and_then(|a| a.get_env()).unwrap().to_owned();
        assert_eq!(env("rtmp_max_connections_per_ip"), "HAWKER_RTMP_MAX_CONNECTIONS_PER_IP");
        let threads = |args: &[&str]| rtmp_threads(&parse(args), &FileConfig::default());
        assert_eq!(threads(&[]).unwrap(), 0);
        assert_eq!(threads(&["--rtmp-threads", "4"]).unwrap(), 4);
        let err = threads(&["--rtmp-threads", "65"]).unwrap_err();
        assert!(err.to_string().contains("rtmp_threads"), "{err}");
    }

    #[test]
    fn storage_settings_have_their_documented_variables() {
        let command = Args::command();
        let env = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("{id}"));
            arg.get_env().unwrap().to_str().unwrap().to_owned()
        };
        for (id, var) in [
            ("storage", "HAWKER_STORAGE"),
            ("s3_endpoint", "HAWKER_S3_ENDPOINT"),
            ("s3_bucket", "HAWKER_S3_BUCKET"),
            ("s3_region", "HAWKER_S3_REGION"),
            ("s3_prefix", "HAWKER_S3_PREFIX"),
            ("s3_delivery", "HAWKER_S3_DELIVERY"),
            ("s3_public_base_url", "HAWKER_S3_PUBLIC_BASE_URL"),
            ("s3_create_bucket", "HAWKER_S3_CREATE_BUCKET"),
            ("spool_max_bytes", "HAWKER_SPOOL_MAX_BYTES"),
        ] {
            assert_eq!(env(id), var);
        }
    }

    #[test]
    fn flags_override_the_file_and_local_stays_the_default() {
        let file: FileConfig = toml::from_str(
            "storage = \"s3\"\ns3_bucket = \"from-file\"\ns3_delivery = \"redirect\"\ns3_prefix = \"p/\"\n\
             s3_access_key_id = \"AK\"\ns3_secret_access_key = \"SK\"\nspool_max_bytes = 33554432\n",
        )
        .unwrap();
        let dir = Path::new("/data");
        let two = Duration::from_secs(2);
        let parse = |args: &[&str]| Args::try_parse_from([&["x"], args].concat()).unwrap().storage;
        let StorageConfig::S3(s3) = storage(parse(&["--s3-bucket", "from-flag"]), &file, dir, two).unwrap() else {
            panic!("s3 expected")
        };
        assert_eq!(s3.bucket, "from-flag");
        assert_eq!(s3.delivery, hawker_storage::Delivery::Redirect);
        assert_eq!(s3.prefix, "p/");
        assert_eq!(s3.credentials, Some(("AK".into(), "SK".into())));
        assert!(!format!("{s3:?}").contains("SK\""), "the secret is never shown");
        assert_eq!(s3.spool_dir, dir.join("spool"));
        assert_eq!(s3.spool_max_bytes, 32 << 20);
        assert_eq!(s3.slow_upload_warning, Some(Duration::from_millis(1800)));
        assert!(!s3.path_style, "no endpoint: virtual-hosted style");
        let with_endpoint = storage(parse(&["--s3-endpoint", "http://127.0.0.1:9000"]), &file, dir, two).unwrap();
        assert!(matches!(with_endpoint, StorageConfig::S3(s3) if s3.path_style));

        assert!(matches!(storage(parse(&[]), &FileConfig::default(), dir, two).unwrap(), StorageConfig::Local));
        let no_bucket = storage(parse(&["--storage", "s3"]), &FileConfig::default(), dir, two).unwrap_err();
        assert!(no_bucket.to_string().contains("bucket"), "{no_bucket}");
        let local = storage(parse(&["--storage", "local"]), &file, dir, two).unwrap();
        assert!(matches!(local, StorageConfig::Local));
    }

    #[test]
    fn a_database_url_selects_postgresql_and_sqlite_stays_the_default() {
        let file: FileConfig = toml::from_str("database_url = \"postgres://h:pw@db:5432/hawker\"\n").unwrap();
        assert_eq!(database_url(None, &FileConfig::default()).unwrap(), None, "SQLite by default");
        assert_eq!(database_url(Some(String::new()), &FileConfig::default()).unwrap(), None);
        assert_eq!(database_url(None, &file).unwrap().as_deref(), Some("postgres://h:pw@db:5432/hawker"));
        let flag = Some("postgresql://db/other".to_owned());
        assert_eq!(database_url(flag, &file).unwrap().as_deref(), Some("postgresql://db/other"), "the flag wins");
        let err = database_url(Some("mysql://u:secret-pw@db/x".into()), &file).unwrap_err().to_string();
        assert!(err.contains("postgres://") && err.contains("\"mysql\""), "{err}");
        assert!(!err.contains("secret-pw"), "the password is never shown: {err}");
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The packaged example (`/etc/hawker/hawker.toml`) names every setting of the file, each
    /// commented out as `#name = value`: uncommented, it parses (no unknown or misspelt
    /// name: `deny_unknown_fields`) with every field set. A new field fails to compile here
    /// until the example documents it.
    #[test]
    fn the_packaged_example_documents_every_setting() {
        let text = include_str!("../deploy/debian/hawker.toml");
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(setting) if setting.starts_with(|c: char| c.is_ascii_lowercase()) => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let file: FileConfig = toml::from_str(&uncommented).expect("the example parses");
        let FileConfig {
            database_url,
            node_id,
            advertise_url,
            http,
            rtmp,
            rtmps,
            tls_cert,
            tls_key,
            tls_self_signed,
            public_host,
            public_http_url,
            public_rtmp_url,
            public_rtmps_url,
            segment_duration,
            live_window,
            poster_interval,
            ll_hls,
            part_duration,
            storage,
            s3_endpoint,
            s3_bucket,
            s3_region,
            s3_prefix,
            s3_path_style,
            s3_delivery,
            s3_public_base_url,
            s3_create_bucket,
            s3_access_key_id,
            s3_secret_access_key,
            s3_upload_concurrency,
            spool_dir,
            spool_max_bytes,
            rtmp_threads,
            rtmp_max_connections,
            rtmp_max_connections_per_ip,
            rtmp_bad_key_max_failures,
            rtmp_bad_key_window,
            rtmp_handshake_timeout,
            rtmp_read_timeout,
            rtmp_read_interval,
            rtmp_publish_timeout,
            rtmp_first_keyframe_timeout,
            trusted_proxies,
            http_max_connections,
            http_max_connections_per_ip,
            http_header_timeout,
            drain_timeout,
            metrics_token,
            metrics_listen,
        } = file;
        let set = [
            database_url.is_some(),
            node_id.is_some(),
            advertise_url.is_some(),
            http.is_some(),
            rtmp.is_some(),
            rtmps.is_some(),
            tls_cert.is_some(),
            tls_key.is_some(),
            tls_self_signed.is_some(),
            public_host.is_some(),
            public_http_url.is_some(),
            public_rtmp_url.is_some(),
            public_rtmps_url.is_some(),
            segment_duration.is_some(),
            live_window.is_some(),
            poster_interval.is_some(),
            ll_hls.is_some(),
            part_duration.is_some(),
            storage.is_some(),
            s3_endpoint.is_some(),
            s3_bucket.is_some(),
            s3_region.is_some(),
            s3_prefix.is_some(),
            s3_path_style.is_some(),
            s3_delivery.is_some(),
            s3_public_base_url.is_some(),
            s3_create_bucket.is_some(),
            s3_access_key_id.is_some(),
            s3_secret_access_key.is_some(),
            s3_upload_concurrency.is_some(),
            spool_dir.is_some(),
            spool_max_bytes.is_some(),
            rtmp_threads.is_some(),
            rtmp_max_connections.is_some(),
            rtmp_max_connections_per_ip.is_some(),
            rtmp_bad_key_max_failures.is_some(),
            rtmp_bad_key_window.is_some(),
            rtmp_handshake_timeout.is_some(),
            rtmp_read_timeout.is_some(),
            rtmp_read_interval.is_some(),
            rtmp_publish_timeout.is_some(),
            rtmp_first_keyframe_timeout.is_some(),
            trusted_proxies.is_some(),
            http_max_connections.is_some(),
            http_max_connections_per_ip.is_some(),
            http_header_timeout.is_some(),
            drain_timeout.is_some(),
            metrics_token.is_some(),
            metrics_listen.is_some(),
        ];
        let missing: Vec<usize> = set.iter().enumerate().filter(|(_, set)| !**set).map(|(i, _)| i).collect();
        assert!(missing.is_empty(), "settings missing from the example (by position in FileConfig): {missing:?}");
        // As shipped, everything is commented out: the defaults apply.
        let shipped: FileConfig = toml::from_str(text).unwrap();
        assert!(shipped.http.is_none() && shipped.storage.is_none() && shipped.database_url.is_none());
    }
}
