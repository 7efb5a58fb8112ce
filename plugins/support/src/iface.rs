//! Applying an IPAM result to an interface inside a container: addresses,
//! link up, IPv6 settling, routes. What every interface plugin (bridge, ptp,
//! macvlan, ...) does after IPAM, written once.

use cni::CniResult;
use cni_kernel::addr::Family;
use cni_kernel::error::Error;
use cni_kernel::netlink::Netlink;
use cni_kernel::netns::Netns;
use cni_kernel::route::Route;
use cni_kernel::sysctl;
use netlink_packet_route::route::RouteScope;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long to wait for IPv6 duplicate address detection to finish.
const DAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Put `result`'s addresses for `ifname` on it, set it up, wait for IPv6
/// addresses to leave the tentative state, and add `result`'s routes (a
/// route without a gateway goes via the gateway of the first address of its
/// family, as the reference does). `nl` is a socket inside `ns`.
pub fn configure(
    ns: &Netns,
    nl: &mut Netlink,
    ifname: &str,
    result: &CniResult,
) -> cni::Result<()> {
    let link = nl.link_by_name(ifname)?;
    let mut v4gw: Option<IpAddr> = None;
    let mut v6gw: Option<IpAddr> = None;
    let mut addrs = Vec::new();
    for ip in &result.ips {
        let Some(i) = ip.interface else { continue };
        if result.interfaces.get(i).map(|x| x.name.as_str()) != Some(ifname) {
            return Err(cni::Error::plugin(format!(
                "failed to add IP addr {} to {ifname:?}: invalid interface index {i}",
                ip.address
            )));
        }
        addrs.push(ip.address);
        match ip.gateway {
            Some(gw @ IpAddr::V4(_)) if v4gw.is_none() => v4gw = Some(gw),
            Some(gw @ IpAddr::V6(_)) if v6gw.is_none() => v6gw = Some(gw),
            _ => {}
        }
    }
    let has_v6 = addrs.iter().any(|a| a.addr().is_ipv6());
    if has_v6 {
        enable_ipv6(ns, ifname)?;
        log::debug!("configure {ifname}: IPv6 enabled");
    }
    for a in &addrs {
        nl.add_addr(link.index, a).map_err(|e| {
            cni::Error::plugin(format!("failed to add IP addr {a} to {ifname:?}: {e}"))
        })?;
    }
    nl.set_up(link.index)?;
    log::debug!("configure {ifname}: addresses added, link up");
    if has_v6 {
        settle(nl, link.index, ifname)?;
        log::debug!("configure {ifname}: IPv6 addresses settled");
    }
    for r in &result.routes {
        let family_gw = if r.dst.addr().is_ipv4() { v4gw } else { v6gw };
        let gw = r.gw.or(family_gw);
        let route = to_kernel_route(r, gw, link.index);
        nl.ensure_route(&route).map_err(|e| {
            cni::Error::plugin(format!(
                "failed to add route '{} via {} dev {ifname}': {e}",
                r.dst,
                gw.map(|g| g.to_string()).unwrap_or_else(|| "-".into())
            ))
        })?;
    }
    Ok(())
}

/// Make `ifname` in `ns` announce its addresses when it comes up
/// (`arp_notify`, and `ndisc_notify` where IPv6 is on): a link that
/// shares a lower device with others (macvlan, ipvlan) tells its
/// neighbours about a new or moved address at once.
pub fn announce(ns: &Netns, ifname: &str) -> cni::Result<()> {
    let ifname = ifname.to_string();
    ns.run(move || -> Result<(), Error> {
        sysctl::ensure(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1")?;
        let ndisc = format!("net/ipv6/conf/{ifname}/ndisc_notify");
        if sysctl::read(&ndisc).is_ok() {
            sysctl::ensure(&ndisc, "1")?;
        }
        Ok(())
    })??;
    Ok(())
}

/// A result route as the kernel takes it, on link `oif` via `gw`.
pub fn to_kernel_route(r: &cni::Route, gw: Option<IpAddr>, oif: u32) -> Route {
    let mut route = Route::new(r.dst).dev(oif);
    route.gw = gw;
    route.table = r.table;
    route.priority = r.priority;
    route.mtu = r.mtu;
    route.advmss = r.advmss;
    route.scope = r.scope.map(RouteScope::from);
    route
}

/// IPv6 may be disabled on a fresh namespace's interfaces; addresses would
/// be refused. Enable it on `lo` and `ifname`, and keep addresses when the
/// link goes down so a later `ip link set down/up` does not lose them.
fn enable_ipv6(ns: &Netns, ifname: &str) -> cni::Result<()> {
    let ifname = ifname.to_string();
    ns.run(move || -> Result<(), Error> {
        for dev in ["lo", ifname.as_str()] {
            let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
            match sysctl::read(&key) {
                Ok(v) if v == "0" => {}
                // IPv6 switched off entirely: the address add will say so.
                Err(e) if e.is_not_found() => {}
                _ => sysctl::write(&key, "0")?,
            }
        }
        let keep = format!("net/ipv6/conf/{ifname}/keep_addr_on_down");
        if sysctl::read(&keep).is_ok() {
            sysctl::ensure(&keep, "1")?;
        }
        Ok(())
    })??;
    Ok(())
}

/// Wait until no IPv6 address on the link is tentative (DAD done), failing
/// if DAD found a duplicate.
///
/// Polled with a pause that starts at 50 µs and doubles up to 10 ms: with
/// DAD off (the plugins' default) an address stays tentative only until
/// the kernel's address workqueue runs after the link comes up, well under
/// a millisecond, and a fixed 10 ms pause used to add 10 ms to most
/// dual-stack ADDs. With DAD on it takes a second or more either way.
fn settle(nl: &mut Netlink, index: u32, ifname: &str) -> cni::Result<()> {
    let deadline = Instant::now() + DAD_TIMEOUT;
    let mut pause = Duration::from_micros(50);
    loop {
        let addrs = nl.addrs(Some(index), Some(Family::V6))?;
        if let Some(dup) = addrs.iter().find(|a| {
            a.flags
                .contains(netlink_packet_route::address::AddressFlags::Dadfailed)
        }) {
            return Err(cni::Error::plugin(format!(
                "IPv6 address {} on {ifname} failed duplicate address detection",
                dup.net
            )));
        }
        if !addrs.iter().any(|a| a.is_tentative()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(cni::Error::plugin(format!(
                "IPv6 addresses on {ifname} still tentative after {DAD_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
