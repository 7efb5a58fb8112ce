//! The bridge's VLAN keys, as the newest reference release has them.
//!
//! - `vlan` (1–4094): the host port's access VLAN, PVID and egress
//!   untagged. With `isGateway` the gateway address goes on a veth of its
//!   own, `<bridge>.<vlan>`, whose other end is a port in that VLAN.
//! - `vlanTrunk` (`[{"id": N}, {"minID": A, "maxID": B}]`): VLANs the port
//!   also carries, tagged. With `vlan` as well, `vlan` is the trunk's
//!   native VLAN (since reference v1.8 the two combine).
//! - `preserveDefaultVlan` (default false since v1.8): keep the bridge's
//!   default VLAN (1) on a port that has `vlan` or `vlanTrunk`; false
//!   removes it, so the port is isolated from untagged traffic.
//!
//! Either key turns `vlan_filtering` on: in the NEWLINK that creates the
//! bridge, as the reference does, and also (unlike the reference) on an
//! existing bridge without it, where VLAN settings would isolate nothing.

use cni::rollback::Rollback;
use cni::{Error, Result};
use cni_kernel::bridge_vlan::{tagged_ranges, PortVlan};
use cni_kernel::link::VethSpec;
use cni_kernel::{random, Link, Netlink};
use serde::Deserialize;

/// Linux's limit on interface names (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// One `vlanTrunk` entry: a VLAN (`id`) or a range (`minID`..=`maxID`);
/// an entry may carry both.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrunkEntry {
    #[serde(default, rename = "minID")]
    min_id: Option<i64>,
    #[serde(default, rename = "maxID")]
    max_id: Option<i64>,
    #[serde(default)]
    id: Option<i64>,
}

fn valid_id(v: i64) -> Option<u16> {
    (1..=4094).contains(&v).then_some(v as u16)
}

/// The trunk's VLAN IDs, sorted and without repeats; the reference's
/// checks and messages, prefixed with the key.
fn trunk_ids(entries: &[TrunkEntry]) -> Result<Vec<u16>> {
    let bad = |m: &str| Error::config(format!("vlanTrunk: {m}"));
    let mut ids = std::collections::BTreeSet::new();
    for e in entries {
        match (e.min_id, e.max_id) {
            (Some(min), Some(max)) => {
                let min = valid_id(min).ok_or_else(|| bad("incorrect trunk minID parameter"))?;
                let max = valid_id(max).ok_or_else(|| bad("incorrect trunk maxID parameter"))?;
                if max < min {
                    return Err(bad("minID is greater than maxID in trunk parameter"));
                }
                ids.extend(min..=max);
            }
            (None, Some(_)) => {
                return Err(bad(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ))
            }
            (Some(_), None) => {
                return Err(bad(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ))
            }
            (None, None) => {}
        }
        if let Some(id) = e.id {
            ids.insert(valid_id(id).ok_or_else(|| bad("incorrect trunk id parameter"))?);
        }
    }
    Ok(ids.into_iter().collect())
}

/// What a config asks of the host port's VLANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlans {
    /// `vlan`: PVID, egress untagged.
    pub access: Option<u16>,
    /// `vlanTrunk`, sorted, without the access VLAN (re-adding that one
    /// tagged would take its PVID and untagged flags away).
    pub trunk: Vec<u16>,
    pub preserve_default: bool,
    /// The bridge is created with `vlan_filtering`: `vlan` set or
    /// `vlanTrunk` present, even empty (as the reference).
    pub filtering: bool,
}

impl PortVlans {
    pub fn from_conf(
        vlan: i64,
        trunk: Option<&[TrunkEntry]>,
        preserve_default: bool,
    ) -> Result<PortVlans> {
        if !(0..=4094).contains(&vlan) {
            return Err(Error::config(format!(
                "vlan: invalid VLAN ID {vlan} (must be between 0 and 4094)"
            )));
        }
        let access = (vlan > 0).then_some(vlan as u16);
        let mut ids = trunk.map(trunk_ids).transpose()?.unwrap_or_default();
        ids.retain(|v| Some(*v) != access);
        Ok(PortVlans {
            access,
            trunk: ids,
            preserve_default,
            filtering: access.is_some() || trunk.is_some(),
        })
    }

