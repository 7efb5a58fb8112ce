//! The ptp plugin: a point-to-point veth pair per container, routed through
//! the host rather than bridged.
//!
//! ADD: run IPAM, enable forwarding, create the veth pair straight into the
//! container, configure the container end so that everything goes via the
//! gateway (a link-scope route to the gateway, the subnet via the gateway),
//! put the gateway address on the host end as a /32 (/128) with a host route
//! to each container address, add masquerade rules. Any failure undoes what
//! was done. DEL, CHECK, GC and STATUS as for bridge.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, NetConf, Plugin, Request, Result};
use cni_kernel::route::{Route as KRoute, Scope};
use cni_kernel::{sysctl, Family, Netlink, Netns};
use cni_support::container::PairSpec;
use cni_support::ipmasq::Backend;
use cni_support::{attachment, container, iface};
use ipnet::IpNet;
use serde::Deserialize;

pub struct Ptp;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(flatten)]
    net: NetConf,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    /// `0` is "not set", as for the reference.
    #[serde(default, deserialize_with = "cni::types::zero_is_unset")]
    mtu: Option<u32>,
}

impl Conf {
    fn load(req: &Request) -> Result<Conf> {
        let c: Conf = req.parse_config()?;
        c.validate()?;
        Ok(c)
    }

    /// The config for DEL and GC: decoded but not judged. The runtime
    /// still calls DEL after an ADD this plugin refused (and retries it
    /// until it succeeds), so a refused config must not make DEL fail too.
    fn load_for_teardown(req: &Request) -> Result<Conf> {
        req.parse_config()
    }

    fn validate(&self) -> Result<()> {
        if self.net.ipam_type().is_none() {
            return Err(Error::config(
                "ipam: ptp needs an IPAM plugin (\"ipam\": {\"type\": ...})",
            ));
        }
        if let Some(m) = self.mtu {
            cni::validate::mtu(m)?;
        }
        Backend::parse(self.ip_masq_backend.as_deref()).map_err(Error::config)?;
        Ok(())
    }

    fn backend(&self) -> Backend {
        Backend::parse(self.ip_masq_backend.as_deref()).unwrap_or(Backend::Nftables)
    }
}

/// A host-length prefix for `ip`: /32 or /128.
fn host_net(ip: std::net::IpAddr) -> IpNet {
    IpNet::from(ip)
}

