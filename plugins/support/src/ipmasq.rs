//! IP masquerade for container addresses (`ipMasq`): traffic from a
//! container's address to anything outside its subnet (and not multicast)
//! leaves with the host's address.
//!
//! Two backends, laid out exactly as the reference plugins lay them out so
//! that either suite can tear down what the other set up:
//! - nftables (default): table `inet cni_plugins_masquerade`, base chain
//!   `postrouting` jumping to `masq_checks`, one rule per address tagged with
//!   a comment that starts with a hash of (network, ifname, container ID).
//! - iptables: a `nat` chain `CNI-<hash of network and container ID>` with an
//!   ACCEPT for the subnet and a MASQUERADE, jumped to from POSTROUTING, each
//!   rule commented `name: "<network>" id: "<container ID>"`.
//!
//! Teardown always tries both, as the reference does; the configured
//! backend's tool must be runnable for DEL to succeed (rules it cannot see
//! may still be in the kernel), the other one's may be absent.

use cni_kernel::error::{Error, Result};
use cni_kernel::iptables::{self, strings, Saved};
use cni_kernel::netfilter::tolerate_missing_other;
use cni_kernel::nft::{self, x, Batch, NfFamily};
use ipnet::IpNet;
use nftables::schema::{FlushObject, NfCmd, NfListObject};
use nftables::types::{NfChainType, NfHook};

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";
const POSTROUTING: &str = "postrouting";

pub use cni_kernel::netfilter::{Backend, Owner};

/// The nftables transaction that sets up masquerade for `ips`, replacing
/// any rules this attachment had (`stale`, listed before).
pub fn nft_setup_batch(ips: &[IpNet], o: &Owner, stale: &[nft::Listed]) -> Batch<'static> {
    let f = NfFamily::INet;
    let mut b = Batch::new();
    b.add(NfListObject::Table(nft::table(f, TABLE)));
    b.add(NfListObject::Chain(nft::chain(f, TABLE, CHAIN)));
    b.add(NfListObject::Chain(nft::base_chain(
        f,
        TABLE,
        POSTROUTING,
        NfChainType::NAT,
        NfHook::Postrouting,
        100,
    )));
    // The base chain's three rules are rewritten by every ADD, in the same
    // transaction, so concurrent ADDs always leave exactly these three.
    b.add_cmd(NfCmd::Flush(FlushObject::Chain(nft::chain(
        f,
        TABLE,
        POSTROUTING,
    ))));
    let multicast: [(&str, IpNet); 2] = [
        ("ip", "224.0.0.0/4".parse().expect("literal")),
        ("ip6", "ff00::/8".parse().expect("literal")),
    ];
    for (proto, net) in multicast {
        b.add(NfListObject::Rule(nft::rule(
            f,
            TABLE,
            POSTROUTING,
            vec![x::eq(x::payload(proto, "daddr"), x::prefix(&net)), x::ret()],
            None,
        )));
    }
    b.add(NfListObject::Rule(nft::rule(
        f,
        TABLE,
        POSTROUTING,
        vec![x::goto(CHAIN)],
        None,
    )));
    for r in stale {
        b.add_cmd(r.delete());
    }
    for ip in ips {
        let p = x::proto(ip.addr());
        b.add(NfListObject::Rule(nft::rule(
            f,
            TABLE,
            CHAIN,
            vec![
                x::eq(x::payload(p, "saddr"), x::s(ip.addr().to_string())),
                x::ne(x::payload(p, "daddr"), x::prefix(&ip.trunc())),
                x::masquerade(),
            ],
            Some(o.comment()),
        )));
    }
    b
}

