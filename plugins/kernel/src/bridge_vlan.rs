//! VLAN filtering on Linux bridges: the bridge's `vlan_filtering` switch
//! and each port's VLAN table, as `bridge vlan` shows and edits them.
//!
//! A port's table is edited with `RTM_SETLINK` (add) and `RTM_DELLINK`
//! (delete) in the AF_BRIDGE family, carrying `IFLA_AF_SPEC` with
//! `IFLA_BRIDGE_FLAGS` = master (the bridge applies it to its port) and
//! one `IFLA_BRIDGE_VLAN_INFO` per VLAN, or a begin/end pair per range.
//! The family is what makes `RTM_DELLINK` delete a VLAN rather than the
//! link itself: [`port_vlans_message`] is the only place that builds one.
//! netlink-packet-route 0.34 has every type this needs.

use crate::error::{Error, Result};
use crate::link::Link;
use crate::netlink::Netlink;
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoData, InfoKind,
    LinkAttribute, LinkExtentMask, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// One entry of a port's VLAN table: one VLAN (`first == last`) or a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    pub first: u16,
    pub last: u16,
    /// Untagged frames arriving on the port join this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

impl PortVlan {
    /// A tagged VLAN (a trunk member).
    pub fn tagged(vid: u16) -> PortVlan {
        PortVlan::range(vid, vid)
    }

    /// A range of tagged VLANs.
    pub fn range(first: u16, last: u16) -> PortVlan {
        PortVlan {
            first,
            last,
            pvid: false,
            untagged: false,
        }
    }

    /// The port's access (native) VLAN: PVID, egress untagged.
    pub fn access(vid: u16) -> PortVlan {
        PortVlan {
            first: vid,
            last: vid,
            pvid: true,
            untagged: true,
        }
    }

    pub fn contains(&self, vid: u16) -> bool {
        (self.first..=self.last).contains(&vid)
    }
}

/// Sorted VLAN IDs as the fewest tagged ranges (`[5, 6, 7, 9]` gives
/// 5-7 and 9): one request for a whole trunk instead of one per VLAN.
pub fn tagged_ranges(vids: &[u16]) -> Vec<PortVlan> {
    let mut out: Vec<PortVlan> = Vec::new();
    for &v in vids {
        match out.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(v) => r.last = v,
            Some(r) if r.contains(v) => {}
            _ => out.push(PortVlan::tagged(v)),
        }
    }
    out
}

/// The `IFLA_BRIDGE_VLAN_INFO` entries for `vlans`.
fn vlan_infos(vlans: &[PortVlan]) -> Vec<AfSpecBridge> {
    let mut out = Vec::new();
    for v in vlans {
        let mut flags = BridgeVlanInfoFlags::empty();
        if v.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if v.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        if v.first == v.last {
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags,
                vid: v.first,
            }));
        } else {
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: flags | BridgeVlanInfoFlags::RangeBegin,
                vid: v.first,
            }));
            out.push(AfSpecBridge::VlanInfo(BridgeVlanInfo {
                flags: flags | BridgeVlanInfoFlags::RangeEnd,
                vid: v.last,
            }));
        }
    }
    out
}

/// The body of `bridge vlan add|del dev PORT vid ...`: an AF_BRIDGE link
/// message for `port` whose `IFLA_AF_SPEC` says "master" and lists
/// `vlans`. Sent as `RTM_SETLINK` it adds them (updating the flags of a
/// VLAN already there); as `RTM_DELLINK` it removes them.
pub fn port_vlans_message(port: u32, vlans: &[PortVlan]) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.header.index = port;
    let mut spec = vec![AfSpecBridge::Flags(BridgeFlag::Controller)];
    spec.extend(vlan_infos(vlans));
    m.attributes.push(LinkAttribute::AfSpecBridge(spec));
    m
}

/// The request of `bridge vlan show`: a dump of every bridge port in the
/// AF_BRIDGE family, asking for VLAN tables with ranges compressed.
pub fn port_vlans_dump_message() -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Bridge;
    m.attributes.push(LinkAttribute::ExtMask(vec![
        LinkExtentMask::BrvlanCompressed,
    ]));
    m
}

