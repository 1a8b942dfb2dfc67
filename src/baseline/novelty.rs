//! The new-value model: how often does a principal show up from somewhere
//! it has never been seen before?
//!
//! Per principal and kind of value (network, client) it keeps the values
//! seen, bounded and least-recently-seen first out, and the discounted
//! rate at which its active buckets brought a value not seen before. The
//! probability that the next active bucket brings a new value is the
//! smoothed rate `(new + ½) / (active + 1)` (a Beta(½, ½) prior on the
//! rate): a principal that roams over a new network every day has a rate
//! near one and is never surprising; one that has worked from the same two
//! networks for three weeks has a rate near zero. State: a few hundred
//! bytes.
//!
//! Values are normalized before they are compared: an IPv4 address to its
//! /24 and an IPv6 address to its /48 (DHCP and NAT move an address within
//! its network every day), a user agent to its family with the version
//! numbers taken out (a browser update is not a new client).

use std::net::IpAddr;

/// A bounded set of value hashes with the bucket each was last seen in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeenValues<const N: usize> {
    /// (hash, last bucket index); unused entries have hash 0 and are
    /// never matched (a value hashing to 0 is stored as 1).
    #[serde(with = "serde_big_array::BigArray")]
    entries: [(u32, u32); N],
}

impl<const N: usize> Default for SeenValues<N> {
    fn default() -> Self {
        SeenValues { entries: [(0, 0); N] }
    }
}

fn nonzero(hash: u32) -> u32 {
    hash.max(1)
}

impl<const N: usize> SeenValues<N> {
    pub fn contains(&self, hash: u32) -> bool {
        let h = nonzero(hash);
        self.entries.iter().any(|(e, _)| *e == h)
    }

    /// Records `hash` as seen in bucket `at`, evicting the value seen
    /// longest ago when full (on a tie, the smaller hash, so that eviction
    /// does not depend on insertion order).
    pub fn insert(&mut self, hash: u32, at: u32) {
        let h = nonzero(hash);
        if let Some(e) = self.entries.iter_mut().find(|(e, _)| *e == h) {
            e.1 = e.1.max(at);
            return;
        }
        let slot = self.entries.iter_mut().min_by_key(|(e, last)| (*e != 0, *last, *e)).expect("N > 0");
        *slot = (h, at);
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|(e, _)| *e != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The discounted rate at which active buckets bring a new value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewValueRate {
    /// Discounted active buckets, and those of them with a new value.
    active: f32,
    new: f32,
}

impl NewValueRate {
    /// Probability that the next active bucket brings a new value.
    pub fn p_new(&self) -> f64 {
        (self.new as f64 + 0.5) / (self.active as f64 + 1.0)
    }

    /// Discounted number of active buckets behind the rate.
    pub fn active(&self) -> f64 {
        self.active as f64
    }

    pub fn update(&mut self, had_new: bool, keep: f64) {
        let k = keep as f32;
        self.active = self.active * k + 1.0;
        self.new = self.new * k + if had_new { 1.0 } else { 0.0 };
    }
}

/// A stable 32-bit hash of a normalized value (FxHash: deterministic
/// across runs and machines, which alert ids and replays rely on).
pub fn hash_value(normalized: &str) -> u32 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(normalized.as_bytes());
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

/// The network of an address: IPv4 /24, IPv6 /48; anything that does
/// not parse as an address is kept as it is.
pub fn network_of(ip: &str, out: &mut String) {
    out.clear();
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            use std::fmt::Write;
            let _ = write!(out, "{a}.{b}.{c}.0/24");
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            use std::fmt::Write;
            let _ = write!(out, "{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]);
        }
        Err(_) => out.push_str(ip.trim()),
    }
}

/// The family of a user agent: version numbers (digits, and the dots and
/// underscores between them) removed, whitespace collapsed, at most 160
/// characters.
pub fn client_of(user_agent: &str, out: &mut String) {
    out.clear();
    let mut prev_space = true;
    for c in user_agent.chars() {
        if out.len() >= 160 {
            break;
        }
        if c.is_ascii_digit() || ((c == '.' || c == '_') && out.ends_with(['/', ' ', '.', '_'])) {
            continue;
        }
        if c.is_whitespace() {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
            continue;
        }
        prev_space = false;
        out.push(c);
    }
    while out.ends_with([' ', '.', '_']) {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str) -> String {
        let mut s = String::new();
        network_of(ip, &mut s);
        s
    }

    fn client(ua: &str) -> String {
        let mut s = String::new();
        client_of(ua, &mut s);
        s
    }

    #[test]
    fn networks() {
        assert_eq!(net("10.1.2.3"), "10.1.2.0/24");
        assert_eq!(net(" 10.1.2.250 "), "10.1.2.0/24");
        assert_eq!(net("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
        assert_eq!(net("not an ip"), "not an ip");
    }

    #[test]
    fn a_browser_update_is_the_same_client() {
        let old = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";
        let new = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36";
        assert_eq!(client(old), client(new));
        assert_ne!(client(old), client("python-requests/2.31.0"));
        assert_eq!(client("python-requests/2.31.0"), "python-requests/");
        assert_eq!(client("databricks-sdk-py/0.18.0 python/3.11.4 os/linux"), "databricks-sdk-py/ python/ os/linux");
    }

    #[test]
    fn seen_values_are_bounded_and_forget_the_oldest() {
        let mut s = SeenValues::<3>::default();
        assert!(s.is_empty());
        for (h, at) in [(10, 1), (20, 2), (30, 3), (10, 4)] {
            s.insert(h, at);
        }
        s.insert(40, 5); // evicts 20, seen longest ago
        assert!(s.contains(10) && s.contains(30) && s.contains(40) && !s.contains(20));
        assert_eq!(s.len(), 3);
        s.insert(0, 6);
        assert!(s.contains(0));
    }

    #[test]
    fn a_settled_principal_rarely_brings_new_values() {
        let mut r = NewValueRate::default();
        assert!(r.p_new() > 0.4, "nothing known: new values are expected");
        r.update(true, 0.995);
        for _ in 0..150 {
            r.update(false, 0.995);
        }
        assert!(r.p_new() < 0.02, "{}", r.p_new());
        let mut roamer = NewValueRate::default();
        for i in 0..150 {
            roamer.update(i % 8 == 0, 0.995);
        }
        assert!(roamer.p_new() > 0.1, "{}", roamer.p_new());
    }
}