impl Plugin for Ptp {
    fn name(&self) -> &str {
        "ptp"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf = Conf::load(req)?;
        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut host = Netlink::open()?;
        let mut cnl = Netlink::open_in(&ns)?;
        let mut undo = Rollback::new();
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;
        // IPAM runs in its own process while we build the link.
        let ipam =
            IpamAdd::start(req)?.ok_or_else(|| Error::config("ipam: ptp needs an IPAM plugin"))?;
        cni::fault::point("ptp:ipam-started");

        // The host end comes up only after DAD is off on it (below).
        let pair = PairSpec {
            ifname: &req.ifname,
            mtu: conf.mtu,
            mac: None,
            master: None,
            host_up: false,
        };
        let (host_if, cont_if) =
            container::create_veth_pair(&mut host, &ns, &mut cnl, pair, &mut undo)?;
        cni::fault::point("ptp:veth-created");
        // A point-to-point link has exactly two ends, both ours: duplicate
        // address detection can find nothing and would only hold IPv6
        // addresses back for a second or more, so switch it off on both.
        // Both ends must be up for the container's link to carry packets.
        let ifname = req.ifname.clone();
        ns.run(move || sysctl::disable_dad(&ifname))??;
        sysctl::disable_dad(&host_if.name)?;
        host.set_up(host_if.index)?;

        let ipam = ipam.finish(&mut undo)?;
        cni::fault::point("ptp:ipam-done");
        if ipam.ips.is_empty() {
            return Err(Error::plugin("IPAM plugin returned missing IP config"));
        }
        if let Some(ip) = ipam.ips.iter().find(|ip| ip.gateway.is_none()) {
            return Err(Error::plugin(format!(
                "IPAM gave {} no gateway; ptp routes everything via the gateway",
                ip.address
            )));
        }
        sysctl::enable_forwarding(ipam.ips.iter().map(|ip| ip.address.addr()))?;
        let mut result = CniResult {
            interfaces: attachment::veth_interfaces(&host_if, &cont_if, &ns).to_vec(),
            ips: ipam.ips,
            routes: ipam.routes,
            dns: ipam.dns,
        };
        for ip in &mut result.ips {
            ip.interface = Some(1);
        }

        // Container side: addresses and IPAM's routes, then replace the
        // kernel's on-link subnet route by "gateway on the link, subnet via
        // the gateway", so every packet goes through the host.
        iface::configure(&ns, &mut cnl, &req.ifname, &result)?;
        for ip in &result.ips {
            let Some(gw) = ip.gateway else { continue };
            let subnet = ip.address.trunc();
            match cnl.del_route(&KRoute::new(subnet).dev(cont_if.index)) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            let mut to_gw = KRoute::new(host_net(gw))
                .dev(cont_if.index)
                .scope(Scope::Link);
            to_gw.src = Some(ip.address.addr());
            cnl.ensure_route(&to_gw)?;
            let mut via_gw = KRoute::new(subnet).dev(cont_if.index).via(gw);
            via_gw.src = Some(ip.address.addr());
            cnl.ensure_route(&via_gw)?;
        }

        cni::fault::point("ptp:addresses-set");
        // Host side: the gateway addresses on our end, and a route to each
        // container address through it.
        for ip in &result.ips {
            if let Some(gw) = ip.gateway {
                host.ensure_addr(host_if.index, &host_net(gw))?;
            }
            let route = KRoute::new(host_net(ip.address.addr()))
                .dev(host_if.index)
                .scope(Scope::Link);
            host.ensure_route(&route)?;
        }

        cni::fault::point("ptp:host-routes-set");
        if conf.ip_masq {
            let nets = result.ips.iter().map(|ip| ip.address).collect();
            attachment::masquerade(req, conf.backend(), nets, &mut undo)?;
            cni::fault::point("ptp:masquerade-added");
        }
        if let Some(dns) = conf.net.dns_override() {
            result.dns = dns.clone();
        }
        cni::fault::point("ptp:done");
        undo.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // Without IPAM, ADD refused the config: nothing was reserved, and
        // attachment::del forwards DEL only where there is an IPAM plugin.
        let conf = Conf::load_for_teardown(req)?;
        attachment::del(req, conf.ip_masq.then(|| conf.backend()), |_| {})
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(req)?;
        let masq = conf.ip_masq.then(|| conf.backend());
        let mut c = attachment::check(req, "ptp", masq)?;
        let host_if = &c.host_peer;
        let host_addrs = c.host.addrs(Some(host_if.index), None)?;
        for ip in c.prev.ips.iter().filter(|ip| ip.interface == Some(c.index)) {
            if let Some(gw) = ip.gateway {
                if !host_addrs.iter().any(|a| a.net == host_net(gw)) {
                    return Err(Error::plugin(format!(
                        "host veth {} is missing gateway address {gw}",
                        host_if.name
                    )));
                }
            }
            let family = Family::of(&ip.address.addr());
            let want = host_net(ip.address.addr());
            if !c
                .host
                .routes(family)?
                .iter()
                .any(|r| r.dst == want && r.oif == Some(host_if.index))
            {
                return Err(Error::plugin(format!(
                    "host route to {} via {} is missing",
                    ip.address.addr(),
                    host_if.name
                )));
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::load_for_teardown(req)?;
        attachment::gc(req, conf.backend(), |_| {})
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
    Conf::load(req)?.backend();
    Conf::load_for_teardown(req)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_is_required() {
        let c: Conf = cni::types::parse_config(br#"{"name":"n"}"#).unwrap();
        assert_eq!(c.validate().unwrap_err().code, 7);
        let c: Conf = cni::types::parse_config(
            br#"{"name":"n","ipam":{"type":"host-local"},"ipMasqBackend":"x"}"#,
        )
        .unwrap();
        assert_eq!(c.validate().unwrap_err().code, 7);
        let c: Conf =
            cni::types::parse_config(br#"{"name":"n","ipam":{"type":"host-local"},"mtu":1400}"#)
                .unwrap();
        c.validate().unwrap();
        assert_eq!(c.mtu, Some(1400));
        let c: Conf =
            cni::types::parse_config(br#"{"name":"n","ipam":{"type":"host-local"},"mtu":0}"#)
                .unwrap();
        assert_eq!(c.mtu, None, "0 is unset");
    }

    #[test]
    fn host_nets() {
        assert_eq!(
            host_net("10.1.0.1".parse().unwrap()).to_string(),
            "10.1.0.1/32"
        );
        assert_eq!(
            host_net("fd00::1".parse().unwrap()).to_string(),
            "fd00::1/128"
        );
    }
}
