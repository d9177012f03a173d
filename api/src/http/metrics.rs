//! `/metrics` in the Prometheus text format, and `/api/v1/streams/{id}/stats` for sellers.
//! Labels carry stream ids, never keys.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;

use super::auth::Caller;
use super::commerce::totals_json;
use super::error::ApiError;
use crate::model::{LastRefusal, Stream, StreamStatus};
use crate::{AppState, IngestHealth};

/// One metric family: `# HELP`, `# TYPE`, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

fn single(value: u64) -> Vec<(String, f64)> {
    vec![(String::new(), value as f64)]
}

/// `/metrics`: with a metrics token configured, only for `Authorization: Bearer <token>`.
/// Per-stream series (each stream's ingest health) only where the endpoint is protected: by
/// that token, or by being served on its own address (`--metrics-listen`).
pub async fn prometheus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let access = &state.metrics;
    if let Some(token) = &access.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::secrets::constant_time_eq(given, token) {
            return ApiError::Unauthorized.into_response();
        }
    }
    render(&state, access.token.is_some() || access.own_listener).into_response()
}

fn render(state: &AppState, per_stream_series: bool) -> impl IntoResponse + use<> {
    let c = state.live.ingest_counters();
    let mut out = String::new();
    family(
        &mut out,
        "hawker_ingest_connections_open",
        "gauge",
        "RTMP(S) connections open.",
        &single(c.connections_open),
    );
    family(
        &mut out,
        "hawker_ingest_connections_accepted_total",
        "counter",
        "RTMP(S) connections accepted.",
        &single(c.connections_accepted),
    );
    let rejected =
        [("total_cap", c.connections_rejected_total_cap), ("per_address_cap", c.connections_rejected_per_ip_cap)];
    let rejected: Vec<_> = rejected.iter().map(|(r, v)| (format!("{{reason=\"{r}\"}}"), *v as f64)).collect();
    family(
        &mut out,
        "hawker_ingest_connections_rejected_total",
        "counter",
        "Connections closed at once by a cap.",
        &rejected,
    );
    family(
        &mut out,
        "hawker_ingest_handshake_failures_total",
        "counter",
        "Connections that failed the handshake.",
        &single(c.handshake_failures),
    );
    family(&mut out, "hawker_ingest_publishes_active", "gauge", "Publishers connected.", &single(c.publishes_active));
    family(
        &mut out,
        "hawker_ingest_publishes_accepted_total",
        "counter",
        "Publishes accepted.",
        &single(c.publishes_accepted),
    );
    let refused = [
        ("bad_key", c.refused_bad_key),
        ("bad_app", c.refused_bad_app),
        ("unavailable", c.refused_unavailable),
        ("rate_limited", c.refused_rate_limited),
    ];
    let refused: Vec<_> = refused.iter().map(|(r, v)| (format!("{{reason=\"{r}\"}}"), *v as f64)).collect();
    family(&mut out, "hawker_ingest_publishes_refused_total", "counter", "Publishes refused, by reason.", &refused);

    let build = [(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1.0)];
    family(&mut out, "hawker_build_info", "gauge", "The running build (1), by version.", &build);
    if let Some(upload) = state.store.upload_stats() {
        storage_families(&mut out, &upload);
    }

    let hooks = &crate::webhooks::COUNTERS;
    let deliveries = [
        ("delivered", hooks.delivered.load(Ordering::Relaxed)),
        ("skipped", hooks.skipped.load(Ordering::Relaxed)),
        ("failed", hooks.failed.load(Ordering::Relaxed)),
        ("abandoned", hooks.abandoned.load(Ordering::Relaxed)),
    ];
    let deliveries: Vec<_> = deliveries.iter().map(|(r, v)| (format!("{{outcome=\"{r}\"}}"), *v as f64)).collect();
    family(
        &mut out,
        "hawker_webhook_deliveries_total",
        "counter",
        "Webhook delivery attempts, by outcome (skipped: webhooks off or the target refused; abandoned: failed for the last time).",
        &deliveries,
    );
    http_families(&mut out);
    process_families(&mut out);

    let streams = if per_stream_series { state.live.all_ingest_health() } else { Vec::new() };
    let per_stream = |value: fn(&IngestHealth) -> f64| -> Vec<(String, f64)> {
        streams.iter().map(|(id, h)| (format!("{{stream=\"{id}\"}}"), value(h))).collect()
    };
    // (name, type, help, value)
    type StreamFamily = (&'static str, &'static str, &'static str, fn(&IngestHealth) -> f64);
    let stream_families: [StreamFamily; 11] = [
        ("hawker_stream_publisher_connected", "gauge", "1 while a publisher is connected.", |h| {
            f64::from(u8::from(h.connected))
        }),
        ("hawker_stream_ingest_bitrate_bps", "gauge", "Incoming bit rate over the last seconds.", |h| {
            h.bitrate_in_bps as f64
        }),
        ("hawker_stream_packaged_bitrate_bps", "gauge", "Media bit rate handed to packaging.", |h| {
            h.bitrate_out_bps as f64
        }),
        ("hawker_stream_ingest_bytes_total", "counter", "Bytes received from the publisher.", |h| h.bytes_in as f64),
        ("hawker_stream_video_frames_total", "counter", "Video frames received.", |h| h.video_frames as f64),
        ("hawker_stream_audio_frames_total", "counter", "Audio frames received.", |h| h.audio_frames as f64),
        ("hawker_stream_keyframes_total", "counter", "Video keyframes received.", |h| h.keyframes as f64),
        ("hawker_stream_keyframe_interval_seconds", "gauge", "Latest interval between keyframes.", |h| {
            h.keyframe_interval_ms.map_or(0.0, |ms| ms as f64 / 1000.0)
        }),
        ("hawker_stream_fps", "gauge", "Video frames per second.", |h| h.fps),
        ("hawker_stream_timestamp_discontinuities_total", "counter", "Timestamp jumps smoothed over.", |h| {
            h.timestamp_discontinuities as f64
        }),
        ("hawker_stream_dropped_media_total", "counter", "Media the ingest could not deliver.", |h| h.dropped as f64),
    ];
    for (name, kind, help, value) in stream_families {
        family(&mut out, name, kind, help, &per_stream(value));
    }
    let viewers = if per_stream_series { state.engagement.current_by_stream() } else { Vec::new() };
    let viewers: Vec<_> = viewers.into_iter().map(|(id, n)| (format!("{{stream=\"{id}\"}}"), n as f64)).collect();
    family(&mut out, "hawker_stream_viewers", "gauge", "Live viewer sessions on this node.", &viewers);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}

/// Bounds (seconds) of the HTTP request durations: an API call takes milliseconds, an LL-HLS
/// blocking reload up to three part targets.
const HTTP_SECONDS_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Requests and their durations, by method, route template and status: a bounded set (routes
/// are templates, unmatched requests one route).
#[derive(Default)]
struct HttpSeries {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; HTTP_SECONDS_BUCKETS.len()],
}

/// By (method, status), then route: a request's series is found without allocating (it runs
/// for every media request).
type HttpTable = std::collections::BTreeMap<(&'static str, u16), std::collections::BTreeMap<String, HttpSeries>>;

fn http_series() -> &'static std::sync::Mutex<HttpTable> {
    static SERIES: std::sync::OnceLock<std::sync::Mutex<HttpTable>> = std::sync::OnceLock::new();
    SERIES.get_or_init(Default::default)
}

/// Counts one answered request. Methods outside the standard ones count as `other`: a client
/// may send any token as a method, and each would be a new series.
pub(super) fn record_request(method: &str, route: &str, status: u16, took: std::time::Duration) {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let method = KNOWN.into_iter().find(|m| *m == method).unwrap_or("other");
    let seconds = took.as_secs_f64();
    let mut series = http_series().lock().unwrap_or_else(|e| e.into_inner());
    let routes = series.entry((method, status)).or_default();
    if !routes.contains_key(route) {
        routes.insert(route.to_owned(), HttpSeries::default());
    }
    let Some(one) = routes.get_mut(route) else { return };
    one.count += 1;
    one.sum_seconds += seconds;
    for (bound, count) in HTTP_SECONDS_BUCKETS.iter().zip(one.buckets.iter_mut()) {
        if seconds <= *bound {
            *count += 1;
        }
    }
}

fn http_families(out: &mut String) {
    let table = http_series().lock().unwrap_or_else(|e| e.into_inner());
    let series: Vec<(String, &HttpSeries)> = table
        .iter()
        .flat_map(|((method, status), routes)| {
            routes
                .iter()
                .map(move |(route, s)| (format!("method=\"{method}\",route=\"{route}\",status=\"{status}\""), s))
        })
        .collect();
    let counts: Vec<_> = series.iter().map(|(labels, s)| (format!("{{{labels}}}"), s.count as f64)).collect();
    family(out, "hawker_http_requests_total", "counter", "HTTP requests answered.", &counts);
    let name = "hawker_http_request_duration_seconds";
    let _ = writeln!(out, "# HELP {name} Time to an HTTP response's headers.\n# TYPE {name} histogram");
    for (labels, s) in &series {
        for (bound, count) in HTTP_SECONDS_BUCKETS.iter().zip(s.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {}", s.sum_seconds, s.count);
    }
}

/// The process's own figures, named as Prometheus' client libraries name them, from /proc.
fn process_families(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // The fields after the command name (which may hold spaces), from field 3 on.
    let Some(fields) = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>()) else {
        return;
    };
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK) as f64, libc::sysconf(libc::_SC_PAGESIZE) as f64) };
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok()))
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64;
    let gauges = [
        ("process_cpu_seconds_total", "counter", "CPU time used, user and system.", (field(14) + field(15)) / ticks),
        ("process_resident_memory_bytes", "gauge", "Resident memory.", field(24) * page),
        ("process_virtual_memory_bytes", "gauge", "Virtual memory.", field(23)),
        ("process_start_time_seconds", "gauge", "Start time, seconds since the Unix epoch.", boot + field(22) / ticks),
        ("process_open_fds", "gauge", "Open file descriptors.", fds),
        ("process_threads", "gauge", "Threads.", field(20)),
    ];
    for (name, kind, help, value) in gauges {
        family(out, name, kind, help, &[(String::new(), value)]);
    }
}

