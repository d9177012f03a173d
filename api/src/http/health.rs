//! `/healthz`: the process answers. `/readyz`: it can do its work: the database answers, and
//! the media folder takes a write or the S3 spool has room. For an orchestrator and alerts;
//! a balancer in front of nodes that share one database routes on `/healthz` (a database blip
//! would make every node unready at once, and live playback does not need the database).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::AppState;

/// A check slower than this has failed (the checks run side by side: a prober with a 1 s
/// timeout gets an answer).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);
/// Answers are reused this long: a public endpoint asked in a loop writes to the store at
/// most this often.
const REUSED_FOR: Duration = Duration::from_secs(2);
/// Above this share of its bound, the spool is too full to take a node's live streams; nor is
/// it with less than this free on its disk (a minute of a few 3 Mb/s streams).
const SPOOL_FULL: f64 = 0.9;
const SPOOL_DISK_MIN: u64 = 64 << 20;

type Answer = (StatusCode, Value);

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    static LAST: OnceLock<tokio::sync::Mutex<Option<(Instant, Answer)>>> = OnceLock::new();
    // One probe at a time; the others wait for its answer.
    let mut last = LAST.get_or_init(Default::default).lock().await;
    let answer = match last.as_ref().filter(|(at, _)| at.elapsed() < REUSED_FOR) {
        Some((_, answer)) => answer.clone(),
        None => {
            let answer = check(&state).await;
            *last = Some((Instant::now(), answer.clone()));
            answer
        }
    };
    (answer.0, [(header::CACHE_CONTROL, "no-store")], Json(answer.1))
}

async fn check(state: &AppState) -> Answer {
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => {
                tracing::warn!("readiness: the database: {e}");
                "unreachable"
            }
            Err(_) => "too slow",
        }
    };
    // A bucket is written through the spool: a node is ready while its spool has room (it
    // rides out a bucket outage), and is not made to upload probes. A folder is written to.
    let upload = state.store.upload_stats();
    let store = async {
        match &upload {
            Some(s) if s.spooled_bytes as f64 > s.spool_capacity_bytes as f64 * SPOOL_FULL => ("ok", "full"),
            Some(s) if s.spool_disk_free_bytes.is_some_and(|free| free < SPOOL_DISK_MIN) => ("ok", "disk full"),
            Some(_) => ("ok", "ok"),
            None => match tokio::time::timeout(CHECK_TIMEOUT, write_probe(state)).await {
                Ok(Ok(())) => ("ok", "none"),
                Ok(Err(e)) => {
                    tracing::warn!("readiness: the store: {e}");
                    ("not writable", "none")
                }
                Err(_) => ("too slow", "none"),
            },
        }
    };
    let (database, (store, spool)) = tokio::join!(database, store);
    let ready = database == "ok" && store == "ok" && !spool.contains("full");
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let bucket = upload.map(|s| if s.outage { "unreachable: spooling" } else { "ok" });
    let checks = json!({"database": database, "store": store, "spool": spool, "bucket": bucket});
    (status, json!({"status": if ready { "ready" } else { "not ready" }, "checks": checks}))
}

/// Writes and removes a small object of this process's own (a folder store).
async fn write_probe(state: &AppState) -> Result<(), hawker_storage::StoreError> {
    static KEY: OnceLock<String> = OnceLock::new();
    let key = KEY.get_or_init(|| format!("health/probe-{}", crate::secrets::new_id()));
    let meta = hawker_storage::ObjectMeta::new("text/plain", "no-store");
    state.store.put(key, Bytes::from_static(b"ready"), meta).await?;
    state.store.delete(key).await
}
