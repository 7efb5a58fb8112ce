//! The host-device plugin: moves an existing host interface into the
//! container, renamed to `CNI_IFNAME`, and back on DEL.
//!
//! The device is chosen by `device` (name), `hwaddr`, `kernelpath` (its
//! `/sys/devices/...` path), `pciBusID`, or `runtimeConfig.deviceID` (a PCI
//! or auxiliary-bus ID, overriding `pciBusID`). Its host name is kept in
//! its link alias, as the reference keeps it, and restored on DEL. A PCI
//! device bound to a userspace (DPDK) driver has no kernel interface: it
//! is not moved, only IPAM runs.
//!
//! ADD: check `CNI_IFNAME` is free in the container, find the device,
//! start IPAM, move and rename it in one request, configure it. Any failure
//! moves it back. DEL: IPAM release first, whatever else happens (the
//! reference skips it when the namespace is gone, leaking the address:
//! containernetworking/cni#1167); then the device back to the host under
//! its alias. When the namespace was destroyed first the kernel has already
//! returned a physical device to the host, under its container name or a
//! `devN` one: DEL finds it there by its alias and restores the name.

use cni::delegate::IpamAdd;
use cni::rollback::Rollback;
use cni::{CniResult, Error, NetConf, Plugin, Request, Result};
use cni_kernel::link::{parse_mac, Link};
use cni_kernel::tc::link_alias;
use cni_kernel::{Netlink, Netns};
use cni_support::{attachment, container};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub struct HostDevice;

/// Where the kernel lists PCI and auxiliary-bus devices.
const SYS_BUS: &str = "/sys/bus";

/// Drivers that hand a PCI network device to userspace (DPDK): such a
/// device has no kernel interface to move.
const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default, rename = "deviceID")]
    device_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Conf {
    #[serde(flatten)]
    net: NetConf,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    hwaddr: Option<String>,
    #[serde(default)]
    kernelpath: Option<String>,
    #[serde(default, rename = "pciBusID")]
    pci_bus_id: Option<String>,
}

/// How the config names the device.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    HwAddr(Vec<u8>),
    KernelPath(PathBuf),
    /// A PCI address or an auxiliary-bus device ID.
    BusId(String),
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl Conf {
    /// The device the config (or `runtimeConfig.deviceID`) names, in the
    /// reference's order of preference.
    fn selector(&self) -> Result<Selector> {
        let rc: RuntimeConfig = self.net.runtime_config()?;
        let bus_id = non_empty(&rc.device_id).or(non_empty(&self.pci_bus_id));
        if let Some(d) = non_empty(&self.device) {
            return Ok(Selector::Name(d.to_string()));
        }
        if let Some(h) = non_empty(&self.hwaddr) {
            return parse_mac(h).map(Selector::HwAddr).ok_or_else(|| {
                Error::config(format!("hwaddr: failed to parse MAC address {h:?}"))
            });
        }
        if let Some(k) = non_empty(&self.kernelpath) {
            if !k.starts_with("/sys/devices/") {
                return Err(Error::config(format!(
                    "kernelpath: kernel device path {k:?} must be absolute and begin with /sys/devices/"
                )));
            }
            return Ok(Selector::KernelPath(PathBuf::from(k)));
        }
        if let Some(id) = bus_id {
            if id.contains('/') || id == ".." {
                return Err(Error::config(format!("pciBusID: invalid device ID {id:?}")));
            }
            return Ok(Selector::BusId(id.to_string()));
        }
        Err(Error::config(
            r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#,
        ))
    }
}

/// Whether the PCI device `id` is bound to a userspace driver.
fn has_userspace_driver(sys_bus: &Path, id: &str) -> bool {
    std::fs::read_link(sys_bus.join("pci/devices").join(id).join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|d| USERSPACE_DRIVERS.contains(&d.as_str()))
}

/// The interface names sysfs lists under `dir` (a device's `net/`).
fn net_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The interface names of bus device `id`: a PCI device's `net/` (or, for
/// virtio, `virtio*/net/`), else an auxiliary-bus device's `net/`.
fn bus_net_names(sys_bus: &Path, id: &str) -> Vec<String> {
    let pci = sys_bus.join("pci/devices").join(id);
    let mut names = net_names(&pci.join("net"));
    if names.is_empty() {
        if let Ok(rd) = std::fs::read_dir(&pci) {
            for e in rd.filter_map(|e| e.ok()) {
                if e.file_name().to_string_lossy().starts_with("virtio") {
                    names.extend(net_names(&e.path().join("net")));
                }
            }
        }
    }
    if names.is_empty() {
        names = net_names(&sys_bus.join("auxiliary/devices").join(id).join("net"));
    }
    names
}

