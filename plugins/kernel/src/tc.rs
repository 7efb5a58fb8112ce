//! Traffic control: `tc qdisc` and `tc filter` verbs over rtnetlink, and
//! the IFB link a veth's ingress is redirected through to be shaped.
//!
//! Message builders are pure functions, unit-tested below; the verbs on
//! [`Netlink`] send them. netlink-packet-route 0.34 models the ingress
//! qdisc, the u32 filter and the mirred action, but not the token bucket
//! filter: its options are encoded in [`tbf_options`] and decoded in
//! [`Tbf::from_message`], the one place that knows their bytes.

use crate::error::Result;
use crate::netlink::Netlink;
use netlink_packet_core::{DefaultNla, Nla, NlasIterator, NLA_TYPE_MASK};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcHeader, TcMessage, TcMirror, TcMirrorActionType, TcOption,
    TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

/// The parent of a link's root qdisc (`root`).
pub const ROOT: TcHandle = TcHandle::ROOT;

/// The parent of a link's ingress qdisc (`ingress`, `ffff:fff1`).
pub const INGRESS: TcHandle = TcHandle::INGRESS;

/// The handle of the token bucket filters the bandwidth plugin installs at
/// a link's root, `1:` (the reference's).
pub const TBF_HANDLE: TcHandle = TcHandle { major: 1, minor: 0 };

/// The ingress qdisc's handle, `ffff:` (the only one the kernel allows it).
pub const INGRESS_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};

/// `ETH_P_ALL`: a filter for every protocol (IPv4, IPv6, ARP, ...).
pub const ETH_P_ALL: u16 = 0x0003;

/// The priority of the redirect filter (the reference's).
pub const REDIRECT_PRIORITY: u16 = 1;

/// The class id the redirect filter carries, `1:1` (the reference's; the
/// ingress qdisc has no classes, so it only names the filter's target).
const REDIRECT_CLASS: TcHandle = TcHandle { major: 1, minor: 1 };

/// Scheduler ticks per microsecond. Since Linux 2.6.31 a tick is 64 ns
/// (`PSCHED_SHIFT` 6): `/proc/net/psched` says `000003e8 00000040`, which
/// tc and the Go netlink library turn into 1000/64 ticks per µs. The kernel
/// converts `buffer` to nanoseconds with `<< 6` and back with `>> 6`, so a
/// value written is the value dumped.
pub const TICKS_PER_USEC: f64 = 1000.0 / 64.0;

// ---- The token bucket filter's options (linux/pkt_sched.h) ----
//
// netlink-packet-route 0.34 has no type for them: a TBF qdisc's
// TCA_OPTIONS is built here from raw attributes and parsed back from the
// one opaque attribute the crate leaves for kinds it does not know.
//
//   TCA_TBF_PARMS   struct tc_tbf_qopt {
//                       struct tc_ratespec rate;      12 bytes
//                       struct tc_ratespec peakrate;  12 bytes
//                       __u32 limit;                  bytes that may queue
//                       __u32 buffer;                 bucket size, in ticks
//                       __u32 mtu;                    peak-rate bucket (unused)
//                   }                                 36 bytes, host order
//   struct tc_ratespec { u8 cell_log; u8 linklayer; u16 overhead;
//                        s16 cell_align; u16 mpu; u32 rate (bytes/s); }
//   TCA_TBF_RATE64  u64 bytes/s, when the rate does not fit `rate` above
//
// No rate table (TCA_TBF_RTAB): kernels since 3.13 compute rates
// themselves, and the reference does not send one either.
const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TC_TBF_QOPT_LEN: usize = 36;
/// `TC_LINKLAYER_ETHERNET`, what tc puts in a rate spec.
const TC_LINKLAYER_ETHERNET: u8 = 1;

/// A token bucket filter's parameters, as the kernel takes and reports
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// The bucket: the time to send a full burst at `rate`, in scheduler
    /// ticks (tc's `buffer`).
    pub buffer: u32,
    /// Bytes that may wait for tokens before packets are dropped.
    pub limit: u32,
}

