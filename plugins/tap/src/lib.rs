//! The tap plugin: a persistent tap device in the container (for a VM
//! monitor running there to attach to), optionally a port of a bridge in
//! the container, with IPAM's addresses on it.
//!
//! ADD: check `CNI_IFNAME` is free in the container, start IPAM, create the
//! tap inside the container under a temporary name (a `TUNSETIFF` on the
//! name of an existing tap would attach to it rather than fail), set its
//! MTU and MAC, rename it, enslave it to `bridge`, configure it. Any
//! failure undoes what was done. DEL: IPAM release and the tap, each
//! tolerating absence. CHECK: a tap with the configured queue mode, owner,
//! group and bridge, and `prevResult`'s addresses and routes. GC and STATUS
//! go to IPAM.
//!
//! `selinuxContext`: the reference runs `ip tuntap` under that SELinux
//! label. Where SELinux is not enabled (as on Debian) the key is accepted,
//! logged and has no effect; where it is enabled this build refuses the key
//! (code 2) rather than create a tap with the wrong label.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::link::parse_mac;
use cni_kernel::tuntap::{create_tap, TapSpec};
use cni_kernel::{random, sysctl, Netlink, Netns};
use cni_support::{attachment, container};
use serde::Deserialize;
use std::path::Path;

pub struct Tap;

/// CNI_ARGS keys this plugin (or its IPAM) understands.
const KNOWN_ARGS: &[&str] = &["MAC", "IP", "GATEWAY"];

/// Present when SELinux is enabled.
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    mac: Option<String>,
    /// `0` is "not set", as for the reference.
    #[serde(default, deserialize_with = "cni::types::zero_is_unset")]
    mtu: Option<u32>,
    #[serde(default)]
    multi_queue: bool,
    #[serde(default)]
    owner: Option<u32>,
    #[serde(default)]
    group: Option<u32>,
    #[serde(default)]
    selinux_context: Option<String>,
    #[serde(default)]
    bridge: Option<String>,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        if let Some(b) = c.bridge() {
            cni::validate::interface_name(b)
                .map_err(|e| Error::config(format!("bridge: {}: {}", e.msg, e.details)))?;
        }
        Ok(c)
    }

    fn bridge(&self) -> Option<&str> {
        self.bridge.as_deref().filter(|b| !b.is_empty())
    }

    /// `selinuxContext`, judged against this host (see the module docs).
    fn selinux(&self, enabled: bool) -> Result<()> {
        let Some(ctx) = self.selinux_context.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        if enabled {
            return Err(Error::unsupported(format!(
                "selinuxContext: {ctx:?} is not supported by this build on a host with SELinux enabled"
            )));
        }
        log::info!("selinuxContext {ctx:?} ignored: SELinux is not enabled on this host");
        Ok(())
    }
}

/// A temporary name for the new tap, free in any namespace but by chance.
fn temp_name() -> Result<String> {
    let hex: String = random::bytes(4)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("tap{hex}"))
}

impl Plugin for Tap {
    fn name(&self) -> &str {
        "tap"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        conf.selinux(Path::new(SELINUX_ENFORCE).exists())?;
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
        let bridge = match conf.bridge() {
            Some(b) => Some(cnl.link_by_name(b).map_err(|e| {
                Error::plugin(format!("failed to get bridge {b} in the container: {e}"))
            })?),
            None => None,
        };
        let mut undo = Rollback::new();
        let ipam = IpamAdd::start(req)?;

        let tmp = temp_name()?;
        create_tap(
            &ns,
            &TapSpec {
                name: tmp.clone(),
                multi_queue: conf.multi_queue,
                owner: conf.owner,
                group: conf.group,
            },
        )
        .map_err(|e| Error::plugin(format!("failed to create tap: {e}")))?;
        let link = cnl.link_by_name(&tmp)?;
        attachment::undo_link_in(&mut undo, &ns, link.index, format!("delete tap {tmp}"));
        if let Some(mtu) = conf.mtu {
            cnl.set_mtu(link.index, mtu)?;
        }
        if let Some(mac) = &mac {
            cnl.set_mac(link.index, mac)?;
        }
        cnl.set_name(link.index, &req.ifname)
            .map_err(|e| Error::plugin(format!("failed to rename tap to {:?}: {e}", req.ifname)))?;
        if let Some(br) = &bridge {
            cnl.set_master(link.index, br.index).map_err(|e| {
                Error::plugin(format!(
                    "failed to set tap {} as a port of bridge {}: {e}",
                    req.ifname, br.name
                ))
            })?;
        }
        // A tap has no carrier until a VM monitor attaches, and the kernel
        // starts IPv6 duplicate address detection only with carrier: its
        // addresses would stay tentative (unusable) until then, and the
        // ADD would wait for them in vain. The tap's one peer is that VM.
        let ifname = req.ifname.clone();
        ns.run(move || -> cni_kernel::Result<()> {
            sysctl::ensure(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
            sysctl::disable_dad(&ifname)
        })??;

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
        let mut c = attachment::check_link(req, "tap")?;
        let ifname = &req.ifname;
        let info =
            c.container.tun_info().filter(|i| i.tap).ok_or_else(|| {
                Error::plugin(format!("container interface {ifname} is not a tap"))
            })?;
        if info.multi_queue != conf.multi_queue {
            return Err(Error::plugin(format!(
                "tap {ifname} multi_queue is {}, expected {}",
                info.multi_queue, conf.multi_queue
            )));
        }
        if info.owner != conf.owner || info.group != conf.group {
            return Err(Error::plugin(format!(
                "tap {ifname} has owner {:?} and group {:?}, expected {:?} and {:?}",
                info.owner, info.group, conf.owner, conf.group
            )));
        }
        if let Some(b) = conf.bridge() {
            let br = c
                .cnl
                .link_by_name(b)
                .map_err(|e| Error::plugin(format!("bridge {b} in the container: {e}")))?;
            if c.container.master != Some(br.index) {
                return Err(Error::plugin(format!(
                    "tap {ifname} is not a port of bridge {b}"
                )));
            }
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

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    let c = Conf::load(req)?;
    c.selinux(false)?;
    req.requested_mac(KNOWN_ARGS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> Conf {
        cni::types::parse_config(json.as_bytes()).unwrap()
    }

    #[test]
    fn keys() {
        let c = conf(
            r#"{"name":"n","mac":"0a:58:00:00:00:01","mtu":1400,"multiQueue":true,
                "owner":1000,"group":100,"bridge":"br0","selinuxContext":"system_u:x"}"#,
        );
        assert_eq!(c.mtu, Some(1400));
        assert!(c.multi_queue);
        assert_eq!((c.owner, c.group), (Some(1000), Some(100)));
        assert_eq!(c.bridge(), Some("br0"));
        let c = conf(r#"{"name":"n","mtu":0,"bridge":""}"#);
        assert_eq!((c.mtu, c.owner, c.bridge()), (None, None, None));
    }

    #[test]
    fn selinux_context_is_ignored_without_selinux_and_refused_with_it() {
        let c = conf(r#"{"name":"n","selinuxContext":"system_u:system_r:container_t:s0"}"#);
        c.selinux(false).unwrap();
        assert_eq!(c.selinux(true).unwrap_err().code, 2);
        conf(r#"{"name":"n"}"#).selinux(true).unwrap();
    }

    #[test]
    fn temp_names_fit() {
        let n = temp_name().unwrap();
        assert_eq!(n.len(), 11);
        assert!(n.starts_with("tap"));
    }
}
