//! The upload queue of remote backends: every `put` lands in the spool first and returns;
//! workers upload in the background, in parallel, in put order, with retries and backoff.
//!
//! Rules kept here (the store knows nothing of HLS):
//! - An object that is not immutable (a playlist, which may name others) is uploaded only when
//!   every object put before it is uploaded: the bucket never holds a playlist naming a missing
//!   segment. Immutable objects upload in parallel.
//! - A newer version of a key that waits replaces the waiting one (only the latest playlist
//!   matters).
//! - The spool is bounded: when full, a put is refused (loudly); nothing waiting is dropped.
//! - `get` answers from a small memory cache of recent objects, then from the spool, then from
//!   the remote: what was put is readable at once, also while the remote is down.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::spool::Spool;
use crate::{Object, ObjectMeta, StoreError, check_key};

/// The remote side of a queued store (an S3 bucket, or a fake in tests).
#[async_trait]
pub(crate) trait Remote: Send + Sync + 'static {
    async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes up to 1000 keys in one request; missing keys are not an error.
    async fn delete_batch(&self, keys: &[String]) -> Result<(), StoreError>;
    /// A URL a viewer can fetch the (uploaded) object from, when delivering by redirect.
    async fn public_url(&self, key: &str) -> Option<String>;
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub concurrency: usize,
    /// Warn when the average time from put to uploaded (immutable objects) passes this.
    pub slow_upload_warning: Option<Duration>,
    /// Bytes of recent objects kept in memory for `get`.
    pub cache_bytes: u64,
    /// First and longest pause between failed attempts.
    pub backoff: (Duration, Duration),
}

/// What the queue is doing, for logs, tests and the benchmark.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadStats {
    /// Objects waiting in the spool (including those being uploaded).
    pub spooled_objects: usize,
    pub spooled_bytes: u64,
    pub uploaded: u64,
    pub failed_attempts: u64,
    /// Puts refused because the spool was full.
    pub refused: u64,
    /// Uploads are failing right now.
    pub outage: bool,
    /// Average time from put to readable remotely, of the last immutable objects.
    pub average_upload: Option<Duration>,
    /// The spool's bound.
    pub spool_capacity_bytes: u64,
    /// How long the oldest object still spooled has waited.
    pub oldest_waiting: Option<Duration>,
    /// Bytes free on the spool's file system (its bound may be more than the disk holds).
    pub spool_disk_free_bytes: Option<u64>,
    /// Times from put to readable remotely, every upload: counts at or under each of
    /// [`UPLOAD_SECONDS_BUCKETS`] (cumulative, as Prometheus has them), with their sum.
    pub upload_seconds: Histogram,
}

