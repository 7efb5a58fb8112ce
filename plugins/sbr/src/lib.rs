//! The sbr plugin: source-based routing for a container interface,
//! chained after the plugin that made it (usually for every interface
//! after the first).
//!
//! ADD, without `table`: for each address of `CNI_IFNAME` in `prevResult`
//! the first table from 100 that no rule and no route uses gets a rule
//! `from ADDR lookup TABLE`, a default route via the address's gateway,
//! and copies of the interface's main-table routes that belong to that
//! address (its source or gateway in the address's subnet, or neither
//! set); then those routes leave the main table. With a fixed `table`:
//! only the rules, pointing at it (the routes are expected there already,
//! put by IPAM with spec 1.1's route `table`), as the reference does.
//! DEL: the rules whose source is an address of the interface go, with
//! the interface's routes in the tables they pointed at. CHECK: the rules
//! and routes are there (the reference checks nothing).
//!
//! Every verb holds an exclusive lock on the namespace file while it works
//! (as the reference does, so ours and theirs serialise too): two ADDs in
//! one namespace would otherwise pick the same free table.

use cni::{CniResult, Error, IpConfig, Plugin, Request, Result};
use cni_kernel::route::ListedRoute;
use cni_kernel::rule::Rule;
use cni_kernel::{Family, Netlink, Netns, Route};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;

pub struct Sbr;

/// Where the search for a free table starts.
pub const FIRST_TABLE: u32 = 100;
const MAIN: u32 = 254;
/// Tables the kernel reserves: unspec, default, main, local.
const RESERVED: [u32; 4] = [0, 253, 254, 255];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    table: Option<i64>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default)]
    add_source_hints: Option<bool>,
}

/// The fixed table, if any. `strict` (ADD, CHECK) refuses the keys this
/// plugin does not implement; DEL only needs the table.
fn load(req: &Request, strict: bool) -> Result<Option<u32>> {
    let c: Conf = req.parse_config()?;
    if strict && c.gateways.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(Error::unsupported(
            "gateways: not supported (a key of the reference's unreleased main branch)",
        ));
    }
    if strict && c.add_source_hints == Some(true) {
        return Err(Error::unsupported(
            "addSourceHints: not supported (a key of the reference's unreleased main branch)",
        ));
    }
    match c.table {
        None => Ok(None),
        Some(t) => match u32::try_from(t) {
            Ok(t) if !RESERVED.contains(&t) => Ok(Some(t)),
            _ => Err(Error::config(format!(
                "table: {t} is not a routing table this plugin may use \
                 (1 to 4294967295, except 253, 254 and 255)"
            ))),
        },
    }
}

/// The addresses of `ifname` in `prev`: those naming it, and those
/// naming no interface (or one past the list), as the reference picks them.
pub fn addresses_of(prev: &CniResult, ifname: &str) -> Vec<IpConfig> {
    prev.ips
        .iter()
        .filter(
            |ip| match ip.interface.and_then(|i| prev.interfaces.get(i)) {
                Some(iface) => iface.name == ifname,
                None => true,
            },
        )
        .cloned()
        .collect()
}

/// Whether a main-table route of the interface belongs to address `net`:
/// its preferred source or its gateway lies in the address's subnet, or
/// it has neither (a plain link route, which every table gets).
pub fn route_belongs(r: &Route, net: &IpNet) -> bool {
    match (r.src, r.gw) {
        (None, None) => true,
        (src, gw) => src.is_some_and(|s| net.contains(&s)) || gw.is_some_and(|g| net.contains(&g)),
    }
}

/// The first table from `from` on that no rule looks up and no route is in.
pub fn first_free_table(used: &BTreeSet<u32>, from: u32) -> u32 {
    (from..)
        .find(|t| !used.contains(t) && !RESERVED.contains(t))
        .unwrap_or(from)
}

fn default_route(addr: IpAddr, gw: IpAddr, oif: u32, table: u32) -> Route {
    let any: IpNet = if addr.is_ipv4() {
        "0.0.0.0/0".parse().expect("valid net")
    } else {
        "::/0".parse().expect("valid net")
    };
    let mut r = Route::new(any).via(gw).dev(oif);
    r.table = Some(table);
    r
}

/// The namespace of the request, locked for this process's lifetime.
fn locked_netns(path: &std::path::Path) -> Result<Netns> {
    let ns = Netns::open(path)?;
    ns.lock()?;
    Ok(ns)
}

fn all_routes(nl: &mut Netlink) -> Result<Vec<ListedRoute>> {
    let mut v = nl.listed_routes(Family::V4)?;
    v.extend(nl.listed_routes(Family::V6)?);
    Ok(v)
}

/// What an ADD changed, so that a failure half-way can be undone.
#[derive(Default)]
struct Done {
    rules: Vec<Rule>,
    routes: Vec<Route>,
    moved_out_of_main: Vec<ListedRoute>,
}

