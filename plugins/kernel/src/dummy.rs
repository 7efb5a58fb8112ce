//! Dummy links: `ip link add NAME type dummy`, created straight into a
//! target namespace.

use crate::error::Result;
use crate::netlink::Netlink;
use crate::netns::Netns;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use std::os::fd::AsRawFd;

/// `RTM_NEWLINK` for a dummy link `name`. With `netns` the kernel creates
/// it inside that namespace (the name need only be free there); without,
/// in the sender's.
pub fn dummy_message(name: &str, netns: Option<&Netns>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(ns) = netns {
        m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Dummy,
        )]));
    m
}

impl Netlink {
    /// `ip link add NAME type dummy [netns NS]`
    pub fn create_dummy(&mut self, name: &str, netns: Option<&Netns>) -> Result<()> {
        self.create_link(dummy_message(name, netns), &|| {
            format!("create dummy {name}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_has_its_name_and_kind_and_no_namespace_unless_given() {
        let m = dummy_message("dummy0", None);
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("dummy0".into())));
        assert!(m
            .attributes
            .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy
            )])));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::NetNsFd(_))));
        assert_eq!(m.attributes.len(), 2);
    }

    #[test]
    fn dummy_into_a_namespace_carries_its_fd() {
        let ns = Netns::open("/proc/self/ns/net").expect("own namespace");
        let m = dummy_message("d", Some(&ns));
        assert!(m
            .attributes
            .contains(&LinkAttribute::NetNsFd(ns.as_raw_fd())));
    }
}
