//! Ranges and range sets: the pools host-local allocates from, their
//! defaults and validation (as the reference's `Canonicalize`), and the
//! order in which free addresses are looked for.

use cni::ip;
use cni::Error;
use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

/// One range as written in the configuration; every field is text so that
/// errors can quote exactly what was written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub range_start: Option<String>,
    #[serde(default)]
    pub range_end: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

impl RangeConf {
    /// Whether any field is present (the legacy top-level keys count as a
    /// range only then).
    pub fn is_set(&self) -> bool {
        self.subnet.as_deref().is_some_and(|s| !s.is_empty())
    }
}

/// A validated range: every address from `start` to `end` (inclusive) lies
/// in `subnet`; `gateway` lies in `subnet` and is never handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

/// Subnets the reference refuses (Debian's 1.1.1 fails each of them) and
/// that cannot work anyway:
///
/// * a `/0` (`0.0.0.0/0`, `::/0`): every address of the family, the
///   default route's destination; `0.0.0.2/0` or `::2/0` on an interface is
///   refused by the kernel or shadows every route;
/// * an IPv6 subnet overlapping `::ffff:0:0/96` (IPv4-mapped addresses,
///   written `::ffff:10.0.0.0/120` or containing that block like `::/64`):
///   such an address names an IPv4 host, and its reservation file would be
///   the IPv4 address's (Go's `To4()` canonical form), colliding with the
///   IPv4 range sets. The reference says "IPNet IP and Mask version mismatch".
///
/// Checked on the text as written, before [`ip::parse_subnet`] turns a
/// mapped subnet into its IPv4 equivalent.
fn refuse_unusable_subnet(text: &str) -> Result<(), String> {
    let Ok(net) = text.trim().parse::<IpNet>() else {
        return Ok(()); // parse_subnet reports it
    };
    if net.prefix_len() == 0 {
        return Err(format!(
            "{text:?}: a /0 covers every {} address and cannot be allocated from \
             (the reference refuses it too); use the subnet the containers are on",
            if net.addr().is_ipv4() { "IPv4" } else { "IPv6" }
        ));
    }
    if let IpNet::V6(n) = net {
        let mapped = ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
            .map_err(|e| e.to_string())?;
        if n.contains(&mapped.network()) || mapped.contains(&n.network()) {
            return Err(format!(
                "{text:?} overlaps ::ffff:0:0/96, the IPv4-mapped addresses, which name IPv4 \
                 hosts (the reference refuses it too); write the IPv4 subnet instead"
            ));
        }
    }
    Ok(())
}

impl Range {
    /// Validate one range and fill in the reference's defaults. `key` names
    /// the range in messages, e.g. `ipam.ranges[0][1]`.
    pub fn from_conf(c: &RangeConf, key: &str) -> Result<Range, Error> {
        let bad = |field: &str, why: String| Error::config(format!("{key}.{field}: {why}"));
        let subnet_text = c
            .subnet
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::config(format!("{key}.subnet: missing")))?;
        refuse_unusable_subnet(subnet_text).map_err(|e| bad("subnet", e))?;
        let subnet = ip::parse_subnet(subnet_text).map_err(|e| bad("subnet", e))?;
        let host_bits = match subnet {
            IpNet::V4(_) => 32,
            IpNet::V6(_) => 128,
        } - subnet.prefix_len();
        // The reference needs a network address, a gateway and at least one
        // more address: /30 and /126 are the smallest it accepts.
        if host_bits < 2 {
            return Err(bad(
                "subnet",
                format!(
                    "{subnet} is too small to allocate from (the smallest allowed is /{} for {})",
                    if subnet.addr().is_ipv4() { 30 } else { 126 },
                    if subnet.addr().is_ipv4() {
                        "IPv4"
                    } else {
                        "IPv6"
                    }
                ),
            ));
        }
        let network = subnet.network();
        let first = ip::next(network).ok_or_else(|| bad("subnet", format!("{subnet} is empty")))?;

