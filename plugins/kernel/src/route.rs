//! Routes: `ip route` verbs over rtnetlink.

use crate::addr::Family;
use crate::error::Result;
use crate::netlink::Netlink;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::net::IpAddr;

/// Route scopes (`link`, `universe`, ...), as callers name them.
pub use netlink_packet_route::route::RouteScope as Scope;

/// A route, as added or as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    /// Output link index.
    pub oif: Option<u32>,
    /// `None`: universe for routes via a gateway, link for direct ones.
    pub scope: Option<RouteScope>,
    /// Routing table; `None` is main.
    pub table: Option<u32>,
    pub priority: Option<u32>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub src: Option<IpAddr>,
}

impl Route {
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst,
            gw: None,
            oif: None,
            scope: None,
            table: None,
            priority: None,
            mtu: None,
            advmss: None,
            src: None,
        }
    }

    pub fn via(mut self, gw: IpAddr) -> Route {
        self.gw = Some(gw);
        self
    }

    pub fn dev(mut self, oif: u32) -> Route {
        self.oif = Some(oif);
        self
    }

    pub fn scope(mut self, scope: RouteScope) -> Route {
        self.scope = Some(scope);
        self
    }

    pub fn family(&self) -> Family {
        Family::of(&self.dst.addr())
    }
}

