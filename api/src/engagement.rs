//! Live engagement kept in memory: viewer sessions (joined by players, counted once they
//! prove presence with a heartbeat, gone after [`SESSION_TIMEOUT`] without one), the rate
//! limiters, and the media time of a stream's live edge. Viewer figures that outlive a run
//! (peak, unique sessions, replay views) are written to the database in batches, never one
//! write per heartbeat.
//!
//! Counting by heartbeat (not by segment requests) keeps the count right when segments come
//! from a CDN or a bucket. A counted viewer is a player that kept running: a join alone counts
//! nothing, joins are bounded per client address and per stream, and every table here has a
//! hard size bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::db::{Db, DbResult, ViewerTotals};
use crate::events::{Event, Events, kind};
use crate::model::ViewerCounters;
use crate::{AppState, secrets};

/// A session without a heartbeat for this long is gone.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// A session counts from its first heartbeat at least this long after it joined: a player
/// that started and kept running, not a bare join.
pub const PRESENCE_AFTER: Duration = Duration::from_secs(2);
/// How often sessions are pruned and viewer counts announced (so at most once a second).
pub const TICK: Duration = Duration::from_secs(1);
/// How often changed counters are written, in one transaction.
pub const FLUSH_EVERY_TICKS: u32 = 5;
/// Joins one client address may make per minute, over all streams. (How many sessions it may
/// hold per stream is the admin's `viewer_sessions_per_address`.)
pub const JOINS_PER_CLIENT_PER_MINUTE: u32 = 60;
/// Sessions one stream may hold, and all streams together.
pub const SESSIONS_PER_STREAM: usize = 100_000;
pub const SESSIONS_TOTAL: usize = 500_000;

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

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRefused {
    /// This client address joins too fast, or holds too many sessions: retry after.
    Client(Duration),
    /// The stream (or the server) holds as many sessions as it may.
    Full,
}

/// A client address as limits see it: IPv4 whole, IPv6 by its /64 (one subscriber's prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())),
            },
            v4 => Self(v4),
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

struct Session {
    joined: Instant,
    last_seen: Instant,
    client: ClientKey,
    replay: bool,
    /// Presence proven: in the figures.
    counted: bool,
    /// The signed-in viewer playing, if the player said (its join or a heartbeat carried a
    /// token): for the seller's audience list.
    user_id: Option<String>,
}

#[derive(Default)]
struct StreamViewers {
    sessions: HashMap<String, Session>,
    /// Sessions per client address, for the per-client bound.
    per_client: HashMap<ClientKey, usize>,
    /// Counted live (not replay) sessions: kept as sessions come and go, never by a scan.
    current: i64,
    /// (deadline, session): when a session may have expired, oldest first; a heartbeat
    /// pushes a new entry and leaves the old one to be skipped.
    expiry: VecDeque<(Instant, String)>,
    counters: ViewerCounters,
    /// Sessions counted (`unique`, `replay_views`) since the last flush: what the flush adds
    /// to the stored figures.
    unsaved: ViewerCounters,
    /// Counters changed since the last flush.
    dirty: bool,
    /// What the last viewers event said.
    announced: Option<ViewerStats>,
}

impl StreamViewers {
    fn stats(&self) -> ViewerStats {
        ViewerStats {
            current: self.current,
            peak: self.counters.peak,
            unique: self.counters.unique,
            replay_views: self.counters.replay_views,
        }
    }

    fn remove(&mut self, session_id: &str) -> bool {
        let Some(session) = self.sessions.remove(session_id) else { return false };
        if session.counted && !session.replay {
            self.current -= 1;
        }
        if let Some(n) = self.per_client.get_mut(&session.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&session.client);
            }
        }
        true
    }

    /// Drops the sessions silent for [`SESSION_TIMEOUT`]; returns how many.
    fn prune(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((deadline, _)) = self.expiry.front()
            && *deadline <= now
        {
            let (_, id) = self.expiry.pop_front().expect("a front");
            let expired = self.sessions.get(&id).is_some_and(|s| now.duration_since(s.last_seen) >= SESSION_TIMEOUT);
            if expired && self.remove(&id) {
                removed += 1;
            }
        }
        removed
    }
}