/// The VLAN table in one AF_BRIDGE link message of a dump.
pub fn parse_port_vlans(m: &LinkMessage) -> Vec<PortVlan> {
    let mut out = Vec::new();
    let mut begin: Option<BridgeVlanInfo> = None;
    for a in &m.attributes {
        let LinkAttribute::AfSpecBridge(spec) = a else {
            continue;
        };
        for s in spec {
            let AfSpecBridge::VlanInfo(info) = s else {
                continue;
            };
            let entry = |first: u16, flags: BridgeVlanInfoFlags| PortVlan {
                first,
                last: info.vid,
                pvid: flags.contains(BridgeVlanInfoFlags::Pvid),
                untagged: flags.contains(BridgeVlanInfoFlags::Untagged),
            };
            if info.flags.contains(BridgeVlanInfoFlags::RangeBegin) {
                begin = Some(*info);
            } else if info.flags.contains(BridgeVlanInfoFlags::RangeEnd) {
                let b = begin.take().unwrap_or(*info);
                out.push(entry(b.vid, b.flags));
            } else {
                out.push(entry(info.vid, info.flags));
            }
        }
    }
    out
}

/// `RTM_NEWLINK` (without create flags: the kernel's changelink) turning
/// VLAN filtering on or off on an existing bridge, as `ip link set BR type
/// bridge vlan_filtering 1` does. `RTM_SETLINK` ignores `IFLA_LINKINFO`,
/// so this must be a NEWLINK; a new bridge gets it in its creating
/// message instead (`link::bridge_message`).
pub fn vlan_filtering_message(bridge: u32, on: bool) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = bridge;
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
    ]));
    m
}

impl Link {
    /// A bridge's `vlan_filtering`; `None` for other links.
    pub fn vlan_filtering(&self) -> Option<bool> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Bridge(d)) => d.iter().find_map(|x| match x {
                    InfoBridge::VlanFiltering(on) => Some(*on),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        })
    }
}