impl Done {
    fn undo(self, nl: &mut Netlink) {
        for r in self.moved_out_of_main.iter().rev() {
            if let Err(e) = nl.copy_route_to_table(r, MAIN) {
                log::warn!("rollback: {e}");
            }
        }
        for r in self.routes.iter().rev() {
            if let Err(e) = nl.del_route(r) {
                log::warn!("rollback: {e}");
            }
        }
        for r in self.rules.iter().rev() {
            if let Err(e) = nl.del_rule(r) {
                log::warn!("rollback: {e}");
            }
        }
    }
}

fn add_rules_only(nl: &mut Netlink, ips: &[IpConfig], table: u32, done: &mut Done) -> Result<()> {
    for ip in ips {
        let rule = Rule::from_addr(ip.address.addr(), table);
        nl.add_rule(&rule)
            .map_err(|e| Error::from(e).context("failed to add rule"))?;
        done.rules.push(rule);
    }
    Ok(())
}

fn add_with_own_tables(
    nl: &mut Netlink,
    ips: &[IpConfig],
    ifname: &str,
    done: &mut Done,
) -> Result<()> {
    let routes = all_routes(nl)?;
    let mut used: BTreeSet<u32> = nl.rules(None)?.iter().map(|r| r.table).collect();
    used.extend(routes.iter().filter_map(|r| r.route.table));
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| Error::from(e).context(format!("Cannot find network interface {ifname}")))?;
    let mine: Vec<ListedRoute> = routes
        .into_iter()
        .filter(|r| r.route.oif == Some(link.index) && r.route.table == Some(MAIN))
        .collect();
    let mut table = first_free_table(&used, FIRST_TABLE);
    for ip in ips {
        let rule = Rule::from_addr(ip.address.addr(), table);
        nl.add_rule(&rule)
            .map_err(|e| Error::from(e).context("failed to add rule"))?;
        done.rules.push(rule);
        if let Some(gw) = ip.gateway {
            let r = default_route(ip.address.addr(), gw, link.index, table);
            nl.add_route(&r).map_err(|e| {
                Error::from(e).context(format!("failed to add default route to {gw}"))
            })?;
            done.routes.push(r);
        }
        for r in mine.iter().filter(|r| route_belongs(&r.route, &ip.address)) {
            // A replace: the default route just added may be among them.
            nl.copy_route_to_table(r, table)?;
            let mut copy = r.route.clone();
            copy.table = Some(table);
            done.routes.push(copy);
        }
        used.insert(table);
        table = first_free_table(&used, table + 1);
    }
    // Only now: several addresses of one subnet all need the routes.
    for r in mine {
        nl.del_listed_route(&r)
            .map_err(|e| Error::from(e).context("failed to delete route"))?;
        done.moved_out_of_main.push(r);
    }
    Ok(())
}

