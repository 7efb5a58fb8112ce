//! VRF links (`ip link add NAME type vrf table TABLE`): an L3 master device
//! whose enslaved interfaces route through its own table.

use crate::error::Result;
use crate::link::Link;
use crate::netlink::Netlink;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVrf, LinkAttribute, LinkInfo, LinkMessage,
};
use std::collections::BTreeSet;

/// `RTM_NEWLINK` for a VRF `name` bound to routing `table`.
pub fn vrf_message(name: &str, table: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vrf),
        LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(table)])),
    ]));
    m
}

impl Link {
    /// A VRF's routing table; `None` for other links.
    pub fn vrf_table(&self) -> Option<u32> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Vrf(d)) => d.iter().find_map(|x| match x {
                    InfoVrf::TableId(t) => Some(*t),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        })
    }
}

/// The lowest table from 1 up that no VRF in `links` uses (what the
/// reference picks when no table is configured).
pub fn free_vrf_table(links: &[Link]) -> Option<u32> {
    let used: BTreeSet<u32> = links.iter().filter_map(Link::vrf_table).collect();
    (1..u32::MAX).find(|t| !used.contains(t))
}

impl Netlink {
    /// `ip link add NAME type vrf table TABLE`
    pub fn create_vrf(&mut self, name: &str, table: u32) -> Result<()> {
        self.create_link(vrf_message(name, table), &|| {
            format!("create vrf {name} (table {table})")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrf_message_names_kind_and_table() {
        let m = vrf_message("vrf-blue", 1001);
        assert_eq!(
            m.attributes,
            vec![
                LinkAttribute::IfName("vrf-blue".into()),
                LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Vrf),
                    LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(1001)])),
                ]),
            ]
        );
    }

    #[test]
    fn vrf_table_is_read_back_and_the_free_one_skips_used_tables() {
        let mut msg = vrf_message("a", 1);
        msg.header.index = 7;
        let a = Link::from(msg);
        assert_eq!(a.vrf_table(), Some(1));
        let b = Link::from(vrf_message("b", 2));
        let c = Link::from(vrf_message("c", 4));
        let plain = Link::from(LinkMessage::default());
        assert_eq!(plain.vrf_table(), None);
        assert_eq!(free_vrf_table(&[a.clone(), b, c, plain]), Some(3));
        assert_eq!(free_vrf_table(&[]), Some(1));
    }
}