    /// Whether the port gets any VLAN of its own (and so the bridge must
    /// really filter).
    pub fn needs_filtering(&self) -> bool {
        self.access.is_some() || !self.trunk.is_empty()
    }

    /// The table entries to add to the port.
    fn entries(&self) -> Vec<PortVlan> {
        let mut out: Vec<PortVlan> = self.access.map(PortVlan::access).into_iter().collect();
        out.extend(tagged_ranges(&self.trunk));
        out
    }

    /// Give the host port `port` its VLANs: without `preserveDefaultVlan`
    /// first remove what it has (the bridge's default VLAN), then add the
    /// access VLAN and the trunk in one request.
    pub fn configure_port(&self, nl: &mut Netlink, port: &Link) -> Result<()> {
        if !self.needs_filtering() {
            return Ok(());
        }
        if !self.preserve_default {
            let have: Vec<PortVlan> = nl
                .port_vlans(port.index)?
                .into_iter()
                .map(|v| PortVlan::range(v.first, v.last))
                .collect();
            if !have.is_empty() {
                nl.del_port_vlans(port.index, &have).map_err(|e| {
                    Error::plugin(format!(
                        "failed to remove default vlan on interface {:?}: {e}",
                        port.name
                    ))
                })?;
            }
        }
        nl.add_port_vlans(port.index, &self.entries()).map_err(|e| {
            Error::plugin(format!(
                "failed to setup vlan tag on interface {:?}: {e}",
                port.name
            ))
        })
    }

