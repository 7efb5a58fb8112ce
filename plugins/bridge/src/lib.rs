//! The bridge plugin: a veth pair per container, the host end enslaved to a
//! Linux bridge on the host, addresses from IPAM on the container end.
//!
//! ADD: ensure the bridge, create the veth pair straight into the container,
//! enslave and configure the host port, run IPAM, configure the container
//! interface, give the bridge the gateway address, enable forwarding, add
//! masquerade and MAC spoof-check rules. Any failure undoes what was done,
//! down to the bridge when this ADD created it (the reference leaves it).
//! With `vlan`/`vlanTrunk` the bridge filters VLANs and the host port gets
//! its access VLAN and trunk; a VLAN's gateway address goes on a port of
//! its own, `<bridge>.<vlan>` (see `vlan.rs`).
//! DEL: IPAM release, container link, rules; each step tolerates absence.
//! CHECK, GC and STATUS as the spec asks, forwarding to IPAM.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, Interface, NetConf, Plugin, Request, Result, Route};
use cni_kernel::link::{parse_mac, BridgePortSpec, BridgeSpec, Link};
use cni_kernel::{sysctl, Family, Netlink, Netns};
use cni_support::container::PairSpec;
use cni_support::ipmasq::Backend;
use cni_support::{attachment, container, iface, spoofcheck};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;
use vlan::TrunkEntry;

mod vlan;

pub struct Bridge;

/// The bridge when the config names none.
const DEFAULT_BRIDGE: &str = "cni0";

/// How long to wait for the new port to be operationally up.
const PORT_UP_TIMEOUT: Duration = Duration::from_millis(2500);

/// CNI_ARGS keys this plugin (or its IPAM) understands.
const KNOWN_ARGS: &[&str] = &["MAC", "IP", "GATEWAY"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(flatten)]
    net: NetConf,
    #[serde(default)]
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    /// `0` is "not set", as for the reference.
    #[serde(default, deserialize_with = "cni::types::zero_is_unset")]
    mtu: Option<u32>,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    /// `0` (or null) is "no access VLAN".
    #[serde(default)]
    vlan: Option<i64>,
    /// Present (even empty) turns VLAN filtering on, as for the reference.
    #[serde(default)]
    vlan_trunk: Option<Vec<TrunkEntry>>,
    /// The newest reference's default: false, the bridge's default VLAN is
    /// removed from a port that has `vlan` or `vlanTrunk`.
    #[serde(default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    macspoofchk: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let mut c: Conf = req.parse_config()?;
        c.validate()?;
        if c.is_default_gateway {
            c.is_gateway = true;
        }
        Ok(c)
    }

    /// The config for DEL and GC: decoded but not judged. The runtime
    /// still calls DEL after an ADD this plugin refused (and retries it
    /// until it succeeds), and teardown uses none of the keys `validate`
    /// checks, so a refused config must not make DEL fail too.
    fn load_for_teardown(req: &Request) -> Result<Conf> {
        req.parse_config()
    }

    fn validate(&self) -> Result<()> {
        self.vlans()?;
        if self.hairpin_mode && self.promisc_mode {
            return Err(Error::config(
                "cannot set hairpinMode and promiscMode at the same time",
            ));
        }
        if self.disable_container_interface && self.net.ipam_type().is_some() {
            return Err(Error::config(
                "disableContainerInterface cannot be used with ipam: an interface left down cannot use addresses",
            ));
        }
        if let Some(m) = self.mtu {
            cni::validate::mtu(m)?;
        }
        Backend::parse(self.ip_masq_backend.as_deref()).map_err(Error::config)?;
        if let Some(name) = &self.bridge {
            cni::validate::interface_name(name)
                .map_err(|e| Error::config(format!("bridge: {}: {}", e.msg, e.details)))?;
        }
        Ok(())
    }

    fn bridge_name(&self) -> &str {
        self.bridge.as_deref().unwrap_or(DEFAULT_BRIDGE)
    }

    fn backend(&self) -> Backend {
        Backend::parse(self.ip_masq_backend.as_deref()).unwrap_or(Backend::Nftables)
    }

    /// The port's VLAN settings, checked (code 7 naming the key).
    fn vlans(&self) -> Result<vlan::PortVlans> {
        vlan::PortVlans::from_conf(
            self.vlan.unwrap_or(0),
            self.vlan_trunk.as_deref(),
            self.preserve_default_vlan.unwrap_or(false),
        )
    }
}

