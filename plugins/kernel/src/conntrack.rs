//! Connection tracking over ctnetlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_CTNETLINK`): list the entries of one family and delete
//! some, what `conntrack -L -f ipv4` and `conntrack -D ...` do, without the
//! `conntrack` tool. Messages are built and read by pure functions (unit
//! tested below); the verbs on `Netlink<NetfilterMessage>` only send them.
//!
//! The message types are netlink-packet-netfilter's (the rust-netlink
//! family's ctnetlink model). A flow is deleted by sending back the
//! original-direction tuple the dump gave (plus its zone, if any): the
//! kernel looks an entry up by exactly that, so no attribute is rebuilt by
//! hand. Filtering happens here, after one dump per family, as the
//! reference's vishvananda/netlink `ConntrackDeleteFilters` does.

use crate::addr::Family;
use crate::error::Result;
use crate::netlink::Netlink;
use netlink_packet_core::{Nla, NLM_F_DUMP};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use std::net::IpAddr;

/// IANA protocol numbers of the protocols port mappings name.
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// `CTA_ZONE` (include/uapi/linux/netfilter/nfnetlink_conntrack.h), which
/// the crate leaves as an unparsed attribute: an entry in a zone other than
/// 0 is only found again with its zone.
const CTA_ZONE: u16 = 18;

/// `NFNETLINK_V0`, the only nfnetlink header version.
const NFNETLINK_V0: u8 = 0;

/// One conntrack entry, by its original direction (what the first packet
/// of the flow carried, before any NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Ports of port-based protocols (tcp, udp, sctp, ...); `None` for
    /// others (icmp carries an id and type instead).
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// The original tuple exactly as the kernel sent it, sent back to
    /// delete this entry.
    orig: Vec<Tuple>,
    /// `CTA_ZONE`, when the kernel reported one.
    zone: Option<ConntrackAttribute>,
}

fn proto_family(family: Family) -> NetfilterProtoFamily {
    match family {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    }
}

fn message(family: Family, inner: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(proto_family(family), NFNETLINK_V0, 0),
        inner,
    )
}

/// `IPCTNL_MSG_CT_GET`, sent with `NLM_F_DUMP`: every entry of `family`.
pub fn dump_message(family: Family) -> NetfilterMessage {
    message(family, ConntrackMessage::Get(Vec::new()))
}

/// `IPCTNL_MSG_CT_DELETE` of the one entry `flow`.
pub fn delete_message(family: Family, flow: &Flow) -> NetfilterMessage {
    let mut attrs = vec![ConntrackAttribute::CtaTupleOrig(flow.orig.clone())];
    attrs.extend(flow.zone.clone());
    message(family, ConntrackMessage::Delete(attrs))
}

