//! What every netfilter rule set of ours shares, whichever plugin writes
//! it (bridge and ptp masquerade, portmap, firewall): the choice of
//! backend, how a rule names the attachment it belongs to, and what a
//! teardown does when a backend's tool is missing. The tools themselves
//! are driven by [`crate::nft`] and [`crate::iptables`].

use crate::error::Result;
use crate::nft;

/// Which firewall tool carries the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    /// `ipMasqBackend`: `"nftables"` (default) or `"iptables"`.
    pub fn parse(s: Option<&str>) -> std::result::Result<Backend, String> {
        match s {
            None | Some("") | Some("nftables") => Ok(Backend::Nftables),
            Some("iptables") => Ok(Backend::Iptables),
            Some(other) => Err(format!(
                "ipMasqBackend: {other:?} is not \"nftables\" or \"iptables\""
            )),
        }
    }
}

/// The result of a teardown step of `backend` while `configured` is the
/// backend the config names. The configured backend's tool must run: its
/// rules may be in the kernel, and a DEL that reports success is never
/// retried. The other backend's tool may be missing (a host without it).
pub fn tolerate_missing_other(backend: Backend, configured: Backend, r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_no_tool() && backend != configured => {
            log::debug!("{e}: skipped");
            Ok(())
        }
        other => other,
    }
}

/// The attachment a rule belongs to.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub network: &'a str,
    pub ifname: &'a str,
    pub container_id: &'a str,
}

impl Owner<'_> {
    /// What every nftables rule of a network's attachments starts its
    /// comment with (GC's filter).
    pub fn network_tag(network: &str) -> String {
        nft::hash_hex(network, 16)
    }

    /// The attachment's tag: a hash of the network, then one of (ifname,
    /// container ID), as the reference tags its masquerade rules.
    pub fn tag(&self) -> String {
        format!(
            "{}-{}",
            Owner::network_tag(self.network),
            nft::hash_hex(&format!("{}:{}", self.ifname, self.container_id), 16)
        )
    }

    /// An nftables rule comment: the tag (what DEL and GC match on), then
    /// a readable description.
    pub fn comment(&self) -> String {
        nft::truncate_comment(format!(
            "{}, net: {}, if: {}, id: {}",
            self.tag(),
            self.network.replace('"', ""),
            self.ifname.replace('"', ""),
            self.container_id.replace('"', "")
        ))
    }

    /// The tag a comment written by [`Owner::comment`] starts with.
    pub fn tag_of(comment: &str) -> &str {
        comment.split(',').next().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_layout_matches_reference() {
        let o = Owner {
            network: "mynet",
            ifname: "eth0",
            container_id: "c1",
        };
        let c = o.comment();
        let (hash, rest) = c.split_once(", ").unwrap();
        assert_eq!(hash, o.tag());
        assert_eq!(Owner::tag_of(&c), hash);
        assert_eq!(hash.len(), 33);
        assert_eq!(&hash[..16], Owner::network_tag("mynet"));
        assert_eq!(&hash[17..], nft::hash_hex("eth0:c1", 16));
        assert_eq!(rest, "net: mynet, if: eth0, id: c1");
    }

    #[test]
    fn backends() {
        assert_eq!(Backend::parse(None), Ok(Backend::Nftables));
        assert_eq!(Backend::parse(Some("iptables")), Ok(Backend::Iptables));
        assert!(Backend::parse(Some("pf")).is_err());
    }
}
