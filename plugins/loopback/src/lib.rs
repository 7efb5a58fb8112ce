//! The loopback plugin: brings `lo` up in the container's namespace.
//!
//! ADD sets `lo` up and returns it with its addresses, or passes a chained
//! `prevResult` through untouched. CHECK verifies `lo` is up. DEL sets it
//! down, and succeeds when there is no namespace any more.

use cni::{CniResult, Interface, IpConfig, Plugin, Request, Result};
use cni_kernel::{Netlink, Netns};

pub struct Loopback;

/// The interface this plugin manages, whatever `CNI_IFNAME` says.
const LO: &str = "lo";

fn container_ns(req: &Request) -> Result<Netns> {
    let path = req
        .netns
        .as_ref()
        .ok_or_else(|| cni::Error::env("required env variables [CNI_NETNS] missing"))?;
    Ok(Netns::open(path)?)
}

impl Plugin for Loopback {
    fn name(&self) -> &str {
        "loopback"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let prev = req.net.prev_result()?;
        let ns = container_ns(req)?;
        let mut nl = Netlink::open_in(&ns)?;
        let lo = nl.link_by_name(LO)?;
        nl.set_up(lo.index)?;
        let addrs = nl.addrs(Some(lo.index), None)?;
        if let Some(bad) = addrs.iter().find(|a| !a.net.addr().is_loopback()) {
            return Err(cni::Error::plugin(format!(
                "loopback interface found with non-loopback address {}",
                bad.net
            )));
        }
        if let Some(prev) = prev {
            return Ok(prev);
        }
        Ok(CniResult {
            interfaces: vec![Interface {
                name: LO.into(),
                mac: Some("00:00:00:00:00:00".into()),
                sandbox: Some(ns.path().display().to_string()),
                ..Default::default()
            }],
            ips: addrs
                .iter()
                .map(|a| IpConfig {
                    interface: Some(0),
                    address: a.net,
                    gateway: None,
                })
                .collect(),
            ..Default::default()
        })
    }

    fn check(&self, req: &Request) -> Result<()> {
        let ns = container_ns(req)?;
        let mut nl = Netlink::open_in(&ns)?;
        let lo = nl.link_by_name(LO)?;
        if !lo.is_up() {
            return Err(cni::Error::plugin(format!(
                "loopback interface is down in {}",
                ns.path().display()
            )));
        }
        Ok(())
    }

    fn del(&self, req: &Request) -> Result<()> {
        let Some(path) = &req.netns else {
            return Ok(());
        };
        // The namespace may be gone already (the runtime removed it, or this
        // is a repeated DEL): there is nothing left to undo.
        let Some(ns) = Netns::open_if_present(path)? else {
            return Ok(());
        };
        let mut nl = Netlink::open_in(&ns)?;
        let lo = nl.link_by_name(LO)?;
        nl.set_down(lo.index)?;
        Ok(())
    }
}