    /// The gateway port of VLAN `id`: a veth whose one end, `<bridge>.<id>`,
    /// carries the gateway addresses and whose other end is a bridge port
    /// in access VLAN `id`. Found if there, else made (and removed again
    /// if this ADD fails while it is the bridge's only port besides this
    /// ADD's own, `ours`). The reference never removes it; neither does
    /// DEL here, as for the bridge.
    pub fn ensure_gateway_port(
        &self,
        nl: &mut Netlink,
        br: &Link,
        id: u16,
        ours: &Link,
        undo: &mut Rollback,
    ) -> Result<Link> {
        let name = format!("{}.{id}", br.name);
        if name.len() > MAX_IFNAME {
            return Err(Error::config(format!(
                "vlan: the gateway port {name:?} for VLAN {id} would be longer than {MAX_IFNAME} characters; use a shorter bridge name"
            )));
        }
        match nl.link_by_name(&name) {
            Ok(l) => return Ok(l),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        let port_name = random::veth_name()?;
        let made = nl.create_veth(&VethSpec {
            name: port_name.clone(),
            peer_name: name.clone(),
            mtu: br.mtu,
            master: Some(br.index),
            up: true,
            ..Default::default()
        });
        match made {
            Ok(()) => {}
            // Another ADD made it a moment ago.
            Err(e) if e.is(libc::EEXIST) && nl.link_by_name(&name).is_ok() => {
                return Ok(nl.link_by_name(&name)?)
            }
            Err(e) => {
                return Err(Error::plugin(format!(
                    "failed to create vlan gateway {name:?}: {e}"
                )))
            }
        }
        let port = nl.link_by_name(&port_name)?;
        let (br_index, port_index, ours) = (br.index, port.index, ours.index);
        undo.push(
            format!("delete vlan gateway {name} made by this ADD"),
            move || {
                let mut nl = Netlink::open().map_err(|e| e.to_string())?;
                let others = nl.links().map_err(|e| e.to_string())?.iter().any(|l| {
                    l.master == Some(br_index) && l.index != port_index && l.index != ours
                });
                if others {
                    return Ok(());
                }
                match nl.del_link(port_index) {
                    Err(e) if !e.is_not_found() => Err(e.to_string()),
                    _ => Ok(()),
                }
            },
        );
        let access_only = PortVlans {
            access: Some(id),
            trunk: Vec::new(),
            preserve_default: self.preserve_default,
            filtering: true,
        };
        access_only.configure_port(nl, &port)?;
        let gw = nl.link_by_name(&name)?;
        nl.set_up(gw.index)?;
        Ok(nl.link_by_index(gw.index)?)
    }

    /// CHECK: the bridge filters VLANs and the host port has its access
    /// VLAN (PVID, untagged) and every trunk VLAN.
    pub fn check_port(&self, nl: &mut Netlink, br: &Link, port: &Link) -> Result<()> {
        if !self.needs_filtering() {
            return Ok(());
        }
        if br.vlan_filtering() != Some(true) {
            return Err(Error::plugin(format!(
                "bridge {} does not filter VLANs (vlan_filtering is off)",
                br.name
            )));
        }
        let have = nl.port_vlans(port.index)?;
        if let Some(a) = self.access {
            if !have.iter().any(|v| v.contains(a) && v.pvid && v.untagged) {
                return Err(Error::plugin(format!(
                    "host veth {} does not have VLAN {a} as its PVID, untagged",
                    port.name
                )));
            }
        }
        if let Some(v) = self
            .trunk
            .iter()
            .find(|v| !have.iter().any(|h| h.contains(**v)))
        {
            return Err(Error::plugin(format!(
                "host veth {} does not carry trunk VLAN {v}",
                port.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(json: &str) -> Result<Vec<u16>> {
        let entries: Vec<TrunkEntry> = serde_json::from_str(json).unwrap();
        trunk_ids(&entries)
    }

    #[test]
    fn trunk_ids_and_ranges_merge_sorted() {
        assert_eq!(
            trunk(r#"[{"id": 9}, {"minID": 3, "maxID": 5}, {"id": 4}, {"minID": 1, "maxID": 1, "id": 4094}]"#)
                .unwrap(),
            vec![1, 3, 4, 5, 9, 4094]
        );
        assert_eq!(trunk("[]").unwrap(), Vec::<u16>::new());
        assert_eq!(trunk("[{}]").unwrap(), Vec::<u16>::new());
    }

    #[test]
    fn trunk_refusals_are_the_references() {
        for (json, msg) in [
            (r#"[{"id": 0}]"#, "incorrect trunk id parameter"),
            (r#"[{"id": 4095}]"#, "incorrect trunk id parameter"),
            (
                r#"[{"minID": 0, "maxID": 5}]"#,
                "incorrect trunk minID parameter",
            ),
            (
                r#"[{"minID": 5, "maxID": 4095}]"#,
                "incorrect trunk maxID parameter",
            ),
            (
                r#"[{"minID": 6, "maxID": 5}]"#,
                "minID is greater than maxID",
            ),
            (r#"[{"maxID": 5}]"#, "minID is missing"),
            (r#"[{"minID": 5}]"#, "maxID is missing"),
        ] {
            let e = trunk(json).unwrap_err();
            assert_eq!(e.code, 7, "{json}");
            assert!(
                e.msg.starts_with("vlanTrunk: ") && e.msg.contains(msg),
                "{json}: {}",
                e.msg
            );
        }
    }

    #[test]
    fn access_vlan_is_the_trunks_native_one() {
        let entries: Vec<TrunkEntry> =
            serde_json::from_str(r#"[{"minID": 99, "maxID": 101}]"#).unwrap();
        let v = PortVlans::from_conf(100, Some(&entries), false).unwrap();
        assert_eq!(v.access, Some(100));
        assert_eq!(v.trunk, vec![99, 101]);
        assert_eq!(
            v.entries(),
            vec![
                PortVlan::access(100),
                PortVlan::tagged(99),
                PortVlan::tagged(101)
            ]
        );
        let none = PortVlans::from_conf(0, None, false).unwrap();
        assert!(!none.filtering && !none.needs_filtering());
        assert_eq!(none.entries(), vec![]);
        let e = PortVlans::from_conf(5000, None, false).unwrap_err();
        assert!(e.msg.starts_with("vlan: invalid VLAN ID 5000"), "{}", e.msg);
    }
}
