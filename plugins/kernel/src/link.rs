//! Links: `ip link` verbs over rtnetlink.

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::netns::Netns;
use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::AsRawFd;

/// What a plugin needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub flags: LinkFlags,
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    /// The bridge (or bond) it is enslaved to.
    pub master: Option<u32>,
    /// `veth`, `bridge`, ...; `None` for links without a kind (lo, physical).
    pub kind: Option<String>,
    /// For a veth, its peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// Operational state (`IF_OPER_UP`, ...).
    pub oper_state: Option<State>,
    /// Bridge-port settings, when the link is a bridge port.
    pub bridge_port: Vec<InfoBridgePort>,
    /// The full message, for what this struct does not lift out.
    pub message: LinkMessage,
}

impl Link {
    /// Administratively up (`ip link set up`).
    pub fn is_up(&self) -> bool {
        self.flags.contains(LinkFlags::Up)
    }

    /// Operationally up: carrier present (for a veth, both ends up).
    pub fn is_oper_up(&self) -> bool {
        self.oper_state == Some(State::Up)
    }

    pub fn is_promisc(&self) -> bool {
        self.flags.contains(LinkFlags::Promisc)
    }

    /// Receives all multicast (`ip link set DEV allmulticast on`).
    pub fn is_allmulti(&self) -> bool {
        self.flags.contains(LinkFlags::Allmulti)
    }

    /// Transmit queue length (`qlen` in `ip link`).
    pub fn txqlen(&self) -> Option<u32> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::TxQueueLen(q) => Some(*q),
            _ => None,
        })
    }

    /// Bridge port hairpin mode, when the link is a bridge port.
    pub fn hairpin(&self) -> Option<bool> {
        self.bridge_port.iter().find_map(|p| match p {
            InfoBridgePort::HairpinMode(on) => Some(*on),
            _ => None,
        })
    }

    /// Bridge port isolation, when the link is a bridge port.
    pub fn isolated(&self) -> Option<bool> {
        self.bridge_port.iter().find_map(|p| match p {
            InfoBridgePort::Isolated(on) => Some(*on),
            _ => None,
        })
    }

    /// The MAC as `aa:bb:cc:dd:ee:ff`.
    pub fn mac_string(&self) -> Option<String> {
        self.mac.as_deref().map(format_mac)
    }
}