fn describe(vlans: &[PortVlan]) -> String {
    vlans
        .iter()
        .map(|v| {
            let mut s = if v.first == v.last {
                v.first.to_string()
            } else {
                format!("{}-{}", v.first, v.last)
            };
            if v.pvid {
                s.push_str(" pvid");
            }
            if v.untagged {
                s.push_str(" untagged");
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Netlink {
    /// `bridge vlan add dev PORT vid VID [pvid] [untagged] master`, for
    /// every entry of `vlans` in one request.
    pub fn add_port_vlans(&mut self, port: u32, vlans: &[PortVlan]) -> Result<()> {
        self.request(
            RouteNetlinkMessage::SetLink(port_vlans_message(port, vlans)),
            0,
            &|| format!("add VLANs {} to bridge port #{port}", describe(vlans)),
        )
        .map(|_| ())
    }

    /// `bridge vlan del dev PORT vid VID master`, for every entry of `vlans`.
    pub fn del_port_vlans(&mut self, port: u32, vlans: &[PortVlan]) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelLink(port_vlans_message(port, vlans)),
            0,
            &|| format!("delete VLANs {} from bridge port #{port}", describe(vlans)),
        )
        .map(|_| ())
    }

    /// `bridge vlan show dev PORT`: the port's VLAN table (empty for a
    /// link that is no bridge port).
    pub fn port_vlans(&mut self, port: u32) -> Result<Vec<PortVlan>> {
        let out = self.request(
            RouteNetlinkMessage::GetLink(port_vlans_dump_message()),
            NLM_F_DUMP,
            &|| format!("list VLANs of bridge port #{port}"),
        )?;
        Ok(out
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == port => {
                    Some(parse_port_vlans(l))
                }
                _ => None,
            })
            .flatten()
            .collect())
    }

    /// `ip link set BRIDGE type bridge vlan_filtering 0|1`
    pub fn set_vlan_filtering(&mut self, bridge: u32, on: bool) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(vlan_filtering_message(bridge, on)),
            NLM_F_ACK,
            &|| format!("set vlan_filtering {} on bridge #{bridge}", u8::from(on)),
        )
        .map(|_| ())
        .map_err(|e| match e.kind {
            crate::error::Kind::Errno(n) if n == libc::EOPNOTSUPP => Error::errno(
                format!("{} (this kernel has no bridge VLAN filtering)", e.what),
                n,
            ),
            _ => e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn spec(m: &LinkMessage) -> &Vec<AfSpecBridge> {
        m.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::AfSpecBridge(s) => Some(s),
                _ => None,
            })
            .expect("IFLA_AF_SPEC")
    }

    #[test]
    fn access_vlan_is_pvid_untagged_for_the_master() {
        let m = port_vlans_message(9, &[PortVlan::access(100)]);
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(m.header.index, 9);
        assert_eq!(
            spec(&m),
            &vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
                    vid: 100
                }),
            ]
        );
        // On the wire: ifinfomsg family AF_BRIDGE (7); IFLA_AF_SPEC (26)
        // holding IFLA_BRIDGE_FLAGS (0) = 1 (master) and
        // IFLA_BRIDGE_VLAN_INFO (2) = {flags 0x6, vid 100}.
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        assert_eq!(buf[0], libc::AF_BRIDGE as u8);
        assert_eq!(&buf[4..8], &9u32.to_ne_bytes());
        let want: [u8; 20] = [
            20, 0, 26, 0, // IFLA_AF_SPEC: 4 + 8 + 8
            6, 0, 0, 0, 1, 0, 0, 0, // IFLA_BRIDGE_FLAGS = master, padded
            8, 0, 2, 0, 6, 0, 100, 0, // IFLA_BRIDGE_VLAN_INFO
        ];
        assert_eq!(&buf[16..], &want[..], "{buf:?}");
    }

    #[test]
    fn trunk_ranges_are_begin_end_pairs() {
        let r = tagged_ranges(&[5, 6, 7, 9, 200, 201]);
        assert_eq!(
            r,
            vec![
                PortVlan::range(5, 7),
                PortVlan::tagged(9),
                PortVlan::range(200, 201)
            ]
        );
        assert_eq!(tagged_ranges(&[]), vec![]);
        assert_eq!(tagged_ranges(&[4094]), vec![PortVlan::tagged(4094)]);
        let m = port_vlans_message(3, &r);
        assert_eq!(
            spec(&m)[1..],
            [
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::RangeBegin,
                    vid: 5
                }),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::RangeEnd,
                    vid: 7
                }),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::empty(),
                    vid: 9
                }),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::RangeBegin,
                    vid: 200
                }),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::RangeEnd,
                    vid: 201
                }),
            ]
        );
    }

    #[test]
    fn a_dumped_table_parses_back_with_ranges() {
        let vlans = [
            PortVlan::access(1),
            PortVlan::range(10, 20),
            PortVlan::tagged(30),
        ];
        // Round trip through the wire format, as the kernel would send it.
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
        let mut packet =
            NetlinkMessage::from(RouteNetlinkMessage::NewLink(port_vlans_message(4, &vlans)));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = back.payload else {
            panic!("{back:?}")
        };
        assert_eq!(parse_port_vlans(&m), vlans.to_vec());
        assert_eq!(parse_port_vlans(&LinkMessage::default()), vec![]);
    }

    #[test]
    fn the_dump_asks_for_compressed_vlan_tables() {
        let m = port_vlans_dump_message();
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(
            m.attributes,
            vec![LinkAttribute::ExtMask(vec![
                LinkExtentMask::BrvlanCompressed
            ])]
        );
    }

    #[test]
    fn vlan_filtering_is_changed_through_linkinfo() {
        let m = vlan_filtering_message(5, true);
        assert_eq!(m.header.index, 5);
        assert_eq!(m.header.interface_family, AddressFamily::Unspec);
        let l = Link::from(m);
        assert_eq!(l.vlan_filtering(), Some(true));
        assert_eq!(l.kind.as_deref(), Some("bridge"));
        assert_eq!(
            Link::from(vlan_filtering_message(5, false)).vlan_filtering(),
            Some(false)
        );
    }
}