impl Plugin for Sbr {
    fn name(&self) -> &str {
        "sbr"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let table = load(req, true)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("This plugin must be called as chained plugin"))?;
        if prev.ips.is_empty() {
            return Err(Error::config(format!(
                "No IP addresses supplied on interface: {}",
                req.ifname
            )));
        }
        let ips = addresses_of(&prev, &req.ifname);
        let path = req
            .netns
            .as_ref()
            .ok_or_else(|| Error::env("CNI_NETNS is required"))?;
        let ns = locked_netns(path)?;
        let mut nl = Netlink::open_in(&ns)?;
        let mut done = Done::default();
        let r = match table {
            Some(t) => add_rules_only(&mut nl, &ips, t, &mut done),
            None => add_with_own_tables(&mut nl, &ips, &req.ifname, &mut done),
        };
        if let Err(e) = r {
            done.undo(&mut nl);
            return Err(e);
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let table = load(req, false)?;
        // Without a namespace there is nothing left to reach.
        let Some(path) = &req.netns else {
            return Ok(());
        };
        let Some(ns) = Netns::open_if_present(path)? else {
            return Ok(());
        };
        ns.lock()?;
        let mut nl = Netlink::open_in(&ns)?;
        let link = match nl.link_by_name(&req.ifname) {
            Ok(l) => Some(l),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        // The interface's addresses, and those prevResult gave it (the
        // rules outlive an interface deleted before this DEL).
        let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
        if let Some(l) = &link {
            addrs.extend(nl.addrs(Some(l.index), None)?.iter().map(|a| a.net.addr()));
        }
        if let Some(prev) = req.net.prev_result().ok().flatten() {
            addrs.extend(
                addresses_of(&prev, &req.ifname)
                    .iter()
                    .map(|i| i.address.addr()),
            );
        }
        let mut errors = Vec::new();
        let mut tables = BTreeSet::new();
        for rule in nl.rules(None)? {
            let Some(src) = rule.src else { continue };
            if src.prefix_len() != src.max_prefix_len()
                || !addrs.contains(&src.addr())
                || table.is_some_and(|t| t != rule.table)
            {
                continue;
            }
            match nl.del_rule(&rule) {
                Ok(()) => {
                    tables.insert(rule.table);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if let Some(l) = &link {
            for r in all_routes(&mut nl)? {
                let in_table = r
                    .route
                    .table
                    .is_some_and(|t| tables.contains(&t) && t != MAIN);
                if in_table && r.route.oif == Some(l.index) {
                    match nl.del_listed_route(&r) {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(format!(
                "remove source-based routing of {}: {}",
                req.ifname,
                errors.join("; ")
            )))
        }
    }

    fn check(&self, req: &Request) -> Result<()> {
        let table = load(req, true)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("Required prevResult missing"))?;
        let path = req
            .netns
            .as_ref()
            .ok_or_else(|| Error::env("CNI_NETNS is required"))?;
        let ns = locked_netns(path)?;
        let mut nl = Netlink::open_in(&ns)?;
        let rules = nl.rules(None)?;
        let routes = all_routes(&mut nl)?;
        // With a fixed table the routes are IPAM's; only the rules are ours.
        let link = match table {
            Some(_) => None,
            None => Some(nl.link_by_name(&req.ifname).map_err(|e| {
                Error::from(e).context(format!("Cannot find network interface {}", req.ifname))
            })?),
        };
        for ip in addresses_of(&prev, &req.ifname) {
            let addr = ip.address.addr();
            let rule = rules
                .iter()
                .find(|r| r.src == Some(IpNet::from(addr)) && table.is_none_or(|t| t == r.table))
                .ok_or_else(|| Error::plugin(format!("no source rule for {addr}")))?;
            let (None, Some(link)) = (table, &link) else {
                continue;
            };
            let t = rule.table;
            let in_t =
                |r: &&ListedRoute| r.route.table == Some(t) && r.route.oif == Some(link.index);
            if !routes.iter().any(|r| in_t(&r)) {
                return Err(Error::plugin(format!(
                    "table {t} of {addr} has no route via {}",
                    req.ifname
                )));
            }
            if let Some(gw) = ip.gateway {
                if !routes
                    .iter()
                    .filter(in_t)
                    .any(|r| r.route.dst.prefix_len() == 0 && r.route.gw == Some(gw))
                {
                    return Err(Error::plugin(format!(
                        "table {t} of {addr} has no default route via {gw}"
                    )));
                }
            }
        }
        if let Some(link) = &link {
            if let Some(r) = routes
                .iter()
                .find(|r| r.route.table == Some(MAIN) && r.route.oif == Some(link.index))
            {
                return Err(Error::plugin(format!(
                    "route {} of {} is still in the main table",
                    cni_kernel::route::describe(&r.route),
                    req.ifname
                )));
            }
        }
        Ok(())
    }
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    load(req, true)?;
    load(req, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni::Interface;

    fn ip(iface: Option<usize>, a: &str) -> IpConfig {
        IpConfig {
            interface: iface,
            address: a.parse().unwrap(),
            gateway: None,
        }
    }

    #[test]
    fn addresses_of_the_interface_only() {
        let prev = CniResult {
            interfaces: vec![
                Interface {
                    name: "veth1".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth1".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                ip(Some(1), "10.245.0.2/24"),
                ip(Some(0), "10.244.0.1/24"),
                ip(None, "fd00:cafe:c000::2/64"),
                ip(Some(7), "10.245.9.9/24"),
            ],
            ..Default::default()
        };
        let got: Vec<String> = addresses_of(&prev, "eth1")
            .iter()
            .map(|i| i.address.to_string())
            .collect();
        assert_eq!(
            got,
            ["10.245.0.2/24", "fd00:cafe:c000::2/64", "10.245.9.9/24"]
        );
    }

    #[test]
    fn routes_belong_by_source_or_gateway() {
        let net: IpNet = "10.245.0.2/24".parse().unwrap();
        let link = Route::new("10.245.0.0/24".parse().unwrap()).dev(3);
        assert!(route_belongs(&link, &net));
        let mut with_src = link.clone();
        with_src.src = Some("10.245.0.2".parse().unwrap());
        assert!(route_belongs(&with_src, &net));
        with_src.src = Some("10.244.0.2".parse().unwrap());
        assert!(!route_belongs(&with_src, &net));
        let via = Route::new("0.0.0.0/0".parse().unwrap()).via("10.245.0.1".parse().unwrap());
        assert!(route_belongs(&via, &net));
        let v6 = Route::new("::/0".parse().unwrap()).via("fd00:cafe:c000::1".parse().unwrap());
        assert!(!route_belongs(&v6, &net));
    }

    #[test]
    fn free_tables_skip_used_and_reserved() {
        let used: BTreeSet<u32> = [100, 101, 103].into_iter().collect();
        assert_eq!(first_free_table(&used, FIRST_TABLE), 102);
        assert_eq!(first_free_table(&used, 103), 104);
        let used: BTreeSet<u32> = (100..253).collect();
        assert_eq!(first_free_table(&used, FIRST_TABLE), 256);
    }
}
