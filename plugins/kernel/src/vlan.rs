//! 802.1Q VLAN and ipvlan links: `ip link add NAME link MASTER type vlan
//! id ID` and `... type ipvlan mode MODE`, created straight into a target
//! namespace as macvlans are (see `macvlan.rs`).

use crate::error::Result;
use crate::link::Link;
use crate::netlink::Netlink;
use crate::netns::Netns;
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoVlan, IpVlanMode, LinkAttribute, LinkInfo, LinkMessage,
};
use std::os::fd::AsRawFd;

/// What the two link kinds here share: where the link goes and on what.
#[derive(Debug)]
pub struct LowerSpec<'a> {
    /// Its name where it is created: a temporary one when creating into
    /// another namespace, renamed there afterwards.
    pub name: String,
    /// The lower device's index, in the namespace of the sending socket.
    pub master: u32,
    pub mtu: Option<u32>,
    /// The namespace the link is made in; `None`: beside its master.
    pub netns: Option<&'a Netns>,
}

fn lower_message(spec: &LowerSpec, kind: InfoKind, data: InfoData) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
    m.attributes.push(LinkAttribute::Link(spec.master));
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(ns) = spec.netns {
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(kind),
        LinkInfo::Data(data),
    ]));
    m
}

/// `RTM_NEWLINK` for an 802.1Q VLAN `id` on `spec.master`. With
/// `spec.netns` the kernel makes it inside that namespace while looking
/// the master up in the sender's.
pub fn vlan_message(spec: &LowerSpec, id: u16) -> LinkMessage {
    lower_message(spec, InfoKind::Vlan, InfoData::Vlan(vec![InfoVlan::Id(id)]))
}

/// `RTM_NEWLINK` for an ipvlan in `mode` on `spec.master` (as
/// [`vlan_message`]).
pub fn ipvlan_message(spec: &LowerSpec, mode: IpVlanMode) -> LinkMessage {
    lower_message(
        spec,
        InfoKind::IpVlan,
        InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)]),
    )
}

/// The ipvlan mode names of `ip link` and of the CNI ipvlan plugin.
pub fn parse_ipvlan_mode(s: &str) -> Option<IpVlanMode> {
    match s {
        "l2" => Some(IpVlanMode::L2),
        "l3" => Some(IpVlanMode::L3),
        "l3s" => Some(IpVlanMode::L3S),
        _ => None,
    }
}

impl Link {
    fn info_data(&self) -> Option<&InfoData> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(d) => Some(d),
                _ => None,
            }),
            _ => None,
        })
    }

    /// An 802.1Q VLAN link's VLAN ID; `None` for other links.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.info_data()? {
            InfoData::Vlan(d) => d.iter().find_map(|x| match x {
                InfoVlan::Id(id) => Some(*id),
                _ => None,
            }),
            _ => None,
        }
    }

    /// An ipvlan's mode; `None` for other links.
    pub fn ipvlan_mode(&self) -> Option<IpVlanMode> {
        match self.info_data()? {
            InfoData::IpVlan(d) => d.iter().find_map(|x| match x {
                InfoIpVlan::Mode(m) => Some(*m),
                _ => None,
            }),
            _ => None,
        }
    }
}

impl Netlink {
    /// `ip link add NAME link MASTER type vlan id ID [netns NS]`
    pub fn create_vlan(&mut self, spec: &LowerSpec, id: u16) -> Result<()> {
        self.create_link(vlan_message(spec, id), &|| {
            format!(
                "create vlan {} (id {id}) on link #{}",
                spec.name, spec.master
            )
        })
    }

    /// `ip link add NAME link MASTER type ipvlan mode MODE [netns NS]`
    pub fn create_ipvlan(&mut self, spec: &LowerSpec, mode: IpVlanMode) -> Result<()> {
        self.create_link(ipvlan_message(spec, mode), &|| {
            format!(
                "create ipvlan {} on link #{} (mode {mode})",
                spec.name, spec.master
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mtu: Option<u32>) -> LowerSpec<'static> {
        LowerSpec {
            name: "vl1a2b3c4d".into(),
            master: 7,
            mtu,
            netns: None,
        }
    }

    fn info(m: &LinkMessage) -> &Vec<LinkInfo> {
        m.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i),
                _ => None,
            })
            .expect("link info")
    }

    #[test]
    fn vlan_message_carries_master_and_id_and_only_what_is_set() {
        let m = vlan_message(&spec(None), 100);
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("vl1a2b3c4d".into())));
        assert!(m.attributes.contains(&LinkAttribute::Link(7)));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Mtu(_) | LinkAttribute::NetNsFd(_))));
        assert_eq!(
            info(&m),
            &vec![
                LinkInfo::Kind(InfoKind::Vlan),
                LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(100)])),
            ]
        );
        let m = vlan_message(&spec(Some(1400)), 0);
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
    }

    #[test]
    fn vlan_message_encodes_ifla_vlan_id() {
        use netlink_packet_core::Emitable;
        let m = vlan_message(&spec(None), 0x0123);
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        // IFLA_VLAN_ID (1), length 6, the ID in host order: inside
        // IFLA_INFO_DATA inside IFLA_LINKINFO.
        let id = [6u8, 0, 1, 0, 0x23, 0x01];
        assert!(buf.windows(6).any(|w| w == id), "{buf:?}");
    }

    #[test]
    fn ipvlan_message_carries_mode() {
        for (name, mode) in [
            ("l2", IpVlanMode::L2),
            ("l3", IpVlanMode::L3),
            ("l3s", IpVlanMode::L3S),
        ] {
            assert_eq!(parse_ipvlan_mode(name), Some(mode));
            assert_eq!(mode.to_string(), name);
            let m = ipvlan_message(&spec(Some(1300)), mode);
            assert!(m.attributes.contains(&LinkAttribute::Link(7)));
            assert!(m.attributes.contains(&LinkAttribute::Mtu(1300)));
            assert_eq!(
                info(&m),
                &vec![
                    LinkInfo::Kind(InfoKind::IpVlan),
                    LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)])),
                ]
            );
            let l = Link::from(m);
            assert_eq!(l.ipvlan_mode(), Some(mode));
            assert_eq!(l.vlan_id(), None);
            assert_eq!(l.kind.as_deref(), Some("ipvlan"));
        }
        assert_eq!(parse_ipvlan_mode("L2"), None);
        assert_eq!(parse_ipvlan_mode("bridge"), None);
    }

    #[test]
    fn vlan_id_is_read_back_from_a_link_message() {
        let l = Link::from(vlan_message(&spec(None), 4094));
        assert_eq!(l.vlan_id(), Some(4094));
        assert_eq!(l.ipvlan_mode(), None);
        assert_eq!(l.kind.as_deref(), Some("vlan"));
    }
}