impl From<LinkMessage> for Link {
    fn from(m: LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            flags: m.header.flags,
            mtu: None,
            mac: None,
            master: None,
            kind: None,
            peer_index: None,
            oper_state: None,
            bridge_port: Vec::new(),
            message: LinkMessage::default(),
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name.clone_from(n),
                LinkAttribute::Mtu(v) => l.mtu = Some(*v),
                LinkAttribute::Address(mac) => l.mac = Some(mac.clone()),
                LinkAttribute::Controller(i) => l.master = Some(*i),
                LinkAttribute::Link(i) => l.peer_index = Some(*i),
                LinkAttribute::OperState(st) => l.oper_state = Some(*st),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                            LinkInfo::PortData(InfoPortData::BridgePort(p)) => {
                                l.bridge_port.clone_from(p)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        l.message = m;
        l
    }
}

/// Format a hardware address as lower-case colon-separated hex.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `aa:bb:cc:dd:ee:ff` (six octets).
pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = s
        .split(':')
        .map(|p| {
            if p.len() == 2 {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect();
    bytes.filter(|b| b.len() == 6)
}

/// A veth pair to create: `name` in the caller's namespace, `peer_name` in
/// `peer_netns` (or beside it when `None`).
#[derive(Debug, Default)]
pub struct VethSpec<'a> {
    pub name: String,
    pub peer_name: String,
    pub mtu: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub peer_mac: Option<Vec<u8>>,
    pub peer_netns: Option<&'a Netns>,
    /// Enslave `name` to this link (a bridge) in the same request.
    pub master: Option<u32>,
    /// Bring `name` up in the same request.
    pub up: bool,
}

/// A bridge to create.
#[derive(Debug, Default)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: Option<u32>,
    pub vlan_filtering: Option<bool>,
}

fn link_msg(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

/// `RTM_NEWLINK` for a veth pair whose peer is created directly inside its
/// namespace: one request, no create-then-move race, and the peer's name
/// never has to be free in our namespace.
pub fn veth_message(spec: &VethSpec) -> LinkMessage {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(spec.peer_name.clone()));
    if let Some(mtu) = spec.mtu {
        peer.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = &spec.peer_mac {
        peer.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    if let Some(ns) = spec.peer_netns {
        peer.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    // One queue each way, as a veth ends up anyway: without the count, the
    // kernel allocates a queue per CPU and then cuts the real count to one,
    // which waits for an RCU grace period per end (veth_init_queues), with
    // the RTNL lock held.
    peer.attributes.push(LinkAttribute::NumTxQueues(1));
    peer.attributes.push(LinkAttribute::NumRxQueues(1));
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
    m.attributes.push(LinkAttribute::NumTxQueues(1));
    m.attributes.push(LinkAttribute::NumRxQueues(1));
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = &spec.mac {
        m.attributes.push(LinkAttribute::Address(mac.clone()));
    }
    // The kernel brings a new link up (rtnl_configure_link) and then
    // enslaves it (IFLA_MASTER) inside the one RTM_NEWLINK: two SETLINK
    // round trips, and two takes of the RTNL lock, saved per ADD.
    if let Some(master) = spec.master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    if spec.up {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    m
}

/// `RTM_NEWLINK` for a bridge. VLAN filtering must be set here, with
/// NEWLINK: the kernel ignores it on a later SETLINK of some versions.
pub fn bridge_message(spec: &BridgeSpec) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
    if let Some(mtu) = spec.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
    if let Some(f) = spec.vlan_filtering {
        info.push(LinkInfo::Data(InfoData::Bridge(vec![
            InfoBridge::VlanFiltering(f),
        ])));
    }
    m.attributes.push(LinkAttribute::LinkInfo(info));
    m
}

/// Settings of a link as a bridge port; `None` leaves one as it is.
#[derive(Debug, Default, Clone, Copy)]
pub struct BridgePortSpec {
    pub hairpin: Option<bool>,
    pub isolated: Option<bool>,
}

/// `RTM_NEWLINK` (without create flags) that changes bridge-port settings,
/// as `ip link set DEV type bridge_slave hairpin on isolated on` does.
pub fn bridge_port_message(index: u32, spec: &BridgePortSpec) -> LinkMessage {
    let mut port = Vec::new();
    if let Some(on) = spec.hairpin {
        port.push(InfoBridgePort::HairpinMode(on));
    }
    if let Some(on) = spec.isolated {
        port.push(InfoBridgePort::Isolated(on));
    }
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(port)),
    ]));
    m
}

