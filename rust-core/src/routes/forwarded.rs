//! Who the client is behind a proxy: `X-Forwarded-For`, `X-Forwarded-Proto`
//! and `Forwarded` (RFC 7239), honoured only when the peer is one of the
//! proxies the app-wide section trusts (`"forwarded_allow_ips"`).
//!
//! The client is the rightmost address in the forwarded chain that is not a
//! trusted proxy: each trusted proxy appends the address it received the
//! request from, so everything left of the first untrusted hop may have
//! been written by the client itself. `X-Forwarded-For` wins over
//! `Forwarded` when both arrive: a proxy that sets one usually passes the
//! other through untouched, as the client sent it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use super::json::Json;

/// The proxies whose forwarding headers are believed; empty trusts none.
#[derive(Debug, Default)]
pub struct Trust {
    any: bool,
    networks: Vec<(IpAddr, u8)>,
}

/// The client a request is answered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer, when the connection has one.
    pub peer: Option<SocketAddr>,
    /// The client a trusted proxy named: host (an address, or an
    /// obfuscated name such as `_hidden`) and port (0 when not given).
    pub forwarded: Option<(String, u16)>,
    /// `"http"`, or `"https"` when a trusted proxy said so.
    pub scheme: &'static str,
}

impl Client {
    /// A client connected directly.
    pub fn direct(peer: Option<SocketAddr>) -> Self {
        Client {
            peer,
            forwarded: None,
            scheme: "http",
        }
    }

    /// The client's host: its address, or what a trusted proxy named.
    pub fn host(&self) -> Cow<'_, str> {
        match (&self.forwarded, self.peer) {
            (Some((host, _)), _) => Cow::Borrowed(host),
            (None, Some(peer)) => Cow::Owned(peer.ip().to_canonical().to_string()),
            (None, None) => Cow::Borrowed(""),
        }
    }

    pub fn port(&self) -> u16 {
        match (&self.forwarded, self.peer) {
            (Some((_, port)), _) => *port,
            (None, Some(peer)) => peer.port(),
            (None, None) => 0,
        }
    }
}

impl Trust {
    /// Parses `["127.0.0.1", "10.0.0.0/8", "::1"]`, or `["*"]` for any peer.
    pub fn parse(value: &Json) -> Result<Self, String> {
        let Json::Array(items) = value else {
            return Err(format!(
                "must be an array of IP addresses or networks, got {}",
                value.kind()
            ));
        };
        let mut trust = Trust::default();
        for item in items {
            let Json::String(text) = item else {
                return Err(format!(
                    "must be an array of IP addresses or networks, got {} in it",
                    item.kind()
                ));
            };
            match text.trim() {
                "*" => trust.any = true,
                entry => trust.networks.push(network(entry).ok_or_else(|| {
                    format!("{text:?} is not an IP address, a network such as 10.0.0.0/8, or \"*\"")
                })?),
            }
        }
        Ok(trust)
    }

    pub fn is_empty(&self) -> bool {
        !self.any && self.networks.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.any
            || self
                .networks
                .iter()
                .any(|&(net, prefix)| in_network(ip, net, prefix))
    }

    /// The client of a request from `peer` with `headers`.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Client {
        let mut client = Client::direct(peer);
        match peer {
            Some(peer) if !self.is_empty() && self.trusts(peer.ip()) => {
                self.resolve(headers, &mut client)
            }
            _ => {}
        }
        client
    }

    fn resolve(&self, headers: &HeaderMap, client: &mut Client) {
        let joined = |name: &str| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        if let Some(chain) = joined("x-forwarded-for") {
            let hops: Vec<&str> = chain.split(',').map(str::trim).collect();
            if let Some(hop) = self.first_untrusted(&hops) {
                client.forwarded = Some(split_port(hop));
            }
            if let Some(proto) = joined("x-forwarded-proto") {
                client.scheme = scheme(proto.split(',').next().unwrap_or("")).unwrap_or("http");
            }
        } else if let Some(forwarded) = joined("forwarded") {
            let elements: Vec<Vec<(String, String)>> =
                forwarded.split(',').map(element_pairs).collect();
            let hops: Vec<&str> = elements
                .iter()
                .map(|pairs| pair(pairs, "for").unwrap_or(""))
                .collect();
            if let Some(index) = self.first_untrusted_index(&hops) {
                if !hops[index].is_empty() {
                    client.forwarded = Some(split_port(hops[index]));
                }
                if let Some(proto) = pair(&elements[index], "proto").and_then(scheme) {
                    client.scheme = proto;
                }
            }
        } else if let Some(proto) = joined("x-forwarded-proto") {
            client.scheme = scheme(proto.split(',').next().unwrap_or("")).unwrap_or("http");
        }
    }

    fn first_untrusted<'a>(&self, hops: &[&'a str]) -> Option<&'a str> {
        self.first_untrusted_index(hops).map(|i| hops[i])
    }

    /// From the right, the first hop that is not a trusted proxy; the
    /// leftmost when all are trusted. `None` for an empty chain.
    fn first_untrusted_index(&self, hops: &[&str]) -> Option<usize> {
        if hops.iter().all(|hop| hop.is_empty()) {
            return None;
        }
        let trusted = |hop: &str| parse_host(hop).is_some_and(|ip| self.trusts(ip));
        Some(
            hops.iter()
                .rposition(|hop| !hop.is_empty() && !trusted(hop))
                .unwrap_or(0),
        )
    }
}

