//! The ipvlan plugin: an ipvlan link on a host interface (the "master"),
//! made straight into the container under a temporary name and renamed
//! there to `CNI_IFNAME`. Every ipvlan shares its master's MAC; the kernel
//! tells them apart by address (`l2`: by MAC and then IP, `l3`/`l3s`: by IP
//! only, routed, no ARP).
//!
//! ADD: check `CNI_IFNAME` is free in the container; the master is the
//! config's, else (chained after another plugin) the single interface of
//! `prevResult`, else the interface of the default route; then IPAM, or
//! (chained, without `ipam`) the addresses of `prevResult`, go onto the
//! new link. Any failure undoes what was done. DEL: IPAM release and the
//! link, each tolerating absence. CHECK: the link is an ipvlan in the
//! configured mode, the master exists, the addresses and routes of
//! `prevResult` are there. GC and STATUS go to IPAM.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Interface, Plugin, Request, Result};
use cni_kernel::vlan::{parse_ipvlan_mode, LowerSpec};
use cni_kernel::{Netlink, Netns};
use cni_support::{attachment, container, iface, lower};
use netlink_packet_route::link::IpVlanMode;
use serde::Deserialize;

pub struct Ipvlan;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    /// Empty is "not set", as for the reference.
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    /// `0` is "not set": the master's MTU.
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    link_in_container: bool,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        c.mode()?;
        if c.mtu < 0 || c.mtu > i64::from(u32::MAX) {
            return Err(Error::config(format!("mtu: invalid MTU {}", c.mtu)));
        }
        Ok(c)
    }

    fn mode(&self) -> Result<IpVlanMode> {
        match self.mode.as_deref() {
            None | Some("") => Ok(IpVlanMode::L2),
            Some(m) => parse_ipvlan_mode(m).ok_or_else(|| {
                Error::config(format!("mode: unknown ipvlan mode {m:?} (l2, l3 or l3s)"))
            }),
        }
    }

    fn master(&self) -> Option<&str> {
        self.master.as_deref().filter(|m| !m.is_empty())
    }

    fn mtu(&self) -> Option<u32> {
        (self.mtu > 0).then_some(self.mtu as u32)
    }

    fn where_(&self) -> &'static str {
        if self.link_in_container {
            "in the container namespace"
        } else {
            "in the host namespace"
        }
    }
}

/// The master's name for ADD: the config's; chained without one, the
/// single named interface of `prevResult` (as the reference); `None`: the
/// default route's.
fn master_name(conf: &Conf, prev: Option<&CniResult>) -> Result<Option<String>> {
    if let Some(m) = conf.master() {
        return Ok(Some(m.to_string()));
    }
    match prev {
        None => Ok(None),
        Some(p) => match p.interfaces.as_slice() {
            [one] if !one.name.is_empty() => Ok(Some(one.name.clone())),
            _ => Err(Error::config(
                "master: not set, and the chained master cannot be found: prevResult lacks a single named interface",
            )),
        },
    }
}