/// `RTM_SETLINK` moving link `index` into the namespace of descriptor
/// `ns_fd` under `name`. The kernel moves first (taking `name` at once
/// should the link's current name be taken there) and then renames.
pub fn move_message(index: u32, ns_fd: std::os::fd::RawFd, name: &str) -> LinkMessage {
    let mut m = link_msg(index);
    m.attributes.push(LinkAttribute::NetNsFd(ns_fd));
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

/// `RTM_SETLINK` changing only the Up flag.
pub fn set_up_message(index: u32, up: bool) -> LinkMessage {
    let mut m = link_msg(index);
    m.header.change_mask = LinkFlags::Up;
    if up {
        m.header.flags = LinkFlags::Up;
    }
    m
}

impl Netlink {
    /// `ip link show NAME`
    pub fn link_by_name(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let what = || format!("get link {name}");
        match self.request_one(RouteNetlinkMessage::GetLink(m), &what) {
            Ok(RouteNetlinkMessage::NewLink(l)) => Ok(l.into()),
            Ok(other) => Err(Error::protocol(
                what(),
                format!("unexpected reply {other:?}"),
            )),
            Err(e) if e.is_not_found() => Err(Error::not_found(format!("link {name}"))),
            Err(e) => Err(e),
        }
    }

    /// `ip link show` of one index.
    pub fn link_by_index(&mut self, index: u32) -> Result<Link> {
        let what = || format!("get link #{index}");
        match self.request_one(RouteNetlinkMessage::GetLink(link_msg(index)), &what) {
            Ok(RouteNetlinkMessage::NewLink(l)) => Ok(l.into()),
            Ok(other) => Err(Error::protocol(
                what(),
                format!("unexpected reply {other:?}"),
            )),
            Err(e) if e.is_not_found() => Err(Error::not_found(format!("link #{index}"))),
            Err(e) => Err(e),
        }
    }

    /// `ip link show`
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let out = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            &|| "list links".to_string(),
        )?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.into()),
                _ => None,
            })
            .collect())
    }

    /// `ip link add ...`: create a link from a prepared message; fails with
    /// `EEXIST` if the name is taken.
    pub fn create_link(&mut self, msg: LinkMessage, what: &dyn Fn() -> String) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
            what,
        )
        .map(|_| ())
    }

    /// `ip link add NAME type veth peer name PEER [netns NS]`
    pub fn create_veth(&mut self, spec: &VethSpec) -> Result<()> {
        self.create_link(veth_message(spec), &|| {
            format!("create veth {} (peer {})", spec.name, spec.peer_name)
        })
    }

    /// `ip link add NAME type bridge`
    pub fn create_bridge(&mut self, spec: &BridgeSpec) -> Result<()> {
        self.create_link(bridge_message(spec), &|| {
            format!("create bridge {}", spec.name)
        })
    }

    /// `ip link del` by index.
    pub fn del_link(&mut self, index: u32) -> Result<()> {
        self.request(RouteNetlinkMessage::DelLink(link_msg(index)), 0, &|| {
            format!("delete link #{index}")
        })
        .map(|_| ())
    }

    /// `ip link del NAME`: one request, no lookup first; a link that is
    /// not there is `ENODEV` (see [`Error::is_not_found`]).
    pub fn del_link_by_name(&mut self, name: &str) -> Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::DelLink(m), 0, &|| {
            format!("delete link {name}")
        })
        .map(|_| ())
    }

    fn set_link(&mut self, msg: LinkMessage, what: &dyn Fn() -> String) -> Result<()> {
        self.request(RouteNetlinkMessage::SetLink(msg), 0, what)
            .map(|_| ())
    }

    /// `ip link set INDEX up`
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_link(set_up_message(index, true), &|| {
            format!("set link #{index} up")
        })
    }

    /// `ip link set INDEX down`
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_link(set_up_message(index, false), &|| {
            format!("set link #{index} down")
        })
    }

    /// `ip link set INDEX mtu MTU`
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(m, &|| format!("set mtu {mtu} on link #{index}"))
    }

    /// `ip link set INDEX address MAC`
    pub fn set_mac(&mut self, index: u32, mac: &[u8]) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.set_link(m, &|| {
            format!("set address {} on link #{index}", format_mac(mac))
        })
    }

    /// `ip link set INDEX master MASTER` (`nomaster` with 0).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::Controller(master));
        self.set_link(m, &|| format!("set master #{master} on link #{index}"))
    }

    /// `ip link set INDEX name NAME`
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.set_link(m, &|| format!("rename link #{index} to {name}"))
    }

    /// `ip link set INDEX promisc on|off`
    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        let mut m = link_msg(index);
        m.header.change_mask = LinkFlags::Promisc;
        if on {
            m.header.flags = LinkFlags::Promisc;
        }
        self.set_link(m, &|| format!("set promisc {on} on link #{index}"))
    }

    /// `ip link set INDEX allmulticast on|off`
    pub fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        let mut m = link_msg(index);
        m.header.change_mask = LinkFlags::Allmulti;
        if on {
            m.header.flags = LinkFlags::Allmulti;
        }
        self.set_link(m, &|| format!("set allmulticast {on} on link #{index}"))
    }

    /// `ip link set INDEX txqueuelen LEN`
    pub fn set_txqlen(&mut self, index: u32, len: u32) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::TxQueueLen(len));
        self.set_link(m, &|| format!("set txqueuelen {len} on link #{index}"))
    }

    /// `ip link set INDEX type bridge_slave hairpin on|off isolated on|off`
    pub fn set_bridge_port(&mut self, index: u32, spec: &BridgePortSpec) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(bridge_port_message(index, spec)),
            NLM_F_ACK,
            &|| format!("set bridge port options {spec:?} on link #{index}"),
        )
        .map(|_| ())
    }

    /// Wait until a link is operationally up, polling every 250 µs
    /// up to `timeout`. A veth reports up once both ends are up; a bridge
    /// port, once the bridge has moved it to forwarding.
    pub fn wait_oper_up(&mut self, index: u32, timeout: std::time::Duration) -> Result<Link> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let l = self.link_by_index(index)?;
            if l.is_oper_up() {
                return Ok(l);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::protocol(
                    format!("wait for link {} to come up", l.name),
                    format!("still {:?} after {timeout:?}", l.oper_state),
                ));
            }
            std::thread::sleep(std::time::Duration::from_micros(250));
        }
    }

    /// `ip link set INDEX netns NS`
    pub fn set_netns(&mut self, index: u32, ns: &Netns) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        self.set_link(m, &|| {
            format!("move link #{index} to {}", ns.path().display())
        })
    }

    /// `ip link set INDEX netns NS name NAME`: move and rename in one
    /// request, so the link never has to carry its old name in `ns` (where
    /// that name may be taken) nor a temporary one anywhere.
    pub fn move_link(&mut self, index: u32, ns: &Netns, name: &str) -> Result<()> {
        self.set_link(move_message(index, ns.as_raw_fd(), name), &|| {
            format!("move link #{index} to {} as {name}", ns.path().display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("0A:58:0a:01:00:ff").unwrap();
        assert_eq!(m, vec![0x0a, 0x58, 0x0a, 0x01, 0x00, 0xff]);
        assert_eq!(format_mac(&m), "0a:58:0a:01:00:ff");
        for bad in [
            "",
            "0a:58",
            "0a:58:0a:01:00:ff:00",
            "0a-58-0a-01-00-ff",
            "zz:58:0a:01:00:ff",
            "a:58:0a:01:00:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn veth_message_can_enslave_and_bring_up_the_host_end() {
        let m = veth_message(&VethSpec {
            name: "veth1234".into(),
            peer_name: "eth0".into(),
            master: Some(7),
            up: true,
            ..Default::default()
        });
        assert!(m.attributes.contains(&LinkAttribute::Controller(7)));
        assert_eq!(m.header.flags, LinkFlags::Up);
        assert_eq!(m.header.change_mask, LinkFlags::Up);
        let plain = veth_message(&VethSpec {
            name: "veth1234".into(),
            peer_name: "eth0".into(),
            ..Default::default()
        });
        assert!(!plain
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Controller(_))));
        assert!(plain.header.change_mask.is_empty());
    }

    #[test]
    fn veth_message_puts_peer_attributes_in_the_peer() {
        let m = veth_message(&VethSpec {
            name: "veth1234".into(),
            peer_name: "eth0".into(),
            mtu: Some(1400),
            peer_mac: Some(vec![2, 0, 0, 0, 0, 1]),
            ..Default::default()
        });
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("veth1234".into())));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        let info = m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i),
                _ => None,
            })
            .unwrap();
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else {
            panic!("no peer: {info:?}")
        };
        assert!(peer
            .attributes
            .contains(&LinkAttribute::IfName("eth0".into())));
        assert!(peer
            .attributes
            .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1])));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Address(_))));
    }

    #[test]
    fn move_message_renames_in_the_same_request() {
        let m = move_message(9, 42, "eth1");
        assert_eq!(m.header.index, 9);
        assert_eq!(
            m.attributes,
            vec![
                LinkAttribute::NetNsFd(42),
                LinkAttribute::IfName("eth1".into())
            ]
        );
    }

    #[test]
    fn set_up_changes_only_the_up_flag() {
        let m = set_up_message(7, true);
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.change_mask, LinkFlags::Up);
        assert_eq!(m.header.flags, LinkFlags::Up);
        let m = set_up_message(7, false);
        assert!(m.header.flags.is_empty());
        assert_eq!(m.header.change_mask, LinkFlags::Up);
    }

    #[test]
    fn bridge_message_sets_vlan_filtering_only_when_asked() {
        let m = bridge_message(&BridgeSpec {
            name: "cni0".into(),
            ..Default::default()
        });
        assert!(m
            .attributes
            .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge
            )])));
        let m = bridge_message(&BridgeSpec {
            name: "cni0".into(),
            vlan_filtering: Some(true),
            mtu: Some(9000),
        });
        assert!(m.attributes.contains(&LinkAttribute::Mtu(9000)));
        assert!(format!("{m:?}").contains("VlanFiltering(true)"));
    }
}