/// Guest sign-ins one address may make per hour.
pub const GUEST_SIGN_INS_PER_HOUR: u32 = 20;
/// Shares of one stream one address may record per hour: a person shares a link a few
/// times, not a script a thousand.
pub const SHARES_PER_HOUR: u32 = 3;
/// Orders one shop may report per minute (a flash sale's pace, not a script's).
pub const ORDERS_PER_MINUTE: u32 = 1200;

/// Keys one rate limiter tracks at most. When that many keys are all still limited (a
/// flood from very many addresses), new keys are refused until some recover: the table
/// never grows past this.
pub const RATE_LIMIT_KEYS: usize = 100_000;

/// Exactly at most `max` acts per `per` for each key, in any window of that length (the
/// promise the chat setting and the order limit make): a log of the key's recent acts. Keys
/// are signed-in users, and each log holds at most `max` instants.
#[derive(Default)]
struct SlidingWindow(Mutex<HashMap<String, VecDeque<Instant>>>);

impl SlidingWindow {
    /// Whether `key` may act now; counts the act if so, else says how long until it may.
    fn allow(&self, key: &str, max: u32, per: Duration, now: Instant) -> Result<(), Duration> {
        let mut acts = lock(&self.0);
        if !acts.contains_key(key) && acts.len() >= RATE_LIMIT_KEYS {
            acts.retain(|_, recent| recent.back().is_some_and(|t| now.duration_since(*t) < per));
            if acts.len() >= RATE_LIMIT_KEYS {
                return Err(Duration::from_secs(1));
            }
        }
        let recent = acts.entry(key.to_owned()).or_default();
        while recent.front().is_some_and(|t| now.duration_since(*t) >= per) {
            recent.pop_front();
        }
        if recent.len() >= max as usize {
            let oldest = recent.front().copied().unwrap_or(now);
            return Err(per.saturating_sub(now.duration_since(oldest)));
        }
        recent.push_back(now);
        Ok(())
    }
}

/// A rate limit per key: `max` acts per `per` on average, in bursts of up to `max` (the
/// generic cell rate algorithm: one instant per key, so a table keyed by client addresses,
/// which an attacker chooses, costs the same at any rate). Written here rather than taken
/// from a crate because the table needs a hard bound.
#[derive(Default)]
struct RateLimit(Mutex<HashMap<String, Instant>>);

