//! The vlan plugin: an 802.1Q VLAN link on a host interface (the
//! "master"), made straight into the container under a temporary name and
//! renamed there to `CNI_IFNAME`, so a host interface of that name never
//! collides.
//!
//! ADD: check `CNI_IFNAME` is free in the container, find the master (in
//! the container's namespace with `linkInContainer`), check the MTU
//! against it, start IPAM, create and rename the link, configure it. Any
//! failure undoes what was done. DEL: IPAM release and the link, each
//! tolerating absence. CHECK: the link is a VLAN with the configured ID
//! (and MTU), the master exists, the addresses and routes of `prevResult`
//! are there. GC and STATUS go to IPAM.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::vlan::LowerSpec;
use cni_kernel::{Netlink, Netns};
use cni_support::{attachment, container, lower};
use serde::Deserialize;

pub struct Vlan;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    /// Required: the reference refuses a config without it (although its
    /// documentation once called it optional).
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    vlan_id: i64,
    /// `0` is "not set": the master's MTU.
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    link_in_container: bool,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        if self.master().is_none() {
            return Err(Error::config(
                "master: the field is required; it names the host interface to create the VLAN on",
            ));
        }
        if !(0..=4094).contains(&self.vlan_id) {
            return Err(Error::config(format!(
                "vlanId: invalid VLAN ID {} (must be between 0 and 4094)",
                self.vlan_id
            )));
        }
        if self.mtu < 0 || self.mtu > i64::from(u32::MAX) {
            return Err(Error::config(format!("mtu: invalid MTU {}", self.mtu)));
        }
        Ok(())
    }

    fn master(&self) -> Option<&str> {
        self.master.as_deref().filter(|m| !m.is_empty())
    }

    /// Only after `validate`.
    fn id(&self) -> u16 {
        self.vlan_id as u16
    }

    /// `None` for unset (or 0): the master's.
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

impl Plugin for Vlan {
    fn name(&self) -> &str {
        "vlan"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
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
        let master = lower::find_master(nl, conf.master(), conf.where_())?;
        lower::check_mtu(conf.mtu(), &master)?;

        let mut undo = Rollback::new();
        let ipam = IpamAdd::start(req)?;

        // Made inside the container under a name nobody uses, then renamed
        // there: the kernel checks the name where the link is made.
        let tmp = lower::temp_name("vl")?;
        let spec = LowerSpec {
            name: tmp.clone(),
            master: master.index,
            mtu: conf.mtu(),
            // With linkInContainer the request is sent from inside.
            netns: (!conf.link_in_container).then_some(&ns),
        };
        nl.create_vlan(&spec, conf.id())
            .map_err(|e| Error::plugin(format!("failed to create vlan on {}: {e}", master.name)))?;
        let link = cnl.link_by_name(&tmp)?;
        attachment::undo_link_in(&mut undo, &ns, link.index, format!("delete vlan {tmp}"));
        cnl.set_name(link.index, &req.ifname).map_err(|e| {
            Error::plugin(format!("failed to rename vlan to {:?}: {e}", req.ifname))
        })?;

        let result = attachment::finish_link_add(req, &ns, &mut cnl, ipam, &mut undo)?;
        undo.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Decoded only: a config ADD refused must not make DEL fail too,
        // nor a master that has gone since (the reference fails then).
        let _: Conf = req.parse_config()?;
        attachment::del(req, None, |_| {})
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let mut c = attachment::check_link_of_kind(req, "vlan")?;
        let l = &c.container;
        if l.vlan_id() != Some(conf.id()) {
            return Err(Error::plugin(format!(
                "container vlan {} has VLAN ID {}, the config says {}",
                req.ifname,
                l.vlan_id()
                    .map_or_else(|| "unknown".into(), |v| v.to_string()),
                conf.id()
            )));
        }
        if let Some(mtu) = conf.mtu().filter(|m| l.mtu != Some(*m)) {
            return Err(Error::plugin(format!(
                "container vlan {} has MTU {}, the config says {mtu}",
                req.ifname,
                l.mtu.unwrap_or_default()
            )));
        }
        lower::check_master(
            &mut c.cnl,
            conf.link_in_container,
            conf.master(),
            conf.where_(),
        )?;
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
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_and_keys() {
        let c = conf(r#"{"name":"n","master":"eth1"}"#).unwrap();
        assert_eq!(c.master(), Some("eth1"));
        assert_eq!(c.id(), 0);
        assert_eq!(c.mtu(), None);
        assert!(!c.link_in_container);
        let c =
            conf(r#"{"name":"n","master":"eth1","vlanId":4094,"mtu":1400,"linkInContainer":true}"#)
                .unwrap();
        assert_eq!(c.id(), 4094);
        assert_eq!(c.mtu(), Some(1400));
        assert_eq!(c.where_(), "in the container namespace");
    }

    #[test]
    fn refusals_are_code_7_naming_the_key() {
        for (json, key) in [
            (r#"{"name":"n"}"#, "master:"),
            (r#"{"name":"n","master":""}"#, "master:"),
            (r#"{"name":"n","master":"e","vlanId":4095}"#, "vlanId:"),
            (r#"{"name":"n","master":"e","vlanId":-1}"#, "vlanId:"),
            (r#"{"name":"n","master":"e","mtu":-5}"#, "mtu:"),
        ] {
            let e = conf(json).err().unwrap();
            assert_eq!(e.code, 7, "{json}");
            assert!(e.msg.starts_with(key), "{json}: {}", e.msg);
        }
        // A VLAN ID that is not a number is undecodable input.
        let e = conf(r#"{"name":"n","master":"e","vlanId":"5"}"#)
            .err()
            .unwrap();
        assert_eq!(e.code, 6);
    }
}
