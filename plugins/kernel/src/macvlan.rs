//! Macvlan links: `ip link add NAME link MASTER type macvlan mode MODE`,
//! created straight into a target namespace.

use crate::error::Result;
use crate::link::Link;
use crate::netlink::Netlink;
use crate::netns::Netns;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use std::os::fd::AsRawFd;

/// A macvlan link to create.
#[derive(Debug)]
pub struct MacvlanSpec<'a> {
    /// Its name where it is created. Give a temporary name when creating
    /// into another namespace, and rename it there: see [`macvlan_message`].
    pub name: String,
    /// The lower device's index, in the namespace of the socket that sends
    /// the request.
    pub master: u32,
    pub mode: MacVlanMode,
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    /// `IFLA_MACVLAN_BC_QUEUE_LEN`: the broadcast/multicast queue length.
    pub bc_queue_len: Option<u32>,
    /// The namespace the link is made in; `None`: beside its master.
    pub netns: Option<&'a Netns>,
}

/// `RTM_NEWLINK` for a macvlan on `spec.master`. With `spec.netns` the
/// kernel creates the link directly inside that namespace (the master is
/// looked up in the sender's), so nothing of it ever appears in the
/// sender's namespace; its name need only be free in the target one.
pub fn macvlan_message(spec: &MacvlanSpec) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
    m.attributes.push(LinkAttribute::Link(spec.master));
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = &spec.mac {
        m.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    if let Some(ns) = spec.netns {
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    let mut data = vec![InfoMacVlan::Mode(spec.mode)];
    if let Some(q) = spec.bc_queue_len {
        data.push(InfoMacVlan::BcQueueLen(q));
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::MacVlan),
        LinkInfo::Data(InfoData::MacVlan(data)),
    ]));
    m
}

/// The macvlan mode names of `ip link` (and of the CNI macvlan plugin).
pub fn parse_mode(s: &str) -> Option<MacVlanMode> {
    match s {
        "bridge" => Some(MacVlanMode::Bridge),
        "private" => Some(MacVlanMode::Private),
        "vepa" => Some(MacVlanMode::Vepa),
        "passthru" => Some(MacVlanMode::Passthrough),
        _ => None,
    }
}

/// The name [`parse_mode`] takes for `mode`.
pub fn mode_name(mode: MacVlanMode) -> String {
    match mode {
        MacVlanMode::Bridge => "bridge".into(),
        MacVlanMode::Private => "private".into(),
        MacVlanMode::Vepa => "vepa".into(),
        MacVlanMode::Passthrough => "passthru".into(),
        MacVlanMode::Source => "source".into(),
        other => format!("{other:?}"),
    }
}

impl Link {
    /// A macvlan's mode; `None` for other links.
    pub fn macvlan_mode(&self) -> Option<MacVlanMode> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::MacVlan(d)) => d.iter().find_map(|x| match x {
                    InfoMacVlan::Mode(m) => Some(*m),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        })
    }
}

impl Netlink {
    /// `ip link add NAME link MASTER type macvlan mode MODE [netns NS]`
    pub fn create_macvlan(&mut self, spec: &MacvlanSpec) -> Result<()> {
        self.create_link(macvlan_message(spec), &|| {
            format!(
                "create macvlan {} on link #{} (mode {})",
                spec.name,
                spec.master,
                mode_name(spec.mode)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn message_carries_master_mode_and_only_what_is_set() {
        let m = macvlan_message(&MacvlanSpec {
            name: "mv1a2b3c4d".into(),
            master: 7,
            mode: MacVlanMode::Vepa,
            mtu: None,
            mac: None,
            bc_queue_len: None,
            netns: None,
        });
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("mv1a2b3c4d".into())));
        assert!(m.attributes.contains(&LinkAttribute::Link(7)));
        assert!(!m.attributes.iter().any(|a| matches!(
            a,
            LinkAttribute::Mtu(_) | LinkAttribute::Address(_) | LinkAttribute::NetNsFd(_)
        )));
        assert_eq!(
            info(&m),
            &vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Vepa
                )])),
            ]
        );

        let m = macvlan_message(&MacvlanSpec {
            name: "x".into(),
            master: 2,
            mode: MacVlanMode::Bridge,
            mtu: Some(1400),
            mac: Some(vec![2, 0, 0, 0, 0, 9]),
            bc_queue_len: Some(2000),
            netns: None,
        });
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(m
            .attributes
            .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9])));
        let LinkInfo::Data(InfoData::MacVlan(d)) = &info(&m)[1] else {
            panic!("no macvlan data")
        };
        assert!(d.contains(&InfoMacVlan::BcQueueLen(2000)));
    }

    #[test]
    fn modes_round_trip() {
        for name in ["bridge", "private", "vepa", "passthru"] {
            assert_eq!(mode_name(parse_mode(name).unwrap()), name);
        }
        assert_eq!(parse_mode("source"), None);
        assert_eq!(parse_mode("Bridge"), None);
    }

    #[test]
    fn mode_is_read_back_from_a_link_message() {
        let l = Link::from(macvlan_message(&MacvlanSpec {
            name: "x".into(),
            master: 2,
            mode: MacVlanMode::Private,
            mtu: None,
            mac: None,
            bc_queue_len: None,
            netns: None,
        }));
        assert_eq!(l.macvlan_mode(), Some(MacVlanMode::Private));
        assert_eq!(l.kind.as_deref(), Some("macvlan"));
    }
}
