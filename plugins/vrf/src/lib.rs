//! The vrf plugin (chained): puts the container interface into a VRF (an
//! L3 master device with a routing table of its own) inside the container,
//! so the container's routes live in that table and its traffic follows
//! them, apart from any other interface's.
//!
//! ADD: `prevResult` is required. Find the VRF `vrfname` in the container
//! or create it (with `table`, else the lowest table no VRF there uses) and
//! set it up; enslave `CNI_IFNAME`, which must have no master yet; put back
//! what enslaving takes away: the IPv6 addresses (the kernel drops them
//! unless `keep_addr_on_down`) and the interface's gateway routes (moved
//! into the VRF's table, as `ip route replace ... table T`). Returns
//! `prevResult`. A failure undoes what was done. DEL: the interface leaves
//! the VRF and the VRF goes when nothing is left in it; a missing
//! namespace, VRF or interface is nothing to do, so DEL is idempotent.
//! CHECK: the VRF exists (with `table`, when set) and the interface is in
//! it. The namespace is locked (`flock`) for the whole call, so two
//! attachments of one container never race on creating or deleting the
//! same VRF.

use cni::rollback::Rollback;
use cni::{CniResult, Error, Plugin, Request, Result, Version};
use cni_kernel::link::Link;
use cni_kernel::route::ListedRoute;
use cni_kernel::vrf::free_vrf_table;
use cni_kernel::{Family, Netlink, Netns};
use netlink_packet_route::address::AddressScope;
use netlink_packet_route::route::{RouteHeader, RouteScope};
use serde::Deserialize;

pub struct Vrf;

#[derive(Debug, Deserialize)]
struct Conf {
    /// The VRF to put the interface in; required.
    #[serde(default)]
    vrfname: String,
    /// Its routing table; `0` or absent: the lowest free one (for a new
    /// VRF) or whatever the existing VRF has.
    #[serde(default)]
    table: u32,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        if c.vrfname.is_empty() {
            return Err(Error::config(
                "configuration is expected to have a valid vrf name",
            ));
        }
        Ok(c)
    }

    fn table(&self) -> Option<u32> {
        (self.table != 0).then_some(self.table)
    }
}

fn prev_result(req: &Request) -> Result<CniResult> {
    req.net
        .prev_result()?
        .ok_or_else(|| Error::config("missing prevResult from earlier plugin"))
}

/// The request's namespace, locked until the handle is dropped.
fn locked(ns: Netns) -> Result<Netns> {
    ns.lock()?;
    Ok(ns)
}