impl Tbf {
    /// The filter the reference bandwidth plugin installs for a rate in
    /// bits per second, a burst in bits and a latency: the same divisions,
    /// truncations and float arithmetic, so its CHECK accepts ours and ours
    /// accepts its. `rate_bits` must be at least 8 (one byte a second).
    pub fn new(rate_bits: u64, burst_bits: u64, latency_ms: u32) -> Tbf {
        let rate = rate_bits / 8;
        // The reference converts to uint32 here; callers keep burst/8
        // below 4 GiB, as the reference's validation does.
        let burst = (burst_bits / 8) as u32;
        let usec = (f64::from(burst) * 1e6 / rate as f64) as u32;
        let buffer = (f64::from(usec) * TICKS_PER_USEC) as u32;
        let latency_usec = 1e6 * (f64::from(latency_ms) / 1000.0);
        let limit = ((rate as f64 * latency_usec / 1e6) as u32).wrapping_add(burst);
        Tbf {
            rate,
            buffer,
            limit,
        }
    }

    /// The parameters of a `tbf` qdisc message; `None` for another kind or
    /// options without `TCA_TBF_PARMS`.
    pub fn from_message(msg: &TcMessage) -> Option<Tbf> {
        if kind_of(&msg.attributes) != "tbf" {
            return None;
        }
        let mut parms = None;
        let mut rate64 = None;
        for (kind, value) in tbf_attributes(&msg.attributes) {
            match kind {
                TCA_TBF_PARMS if value.len() >= TC_TBF_QOPT_LEN => parms = Some(value),
                TCA_TBF_RATE64 if value.len() >= 8 => {
                    rate64 = Some(u64::from_ne_bytes(value[..8].try_into().ok()?))
                }
                _ => {}
            }
        }
        let p = parms?;
        let u32_at = |at: usize| u32::from_ne_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        let rate32 = u64::from(u32_at(8));
        Some(Tbf {
            rate: rate64.map_or(rate32, |r| r.max(rate32)),
            limit: u32_at(24),
            buffer: u32_at(28),
        })
    }
}

/// The attributes inside a tbf message's `TCA_OPTIONS`, as (type, value):
/// from a dump (one opaque nested attribute) or from [`tbf_options`].
fn tbf_attributes(attrs: &[TcAttribute]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    for a in attrs {
        let TcAttribute::Options(opts) = a else {
            continue;
        };
        for o in opts {
            let TcOption::Other(nla) = o else { continue };
            let value = nla_value(nla);
            if nla.kind() & NLA_TYPE_MASK == TCA_OPTIONS {
                for inner in NlasIterator::new(&value[..]).flatten() {
                    out.push((inner.kind(), inner.value().to_vec()));
                }
            } else {
                out.push((nla.kind() & NLA_TYPE_MASK, value));
            }
        }
    }
    out
}

/// The value bytes of an attribute the crate keeps opaque.
fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut v = vec![0; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

/// `TCA_OPTIONS` of a tbf qdisc: `TCA_TBF_PARMS`, and `TCA_TBF_RATE64`
/// when the rate needs more than 32 bits (the 32-bit field then says
/// `u32::MAX`, as tc writes it).
pub fn tbf_options(tbf: &Tbf) -> Vec<TcOption> {
    let mut parms = [0u8; TC_TBF_QOPT_LEN];
    // rate: cell_log 0, linklayer, overhead 0, cell_align 0, mpu 0, rate.
    parms[1] = TC_LINKLAYER_ETHERNET;
    let rate32 = u32::try_from(tbf.rate).unwrap_or(u32::MAX);
    parms[8..12].copy_from_slice(&rate32.to_ne_bytes());
    // peakrate (12..24) stays zero: no peak rate.
    parms[24..28].copy_from_slice(&tbf.limit.to_ne_bytes());
    parms[28..32].copy_from_slice(&tbf.buffer.to_ne_bytes());
    // mtu (32..36) stays zero: only used with a peak rate.
    let mut opts = vec![TcOption::Other(DefaultNla::new(
        TCA_TBF_PARMS,
        parms.to_vec(),
    ))];
    if tbf.rate > u64::from(u32::MAX) {
        opts.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            tbf.rate.to_ne_bytes().to_vec(),
        )));
    }
    opts
}

