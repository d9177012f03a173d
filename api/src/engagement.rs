//! Live engagement kept in memory: viewer sessions (joined by players, kept by heartbeats,
//! gone after [`SESSION_TIMEOUT`] without one), the chat rate limiter, and the media time
//! of a stream's live edge. Viewer figures that outlive a run (peak, unique sessions,
//! replay views) are written to the database in batches, never one write per heartbeat.
//!
//! Counting by heartbeat (not by segment requests) keeps the count right when segments come
//! from a CDN or a bucket.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::db::{Db, DbResult};
use crate::events::{Event, Events, kind};
use crate::model::ViewerCounters;
use crate::{AppState, secrets};

/// A session without a heartbeat for this long is gone.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often sessions are pruned and viewer counts announced (so at most once a second).
pub const TICK: Duration = Duration::from_secs(1);
/// How often changed counters are written, in one transaction.
pub const FLUSH_EVERY_TICKS: u32 = 5;

/// A stream's viewer figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ViewerStats {
    /// Live sessions right now.
    pub current: i64,
    /// Most live sessions at once.
    pub peak: i64,
    /// Sessions that joined while the stream was on air.
    pub unique: i64,
    /// Sessions that joined the replay.
    pub replay_views: i64,
}

struct Session {
    last_seen: Instant,
    replay: bool,
}

struct StreamViewers {
    sessions: HashMap<String, Session>,
    counters: ViewerCounters,
    /// Counters changed since the last flush.
    dirty: bool,
    /// What the last viewers event said.
    announced: Option<ViewerStats>,
}

impl StreamViewers {
    fn stats(&self) -> ViewerStats {
        ViewerStats {
            current: self.sessions.values().filter(|s| !s.replay).count() as i64,
            peak: self.counters.peak,
            unique: self.counters.unique,
            replay_views: self.counters.replay_views,
        }
    }
}

/// Guest sign-ins one address may make per hour.
pub const GUEST_SIGN_INS_PER_HOUR: u32 = 20;

/// A sliding-window rate limit per key, bounded in memory.
#[derive(Default)]
struct SlidingWindow(Mutex<HashMap<String, VecDeque<Instant>>>);

impl SlidingWindow {
    /// Whether `key` may act now: at most `max` times per `per`. Counts the act if so.
    fn allow(&self, key: &str, max: u32, per: Duration, now: Instant) -> bool {
        let mut acts = lock(&self.0);
        let recent = acts.entry(key.to_owned()).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) >= per) {
            recent.pop_front();
        }
        if recent.len() >= max as usize {
            return false;
        }
        recent.push_back(now);
        if acts.len() > 10_000 {
            acts.retain(|_, r| r.back().is_some_and(|t| now.duration_since(*t) < per.max(Duration::from_secs(3600))));
        }
        true
    }
}

#[derive(Default)]
pub struct Engagement {
    viewers: Mutex<HashMap<String, StreamViewers>>,
    /// Recent chat posts per user, for the rate limit.
    chat_posts: SlidingWindow,
    /// Recent guest sign-ins per client address.
    guest_sign_ins: SlidingWindow,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engagement {
    pub fn new() -> Self {
        Self::default()
    }

    /// A player joins: returns its new session id. `replay` = the stream is archived.
    pub async fn join(&self, db: &Db, stream_id: &str, replay: bool, now: Instant) -> DbResult<String> {
        if !lock(&self.viewers).contains_key(stream_id) {
            // The persisted figures go on from where the last run left them.
            let counters = db.viewer_counters(stream_id).await?;
            lock(&self.viewers).entry(stream_id.to_owned()).or_insert_with(|| StreamViewers {
                sessions: HashMap::new(),
                counters,
                dirty: false,
                announced: None,
            });
        }
        let session_id = secrets::new_id();
        let mut viewers = lock(&self.viewers);
        let entry = viewers.get_mut(stream_id).expect("inserted above");
        entry.sessions.insert(session_id.clone(), Session { last_seen: now, replay });
        if replay {
            entry.counters.replay_views += 1;
        } else {
            entry.counters.unique += 1;
            let current = entry.sessions.values().filter(|s| !s.replay).count() as i64;
            entry.counters.peak = entry.counters.peak.max(current);
        }
        entry.dirty = true;
        Ok(session_id)
    }

    /// Keeps a session alive; false when it is unknown or already gone.
    pub fn heartbeat(&self, stream_id: &str, session_id: &str, now: Instant) -> bool {
        let mut viewers = lock(&self.viewers);
        match viewers.get_mut(stream_id).and_then(|v| v.sessions.get_mut(session_id)) {
            Some(session) if now.duration_since(session.last_seen) < SESSION_TIMEOUT => {
                session.last_seen = now;
                true
            }
            _ => false,
        }
    }

    pub fn leave(&self, stream_id: &str, session_id: &str) -> bool {
        let mut viewers = lock(&self.viewers);
        viewers.get_mut(stream_id).and_then(|v| v.sessions.remove(session_id)).is_some()
    }

    /// Drops sessions silent for [`SESSION_TIMEOUT`].
    pub fn prune(&self, now: Instant) {
        for entry in lock(&self.viewers).values_mut() {
            entry.sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_TIMEOUT);
        }
    }

    /// The stream's figures while it is in memory.
    pub fn live_stats(&self, stream_id: &str) -> Option<ViewerStats> {
        lock(&self.viewers).get(stream_id).map(StreamViewers::stats)
    }

    /// The stream's figures: from memory, else as last persisted.
    pub async fn viewer_stats(&self, db: &Db, stream_id: &str) -> DbResult<ViewerStats> {
        if let Some(stats) = self.live_stats(stream_id) {
            return Ok(stats);
        }
        let c = db.viewer_counters(stream_id).await?;
        Ok(ViewerStats { current: 0, peak: c.peak, unique: c.unique, replay_views: c.replay_views })
    }

