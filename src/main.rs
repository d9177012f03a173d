//! hawker: the composition root. Parses the command line and configuration, and wires the
//! ingest, packager, storage and API crates together.

mod config;
mod http_server;
mod live;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hawker_api::model::Role;
use hawker_api::secrets::token_expiry;
use hawker_api::{AppState, Db, Events, MetricsAccess, PublicUrls};
use hawker_packager::{Packager, PackagerConfig};
use hawker_storage::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{FileConfig, ServeConfig};
use crate::live::{Live, LiveControl};

#[derive(Parser)]
#[command(name = "hawker", version, about = "Live-shopping streaming backend: RTMP in, HLS out, a lifecycle API")]
struct Cli {
    /// Folder holding the SQLite database and the media.
    #[arg(long, global = true, env = "HAWKER_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// PostgreSQL instead of the SQLite file in the data folder, for several nodes:
    /// postgres://user:password@host:port/database.
    #[arg(long, global = true, env = "HAWKER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, env = "HAWKER_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text, or as one JSON object each (for a log collector). `RUST_LOG` sets
    /// what is logged (default `info`).
    #[arg(long, global = true, env = "HAWKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Logs every HTTP request: method, route template, status, duration (the `hawker::access`
    /// target at debug level; never a path's ids, a query or a token).
    #[arg(long, global = true, env = "HAWKER_ACCESS_LOG")]
    access_log: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    /// Runs the HTTP API and the RTMP ingest.
    Serve(ServeArgs),
    /// Manages users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Links shops to the sellers they sell for (a shop reports orders only to their streams).
    Shop {
        #[command(subcommand)]
        command: ShopCommand,
    },
    /// Creates or upgrades the database schema, then exits.
    Migrate,
    /// The server's MP4 export child process: a fragmented MP4 stream on stdin, one
    /// fast-start MP4 out (a muxer's fault then ends one export, not the server).
    #[command(hide = true)]
    RemuxMp4 {
        #[arg(long)]
        output: PathBuf,
        /// Where the fast-start copy is written before it replaces the output.
        #[arg(long)]
        scratch: PathBuf,
        /// Cut off the start of the video, to the frame, by edit lists.
        #[arg(long, default_value_t = 0)]
        trim_head_ns: u64,
        /// Cut off the end of the video.
        #[arg(long, default_value_t = 0)]
        trim_tail_ns: u64,
    },
}