fn kind_of(attrs: &[TcAttribute]) -> &str {
    attrs
        .iter()
        .find_map(|a| match a {
            TcAttribute::Kind(k) => Some(k.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

fn tc_message(index: u32, handle: TcHandle, parent: TcHandle, info: u32) -> TcMessage {
    TcMessage::from_parts(
        TcHeader {
            index: index as i32,
            handle,
            parent,
            info,
            ..Default::default()
        },
        Vec::new(),
    )
}

/// `RTM_NEWQDISC` for `tc qdisc add dev INDEX root handle 1: tbf ...`.
pub fn tbf_qdisc_message(index: u32, tbf: &Tbf) -> TcMessage {
    let mut m = tc_message(index, TBF_HANDLE, TcHandle::ROOT, 0);
    m.attributes.push(TcAttribute::Kind("tbf".into()));
    m.attributes.push(TcAttribute::Options(tbf_options(tbf)));
    m
}

/// `RTM_NEWQDISC` for `tc qdisc add dev INDEX handle ffff: ingress`.
pub fn ingress_qdisc_message(index: u32) -> TcMessage {
    let mut m = tc_message(index, INGRESS_HANDLE, TcHandle::INGRESS, 0);
    m.attributes.push(TcAttribute::Kind("ingress".into()));
    m
}

/// `tcm_info` of a filter: its priority and protocol (network order).
fn filter_info(priority: u16, protocol: u16) -> u32 {
    (u32::from(priority) << 16) | u32::from(protocol.to_be())
}

/// `RTM_NEWTFILTER` for
/// `tc filter add dev INDEX parent ffff: protocol all prio 1 u32 match u32 0 0
///  classid 1:1 action mirred egress redirect dev TO`:
/// everything arriving on the link goes out of `to` (an IFB), which hands
/// it back to the link's ingress once its own qdisc let it through.
pub fn redirect_filter_message(index: u32, to: u32) -> TcMessage {
    let mut m = tc_message(
        index,
        TcHandle::UNSPEC,
        INGRESS_HANDLE,
        filter_info(REDIRECT_PRIORITY, ETH_P_ALL),
    );
    // One key matching any value at offset 0: every packet.
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![TcU32Key::default()];
    let mut mirror = TcMirror::default();
    // The packet is consumed by the redirect ("stolen"), not passed on.
    mirror.generic.action = TcActionType::Stolen;
    mirror.eaction = TcMirrorActionType::EgressRedir;
    mirror.ifindex = to;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirror,
        ))]),
    ];
    m.attributes.push(TcAttribute::Kind("u32".into()));
    m.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::ClassId(REDIRECT_CLASS)),
        TcOption::U32(TcFilterU32Option::Selector(sel)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]));
    m
}

/// `RTM_NEWLINK` for `ip link add NAME [mtu M] [txqueuelen Q] up type ifb`.
pub fn ifb_message(name: &str, mtu: Option<u32>, txqlen: Option<u32>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(q) = txqlen {
        m.attributes.push(LinkAttribute::TxQueueLen(q));
    }
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]));
    m
}

/// `RTM_SETLINK` for `ip link set INDEX alias ALIAS`.
pub fn alias_message(index: u32, alias: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::IfAlias(alias.to_string()));
    m
}

/// A queueing discipline on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub index: u32,
    pub handle: TcHandle,
    pub parent: TcHandle,
    /// `tbf`, `ingress`, `noqueue`, ...
    pub kind: String,
    pub message: TcMessage,
}

impl Qdisc {
    /// At the link's root (egress).
    pub fn is_root(&self) -> bool {
        self.parent == TcHandle::ROOT
    }

    /// The ingress qdisc.
    pub fn is_ingress(&self) -> bool {
        self.kind == "ingress" && self.parent == TcHandle::INGRESS
    }

    /// Its token bucket parameters, when it is a `tbf`.
    pub fn tbf(&self) -> Option<Tbf> {
        Tbf::from_message(&self.message)
    }
}

impl From<TcMessage> for Qdisc {
    fn from(m: TcMessage) -> Qdisc {
        Qdisc {
            index: m.header.index as u32,
            handle: m.header.handle,
            parent: m.header.parent,
            kind: kind_of(&m.attributes).to_string(),
            message: m,
        }
    }
}

/// A classifier (filter) on a qdisc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub index: u32,
    pub parent: TcHandle,
    /// `u32`, `matchall`, ...
    pub kind: String,
    pub priority: u16,
    /// The ethertype it applies to (`ETH_P_ALL` for all).
    pub protocol: u16,
    /// The link an egress-redirect action sends matching packets to.
    pub redirect: Option<u32>,
    pub message: TcMessage,
}