/// The S3 upload queue: its spool, its uploads and their latency (put to readable remotely).
fn storage_families(out: &mut String, s: &hawker_storage::UploadStats) {
    let gauges: [(&str, &str, f64); 6] = [
        ("hawker_storage_spool_objects", "Objects waiting in the spool to be uploaded.", s.spooled_objects as f64),
        ("hawker_storage_spool_bytes", "Bytes waiting in the spool.", s.spooled_bytes as f64),
        ("hawker_storage_spool_capacity_bytes", "The spool's bound.", s.spool_capacity_bytes as f64),
        (
            "hawker_storage_oldest_waiting_seconds",
            "How long the oldest spooled object has waited (0: none).",
            s.oldest_waiting.map_or(0.0, |d| d.as_secs_f64()),
        ),
        ("hawker_storage_outage", "1 while uploads to the bucket fail.", f64::from(u8::from(s.outage))),
        (
            "hawker_storage_spool_disk_free_bytes",
            "Bytes free on the spool's disk.",
            s.spool_disk_free_bytes.map_or(f64::NAN, |b| b as f64),
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help, &[(String::new(), value)]);
    }
    family(out, "hawker_storage_uploads_total", "counter", "Objects uploaded.", &single(s.uploaded));
    family(
        out,
        "hawker_storage_upload_failures_total",
        "counter",
        "Upload attempts that failed.",
        &single(s.failed_attempts),
    );
    family(
        out,
        "hawker_storage_puts_refused_total",
        "counter",
        "Puts refused: the spool was full.",
        &single(s.refused),
    );
    let name = "hawker_storage_upload_seconds";
    let _ = writeln!(out, "# HELP {name} Time from put to readable in the bucket.\n# TYPE {name} histogram");
    let h = &s.upload_seconds;
    for (bound, count) in hawker_storage::UPLOAD_SECONDS_BUCKETS.iter().zip(h.buckets) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
        h.count, h.sum_seconds, h.count
    );
}

