//! The client's address behind a reverse proxy.
//!
//! Only when the TCP peer is a configured proxy (`--trusted-proxy`) are the
//! forwarding headers believed at all; anyone else could write any address
//! there and dodge the per-address limits. The chain is read from the right
//! (each proxy appends the address it received the request from), skipping
//! trusted proxies: the right-most untrusted entry is the client, since
//! whatever lies to its left was written by the client itself. `Forwarded:
//! for=` (RFC 7239) is used when present, else `X-Forwarded-For`. An entry
//! that does not parse stops the walk and the proxy's own address is used:
//! nothing to the left of garbage can be trusted.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::FORWARDED;

/// Entries of a forwarding chain looked at, at most (from the right).
const MAX_HOPS: usize = 32;

/// A trusted proxy: one address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    net: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxy` value that is not an address or CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block: {0:?}")]
pub struct BadProxy(String);

impl FromStr for TrustedProxy {
    type Err = BadProxy;

    fn from_str(text: &str) -> Result<Self, BadProxy> {
        let bad = || BadProxy(text.chars().take(64).collect());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u8>() {
                    Ok(p) if p <= max => p,
                    _ => return Err(bad()),
                }
            }
            Some(_) => return Err(bad()),
        };
        Ok(TrustedProxy { net, prefix })
    }
}

impl TrustedProxy {
    /// Whether `ip` is this proxy (or in its block).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4
/// clients) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The client's address: `peer` unless `peer` is a trusted proxy and the
/// forwarding headers name someone else.
pub fn client_ip(peer: IpAddr, proxies: &[TrustedProxy], headers: &HeaderMap) -> IpAddr {
    let trusted = |ip: IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(peer) {
        return peer;
    }
    let chain = if headers.contains_key(FORWARDED) {
        chain(headers, "forwarded", forwarded_for)
    } else {
        chain(headers, "x-forwarded-for", parse_node)
    };
    let Some(chain) = chain else {
        return peer;
    };
    let mut client = peer;
    for entry in chain.iter().rev().take(MAX_HOPS) {
        match entry {
            Some(ip) if trusted(*ip) => client = *ip,
            Some(ip) => return *ip,
            None => return peer,
        }
    }
    client
}

/// The comma-separated entries of every `name` header, in order, each parsed
/// (or `None`); `None` when a header is not text.
fn chain(
    headers: &HeaderMap,
    name: &str,
    parse: fn(&str) -> Option<IpAddr>,
) -> Option<Vec<Option<IpAddr>>> {
    let mut entries = Vec::new();
    for value in headers.get_all(name) {
        let value = value.to_str().ok()?;
        entries.extend(value.split(',').map(|e| parse(e.trim())));
    }
    Some(entries)
}

/// One `Forwarded` element (`for=...;proto=...`): its `for` address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_node(value)
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:8080`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:8080`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn proxies_parse_and_match() {
        let one: TrustedProxy = "10.0.0.1".parse().unwrap();
        assert!(one.contains(ip("10.0.0.1")) && !one.contains(ip("10.0.0.2")));
        assert!(one.contains(ip("::ffff:10.0.0.1")));
        let block: TrustedProxy = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.255.3")) && !block.contains(ip("10.2.0.1")));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in [
            "",
            "proxy.example",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "1/8",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy() {
        let proxies: Vec<TrustedProxy> = vec!["127.0.0.1".parse().unwrap()];
        let h = headers(&[("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &proxies, &h), ip("203.0.113.5"));
        // Anyone else writing the header is taken at its TCP address.
        assert_eq!(client_ip(ip("127.0.0.2"), &proxies, &h), ip("127.0.0.2"));
        assert_eq!(client_ip(ip("127.0.0.2"), &[], &h), ip("127.0.0.2"));
        // A trusted proxy without the header is the client.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &proxies, &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let proxies: Vec<TrustedProxy> =
            vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let peer = ip("127.0.0.1");
        let cases = [
            // The client spoofs an entry on the left: ignored.
            (vec!["1.1.1.1, 203.0.113.5"], "203.0.113.5"),
            // Two proxies deep.
            (vec!["203.0.113.5, 10.0.0.7"], "203.0.113.5"),
            // Several headers are one list, in order.
            (vec!["1.1.1.1", "203.0.113.5, 10.0.0.7"], "203.0.113.5"),
            // Ports and brackets.
            (vec!["203.0.113.5:4711"], "203.0.113.5"),
            (vec!["[2001:db8::5]:4711"], "2001:db8::5"),
            (vec![" 2001:db8::5 "], "2001:db8::5"),
            (vec!["::ffff:203.0.113.5"], "203.0.113.5"),
            // Everything trusted: the left-most.
            (vec!["10.0.0.1, 10.0.0.2"], "10.0.0.1"),
            // Garbage where the client should be: the proxy's own address.
            (vec!["203.0.113.5, not-an-ip"], "127.0.0.1"),
            (vec!["unknown"], "127.0.0.1"),
            (vec![""], "127.0.0.1"),
            (vec!["203.0.113.5,"], "127.0.0.1"),
            // Garbage left of the client does not matter.
            (vec!["garbage, 203.0.113.5"], "203.0.113.5"),
        ];
        for (values, expected) in cases {
            let pairs: Vec<_> = values.iter().map(|v| ("x-forwarded-for", *v)).collect();
            assert_eq!(
                client_ip(peer, &proxies, &headers(&pairs)),
                ip(expected),
                "{values:?}"
            );
        }
    }

    #[test]
    fn forwarded_is_preferred_and_parsed_defensively() {
        let proxies: Vec<TrustedProxy> = vec!["127.0.0.1".parse().unwrap()];
        let peer = ip("127.0.0.1");
        let cases = [
            ("for=203.0.113.5", "203.0.113.5"),
            ("For=\"203.0.113.5:80\";proto=https", "203.0.113.5"),
            ("for=\"[2001:db8::5]:4711\"", "2001:db8::5"),
            ("for=1.1.1.1, for=203.0.113.5;by=127.0.0.1", "203.0.113.5"),
            ("proto=https;for=203.0.113.5", "203.0.113.5"),
            ("for=_hidden", "127.0.0.1"),
            ("for=unknown", "127.0.0.1"),
            ("proto=https", "127.0.0.1"),
            ("for=\"203.0.113.5", "127.0.0.1"),
            (";;;,,=", "127.0.0.1"),
        ];
        for (value, expected) in cases {
            let h = headers(&[("forwarded", value), ("x-forwarded-for", "198.51.100.1")]);
            assert_eq!(client_ip(peer, &proxies, &h), ip(expected), "{value}");
        }
    }

    #[test]
    fn long_chains_are_bounded() {
        let proxies: Vec<TrustedProxy> = vec!["0.0.0.0/0".parse().unwrap()];
        let chain = vec!["10.0.0.1"; 1000].join(",");
        let h = headers(&[("x-forwarded-for", &chain)]);
        assert_eq!(client_ip(ip("127.0.0.1"), &proxies, &h), ip("10.0.0.1"));
    }
}