        let parse_in_subnet = |field: &str, text: &str| -> Result<IpAddr, Error> {
            let a = ip::parse_ip(text).map_err(|e| bad(field, e))?;
            if !ip::contains(&subnet, a) {
                return Err(bad(field, format!("{a} is not in subnet {subnet}")));
            }
            Ok(a)
        };
        let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);

        let gateway = match given(&c.gateway) {
            Some(g) => parse_in_subnet("gateway", &g)?,
            None => first,
        };
        let start = match given(&c.range_start) {
            Some(s) => parse_in_subnet("rangeStart", &s)?,
            None => first,
        };
        let end = match given(&c.range_end) {
            Some(s) => parse_in_subnet("rangeEnd", &s)?,
            None => ip::last_usable(&subnet),
        };
        if ip::cmp(start, end) == Some(std::cmp::Ordering::Greater) {
            return Err(bad(
                "rangeStart",
                format!("{start} is after rangeEnd {end}"),
            ));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }

    /// Whether `a` is an address of this range (start..=end, same family).
    pub fn contains(&self, a: IpAddr) -> bool {
        matches!(ip::cmp(self.start, a), Some(o) if o.is_le())
            && matches!(ip::cmp(a, self.end), Some(o) if o.is_le())
    }

    /// Number of addresses from start to end.
    pub fn size(&self) -> u128 {
        ip::distance(self.start, self.end)
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Index of `a` counted from `start`, if `a` is in the range.
    pub fn offset_of(&self, a: IpAddr) -> Option<u128> {
        if self.contains(a) {
            ip::distance(self.start, a)
        } else {
            None
        }
    }

    fn overlaps(&self, other: &Range) -> bool {
        // Two intervals of one family intersect iff one holds the other's start.
        self.contains(other.start) || other.contains(self.start)
    }

    /// The address with the subnet's prefix, as returned in results.
    pub fn with_prefix(&self, a: IpAddr) -> IpNet {
        // The prefix length came from a valid IpNet of the same family.
        IpNet::new(a, self.subnet.prefix_len()).unwrap_or(self.subnet)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A pool of ranges of one family; one address is taken from each set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

impl RangeSet {
    /// Validate a set: not empty, one family, no two ranges overlapping.
    pub fn from_conf(confs: &[RangeConf], key: &str) -> Result<RangeSet, Error> {
        if confs.is_empty() {
            return Err(Error::config(format!(
                "{key}: empty range set (each range set needs at least one range)"
            )));
        }
        let mut ranges: Vec<Range> = Vec::with_capacity(confs.len());
        for (i, c) in confs.iter().enumerate() {
            let r = Range::from_conf(c, &format!("{key}[{i}]"))?;
            if let Some(first) = ranges.first() {
                if !ip::same_family(first.start, r.start) {
                    return Err(Error::config(format!(
                        "{key}: mixed address families ({} and {}); use one range set per family",
                        first.subnet, r.subnet
                    )));
                }
            }
            if let Some(other) = ranges.iter().find(|o| o.overlaps(&r)) {
                return Err(Error::config(format!(
                    "{key}: ranges {other} ({}) and {r} ({}) overlap",
                    other.subnet, r.subnet
                )));
            }
            ranges.push(r);
        }
        Ok(RangeSet(ranges))
    }

    pub fn is_ipv4(&self) -> bool {
        self.0.first().is_some_and(|r| r.start.is_ipv4())
    }

    /// The range holding `a`, with its index.
    pub fn range_for(&self, a: IpAddr) -> Option<(usize, &Range)> {
        self.0.iter().enumerate().find(|(_, r)| r.contains(a))
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        self.range_for(a).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// Candidate addresses in the reference's order: round-robin from the
    /// address after `last` (when `last` is in the set; else from the first
    /// range's start), through each range to its end, on to the next range,
    /// wrapping, until every address was offered once. Gateways are skipped.
    pub fn candidates(&self, last: Option<IpAddr>) -> Candidates<'_> {
        let first = match last.and_then(|l| self.range_for(l).map(|(i, _)| (i, l))) {
            Some(pos) => self.step(pos),
            None => (0, self.0.first().map(|r| r.start)),
        };
        Candidates {
            set: self,
            first: first.1.map(|a| (first.0, a)),
            cur: first.1.map(|a| (first.0, a)),
        }
    }

    /// The position after `(range, addr)`, wrapping at the end of the set.
    fn step(&self, (ri, a): (usize, IpAddr)) -> (usize, Option<IpAddr>) {
        let r = &self.0[ri];
        if a == r.end {
            let ni = (ri + 1) % self.0.len();
            (ni, Some(self.0[ni].start))
        } else {
            (ri, ip::next(a))
        }
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Iterator over candidate addresses; yields `(range index, address)`.
pub struct Candidates<'a> {
    set: &'a RangeSet,
    first: Option<(usize, IpAddr)>,
    cur: Option<(usize, IpAddr)>,
}

impl Iterator for Candidates<'_> {
    type Item = (usize, IpAddr);

    fn next(&mut self) -> Option<(usize, IpAddr)> {
        loop {
            let (ri, a) = self.cur?;
            let (ni, na) = self.set.step((ri, a));
            self.cur = match na {
                Some(n) if Some((ni, n)) != self.first => Some((ni, n)),
                _ => None,
            };
            if a != self.set.0[ri].gateway {
                return Some((ri, a));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(subnet: &str) -> RangeConf {
        RangeConf {
            subnet: Some(subnet.into()),
            ..Default::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_match_the_reference() {
        let r = Range::from_conf(&conf("10.1.0.0/24"), "r").unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.0.1"), ip("10.1.0.254"), ip("10.1.0.1"))
        );
        assert_eq!(r.to_string(), "10.1.0.1-10.1.0.254");
        let r = Range::from_conf(&conf("fd00::/120"), "r").unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("fd00::1"), ip("fd00::ff"), ip("fd00::1"))
        );
        // The smallest subnets the reference accepts.
        let r = Range::from_conf(&conf("10.1.0.0/30"), "r").unwrap();
        assert_eq!((r.start, r.end), (ip("10.1.0.1"), ip("10.1.0.2")));
        let r = Range::from_conf(&conf("fd00::/126"), "r").unwrap();
        assert_eq!((r.start, r.end), (ip("fd00::1"), ip("fd00::3")));
        // The top of the address space does not overflow.
        let r = Range::from_conf(&conf("255.255.255.0/24"), "r").unwrap();
        assert_eq!(r.end, ip("255.255.255.254"));
        let r =
            Range::from_conf(&conf("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124"), "r").unwrap();
        assert_eq!(r.end, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(RangeSet(vec![r]).candidates(None).count(), 14);
    }

    #[test]
    fn explicit_fields() {
        let c = RangeConf {
            subnet: Some("10.1.0.0/24".into()),
            range_start: Some("10.1.0.10".into()),
            range_end: Some("10.1.0.20".into()),
            gateway: Some("10.1.0.254".into()),
        };
        let r = Range::from_conf(&c, "r").unwrap();
        assert_eq!(
            (r.start, r.end, r.gateway),
            (ip("10.1.0.10"), ip("10.1.0.20"), ip("10.1.0.254"))
        );
        assert_eq!(r.size(), 11);
        assert_eq!(r.offset_of(ip("10.1.0.12")), Some(2));
        assert_eq!(r.offset_of(ip("10.1.0.21")), None);
    }

    #[test]
    fn errors_name_key_and_value() {
        let cases: Vec<(RangeConf, &str, &str)> = vec![
            (conf("10.1.0.0/31"), "r.subnet", "too small"),
            (conf("10.1.0.0/32"), "r.subnet", "too small"),
            (conf("fd00::/127"), "r.subnet", "too small"),
            (conf("fd00::/128"), "r.subnet", "too small"),
            (conf("10.1.0.5/24"), "r.subnet", "host bits"),
            (conf("bogus"), "r.subnet", "\"bogus\""),
            (RangeConf::default(), "r.subnet", "missing"),
            (
                RangeConf {
                    gateway: Some("10.2.0.1".into()),
                    ..conf("10.1.0.0/24")
                },
                "r.gateway",
                "10.2.0.1 is not in subnet 10.1.0.0/24",
            ),
            (
                RangeConf {
                    range_start: Some("10.1.1.5".into()),
                    ..conf("10.1.0.0/24")
                },
                "r.rangeStart",
                "10.1.1.5",
            ),
            (
                RangeConf {
                    range_end: Some("fd00::1".into()),
                    ..conf("10.1.0.0/24")
                },
                "r.rangeEnd",
                "fd00::1",
            ),
            (
                RangeConf {
                    range_start: Some("10.1.0.50".into()),
                    range_end: Some("10.1.0.20".into()),
                    ..conf("10.1.0.0/24")
                },
                "r.rangeStart",
                "10.1.0.50 is after rangeEnd 10.1.0.20",
            ),
            (
                RangeConf {
                    range_start: Some("10.1.0.1.1".into()),
                    ..conf("10.1.0.0/24")
                },
                "r.rangeStart",
                "10.1.0.1.1",
            ),
        ];
        for (c, key, what) in cases {
            let e = Range::from_conf(&c, "r").unwrap_err();
            assert_eq!(e.code, 7, "{c:?}");
            assert!(e.msg.starts_with(key), "{c:?}: {}", e.msg);
            assert!(e.msg.contains(what), "{c:?}: {}", e.msg);
        }
    }

    #[test]
    fn sets_reject_mixing_and_overlap() {
        let e = RangeSet::from_conf(&[], "s").unwrap_err();
        assert!(e.msg.contains("empty range set"));
        let e = RangeSet::from_conf(&[conf("10.1.0.0/24"), conf("fd00::/64")], "s").unwrap_err();
        assert!(e.msg.contains("mixed address families"), "{}", e.msg);
        let e = RangeSet::from_conf(&[conf("10.1.0.0/24"), conf("10.1.0.0/25")], "s").unwrap_err();
        assert!(e.msg.contains("overlap"), "{}", e.msg);
        // Disjoint ranges of one subnet are fine, as in the reference.
        let a = RangeConf {
            range_end: Some("10.1.0.100".into()),
            ..conf("10.1.0.0/24")
        };
        let b = RangeConf {
            range_start: Some("10.1.0.101".into()),
            ..conf("10.1.0.0/24")
        };
        let s = RangeSet::from_conf(&[a, b], "s").unwrap();
        assert_eq!(s.to_string(), "10.1.0.1-10.1.0.100,10.1.0.101-10.1.0.254");
        let t = RangeSet::from_conf(&[conf("10.1.0.0/16")], "t").unwrap();
        assert!(s.overlaps(&t) && t.overlaps(&s));
        let u = RangeSet::from_conf(&[conf("fd00::/64")], "u").unwrap();
        assert!(!s.overlaps(&u));
    }

    #[test]
    fn iteration_round_robins_and_skips_gateway() {
        let s = RangeSet::from_conf(&[conf("10.9.0.0/29")], "s").unwrap();
        let all: Vec<String> = s.candidates(None).map(|(_, a)| a.to_string()).collect();
        assert_eq!(
            all,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
        );
        // From the last reserved address, wrapping, ending with it.
        let all: Vec<String> = s
            .candidates(Some(ip("10.9.0.4")))
            .map(|(_, a)| a.to_string())
            .collect();
        assert_eq!(
            all,
            ["10.9.0.5", "10.9.0.6", "10.9.0.2", "10.9.0.3", "10.9.0.4"]
        );
        // A last address outside the set restarts at the beginning.
        assert_eq!(
            s.candidates(Some(ip("10.10.0.4"))).next(),
            Some((0, ip("10.9.0.2")))
        );
        assert_eq!(
            s.candidates(Some(ip("10.9.0.6"))).next(),
            Some((0, ip("10.9.0.2")))
        );
    }

    #[test]
    fn iteration_walks_subnets_in_turn() {
        let s = RangeSet::from_conf(&[conf("10.1.0.0/30"), conf("10.2.0.0/30")], "s").unwrap();
        let all: Vec<(usize, String)> = s
            .candidates(Some(ip("10.1.0.2")))
            .map(|(i, a)| (i, a.to_string()))
            .collect();
        assert_eq!(all, [(1, "10.2.0.2".into()), (0, "10.1.0.2".into())]);
        // A range holding only its gateway yields nothing, and ends.
        let g = RangeConf {
            range_start: Some("10.3.0.1".into()),
            range_end: Some("10.3.0.1".into()),
            ..conf("10.3.0.0/30")
        };
        let s = RangeSet::from_conf(&[g], "s").unwrap();
        assert_eq!(s.candidates(None).count(), 0);
    }
}
