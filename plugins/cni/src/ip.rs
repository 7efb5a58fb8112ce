//! Address maths, in one place: parsing as the reference parses, the
//! canonical text form that names reservation files, stepping through
//! addresses and comparing them. Every other module calls these; none
//! re-derives them.
//!
//! Addresses are handled as `u128` plus a family flag, so IPv4 and IPv6 share
//! one code path and no step can overflow silently: stepping past the last
//! address of a family yields `None`.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as an integer in its own family (IPv4 fits in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `v` in the family of `like`; `None` if it does not fit (IPv4 above 2^32-1).
pub fn from_u128(v: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(v).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpAddr::V6(_) => Some(IpAddr::V6(Ipv6Addr::from(v))),
    }
}

/// Whether two addresses are of the same family.
pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// `ip + n`, or `None` past the end of the family.
pub fn add(ip: IpAddr, n: u128) -> Option<IpAddr> {
    to_u128(ip).checked_add(n).and_then(|v| from_u128(v, ip))
}

/// The address after `ip`, or `None` after the last address of the family.
pub fn next(ip: IpAddr) -> Option<IpAddr> {
    add(ip, 1)
}

/// The address before `ip`, or `None` before the first.
pub fn prev(ip: IpAddr) -> Option<IpAddr> {
    to_u128(ip).checked_sub(1).and_then(|v| from_u128(v, ip))
}

/// `b - a` for two addresses of one family with `a <= b`.
pub fn distance(a: IpAddr, b: IpAddr) -> Option<u128> {
    if !same_family(a, b) {
        return None;
    }
    to_u128(b).checked_sub(to_u128(a))
}

/// Compare two addresses of one family; `None` across families.
pub fn cmp(a: IpAddr, b: IpAddr) -> Option<std::cmp::Ordering> {
    same_family(a, b).then(|| to_u128(a).cmp(&to_u128(b)))
}

/// Whether `net` contains `ip` (same family, within the prefix).
pub fn contains(net: &IpNet, ip: IpAddr) -> bool {
    same_family(net.addr(), ip) && net.contains(&ip)
}

/// The reference's default end of a range: the broadcast address minus one
/// for IPv4, the very last address for IPv6 (which has no broadcast).
pub fn last_usable(net: &IpNet) -> IpAddr {
    let last = net.broadcast();
    match last {
        IpAddr::V4(_) => prev(last).unwrap_or(last),
        IpAddr::V6(_) => last,
    }
}

/// Go's `To4()` canonicalisation: an IPv4-mapped IPv6 address is the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The text that names an address's reservation file: dotted quad, or
/// RFC 5952 compressed IPv6 (what Go's `net.IP.String()` prints).
pub fn file_name(ip: IpAddr) -> String {
    canonical(ip).to_string()
}

/// Parse one address, canonicalised.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse::<IpAddr>()
        .map(canonical)
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// Parse `ip/prefix`, keeping the address as written (static's addresses,
/// requested IPs with a prefix).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let net: IpNet = t
        .parse()
        .map_err(|_| format!("{s:?} is not an address in CIDR notation (ip/prefix)"))?;
    match net {
        IpNet::V6(n) => match n.addr().to_ipv4_mapped() {
            // Go's canonical form of a mapped address is the IPv4 address; the
            // prefix then counts from the IPv4 part.
            Some(v4) if n.prefix_len() >= 96 => {
                IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).map_err(|e| e.to_string())
            }
            _ => Ok(net),
        },
        v4 => Ok(v4),
    }
}

/// Parse a subnet: `ip/prefix` whose address is the network address itself.
pub fn parse_subnet(s: &str) -> Result<IpNet, String> {
    let net = parse_cidr(s)?;
    if net.addr() != net.network() {
        return Err(format!(
            "{s:?} has host bits set: for a prefix of length {} the network address is {}",
            net.prefix_len(),
            net.network()
        ));
    }
    Ok(net)
}

/// A requested address: `ip` or `ip/prefix` (runtimeConfig.ips accepts both);
/// only the address matters to host-local.
pub fn parse_requested(s: &str) -> Result<IpAddr, String> {
    if s.contains('/') {
        parse_cidr(s).map(|n| n.addr())
    } else {
        parse_ip(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn stepping_stops_at_family_edges() {
        assert_eq!(next(ip("10.0.0.255")), Some(ip("10.0.1.0")));
        assert_eq!(next(ip("255.255.255.255")), None);
        assert_eq!(prev(ip("0.0.0.0")), None);
        assert_eq!(next(ip("fd00::ffff")), Some(ip("fd00::1:0")));
        assert_eq!(next(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")), None);
        assert_eq!(add(ip("10.0.0.1"), 256), Some(ip("10.0.1.1")));
        assert_eq!(distance(ip("10.0.0.1"), ip("10.0.1.1")), Some(256));
        assert_eq!(distance(ip("10.0.0.1"), ip("fd00::1")), None);
        assert_eq!(cmp(ip("10.0.0.1"), ip("fd00::1")), None);
    }

    #[test]
    fn last_usable_is_broadcast_minus_one_for_v4_only() {
        let n: IpNet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(last_usable(&n), ip("10.1.0.254"));
        let n: IpNet = "fd00::/120".parse().unwrap();
        assert_eq!(last_usable(&n), ip("fd00::ff"));
        let n: IpNet = "255.255.255.252/30".parse().unwrap();
        assert_eq!(last_usable(&n), ip("255.255.255.254"));
    }

    #[test]
    fn file_names_match_go() {
        assert_eq!(file_name(ip("10.1.2.3")), "10.1.2.3");
        assert_eq!(file_name(ip("fd00:0:0:0:0:0:0:2")), "fd00::2");
        assert_eq!(file_name(ip("2001:db8:0:0:1:0:0:1")), "2001:db8::1:0:0:1");
        assert_eq!(file_name(ip("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(file_name(ip("FD00::A")), "fd00::a");
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_ip(" 10.0.0.1 "), Ok(ip("10.0.0.1")));
        assert!(parse_ip("10.0.0.256").is_err());
        assert!(parse_ip("10.0.0.1.1").is_err());
        assert!(parse_ip("").is_err());
        assert_eq!(parse_subnet("10.0.0.0/8").unwrap().prefix_len(), 8);
        let e = parse_subnet("10.1.0.5/24").unwrap_err();
        assert!(e.contains("host bits") && e.contains("10.1.0.0"), "{e}");
        assert!(parse_subnet("10.0.0.0/33").is_err());
        assert!(parse_subnet("bogus").is_err());
        assert_eq!(parse_requested("10.0.0.5/24"), Ok(ip("10.0.0.5")));
        assert_eq!(parse_requested("fd00::5"), Ok(ip("fd00::5")));
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/120").unwrap(),
            "10.0.0.0/24".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn containment_respects_family() {
        let n: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(contains(&n, ip("10.255.0.1")));
        assert!(!contains(&n, ip("11.0.0.1")));
        assert!(!contains(&n, ip("fd00::1")));
    }
}