fn scheme(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    }
}

/// The `name=value` pairs of one `Forwarded` element, names lower-cased,
/// quotes removed.
fn element_pairs(element: &str) -> Vec<(String, String)> {
    element
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim().to_ascii_lowercase(), value.to_owned()))
        })
        .collect()
}

fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`: the host and the port (0 if
/// none). Anything else is kept whole as the host.
fn split_port(hop: &str) -> (String, u16) {
    match address(hop) {
        Some((ip, port)) => (ip.to_canonical().to_string(), port),
        None => (hop.to_owned(), 0),
    }
}

fn parse_host(hop: &str) -> Option<IpAddr> {
    address(hop).map(|(ip, _)| ip)
}

/// The address and port (0 if none) of a hop that is one.
fn address(hop: &str) -> Option<(IpAddr, u16)> {
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some((addr.ip(), addr.port()));
    }
    let bare = hop
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(hop);
    bare.parse().ok().map(|ip| (ip, 0))
}

fn network(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let ip = ip.to_canonical();
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((ip, prefix))
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(list: &[&str]) -> Trust {
        let items = list.iter().map(|s| Json::String((*s).to_owned())).collect();
        Trust::parse(&Json::Array(items)).unwrap()
    }

    fn client(trust: &Trust, peer: &str, headers: &[(&str, &str)]) -> Client {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        trust.client(Some(peer.parse().unwrap()), &map)
    }

    #[test]
    fn untrusted_peers_are_taken_at_their_word_only() {
        let t = trust(&["10.0.0.1"]);
        let c = client(
            &t,
            "192.0.2.1:5000",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(
            (c.host().as_ref(), c.port(), c.scheme),
            ("192.0.2.1", 5000, "http")
        );
        let none = Trust::default();
        let c = client(&none, "10.0.0.1:1", &[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(c.forwarded, None);
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = trust(&["10.0.0.0/8", "127.0.0.1"]);
        let c = client(
            &t,
            "127.0.0.1:40000",
            &[
                ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
                ("x-forwarded-for", "10.1.2.3"),
                ("x-forwarded-proto", "HTTPS, http"),
            ],
        );
        assert_eq!(
            (c.host().as_ref(), c.port(), c.scheme),
            ("203.0.113.7", 0, "https")
        );
        // Every hop trusted: the leftmost.
        let c = client(
            &t,
            "127.0.0.1:1",
            &[("x-forwarded-for", "10.0.0.5:81, 10.0.0.6")],
        );
        assert_eq!((c.host().as_ref(), c.port()), ("10.0.0.5", 81));
        // A proto that is neither http nor https is ignored.
        let c = client(&t, "127.0.0.1:1", &[("x-forwarded-proto", "gopher")]);
        assert_eq!(c.scheme, "http");
    }

    #[test]
    fn forwarded_elements_give_client_and_proto() {
        let t = trust(&["*"]);
        let c = client(
            &t,
            "[::ffff:127.0.0.1]:9",
            &[(
                "forwarded",
                r#"for="[2001:db8::17]:4711";proto=https, for=unknown;proto=http"#,
            )],
        );
        // "unknown" is not an address, so not a trusted proxy: the client.
        assert_eq!((c.host().as_ref(), c.scheme), ("unknown", "http"));
        let t = trust(&["127.0.0.1"]);
        let c = client(
            &t,
            "127.0.0.1:9",
            &[("forwarded", r#"For="[2001:db8::17]:4711";Proto=https;by=x"#)],
        );
        assert_eq!(
            (c.host().as_ref(), c.port(), c.scheme),
            ("2001:db8::17", 4711, "https")
        );
        // X-Forwarded-For wins over Forwarded.
        let c = client(
            &t,
            "127.0.0.1:9",
            &[
                ("forwarded", "for=192.0.2.9"),
                ("x-forwarded-for", "192.0.2.10"),
            ],
        );
        assert_eq!(c.host(), "192.0.2.10");
    }

    #[test]
    fn networks_and_mapped_addresses_match() {
        let t = trust(&["10.0.0.0/8", "::1", "2001:db8::/32"]);
        assert!(t.trusts("10.255.0.1".parse().unwrap()));
        assert!(!t.trusts("11.0.0.1".parse().unwrap()));
        assert!(t.trusts("::1".parse().unwrap()));
        assert!(t.trusts("::ffff:10.0.0.1".parse().unwrap()));
        assert!(t.trusts("2001:db8:1::1".parse().unwrap()));
        assert!(trust(&["0.0.0.0/0"]).trusts("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", ""] {
            let items = vec![Json::String(bad.to_owned())];
            assert!(Trust::parse(&Json::Array(items)).is_err(), "{bad}");
        }
        assert!(Trust::parse(&Json::String("127.0.0.1".into())).is_err());
    }
}