impl From<TcMessage> for Filter {
    fn from(m: TcMessage) -> Filter {
        let mut redirect = None;
        for a in &m.attributes {
            let TcAttribute::Options(opts) = a else {
                continue;
            };
            for o in opts {
                let TcOption::U32(TcFilterU32Option::Action(actions)) = o else {
                    continue;
                };
                for act in actions {
                    for attr in &act.attributes {
                        let TcActionAttribute::Options(aopts) = attr else {
                            continue;
                        };
                        for ao in aopts {
                            if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = ao {
                                if p.eaction == TcMirrorActionType::EgressRedir {
                                    redirect = redirect.or(Some(p.ifindex));
                                }
                            }
                        }
                    }
                }
            }
        }
        Filter {
            index: m.header.index as u32,
            parent: m.header.parent,
            kind: kind_of(&m.attributes).to_string(),
            priority: (m.header.info >> 16) as u16,
            protocol: u16::from_be(m.header.info as u16),
            redirect,
            message: m,
        }
    }
}

impl Netlink {
    /// `tc qdisc show dev INDEX`
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<Qdisc>> {
        let out = self.request(
            RouteNetlinkMessage::GetQueueDiscipline(tc_message(
                index,
                TcHandle::UNSPEC,
                TcHandle::UNSPEC,
                0,
            )),
            NLM_F_DUMP,
            &|| format!("list qdiscs of link #{index}"),
        )?;
        // The kernel dumps the qdiscs of every link; keep this one's.
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) => Some(Qdisc::from(q)),
                _ => None,
            })
            .filter(|q| q.index == index)
            .collect())
    }

    /// `tc qdisc add ...` from a prepared message; `EEXIST` when the link
    /// already has a qdisc there.
    pub fn add_qdisc(&mut self, msg: TcMessage, what: &dyn Fn() -> String) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
        .map(|_| ())
    }

    /// `tc qdisc del dev INDEX parent PARENT handle HANDLE`
    pub fn del_qdisc(&mut self, index: u32, handle: TcHandle, parent: TcHandle) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelQueueDiscipline(tc_message(index, handle, parent, 0)),
            0,
            &|| format!("delete qdisc {handle} (parent {parent}) of link #{index}"),
        )
        .map(|_| ())
    }

    /// `tc filter show dev INDEX parent PARENT`
    pub fn filters(&mut self, index: u32, parent: TcHandle) -> Result<Vec<Filter>> {
        let out = self.request(
            RouteNetlinkMessage::GetTrafficFilter(tc_message(index, TcHandle::UNSPEC, parent, 0)),
            NLM_F_DUMP,
            &|| format!("list filters of link #{index} parent {parent}"),
        )?;
        Ok(out
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewTrafficFilter(f) => Some(Filter::from(f)),
                _ => None,
            })
            .filter(|f| f.index == index)
            .collect())
    }

    /// `tc filter add ...` from a prepared message.
    pub fn add_filter(&mut self, msg: TcMessage, what: &dyn Fn() -> String) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewTrafficFilter(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            what,
        )
        .map(|_| ())
    }

    /// `ip link add NAME [mtu M] [txqueuelen Q] up type ifb`; `EEXIST` when
    /// the name is taken.
    pub fn create_ifb(&mut self, name: &str, mtu: Option<u32>, txqlen: Option<u32>) -> Result<()> {
        self.create_link(ifb_message(name, mtu, txqlen), &|| {
            format!("create ifb {name}")
        })
    }

    /// `ip link set INDEX alias ALIAS`
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.request(
            RouteNetlinkMessage::SetLink(alias_message(index, alias)),
            0,
            &|| format!("set alias {alias:?} on link #{index}"),
        )
        .map(|_| ())
    }
}

/// A link's alias (`ip link show` prints it as `alias ...`).
pub fn link_alias(link: &crate::Link) -> Option<&str> {
    link.message.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.as_str()),
        _ => None,
    })
}

/// A link's transmit queue length.
pub fn link_txqlen(link: &crate::Link) -> Option<u32> {
    link.message.attributes.iter().find_map(|a| match a {
        LinkAttribute::TxQueueLen(q) => Some(*q),
        _ => None,
    })
}

