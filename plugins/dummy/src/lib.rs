//! The dummy plugin: a dummy link (a local interface that sends nothing
//! anywhere) in the container under `CNI_IFNAME`, carrying the addresses
//! and routes IPAM gives it; for services that need an address of their
//! own inside the container, or a stable source address.
//!
//! ADD: IPAM is required; check `CNI_IFNAME` is free in the container,
//! start IPAM, create the dummy inside the container (its name need only
//! be free there), configure it. Any failure undoes what was done. DEL:
//! IPAM release and the link, each tolerating absence. CHECK: the link is
//! a dummy, up, with `prevResult`'s MAC, addresses and routes. GC and
//! STATUS go to IPAM.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::{Netlink, Netns};
use cni_support::{attachment, container};

pub struct Dummy;

/// The reference's refusal when the config has no IPAM (a dummy without
/// addresses has no use).
fn require_ipam(req: &Request) -> Result<()> {
    match req.net.ipam_type() {
        Some(_) => Ok(()),
        None => Err(Error::config(
            "dummy interface requires an IPAM configuration",
        )),
    }
}

impl Plugin for Dummy {
    fn name(&self) -> &str {
        "dummy"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        require_ipam(req)?;
        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut cnl = Netlink::open_in(&ns)?;
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;

        let mut undo = Rollback::new();
        let ipam = IpamAdd::start(req)?;
        // Made from a socket inside the container: no name on the host is
        // involved at any point.
        cnl.create_dummy(&req.ifname, None)
            .map_err(|e| Error::plugin(format!("failed to create dummy: {e}")))?;
        let link = cnl.link_by_name(&req.ifname)?;
        attachment::undo_link_in(
            &mut undo,
            &ns,
            link.index,
            format!("delete dummy {}", req.ifname),
        );
        let result = attachment::finish_link_add(req, &ns, &mut cnl, ipam, &mut undo)?;
        undo.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        attachment::del(req, None, |_| {})
    }

    fn check(&self, req: &Request) -> Result<()> {
        require_ipam(req)?;
        // A link that is down has lost its routes: say it is down (as the
        // reference does, before comparing addresses and routes).
        if req.net.prev_result()?.is_some() {
            let ns = Netns::open(attachment::netns_path(req)?)?;
            if let Ok(l) = Netlink::open_in(&ns)?.link_by_name(&req.ifname) {
                if l.kind.as_deref() == Some("dummy") && !l.is_up() {
                    return Err(Error::plugin(format!("Interface {} is down", req.ifname)));
                }
            }
        }
        let c = attachment::check_link(req, "dummy")?;
        if c.container.kind.as_deref() != Some("dummy") {
            return Err(Error::plugin(format!(
                "Error: Container interface {} not of type dummy",
                req.ifname
            )));
        }
        if !c.container.is_up() {
            return Err(Error::plugin(format!("Interface {} is down", req.ifname)));
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        attachment::gc_ipam(req)
    }

    fn status(&self, req: &Request) -> Result<()> {
        attachment::status(req)
    }
}

/// Everything ADD and CHECK read from the configuration before they touch
/// the system, as one function that touches nothing (for the fuzz targets).
pub fn load_config(req: &Request) -> Result<()> {
    require_ipam(req)
}