// User ids are base64url and may start with "-": id arguments take hyphen values.
#[derive(Subcommand)]
enum ShopCommand {
    /// The shop may report orders to the seller's streams from now on.
    Link {
        /// The shop user's id.
        #[arg(long, allow_hyphen_values = true)]
        shop: String,
        /// The seller's user id.
        #[arg(long, allow_hyphen_values = true)]
        seller: String,
    },
    /// The shop may no longer report orders to the seller's streams.
    Unlink {
        #[arg(long, allow_hyphen_values = true)]
        shop: String,
        #[arg(long, allow_hyphen_values = true)]
        seller: String,
    },
    /// Lists the sellers a shop is linked to: id and name, one per line.
    Sellers {
        #[arg(long, allow_hyphen_values = true)]
        shop: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// This node's name among the nodes sharing a PostgreSQL database: it holds the leases of
    /// the streams published to it, and takes back its own after a restart. Unique per node
    /// [default: host name and data folder]
    #[arg(long, env = "HAWKER_NODE_ID")]
    node_id: Option<String>,
    /// Where the other nodes sharing the database reach this node's HTTP side, e.g.
    /// http://10.0.0.5:8080: they forward requests for the live streams it holds there
    /// [default: the HTTP listener's address, the host name for 0.0.0.0]
    #[arg(long, env = "HAWKER_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// HTTP listen address [default: 0.0.0.0:8080]
    #[arg(long, env = "HAWKER_HTTP")]
    http: Option<SocketAddr>,
    /// RTMP listen address [default: 0.0.0.0:1935]
    #[arg(long, env = "HAWKER_RTMP")]
    rtmp: Option<SocketAddr>,
    /// RTMPS listen address, used when a certificate is configured [default: 0.0.0.0:1936]
    #[arg(long, env = "HAWKER_RTMPS")]
    rtmps: Option<SocketAddr>,
    /// PEM certificate chain for RTMPS
    #[arg(long, env = "HAWKER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for RTMPS
    #[arg(long, env = "HAWKER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Turns RTMPS on with a self-signed certificate (made under the data dir, or at
    /// --tls-cert/--tls-key if they do not exist yet): for local testing only
    #[arg(long, env = "HAWKER_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
    /// Host name put in the URLs shown to sellers and viewers [default: localhost]
    #[arg(long, env = "HAWKER_PUBLIC_HOST")]
    public_host: Option<String>,
    /// Full public base URL of the HTTP side (behind a proxy), e.g. https://live.example.com
    #[arg(long, env = "HAWKER_PUBLIC_HTTP_URL")]
    public_http_url: Option<String>,
    /// Full public RTMP URL shown to sellers, e.g. rtmp://ingest.example.com/live
    #[arg(long, env = "HAWKER_PUBLIC_RTMP_URL")]
    public_rtmp_url: Option<String>,
    /// Full public RTMPS URL shown to sellers, e.g. rtmps://ingest.example.com:443/live
    #[arg(long, env = "HAWKER_PUBLIC_RTMPS_URL")]
    public_rtmps_url: Option<String>,
    /// Target segment duration in seconds (fractions allowed) [default: 2]
    #[arg(long, env = "HAWKER_SEGMENT_DURATION")]
    segment_duration: Option<f64>,
    /// Segments in the live playlist [default: 6]
    #[arg(long, env = "HAWKER_LIVE_WINDOW")]
    live_window: Option<usize>,
    /// Oldest poster (poster.jpg) a request gets while live; posters are made on request; 0 turns them off [default: 10]
    #[arg(long, env = "HAWKER_POSTER_INTERVAL")]
    poster_interval: Option<f64>,
    /// LL-HLS (parts, blocking playlist reload) in the live playlists; turn it off behind a
    /// CDN that cannot hold blocking requests [default: true]
    #[arg(long, env = "HAWKER_LL_HLS", action = clap::ArgAction::Set)]
    ll_hls: Option<bool>,
    /// LL-HLS part target in seconds, 0.2 to 1.0 [default: 0.2]
    #[arg(long, env = "HAWKER_PART_DURATION")]
    part_duration: Option<f64>,
    /// A reverse proxy in front of hawker (CIDR, e.g. 10.0.0.0/8; repeat or comma-separate):
    /// its X-Forwarded-For / Forwarded client address is used for per-client limits. Nobody
    /// else's is.
    #[arg(long = "trusted-proxy", env = "HAWKER_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Bearer token a Prometheus scraper must send for /metrics; with it, /metrics also
    /// shows each stream's ingest health
    #[arg(long, env = "HAWKER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Serve /metrics on this address only (e.g. 127.0.0.1:9100), with each stream's ingest
    /// health, instead of on the public HTTP listener
    #[arg(long, env = "HAWKER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Open HTTP connections at most, over all clients [default: 10000]
    #[arg(long, env = "HAWKER_HTTP_MAX_CONNECTIONS")]
    http_max_connections: Option<usize>,
    /// Open HTTP connections at most per client address (IPv6 by /64; a trusted proxy is not
    /// capped) [default: 256]
    #[arg(long, env = "HAWKER_HTTP_MAX_CONNECTIONS_PER_IP")]
    http_max_connections_per_ip: Option<usize>,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open [default: 15]
    #[arg(long, env = "HAWKER_HTTP_HEADER_TIMEOUT")]
    http_header_timeout: Option<f64>,
    /// Seconds a clean stop (SIGTERM, Ctrl-C) gives requests under way to end and live
    /// streams to store what they were sent; a second signal stops at once [default: 15]
    #[arg(long, env = "HAWKER_DRAIN_TIMEOUT")]
    drain_timeout: Option<f64>,
    #[command(flatten)]
    storage: config::StorageArgs,
    #[command(flatten)]
    ingest: config::IngestArgs,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user and prints its API token (one line, nothing else).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Days the token works [default: no expiry]
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Lists staff users (admins, sellers, shops): id, role and name, one per line.
    List,
    /// Gives the user a new API token (printed, one line); the old one stops working.
    RotateToken {
        #[arg(long, allow_hyphen_values = true)]
        id: String,
        /// Days the new token works [default: no expiry]
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Every token of the user stops working.
    Revoke {
        #[arg(long, allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Seller,
    Viewer,
    Shop,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Seller => Role::Seller,
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Shop => Role::Shop,
        }
    }
}

fn main() -> anyhow::Result<()> {
    tune_malloc();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

/// Keeps what live streams leave resident close to what they hold. Set before any thread
/// starts.
/// - glibc gives each thread that allocates its own arena (up to 8 per core). Every live
///   stream has a muxer thread whose buffers are freed on other threads, so memory freed in
///   one arena is not reused by another: two arenas keep about a megabyte less per stream
///   resident, with no measurable CPU cost.
/// - Blocks of 128 KiB and more (keyframes, decoded poster pictures) are mapped and given back
///   when freed. glibc would otherwise raise this threshold to the largest block freed so far
///   and keep such blocks in the heap, where they fragment it: about 0.2 MB less per stream.
///
/// jemalloc as Rust's allocator was measured against this: 20 % less CPU per LL-HLS viewer
/// (its thread caches spare glibc's arena locks), but 0.2 MB more per live stream with the
/// defaults and 0.45 MB more without LL-HLS, when its segments still left the muxer whole
/// (`cargo bench --bench viewers`, `--bench streams`).
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if cli.access_log {
        filter = filter.add_directive(format!("{}=debug", hawker_api::ACCESS_LOG).parse()?);
    }
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let file = FileConfig::load(cli.config.as_deref())?;
    let database = Database { data_dir: cli.data_dir.clone(), url: config::database_url(cli.database_url, &file)? };
    match cli.command {
        Command::Serve(args) => serve(merge(cli.data_dir, args, file)?, &database).await,
        Command::User { command: UserCommand::Create { name, role, expires_in_days } } => {
            let db = database.open().await?;
            let name = name.trim();
            anyhow::ensure!((1..=100).contains(&name.chars().count()), "--name must be 1 to 100 characters");
            let expires_at = token_expiry(expires_in_days).map_err(anyhow::Error::msg)?;
            let (user, mut token) = db.create_user(name, role.into()).await?;
            if expires_at.is_some() {
                token = db.rotate_token(&user.id, expires_at).await?.context("the user just made")?;
            }
            println!("{token}");
            Ok(())
        }
        Command::User { command: UserCommand::RotateToken { id, expires_in_days } } => {
            let db = database.open().await?;
            let token = db.rotate_token(&id, token_expiry(expires_in_days).map_err(anyhow::Error::msg)?).await?;
            println!("{}", token.with_context(|| format!("no user {id:?}"))?);
            Ok(())
        }
        Command::User { command: UserCommand::Revoke { id } } => {
            let db = database.open().await?;
            anyhow::ensure!(db.revoke_tokens(&id).await?, "no user {id:?}");
            Ok(())
        }
        Command::User { command: UserCommand::List } => {
            let db = database.open().await?;
            for user in db.staff_users().await? {
                println!("{}\t{}\t{}", user.id, user.role.as_str(), user.name);
            }
            Ok(())
        }
        Command::Shop { command } => shop_command(&database.open().await?, command).await,
        Command::Migrate => {
            let db = database.open().await?;
            tracing::info!(database = db.backend(), "database is up to date");
            Ok(())
        }
        Command::RemuxMp4 { output, scratch, trim_head_ns, trim_tail_ns } => {
            let trim = hawker_packager::Trim { head_ns: trim_head_ns, tail_ns: trim_tail_ns };
            // The server reads the last line of its error output: the error alone.
            if let Err(e) =
                tokio::task::spawn_blocking(move || hawker_packager::remux_stdin(&output, &scratch, trim)).await?
            {
                eprintln!("{e}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn shop_command(db: &Db, command: ShopCommand) -> anyhow::Result<()> {
    let has_role = async |id: &str, role: Role| anyhow::Ok(db.user(id).await?.is_some_and(|u| u.role == role));
    match command {
        ShopCommand::Link { shop, seller } => {
            anyhow::ensure!(has_role(&shop, Role::Shop).await?, "--shop {shop:?} is not a shop user's id");
            anyhow::ensure!(has_role(&seller, Role::Seller).await?, "--seller {seller:?} is not a seller's id");
            db.link_shop(&shop, &seller).await?;
        }
        ShopCommand::Unlink { shop, seller } => {
            anyhow::ensure!(db.unlink_shop(&shop, &seller).await?, "shop {shop:?} is not linked to seller {seller:?}");
        }
        ShopCommand::Sellers { shop } => {
            anyhow::ensure!(has_role(&shop, Role::Shop).await?, "--shop {shop:?} is not a shop user's id");
            for seller in db.shop_sellers(&shop).await? {
                println!("{}\t{}", seller.id, seller.name);
            }
        }
    }
    Ok(())
}

fn merge(data_dir: PathBuf, args: ServeArgs, file: FileConfig) -> anyhow::Result<ServeConfig> {
    let segment_duration = config::segment_duration(args.segment_duration.or(file.segment_duration).unwrap_or(2.0))?;
    let storage = config::storage(args.storage, &file, &data_dir, segment_duration)?;
    let rtmp_threads = config::rtmp_threads(&args.ingest, &file)?;
    let mut ingest = config::ingest_limits(args.ingest, &file)?;
    let self_signed = args.tls_self_signed || file.tls_self_signed.unwrap_or(false);
    let rtmps = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) if self_signed => Some((data_dir.join("tls/cert.pem"), data_dir.join("tls/key.pem"))),
        (None, None) => None,
        _ => anyhow::bail!("RTMPS needs both a certificate (--tls-cert) and a key (--tls-key)"),
    };
    let rtmps = rtmps.map(|(cert, key)| config::Rtmps {
        listen: args.rtmps.or(file.rtmps).unwrap_or_else(|| config::DEFAULT_RTMPS.parse().expect("valid default")),
        cert,
        key,
        self_signed,
    });
    let node_id = match args.node_id.or_else(|| file.node_id.clone()) {
        Some(id) => id,
        None => config::default_node_id(&data_dir)?,
    };
    let advertise_url = args.advertise_url.or_else(|| file.advertise_url.clone()).filter(|u| !u.trim().is_empty());
    if let Some(url) = &advertise_url {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "advertise_url must be an http:// or https:// URL, got {url:?}"
        );
    }
    let trusted_proxies = if args.trusted_proxies.is_empty() {
        file.trusted_proxies.clone().unwrap_or_default()
    } else {
        args.trusted_proxies
    };
    // A TCP load balancer in front of RTMP is a trusted proxy too: its address is every
    // publisher's, so the RTMP limits per address do not apply to it.
    ingest.shared_addresses = trusted_proxies.clone();
    Ok(ServeConfig {
        node_id,
        advertise_url,
        storage,
        ingest,
        rtmp_threads,
        metrics_token: args.metrics_token.or(file.metrics_token.clone()).filter(|t| !t.is_empty()),
        metrics_listen: args.metrics_listen.or(file.metrics_listen),
        http_limits: config::http_limits(
            args.http_max_connections.or(file.http_max_connections),
            args.http_max_connections_per_ip.or(file.http_max_connections_per_ip),
            args.http_header_timeout.or(file.http_header_timeout),
            args.drain_timeout.or(file.drain_timeout),
        )?,
        trusted_proxies,
        data_dir,
        rtmps,
        http: args.http.or(file.http).unwrap_or_else(|| config::DEFAULT_HTTP.parse().expect("valid default")),
        rtmp: args.rtmp.or(file.rtmp).unwrap_or_else(|| config::DEFAULT_RTMP.parse().expect("valid default")),
        public_host: args.public_host.or(file.public_host).unwrap_or_else(|| "localhost".into()),
        public_http_url: args.public_http_url.or(file.public_http_url),
        public_rtmp_url: args.public_rtmp_url.or(file.public_rtmp_url),
        public_rtmps_url: args.public_rtmps_url.or(file.public_rtmps_url),
        segment_duration,
        live_window: config::live_window(args.live_window.or(file.live_window).unwrap_or(6))?,
        poster_interval: config::poster_interval(args.poster_interval.or(file.poster_interval).unwrap_or(10.0))?,
        part_duration: config::part_duration(
            args.ll_hls.or(file.ll_hls).unwrap_or(true),
            args.part_duration.or(file.part_duration).unwrap_or(0.2),
        )?,
    })
}

/// Where the database is (see [`config::database_url`]).
struct Database {
    data_dir: PathBuf,
    url: Option<String>,
}

impl Database {
    /// Connects (SQLite: opens, creating the file) and brings the schema up to date.
    async fn open(&self) -> anyhow::Result<Db> {
        if let Some(url) = &self.url {
            let db = Db::connect(url).await.context("connecting to PostgreSQL (database_url)")?;
            db.migrate().await?;
            return Ok(db);
        }
        let data_dir = &self.data_dir;
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
        // The database holds stream keys and token digests: for hawker's user only.
        restrict(data_dir, 0o700)?;
        let db = Db::open(&data_dir.join("hawker.db")).await?;
        db.migrate().await?;
        for file in ["hawker.db", "hawker.db-wal", "hawker.db-shm"] {
            let file = data_dir.join(file);
            if file.exists() {
                restrict(&file, 0o600)?;
            }
        }
        Ok(db)
    }
}

fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to mode {mode:o}", path.display()))
}

/// This program's path, for its child processes. A binary replaced on disk while it runs (a
/// package upgrade) reads as "path (deleted)": the new one at the same path is run.
fn this_program() -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe().context("the path of this program")?;
    let text = path.to_string_lossy();
    Ok(text.strip_suffix(" (deleted)").map_or_else(|| path.clone(), PathBuf::from))
}