/// The host link `sel` names, among `links`.
fn find_device(links: &[Link], sel: &Selector, sys_bus: &Path) -> Result<Link> {
    let by_name = |names: &[String]| {
        names
            .iter()
            .find_map(|n| links.iter().find(|l| &l.name == n))
            .cloned()
    };
    let found = match sel {
        Selector::Name(n) => by_name(std::slice::from_ref(n)),
        Selector::HwAddr(mac) => links.iter().find(|l| l.mac.as_ref() == Some(mac)).cloned(),
        Selector::KernelPath(p) => by_name(&net_names(&p.join("net"))),
        Selector::BusId(id) => by_name(&bus_net_names(sys_bus, id)),
    };
    found.ok_or_else(|| Error::plugin(format!("failed to find host device {}", describe(sel))))
}

fn describe(sel: &Selector) -> String {
    match sel {
        Selector::Name(n) => format!("{n:?}"),
        Selector::HwAddr(m) => format!("with hwaddr {}", cni_kernel::link::format_mac(m)),
        Selector::KernelPath(p) => format!("at {}", p.display()),
        Selector::BusId(id) => format!("of bus device {id}"),
    }
}

/// A device this plugin moved into a container that the kernel returned
/// to the host when the container's namespace was destroyed: it carries
/// its host name as alias but another name (the container's, or `devN`).
fn find_returned(links: &[Link], sel: &Selector, sys_bus: &Path) -> Option<(Link, String)> {
    let returned = |l: &Link| {
        link_alias(l)
            .filter(|a| !a.is_empty() && *a != l.name)
            .map(|a| (l.clone(), a.to_string()))
    };
    match sel {
        Selector::Name(n) => links
            .iter()
            .filter_map(returned)
            .find(|(_, alias)| alias == n),
        Selector::HwAddr(mac) => links
            .iter()
            .filter(|l| l.mac.as_ref() == Some(mac))
            .find_map(returned),
        Selector::KernelPath(_) | Selector::BusId(_) => find_device(links, sel, sys_bus)
            .ok()
            .and_then(|l| returned(&l)),
    }
}

/// Move `index` (in `from`) to `to` as `name`, down first as the kernel
/// wants for a rename.
fn move_to(from: &mut Netlink, index: u32, to: &Netns, name: &str) -> cni_kernel::Result<()> {
    from.set_down(index)?;
    from.move_link(index, to, name)
}

/// Give the device `ifname` in `ns` back to the host under `alias` and
/// drop the alias there.
fn move_out(ns: &Netns, ifname: &str, host_ns: &Netns) -> Result<bool> {
    let mut cnl = Netlink::open_in(ns)?;
    let link = match cnl.link_by_name(ifname) {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let alias = link_alias(&link)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::plugin(format!(
                "{ifname} in {} has no alias naming its host device; not moving it",
                ns.path().display()
            ))
        })?;
    move_to(&mut cnl, link.index, host_ns, &alias).map_err(|e| {
        Error::plugin(format!(
            "failed to move {ifname} back to the host as {alias:?}: {e}"
        ))
    })?;
    let mut host = Netlink::open_in(host_ns)?;
    let back = host.link_by_name(&alias)?;
    host.set_alias(back.index, "")?;
    Ok(true)
}