/// `RTM_NEWROUTE`/`RTM_DELROUTE` for `r`, as `ip route add` builds it:
/// protocol boot, unicast, scope link when there is no gateway.
pub fn route_message(r: &Route) -> RouteMessage {
    let mut m = RouteMessage::default();
    let dst = r.dst.trunc();
    m.header.address_family = r.family().af();
    m.header.destination_prefix_length = dst.prefix_len();
    m.header.protocol = RouteProtocol::Boot;
    m.header.kind = RouteType::Unicast;
    m.header.scope = r.scope.unwrap_or(if r.gw.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    });
    let table = r.table.unwrap_or(RouteHeader::RT_TABLE_MAIN as u32);
    if table < 256 {
        m.header.table = table as u8;
    } else {
        m.header.table = RouteHeader::RT_TABLE_UNSPEC;
    }
    m.attributes.push(RouteAttribute::Table(table));
    if dst.prefix_len() > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
    }
    if let Some(gw) = r.gw {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(oif) = r.oif {
        m.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(p) = r.priority {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    if let Some(src) = r.src {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    let mut metrics = Vec::new();
    if let Some(mtu) = r.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = r.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        m.attributes.push(RouteAttribute::Metrics(metrics));
    }
    m
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// A listed route; `None` for kinds we do not model (multipath, MPLS).
fn parse_route(m: &RouteMessage) -> Option<Route> {
    let v4 = m.header.address_family == Family::V4.af();
    let unspecified = if v4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let mut r = Route::new(IpNet::new(unspecified, 0).ok()?);
    r.scope = Some(m.header.scope);
    r.table = Some(m.header.table as u32);
    let mut dst = unspecified;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d)?,
            RouteAttribute::Gateway(g) => r.gw = route_addr(g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Table(t) => r.table = Some(*t),
            RouteAttribute::Priority(p) => r.priority = Some(*p),
            RouteAttribute::PrefSource(s) => r.src = route_addr(s),
            RouteAttribute::Metrics(ms) => {
                for metric in ms {
                    match metric {
                        RouteMetric::Mtu(v) => r.mtu = Some(*v),
                        RouteMetric::Advmss(v) => r.advmss = Some(*v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    r.dst = IpNet::new(dst, m.header.destination_prefix_length).ok()?;
    Some(r)
}

impl Netlink {
    /// `ip route show table all` of one family: unicast routes only.
    pub fn routes(&mut self, family: Family) -> Result<Vec<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family.af();
        let out = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, &|| {
            "list routes".to_string()
        })?;
        Ok(out
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => {
                    parse_route(r)
                }
                _ => None,
            })
            .collect())
    }

    /// The main-table route `ip route get ADDR` would pick, by longest
    /// prefix (no policy rules, no metrics tie-break beyond the first
    /// listed): enough to find the interface a local container is behind.
    pub fn route_to(&mut self, addr: IpAddr) -> Result<Option<Route>> {
        Ok(self
            .routes(Family::of(&addr))?
            .into_iter()
            .filter(|r| r.table.is_none_or(|t| t == 254) && r.dst.contains(&addr))
            .max_by_key(|r| r.dst.prefix_len()))
    }

    /// `ip route add ROUTE`; `EEXIST` if it is already there.
    pub fn add_route(&mut self, r: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_message(r)),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add route {}", describe(r)),
        )
        .map(|_| ())
    }

    /// `ip route add ROUTE`, content if it is already there.
    pub fn ensure_route(&mut self, r: &Route) -> Result<()> {
        match self.add_route(r) {
            Err(e) if e.is(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// `ip route replace ROUTE`
    pub fn replace_route(&mut self, r: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_message(r)),
            NLM_F_CREATE | NLM_F_REPLACE,
            &|| format!("replace route {}", describe(r)),
        )
        .map(|_| ())
    }

    /// `ip route del ROUTE`
    ///
    /// Matches routes of any protocol (kernel-made prefix routes included)
    /// and, unless `r` names one, any scope.
    pub fn del_route(&mut self, r: &Route) -> Result<()> {
        let mut m = route_message(r);
        m.header.protocol = RouteProtocol::Unspec;
        if r.scope.is_none() {
            // RT_SCOPE_NOWHERE is the kernel's wildcard for deletes.
            m.header.scope = RouteScope::NoWhere;
        }
        self.request(RouteNetlinkMessage::DelRoute(m), 0, &|| {
            format!("delete route {}", describe(r))
        })
        .map(|_| ())
    }
}

/// A route as the kernel listed it: the parsed form, and the whole
/// message, so it can be re-created elsewhere with everything the kernel
/// reported (protocol, scope, metrics, IPv6 preference), as `ip route
/// save`/`restore` would.
#[derive(Debug, Clone)]
pub struct ListedRoute {
    pub route: Route,
    pub message: RouteMessage,
}

/// The message that puts the listed route `m` into `table`: its header
/// and the attributes that describe the route itself, without the ones
/// that describe the old entry (its table, cache info, expiry). Of the
/// header flags only `onlink` is kept: the kernel refuses a new route
/// carrying flags it set itself on a listed one (`linkdown`, `dead`).
pub fn route_in_table_message(m: &RouteMessage, table: u32) -> RouteMessage {
    let mut out = RouteMessage::default();
    out.header = m.header.clone();
    out.header.flags = m.header.flags & RouteFlags::Onlink;
    out.header.table = if table < 256 {
        table as u8
    } else {
        RouteHeader::RT_TABLE_UNSPEC
    };
    out.attributes.push(RouteAttribute::Table(table));
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(_)
            | RouteAttribute::Source(_)
            | RouteAttribute::Gateway(_)
            | RouteAttribute::PrefSource(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::Oif(_)
            | RouteAttribute::Priority(_)
            | RouteAttribute::Metrics(_)
            | RouteAttribute::Preference(_)
            | RouteAttribute::MultiPath(_)
            | RouteAttribute::Realm(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Encap(_) => out.attributes.push(a.clone()),
            _ => {}
        }
    }
    out
}

impl Netlink {
    /// `ip route show table all` of one family, unicast routes only, each
    /// with the message it was listed as.
    pub fn listed_routes(&mut self, family: Family) -> Result<Vec<ListedRoute>> {
        let mut m = RouteMessage::default();
        m.header.address_family = family.af();
        let out = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, &|| {
            "list routes".to_string()
        })?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => {
                    parse_route(&r).map(|route| ListedRoute { route, message: r })
                }
                _ => None,
            })
            .collect())
    }

    /// `ip route replace ROUTE table TABLE` for a listed route: the same
    /// route, in another table.
    pub fn copy_route_to_table(&mut self, r: &ListedRoute, table: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_in_table_message(&r.message, table)),
            NLM_F_CREATE | NLM_F_REPLACE,
            &|| format!("copy route {} to table {table}", describe(&r.route)),
        )
        .map(|_| ())
    }

    /// `ip route del` of exactly a listed route (in its own table).
    pub fn del_listed_route(&mut self, r: &ListedRoute) -> Result<()> {
        let table = r.route.table.unwrap_or(RouteHeader::RT_TABLE_MAIN as u32);
        self.request(
            RouteNetlinkMessage::DelRoute(route_in_table_message(&r.message, table)),
            0,
            &|| format!("delete route {}", describe(&r.route)),
        )
        .map(|_| ())
    }
}

