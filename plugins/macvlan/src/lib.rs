//! The macvlan plugin: a macvlan link on a host interface (the "master"),
//! made straight into the container under a temporary name and renamed
//! there to `CNI_IFNAME`, so a host interface of that name never collides.
//!
//! ADD: check `CNI_IFNAME` is free in the container, find the master (the
//! config's, else the interface of the default route, in the container's
//! namespace with `linkInContainer`), check the MTU against it, start IPAM,
//! create and rename the link, configure it. Any failure undoes what was
//! done. DEL: IPAM release and the link, each tolerating absence. CHECK:
//! the link is a macvlan in the configured mode, the master exists, the
//! addresses and routes of `prevResult` are there. GC and STATUS go to IPAM.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::link::parse_mac;
use cni_kernel::macvlan::{mode_name, parse_mode, MacvlanSpec};
use cni_kernel::{Netlink, Netns};
use cni_support::{attachment, container, iface, lower};
use netlink_packet_route::link::MacVlanMode;
use serde::Deserialize;

pub struct Macvlan;

/// CNI_ARGS keys this plugin (or its IPAM) understands.
const KNOWN_ARGS: &[&str] = &["MAC", "IP", "GATEWAY"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    /// Empty is "not set", as for the reference.
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    link_in_container: bool,
    /// `0` is "not set", as for the reference.
    #[serde(default, rename = "bcqueuelen")]
    bc_queue_len: Option<u32>,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        c.mode()?;
        if let Some(m) = c.mtu.filter(|m| *m < 0 || *m > i64::from(u32::MAX)) {
            return Err(Error::config(format!("mtu: invalid MTU {m}")));
        }
        Ok(c)
    }

    fn mode(&self) -> Result<MacVlanMode> {
        match self.mode.as_deref() {
            None | Some("") => Ok(MacVlanMode::Bridge),
            Some(m) => parse_mode(m).ok_or_else(|| {
                Error::config(format!(
                    "mode: unknown macvlan mode {m:?} (bridge, private, vepa or passthru)"
                ))
            }),
        }
    }

    fn master(&self) -> Option<&str> {
        self.master.as_deref().filter(|m| !m.is_empty())
    }

    /// The MTU asked for; `None` for unset (or 0): the master's.
    fn mtu(&self) -> Option<u32> {
        self.mtu.filter(|m| *m > 0).map(|m| m as u32)
    }
}

impl Plugin for Macvlan {
    fn name(&self) -> &str {
        "macvlan"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let mode = conf.mode()?;
        let mac = match req.requested_mac(KNOWN_ARGS)?.or_else(|| conf.mac.clone()) {
            Some(m) => Some(parse_mac(&m).ok_or_else(|| {
                Error::config(format!(
                    "mac: {m:?} is not a MAC address like 0a:58:0a:01:00:02"
                ))
            })?),
            None => None,
        };
        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut cnl = Netlink::open_in(&ns)?;
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;

        let mut host = Netlink::open()?;
        let (master, where_) = if conf.link_in_container {
            (&mut cnl, "in the container namespace")
        } else {
            (&mut host, "in the host namespace")
        };
        let master_link = lower::find_master(master, conf.master(), where_)?;
        lower::check_mtu(conf.mtu(), &master_link)?;

        let mut undo = Rollback::new();
        let ipam = IpamAdd::start(req)?;

        // Made inside the container under a name nobody uses, then
        // renamed there: the kernel checks the name where the link is
        // made, and `CNI_IFNAME` may well exist on the host.
        let tmp = lower::temp_name("mv")?;
        let spec = MacvlanSpec {
            name: tmp.clone(),
            master: master_link.index,
            mode,
            mtu: conf.mtu(),
            mac,
            bc_queue_len: conf.bc_queue_len.filter(|q| *q > 0),
            // With linkInContainer the request is sent from inside.
            netns: (!conf.link_in_container).then_some(&ns),
        };
        master.create_macvlan(&spec).map_err(|e| {
            Error::plugin(format!(
                "failed to create macvlan on {}: {e}",
                master_link.name
            ))
        })?;
        let link = cnl.link_by_name(&tmp)?;
        attachment::undo_link_in(&mut undo, &ns, link.index, format!("delete macvlan {tmp}"));
        cnl.set_name(link.index, &req.ifname).map_err(|e| {
            Error::plugin(format!("failed to rename macvlan to {:?}: {e}", req.ifname))
        })?;

        iface::announce(&ns, &req.ifname)?;

        let result = attachment::finish_link_add(req, &ns, &mut cnl, ipam, &mut undo)?;
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
        let mut c = attachment::check_link_of_kind(req, "macvlan")?;
        let want = conf.mode()?;
        match c.container.macvlan_mode() {
            Some(have) if have == want => {}
            have => {
                return Err(Error::plugin(format!(
                    "container macvlan mode {} does not match expected value: {}",
                    have.map(mode_name).unwrap_or_else(|| "unknown".into()),
                    mode_name(want)
                )))
            }
        }
        let where_ = if conf.link_in_container {
            "in the container namespace"
        } else {
            "in the host namespace"
        };
        lower::check_master(&mut c.cnl, conf.link_in_container, conf.master(), where_)?;
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

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    let c = Conf::load(req)?;
    c.mode()?;
    c.mtu();
    c.master();
    req.requested_mac(KNOWN_ARGS)?;
    Ok(())
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
        let c = conf(r#"{"name":"n","ipam":{}}"#).unwrap();
        assert_eq!(c.mode().unwrap(), MacVlanMode::Bridge);
        assert_eq!(c.master(), None);
        assert_eq!(c.mtu(), None);
        assert!(!c.link_in_container);
        let c = conf(
            r#"{"name":"n","master":"eth1","mode":"passthru","mtu":1400,
                "mac":"0a:58:00:00:00:01","linkInContainer":true,"bcqueuelen":100}"#,
        )
        .unwrap();
        assert_eq!(c.mode().unwrap(), MacVlanMode::Passthrough);
        assert_eq!(c.master(), Some("eth1"));
        assert_eq!(c.mtu(), Some(1400));
        assert!(c.link_in_container);
        assert_eq!(c.bc_queue_len, Some(100));
        assert_eq!(conf(r#"{"name":"n","master":""}"#).unwrap().master(), None);
        assert_eq!(conf(r#"{"name":"n","mtu":0}"#).unwrap().mtu(), None);
    }

    #[test]
    fn unknown_mode_is_code_7() {
        let e = conf(r#"{"name":"n","mode":"l2"}"#).err().unwrap();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"l2\""), "{}", e.msg);
    }

    #[test]
    fn temp_names_fit_and_differ() {
        let (a, b) = (
            lower::temp_name("mv").unwrap(),
            lower::temp_name("mv").unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
    }
}
