//! The container end of an attachment: creating a veth pair into the
//! container, removing the container interface on DEL, and checking it
//! against a previous result on CHECK. Shared by bridge, ptp and the
//! interface plugins that follow.

use cni::CniResult;
use cni_kernel::addr::Family;
use cni_kernel::error::Error;
use cni_kernel::link::{Link, VethSpec};
use cni_kernel::netlink::Netlink;
use cni_kernel::netns::Netns;
use cni_kernel::random;
use std::path::Path;

/// How many random host-side names to try before giving up.
const NAME_TRIES: usize = 10;

/// The veth pair an attachment wants.
#[derive(Debug, Clone, Default)]
pub struct PairSpec<'a> {
    /// The container end's name (`CNI_IFNAME`).
    pub ifname: &'a str,
    pub mtu: Option<u32>,
    /// The container end's MAC; the kernel picks one when `None`.
    pub mac: Option<Vec<u8>>,
    /// Enslave the host end to this link (a bridge) as it is created.
    pub master: Option<u32>,
    /// Bring the host end up as it is created.
    pub host_up: bool,
}

/// A veth pair: the container end made directly inside `ns`, the host end
/// with a fresh `veth…` name in the caller's namespace. Its removal is
/// pushed onto `undo` (deleting one end removes both).
pub fn create_veth_pair(
    host: &mut Netlink,
    ns: &Netns,
    cnl: &mut Netlink,
    spec: PairSpec,
    undo: &mut cni::rollback::Rollback,
) -> cni::Result<(Link, Link)> {
    let (h, c) = create_pair(host, ns, cnl, &spec)?;
    let index = h.index;
    undo.push(format!("delete veth {}", h.name), move || {
        let mut nl = Netlink::open().map_err(|e| e.to_string())?;
        nl.del_link(index).map_err(|e| e.to_string())
    });
    Ok((h, c))
}

fn create_pair(
    host: &mut Netlink,
    ns: &Netns,
    cnl: &mut Netlink,
    spec: &PairSpec,
) -> cni::Result<(Link, Link)> {
    let ifname = spec.ifname;
    ensure_absent(cnl, ns, ifname)?;
    for _ in 0..NAME_TRIES {
        let name = random::veth_name()?;
        let spec = VethSpec {
            name: name.clone(),
            peer_name: ifname.to_string(),
            mtu: spec.mtu,
            mac: None,
            peer_mac: spec.mac.clone(),
            peer_netns: Some(ns),
            master: spec.master,
            up: spec.host_up,
        };
        match host.create_veth(&spec) {
            Ok(()) => {
                let fetched = host
                    .link_by_name(&name)
                    .and_then(|h| cnl.link_by_name(ifname).map(|c| (h, c)));
                if let Err(e) = &fetched {
                    // The caller cannot undo what it was never handed: remove
                    // the pair here (deleting one end removes both).
                    let removed = host
                        .link_by_name(&name)
                        .and_then(|h| host.del_link(h.index));
                    if let Err(d) = removed {
                        log::warn!("remove veth {name} after {e}: {d}");
                    }
                }
                return Ok(fetched?);
            }
            // EEXIST names the host end when that name is taken here; try another.
            Err(e) if e.is(libc::EEXIST) && host.link_by_name(&name).is_ok() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(cni::Error::plugin(format!(
        "failed to find a free host veth name in {NAME_TRIES} tries"
    )))
}

/// ADD's first step, before IPAM runs: `ifname` must not exist in the
/// container yet. A duplicate ADD (the runtime retrying one that already
/// succeeded) fails here, so its rollback never releases the addresses of
/// the live attachment that owns the interface: with an IPAM that answers a
/// repeated ADD with the same lease (static, dhcp), the rollback's IPAM DEL
/// would otherwise take them from it.
pub fn ensure_absent(cnl: &mut Netlink, ns: &Netns, ifname: &str) -> cni::Result<()> {
    match cnl.link_by_name(ifname) {
        Ok(_) => Err(cni::Error::plugin(format!(
            "interface {ifname:?} already exists in {}",
            ns.path().display()
        ))),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove `ifname` from the namespace at `netns`, by name in one request
/// (no lookup or address dump first: DEL is the kernel's unregister and
/// little else). Succeeds when the namespace or the link is gone already:
/// DEL must be repeatable. A path that is no longer a namespace
/// (the file a runtime left after unmounting it) counts as gone: nothing
/// can be inside it.
pub fn delete_iface(netns: &Path, ifname: &str) -> Result<(), Error> {
    let Some(ns) = Netns::open_if_present(netns)? else {
        return Ok(());
    };
    let mut nl = Netlink::open_in(&ns)?;
    match nl.del_link_by_name(ifname) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map_err(|e| e.context(format!("delete {ifname} in {}", netns.display()))),
    }
}

/// CHECK of the container interface: it exists, has the MAC, addresses and
/// routes `prev` says it was given. `index` is its position in
/// `prev.interfaces`. Returns the link.
pub fn check_iface(
    cnl: &mut Netlink,
    ifname: &str,
    prev: &CniResult,
    index: usize,
) -> cni::Result<Link> {
    let link = cnl
        .link_by_name(ifname)
        .map_err(|e| cni::Error::plugin(format!("container interface {ifname} is missing: {e}")))?;
    if let Some(want) = prev.interfaces.get(index).and_then(|i| i.mac.as_deref()) {
        let have = link.mac_string().unwrap_or_default();
        if !have.eq_ignore_ascii_case(want) {
            return Err(cni::Error::plugin(format!(
                "container interface {ifname} has MAC {have}, expected {want}"
            )));
        }
    }
    let addrs = cnl.addrs(Some(link.index), None)?;
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(index)) {
        if !addrs.iter().any(|a| a.net == ip.address) {
            return Err(cni::Error::plugin(format!(
                "container interface {ifname} is missing address {}",
                ip.address
            )));
        }
    }
    let mut routes = Vec::new();
    for family in [Family::V4, Family::V6] {
        if prev
            .routes
            .iter()
            .any(|r| Family::of(&r.dst.addr()) == family)
        {
            routes.extend(cnl.routes(family)?);
        }
    }
    for r in &prev.routes {
        let found = routes.iter().any(|k| {
            k.dst == r.dst.trunc()
                && (r.gw.is_none() || k.gw == r.gw)
                && k.table == Some(r.table.unwrap_or(254))
        });
        if !found {
            return Err(cni::Error::plugin(format!(
                "container route {}{} is missing",
                r.dst,
                r.gw.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
    }
    Ok(link)
}
