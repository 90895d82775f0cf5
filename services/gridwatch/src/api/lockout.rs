//! Locks out a client address that presents too many bad bearer tokens: a brute force of the
//! tokens, or a client with a stale one hammering the API.
//!
//! Every missing or unknown token on a route that needs one counts as a failure of the
//! request's client address. Once an address has failed `auth_failure_limit` times within
//! `auth_failure_window_secs` of its first failure, every request it makes to a route that
//! needs a token gets 429 `too_many_requests` with `Retry-After`, for one window from the
//! failure that locked it: a valid token included (a guess that succeeds would otherwise be
//! told so), and a successful request does not reset the count (a caller holding one weak
//! token could otherwise interleave it to guess a stronger one). Public routes (`/healthz`,
//! `/metrics`, status, the web page) keep answering: they check no token, and health checks and
//! scrapes must not be turned off by someone sharing their address.
//!
//! IPv6 clients are counted per /64, the block one host usually owns. At most
//! `auth_failure_tracked_addresses` addresses are remembered; beyond, those whose window and
//! lockout have passed are forgotten first, then the oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// The address failures are counted under: the IPv4 address, or the /64 of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a client address.
    pub fn of(address: IpAddr) -> ClientKey {
        match address {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The client of a request: the TCP peer, or, behind `trusted_proxy_hops` proxies, the
    /// address the outermost one saw, read from `X-Forwarded-For` (the entry that many places
    /// from its end: each proxy appends the address it was connected from). When that entry is
    /// missing or not an address, the TCP peer. `None` without a TCP peer (a router called
    /// in-process).
    pub fn of_request(
        headers: &HeaderMap,
        peer: Option<&ConnectInfo<SocketAddr>>,
        trusted_proxy_hops: usize,
    ) -> Option<ClientKey> {
        let peer = peer.map(|ConnectInfo(address)| address.ip());
        if trusted_proxy_hops == 0 {
            return peer.map(ClientKey::of);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let client = forwarded
            .len()
            .checked_sub(trusted_proxy_hops)
            .and_then(|at| forwarded.get(at))
            .and_then(|entry| entry.parse::<IpAddr>().ok());
        client.or(peer).map(ClientKey::of)
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// How many failures lock an address out, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures within one window that lock the address out (at least 1).
    pub max_failures: u32,
    /// The window failures are counted in, and the length of a lockout.
    pub window: Duration,
    /// Addresses remembered at most.
    pub max_tracked: usize,
}

struct Record {
    /// The first failure of the current window.
    window_start: Instant,
    /// Failures since then.
    failures: u32,
    /// Until when the address is refused, once it failed `max_failures` times.
    locked_until: Option<Instant>,
}

impl Record {
    /// Whether the record no longer matters at `now`: its window and its lockout have passed.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        let window_over = now.saturating_duration_since(self.window_start) >= window;
        window_over && self.locked_until.is_none_or(|until| until <= now)
    }
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the address may go on.
    Counted,
    /// This failure locked the address out, for this long.
    LockedOut(Duration),
}

/// The failures of every recently failing client address.
pub struct Lockout {
    policy: LockoutPolicy,
    records: Mutex<HashMap<ClientKey, Record>>,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Lockout {
    /// An empty table.
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Record>> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // assignment), so a poisoned lock is still usable.
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `client` is still locked out at `now`, if it is.
    pub fn locked_for(&self, client: ClientKey, now: Instant) -> Option<Duration> {
        let records = self.records();
        let until = records.get(&client)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure of `client` at `now`.
    pub fn record_failure(&self, client: ClientKey, now: Instant) -> Failure {
        let LockoutPolicy {
            max_failures,
            window,
            max_tracked,
        } = self.policy;
        let mut records = self.records();
        if !records.contains_key(&client) && records.len() >= max_tracked {
            evict(&mut records, now, window);
        }
        let record = records.entry(client).or_insert(Record {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if record.expired(now, window) {
            *record = Record {
                window_start: now,
                failures: 0,
                locked_until: None,
            };
        }
        record.failures = record.failures.saturating_add(1);
        if record.failures >= max_failures && record.locked_until.is_none() {
            record.locked_until = Some(now + window);
            return Failure::LockedOut(window);
        }
        Failure::Counted
    }

    /// Addresses remembered now.
    pub fn tracked(&self) -> usize {
        self.records().len()
    }
}

/// Makes room for one record: forgets every expired one, or else the one whose window began
/// first. The scan is linear, but runs only when the table is full, and then at most once per
/// new address: a few microseconds at 10,000 addresses.
fn evict(records: &mut HashMap<ClientKey, Record>, now: Instant, window: Duration) {
    let before = records.len();
    records.retain(|_, record| !record.expired(now, window));
    if records.len() < before {
        return;
    }
    let oldest = records
        .iter()
        .min_by_key(|(_, record)| record.window_start)
        .map(|(key, _)| *key);
    if let Some(oldest) = oldest {
        records.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_failures: u32, max_tracked: usize) -> LockoutPolicy {
        LockoutPolicy {
            max_failures,
            window: Duration::from_secs(60),
            max_tracked,
        }
    }

    fn key(text: &str) -> ClientKey {
        ClientKey::of(text.parse().expect("an address"))
    }

    #[test]
    fn the_limit_th_failure_locks_the_address_for_one_window() {
        let lockout = Lockout::new(policy(3, 10));
        let t0 = Instant::now();
        let a = key("192.0.2.1");
        assert_eq!(lockout.record_failure(a, t0), Failure::Counted);
        assert_eq!(lockout.record_failure(a, t0), Failure::Counted);
        assert_eq!(lockout.locked_for(a, t0), None);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            lockout.record_failure(a, t1),
            Failure::LockedOut(Duration::from_secs(60))
        );
        assert_eq!(
            lockout.locked_for(a, t1 + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(lockout.locked_for(key("192.0.2.2"), t1), None);
        assert_eq!(lockout.locked_for(a, t1 + Duration::from_secs(60)), None);
        // Afterwards, a fresh window.
        let t2 = t1 + Duration::from_secs(61);
        assert_eq!(lockout.record_failure(a, t2), Failure::Counted);
        assert_eq!(lockout.locked_for(a, t2), None);
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_lock() {
        let lockout = Lockout::new(policy(3, 10));
        let t0 = Instant::now();
        let a = key("192.0.2.1");
        for minute in 0..10 {
            let t = t0 + Duration::from_secs(minute * 61);
            assert_eq!(lockout.record_failure(a, t), Failure::Counted);
            assert_eq!(
                lockout.record_failure(a, t + Duration::from_secs(1)),
                Failure::Counted
            );
        }
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_address_is_forgotten_first() {
        let lockout = Lockout::new(policy(2, 3));
        let t0 = Instant::now();
        for (i, address) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
            lockout.record_failure(key(address), t0 + Duration::from_secs(i as u64));
        }
        lockout.record_failure(key("192.0.2.3"), t0 + Duration::from_secs(3));
        assert!(lockout.locked_for(key("192.0.2.3"), t0).is_some());
        lockout.record_failure(key("192.0.2.4"), t0 + Duration::from_secs(4));
        assert_eq!(lockout.tracked(), 3);
        // .1 was the oldest: its failure is forgotten, so one more does not lock it.
        lockout.record_failure(key("192.0.2.2"), t0 + Duration::from_secs(5));
        assert!(lockout.locked_for(key("192.0.2.2"), t0).is_some());
        assert!(lockout.locked_for(key("192.0.2.3"), t0).is_some());
        assert_eq!(lockout.tracked(), 3);
        // Expired records go before live ones.
        let later = t0 + Duration::from_secs(200);
        for i in 0..10 {
            lockout.record_failure(key(&format!("198.51.100.{i}")), later);
            assert!(lockout.tracked() <= 3);
        }
    }

    #[test]
    fn ipv6_hosts_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2::9").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let peer = ConnectInfo(SocketAddr::from(([10, 0, 0, 5], 4000)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().expect("a header value"),
        );
        let of = |headers: &HeaderMap, hops| ClientKey::of_request(headers, Some(&peer), hops);
        assert_eq!(of(&headers, 0), Some(key("10.0.0.5")));
        assert_eq!(of(&headers, 1), Some(key("198.51.100.7")));
        assert_eq!(of(&headers, 2), Some(key("203.0.113.9")));
        assert_eq!(of(&headers, 3), Some(key("10.0.0.5")));
        headers.insert("x-forwarded-for", "junk".parse().expect("a header value"));
        assert_eq!(of(&headers, 1), Some(key("10.0.0.5")));
        assert_eq!(ClientKey::of_request(&headers, None, 0), None);
    }
}