async fn serve(config: ServeConfig, database: &Database) -> anyhow::Result<()> {
    let db = database.open().await?.with_node(&config.node_id);
    tracing::info!(database = db.backend(), node = db.node(), "database is up to date");
    let recovered = db.recover_after_restart().await?;
    db.load_playback_index().await?;
    if !recovered.is_empty() {
        tracing::warn!(streams = recovered.len(), "streams left live by the last run now wait for their publisher");
    }
    let store: Arc<dyn Store> = config::open_store(&config).await?;
    // The segments those streams were writing when the crash came: before the ingest takes
    // their publishers back, so nothing is writing there now.
    for playback_id in &recovered {
        match store.remove_partials(&hawker_packager::names::stream_prefix(playback_id)).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(%playback_id, removed, "partial objects of the crash removed"),
            Err(e) => tracing::warn!(%playback_id, error = %e, "could not remove the crash's partial objects"),
        }
    }
    // Exports a crash cut short left their temporary files here: this node's alone.
    let work_dir = config.data_dir.join("work");
    if let Err(e) = std::fs::remove_dir_all(&work_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, dir = %work_dir.display(), "could not empty the export work folder");
    }
    let packager_config = PackagerConfig {
        segment_duration: config.segment_duration,
        live_window: config.live_window,
        poster_interval: config.poster_interval,
        part_duration: config.part_duration,
        ladder: Vec::new(),
        work_dir,
        remux_program: Some(this_program()?),
    };
    let db = db.with_setting_defaults(live::setting_defaults(&packager_config));
    let packager = Packager::new(store.clone(), packager_config)?;

    let http_listener =
        TcpListener::bind(config.http).await.with_context(|| format!("binding HTTP {}", config.http))?;
    let rtmp_listener =
        TcpListener::bind(config.rtmp).await.with_context(|| format!("binding RTMP {}", config.rtmp))?;
    let (http_addr, rtmp_addr) = (http_listener.local_addr()?, rtmp_listener.local_addr()?);
    let rtmps = match &config.rtmps {
        Some(rtmps) => Some(rtmps_listener(rtmps, &config.public_host).await?),
        None => None,
    };
    let rtmps_addr = match &rtmps {
        Some((listener, _)) => Some(listener.local_addr()?),
        None => None,
    };
    let urls = Arc::new(PublicUrls {
        rtmp: config.rtmp_url(rtmp_addr),
        rtmps: rtmps_addr.map(|addr| config.rtmps_url(addr)),
        http: config.http_url(http_addr),
    });

    // Nodes starting at once on an empty database: one of them sets it up.
    let first_start = db.first_start_lock().await?;
    if db.count_users().await? == 0 {
        seed_demo(&db, &urls).await?;
    }
    drop(first_start);

    let events = Events::new();
    let live = Arc::new(Live::new(db.clone(), events.clone(), packager).with_shared_bad_key_limit(&config.ingest));
    let shutdown = CancellationToken::new();
    let ingest = hawker_ingest::Server::new(live.clone(), config.ingest.clone())
        .with_runtimes(rtmp_runtimes(config.rtmp_threads)?);
    let control = Arc::new(LiveControl { live: live.clone(), ingest: ingest.stats() });
    let mut servers = vec![tokio::spawn(ingest.clone().serve(rtmp_listener, shutdown.clone()))];
    if let Some((listener, tls)) = rtmps {
        servers.push(tokio::spawn(ingest.serve_tls(listener, tls, shutdown.clone())));
    }
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding metrics {addr}"))?),
        None => None,
    };
    let metrics = MetricsAccess { token: config.metrics_token.clone(), own_listener: metrics_listener.is_some() };
    let state = AppState::new(db, store, (control.clone(), control), urls, events)
        .with_trusted_proxies(config.trusted_proxies.clone())
        .with_advertise_url(&config.advertise_url(http_addr))
        .with_metrics_access(metrics);
    if let Some(listener) = metrics_listener {
        let metrics = hawker_api::metrics_router(state.clone());
        tokio::spawn(async move { axum::serve(listener, metrics).await });
    }
    let background = tokio::spawn(hawker_api::run_background(state.clone()));
    let app = hawker_api::App::new(state.clone());
    match rtmps_addr {
        Some(rtmps) => {
            tracing::info!(http = %http_addr, rtmp = %rtmp_addr, %rtmps, "hawker ready: accepting HTTP, RTMP and RTMPS")
        }
        None => tracing::info!(http = %http_addr, rtmp = %rtmp_addr, "hawker ready: accepting HTTP and RTMP"),
    }

    let stop = shutdown.clone();
    let drain = config.http_limits.drain;
    let signalled = Arc::new(std::sync::OnceLock::new());
    let stopped = {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            let _ = signalled.set(tokio::time::Instant::now());
            tracing::info!(drain_seconds = drain.as_secs_f64(), "shutting down: a second signal stops at once");
            stop.cancel();
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("a second signal: stopping now, without waiting for the drain");
                std::process::exit(1);
            });
        }
    };
    http_server::serve(http_listener, app, config.http_limits.clone(), config.trusted_proxies.clone(), stopped).await?;
    shutdown.cancel();
    background.abort();
    for server in servers {
        server.await?;
    }
    // One drain time from the signal: the publishers are disconnected, and each stream stores
    // what it was sent in what is left of it (a stream cut short is as after a crash:
    // recovered up to its last stored segment).
    let deadline = signalled.get().copied().unwrap_or_else(tokio::time::Instant::now) + drain;
    if tokio::time::timeout_at(deadline, live.settle()).await.is_err() {
        tracing::warn!("streams still storing media at exit; a restart recovers them up to their last stored segment");
    }
    // Viewer counters not yet written; webhooks not yet delivered stay in the outbox.
    hawker_api::flush_counters(&state).await;
    Ok(())
}

