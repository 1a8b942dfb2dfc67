//! Masking of personal data for audiences that must not see it, and the
//! IP addresses an alert names (for ECS `source.ip` and OCSF
//! `src_endpoint.ip`).
//!
//! Emails become a pseudonym that keeps the domain
//! (`masked-1f3a9c0b2e@example.com`): the same address always gives the
//! same pseudonym, so a reader can still tell one person from another, but
//! it is a hash, not anonymity (whoever holds a list of addresses can
//! recompute it). IPv4 addresses keep their /24 (`203.0.113.0`), IPv6
//! their /48 (`2001:db8:1::`): the network stays visible, the host does not.
//!
//! Written by hand rather than with `regex`: the two shapes are simple to
//! scan, and `std::net::IpAddr`'s parser decides exactly what an IP
//! address is (an IPv6 regular expression would not).

use super::config::Mask;
use crate::alert::Alert;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The alert as a sink with this mask may see it.
pub fn apply(alert: &Alert, mask: Mask) -> Alert {
    let mut a = alert.clone();
    if mask == Mask::default() {
        return a;
    }
    a.principal = text(&a.principal, mask);
    a.summary = text(&a.summary, mask);
    for g in a.context.groups.iter_mut().chain(a.context.privileges.iter_mut()) {
        *g = text(g, mask);
    }
    a
}

/// `s` with every email and/or IP address replaced.
pub fn text(s: &str, mask: Mask) -> String {
    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    if mask.emails {
        spans.extend(emails(s).map(|(a, b)| (a, b, pseudonym(&s[a..b]))));
    }
    if mask.ips {
        spans.extend(ips(s).map(|(a, b, ip)| (a, b, truncate(ip))));
    }
    if spans.is_empty() {
        return s.to_owned();
    }
    spans.sort_by_key(|(a, _, _)| *a);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (a, b, with) in spans {
        if a < at {
            continue; // overlapping (an address inside an email): the first wins
        }
        out.push_str(&s[at..a]);
        out.push_str(&with);
        at = b;
    }
    out.push_str(&s[at..]);
    out
}

/// The distinct IP addresses `s` names, in order of appearance.
pub fn ips_in(s: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (_, _, ip) in ips(s) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Byte spans of email addresses.
fn emails(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let b = s.as_bytes();
    memchr::memchr_iter(b'@', b).filter_map(move |at| {
        let mut start = at;
        while start > 0 && is_local(b[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < b.len() && is_domain(b[end]) {
            end += 1;
        }
        // A sentence may end right after the address.
        while end > at + 1 && b[end - 1] == b'.' {
            end -= 1;
        }
        let domain = &s[at + 1..end];
        (start < at && domain.contains('.') && !domain.starts_with('.')).then_some((start, end))
    })
}

fn pseudonym(email: &str) -> String {
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    let digest = Sha256::digest(email.to_ascii_lowercase().as_bytes());
    format!("masked-{}@{domain}", &hex::encode(digest)[..10])
}

/// Byte spans of IP addresses, with the address.
fn ips(s: &str) -> impl Iterator<Item = (usize, usize, IpAddr)> + '_ {
    let b = s.as_bytes();
    let candidate = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if !candidate(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && candidate(b[i]) {
                i += 1;
            }
            // Not part of a longer word (`v1.2.3.4beta`) and not the end of a sentence.
            let mut end = i;
            while end > start && matches!(b[end - 1], b'.' | b':') && !s[start..end].ends_with("::") {
                end -= 1;
            }
            let word_before = start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
            let word_after = i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_');
            if word_before || word_after {
                continue;
            }
            if let Ok(ip) = s[start..end].parse::<IpAddr>() {
                let dotted = s[start..end].bytes().filter(|c| *c == b'.').count();
                // `1.2` is a number, not an address; IPv4 needs all four parts.
                if ip.is_ipv6() || dotted == 3 {
                    return Some((start, end, ip));
                }
            }
        }
        None
    })
}

fn truncate(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let [a, b, c, _] = v4.octets();
                return format!("::ffff:{a}.{b}.{c}.0");
            }
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Mask = Mask { emails: true, ips: true };

    #[test]
    fn emails_get_a_stable_pseudonym_that_keeps_the_domain() {
        let m = text("ana.lopez+ci@corp.example.com ran 40 queries; ANA.LOPEZ+ci@corp.example.com again.", BOTH);
        let parts: Vec<&str> = m.split_whitespace().collect();
        assert!(parts[0].starts_with("masked-") && parts[0].ends_with("@corp.example.com"), "{m}");
        assert!(!m.contains("ana.lopez"));
        // Case does not make a second person; the sentence's full stop stays.
        assert!(m.ends_with(&format!("{} again.", parts[0])), "{m}");
    }

    #[test]
    fn ips_keep_their_network() {
        let m = text("new source 203.0.113.77, then 2001:db8:1:2::5 and ::ffff:10.1.2.3.", BOTH);
        assert_eq!(m, "new source 203.0.113.0, then 2001:db8:1:: and ::ffff:10.1.2.0.");
    }

    #[test]
    fn things_that_look_alike_are_left_alone() {
        let s = "version 1.2.3 at 10:00:00 id deadbeef-0001 v10.0.0.1x p=1.2e-6 user@localhost";
        assert_eq!(text(s, BOTH), s);
        assert!(ips_in(s).is_empty());
    }

    #[test]
    fn ips_in_lists_each_address_once() {
        let ips = ips_in("from 198.51.100.7 (status 401) from 198.51.100.7 and fe80::1");
        assert_eq!(ips, vec!["198.51.100.7".parse::<IpAddr>().unwrap(), "fe80::1".parse().unwrap()]);
    }

    #[test]
    fn an_unmasked_sink_sees_the_alert_as_it_is() {
        let mut a = crate::sink::format::tests::sample();
        a.summary = "x@y.org from 192.0.2.1".into();
        assert_eq!(apply(&a, Mask::default()), a);
        let m = apply(&a, Mask { emails: false, ips: true });
        assert_eq!(m.summary, "x@y.org from 192.0.2.0");
    }
}