/// Map "no such qdisc or link" answers to `Ok`: deleting what is already
/// gone (or went between a dump and the delete).
pub fn tolerate_gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    /// Serialize and parse back, as the kernel would see and echo it.
    fn round_trip(m: &TcMessage) -> TcMessage {
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        TcMessage::parse(&buf[..]).expect("parse what we built")
    }

    #[test]
    fn tbf_parameters_match_the_reference_arithmetic() {
        // 1 Mbit/s, 1 Mbit burst: 125000 B/s, 125000 B bucket = 1 s =
        // 15625000 ticks; limit = 125000 * 0.025 + 125000.
        let t = Tbf::new(1_000_000, 1_000_000, 25);
        assert_eq!(t.rate, 125_000);
        assert_eq!(t.buffer, 15_625_000);
        assert_eq!(t.limit, 3125 + 125_000);
        // Truncations: 8000 bits/s (1000 B/s), 10 bits (1 B): 1000 µs.
        let t = Tbf::new(8000, 10, 25);
        assert_eq!((t.rate, t.buffer, t.limit), (1000, 15_625, 25 + 1));
    }

    #[test]
    fn tbf_message_carries_parms_and_round_trips() {
        let tbf = Tbf::new(16_000_000, 256_000, 25);
        let m = tbf_qdisc_message(7, &tbf);
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.handle, TBF_HANDLE);
        assert_eq!(m.header.parent, TcHandle::ROOT);
        let attrs = tbf_attributes(&m.attributes);
        assert_eq!(attrs.len(), 1, "no RATE64 for a 32-bit rate");
        let (kind, parms) = &attrs[0];
        assert_eq!(*kind, TCA_TBF_PARMS);
        assert_eq!(parms.len(), 36);
        assert_eq!(parms[1], TC_LINKLAYER_ETHERNET);
        assert_eq!(&parms[8..12], &2_000_000u32.to_ne_bytes());
        assert!(parms[12..24].iter().all(|b| *b == 0), "no peak rate");
        assert_eq!(Tbf::from_message(&m), Some(tbf));
        // Parsed back, the options are one opaque nested attribute.
        let back = Qdisc::from(round_trip(&m));
        assert_eq!(back.kind, "tbf");
        assert!(back.is_root());
        assert_eq!(back.tbf(), Some(tbf));
    }

    #[test]
    fn rates_above_32_bits_use_rate64() {
        let tbf = Tbf::new(100_000_000_000, 8_000_000, 25);
        assert_eq!(tbf.rate, 12_500_000_000);
        let m = tbf_qdisc_message(3, &tbf);
        let attrs = tbf_attributes(&m.attributes);
        assert_eq!(attrs.len(), 2);
        assert_eq!(&attrs[0].1[8..12], &u32::MAX.to_ne_bytes());
        assert_eq!(
            attrs[1],
            (TCA_TBF_RATE64, 12_500_000_000u64.to_ne_bytes().to_vec())
        );
        assert_eq!(Qdisc::from(round_trip(&m)).tbf(), Some(tbf));
    }

    #[test]
    fn other_kinds_have_no_tbf() {
        let q = Qdisc::from(round_trip(&ingress_qdisc_message(4)));
        assert_eq!(q.kind, "ingress");
        assert!(q.is_ingress() && !q.is_root());
        assert_eq!(q.handle, INGRESS_HANDLE);
        assert_eq!(q.tbf(), None);
    }

    #[test]
    fn redirect_filter_matches_everything_and_steals_to_the_target() {
        let m = redirect_filter_message(5, 42);
        assert_eq!(m.header.parent, INGRESS_HANDLE);
        // prio 1, protocol ETH_P_ALL in network order, as tc encodes them.
        assert_eq!(m.header.info, 0x0001_0300);
        let f = Filter::from(round_trip(&m));
        assert_eq!(f.kind, "u32");
        assert_eq!((f.priority, f.protocol), (1, ETH_P_ALL));
        assert_eq!(f.redirect, Some(42));
        let text = format!("{:?}", f.message);
        assert!(
            text.contains("Stolen") && text.contains("EgressRedir"),
            "{text}"
        );
        assert!(text.contains("nkeys: 1"), "{text}");
        assert!(text.contains("Terminal"), "{text}");
    }

    #[test]
    fn ifb_message_is_up_with_the_given_sizes() {
        let m = ifb_message("bwp0123456789ab", Some(1400), Some(1000));
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.header.change_mask.contains(LinkFlags::Up));
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("bwp0123456789ab".into())));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(m.attributes.contains(&LinkAttribute::TxQueueLen(1000)));
        assert!(m
            .attributes
            .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Ifb
            )])));
        let bare = ifb_message("x", None, None);
        assert!(!bare
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Mtu(_) | LinkAttribute::TxQueueLen(_))));
    }

    #[test]
    fn alias_message_sets_only_the_alias() {
        let m = alias_message(9, "cni bandwidth");
        assert_eq!(m.header.index, 9);
        assert_eq!(
            m.attributes,
            vec![LinkAttribute::IfAlias("cni bandwidth".into())]
        );
    }
}