/// The entry a dump message describes; `None` for messages that are not
/// conntrack entries or lack an original tuple with both addresses.
pub fn parse_flow(msg: &NetfilterMessage) -> Option<Flow> {
    let NetfilterMessageInner::Conntrack(ct) = &msg.inner else {
        return None;
    };
    // Dumps answer with IPCTNL_MSG_CT_NEW messages.
    let attrs = match ct {
        ConntrackMessage::New(a) | ConntrackMessage::Get(a) | ConntrackMessage::Delete(a) => a,
        _ => return None,
    };
    let mut orig = None;
    let mut zone = None;
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = Some(t.clone()),
            ConntrackAttribute::Other(nla) if nla.kind() == CTA_ZONE => zone = Some(a.clone()),
            _ => {}
        }
    }
    let orig = orig?;
    let (mut src, mut dst, mut protocol, mut src_port, mut dst_port) =
        (None, None, None, None, None);
    for t in &orig {
        match t {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(n) => protocol = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(n) => src_port = Some(*n),
                        ProtoTuple::DestinationPort(n) => dst_port = Some(*n),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Flow {
        protocol: protocol?,
        src: src?,
        dst: dst?,
        src_port,
        dst_port,
        orig,
        zone,
    })
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl Netlink<NetfilterMessage> {
    /// `conntrack -L -f ipv4|ipv6`: every entry of `family`.
    pub fn conntrack_flows(&mut self, family: Family) -> Result<Vec<Flow>> {
        let what = || format!("list conntrack entries ({})", family_name(family));
        Ok(self
            .request(dump_message(family), NLM_F_DUMP, &what)?
            .iter()
            .filter_map(parse_flow)
            .collect())
    }

    /// `conntrack -D` of one entry. An entry already gone (it expired, or
    /// someone else deleted it since the dump) is not an error: `false`.
    pub fn delete_conntrack(&mut self, family: Family, flow: &Flow) -> Result<bool> {
        let what = || {
            format!(
                "delete conntrack entry proto {} {}:{} -> {}:{}",
                flow.protocol,
                flow.src,
                flow.src_port.unwrap_or(0),
                flow.dst,
                flow.dst_port.unwrap_or(0)
            )
        };
        match self.request(delete_message(family, flow), 0, &what) {
            Ok(_) => Ok(true),
            Err(e) if e.is(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete every entry of `family` that `select` picks (one dump, then
    /// one delete per entry); returns how many were deleted.
    pub fn delete_conntrack_where(
        &mut self,
        family: Family,
        select: impl Fn(&Flow) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        for flow in self.conntrack_flows(family)?.iter().filter(|f| select(f)) {
            if self.delete_conntrack(family, flow)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// `conntrack -D -f FAMILY -p PROTO --orig-port-dst PORT` for each of
    /// `ports`: what the reference portmap does for its UDP mappings
    /// (`DeleteConntrackEntriesForDstPort`), in one dump.
    pub fn delete_conntrack_to_ports(
        &mut self,
        family: Family,
        protocol: u8,
        ports: &[u16],
    ) -> Result<usize> {
        self.delete_conntrack_where(family, |f| {
            f.protocol == protocol && f.dst_port.is_some_and(|p| ports.contains(&p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{
        DefaultNla, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST,
    };
    use netlink_packet_netfilter::conntrack::Protocol;

    fn udp_tuple(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<Tuple> {
        vec![
            Tuple::Ip(vec![
                IPTuple::SourceAddress(src.parse().unwrap()),
                IPTuple::DestinationAddress(dst.parse().unwrap()),
            ]),
            Tuple::Proto(vec![
                ProtoTuple::Protocol(Protocol::Udp),
                ProtoTuple::SourcePort(sport),
                ProtoTuple::DestinationPort(dport),
            ]),
        ]
    }

    fn bytes(msg: NetfilterMessage, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = 7;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        buf
    }

    #[test]
    fn dump_is_a_ctnetlink_get_of_one_family() {
        let buf = bytes(dump_message(Family::V6), NLM_F_DUMP);
        // nlmsghdr (16 bytes) then nfgenmsg (4): nothing else.
        assert_eq!(buf.len(), 20);
        // type: subsystem CTNETLINK (1) << 8 | IPCTNL_MSG_CT_GET (1)
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x0101);
        // nfgenmsg: family AF_INET6 (10), version 0, res_id 0
        assert_eq!(&buf[16..20], &[10, 0, 0, 0]);
        let v4 = bytes(dump_message(Family::V4), NLM_F_DUMP);
        assert_eq!(v4[16], 2);
    }

    #[test]
    fn delete_sends_back_the_original_tuple_and_zone() {
        let zone = ConntrackAttribute::Other(DefaultNla::new(CTA_ZONE, vec![0, 5]));
        let flow = Flow {
            protocol: IPPROTO_UDP,
            src: "10.250.1.2".parse().unwrap(),
            dst: "10.250.0.1".parse().unwrap(),
            src_port: Some(40000),
            dst_port: Some(5353),
            orig: udp_tuple("10.250.1.2", "10.250.0.1", 40000, 5353),
            zone: Some(zone),
        };
        let buf = bytes(delete_message(Family::V4, &flow), 0);
        // type: CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE (2)
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x0102);
        assert_eq!(buf[16], 2); // AF_INET
        let attrs = &buf[20..];
        // CTA_TUPLE_ORIG (1), nested (NLA_F_NESTED 0x8000)
        assert_eq!(u16::from_ne_bytes([attrs[2], attrs[3]]), 0x8001);
        // inside: CTA_TUPLE_IP { CTA_IP_V4_SRC, CTA_IP_V4_DST } then
        // CTA_TUPLE_PROTO { CTA_PROTO_NUM 17, ports in network order }
        let want_ip: &[u8] = &[
            20, 0, 0x01, 0x80, // CTA_TUPLE_IP, nested, 20 bytes
            8, 0, 1, 0, 10, 250, 1, 2, // CTA_IP_V4_SRC
            8, 0, 2, 0, 10, 250, 0, 1, // CTA_IP_V4_DST
        ];
        assert_eq!(&attrs[4..24], want_ip);
        let want_proto: &[u8] = &[
            28, 0, 0x02, 0x80, // CTA_TUPLE_PROTO, nested, 28 bytes
            5, 0, 1, 0, 17, 0, 0, 0, // CTA_PROTO_NUM udp (padded)
            6, 0, 2, 0, 0x9c, 0x40, 0, 0, // CTA_PROTO_SRC_PORT 40000
            6, 0, 3, 0, 0x14, 0xe9, 0, 0, // CTA_PROTO_DST_PORT 5353
        ];
        assert_eq!(&attrs[24..52], want_proto);
        // then CTA_ZONE as it came
        assert_eq!(&attrs[52..], &[6, 0, 18, 0, 0, 5, 0, 0]);
    }

    #[test]
    fn a_dumped_entry_parses_into_a_flow() {
        let msg = message(
            Family::V6,
            ConntrackMessage::New(vec![
                ConntrackAttribute::CtaTupleOrig(udp_tuple("fd00::2", "fd00::1", 1234, 53)),
                ConntrackAttribute::CtaTupleReply(udp_tuple("fd00::9", "fd00::2", 53, 1234)),
                ConntrackAttribute::CtaMark(0),
            ]),
        );
        let f = parse_flow(&msg).unwrap();
        assert_eq!(f.protocol, IPPROTO_UDP);
        assert_eq!(f.src, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(f.dst, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!((f.src_port, f.dst_port), (Some(1234), Some(53)));
        assert_eq!(f.zone, None);
        // Delete carries the original tuple, not the reply.
        let del = delete_message(Family::V6, &f);
        let NetfilterMessageInner::Conntrack(ConntrackMessage::Delete(a)) = &del.inner else {
            panic!("{del:?}");
        };
        assert_eq!(
            a,
            &vec![ConntrackAttribute::CtaTupleOrig(udp_tuple(
                "fd00::2", "fd00::1", 1234, 53
            ))]
        );
    }

    #[test]
    fn entries_without_an_original_tuple_are_skipped() {
        let msg = message(
            Family::V4,
            ConntrackMessage::New(vec![ConntrackAttribute::CtaMark(1)]),
        );
        assert_eq!(parse_flow(&msg), None);
    }
}
