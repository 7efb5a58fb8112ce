//! What every veth-based plugin (bridge, ptp) does the same way around its
//! own work: DEL's teardown, CHECK's look at the container interface and
//! its host peer, GC of masquerade rules, and forwarding to IPAM.

use crate::container;
use crate::ipmasq::{self, Backend, Owner};
use cni::delegate::{ipam_exec, ipam_spawn};
use cni::{CniResult, Command, Error, Interface, Request, Result};
use cni_kernel::link::Link;
use cni_kernel::netlink::Netlink;
use cni_kernel::netns::Netns;
use ipnet::IpNet;

/// The owner of an attachment's masquerade rules.
pub fn owner(req: &Request) -> Owner<'_> {
    Owner {
        network: &req.net.name,
        ifname: &req.ifname,
        container_id: &req.container_id,
    }
}

/// `CNI_NETNS`, required for ADD and CHECK.
pub fn netns_path(req: &Request) -> Result<&std::path::Path> {
    req.netns
        .as_deref()
        .ok_or_else(|| Error::env("required env variables [CNI_NETNS] missing"))
}

/// The result's entries for a veth pair: the host end, then the container
/// end with its sandbox.
pub fn veth_interfaces(host: &Link, container: &Link, ns: &Netns) -> [Interface; 2] {
    [
        Interface {
            name: host.name.clone(),
            mac: host.mac_string(),
            ..Default::default()
        },
        Interface {
            name: container.name.clone(),
            mac: container.mac_string(),
            sandbox: Some(ns.path().display().to_string()),
            ..Default::default()
        },
    ]
}

/// ADD's masquerade step: rules for `nets`, removed again if the ADD fails later.
pub fn masquerade(
    req: &Request,
    backend: Backend,
    nets: Vec<IpNet>,
    undo: &mut cni::rollback::Rollback,
) -> Result<()> {
    // The undo goes first: a setup that fails half-way (IPv4 rules in,
    // IPv6 refused) must not leave what it did add.
    let (n, i, c) = (
        req.net.name.clone(),
        req.ifname.clone(),
        req.container_id.clone(),
    );
    undo.push("remove ipMasq rules", move || {
        let o = Owner {
            network: &n,
            ifname: &i,
            container_id: &c,
        };
        ipmasq::teardown(backend, &o).map_err(|e| e.to_string())
    });
    Ok(ipmasq::setup(backend, &nets, &owner(req))?)
}

/// Errors collected while tearing down, so one failure does not stop the
/// rest of the cleanup; reported together at the end.
#[derive(Default)]
pub struct Errors(Vec<String>);

impl Errors {
    pub fn note<T, E: std::fmt::Display>(&mut self, r: std::result::Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e.to_string());
                None
            }
        }
    }

    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(self.0.join("; ")))
        }
    }
}

/// DEL of a veth attachment: IPAM release (started first and run alongside
/// the rest, so it happens even when the namespace is gone), the container
/// interface, `extra` (plugin-specific rules), then the masquerade rules.
/// Everything tolerates absence; every failure is reported, none stops the
/// cleanup.
pub fn del(req: &Request, ip_masq: Option<Backend>, extra: impl FnOnce(&mut Errors)) -> Result<()> {
    let mut errors = Errors::default();
    let ipam = if req.net.ipam_type().is_some() {
        errors.note(ipam_spawn(req, Command::Del))
    } else {
        None
    };
    // dhcp's daemon sends its DHCPRELEASE through the container interface,
    // so its DEL must be done before the interface goes (as the reference
    // orders every DEL).
    let ipam = match ipam {
        Some(p) if req.net.ipam_type() == Some("dhcp") => {
            errors.note(p.wait());
            None
        }
        other => other,
    };
    if ipam.is_some() {
        log::debug!("DEL: IPAM running alongside");
    }
    if let Some(path) = &req.netns {
        if errors
            .note(container::delete_iface(path, &req.ifname))
            .is_some()
        {
            log::debug!("DEL: container interface gone");
        }
    }
    extra(&mut errors);
    if let Some(backend) = ip_masq {
        errors.note(ipmasq::teardown(backend, &owner(req)));
    }
    if let Some(p) = ipam {
        if errors.note(p.wait()).is_some() {
            log::debug!("DEL: IPAM done");
        }
    }
    errors.into_result()
}