/// The RTMP connections' runtimes: `n` threads, each a current-thread runtime (none: the
/// connections share the main runtime). A connection runs on one of them with everything it
/// starts (its packager's writer, its posters' tasks), so a stream's media crosses no thread
/// on the tokio side and a read never wakes a second worker to look for work: 0.84-1.01x
/// the CPU of the shared runtime, depending on the day (`cargo bench --bench streams --
/// --versus`); viewers are woken on the main runtime either way (`forward_progress`). The
/// threads run until the process exits; the ingest waits for its connections to end before
/// `serve` returns.
fn rtmp_runtimes(n: usize) -> anyhow::Result<Vec<tokio::runtime::Handle>> {
    (0..n)
        .map(|i| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("rtmp-{i}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            Ok(handle)
        })
        .collect()
}

/// Binds the RTMPS listener with its certificate, making a self-signed one first if asked.
async fn rtmps_listener(
    rtmps: &config::Rtmps,
    public_host: &str,
) -> anyhow::Result<(TcpListener, Arc<hawker_ingest::rustls::ServerConfig>)> {
    if rtmps.self_signed && !rtmps.cert.exists() && !rtmps.key.exists() {
        let names = vec![public_host.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()];
        hawker_ingest::generate_self_signed(&rtmps.cert, &rtmps.key, &names)?;
        tracing::warn!(cert = %rtmps.cert.display(), "RTMPS uses a new self-signed certificate: for testing only");
    }
    let tls = hawker_ingest::load_tls_config(&rtmps.cert, &rtmps.key)?;
    let listener = TcpListener::bind(rtmps.listen).await.with_context(|| format!("binding RTMPS {}", rtmps.listen))?;
    Ok((listener, Arc::new(tls)))
}