/// Find or create the bridge and bring it up. A bridge this call creates
/// is removed again if the ADD fails (see [`remove_bridge_if_unused`]); one
/// that was already there is never touched by the rollback.
fn ensure_bridge(
    nl: &mut Netlink,
    conf: &Conf,
    vlans: &vlan::PortVlans,
    undo: &mut Rollback,
) -> Result<Link> {
    let name = conf.bridge_name();
    let existing = match nl.link_by_name(name) {
        Ok(l) => Some(l),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let br = match existing {
        Some(l) if l.kind.as_deref() != Some("bridge") => {
            return Err(Error::plugin(format!(
                "{name:?} already exists but is not a bridge (it is a {})",
                l.kind.as_deref().unwrap_or("device without a kind")
            )))
        }
        Some(l) => l,
        None => {
            let created = match nl.create_bridge(&BridgeSpec {
                name: name.to_string(),
                mtu: conf.mtu,
                // Set in the creating NEWLINK, as the reference does.
                vlan_filtering: vlans.filtering.then_some(true),
            }) {
                Ok(()) => true,
                // Another ADD may have created it a moment ago.
                Err(e) if e.is(libc::EEXIST) => false,
                Err(e) if e.is(libc::EOPNOTSUPP) && vlans.filtering => {
                    return Err(Error::plugin(format!(
                        "vlan: this kernel has no bridge VLAN filtering ({e})"
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            let l = nl.link_by_name(name)?;
            if created {
                // Pushed before anything else of this ADD touches the
                // bridge: the undo steps run newest first, so our own port
                // is gone by the time this one looks.
                let (index, name) = (l.index, name.to_string());
                undo.push(
                    format!("delete bridge {name} made by this ADD"),
                    move || remove_bridge_if_unused(index, &name).map_err(|e| e.to_string()),
                );
            }
            // A bridge should not autoconfigure from router adverts on the
            // container network.
            let key = format!("net/ipv6/conf/{name}/accept_ra");
            if sysctl::read(&key).is_ok() {
                sysctl::ensure(&key, "0")?;
            }
            l
        }
    };
    if vlans.needs_filtering() && br.vlan_filtering() != Some(true) {
        // A bridge made without filtering (by hand, or by a config without
        // VLANs): the reference leaves it so, and its VLAN settings then
        // isolate nothing. Turn it on; ports without VLAN settings stay in
        // the default VLAN and keep talking to each other.
        log::info!("turning vlan_filtering on for existing bridge {name}");
        nl.set_vlan_filtering(br.index, true)?;
    }
    if conf.promisc_mode && !br.is_promisc() {
        nl.set_promisc(br.index, true)?;
    }
    if !br.is_up() {
        nl.set_up(br.index)?;
    }
    Ok(br)
}

/// Undo of a bridge this ADD created: delete it, unless another ADD has
/// put a port on it meanwhile (it is then that ADD's bridge too) or it is
/// no longer the link we made. An ADD that enslaves its port in the
/// instant between the look and the delete fails with ENODEV and is
/// retried by the runtime, as for any failed ADD.
fn remove_bridge_if_unused(index: u32, name: &str) -> cni_kernel::Result<()> {
    let mut nl = Netlink::open()?;
    let br = match nl.link_by_index(index) {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if br.name != name || br.kind.as_deref() != Some("bridge") {
        return Ok(());
    }
    if nl.links()?.iter().any(|l| l.master == Some(index)) {
        log::info!("rollback: bridge {name} has ports of other containers, keeping it");
        return Ok(());
    }
    match nl.del_link(index) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// The gateway of an address: the one IPAM gave, or with `isGateway` the
/// subnet's first address.
fn gateway_for(addr: &IpNet, given: Option<IpAddr>) -> Option<IpAddr> {
    // The subnet's first address after the network address, as the
    // reference computes it; none when that would leave the subnet.
    given.or_else(|| {
        let first = match addr.network() {
            IpAddr::V4(n) => IpAddr::V4(u32::from(n).checked_add(1)?.into()),
            IpAddr::V6(n) => IpAddr::V6(u128::from(n).checked_add(1)?.into()),
        };
        addr.contains(&first).then_some(first)
    })
}

/// Put `gw` (with its subnet's prefix) on the bridge, as the reference does:
/// an equal address is fine; a different IPv4 address, or an overlapping
/// IPv6 one, is replaced with `forceAddress` and an error without.
fn ensure_bridge_addr(nl: &mut Netlink, br: &Link, gw: IpNet, force: bool) -> Result<()> {
    let family = Family::of(&gw.addr());
    for a in nl.addrs(Some(br.index), Some(family))? {
        if a.net == gw {
            return Ok(());
        }
        if matches!(a.net.addr(), IpAddr::V6(v6) if v6.is_unicast_link_local()) {
            continue;
        }
        let overlaps =
            family == Family::V4 || a.net.contains(&gw.addr()) || gw.contains(&a.net.addr());
        if overlaps {
            if force {
                nl.del_addr(br.index, &a.net)?;
            } else {
                return Err(Error::plugin(format!(
                    "{:?} already has an IP address different from {gw}",
                    br.name
                )));
            }
        }
    }
    // Two first ADDs on a fresh bridge race to put the gateway there.
    nl.ensure_addr(br.index, &gw)?;
    // Pin the bridge's MAC; otherwise it follows the lowest port MAC and
    // changes as containers come and go. Read it afresh: a bridge whose
    // last port went away has the all-zero MAC until a port joins again
    // (the kernel's br_stp_recalculate_bridge_id), and the kernel refuses
    // to set that one (EADDRNOTAVAIL). By now our port has joined.
    let mac = nl.link_by_index(br.index)?.mac;
    if let Some(mac) = mac.filter(|m| m.iter().any(|b| *b != 0)) {
        nl.set_mac(br.index, &mac)?;
    }
    Ok(())
}

impl Plugin for Bridge {
    fn name(&self) -> &str {
        "bridge"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let mac = match req.requested_mac(KNOWN_ARGS)? {
            Some(m) => Some(parse_mac(&m).ok_or_else(|| {
                Error::config(format!(
                    "mac: {m:?} is not a MAC address like 0a:58:0a:01:00:02"
                ))
            })?),
            None => None,
        };
        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut host = Netlink::open()?;
        let mut cnl = Netlink::open_in(&ns)?;
        let mut undo = Rollback::new();
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;
        // IPAM runs in its own process while we build the port.
        let ipam = IpamAdd::start(req)?;
        log::debug!("ADD: IPAM started");
        cni::fault::point("bridge:ipam-started");

        // Host side: the bridge and a port for this container.
        let vlans = conf.vlans()?;
        let br = ensure_bridge(&mut host, &conf, &vlans, &mut undo)?;
        // The host end is created enslaved to the bridge, and down: it
        // comes up right after the container end (below), so neither end
        // is ever up without a carrier while this ADD asks the kernel
        // about it. (A link that is up without a carrier makes the
        // kernel's next GETLINK of it deactivate its queues, an expedited
        // RCU grace period under RTNL: about a millisecond each time.)
        let pair = PairSpec {
            ifname: &req.ifname,
            mtu: conf.mtu,
            mac,
            master: Some(br.index),
            host_up: false,
        };
        let (host_if, cont_if) =
            container::create_veth_pair(&mut host, &ns, &mut cnl, pair, &mut undo)?;
        // The container end is still down: no frame has crossed the port
        // in the default VLAN before it gets its own.
        vlans.configure_port(&mut host, &host_if)?;
        log::debug!("ADD: bridge and veth pair ready");
        cni::fault::point("bridge:veth-created");

        let ifname = req.ifname.clone();
        let enable_dad = conf.enable_dad;
        ns.run(move || -> cni_kernel::Result<()> {
            // Without DAD the addresses are usable at once; arp_notify makes
            // the container announce itself when its link comes up.
            if !enable_dad {
                sysctl::disable_dad(&ifname)?;
            }
            sysctl::write(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")
        })??;

        if conf.hairpin_mode || conf.port_isolation {
            host.set_bridge_port(
                host_if.index,
                &BridgePortSpec {
                    hairpin: conf.hairpin_mode.then_some(true),
                    isolated: conf.port_isolation.then_some(true),
                },
            )?;
        }
        if !conf.disable_container_interface {
            cnl.set_up(cont_if.index)?;
        }
        host.set_up(host_if.index)?;
        if !conf.disable_container_interface {
            host.wait_oper_up(host_if.index, PORT_UP_TIMEOUT)
                .map_err(|e| Error::plugin(format!("bridge port in error state: {e}")))?;
        }
        log::debug!("ADD: port up");
        cni::fault::point("bridge:port-up");

        let mut result = CniResult {
            interfaces: vec![Interface {
                name: br.name.clone(),
                mac: br.mac_string(),
                ..Default::default()
            }],
            ..Default::default()
        };
        result
            .interfaces
            .extend(attachment::veth_interfaces(&host_if, &cont_if, &ns));

        if let Some(ipam) = ipam {
            let ipam = ipam.finish(&mut undo)?;
            log::debug!("ADD: IPAM result in");
            cni::fault::point("bridge:ipam-done");
            if ipam.ips.is_empty() {
                return Err(Error::plugin("IPAM plugin returned missing IP config"));
            }
            result.ips = ipam.ips;
            result.routes = ipam.routes;
            result.dns = ipam.dns;
            for ip in &mut result.ips {
                ip.interface = Some(2);
                if conf.is_gateway {
                    ip.gateway = gateway_for(&ip.address, ip.gateway);
                }
            }
            if conf.is_default_gateway {
                add_default_routes(&mut result);
            }
            iface::configure(&ns, &mut cnl, &req.ifname, &result)?;
            log::debug!("ADD: container interface configured");
            cni::fault::point("bridge:addresses-set");

            if conf.is_gateway {
                // With an access VLAN the gateway lives on that VLAN's own
                // port, `<bridge>.<vlan>`, as the reference does: the
                // bridge itself is in the default VLAN only.
                let mut gw_link: Option<Link> = None;
                for ip in &result.ips {
                    if let Some(gw) = ip.gateway {
                        let net = IpNet::new(gw, ip.address.prefix_len())
                            .map_err(|e| Error::plugin(format!("gateway {gw}: {e}")))?;
                        let on = match (vlans.access, &gw_link) {
                            (None, _) => br.clone(),
                            (Some(_), Some(l)) => l.clone(),
                            (Some(id), None) => {
                                let l = vlans
                                    .ensure_gateway_port(&mut host, &br, id, &host_if, &mut undo)?;
                                result.interfaces.push(Interface {
                                    name: l.name.clone(),
                                    mac: l.mac_string(),
                                    ..Default::default()
                                });
                                gw_link.insert(l).clone()
                            }
                        };
                        ensure_bridge_addr(&mut host, &on, net, conf.force_address)?;
                    }
                }
            }
            sysctl::enable_forwarding(result.ips.iter().map(|ip| ip.address.addr()))?;
            log::debug!("ADD: gateway and forwarding set");
            cni::fault::point("bridge:gateway-set");
            if conf.ip_masq {
                let nets = result.ips.iter().map(|ip| ip.address).collect();
                attachment::masquerade(req, conf.backend(), nets, &mut undo)?;
                cni::fault::point("bridge:masquerade-added");
            }
        }

        if conf.macspoofchk {
            let mac = cont_if.mac_string().unwrap_or_default();
            let id = spoofcheck::ref_id(&req.container_id, &req.ifname);
            spoofcheck::setup(&host_if.name, &mac, &id)?;
            undo.push("remove MAC spoof check", move || {
                spoofcheck::teardown(&id).map_err(|e| e.to_string())
            });
            cni::fault::point("bridge:spoofcheck-added");
        }

        // The bridge's MAC may have changed with the gateway address.
        result.interfaces[0].mac = host.link_by_index(br.index)?.mac_string();
        if let Some(dns) = conf.net.dns_override() {
            result.dns = dns.clone();
        }
        cni::fault::point("bridge:done");
        undo.commit();
        log::debug!("ADD: done");
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load_for_teardown(req)?;
        attachment::del(req, conf.ip_masq.then(|| conf.backend()), |errors| {
            if conf.macspoofchk {
                let id = spoofcheck::ref_id(&req.container_id, &req.ifname);
                errors.note(spoofcheck::teardown(&id));
            }
        })
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let masq = conf.ip_masq.then(|| conf.backend());
        let mut c = attachment::check(req, "bridge", masq)?;
        let br = c
            .host
            .link_by_name(conf.bridge_name())
            .map_err(|e| Error::plugin(format!("bridge {} is missing: {e}", conf.bridge_name())))?;
        if br.kind.as_deref() != Some("bridge") {
            return Err(Error::plugin(format!("{} is not a bridge", br.name)));
        }
        let host_if = &c.host_peer;
        if host_if.master != Some(br.index) {
            return Err(Error::plugin(format!(
                "host veth {} is not attached to bridge {}",
                host_if.name, br.name
            )));
        }
        if !c
            .prev
            .interfaces
            .iter()
            .any(|i| i.name == host_if.name && i.sandbox.is_none())
        {
            return Err(Error::plugin(format!(
                "host veth {} is not the one in prevResult",
                host_if.name
            )));
        }
        conf.vlans()?.check_port(&mut c.host, &br, host_if)?;
        if conf.macspoofchk
            && !spoofcheck::check(&spoofcheck::ref_id(&req.container_id, &req.ifname))?
        {
            return Err(Error::plugin(format!(
                "MAC spoof-check rules for {} are missing",
                host_if.name
            )));
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::load_for_teardown(req)?;
        attachment::gc(req, conf.backend(), |errors| {
            if conf.macspoofchk {
                gc_spoofchecks(errors);
            }
        })
    }

    fn status(&self, req: &Request) -> Result<()> {
        Conf::load(req)?;
        attachment::status(req)
    }
}

/// Spoof checks carry no network name, so GC removes only those whose host
/// port no longer exists: those can belong to no live attachment.
fn gc_spoofchecks(errors: &mut attachment::Errors) {
    let Some(mut nl) = errors.note(Netlink::open()) else {
        return;
    };
    let Some(links) = errors.note(nl.links()) else {
        return;
    };
    let ports: Vec<String> = links.into_iter().map(|l| l.name).collect();
    let listed = match spoofcheck::list_ports() {
        Err(e) if e.is_no_tool() => return,
        other => errors.note(other).unwrap_or_default(),
    };
    for (id, port) in listed {
        if !ports.contains(&port) {
            errors.note(spoofcheck::teardown(&id));
        }
    }
}

/// `isDefaultGateway`: a default route via the gateway for each family that
/// has one, unless IPAM already gave a default route for that family.
fn add_default_routes(result: &mut CniResult) {
    for v4 in [true, false] {
        let has_default = result
            .routes
            .iter()
            .any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() == v4);
        if has_default {
            continue;
        }
        let gw = result
            .ips
            .iter()
            .find(|ip| ip.address.addr().is_ipv4() == v4)
            .and_then(|ip| ip.gateway);
        if let Some(gw) = gw {
            let dst: IpNet = if v4 {
                IpNet::V4(ipnet::Ipv4Net::default())
            } else {
                IpNet::V6(ipnet::Ipv6Net::default())
            };
            result.routes.push(Route::new(dst, Some(gw)));
        }
    }
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    Conf::load(req)?;
    Conf::load_for_teardown(req)?;
    if let Some(m) = req.requested_mac(KNOWN_ARGS)? {
        parse_mac(&m).ok_or_else(|| Error::config(format!("mac: {m:?}")))?;
    }
    Ok(())
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
    fn vlan_keys_are_accepted_and_checked() {
        let c =
            conf(r#"{"name":"n","vlan":0,"vlanTrunk":[],"preserveDefaultVlan":false}"#).unwrap();
        let v = c.vlans().unwrap();
        assert!(v.filtering, "an empty trunk still asks for filtering");
        assert!(!v.needs_filtering());
        let c = conf(r#"{"name":"n","vlan":100,"vlanTrunk":[{"id":5},{"minID":7,"maxID":9}]}"#)
            .unwrap();
        let v = c.vlans().unwrap();
        assert_eq!(v.access, Some(100));
        assert_eq!(v.trunk, vec![5, 7, 8, 9]);
        assert!(!v.preserve_default);
        assert!(
            !conf(r#"{"name":"n","vlan":null}"#)
                .unwrap()
                .vlans()
                .unwrap()
                .filtering
        );
        for (bad, key) in [
            (r#""vlan": 4095"#, "vlan:"),
            (r#""vlan": -1"#, "vlan:"),
            (r#""vlanTrunk": [{"id": 0}]"#, "vlanTrunk:"),
            (r#""vlanTrunk": [{"minID": 5}]"#, "vlanTrunk:"),
        ] {
            let e = conf(&format!(r#"{{"name":"n",{bad}}}"#)).unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.starts_with(key), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn conflicting_keys_are_code_7() {
        let e = conf(r#"{"name":"n","hairpinMode":true,"promiscMode":true}"#).unwrap_err();
        assert_eq!(e.code, 7);
        let e =
            conf(r#"{"name":"n","disableContainerInterface":true,"ipam":{"type":"host-local"}}"#)
                .unwrap_err();
        assert_eq!(e.code, 7);
        let e = conf(r#"{"name":"n","ipMasqBackend":"pf"}"#).unwrap_err();
        assert_eq!(e.code, 7);
        let e = conf(r#"{"name":"n","bridge":"a-name-that-is-too-long"}"#).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("bridge:"));
    }

    #[test]
    fn defaults() {
        let c = conf(r#"{"name":"n"}"#).unwrap();
        assert_eq!(c.bridge_name(), "cni0");
        assert_eq!(c.backend(), Backend::Nftables);
        assert!(!c.enable_dad);
        let c = conf(r#"{"name":"n","enabledad":true,"bridge":"br9"}"#).unwrap();
        assert!(c.enable_dad);
        assert_eq!(c.bridge_name(), "br9");
        assert_eq!(conf(r#"{"name":"n","mtu":0}"#).unwrap().mtu, None);
        assert_eq!(conf(r#"{"name":"n","mtu":9000}"#).unwrap().mtu, Some(9000));
    }

    #[test]
    fn gateway_defaults_to_first_address() {
        let a: IpNet = "10.1.2.7/24".parse().unwrap();
        assert_eq!(gateway_for(&a, None), Some("10.1.2.1".parse().unwrap()));
        let a: IpNet = "fd00:1::9/64".parse().unwrap();
        assert_eq!(gateway_for(&a, None), Some("fd00:1::1".parse().unwrap()));
        let host: IpNet = "255.255.255.255/32".parse().unwrap();
        assert_eq!(gateway_for(&host, None), None);
        assert_eq!(
            gateway_for(&a, Some("fd00:1::fe".parse().unwrap())),
            Some("fd00:1::fe".parse().unwrap())
        );
    }

    #[test]
    fn default_routes_only_where_missing() {
        let mut r = CniResult {
            ips: vec![
                cni::IpConfig {
                    interface: Some(2),
                    address: "10.1.0.2/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                cni::IpConfig {
                    interface: Some(2),
                    address: "fd00::2/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                },
            ],
            routes: vec![Route::new(
                "::/0".parse().unwrap(),
                Some("fd00::fe".parse().unwrap()),
            )],
            ..Default::default()
        };
        add_default_routes(&mut r);
        assert_eq!(r.routes.len(), 2);
        assert_eq!(r.routes[1].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.routes[1].gw, Some("10.1.0.1".parse().unwrap()));
    }
}