impl Plugin for HostDevice {
    fn name(&self) -> &str {
        "host-device"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let conf: Conf = req.parse_config()?;
        let sel = conf.selector()?;
        let sys_bus = Path::new(SYS_BUS);
        let dpdk = matches!(&sel, Selector::BusId(id) if has_userspace_driver(sys_bus, id));
        let ns = Netns::open(attachment::netns_path(req)?)?;
        let mut cnl = Netlink::open_in(&ns)?;
        let mut undo = Rollback::new();
        if dpdk {
            // Nothing to move: the device is driven from userspace.
            let ipam = IpamAdd::start(req)?;
            let mut result = CniResult::default();
            if let Some(ipam) = ipam {
                result = ipam.finish(&mut undo)?;
            }
            if let Some(dns) = conf.net.dns_override() {
                result.dns = dns.clone();
            }
            undo.commit();
            return Ok(result);
        }
        // Before IPAM: a duplicate ADD must fail before it could release
        // the live attachment's addresses.
        container::ensure_absent(&mut cnl, &ns, &req.ifname)?;
        let mut host = Netlink::open()?;
        let dev = find_device(&host.links()?, &sel, sys_bus)?;
        let ipam = IpamAdd::start(req)?;

        // The host name goes into the alias, which moves with the device.
        host.set_alias(dev.index, &dev.name)?;
        let name = dev.name.clone();
        undo.push(format!("clear the alias of {name}"), move || {
            let mut nl = Netlink::open().map_err(|e| e.to_string())?;
            match nl.link_by_name(&name) {
                Ok(l) => nl.set_alias(l.index, "").map_err(|e| e.to_string()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.to_string()),
            }
        });
        let host_ns = Netns::current()?;
        move_to(&mut host, dev.index, &ns, &req.ifname).map_err(|e| {
            Error::plugin(format!(
                "failed to move {} into {} as {}: {e}",
                dev.name,
                ns.path().display(),
                req.ifname
            ))
        })?;
        let (path, ifname, name) = (
            ns.path().to_path_buf(),
            req.ifname.clone(),
            dev.name.clone(),
        );
        undo.push(format!("move {name} back to the host"), move || {
            let ns = Netns::open(&path).map_err(|e| e.to_string())?;
            match move_out(&ns, &ifname, &host_ns) {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("{ifname} is no longer in {}", path.display())),
                Err(e) => Err(e.to_string()),
            }
        });

        let result = attachment::finish_link_add(req, &ns, &mut cnl, ipam, &mut undo)?;
        undo.commit();
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf: Conf = req.parse_config()?;
        let mut errors = attachment::Errors::default();
        // IPAM first and whatever else fails: the address must come back
        // even when the namespace (and with it the device) is gone.
        if conf.net.ipam_type().is_some() {
            errors.note(cni::delegate::ipam_exec(req, cni::Command::Del));
        }
        // A config that names no device left nothing to move back.
        let Ok(sel) = conf.selector() else {
            return errors.into_result();
        };
        let sys_bus = Path::new(SYS_BUS);
        if matches!(&sel, Selector::BusId(id) if has_userspace_driver(sys_bus, id)) {
            return errors.into_result();
        }
        let host_ns = Netns::current()?;
        let mut moved = false;
        if let Some(path) = &req.netns {
            match Netns::open_if_present(path) {
                Ok(Some(ns)) => {
                    moved = errors.note(move_out(&ns, &req.ifname, &host_ns)) == Some(true)
                }
                Ok(None) => {}
                Err(e) => {
                    errors.note(Err::<(), _>(e));
                }
            }
        }
        if !moved {
            errors.note(restore_returned(&sel, sys_bus));
        }
        errors.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf: Conf = req.parse_config()?;
        let sel = conf.selector()?;
        if matches!(&sel, Selector::BusId(id) if has_userspace_driver(Path::new(SYS_BUS), id)) {
            conf.net
                .prev_result()?
                .ok_or_else(|| Error::config("host-device: required prevResult missing"))?;
            if conf.net.ipam_type().is_some() {
                cni::delegate::ipam_exec(req, cni::Command::Check)?;
            }
            return Ok(());
        }
        attachment::check_link(req, "host-device")?;
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let _: Conf = req.parse_config()?;
        attachment::gc_ipam(req)
    }

    fn status(&self, req: &Request) -> Result<()> {
        let conf: Conf = req.parse_config()?;
        conf.selector()?;
        attachment::status(req)
    }
}