/// What CHECK found of a veth attachment.
pub struct Checked {
    pub prev: CniResult,
    /// The container interface's index in `prev.interfaces`.
    pub index: usize,
    pub container: Link,
    pub host_peer: Link,
    pub host: Netlink,
}

/// CHECK of a veth attachment: `prevResult` is required; IPAM CHECK runs
/// alongside; the container interface must match `prevResult` (MAC,
/// addresses, routes) and its veth peer must exist on the host; with
/// `ip_masq` the masquerade rules must be there. The plugin checks its own
/// specifics on what is returned.
pub fn check(req: &Request, plugin: &str, ip_masq: Option<Backend>) -> Result<Checked> {
    let found = find_container_iface(req, plugin)?;
    let cont = found.link.container;
    if cont.kind.as_deref() != Some("veth") {
        return Err(Error::plugin(format!(
            "container interface {} is not a veth",
            req.ifname
        )));
    }
    let peer = cont.peer_index.ok_or_else(|| {
        Error::plugin(format!(
            "container interface {} has no veth peer",
            req.ifname
        ))
    })?;
    let mut host = Netlink::open()?;
    let host_peer = host
        .link_by_index(peer)
        .map_err(|e| Error::plugin(format!("host end of {} is missing: {e}", req.ifname)))?;
    let prev = found.link.prev;
    if let Some(backend) = ip_masq {
        let nets: Vec<IpNet> = prev.ips.iter().map(|ip| ip.address).collect();
        if !ipmasq::check(backend, &nets, &owner(req))? {
            return Err(Error::plugin(format!(
                "ipMasq rules for container {} are missing",
                req.container_id
            )));
        }
    }
    if let Some(p) = found.ipam {
        p.wait()?;
    }
    Ok(Checked {
        prev,
        index: found.link.index,
        container: cont,
        host_peer,
        host,
    })
}

/// What CHECK found of an attachment that is one link in the container
/// (macvlan, tap, host-device).
pub struct CheckedLink {
    pub prev: CniResult,
    /// The container interface's index in `prev.interfaces`.
    pub index: usize,
    pub container: Link,
    pub ns: Netns,
    /// A socket inside `ns`.
    pub cnl: Netlink,
}

/// CHECK of a one-link attachment: `prevResult` is required and must name
/// `CNI_IFNAME` in this sandbox; IPAM CHECK runs alongside; the interface
/// must match `prevResult` (MAC, addresses, routes). The plugin checks
/// its own specifics (kind, mode, ...) on what is returned.
pub fn check_link(req: &Request, plugin: &str) -> Result<CheckedLink> {
    let found = find_container_iface(req, plugin)?;
    if let Some(p) = found.ipam {
        p.wait()?;
    }
    Ok(found.link)
}

/// [`check_link`] for a plugin whose link kind is its name (`macvlan`,
/// `ipvlan`, `vlan`): the container interface must also be of that kind.
pub fn check_link_of_kind(req: &Request, kind: &str) -> Result<CheckedLink> {
    let c = check_link(req, kind)?;
    if c.container.kind.as_deref() != Some(kind) {
        return Err(Error::plugin(format!(
            "container interface {} is {}, not {kind}",
            req.ifname,
            c.container.kind.as_deref().map_or_else(
                || "a device without a kind".to_string(),
                |k| format!("of kind {k}")
            )
        )));
    }
    Ok(c)
}

struct Found {
    link: CheckedLink,
    /// IPAM CHECK, still running.
    ipam: Option<cni::delegate::Pending>,
}

fn find_container_iface(req: &Request, plugin: &str) -> Result<Found> {
    let prev = req
        .net
        .prev_result()?
        .ok_or_else(|| Error::config(format!("{plugin}: required prevResult missing")))?;
    let ipam = match req.net.ipam_type() {
        Some(_) => Some(ipam_spawn(req, Command::Check)?),
        None => None,
    };
    let ns = Netns::open(netns_path(req)?)?;
    let sandbox = ns.path().display().to_string();
    let index = prev
        .interfaces
        .iter()
        .position(|i| i.name == req.ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            Error::plugin(format!(
                "prevResult has no interface {} in sandbox {sandbox}",
                req.ifname
            ))
        })?;
    let mut cnl = Netlink::open_in(&ns)?;
    let container = container::check_iface(&mut cnl, &req.ifname, &prev, index)?;
    Ok(Found {
        link: CheckedLink {
            prev,
            index,
            container,
            ns,
            cnl,
        },
        ipam,
    })
}

