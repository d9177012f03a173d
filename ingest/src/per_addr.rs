//! Limits per client address: open connections, and invalid stream keys.
//!
//! An "address" is an IPv4 address, or an IPv6 /64 prefix (one subscriber usually holds a whole
//! /64, so counting single IPv6 addresses would let one client spread over 2^64 of them).
//! IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The unit the per-address limits count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrKey(IpAddr);

impl AddrKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The tables stay consistent at every await-free step; a panic elsewhere must not lock us out.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Invalid stream keys per address, in a sliding window. Short critical sections, no awaits.
pub struct KeyFailures {
    max_failures: usize,
    window: Duration,
    max_addresses: usize,
    table: Mutex<HashMap<AddrKey, VecDeque<Instant>>>,
}

impl KeyFailures {
    pub fn new(max_failures: u32, window: Duration, max_addresses: usize) -> Self {
        Self {
            max_failures: max_failures as usize,
            window,
            max_addresses: max_addresses.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` while `addr` has `max_failures` invalid keys within the window.
    /// A limit of 0 failures disables the check.
    pub fn blocked(&self, addr: AddrKey, now: Instant) -> Option<Duration> {
        if self.max_failures == 0 {
            return None;
        }
        let table = lock(&self.table);
        let failures = table.get(&addr)?;
        let recent: Vec<Instant> =
            failures.iter().copied().filter(|&t| now.saturating_duration_since(t) < self.window).collect();
        if recent.len() < self.max_failures {
            return None;
        }
        // Blocked until enough failures leave the window to fall under the limit: the one that
        // would bring the count back to `max_failures - 1`.
        let freeing = recent[recent.len() - self.max_failures];
        Some((freeing + self.window).saturating_duration_since(now))
    }

    /// Records an invalid key from `addr`.
    pub fn record(&self, addr: AddrKey, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let mut table = lock(&self.table);
        if !table.contains_key(&addr) && table.len() >= self.max_addresses {
            self.make_room(&mut table, now);
        }
        let failures = table.entry(addr).or_default();
        failures.retain(|&t| now.saturating_duration_since(t) < self.window);
        failures.push_back(now);
        // Only the latest `max_failures` matter.
        while failures.len() > self.max_failures {
            failures.pop_front();
        }
    }

    /// Drops expired entries; if the table is still full, the one whose last failure is oldest.
    fn make_room(&self, table: &mut HashMap<AddrKey, VecDeque<Instant>>, now: Instant) {
        table.retain(|_, f| f.back().is_some_and(|&t| now.saturating_duration_since(t) < self.window));
        if table.len() >= self.max_addresses {
            let oldest = table.iter().min_by_key(|(_, f)| f.back().copied()).map(|(addr, _)| *addr);
            if let Some(addr) = oldest {
                table.remove(&addr);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).len()
    }
}

/// Open connections per address. Only addresses with an open connection are in the table, so
/// it is bounded by the total connection cap.
pub struct ConnectionsPerAddr {
    max: usize,
    open: Mutex<HashMap<AddrKey, usize>>,
    /// When an over-cap refusal was last logged per address, to log once a minute at most.
    logged: Mutex<HashMap<AddrKey, Instant>>,
}

/// How often an address over the cap is logged, at most.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Addresses remembered for log throttling; over it, older ones are forgotten.
const MAX_LOGGED: usize = 4096;

/// One open connection's place in [`ConnectionsPerAddr`]; frees it when dropped.
pub struct AddrSlot {
    owner: Arc<ConnectionsPerAddr>,
    addr: AddrKey,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.owner.open);
        if let Some(n) = open.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

impl ConnectionsPerAddr {
    pub fn new(max: usize) -> Self {
        Self { max, open: Mutex::new(HashMap::new()), logged: Mutex::new(HashMap::new()) }
    }

    /// A slot for one more connection from `addr`, or `None` if it has `max` open already.
    pub fn try_open(self: &Arc<Self>, addr: AddrKey) -> Option<AddrSlot> {
        let mut open = lock(&self.open);
        let n = open.get(&addr).copied().unwrap_or(0);
        if n >= self.max {
            return None;
        }
        open.insert(addr, n + 1);
        Some(AddrSlot { owner: self.clone(), addr })
    }

    /// Whether an over-cap refusal of `addr` should be logged now (once per minute at most).
    pub fn should_log(&self, addr: AddrKey, now: Instant) -> bool {
        let mut logged = lock(&self.logged);
        if let Some(&at) = logged.get(&addr)
            && now.saturating_duration_since(at) < LOG_EVERY
        {
            return false;
        }
        if logged.len() >= MAX_LOGGED {
            logged.retain(|_, &mut at| now.saturating_duration_since(at) < LOG_EVERY);
            if logged.len() >= MAX_LOGGED {
                // Flooded from very many addresses: forget them all rather than grow.
                logged.clear();
            }
        }
        logged.insert(addr, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> AddrKey {
        AddrKey::of(s.parse().expect("ip"))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_v4_as_v4() {
        assert_eq!(addr("2001:db8::1"), addr("2001:db8::ffff:2"));
        assert_ne!(addr("2001:db8::1"), addr("2001:db8:0:1::1"));
        assert_eq!(addr("::ffff:10.0.0.1"), addr("10.0.0.1"));
        assert_eq!(addr("2001:db8::1").to_string(), "2001:db8::/64");
    }

    #[test]
    fn blocks_after_n_failures_within_the_window() {
        let t0 = Instant::now();
        let kf = KeyFailures::new(3, 60 * S, 100);
        let a = addr("127.0.0.1");
        let b = addr("127.0.0.2");
        kf.record(a, t0);
        kf.record(a, t0 + 10 * S);
        assert_eq!(kf.blocked(a, t0 + 11 * S), None);
        kf.record(a, t0 + 20 * S);
        // Blocked until the first failure leaves the window.
        assert_eq!(kf.blocked(a, t0 + 21 * S), Some(39 * S));
        assert_eq!(kf.blocked(b, t0 + 21 * S), None, "other addresses are not slowed");
        assert_eq!(kf.blocked(a, t0 + 60 * S), None);
        // A fourth failure while at the limit keeps it blocked until the second one expires.
        kf.record(a, t0 + 59 * S);
        assert_eq!(kf.blocked(a, t0 + 61 * S), Some(9 * S));
    }

    #[test]
    fn failures_spread_over_more_than_the_window_never_block() {
        let t0 = Instant::now();
        let kf = KeyFailures::new(2, 10 * S, 100);
        let a = addr("10.1.2.3");
        for i in 0..10 {
            kf.record(a, t0 + i * 11 * S);
            assert_eq!(kf.blocked(a, t0 + i * 11 * S), None);
        }
    }

    #[test]
    fn the_table_is_capped_and_evicts_the_oldest() {
        let t0 = Instant::now();
        let kf = KeyFailures::new(1, 60 * S, 3);
        for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().enumerate() {
            kf.record(addr(ip), t0 + (i as u32) * S);
        }
        assert_eq!(kf.len(), 3);
        assert_eq!(kf.blocked(addr("10.0.0.1"), t0 + 5 * S), None, "evicted");
        assert!(kf.blocked(addr("10.0.0.4"), t0 + 5 * S).is_some());
        assert!(kf.blocked(addr("10.0.0.2"), t0 + 5 * S).is_some());
        // Expired entries go first.
        kf.record(addr("10.0.0.5"), t0 + 62 * S);
        assert!(kf.blocked(addr("10.0.0.5"), t0 + 62 * S).is_some());
        assert!(kf.len() <= 3);
    }

    #[test]
    fn zero_disables_the_limiter() {
        let kf = KeyFailures::new(0, 60 * S, 3);
        let a = addr("10.0.0.1");
        kf.record(a, Instant::now());
        assert_eq!(kf.blocked(a, Instant::now()), None);
    }

    #[test]
    fn connection_slots_are_per_address_and_freed_on_drop() {
        let per = Arc::new(ConnectionsPerAddr::new(2));
        let a = addr("127.0.0.1");
        let s1 = per.try_open(a).expect("first");
        let _s2 = per.try_open(a).expect("second");
        assert!(per.try_open(a).is_none());
        let _b = per.try_open(addr("127.0.0.2")).expect("another address");
        drop(s1);
        assert!(per.try_open(a).is_some());
        let t0 = Instant::now();
        assert!(per.should_log(a, t0));
        assert!(!per.should_log(a, t0 + S));
        assert!(per.should_log(a, t0 + 61 * S));
    }
}