fn nft_rules_with_prefix(prefix: &str) -> Result<Vec<nft::Listed>> {
    Ok(nft::list_table(NfFamily::INet, TABLE)?
        .map(|t| {
            t.chain_rules(CHAIN)
                .filter(|r| r.comment.as_deref().is_some_and(|c| c.starts_with(prefix)))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// `iptables` chain name for an attachment: `CNI-` and 24 hex digits.
pub fn iptables_chain(network: &str, container_id: &str) -> String {
    format!(
        "CNI-{}",
        nft::hash_hex(&format!("{network}{container_id}"), 24)
    )
}

/// `iptables` comment for an attachment.
pub fn iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: \"{network}\" id: \"{container_id}\"")
}

fn families(ips: &[IpNet]) -> [(bool, Vec<IpNet>); 2] {
    [false, true].map(|v6| {
        (
            v6,
            ips.iter()
                .filter(|ip| ip.addr().is_ipv6() == v6)
                .copied()
                .collect(),
        )
    })
}

/// The three iptables rules of an address: (chain, rule spec).
fn iptables_rules(ip: &IpNet, chain: &str, comment: &str) -> Vec<(String, Vec<String>)> {
    let multicast = if ip.addr().is_ipv4() {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    };
    let c = ["-m", "comment", "--comment", comment];
    let mut accept = strings(&["-d", &ip.trunc().to_string(), "-j", "ACCEPT"]);
    accept.extend(strings(&c));
    let mut masq = strings(&["!", "-d", multicast, "-j", "MASQUERADE"]);
    masq.extend(strings(&c));
    let mut jump = strings(&["-s", &ip.addr().to_string(), "-j", chain]);
    jump.extend(strings(&c));
    vec![
        (chain.to_string(), accept),
        (chain.to_string(), masq),
        ("POSTROUTING".to_string(), jump),
    ]
}

/// Batch lines removing an attachment's chain and every POSTROUTING rule
/// jumping to it, whatever its match (this layout's and the reference's
/// older `-s <ip>/<prefix>` form alike), by their specs as listed.
fn iptables_teardown_lines(saved: &Saved, chain: &str) -> Vec<String> {
    saved.teardown_lines("POSTROUTING", chain)
}

/// Set up masquerade for an attachment's addresses.
pub fn setup(backend: Backend, ips: &[IpNet], o: &Owner) -> Result<()> {
    let what = || {
        format!(
            "set up ipMasq for container {} ({}) on network {}",
            o.container_id, o.ifname, o.network
        )
    };
    match backend {
        Backend::Nftables => {
            let stale = nft_rules_with_prefix(&o.tag())?;
            nft::apply(nft_setup_batch(ips, o, &stale), &what)
        }
        Backend::Iptables => {
            let chain = iptables_chain(o.network, o.container_id);
            let comment = iptables_comment(o.network, o.container_id);
            for (v6, ips) in families(ips) {
                if ips.is_empty() {
                    continue;
                }
                // Whatever this attachment had goes, and its rules are
                // written anew, in one batch.
                iptables::edit(v6, "nat", &what, &|saved| {
                    let mut lines = vec![if saved.has_chain(&chain) {
                        format!("-F {chain}")
                    } else {
                        format!(":{chain} - [0:0]")
                    }];
                    lines.extend(
                        saved
                            .chain_rules("POSTROUTING")
                            .filter(|r| r.target() == Some(chain.as_str()))
                            .map(|r| r.delete_line()),
                    );
                    for ip in &ips {
                        for (ch, spec) in iptables_rules(ip, &chain, &comment) {
                            lines.push(iptables::line("-A", &ch, &spec));
                        }
                    }
                    lines
                })?;
            }
            Ok(())
        }
    }
}

/// Remove an attachment's masquerade rules from both backends and both
/// families; succeeds when they are already gone. Needs only the owner: DEL
/// can clean up without the namespace or a previous result.
pub fn teardown(configured: Backend, o: &Owner) -> Result<()> {
    let what = || format!("tear down ipMasq for container {}", o.container_id);
    let mut errors = Vec::new();
    let prefix = o.tag();
    let nft = nft::remove(
        NfFamily::INet,
        TABLE,
        &|r| r.chain == CHAIN && r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix)),
        &|_| false,
        &what,
    )
    .map(|_| ());
    if let Err(e) = tolerate_missing_other(Backend::Nftables, configured, nft) {
        errors.push(e.to_string());
    }
    let chain = iptables_chain(o.network, o.container_id);
    for v6 in [false, true] {
        let r = iptables::edit(v6, "nat", &what, &|saved| {
            iptables_teardown_lines(saved, &chain)
        });
        if let Err(e) = tolerate_missing_other(Backend::Iptables, configured, r) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::protocol(what(), errors.join("; ")))
    }
}

/// Whether an attachment's masquerade rules are present (for CHECK).
pub fn check(backend: Backend, ips: &[IpNet], o: &Owner) -> Result<bool> {
    match backend {
        Backend::Nftables => {
            let rules = nft_rules_with_prefix(&o.tag())?;
            Ok(ips.iter().all(|ip| {
                rules
                    .iter()
                    .any(|r| r.expr.to_string().contains(&format!("\"{}\"", ip.addr())))
            }))
        }
        Backend::Iptables => {
            let chain = iptables_chain(o.network, o.container_id);
            for (v6, ips) in families(ips) {
                if ips.is_empty() {
                    continue;
                }
                let saved = iptables::save(v6, "nat")?;
                let host_len = if v6 { 128 } else { 32 };
                for ip in ips {
                    let src = format!("{}/{host_len}", ip.addr());
                    let jump = saved
                        .chain_rules("POSTROUTING")
                        .any(|r| r.target() == Some(&chain) && r.value("-s") == Some(&src));
                    let accept = saved.chain_rules(&chain).any(|r| {
                        r.target() == Some("ACCEPT")
                            && r.value("-d") == Some(&ip.trunc().to_string())
                    });
                    let masq = saved
                        .chain_rules(&chain)
                        .any(|r| r.target() == Some("MASQUERADE"));
                    if !(jump && accept && masq) {
                        return Ok(false);
                    }
                }
            }
            Ok(true)
        }
    }
}