/// First start on an empty data dir: an admin, a demo seller and one scheduled stream, so a
/// new user can go live from OBS at once.
async fn seed_demo(db: &Db, urls: &PublicUrls) -> anyhow::Result<()> {
    let (_, admin_token) = db.create_user("admin", Role::Admin).await?;
    let (seller, seller_token) = db.create_user("demo-seller", Role::Seller).await?;
    let new = hawker_api::db::NewStream {
        owner_id: &seller.id,
        title: "Demo live shopping stream",
        description: Some("Created on first start"),
        scheduled_at: None,
        key_valid_from: None,
        key_valid_until: None,
        practice: false,
        remind_minutes_before: None,
    };
    let stream = db.create_stream(new).await?;
    // Shown once, on the operator's terminal; never written to the log.
    println!(
        "\nhawker is set up. Stream from OBS (Settings > Stream > Service: Custom):\n\
         \x20 RTMP server:   {}\n\
         \x20 Stream key:    {}\n\
         \x20 Playback URL:  {}\n\
         \x20 Seller token:  {}\n\
         \x20 Admin token:   {}\n\
         Pages: {http}/ (live now), {http}/studio (seller token), {http}/admin (admin token)\n\
         These are printed only on this first start; keep them.\n",
        urls.rtmp,
        stream.stream_key,
        urls.playback(&stream.playback_id),
        seller_token,
        admin_token,
        http = urls.http,
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