/// The device the kernel handed back to the host when its container's
/// namespace was destroyed: restore its name from its alias.
fn restore_returned(sel: &Selector, sys_bus: &Path) -> Result<()> {
    let mut host = Netlink::open()?;
    let Some((link, alias)) = find_returned(&host.links()?, sel, sys_bus) else {
        return Ok(());
    };
    host.set_down(link.index)?;
    host.set_name(link.index, &alias).map_err(|e| {
        Error::plugin(format!(
            "failed to restore {} to its original name {alias:?}: {e}",
            link.name
        ))
    })?;
    host.set_alias(link.index, "")?;
    log::info!("restored {} to its original name {alias}", link.name);
    Ok(())
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    let c: Conf = req.parse_config()?;
    c.selector()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    fn conf(json: &str) -> Conf {
        cni::types::parse_config(json.as_bytes()).unwrap()
    }

    fn link(index: u32, name: &str, mac: [u8; 6], alias: Option<&str>) -> Link {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        if let Some(a) = alias {
            m.attributes.push(LinkAttribute::IfAlias(a.into()));
        }
        Link::from(m)
    }

    #[test]
    fn selector_precedence_and_errors() {
        assert_eq!(
            conf(r#"{"name":"n","device":"eth1","hwaddr":"02:00:00:00:00:01"}"#)
                .selector()
                .unwrap(),
            Selector::Name("eth1".into())
        );
        assert_eq!(
            conf(r#"{"name":"n","hwaddr":"02:00:00:00:00:01"}"#)
                .selector()
                .unwrap(),
            Selector::HwAddr(vec![2, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            conf(r#"{"name":"n","pciBusID":"0000:00:01.0","runtimeConfig":{"deviceID":"0000:00:02.0"}}"#)
                .selector()
                .unwrap(),
            Selector::BusId("0000:00:02.0".into())
        );
        for bad in [
            r#"{"name":"n"}"#,
            r#"{"name":"n","device":""}"#,
            r#"{"name":"n","hwaddr":"zz"}"#,
            r#"{"name":"n","kernelpath":"/tmp/x"}"#,
            r#"{"name":"n","pciBusID":"../x"}"#,
        ] {
            assert_eq!(conf(bad).selector().unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn devices_are_found_by_name_mac_and_sysfs() {
        let links = vec![
            link(1, "lo", [0; 6], None),
            link(2, "ens3", [2, 0, 0, 0, 0, 3], None),
            link(3, "ens4", [2, 0, 0, 0, 0, 4], None),
        ];
        let sys = std::env::temp_dir().join(format!("hd-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&sys);
        std::fs::create_dir_all(sys.join("pci/devices/0000:00:04.0/virtio1/net/ens4")).unwrap();
        std::fs::create_dir_all(sys.join("auxiliary/devices/mlx.eth.0/net/ens3")).unwrap();
        let find = |s: Selector| find_device(&links, &s, &sys).map(|l| l.name);
        assert_eq!(find(Selector::Name("ens3".into())).unwrap(), "ens3");
        assert_eq!(
            find(Selector::HwAddr(vec![2, 0, 0, 0, 0, 4])).unwrap(),
            "ens4"
        );
        assert_eq!(
            find(Selector::BusId("0000:00:04.0".into())).unwrap(),
            "ens4"
        );
        assert_eq!(find(Selector::BusId("mlx.eth.0".into())).unwrap(), "ens3");
        let e = find(Selector::Name("eth9".into())).unwrap_err();
        assert!(e.msg.contains("eth9"), "{}", e.msg);
        assert!(!has_userspace_driver(&sys, "0000:00:04.0"));
        std::fs::create_dir_all(sys.join("drivers/vfio-pci")).unwrap();
        std::os::unix::fs::symlink(
            sys.join("drivers/vfio-pci"),
            sys.join("pci/devices/0000:00:04.0/driver"),
        )
        .unwrap();
        assert!(has_userspace_driver(&sys, "0000:00:04.0"));
        std::fs::remove_dir_all(&sys).unwrap();
    }

    #[test]
    fn returned_devices_are_known_by_their_alias() {
        let links = vec![
            link(2, "dev7", [2, 0, 0, 0, 0, 3], Some("ens3")),
            link(3, "ens4", [2, 0, 0, 0, 0, 4], Some("ens4")),
            link(4, "eth0", [2, 0, 0, 0, 0, 5], Some("ens5")),
        ];
        let sys = Path::new("/nonexistent");
        let found = |s: Selector| find_returned(&links, &s, sys).map(|(l, a)| (l.name, a));
        assert_eq!(
            found(Selector::Name("ens3".into())),
            Some(("dev7".into(), "ens3".into()))
        );
        assert_eq!(
            found(Selector::HwAddr(vec![2, 0, 0, 0, 0, 5])),
            Some(("eth0".into(), "ens5".into()))
        );
        // Its own name as alias: not a returned device.
        assert_eq!(found(Selector::Name("ens4".into())), None);
        assert_eq!(found(Selector::Name("ens9".into())), None);
    }
}