/// GC: remove the masquerade rules of `network` whose attachment is not in
/// `keep` (container ID, ifname), from both backends. nftables rules carry
/// the attachment's hash; iptables rules carry the network and container
/// ID in their comment (no ifname: an attachment is kept by container ID).
pub fn gc(configured: Backend, network: &str, keep: &[(String, String)]) -> Result<usize> {
    let what = || format!("GC ipMasq rules of network {network}");
    let valid: Vec<String> = keep
        .iter()
        .map(|(id, ifname)| {
            Owner {
                network,
                ifname,
                container_id: id,
            }
            .comment()
        })
        .collect();
    let net_prefix = Owner::network_tag(network);
    let mut removed = 0;
    let mut errors = Vec::new();
    let nft = nft::remove(
        NfFamily::INet,
        TABLE,
        &|r| {
            r.chain == CHAIN
                && r.comment
                    .as_deref()
                    .is_some_and(|c| c.starts_with(&net_prefix) && !valid.iter().any(|v| v == c))
        },
        &|_| false,
        &what,
    )
    .map(|n| removed += n);
    if let Err(e) = tolerate_missing_other(Backend::Nftables, configured, nft) {
        errors.push(e.to_string());
    }
    let kept_chains: Vec<String> = keep
        .iter()
        .map(|(id, _)| iptables_chain(network, id))
        .collect();
    let name = format!("name: \"{network}\" id: ");
    for v6 in [false, true] {
        let r = iptables::edit(v6, "nat", &what, &|saved| {
            let mut stale: Vec<&str> = saved
                .chain_rules("POSTROUTING")
                .filter(|r| r.value("--comment").is_some_and(|c| c.starts_with(&name)))
                .filter_map(|r| r.target())
                .filter(|t| t.starts_with("CNI-") && !kept_chains.iter().any(|k| k == t))
                .collect();
            stale.sort_unstable();
            stale.dedup();
            stale
                .into_iter()
                .flat_map(|c| iptables_teardown_lines(saved, c))
                .collect()
        });
        if let Err(e) = tolerate_missing_other(Backend::Iptables, configured, r) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(Error::protocol(what(), errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner<'static> {
        Owner {
            network: "mynet",
            ifname: "eth0",
            container_id: "c1",
        }
    }

    #[test]
    fn iptables_names() {
        assert_eq!(
            iptables_chain("test", "1234"),
            "CNI-2bbe0c48b91a7d1b8a6753a8"
        );
        assert_eq!(iptables_comment("n", "c"), "name: \"n\" id: \"c\"");
        let rules = iptables_rules(&"10.1.0.2/24".parse().unwrap(), "CNI-x", "cm");
        assert_eq!(
            rules[0].1[..4],
            strings(&["-d", "10.1.0.0/24", "-j", "ACCEPT"])
        );
        assert_eq!(rules[2].0, "POSTROUTING");
        assert_eq!(rules[2].1[1], "10.1.0.2");
    }

    #[test]
    fn teardown_deletes_by_spec_not_number() {
        let saved = Saved::parse(
            "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-a - [0:0]\n\
             -A POSTROUTING -o eth0 -j MASQUERADE\n\
             -A POSTROUTING -s 10.1.0.2/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-a\n\
             -A CNI-a -d 10.1.0.0/24 -j ACCEPT\nCOMMIT\n",
            "nat",
        )
        .unwrap();
        assert_eq!(
            iptables_teardown_lines(&saved, "CNI-a"),
            [
                "-D POSTROUTING -s 10.1.0.2/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-a",
                "-F CNI-a",
                "-X CNI-a"
            ]
        );
        assert!(iptables_teardown_lines(&saved, "CNI-b").is_empty());
    }

    #[test]
    fn setup_batch_shape() {
        let stale = nft::Listed {
            family: NfFamily::INet,
            table: TABLE.into(),
            chain: CHAIN.into(),
            handle: 4,
            comment: None,
            expr: serde_json::Value::Null,
        };
        let b = nft_setup_batch(
            &[
                "10.1.0.2/24".parse().unwrap(),
                "fd00::2/64".parse().unwrap(),
            ],
            &owner(),
            &[stale],
        );
        let cmds = serde_json::to_value(b.to_nftables()).unwrap()["nftables"].clone();
        let text = cmds.to_string();
        let v4 = cmds
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["add"]["rule"]["expr"][0]["match"]["right"] == "10.1.0.2")
            .unwrap_or_else(|| panic!("no rule for 10.1.0.2: {text}"));
        assert_eq!(
            v4["add"]["rule"]["expr"][0]["match"]["left"]["payload"]["field"],
            "saddr"
        );
        assert_eq!(v4["add"]["rule"]["comment"], owner().comment());
        assert!(
            text.contains(r#""prefix":{"addr":"10.1.0.0","len":24}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""prefix":{"addr":"fd00::","len":64}"#),
            "{text}"
        );
        assert!(text.contains(r#""handle":4"#), "{text}");
    }
}