/// The VRF `name` in the namespace of `nl`: `None` when there is no link
/// of that name, an error when the link is something else.
fn find_vrf(nl: &mut Netlink, name: &str) -> Result<Option<(Link, u32)>> {
    match nl.link_by_name(name) {
        Ok(l) => match l.vrf_table() {
            Some(t) if l.kind.as_deref() == Some("vrf") => Ok(Some((l, t))),
            _ => Err(Error::plugin(format!("Netlink {name} is not a VRF"))),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The routes enslaving `index` would drop and that the kernel does not
/// make again by itself: the main table's universe-scope routes out of it
/// (via a gateway; for IPv6 every route is universe-scope, connected ones
/// included, and replacing those in the VRF table is harmless).
fn routes_to_move(nl: &mut Netlink, index: u32) -> Result<Vec<ListedRoute>> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        out.extend(nl.listed_routes(family)?.into_iter().filter(|r| {
            r.route.oif == Some(index)
                && r.message.header.scope == RouteScope::Universe
                && r.route.table.unwrap_or(RouteHeader::RT_TABLE_MAIN as u32)
                    == RouteHeader::RT_TABLE_MAIN as u32
        }));
    }
    Ok(out)
}

/// Enslave `ifname` to the VRF and put back its IPv6 addresses and its
/// routes, in the VRF's table. Each step's undo goes onto `undo`.
fn enslave(
    nl: &mut Netlink,
    ns: &Netns,
    ifname: &str,
    vrf: &Link,
    table: u32,
    undo: &mut Rollback,
) -> Result<()> {
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| Error::plugin(format!("could not get link by name {ifname}: {e}")))?;
    if let Some(m) = link.master {
        let name = nl
            .link_by_index(m)
            .map(|l| l.name)
            .unwrap_or_else(|_| format!("#{m}"));
        return Err(Error::plugin(format!(
            "interface {ifname} has already a master set: {name}"
        )));
    }
    // IPv6 addresses go with the down/up that enslaving does unless
    // net.ipv6.conf.*.keep_addr_on_down is set: note them to put them
    // back. Link-local ones the kernel makes again itself.
    let v6_before: Vec<_> = nl
        .addrs(Some(link.index), Some(Family::V6))?
        .into_iter()
        .filter(|a| a.scope != AddressScope::Link)
        .collect();
    let routes = routes_to_move(nl, link.index)?;

    nl.set_master(link.index, vrf.index).map_err(|e| {
        Error::plugin(format!(
            "could not set vrf {} as master of {ifname}: {e}",
            vrf.name
        ))
    })?;
    {
        let path = ns.path().to_path_buf();
        let index = link.index;
        let saved = routes.clone();
        undo.push(
            format!("take {ifname} out of vrf {}", vrf.name),
            move || {
                let ns = Netns::open(&path).map_err(|e| e.to_string())?;
                let mut nl = Netlink::open_in(&ns).map_err(|e| e.to_string())?;
                nl.set_master(index, 0).map_err(|e| e.to_string())?;
                for r in &saved {
                    nl.copy_route_to_table(r, RouteHeader::RT_TABLE_MAIN as u32)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            },
        );
    }

    let v6_after = nl.addrs(Some(link.index), Some(Family::V6))?;
    for a in v6_before {
        if !v6_after.iter().any(|b| b.net == a.net) {
            nl.ensure_addr(link.index, &a.net).map_err(|e| {
                Error::plugin(format!(
                    "could not restore address {} to {ifname} @ {}: {e}",
                    a.net, vrf.name
                ))
            })?;
        }
    }
    for r in &routes {
        nl.copy_route_to_table(r, table).map_err(|e| {
            Error::plugin(format!(
                "could not add route {} to vrf {} (table {table}): {e}",
                cni_kernel::route::describe(&r.route),
                vrf.name
            ))
        })?;
    }
    Ok(())
}

impl Plugin for Vrf {
    fn name(&self) -> &str {
        "vrf"
    }

    /// As the reference: 0.3.1 and later.
    fn supported_versions(&self) -> &[Version] {
        &[
            Version::V0_3_1,
            Version::V0_4_0,
            Version::V1_0_0,
            Version::V1_1_0,
        ]
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let prev = prev_result(req)?;
        let path = req
            .netns
            .as_deref()
            .ok_or_else(|| Error::env("required env variables [CNI_NETNS] missing"))?;
        let ns = locked(Netns::open(path)?)?;
        let mut nl = Netlink::open_in(&ns)?;
        let mut undo = Rollback::new();

        let (vrf, table) = match find_vrf(&mut nl, &conf.vrfname)? {
            Some((_, have)) if conf.table().is_some_and(|want| want != have) => {
                return Err(Error::plugin(format!(
                    "VRF {} already exist with different routing table {have}",
                    conf.vrfname
                )));
            }
            Some(found) => found,
            None => {
                let table = match conf.table() {
                    Some(t) => t,
                    None => free_vrf_table(&nl.links()?).ok_or_else(|| {
                        Error::plugin("failed to find an available routing table for the VRF")
                    })?,
                };
                nl.create_vrf(&conf.vrfname, table).map_err(|e| {
                    Error::plugin(format!("could not add VRF {}: {e}", conf.vrfname))
                })?;
                let vrf = nl.link_by_name(&conf.vrfname)?;
                let (p, index) = (ns.path().to_path_buf(), vrf.index);
                undo.push(format!("delete vrf {}", conf.vrfname), move || {
                    let ns = Netns::open(&p).map_err(|e| e.to_string())?;
                    let mut nl = Netlink::open_in(&ns).map_err(|e| e.to_string())?;
                    nl.del_link(index).map_err(|e| e.to_string())
                });
                nl.set_up(vrf.index).map_err(|e| {
                    Error::plugin(format!(
                        "could not set link up for VRF {}: {e}",
                        conf.vrfname
                    ))
                })?;
                (vrf, table)
            }
        };
        enslave(&mut nl, &ns, &req.ifname, &vrf, table, &mut undo)?;
        undo.commit();
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        // No namespace, or one already gone: nothing left to undo.
        let Some(path) = req.netns.as_deref() else {
            return Ok(());
        };
        let Some(ns) = Netns::open_if_present(path)? else {
            return Ok(());
        };
        let ns = locked(ns)?;
        let mut nl = Netlink::open_in(&ns)?;
        let Some((vrf, _)) = find_vrf(&mut nl, &conf.vrfname)? else {
            return Ok(());
        };
        match nl.link_by_name(&req.ifname) {
            Ok(l) if l.master == Some(vrf.index) => nl.set_master(l.index, 0).map_err(|e| {
                Error::plugin(format!("could not take {} out of vrf: {e}", req.ifname))
            })?,
            // Gone already, or not in this VRF (any more): leave it be.
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if !nl.links()?.iter().any(|l| l.master == Some(vrf.index)) {
            match nl.del_link(vrf.index) {
                Err(e) if !e.is_not_found() => {
                    return Err(Error::plugin(format!(
                        "could not delete vrf {}: {e}",
                        conf.vrfname
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        prev_result(req)?;
        let path = req
            .netns
            .as_deref()
            .ok_or_else(|| Error::env("required env variables [CNI_NETNS] missing"))?;
        let ns = locked(Netns::open(path)?)?;
        let mut nl = Netlink::open_in(&ns)?;
        let (vrf, table) = find_vrf(&mut nl, &conf.vrfname)?
            .ok_or_else(|| Error::plugin(format!("VRF {} not found", conf.vrfname)))?;
        if let Some(want) = conf.table().filter(|t| *t != table) {
            return Err(Error::plugin(format!(
                "VRF {} has routing table {table}, expected {want}",
                conf.vrfname
            )));
        }
        match nl.link_by_name(&req.ifname) {
            Ok(l) if l.master == Some(vrf.index) => Ok(()),
            _ => Err(Error::plugin(format!(
                "Failed to find {} associated to vrf {}",
                req.ifname, conf.vrfname
            ))),
        }
    }
}

/// Everything ADD, CHECK and DEL read from the configuration before they
/// touch the system, as one function that touches nothing (for the fuzz
/// targets).
pub fn load_config(req: &Request) -> Result<()> {
    Conf::load(req)?.table();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> Result<Conf> {
        let c: Conf = cni::types::parse_config(json.as_bytes())?;
        if c.vrfname.is_empty() {
            return Err(Error::config("no vrf name"));
        }
        Ok(c)
    }

    #[test]
    fn keys_and_defaults() {
        let c = conf(r#"{"name":"n","vrfname":"blue"}"#).unwrap();
        assert_eq!(c.vrfname, "blue");
        assert_eq!(c.table(), None);
        let c = conf(r#"{"name":"n","vrfname":"blue","table":1001}"#).unwrap();
        assert_eq!(c.table(), Some(1001));
        assert_eq!(
            conf(r#"{"name":"n","vrfname":"b","table":0}"#)
                .unwrap()
                .table(),
            None
        );
    }

    #[test]
    fn vrfname_is_required_and_table_is_a_u32() {
        assert!(conf(r#"{"name":"n"}"#).is_err());
        assert!(conf(r#"{"name":"n","vrfname":""}"#).is_err());
        assert!(conf(r#"{"name":"n","vrfname":"b","table":-1}"#).is_err());
        assert!(conf(r#"{"name":"n","vrfname":"b","table":"5"}"#).is_err());
    }
}
