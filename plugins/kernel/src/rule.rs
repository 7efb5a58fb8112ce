//! Policy routing rules: `ip rule` verbs over rtnetlink (RTM_NEWRULE,
//! RTM_DELRULE, RTM_GETRULE). Messages are built by [`rule_message`],
//! apart from the socket, and unit-tested below.

use crate::addr::Family;
use crate::error::{Error, Result};
use crate::netlink::Netlink;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::route::RouteHeader;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// A rule, as added or as listed: `from SRC to DST lookup TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    /// `pref`; `None` on add lets the kernel pick (just above the main
    /// table's rule: 32765, 32764, ... as `ip rule add` without `pref`).
    pub priority: Option<u32>,
    pub src: Option<IpNet>,
    pub dst: Option<IpNet>,
    /// Routing table looked up (any id, also above 255).
    pub table: u32,
    /// `lookup` for rules this crate adds; listed rules keep theirs.
    pub action: RuleAction,
}

impl Rule {
    /// `lookup TABLE` for every packet of `family`.
    pub fn lookup(family: Family, table: u32) -> Rule {
        Rule {
            family,
            priority: None,
            src: None,
            dst: None,
            table,
            action: RuleAction::ToTable,
        }
    }

    /// `from ADDR/32` (or `/128`) `lookup TABLE`: the source rule for one address.
    pub fn from_addr(addr: std::net::IpAddr, table: u32) -> Rule {
        let mut r = Rule::lookup(Family::of(&addr), table);
        r.src = Some(IpNet::from(addr));
        r
    }
}

/// `RTM_NEWRULE`/`RTM_DELRULE` for `r`. Tables below 256 also go into the
/// header's 8-bit field, as `ip rule` sends them; every table goes into
/// `FRA_TABLE`, which the kernel prefers.
pub fn rule_message(r: &Rule) -> RuleMessage {
    let mut m = RuleMessage::default();
    m.header.family = r.family.af();
    m.header.action = r.action;
    m.header.table = if r.table < 256 {
        r.table as u8
    } else {
        RouteHeader::RT_TABLE_UNSPEC
    };
    if r.table != 0 {
        m.attributes.push(RuleAttribute::Table(r.table));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some(src) = r.src {
        m.header.src_len = src.prefix_len();
        m.attributes.push(RuleAttribute::Source(src.trunc().addr()));
    }
    if let Some(dst) = r.dst {
        m.header.dst_len = dst.prefix_len();
        m.attributes
            .push(RuleAttribute::Destination(dst.trunc().addr()));
    }
    m
}

/// A listed rule; `None` for families other than IPv4 and IPv6.
fn parse_rule(m: &RuleMessage) -> Option<Rule> {
    let family = match m.header.family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    let mut r = Rule::lookup(family, m.header.table as u32);
    r.action = m.header.action;
    for a in &m.attributes {
        match a {
            RuleAttribute::Table(t) => r.table = *t,
            RuleAttribute::Priority(p) => r.priority = Some(*p),
            RuleAttribute::Source(ip) => r.src = IpNet::new(*ip, m.header.src_len).ok(),
            RuleAttribute::Destination(ip) => r.dst = IpNet::new(*ip, m.header.dst_len).ok(),
            _ => {}
        }
    }
    Some(r)
}

/// `from 10.0.0.2/32 lookup 100 pref 32765`, for messages.
pub fn describe(r: &Rule) -> String {
    let mut s = String::new();
    match r.src {
        Some(src) => s.push_str(&format!("from {src}")),
        None => s.push_str("from all"),
    }
    if let Some(dst) = r.dst {
        s.push_str(&format!(" to {dst}"));
    }
    s.push_str(&format!(" lookup {}", r.table));
    if let Some(p) = r.priority {
        s.push_str(&format!(" pref {p}"));
    }
    s
}

impl Netlink {
    /// `ip rule show` of one family, or of both with `None`.
    pub fn rules(&mut self, family: Option<Family>) -> Result<Vec<Rule>> {
        let mut m = RuleMessage::default();
        m.header.family = family.map_or(AddressFamily::Unspec, Family::af);
        let out = self.request(RouteNetlinkMessage::GetRule(m), NLM_F_DUMP, &|| {
            "list rules".to_string()
        })?;
        Ok(out
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => parse_rule(r),
                _ => None,
            })
            .filter(|r| family.is_none_or(|f| f == r.family))
            .collect())
    }

    /// `ip rule add RULE`; `EEXIST` if the same rule is already there.
    pub fn add_rule(&mut self, r: &Rule) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRule(rule_message(r)),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add rule {}", describe(r)),
        )
        .map(|_| ())
    }

    /// `ip rule del RULE`: the first rule matching what `r` sets (its
    /// priority too when it has one). A rule that is not there is
    /// [`crate::Kind::NotFound`].
    pub fn del_rule(&mut self, r: &Rule) -> Result<()> {
        let what = || format!("delete rule {}", describe(r));
        match self.request(RouteNetlinkMessage::DelRule(rule_message(r)), 0, &what) {
            Err(e) if e.is_not_found() => Err(Error::not_found(what())),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn round_trip(m: &RuleMessage) -> RuleMessage {
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        RuleMessage::parse(&buf[..]).expect("parse emitted rule")
    }

    #[test]
    fn source_rule_for_one_ipv4_address() {
        let r = Rule::from_addr("10.244.1.5".parse().unwrap(), 100);
        let m = rule_message(&r);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert_eq!(m.header.src_len, 32);
        assert_eq!(m.header.dst_len, 0);
        assert_eq!(m.header.table, 100);
        assert_eq!(m.header.action, RuleAction::ToTable);
        assert!(m.attributes.contains(&RuleAttribute::Table(100)));
        assert!(m
            .attributes
            .contains(&RuleAttribute::Source("10.244.1.5".parse().unwrap())));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RuleAttribute::Priority(_))));
        assert_eq!(parse_rule(&round_trip(&m)), Some(r));
    }

    #[test]
    fn ipv6_rule_with_big_table_and_priority() {
        let mut r = Rule::from_addr("fd00:cafe:c000::5".parse().unwrap(), 1000);
        r.priority = Some(32000);
        r.dst = Some("fd00:cafe:c001::/48".parse().unwrap());
        let m = rule_message(&r);
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!((m.header.src_len, m.header.dst_len), (128, 48));
        // Too big for the header: FRA_TABLE alone carries it.
        assert_eq!(m.header.table, 0);
        assert!(m.attributes.contains(&RuleAttribute::Table(1000)));
        assert!(m.attributes.contains(&RuleAttribute::Priority(32000)));
        let back = parse_rule(&round_trip(&m)).unwrap();
        assert_eq!(back, r);
        assert_eq!(
            describe(&back),
            "from fd00:cafe:c000::5/128 to fd00:cafe:c001::/48 lookup 1000 pref 32000"
        );
    }

    #[test]
    fn listed_rule_takes_header_table_without_attribute() {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.table = 254;
        m.header.action = RuleAction::ToTable;
        m.attributes.push(RuleAttribute::Priority(32766));
        let r = parse_rule(&m).unwrap();
        assert_eq!((r.table, r.priority, r.src), (254, Some(32766), None));
        assert_eq!(describe(&r), "from all lookup 254 pref 32766");
        m.header.family = AddressFamily::Unspec;
        assert_eq!(parse_rule(&m), None);
    }
}