impl RateLimit {
    /// Whether `key` may act now; counts the act if so, else says how long until it may.
    fn allow(&self, key: &str, max: u32, per: Duration, now: Instant) -> Result<(), Duration> {
        let interval = per / max.max(1);
        let tolerance = per.saturating_sub(interval);
        let mut theoretical = lock(&self.0);
        if !theoretical.contains_key(key) && theoretical.len() >= RATE_LIMIT_KEYS {
            theoretical.retain(|_, at| *at > now);
            if theoretical.len() >= RATE_LIMIT_KEYS {
                return Err(Duration::from_secs(1));
            }
        }
        let at = theoretical.get(key).map_or(now, |at| (*at).max(now));
        let ahead = at.duration_since(now);
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        theoretical.insert(key.to_owned(), at + interval);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

#[derive(Default)]
pub struct Engagement {
    /// Streams with sessions, each behind its own lock: a heartbeat on one stream never
    /// waits for another.
    viewers: Mutex<HashMap<String, Arc<Mutex<StreamViewers>>>>,
    /// Sessions over all streams, for [`SESSIONS_TOTAL`].
    sessions_total: std::sync::atomic::AtomicUsize,
    /// Recent joins per client address.
    joins: RateLimit,
    /// Recent chat posts per user, for the rate limit.
    chat_posts: SlidingWindow,
    /// Recent guest sign-ins per client address.
    guest_sign_ins: RateLimit,
    /// Recent shares per (client address, stream).
    shares: RateLimit,
    /// Recent orders per shop.
    orders: SlidingWindow,
    /// Open event sockets.
    sockets: Mutex<Sockets>,
    /// Several nodes: each watched stream's figures summed over all nodes, as of the last
    /// exchange. Empty on one machine.
    totals: Mutex<HashMap<String, ViewerStats>>,
}

/// How long an event socket ticket may wait for its socket, and how many may wait at once.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
pub const TICKETS_MAX: usize = 10_000;

#[derive(Default)]
struct Sockets {
    per_client: HashMap<ClientKey, usize>,
    total: usize,
}

/// Event sockets one client address may hold open (a few tabs, not a flood), and all clients.
pub const SOCKETS_PER_CLIENT: usize = 16;
pub const SOCKETS_TOTAL: usize = 20_000;

/// An open event socket's place in the bounds; given back when dropped.
pub struct SocketPermit {
    engagement: Arc<Engagement>,
    client: ClientKey,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut sockets = lock(&self.engagement.sockets);
        sockets.total -= 1;
        if let Some(n) = sockets.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                sockets.per_client.remove(&self.client);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Engagement {
    pub fn new() -> Self {
        Self::default()
    }

    /// A place for one more event socket of `client`; `None` over [`SOCKETS_PER_CLIENT`] or
    /// [`SOCKETS_TOTAL`].
    pub fn open_socket(self: &Arc<Self>, client: ClientKey) -> Option<SocketPermit> {
        let mut sockets = lock(&self.sockets);
        let mine = sockets.per_client.get(&client).copied().unwrap_or(0);
        if mine >= SOCKETS_PER_CLIENT || sockets.total >= SOCKETS_TOTAL {
            return None;
        }
        *sockets.per_client.entry(client).or_default() += 1;
        sockets.total += 1;
        Some(SocketPermit { engagement: self.clone(), client })
    }

    fn stream(&self, stream_id: &str) -> Option<Arc<Mutex<StreamViewers>>> {
        lock(&self.viewers).get(stream_id).cloned()
    }

    /// A player joins: returns its new session id, not counted until
    /// [`heartbeat`](Self::heartbeat) proves presence. `replay` = the stream is archived;
    /// `per_client`: sessions one address may hold on the stream.
    pub async fn join(
        &self,
        db: &Db,
        (stream_id, replay): (&str, bool),
        (client, per_client): (ClientKey, usize),
        now: Instant,
    ) -> DbResult<Result<String, JoinRefused>> {
        use std::sync::atomic::Ordering;
        if let Err(wait) =
            self.joins.allow(&client.to_string(), JOINS_PER_CLIENT_PER_MINUTE, Duration::from_secs(60), now)
        {
            return Ok(Err(JoinRefused::Client(wait)));
        }
        let mut counters = None;
        // The map's lock is held for the O(1) work below, so that a stream being forgotten
        // (`take_dirty`) never takes a new session with it.
        let mut streams = loop {
            if counters.is_none() && self.stream(stream_id).is_none() {
                // The persisted figures go on from where the last run left them.
                counters = Some(db.viewer_counters(stream_id).await?);
            }
            let streams = lock(&self.viewers);
            if streams.contains_key(stream_id) || counters.is_some() {
                break streams;
            }
        };
        let entry = streams.entry(stream_id.to_owned()).or_insert_with(|| {
            Arc::new(Mutex::new(StreamViewers { counters: counters.unwrap_or_default(), ..StreamViewers::default() }))
        });
        let mut viewers = lock(entry);
        let held = viewers.per_client.get(&client).copied().unwrap_or(0);
        if held >= per_client {
            // Room comes back as this address's sessions expire or leave.
            return Ok(Err(JoinRefused::Client(SESSION_TIMEOUT)));
        }
        if viewers.sessions.len() >= SESSIONS_PER_STREAM {
            return Ok(Err(JoinRefused::Full));
        }
        if self.sessions_total.fetch_add(1, Ordering::Relaxed) >= SESSIONS_TOTAL {
            self.sessions_total.fetch_sub(1, Ordering::Relaxed);
            return Ok(Err(JoinRefused::Full));
        }
        let session_id = secrets::new_id();
        viewers.sessions.insert(
            session_id.clone(),
            Session { joined: now, last_seen: now, client, replay, counted: false, user_id: None },
        );
        *viewers.per_client.entry(client).or_default() += 1;
        viewers.expiry.push_back((now + SESSION_TIMEOUT, session_id.clone()));
        Ok(Ok(session_id))
    }

    /// Keeps a session alive, and counts it at its first heartbeat [`PRESENCE_AFTER`] its
    /// join or later; false when the session is unknown or already gone.
    pub fn heartbeat(&self, stream_id: &str, session_id: &str, now: Instant) -> bool {
        let Some(entry) = self.stream(stream_id) else { return false };
        let mut viewers = lock(&entry);
        let viewers = &mut *viewers;
        let Some(session) = viewers.sessions.get_mut(session_id) else { return false };
        let since = now.duration_since(session.last_seen);
        if since >= SESSION_TIMEOUT {
            return false;
        }
        // A beat right after the last one changes nothing: so the expiry queue holds at most
        // one entry per session per second, however fast a client beats.
        if since < Duration::from_secs(1) {
            return true;
        }
        session.last_seen = now;
        if !session.counted && now.duration_since(session.joined) >= PRESENCE_AFTER {
            session.counted = true;
            if session.replay {
                viewers.counters.replay_views += 1;
                viewers.unsaved.replay_views += 1;
            } else {
                viewers.counters.unique += 1;
                viewers.unsaved.unique += 1;
                viewers.current += 1;
                viewers.counters.peak = viewers.counters.peak.max(viewers.current);
            }
            viewers.dirty = true;
        }
        viewers.expiry.push_back((now + SESSION_TIMEOUT, session_id.to_owned()));
        true
    }

    /// Records which signed-in viewer a session is (the first one named sticks).
    pub fn identify(&self, stream_id: &str, session_id: &str, user_id: &str) {
        let Some(entry) = self.stream(stream_id) else { return };
        if let Some(session) = lock(&entry).sessions.get_mut(session_id) {
            session.user_id.get_or_insert_with(|| user_id.to_owned());
        }
    }

    /// Who watches the stream now on this node: the signed-in viewers of its counted
    /// sessions (each once, at most `max`) and how many counted sessions are anonymous.
    pub fn audience(&self, stream_id: &str, max: usize) -> (Vec<String>, i64) {
        let Some(entry) = self.stream(stream_id) else { return (Vec::new(), 0) };
        let viewers = lock(&entry);
        let mut users = std::collections::BTreeSet::new();
        let mut anonymous = 0;
        for session in viewers.sessions.values().filter(|s| s.counted) {
            match &session.user_id {
                Some(user) if users.len() < max => {
                    users.insert(user.clone());
                }
                Some(_) => {}
                None => anonymous += 1,
            }
        }
        (users.into_iter().collect(), anonymous)
    }

    pub fn leave(&self, stream_id: &str, session_id: &str) -> bool {
        let Some(entry) = self.stream(stream_id) else { return false };
        let removed = lock(&entry).remove(session_id);
        if removed {
            self.sessions_total.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        removed
    }

    /// Drops sessions silent for [`SESSION_TIMEOUT`]: work in proportion to what expires.
    pub fn prune(&self, now: Instant) {
        let streams: Vec<_> = lock(&self.viewers).iter().map(|(id, e)| (id.clone(), e.clone())).collect();
        for (id, entry) in streams {
            let removed = lock(&entry).prune(now);
            if removed > 0 {
                tracing::debug!(stream = %id, removed, "silent viewer sessions expired");
            }
            self.sessions_total.fetch_sub(removed, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The stream's figures while it is watched: over every node when several share the
    /// database, else this node's.
    pub fn live_stats(&self, stream_id: &str) -> Option<ViewerStats> {
        if let Some(stats) = lock(&self.totals).get(stream_id) {
            return Some(*stats);
        }
        self.stream(stream_id).map(|entry| lock(&entry).stats())
    }

    /// The stream's figures: from memory, else as last persisted.
    pub async fn viewer_stats(&self, db: &Db, stream_id: &str) -> DbResult<ViewerStats> {
        // On a shared database a stream not in the totals has no viewer on any node; this
        // node's own figures would miss the others' counts.
        if let Some(stats) = self.live_stats(stream_id).filter(|_| !db.is_shared()) {
            return Ok(stats);
        }
        if let Some(stats) = lock(&self.totals).get(stream_id) {
            return Ok(*stats);
        }
        let c = db.viewer_counters(stream_id).await?;
        Ok(ViewerStats { current: 0, peak: c.peak, unique: c.unique, replay_views: c.replay_views })
    }

    /// Streams whose figures changed since they were last announced.
    pub fn take_changed(&self) -> Vec<(String, ViewerStats)> {
        let streams: Vec<_> = lock(&self.viewers).iter().map(|(id, e)| (id.clone(), e.clone())).collect();
        let mut changed = Vec::new();
        for (id, entry) in streams {
            let mut entry = lock(&entry);
            let stats = entry.stats();
            if entry.announced != Some(stats) {
                entry.announced = Some(stats);
                changed.push((id, stats));
            }
        }
        changed
    }

    /// Counters changed since the last flush; streams with nobody left are forgotten once
    /// their figures are written and announced.
    pub fn take_dirty(&self) -> Vec<(String, ViewerCounters)> {
        let mut viewers = lock(&self.viewers);
        let mut dirty = Vec::new();
        for (id, entry) in viewers.iter() {
            let mut entry = lock(entry);
            if entry.dirty {
                entry.dirty = false;
                let unsaved = std::mem::take(&mut entry.unsaved);
                dirty.push((id.clone(), ViewerCounters { peak: entry.counters.peak, ..unsaved }));
            }
        }
        // One order for every node's writes of the same rows: no deadlock between nodes.
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        viewers.retain(|_, e| {
            let e = lock(e);
            !e.sessions.is_empty() || e.dirty || e.announced != Some(e.stats())
        });
        dirty
    }

    /// Puts back counts whose write failed, for the next flush.
    fn restore_dirty(&self, batch: &[(String, ViewerCounters)]) {
        for (id, failed) in batch {
            if let Some(entry) = self.stream(id) {
                let mut entry = lock(&entry);
                entry.dirty = true;
                entry.unsaved.unique += failed.unique;
                entry.unsaved.replay_views += failed.replay_views;
            }
        }
    }

    /// This node's counted live sessions per stream in memory.
    pub fn current_by_stream(&self) -> Vec<(String, i64)> {
        lock(&self.viewers).iter().map(|(id, entry)| (id.clone(), lock(entry).current)).collect()
    }

    /// Takes the figures summed over every node (see [`Db::exchange_viewers`]); returns those
    /// that changed, with a stream nobody watches any more at zero.
    fn set_totals(&self, totals: Vec<(String, ViewerTotals)>) -> Vec<(String, ViewerStats)> {
        let fresh: HashMap<String, ViewerStats> = totals
            .into_iter()
            .map(|(id, t)| {
                let c = t.counters;
                (id, ViewerStats { current: t.current, peak: c.peak, unique: c.unique, replay_views: c.replay_views })
            })
            .collect();
        let mut old = lock(&self.totals);
        let mut changed: Vec<_> =
            fresh.iter().filter(|(id, stats)| old.get(*id) != Some(stats)).map(|(id, s)| (id.clone(), *s)).collect();
        changed.extend(
            old.iter()
                .filter(|(id, _)| !fresh.contains_key(*id))
                .map(|(id, stats)| (id.clone(), ViewerStats { current: 0, ..*stats })),
        );
        *old = fresh;
        changed
    }

    /// Whether `user_id` may post now: at most `max` posts per `per`. Counts the post if so.
    pub fn allow_chat(&self, user_id: &str, max: u32, per: Duration, now: Instant) -> Result<(), Duration> {
        self.chat_posts.allow(user_id, max, per, now)
    }

    /// Whether the shop may report one more order now: at most [`ORDERS_PER_MINUTE`].
    pub fn allow_order(&self, shop_id: &str, now: Instant) -> Result<(), Duration> {
        self.orders.allow(shop_id, ORDERS_PER_MINUTE, Duration::from_secs(60), now)
    }

    /// Whether `client` (an address) may sign in one more guest: at most
    /// [`GUEST_SIGN_INS_PER_HOUR`] an hour.
    pub fn allow_guest_sign_in(&self, client: &str, now: Instant) -> Result<(), Duration> {
        self.guest_sign_ins.allow(client, GUEST_SIGN_INS_PER_HOUR, Duration::from_secs(3600), now)
    }

    /// Whether one more share counts: at most [`SHARES_PER_HOUR`] per `key` (an address and
    /// a stream) an hour.
    pub fn allow_share(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.shares.allow(key, SHARES_PER_HOUR, Duration::from_secs(3600), now)
    }
}

/// Prunes silent sessions and announces changed viewer counts every second; writes changed
/// counters every few seconds. On a shared database, every second: writes this node's counts
/// and announces the figures summed over all nodes. Runs until the task is dropped.
pub async fn run(state: AppState) {
    let mut tick = crate::shared_interval(TICK);
    let mut ticks = 0u32;
    loop {
        tick.tick().await;
        let engagement = &state.engagement;
        engagement.prune(Instant::now());
        if state.db.is_shared() {
            flush(engagement, &state.db).await;
            exchange(engagement, &state.db, &state.events).await;
            continue;
        }
        announce(engagement, &state.events);
        ticks += 1;
        if ticks.is_multiple_of(FLUSH_EVERY_TICKS) {
            flush(engagement, &state.db).await;
        }
    }
}

/// Several nodes: this node's sessions go in, the sums over all nodes come out and are
/// announced here (viewer events are not relayed: every node announces the same sums).
async fn exchange(engagement: &Engagement, db: &Db, events: &Events) {
    // This node's own figures are not announced; marking them seen lets idle streams go.
    engagement.take_changed();
    match db.exchange_viewers(&engagement.current_by_stream()).await {
        Ok(totals) => {
            for (stream_id, stats) in engagement.set_totals(totals) {
                events.publish(Event::new(kind::VIEWERS, &stream_id, json!(stats)));
            }
        }
        Err(e) => tracing::error!("exchanging viewer counts with other nodes: {e}"),
    }
}

fn announce(engagement: &Engagement, events: &Events) {
    for (stream_id, stats) in engagement.take_changed() {
        tracing::debug!(stream = %stream_id, current = stats.current, peak = stats.peak, "viewer figures announced");
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

    const PER_CLIENT: usize = 20;

    #[tokio::test]
    async fn sessions_count_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        let (seller, _) = db.create_user("s", Role::Seller).await.unwrap();
        let stream = db.create_stream(crate::db::NewStream::titled(&seller.id, "t")).await.unwrap();
        let id = stream.id.as_str();
        let e = Engagement::new();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let home = ClientKey::of("192.0.2.1".parse().unwrap());
        let join = |client, now| e.join(&db, (id, false), (client, PER_CLIENT), now);
        let a = join(home, t0).await.unwrap().unwrap();
        let b = join(home, t0).await.unwrap().unwrap();
        assert_ne!(a, b);
        // Joined is not counted: only a heartbeat after the player kept running is.
        assert_eq!(e.live_stats(id).unwrap(), ViewerStats::default());
        assert!(e.heartbeat(id, &a, at(1)), "too early: accepted, not counted");
        assert_eq!(e.live_stats(id).unwrap().current, 0);
        assert!(e.heartbeat(id, &a, at(3)) && e.heartbeat(id, &b, at(3)));
        assert_eq!(e.live_stats(id).unwrap(), ViewerStats { current: 2, peak: 2, unique: 2, replay_views: 0 });
        assert!(e.heartbeat(id, &a, at(4)), "counted once");
        assert_eq!(e.live_stats(id).unwrap().unique, 2);
        assert_eq!(e.take_changed().len(), 1);
        assert!(e.take_changed().is_empty(), "announced once per change");
        assert!(e.leave(id, &a));
        assert!(!e.leave(id, &a));
        // b keeps beating; c joins and never beats: never counted, gone after the timeout.
        let c = join(home, at(3)).await.unwrap().unwrap();
        assert!(e.heartbeat(id, &b, at(20)));
        e.prune(at(34));
        assert!(!e.heartbeat(id, &c, at(34)));
        assert!(e.heartbeat(id, &b, at(34)));
        let replay = e.join(&db, (id, true), (home, PER_CLIENT), at(34)).await.unwrap().unwrap();
        assert!(e.heartbeat(id, &replay, at(37)));
        assert_eq!(e.live_stats(id).unwrap(), ViewerStats { current: 1, peak: 2, unique: 2, replay_views: 1 });

        // Batched writes; a new process goes on from the stored figures.
        flush(&e, &db).await;
        assert!(e.take_dirty().is_empty());
        let fresh = Engagement::new();
        assert_eq!(
            fresh.viewer_stats(&db, id).await.unwrap(),
            ViewerStats { current: 0, peak: 2, unique: 2, replay_views: 1 }
        );
        let d = fresh.join(&db, (id, false), (home, PER_CLIENT), at(40)).await.unwrap().unwrap();
        assert!(fresh.heartbeat(id, &d, at(43)));
        assert_eq!(fresh.live_stats(id).unwrap().unique, 3);
    }

    #[tokio::test]
    async fn one_address_holds_a_bounded_number_of_sessions_and_joins() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        let e = Engagement::new();
        let t0 = Instant::now();
        let flood = ClientKey::of("2001:db8::1".parse().unwrap());
        let same_64 = ClientKey::of("2001:db8::ffff:2".parse().unwrap());
        let mut sessions = Vec::new();
        for _ in 0..PER_CLIENT {
            sessions.push(e.join(&db, ("s", false), (flood, PER_CLIENT), t0).await.unwrap().unwrap());
        }
        assert!(matches!(
            e.join(&db, ("s", false), (same_64, PER_CLIENT), t0).await.unwrap(),
            Err(JoinRefused::Client(_))
        ));
        // Another stream has its own bound, but the join rate is per address.
        let mut joined = 0;
        while e.join(&db, ("other", false), (flood, PER_CLIENT), t0).await.unwrap().is_ok() {
            joined += 1;
        }
        assert_eq!(joined, PER_CLIENT);
        let elsewhere = ClientKey::of("198.51.100.7".parse().unwrap());
        assert!(e.join(&db, ("s", false), (elsewhere, PER_CLIENT), t0).await.unwrap().is_ok());
        // Room comes back as sessions leave.
        assert!(e.leave("s", &sessions[0]));
        let later = t0 + Duration::from_secs(61);
        assert!(e.join(&db, ("s", false), (flood, PER_CLIENT), later).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn session_and_ticket_tables_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db")).await.unwrap();
        db.migrate().await.unwrap();
        let e = Engagement::new();
        let t0 = Instant::now();
        // One stream full of sessions, each from its own address.
        for n in 0..SESSIONS_PER_STREAM as u32 {
            let client = ClientKey::of(std::net::Ipv4Addr::from(0x0a00_0000 + n).into());
            assert!(e.join(&db, ("s", false), (client, PER_CLIENT), t0).await.unwrap().is_ok(), "session {n}");
        }
        let late = t0 + Duration::from_secs(2);
        let newcomer = ClientKey::of("192.0.2.9".parse().unwrap());
        assert_eq!(e.join(&db, ("s", false), (newcomer, PER_CLIENT), late).await.unwrap(), Err(JoinRefused::Full));
        assert!(
            e.join(&db, ("other", false), (newcomer, PER_CLIENT), late).await.unwrap().is_ok(),
            "another stream has room"
        );
        // They expire; the stream has room again.
        e.prune(t0 + SESSION_TIMEOUT);
        assert!(e.join(&db, ("s", false), (newcomer, PER_CLIENT), t0 + SESSION_TIMEOUT).await.unwrap().is_ok());
    }

    #[test]
    fn sliding_window_table_is_bounded() {
        let window = SlidingWindow::default();
        let t0 = Instant::now();
        for n in 0..RATE_LIMIT_KEYS {
            assert!(window.allow(&n.to_string(), 1, Duration::from_secs(60), t0).is_ok());
        }
        assert!(window.allow("new", 1, Duration::from_secs(60), t0).is_err());
        assert_eq!(lock(&window.0).len(), RATE_LIMIT_KEYS);
        assert!(window.allow("new", 1, Duration::from_secs(60), t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(lock(&window.0).len(), 1);
    }

    #[test]
    fn rate_limit_table_is_bounded() {
        let limit = RateLimit::default();
        let t0 = Instant::now();
        for n in 0..RATE_LIMIT_KEYS {
            assert!(limit.allow(&n.to_string(), 1, Duration::from_secs(60), t0).is_ok());
        }
        // Full of keys that are all still limited: a new key is refused, the table stays put.
        assert!(limit.allow("new", 1, Duration::from_secs(60), t0).is_err());
        assert_eq!(limit.len(), RATE_LIMIT_KEYS);
        // Once they recover they make room.
        assert!(limit.allow("new", 1, Duration::from_secs(60), t0 + Duration::from_secs(61)).is_ok());
        assert_eq!(limit.len(), 1);
    }

    #[test]
    fn chat_rate_limit_is_a_sliding_window() {
        let e = Engagement::new();
        let t0 = Instant::now();
        let per = Duration::from_secs(10);
        assert!(e.allow_chat("u", 2, per, t0).is_ok());
        assert!(e.allow_chat("u", 2, per, t0 + Duration::from_secs(1)).is_ok());
        assert_eq!(e.allow_chat("u", 2, per, t0 + Duration::from_secs(2)), Err(Duration::from_secs(8)));
        assert!(e.allow_chat("other", 2, per, t0 + Duration::from_secs(2)).is_ok());
        assert!(e.allow_chat("u", 2, per, t0 + Duration::from_secs(10)).is_ok());
    }
}