#[derive(Serialize)]
pub struct StreamStats {
    status: StreamStatus,
    /// Seconds since the stream first went live (to its end, once ended).
    duration_seconds: Option<f64>,
    reconnects: i64,
    /// The latest publish's health; null when nothing is being packaged.
    ingest: Option<IngestHealth>,
    /// Live viewer sessions now, most at once, sessions that joined while on air.
    viewers_current: i64,
    viewers_peak: i64,
    viewers_unique: i64,
    /// Sessions that joined the replay.
    replay_views: i64,
    likes: i64,
    dislikes: i64,
    /// Chat messages (deleted ones not counted).
    comments: i64,
    /// Shares of the stream's link, and per channel.
    shares: i64,
    shares_by_channel: serde_json::Map<String, serde_json::Value>,
    /// Orders attributed to the stream, units in them, revenue by currency, and the same
    /// per product and currency.
    orders: i64,
    units: i64,
    revenue: serde_json::Value,
    products: serde_json::Value,
    /// The last publish refused or dropped for a reason the seller can fix, with the fix.
    last_refusal: Option<LastRefusal>,
}

/// The seller's figures of a stream (also pushed to the seller's event socket).
pub async fn stats_of(state: &AppState, stream: &Stream) -> Result<StreamStats, ApiError> {
    let duration_seconds = stream
        .started_at
        .map(|start| (stream.ended_at.unwrap_or_else(Utc::now) - start).num_milliseconds() as f64 / 1000.0);
    let viewers = state.engagement.viewer_stats(&state.db, &stream.id).await?;
    let (likes, dislikes) = state.db.reaction_counts(&stream.id).await?;
    let totals = state.db.order_totals(&stream.id).await?;
    let mut commerce = totals_json(&totals, true);
    let shares = state.db.share_counts(&stream.id).await?;
    Ok(StreamStats {
        status: stream.status,
        duration_seconds,
        reconnects: (stream.publish_seq - 1).max(0),
        ingest: state.live.ingest_health(&stream.id),
        viewers_current: viewers.current,
        viewers_peak: viewers.peak,
        viewers_unique: viewers.unique,
        replay_views: viewers.replay_views,
        likes,
        dislikes,
        comments: state.db.chat_count(&stream.id).await?,
        shares: shares.iter().map(|(_, n)| n).sum(),
        shares_by_channel: shares.into_iter().map(|(channel, n)| (channel, n.into())).collect(),
        orders: totals.orders,
        units: totals.units,
        revenue: commerce["revenue"].take(),
        products: commerce["products"].take(),
        last_refusal: crate::refusals::last(&state.db, &stream.id).await?,
    })
}

/// The seller's view of a stream: its owner and admins only.
pub async fn stream_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StreamStats>, ApiError> {
    let stream = state.db.stream(&id).await?.ok_or(ApiError::NotFound("stream"))?;
    if !caller.controls(&stream) {
        return Err(ApiError::Forbidden("only the stream's owner or an admin sees its stats"));
    }
    Ok(Json(stats_of(&state, &stream).await?))
}
