//! What the plugins that make a link on a lower device ("master") inside
//! the container share (macvlan, vlan, ipvlan): finding the master, a temporary
//! name for the new link, and the MTU check against the master.

use cni::{Error, Result};
use cni_kernel::{random, Family, Link, Netlink};

/// The master: the named link, or the one the first default route of the
/// main table goes out of (IPv4 first), looked up through `nl`; `where_`
/// ("in the host namespace") completes error messages.
pub fn find_master(nl: &mut Netlink, name: Option<&str>, where_: &str) -> Result<Link> {
    if let Some(name) = name {
        return nl
            .link_by_name(name)
            .map_err(|e| Error::plugin(format!("failed to lookup master {name:?} {where_}: {e}")));
    }
    for family in [Family::V4, Family::V6] {
        let default = nl.routes(family)?.into_iter().find(|r| {
            r.dst.prefix_len() == 0 && r.table.is_none_or(|t| t == 254) && r.oif.is_some()
        });
        if let Some(oif) = default.and_then(|r| r.oif) {
            return Ok(nl.link_by_index(oif)?);
        }
    }
    Err(Error::plugin(format!(
        "no master given and no default route interface found {where_}"
    )))
}

/// A name for a new link nobody uses but by chance: `prefix` and eight
/// random hex digits. The link is made inside the container under it and
/// renamed there to `CNI_IFNAME`, which may well exist on the host.
pub fn temp_name(prefix: &str) -> Result<String> {
    let hex: String = random::bytes(4)?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("{prefix}{hex}"))
}

/// `mtu` (when set) must not exceed the master's; the error is code 7
/// naming the key, as the reference words it.
pub fn check_mtu(mtu: Option<u32>, master: &Link) -> Result<()> {
    match (mtu, master.mtu) {
        (Some(mtu), Some(max)) if mtu > max => Err(Error::config(format!(
            "mtu: invalid MTU {mtu}, must be [0, master MTU({max})]"
        ))),
        _ => Ok(()),
    }
}

/// CHECK's look for the master `name`: in the container namespace (through
/// `cnl`) when the link was made there (`linkInContainer`), else in ours.
pub fn check_master(
    cnl: &mut Netlink,
    in_container: bool,
    name: Option<&str>,
    where_: &str,
) -> Result<Link> {
    if in_container {
        find_master(cnl, name, where_)
    } else {
        find_master(&mut Netlink::open()?, name, where_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_fit_and_differ() {
        let (a, b) = (temp_name("vl").unwrap(), temp_name("vl").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
        assert!(a.starts_with("vl"));
    }

    #[test]
    fn mtu_up_to_the_masters() {
        let mut l = Link::from(netlink_packet_route::link::LinkMessage::default());
        l.mtu = Some(1500);
        check_mtu(None, &l).unwrap();
        check_mtu(Some(1500), &l).unwrap();
        let e = check_mtu(Some(1501), &l).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("master MTU(1500)"), "{}", e.msg);
    }
}