    /// Streams whose figures changed since they were last announced.
    pub fn take_changed(&self) -> Vec<(String, ViewerStats)> {
        let mut changed = Vec::new();
        for (id, entry) in lock(&self.viewers).iter_mut() {
            let stats = entry.stats();
            if entry.announced != Some(stats) {
                entry.announced = Some(stats);
                changed.push((id.clone(), stats));
            }
        }
        changed
    }

    /// Counters changed since the last flush; streams with nobody left are forgotten once
    /// their figures are written and announced.
    pub fn take_dirty(&self) -> Vec<(String, ViewerCounters)> {
        let mut viewers = lock(&self.viewers);
        let mut dirty = Vec::new();
        for (id, entry) in viewers.iter_mut() {
            if entry.dirty {
                entry.dirty = false;
                dirty.push((id.clone(), entry.counters));
            }
        }
        viewers.retain(|_, e| !e.sessions.is_empty() || e.dirty || e.announced != Some(e.stats()));
        dirty
    }

    /// Marks counters dirty again after a failed write.
    fn restore_dirty(&self, batch: &[(String, ViewerCounters)]) {
        let mut viewers = lock(&self.viewers);
        for (id, _) in batch {
            if let Some(entry) = viewers.get_mut(id) {
                entry.dirty = true;
            }
        }
    }

    /// Whether `user_id` may post now: at most `max` posts per `per`. Counts the post if so.
    pub fn allow_chat(&self, user_id: &str, max: u32, per: Duration, now: Instant) -> bool {
        self.chat_posts.allow(user_id, max, per, now)
    }

    /// Whether `client` (an address) may sign in one more guest: at most
    /// [`GUEST_SIGN_INS_PER_HOUR`] an hour.
    pub fn allow_guest_sign_in(&self, client: &str, now: Instant) -> bool {
        self.guest_sign_ins.allow(client, GUEST_SIGN_INS_PER_HOUR, Duration::from_secs(3600), now)
    }
}

/// Prunes silent sessions and announces changed viewer counts every second; writes changed
/// counters every few seconds. Runs until the task is dropped.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        tick.tick().await;
        let engagement = &state.engagement;
        engagement.prune(Instant::now());
        announce(engagement, &state.events);
        ticks += 1;
        if ticks.is_multiple_of(FLUSH_EVERY_TICKS) {
            flush(engagement, &state.db).await;
        }
    }
}

fn announce(engagement: &Engagement, events: &Events) {
    for (stream_id, stats) in engagement.take_changed() {
        events.publish(Event::new(kind::VIEWERS, &stream_id, json!(stats)));
    }
}

/// Writes changed viewer counters in one transaction.
pub async fn flush(engagement: &Engagement, db: &Db) {
    let batch = engagement.take_dirty();
    if let Err(e) = db.save_viewer_counters(&batch).await {
        tracing::error!("writing viewer counters: {e}");
        engagement.restore_dirty(&batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    #[tokio::test]
    async fn sessions_count_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        let (seller, _) = db.create_user("s", Role::Seller).await.unwrap();
        let stream = db
            .create_stream(crate::db::NewStream {
                owner_id: &seller.id,
                title: "t",
                description: None,
                scheduled_at: None,
                key_valid_from: None,
                key_valid_until: None,
            })
            .await
            .unwrap();
        let id = stream.id.as_str();
        let e = Engagement::new();
        let t0 = Instant::now();
        let a = e.join(&db, id, false, t0).await.unwrap();
        let b = e.join(&db, id, false, t0).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(e.live_stats(id).unwrap(), ViewerStats { current: 2, peak: 2, unique: 2, replay_views: 0 });
        assert_eq!(e.take_changed().len(), 1);
        assert!(e.take_changed().is_empty(), "announced once per change");
        assert!(e.leave(id, &a));
        assert!(!e.leave(id, &a));
        // b keeps beating; a third joins and goes silent.
        let c = e.join(&db, id, false, t0).await.unwrap();
        let t1 = t0 + Duration::from_secs(20);
        assert!(e.heartbeat(id, &b, t1));
        let t2 = t0 + Duration::from_secs(31);
        e.prune(t2);
        assert!(!e.heartbeat(id, &c, t2));
        assert!(e.heartbeat(id, &b, t2));
        let replay = e.join(&db, id, true, t2).await.unwrap();
        assert!(e.heartbeat(id, &replay, t2));
        assert_eq!(e.live_stats(id).unwrap(), ViewerStats { current: 1, peak: 2, unique: 3, replay_views: 1 });

        // Batched writes; a new process goes on from the stored figures.
        flush(&e, &db).await;
        assert!(e.take_dirty().is_empty());
        let fresh = Engagement::new();
        assert_eq!(
            fresh.viewer_stats(&db, id).await.unwrap(),
            ViewerStats { current: 0, peak: 2, unique: 3, replay_views: 1 }
        );
        fresh.join(&db, id, false, t2).await.unwrap();
        assert_eq!(fresh.live_stats(id).unwrap().unique, 4);
    }

    #[test]
    fn chat_rate_limit_is_a_sliding_window() {
        let e = Engagement::new();
        let t0 = Instant::now();
        let per = Duration::from_secs(10);
        assert!(e.allow_chat("u", 2, per, t0));
        assert!(e.allow_chat("u", 2, per, t0 + Duration::from_secs(1)));
        assert!(!e.allow_chat("u", 2, per, t0 + Duration::from_secs(2)));
        assert!(e.allow_chat("other", 2, per, t0 + Duration::from_secs(2)));
        assert!(e.allow_chat("u", 2, per, t0 + Duration::from_secs(10)));
    }
}