/// The bounds (seconds) of [`UploadStats::upload_seconds`]: a segment's upload is due well
/// within its duration.
pub const UPLOAD_SECONDS_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A cumulative histogram over [`UPLOAD_SECONDS_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or under each bound.
    pub buckets: [u64; UPLOAD_SECONDS_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bound, count) in UPLOAD_SECONDS_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

struct Entry {
    key: String,
    meta: ObjectMeta,
    size: u64,
    queued: Instant,
    /// Its spool file is written.
    ready: bool,
    in_flight: bool,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<u64, Entry>,
    /// The newest ready entry of each waiting key.
    by_key: HashMap<String, u64>,
    next_seq: u64,
    used: u64,
    retry_at: Option<Instant>,
    backoff: Duration,
    outage_since: Option<Instant>,
    last_outage_warning: Option<Instant>,
    recent: VecDeque<Duration>,
    last_slow_warning: Option<Instant>,
    /// Objects piled up (outage, or an earlier run): say so when the spool is empty again.
    draining: bool,
    stats: UploadStats,
}

const RECENT: usize = 10;

/// Recent objects in memory, oldest evicted first.
#[derive(Default)]
struct Cache {
    objects: HashMap<String, (u64, Object)>,
    order: VecDeque<(u64, String)>,
    bytes: u64,
    next: u64,
}

impl Cache {
    fn insert(&mut self, key: &str, object: Object, limit: u64) {
        self.remove(key);
        let size = object.bytes.len() as u64;
        if size > limit / 4 {
            return;
        }
        self.next += 1;
        self.bytes += size;
        self.objects.insert(key.to_owned(), (self.next, object));
        self.order.push_back((self.next, key.to_owned()));
        while self.bytes > limit {
            let Some((n, key)) = self.order.pop_front() else { break };
            if self.objects.get(&key).is_some_and(|(m, _)| *m == n) {
                self.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, object)) = self.objects.remove(key) {
            self.bytes -= object.bytes.len() as u64;
        }
        if self.order.len() > 2 * self.objects.len() + 64 {
            let objects = &self.objects;
            self.order.retain(|(n, k)| objects.get(k).is_some_and(|(m, _)| m == n));
        }
    }
}

struct Shared<R> {
    remote: R,
    spool: Spool,
    options: Options,
    state: Mutex<State>,
    cache: Mutex<Cache>,
    /// Work became available, or an upload finished.
    wake: Notify,
}

pub(crate) struct Uploader<R: Remote> {
    shared: Arc<Shared<R>>,
    workers: Vec<JoinHandle<()>>,
}

impl<R: Remote> Drop for Uploader<R> {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

impl<R: Remote> Uploader<R> {
    /// Opens the spool and starts the workers; what a previous run left is uploaded first.
    pub fn start(remote: R, options: Options) -> Result<Self, StoreError> {
        let (spool, found) = Spool::open(&options.spool_dir)?;
        let mut state = State { backoff: options.backoff.0, ..State::default() };
        let mut stale = Vec::new();
        for entry in found {
            state.next_seq = state.next_seq.max(entry.seq + 1);
            state.used += entry.size;
            if let Some(older) = state.by_key.insert(entry.key.clone(), entry.seq) {
                // Only the newest version of a key is worth uploading.
                let old = state.entries.remove(&older).expect("indexed entry");
                state.used -= old.size;
                stale.push(older);
            }
            let queued = Instant::now();
            let entry =
                Entry { key: entry.key, meta: entry.meta, size: entry.size, queued, ready: true, in_flight: false };
            state.entries.insert(state.next_seq - 1, entry);
        }
        for seq in stale {
            let _ = std::fs::remove_file(options.spool_dir.join(format!("{seq:016x}.obj")));
        }
        if !state.entries.is_empty() {
            state.draining = true;
            tracing::warn!(
                objects = state.entries.len(),
                bytes = state.used,
                spool = %options.spool_dir.display(),
                "the spool holds objects of an earlier run: uploading them"
            );
        }
        let shared = Arc::new(Shared {
            remote,
            spool,
            options,
            state: Mutex::new(state),
            cache: Mutex::new(Cache::default()),
            wake: Notify::new(),
        });
        let workers = (0..shared.options.concurrency.max(1)).map(|_| tokio::spawn(work(shared.clone()))).collect();
        Ok(Self { shared, workers })
    }

    pub fn remote(&self) -> &R {
        &self.shared.remote
    }

    pub fn stats(&self) -> UploadStats {
        let state = self.shared.state.lock().unwrap();
        let mut stats = state.stats.clone();
        stats.spooled_objects = state.entries.len();
        stats.spooled_bytes = state.used;
        stats.outage = state.outage_since.is_some();
        stats.average_upload = average(&state.recent);
        stats.spool_capacity_bytes = self.shared.options.spool_max_bytes;
        stats.oldest_waiting = state.entries.values().map(|e| e.queued).min().map(|at| at.elapsed());
        drop(state);
        stats.spool_disk_free_bytes = self.shared.spool.disk_free();
        stats
    }

    /// Waits until the spool is empty; false if `timeout` passes first.
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.state.lock().unwrap().entries.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.state.lock().unwrap().entries.is_empty();
            }
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError> {
        check_key(key)?;
        let shared = &self.shared;
        let size = Spool::file_size(key, bytes.len());
        let seq = shared.reserve(key, meta, size)?;
        if let Err(e) = shared.spool.write(seq, key, meta, &bytes).await {
            let mut state = shared.state.lock().unwrap();
            if let Some(entry) = state.entries.remove(&seq) {
                state.used -= entry.size;
            }
            drop(state);
            shared.wake.notify_waiters();
            tracing::error!(key, %e, "writing to the spool failed");
            return Err(e.into());
        }
        let replaced = {
            let mut state = shared.state.lock().unwrap();
            match state.entries.get_mut(&seq) {
                // Cancelled by a delete while it was being written.
                None => Err(()),
                Some(entry) => {
                    entry.ready = true;
                    let older = state.by_key.insert(key.to_owned(), seq);
                    match older.and_then(|older| state.entries.get(&older).map(|e| (older, e.in_flight))) {
                        Some((older, false)) => {
                            let old = state.entries.remove(&older).expect("just seen");
                            state.used -= old.size;
                            Ok(Some(older))
                        }
                        _ => Ok(None),
                    }
                }
            }
        };
        let Ok(replaced) = replaced else {
            shared.spool.remove(seq).await;
            return Ok(());
        };
        shared.cache.lock().unwrap().insert(key, Object { bytes, meta }, shared.options.cache_bytes);
        shared.wake.notify_waiters();
        if let Some(older) = replaced {
            shared.spool.remove(older).await;
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match self.get_local(key).await? {
            Some(object) => Ok(Some(object)),
            None => self.shared.remote.get(key).await,
        }
    }

    /// The object if it is still here (cached or waiting in the spool), not asking the remote.
    pub async fn get_local(&self, key: &str) -> Result<Option<Object>, StoreError> {
        check_key(key)?;
        let shared = &self.shared;
        if let Some((_, object)) = shared.cache.lock().unwrap().objects.get(key) {
            return Ok(Some(object.clone()));
        }
        let waiting = {
            let state = shared.state.lock().unwrap();
            state.by_key.get(key).and_then(|seq| state.entries.get(seq).map(|e| (*seq, e.meta)))
        };
        if let Some((seq, meta)) = waiting {
            // Gone meanwhile means uploaded: then the remote has it.
            if let Some(bytes) = shared.spool.read(seq).await? {
                return Ok(Some(Object { bytes, meta }));
            }
        }
        Ok(None)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        self.cancel(|k| k == key).await;
        self.shared.remote.delete_batch(&[key.to_owned()]).await
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // The spool first: an object that leaves it afterwards is in the bucket by then, so the
        // remote listing has it. (The other order missed an upload finishing in between.)
        let mut keys: Vec<String> = {
            let state = self.shared.state.lock().unwrap();
            state.by_key.keys().filter(|k| k.starts_with(prefix)).cloned().collect()
        };
        keys.extend(self.shared.remote.list(prefix).await?);
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Cancels waiting uploads under `prefix`, then deletes the remote objects in batches.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let cancelled = self.cancel(|k| k.starts_with(prefix)).await;
        let remote = self.shared.remote.list(prefix).await?;
        for batch in remote.chunks(1000) {
            self.shared.remote.delete_batch(batch).await?;
        }
        let all: HashSet<&String> = remote.iter().chain(cancelled.iter()).collect();
        Ok(all.len())
    }

    /// Cancels waiting uploads of these keys and deletes them remotely in batches.
    pub async fn delete_many(&self, keys: &[String]) -> Result<usize, StoreError> {
        for key in keys {
            check_key(key)?;
        }
        let set: HashSet<&str> = keys.iter().map(String::as_str).collect();
        self.cancel(|k| set.contains(k)).await;
        for batch in keys.chunks(1000) {
            self.shared.remote.delete_batch(batch).await?;
        }
        Ok(keys.len())
    }

    pub async fn public_url(&self, key: &str) -> Option<String> {
        check_key(key).ok()?;
        if self.shared.state.lock().unwrap().by_key.contains_key(key) {
            return None;
        }
        self.shared.remote.public_url(key).await
    }

    /// Removes waiting objects whose key matches, after letting uploads in flight finish;
    /// returns their keys.
    async fn cancel(&self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let shared = &self.shared;
        {
            let mut cache = shared.cache.lock().unwrap();
            let keys: Vec<String> = cache.objects.keys().filter(|k| matches(k)).cloned().collect();
            for key in keys {
                cache.remove(&key);
            }
        }
        let mut removed = Vec::new();
        loop {
            let notified = shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (seqs, busy) = {
                let mut state = shared.state.lock().unwrap();
                let mut seqs = Vec::new();
                let mut busy = false;
                let matching: Vec<u64> =
                    state.entries.iter().filter(|(_, e)| matches(&e.key)).map(|(s, _)| *s).collect();
                for seq in matching {
                    let entry = &state.entries[&seq];
                    if entry.in_flight || !entry.ready {
                        busy = true;
                        continue;
                    }
                    let entry = state.entries.remove(&seq).expect("listed");
                    state.used -= entry.size;
                    if state.by_key.get(&entry.key) == Some(&seq) {
                        state.by_key.remove(&entry.key);
                    }
                    removed.push(entry.key);
                    seqs.push(seq);
                }
                (seqs, busy)
            };
            for seq in seqs {
                shared.spool.remove(seq).await;
            }
            if !busy {
                shared.wake.notify_waiters();
                return removed;
            }
            notified.await;
        }
    }
}

impl<R: Remote> Shared<R> {
    /// Takes a sequence number and room in the spool; a put that cannot fit is refused.
    fn reserve(&self, key: &str, meta: ObjectMeta, size: u64) -> Result<u64, StoreError> {
        let max = self.options.spool_max_bytes;
        let mut state = self.state.lock().unwrap();
        if state.used + size > max {
            state.stats.refused += 1;
            let message = format!("{} bytes of objects wait for upload (bound {max}); {key} refused", state.used);
            tracing::error!(
                key,
                spooled_bytes = state.used,
                bound = max,
                "SPOOL FULL: the put is refused; the remote store must come back or the spool bound must grow"
            );
            return Err(StoreError::SpoolFull(message));
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.used += size;
        let entry = Entry { key: key.to_owned(), meta, size, queued: Instant::now(), ready: false, in_flight: false };
        state.entries.insert(seq, entry);
        Ok(seq)
    }
}

enum Next {
    Upload { seq: u64, key: String, meta: ObjectMeta },
    WaitUntil(Instant),
    Idle,
}

fn next_job(state: &mut State) -> Next {
    if let Some(at) = state.retry_at
        && at > Instant::now()
    {
        return Next::WaitUntil(at);
    }
    let first = state.entries.keys().next().copied();
    for (seq, entry) in state.entries.iter_mut() {
        if !entry.ready || entry.in_flight {
            continue;
        }
        // An object that may name others waits for everything put before it.
        if !entry.meta.is_immutable() && Some(*seq) != first {
            continue;
        }
        entry.in_flight = true;
        return Next::Upload { seq: *seq, key: entry.key.clone(), meta: entry.meta };
    }
    Next::Idle
}

async fn work<R: Remote>(shared: Arc<Shared<R>>) {
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = next_job(&mut shared.state.lock().unwrap());
        let (seq, key, meta) = match next {
            Next::Upload { seq, key, meta } => (seq, key, meta),
            Next::WaitUntil(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = notified => {}
                }
                continue;
            }
            Next::Idle => {
                notified.await;
                continue;
            }
        };
        let body = match shared.spool.read(seq).await {
            Ok(Some(body)) => body,
            result => {
                if let Err(e) = result {
                    tracing::error!(key, %e, "spool file unreadable: the object is lost");
                }
                finish(&shared, seq, &key);
                shared.spool.remove(seq).await;
                continue;
            }
        };
        let started = Instant::now();
        let result = shared.remote.put(&key, body, meta).await;
        let upload_time = started.elapsed();
        match result {
            Ok(()) => {
                // The file first: a reader that still finds the entry falls back to the remote.
                shared.spool.remove(seq).await;
                uploaded(&shared, seq, &key, meta, upload_time);
            }
            Err(e) => failed(&shared, seq, &key, e),
        }
        shared.wake.notify_waiters();
    }
}

/// Forgets an entry (uploaded, or unreadable).
fn finish<R>(shared: &Shared<R>, seq: u64, key: &str) -> Option<Entry> {
    let mut state = shared.state.lock().unwrap();
    let entry = state.entries.remove(&seq)?;
    state.used -= entry.size;
    if state.by_key.get(key) == Some(&seq) {
        state.by_key.remove(key);
    }
    Some(entry)
}

fn uploaded<R>(shared: &Shared<R>, seq: u64, key: &str, meta: ObjectMeta, upload_time: Duration) {
    let Some(entry) = finish(shared, seq, key) else { return };
    let readable_after = entry.queued.elapsed();
    tracing::debug!(
        key,
        upload_ms = upload_time.as_secs_f64() * 1000.0,
        readable_ms = readable_after.as_secs_f64() * 1000.0,
        "uploaded"
    );
    let mut state = shared.state.lock().unwrap();
    state.stats.uploaded += 1;
    state.stats.upload_seconds.observe(readable_after);
    state.backoff = shared.options.backoff.0;
    state.retry_at = None;
    if let Some(since) = state.outage_since.take() {
        tracing::warn!(
            outage_seconds = since.elapsed().as_secs_f64(),
            waiting = state.entries.len(),
            spooled_bytes = state.used,
            "remote store reachable again: draining the spool in order"
        );
    }
    if state.entries.is_empty() && state.draining {
        state.draining = false;
        tracing::warn!(uploaded = state.stats.uploaded, "spool drained: every object is uploaded");
    }
    if meta.is_immutable() {
        if state.recent.len() == RECENT {
            state.recent.pop_front();
        }
        state.recent.push_back(readable_after);
        if let (Some(limit), Some(avg)) = (shared.options.slow_upload_warning, average(&state.recent)) {
            let quiet = state.last_slow_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(30));
            if state.recent.len() == RECENT && avg > limit && quiet {
                state.last_slow_warning = Some(Instant::now());
                tracing::warn!(
                    average_ms = avg.as_millis() as u64,
                    limit_ms = limit.as_millis() as u64,
                    "uploads are slow: the average upload takes more than 0.9 x the segment duration, the bucket falls behind the live edge"
                );
            }
        }
    }
}

fn failed<R>(shared: &Shared<R>, seq: u64, key: &str, error: StoreError) {
    let mut state = shared.state.lock().unwrap();
    if let Some(entry) = state.entries.get_mut(&seq) {
        entry.in_flight = false;
    }
    state.stats.failed_attempts += 1;
    let backoff = state.backoff;
    let jitter = Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 4 + 1));
    state.retry_at = Some(Instant::now() + backoff + jitter);
    state.backoff = (backoff * 2).min(shared.options.backoff.1);
    let now = Instant::now();
    if state.outage_since.is_none() {
        state.outage_since = Some(now);
    }
    state.draining = true;
    let loud = state.last_outage_warning.is_none_or(|t| now - t > Duration::from_secs(10));
    if loud {
        state.last_outage_warning = Some(now);
        tracing::warn!(
            key,
            %error,
            waiting = state.entries.len(),
            spooled_bytes = state.used,
            bound = shared.options.spool_max_bytes,
            "uploads to the remote store fail: objects wait in the local spool and are retried"
        );
    }
}

fn average(recent: &VecDeque<Duration>) -> Option<Duration> {
    if recent.is_empty() {
        return None;
    }
    Some(recent.iter().sum::<Duration>() / recent.len() as u32)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::IMMUTABLE;

    const SEG: ObjectMeta = ObjectMeta::new("video/iso.segment", IMMUTABLE);
    const PLAYLIST: ObjectMeta = ObjectMeta::new("application/vnd.apple.mpegurl", "no-cache");

    #[derive(Default)]
    struct Fake {
        objects: Mutex<BTreeMap<String, Bytes>>,
        /// Keys in the order their uploads completed.
        log: Mutex<Vec<String>>,
        down: AtomicBool,
        /// Uploads of immutable objects take a little random time (to shuffle completions).
        jitter: bool,
    }

    #[async_trait]
    impl Remote for Arc<Fake> {
        async fn put(&self, key: &str, bytes: Bytes, meta: ObjectMeta) -> Result<(), StoreError> {
            if self.jitter && meta.is_immutable() {
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 15)).await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Remote("connection refused".into()));
            }
            if !meta.is_immutable() {
                // The ordering rule: every object put before a playlist is uploaded already.
                let text = String::from_utf8(bytes.to_vec()).unwrap();
                let objects = self.objects.lock().unwrap();
                for named in text.split_whitespace().filter(|w| w.ends_with(".m4s")) {
                    assert!(objects.contains_key(named), "{key} names {named} before it is uploaded");
                }
            }
            self.objects.lock().unwrap().insert(key.to_owned(), bytes);
            self.log.lock().unwrap().push(key.to_owned());
            Ok(())
        }
        async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(StoreError::Remote("connection refused".into()));
            }
            Ok(self.objects.lock().unwrap().get(key).map(|b| Object { bytes: b.clone(), meta: SEG }))
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            Ok(self.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
        }
        async fn delete_batch(&self, keys: &[String]) -> Result<(), StoreError> {
            assert!(keys.len() <= 1000);
            let mut objects = self.objects.lock().unwrap();
            for key in keys {
                objects.remove(key);
            }
            Ok(())
        }
        async fn public_url(&self, key: &str) -> Option<String> {
            Some(format!("https://cdn.example/{key}"))
        }
    }

    fn options(dir: &std::path::Path, max: u64, concurrency: usize) -> Options {
        Options {
            spool_dir: dir.to_owned(),
            spool_max_bytes: max,
            concurrency,
            slow_upload_warning: Some(Duration::from_secs(1)),
            cache_bytes: 1 << 20,
            backoff: (Duration::from_millis(10), Duration::from_millis(40)),
        }
    }

    fn seg(n: u32) -> String {
        format!("s/a/seg{n}.m4s")
    }

    /// Puts `n` segments, each followed by a playlist naming every segment so far.
    async fn publish(up: &Uploader<Arc<Fake>>, range: std::ops::Range<u32>) {
        for n in range {
            up.put(&seg(n), Bytes::from(vec![n as u8; 100]), SEG).await.unwrap();
            let names: Vec<String> = (0..=n).map(seg).collect();
            up.put("s/a/live.m3u8", Bytes::from(names.join("\n")), PLAYLIST).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_playlist_is_uploaded_after_every_object_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake { jitter: true, ..Fake::default() });
        let up = Uploader::start(fake.clone(), options(dir.path(), 1 << 20, 4)).unwrap();
        publish(&up, 0..30).await;
        assert!(up.drained(Duration::from_secs(10)).await);
        let objects = fake.objects.lock().unwrap();
        assert_eq!(objects.len(), 31);
        assert_eq!(objects["s/a/live.m3u8"].len(), (0..30).map(|n| seg(n).len() + 1).sum::<usize>() - 1);
        let stats = up.stats();
        assert_eq!((stats.spooled_objects, stats.spooled_bytes, stats.failed_attempts), (0, 0, 0));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spool is empty");
    }

    #[tokio::test]
    async fn an_outage_spools_everything_readable_and_drains_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::SeqCst);
        let up = Uploader::start(fake.clone(), options(dir.path(), 1 << 20, 1)).unwrap();
        publish(&up, 0..20).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stats = up.stats();
        assert!(stats.outage && stats.failed_attempts > 0);
        assert_eq!(stats.spooled_objects, 21, "20 segments and the newest playlist wait");
        // Readable while the remote is down: from memory, and from the spool.
        for n in 0..20 {
            assert_eq!(up.get(&seg(n)).await.unwrap().unwrap().bytes[0], n as u8);
        }
        up.shared.cache.lock().unwrap().objects.clear();
        assert_eq!(up.get(&seg(3)).await.unwrap().unwrap().bytes.len(), 100, "from the spool");
        let text = up.get("s/a/live.m3u8").await.unwrap().unwrap().bytes;
        assert!(text.ends_with(b"seg19.m4s"));
        assert_eq!(up.public_url(&seg(3)).await, None, "never redirect to an object not uploaded");

        fake.down.store(false, Ordering::SeqCst);
        assert!(up.drained(Duration::from_secs(10)).await);
        let mut expected: Vec<String> = (0..20).map(seg).collect();
        expected.push("s/a/live.m3u8".into());
        assert_eq!(*fake.log.lock().unwrap(), expected, "drained in put order, one playlist");
        assert_eq!(up.public_url(&seg(3)).await.as_deref(), Some("https://cdn.example/s/a/seg3.m4s"));
        assert!(!up.stats().outage);
    }

    #[tokio::test]
    async fn a_full_spool_refuses_puts_and_drops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::SeqCst);
        let max = 4 * Spool::file_size(&seg(0), 1000);
        let up = Uploader::start(fake.clone(), options(dir.path(), max, 2)).unwrap();
        let body = || Bytes::from(vec![7u8; 1000]);
        for n in 0..4 {
            up.put(&seg(n), body(), SEG).await.unwrap();
        }
        let err = up.put(&seg(4), body(), SEG).await.unwrap_err();
        assert!(matches!(err, StoreError::SpoolFull(_)));
        let stats = up.stats();
        assert_eq!((stats.refused, stats.spooled_objects), (1, 4));
        assert!(stats.spooled_bytes <= max);
        up.shared.cache.lock().unwrap().objects.clear();
        for n in 0..4 {
            assert!(up.get(&seg(n)).await.unwrap().is_some(), "segment {n} kept");
        }
        fake.down.store(false, Ordering::SeqCst);
        assert!(up.drained(Duration::from_secs(10)).await);
        let mut log = fake.log.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, (0..4).map(seg).collect::<Vec<_>>());
        up.put(&seg(4), body(), SEG).await.expect("room again once uploaded");
    }

    #[tokio::test]
    async fn a_restart_uploads_what_the_spool_holds() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        fake.down.store(true, Ordering::SeqCst);
        let up = Uploader::start(fake.clone(), options(dir.path(), 1 << 20, 2)).unwrap();
        publish(&up, 0..8).await;
        drop(up);
        // A crash between writing a newer playlist and removing the older one leaves both.
        let (spool, _) = Spool::open(dir.path()).unwrap();
        spool.write(1000, "s/a/live.m3u8", PLAYLIST, &Bytes::from_static(b"s/a/seg0.m4s")).await.unwrap();
        let waiting = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(waiting, 10);

        fake.down.store(false, Ordering::SeqCst);
        let up = Uploader::start(fake.clone(), options(dir.path(), 1 << 20, 2)).unwrap();
        assert_eq!(up.stats().spooled_objects, 9, "one version per key");
        assert!(up.get(&seg(5)).await.unwrap().is_some());
        assert!(up.drained(Duration::from_secs(10)).await);
        let objects = fake.objects.lock().unwrap();
        assert_eq!(objects.len(), 9);
        assert_eq!(&objects["s/a/live.m3u8"][..], b"s/a/seg0.m4s", "the newest version wins");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn delete_prefix_cancels_waiting_uploads_and_deletes_remote_objects() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(Fake::default());
        let up = Uploader::start(fake.clone(), options(dir.path(), 1 << 20, 2)).unwrap();
        publish(&up, 0..3).await;
        assert!(up.drained(Duration::from_secs(10)).await);
        up.put("s/b/seg0.m4s", Bytes::from_static(b"b"), SEG).await.unwrap();
        fake.down.store(true, Ordering::SeqCst);
        publish(&up, 3..6).await;
        assert_eq!(up.list("s/a/").await.unwrap().len(), 7);
        assert_eq!(up.delete_prefix("s/a/").await.unwrap(), 7);
        assert!(up.list("s/a/").await.unwrap().is_empty());
        assert!(up.get(&seg(4)).await.is_err(), "neither cached nor spooled: only the (down) remote is asked");
        fake.down.store(false, Ordering::SeqCst);
        assert!(up.drained(Duration::from_secs(10)).await);
        assert_eq!(fake.objects.lock().unwrap().keys().collect::<Vec<_>>(), vec!["s/b/seg0.m4s"]);
    }
}
