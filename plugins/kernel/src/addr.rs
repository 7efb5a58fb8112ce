//! Addresses: `ip addr` verbs over rtnetlink.

use crate::error::Result;
use crate::netlink::Netlink;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// An address on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    /// The address with its prefix length, as `ip addr` shows it.
    pub net: IpNet,
    pub scope: AddressScope,
    pub flags: AddressFlags,
}

impl Addr {
    /// IPv6 duplicate address detection still running on it.
    pub fn is_tentative(&self) -> bool {
        self.flags.contains(AddressFlags::Tentative)
    }
}

/// Which family to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub(crate) fn af(self) -> AddressFamily {
        match self {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        }
    }
}

/// `RTM_NEWADDR`/`RTM_DELADDR` for `net` on link `index`. IPv4 carries
/// `IFA_LOCAL` (what the kernel matches on) and a broadcast address, as
/// `ip addr add ... brd +` would set.
pub fn addr_message(index: u32, net: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = net.prefix_len();
    m.header.family = Family::of(&net.addr()).af();
    m.attributes.push(AddressAttribute::Address(net.addr()));
    if let IpNet::V4(v4) = net {
        m.attributes
            .push(AddressAttribute::Local(IpAddr::V4(v4.addr())));
        if v4.prefix_len() < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    }
    m
}

impl From<AddressMessage> for Addr {
    fn from(m: AddressMessage) -> Addr {
        let mut local = None;
        let mut address = None;
        let mut flags = AddressFlags::empty();
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Flags(f) => flags = *f,
                _ => {}
            }
        }
        // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
        let ip = local
            .or(address)
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let net = IpNet::new(ip, m.header.prefix_len).unwrap_or_else(|_| IpNet::from(ip));
        Addr {
            index: m.header.index,
            net,
            scope: m.header.scope,
            flags,
        }
    }
}

impl Netlink {
    /// `ip addr show [dev INDEX]` of one family, or both.
    pub fn addrs(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>> {
        let mut m = AddressMessage::default();
        if let Some(f) = family {
            m.header.family = f.af();
        }
        let out = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP, &|| {
            "list addresses".to_string()
        })?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(Addr::from(a)),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| Family::of(&a.net.addr()) == f))
            .collect())
    }

    /// `ip addr add NET dev INDEX`; `EEXIST` if it is already there.
    pub fn add_addr(&mut self, index: u32, net: &IpNet) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewAddress(addr_message(index, net)),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add address {net} to link #{index}"),
        )
        .map(|_| ())
    }

    /// `ip addr add NET dev INDEX`, content if it is already there (another
    /// ADD on the same bridge may have put it there a moment ago).
    pub fn ensure_addr(&mut self, index: u32, net: &IpNet) -> Result<()> {
        match self.add_addr(index, net) {
            Err(e) if e.is(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// `ip addr del NET dev INDEX`
    pub fn del_addr(&mut self, index: u32, net: &IpNet) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(addr_message(index, net)),
            0,
            &|| format!("delete address {net} from link #{index}"),
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_message_has_local_and_broadcast() {
        let m = addr_message(3, &"10.1.0.2/24".parse().unwrap());
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert!(m
            .attributes
            .contains(&AddressAttribute::Local("10.1.0.2".parse().unwrap())));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Broadcast("10.1.0.255".parse().unwrap())));
        // /31 and /32 have no broadcast address.
        let m = addr_message(3, &"10.1.0.2/32".parse().unwrap());
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn v6_message_has_address_only() {
        let m = addr_message(3, &"fd00::2/64".parse().unwrap());
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(
            m.attributes,
            vec![AddressAttribute::Address("fd00::2".parse().unwrap())]
        );
    }

    #[test]
    fn parsed_address_prefers_local() {
        let mut m = addr_message(4, &"10.1.0.2/24".parse().unwrap());
        m.attributes
            .insert(0, AddressAttribute::Address("10.1.0.9".parse().unwrap()));
        let a = Addr::from(m);
        assert_eq!(a.net.to_string(), "10.1.0.2/24");
        assert_eq!(a.index, 4);
    }
}