/// GC of an attachment with nothing on the host to collect: forwarded to
/// IPAM, which drops reservations not in `cni.dev/valid-attachments`.
pub fn gc_ipam(req: &Request) -> Result<()> {
    match req.net.ipam_type() {
        Some(_) => ipam_exec(req, Command::Gc),
        None => Ok(()),
    }
}

/// GC of a veth attachment's network: masquerade rules of attachments not
/// in `cni.dev/valid-attachments` (`backend` is the configured one, whose
/// tool must run), `extra` (plugin-specific), then GC forwarded to IPAM.
/// Without a list nothing is known to be stale, so no rule goes (IPAM
/// gets the same request and decides the same). Keeps going on errors and
/// reports them all.
pub fn gc(req: &Request, backend: Backend, extra: impl FnOnce(&mut Errors)) -> Result<()> {
    let keep: Option<Vec<(String, String)>> = req.valid_attachments()?.map(|list| {
        list.into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect()
    });
    let mut errors = Errors::default();
    let ipam = if req.net.ipam_type().is_some() {
        errors.note(ipam_spawn(req, Command::Gc))
    } else {
        None
    };
    if let Some(keep) = &keep {
        errors.note(ipmasq::gc(backend, &req.net.name, keep));
    }
    extra(&mut errors);
    if let Some(p) = ipam {
        errors.note(p.wait());
    }
    errors.into_result()
}

/// STATUS: forwarded to IPAM; ready when IPAM is (or there is none).
pub fn status(req: &Request) -> Result<()> {
    match req.net.ipam_type() {
        Some(_) => ipam_exec(req, Command::Status),
        None => Ok(()),
    }
}

/// Undo of a link this ADD made inside the container: delete it again
/// (by index, so a rename since does not matter).
pub fn undo_link_in(undo: &mut cni::rollback::Rollback, ns: &Netns, index: u32, what: String) {
    let path = ns.path().to_path_buf();
    undo.push(what, move || {
        let Some(ns) = Netns::open_if_present(&path).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let mut nl = Netlink::open_in(&ns).map_err(|e| e.to_string())?;
        match nl.del_link(index) {
            Err(e) if !e.is_not_found() => Err(e.to_string()),
            _ => Ok(()),
        }
    });
}

/// The rest of an ADD whose one link, `CNI_IFNAME`, is now in the
/// container (macvlan, tap, host-device): IPAM's addresses and routes on
/// it (IPAM's release now owned by `undo`), or with no IPAM just set up;
/// the result names the interface (index 0) with its sandbox. The
/// config's `dns`, when set, replaces IPAM's.
pub fn finish_link_add(
    req: &Request,
    ns: &Netns,
    cnl: &mut Netlink,
    ipam: Option<cni::delegate::IpamAdd>,
    undo: &mut cni::rollback::Rollback,
) -> Result<CniResult> {
    let link = cnl.link_by_name(&req.ifname)?;
    let mut result = CniResult {
        interfaces: vec![Interface {
            name: req.ifname.clone(),
            mac: link.mac_string(),
            sandbox: Some(ns.path().display().to_string()),
            ..Default::default()
        }],
        ..Default::default()
    };
    match ipam {
        Some(ipam) => {
            let r = ipam.finish(undo)?;
            if r.ips.is_empty() {
                return Err(Error::plugin("IPAM plugin returned missing IP config"));
            }
            result.ips = r.ips;
            result.routes = r.routes;
            result.dns = r.dns;
            for ip in &mut result.ips {
                ip.interface = Some(0);
            }
            crate::iface::configure(ns, cnl, &req.ifname, &result)?;
        }
        None => cnl.set_up(link.index)?,
    }
    if let Some(dns) = req.net.dns_override() {
        result.dns = dns.clone();
    }
    Ok(result)
}