impl Plugin for Ipvlan {
    fn name(&self) -> &str {
        "ipvlan"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let mode = conf.mode()?;
        let prev = req.net.prev_result()?;
        let master_name = master_name(&conf, prev.as_ref())?;
        // Chained without IPAM: the addresses of the plugin before.
        let chained = prev.filter(|p| req.net.ipam_type().is_none() && !p.ips.is_empty());

        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut cnl = Netlink::open_in(&ns)?;
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;

        let mut host = Netlink::open()?;
        let nl = if conf.link_in_container {
            &mut cnl
        } else {
            &mut host
        };
        let master = lower::find_master(nl, master_name.as_deref(), conf.where_())?;
        lower::check_mtu(conf.mtu(), &master)?;

        let mut undo = Rollback::new();
        let ipam = match chained {
            Some(_) => None,
            None => IpamAdd::start(req)?,
        };

        let tmp = lower::temp_name("ipv")?;
        let spec = LowerSpec {
            name: tmp.clone(),
            master: master.index,
            mtu: conf.mtu(),
            netns: (!conf.link_in_container).then_some(&ns),
        };
        nl.create_ipvlan(&spec, mode).map_err(|e| {
            Error::plugin(format!("failed to create ipvlan on {}: {e}", master.name))
        })?;
        let link = cnl.link_by_name(&tmp)?;
        attachment::undo_link_in(&mut undo, &ns, link.index, format!("delete ipvlan {tmp}"));
        cnl.set_name(link.index, &req.ifname).map_err(|e| {
            Error::plugin(format!("failed to rename ipvlan to {:?}: {e}", req.ifname))
        })?;

        iface::announce(&ns, &req.ifname)?;

        let result = match chained {
            Some(mut r) => {
                let l = cnl.link_by_name(&req.ifname)?;
                r.interfaces = vec![Interface {
                    name: req.ifname.clone(),
                    mac: l.mac_string(),
                    sandbox: Some(ns.path().display().to_string()),
                    ..Default::default()
                }];
                for ip in &mut r.ips {
                    ip.interface = Some(0);
                }
                iface::configure(&ns, &mut cnl, &req.ifname, &r)?;
                if let Some(dns) = req.net.dns_override() {
                    r.dns = dns.clone();
                }
                r
            }
            None => attachment::finish_link_add(req, &ns, &mut cnl, ipam, &mut undo)?,
        };
        undo.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Decoded only: a config ADD refused must not make DEL fail too.
        let _: Conf = req.parse_config()?;
        attachment::del(req, None, |_| {})
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let mut c = attachment::check_link_of_kind(req, "ipvlan")?;
        let want = conf.mode()?;
        match c.container.ipvlan_mode() {
            Some(have) if have == want => {}
            have => {
                return Err(Error::plugin(format!(
                    "container ipvlan mode {} does not match expected value: {want}",
                    have.map_or_else(|| "unknown".into(), |m| m.to_string()),
                )))
            }
        }
        // Without `master` (default route or chained) there is nothing to
        // look up by name: the ipvlan itself is proof of its master, as
        // the kernel removes every ipvlan with its lower device.
        if let Some(m) = conf.master() {
            lower::check_master(&mut c.cnl, conf.link_in_container, Some(m), conf.where_())?;
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let _: Conf = req.parse_config()?;
        attachment::gc_ipam(req)
    }

    fn status(&self, req: &Request) -> Result<()> {
        Conf::load(req)?;
        attachment::status(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> Result<Conf> {
        let c: Conf = cni::types::parse_config(json.as_bytes())?;
        c.mode()?;
        Ok(c)
    }

    #[test]
    fn defaults_and_keys() {
        let c = conf(r#"{"name":"n"}"#).unwrap();
        assert_eq!(c.mode().unwrap(), IpVlanMode::L2);
        assert_eq!(c.master(), None);
        assert_eq!(c.mtu(), None);
        let c =
            conf(r#"{"name":"n","master":"eth1","mode":"l3s","mtu":1400,"linkInContainer":true}"#)
                .unwrap();
        assert_eq!(c.mode().unwrap(), IpVlanMode::L3S);
        assert_eq!(c.master(), Some("eth1"));
        assert_eq!(c.mtu(), Some(1400));
        assert!(c.link_in_container);
        assert_eq!(
            conf(r#"{"name":"n","mode":""}"#).unwrap().mode().unwrap(),
            IpVlanMode::L2
        );
    }

    #[test]
    fn unknown_mode_is_code_7() {
        let e = conf(r#"{"name":"n","mode":"bridge"}"#).err().unwrap();
        assert_eq!(e.code, 7);
        assert!(
            e.msg.starts_with("mode:") && e.msg.contains("\"bridge\""),
            "{}",
            e.msg
        );
    }

    fn prev(names: &[&str]) -> CniResult {
        CniResult {
            interfaces: names
                .iter()
                .map(|n| Interface {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn chained_master_is_the_single_interface_of_prev_result() {
        let none = conf(r#"{"name":"n"}"#).unwrap();
        let set = conf(r#"{"name":"n","master":"eth9"}"#).unwrap();
        assert_eq!(master_name(&none, None).unwrap(), None);
        assert_eq!(
            master_name(&none, Some(&prev(&["up0"])))
                .unwrap()
                .as_deref(),
            Some("up0")
        );
        assert_eq!(
            master_name(&set, Some(&prev(&["up0"]))).unwrap().as_deref(),
            Some("eth9")
        );
        for bad in [prev(&[]), prev(&["a", "b"]), prev(&[""])] {
            let e = master_name(&none, Some(&bad)).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.contains("single named interface"), "{}", e.msg);
        }
    }
}