/// `10.0.0.0/8 via 10.1.0.1 dev #3`, for messages.
pub fn describe(r: &Route) -> String {
    let mut s = r.dst.trunc().to_string();
    if let Some(gw) = r.gw {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        s.push_str(&format!(" dev #{oif}"));
    }
    if let Some(t) = r.table {
        s.push_str(&format!(" table {t}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_via_gateway() {
        let r = Route::new("0.0.0.0/0".parse().unwrap()).via("10.1.0.1".parse().unwrap());
        let m = route_message(&r);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert_eq!(m.header.table, 254);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert!(m
            .attributes
            .contains(&RouteAttribute::Gateway(RouteAddress::Inet(
                "10.1.0.1".parse().unwrap()
            ))));
        let back = parse_route(&m).unwrap();
        assert_eq!(back.dst, r.dst);
        assert_eq!(back.gw, r.gw);
    }

    #[test]
    fn direct_route_is_link_scope_and_truncated() {
        let r = Route::new("10.1.0.7/24".parse().unwrap()).dev(5);
        let m = route_message(&r);
        assert_eq!(m.header.scope, RouteScope::Link);
        let back = parse_route(&m).unwrap();
        assert_eq!(back.dst.to_string(), "10.1.0.0/24");
        assert_eq!(back.oif, Some(5));
    }

    #[test]
    fn listed_route_moves_with_its_protocol_and_without_its_old_table() {
        let mut listed = route_message(&Route::new("10.244.1.0/24".parse().unwrap()).dev(4));
        listed.header.protocol = RouteProtocol::Kernel;
        listed.header.flags = RouteFlags::Onlink | RouteFlags::Linkdown;
        listed.attributes.push(RouteAttribute::Expires(5));
        listed
            .attributes
            .push(RouteAttribute::PrefSource(RouteAddress::Inet(
                "10.244.1.5".parse().unwrap(),
            )));
        let m = route_in_table_message(&listed, 100);
        assert_eq!(m.header.protocol, RouteProtocol::Kernel);
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(m.header.flags, RouteFlags::Onlink);
        assert_eq!(m.header.table, 100);
        let tables: Vec<_> = m
            .attributes
            .iter()
            .filter(|a| matches!(a, RouteAttribute::Table(_)))
            .collect();
        assert_eq!(tables, [&RouteAttribute::Table(100)]);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Expires(_))));
        let back = parse_route(&m).unwrap();
        assert_eq!(back.dst.to_string(), "10.244.1.0/24");
        assert_eq!((back.oif, back.table), (Some(4), Some(100)));
        assert_eq!(back.src, Some("10.244.1.5".parse().unwrap()));
        let big = route_in_table_message(&listed, 70000);
        assert_eq!(big.header.table, 0);
        assert_eq!(parse_route(&big).unwrap().table, Some(70000));
    }

    #[test]
    fn big_tables_and_metrics() {
        let mut r = Route::new("fd00::/64".parse().unwrap());
        r.table = Some(1000);
        r.mtu = Some(1400);
        r.advmss = Some(1300);
        r.priority = Some(7);
        let m = route_message(&r);
        assert_eq!(m.header.table, 0);
        let back = parse_route(&m).unwrap();
        assert_eq!(back.table, Some(1000));
        assert_eq!(
            (back.mtu, back.advmss, back.priority),
            (Some(1400), Some(1300), Some(7))
        );
    }
}
