//! The nftables backend (the reference has none): one table of its own,
//!
//! ```text
//! table inet cni_firewall {
//!   chain forward {            # filter hook forward priority 0; policy accept
//!     jump isolation_stage_1   # ingressPolicy, per bridge
//!     jump admin               # the operator's overrides: created, never flushed
//!     jump containers          # per attachment
//!     # the operator may append here (e.g. a final `drop`); never touched
//!   }
//!   chain containers {
//!     ip daddr IP ct state established,related accept   comment "<tag>, net: N, if: I, id: C"
//!     ip saddr IP accept                                comment "<tag>, ..."
//!   }
//!   chain isolation_stage_1 { iifname BR oifname != BR jump isolation_stage_2; [isolated:] iifname BR oifname BR drop }
//!   chain isolation_stage_2 { oifname BR drop }
//! }
//! ```
//!
//! `<tag>` is a hash of the network, then a hash of (ifname, container ID):
//! DEL and GC find an attachment's rules by it, with no `prevResult`.
//!
//! An accept ends the packet's walk through *this* table only: a drop in
//! another table's forward hook (iptables' `FORWARD` policy `DROP`, or an
//! nftables ruleset of the host with `policy drop`) still drops it. The
//! accepts matter against drops placed after them in `forward` (the
//! operator's default-deny goes at its end); for a host whose iptables
//! `FORWARD` policy is `DROP`, use the iptables backend.

use cni_kernel::iptables::Lock;
use cni_kernel::nft::{self, x, Batch, NfFamily};
use cni_kernel::Result;
use nftables::expr::{Expression, MetaKey};
use nftables::schema::{NfCmd, NfListObject};
use nftables::stmt::Operator;
use nftables::types::{NfChainType, NfHook};
use std::net::IpAddr;

pub const TABLE: &str = "cni_firewall";
pub const FORWARD: &str = "forward";
pub const ADMIN: &str = "admin";
pub const CONTAINERS: &str = "containers";
pub const STAGE1: &str = "isolation_stage_1";
pub const STAGE2: &str = "isolation_stage_2";
const F: NfFamily = NfFamily::INet;

pub use cni_kernel::netfilter::Owner;

/// The jumps of `forward`, in order: (target, comment).
const STRUCTURE: [(&str, &str); 3] = [
    (STAGE1, "CNI firewall plugin ingress policy"),
    (ADMIN, "CNI firewall plugin admin overrides"),
    (CONTAINERS, "CNI firewall plugin rules"),
];

fn ct_established() -> x::Stmt {
    x::ct(
        "state",
        Operator::IN,
        Expression::List(vec![x::s("established"), x::s("related")]),
    )
}

/// `ingressPolicy` for one bridge.
pub struct Isolation<'a> {
    pub bridge: &'a str,
    pub isolated: bool,
}

/// The per-bridge isolation rules: (chain, comment, statements).
fn isolation_rules(iso: &Isolation) -> Vec<(&'static str, String, Vec<x::Stmt>)> {
    let br = iso.bridge;
    let iif = || x::eq(x::meta(MetaKey::Iifname), x::s(br));
    let mut v = vec![
        (
            STAGE1,
            format!("ingressPolicy: from bridge {br} to elsewhere"),
            vec![
                iif(),
                x::ne(x::meta(MetaKey::Oifname), x::s(br)),
                x::jump(STAGE2),
            ],
        ),
        (
            STAGE2,
            format!("ingressPolicy: into bridge {br} from another bridge"),
            vec![x::eq(x::meta(MetaKey::Oifname), x::s(br)), x::drop()],
        ),
    ];
    if iso.isolated {
        v.push((
            STAGE1,
            format!("ingressPolicy isolated: within bridge {br}"),
            vec![iif(), x::eq(x::meta(MetaKey::Oifname), x::s(br)), x::drop()],
        ));
    }
    v
}

/// Whether `forward` holds our three jumps once each, in order (rules of
/// the operator's may come before, between or after them).
fn structure_ok(t: &nft::Table) -> bool {
    let ours: Vec<Option<&str>> = t
        .chain_rules(FORWARD)
        .map(|r| r.comment.as_deref())
        .filter(|c| STRUCTURE.iter().any(|(_, s)| *c == Some(*s)))
        .collect();
    ours == STRUCTURE.map(|(_, c)| Some(c))
}

/// The ADD transaction, from the current listing (`None`: no table yet).
pub fn add_batch(
    listed: Option<&nft::Table>,
    ips: &[IpAddr],
    o: &Owner,
    iso: Option<&Isolation>,
) -> Batch<'static> {
    let mut b = Batch::new();
    b.add(NfListObject::Table(nft::table(F, TABLE)));
    for c in [ADMIN, CONTAINERS, STAGE1, STAGE2] {
        b.add(NfListObject::Chain(nft::chain(F, TABLE, c)));
    }
    b.add(NfListObject::Chain(nft::base_chain(
        F,
        TABLE,
        FORWARD,
        NfChainType::Filter,
        NfHook::Forward,
        0,
    )));
    // The three jumps go at the top of `forward` on the first ADD. Should
    // one be missing or out of order later (someone deleted one), ours go
    // and all three are inserted anew at the top. The operator's rules in
    // `forward` stay where they are.
    if !listed.is_some_and(structure_ok) {
        if let Some(t) = listed {
            for r in t.chain_rules(FORWARD) {
                if STRUCTURE
                    .iter()
                    .any(|(_, c)| r.comment.as_deref() == Some(c))
                {
                    b.add_cmd(r.delete());
                }
            }
        }
        for (target, c) in STRUCTURE.iter().rev() {
            b.add_cmd(NfCmd::Insert(NfListObject::Rule(nft::rule(
                F,
                TABLE,
                FORWARD,
                vec![x::jump(target)],
                Some(c.to_string()),
            ))));
        }
    }
    // A repeated ADD of the same attachment replaces its rules.
    let t = o.tag();
    if let Some(l) = listed {
        for r in l.chain_rules(CONTAINERS) {
            if r.comment.as_deref().map(Owner::tag_of) == Some(t.as_str()) {
                b.add_cmd(r.delete());
            }
        }
    }
    let c = o.comment();
    let mut seen = Vec::new();
    for ip in ips {
        if seen.contains(ip) {
            continue;
        }
        seen.push(*ip);
        let p = x::proto(*ip);
        let a = x::s(ip.to_string());
        for expr in [
            vec![
                x::eq(x::payload(p, "daddr"), a.clone()),
                ct_established(),
                x::accept(),
            ],
            vec![x::eq(x::payload(p, "saddr"), a.clone()), x::accept()],
        ] {
            b.add(NfListObject::Rule(nft::rule(
                F,
                TABLE,
                CONTAINERS,
                expr,
                Some(c.clone()),
            )));
        }
    }
    if let Some(iso) = iso {
        for (chain, comment, expr) in isolation_rules(iso) {
            let present = listed.is_some_and(|t| {
                t.chain_rules(chain)
                    .any(|r| r.comment.as_deref() == Some(comment.as_str()))
            });
            if !present {
                b.add(NfListObject::Rule(nft::rule(
                    F,
                    TABLE,
                    chain,
                    expr,
                    Some(comment),
                )));
            }
        }
    }
    b
}

/// ADD, as one transaction. Our netfilter lock keeps two ADDs from both
/// seeing the jumps missing and both inserting them.
pub fn add(ips: &[IpAddr], o: &Owner, iso: Option<&Isolation>) -> Result<()> {
    let what = || {
        format!(
            "add nftables firewall rules for container {} ({})",
            o.container_id, o.ifname
        )
    };
    let _lock = Lock::take()?;
    let listed = nft::list_table(F, TABLE)?;
    nft::apply(add_batch(listed.as_ref(), ips, o, iso), &what)
}

/// DEL: the attachment's rules, found by their tag; nothing else.
pub fn del(o: &Owner) -> Result<()> {
    let what = || format!("delete nftables firewall rules of {}", o.container_id);
    let t = o.tag();
    nft::remove(
        F,
        TABLE,
        &|r| r.chain == CONTAINERS && r.comment.as_deref().map(Owner::tag_of) == Some(t.as_str()),
        &|_| false,
        &what,
    )
    .map(|_| ())
}

/// GC: the rules of `network` whose attachment is not in `keep`.
pub fn gc(network: &str, keep: &[Owner]) -> Result<usize> {
    let what = || format!("GC nftables firewall rules of network {network}");
    let prefix = format!("{}-", Owner::network_tag(network));
    let kept: Vec<String> = keep.iter().map(Owner::tag).collect();
    nft::remove(
        F,
        TABLE,
        &|r| {
            r.chain == CONTAINERS
                && r.comment
                    .as_deref()
                    .map(Owner::tag_of)
                    .is_some_and(|t| t.starts_with(&prefix) && !kept.iter().any(|k| k == t))
        },
        &|_| false,
        &what,
    )
}

fn matches_addr(r: &nft::Listed, field: &str, ip: IpAddr) -> bool {
    r.expr.as_array().into_iter().flatten().any(|e| {
        let m = &e["match"];
        m["left"]["payload"]["field"] == field && m["right"] == ip.to_string()
    })
}

/// CHECK: what is missing; `Ok(None)` when everything is in place.
pub fn check(ips: &[IpAddr], o: &Owner) -> Result<Option<String>> {
    let Some(t) = nft::list_table(F, TABLE)? else {
        return Ok(Some(format!("nftables table inet {TABLE} not found")));
    };
    for c in [FORWARD, ADMIN, CONTAINERS] {
        if !t.has_chain(c) {
            return Ok(Some(format!("chain {c} not found in table inet {TABLE}")));
        }
    }
    for (target, c) in STRUCTURE {
        if !t
            .chain_rules(FORWARD)
            .any(|r| r.comment.as_deref() == Some(c))
        {
            return Ok(Some(format!(
                "the jump to {target} is missing from chain {FORWARD}"
            )));
        }
    }
    let tg = o.tag();
    let mine: Vec<&nft::Listed> = t
        .chain_rules(CONTAINERS)
        .filter(|r| r.comment.as_deref().map(Owner::tag_of) == Some(tg.as_str()))
        .collect();
    for ip in ips {
        for field in ["daddr", "saddr"] {
            if !mine.iter().any(|r| matches_addr(r, field, *ip)) {
                return Ok(Some(format!(
                    "expected rule {} {field} {ip} ... accept not found in chain {CONTAINERS}",
                    x::proto(*ip)
                )));
            }
        }
    }
    Ok(None)
}

/// A cheap call proving nft runs (STATUS).
pub fn probe() -> Result<()> {
    nft::probe(F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner<'static> {
        Owner {
            network: "net",
            ifname: "eth0",
            container_id: "c1",
        }
    }

    #[test]
    fn comment_starts_with_network_then_attachment_hash() {
        let c = owner().comment();
        assert_eq!(Owner::tag_of(&c), owner().tag());
        assert!(c.starts_with(&nft::hash_hex("net", 16)));
        assert!(c.ends_with(", net: net, if: eth0, id: c1"), "{c}");
    }

    fn listed(chain: &str, handle: u32, comment: Option<&str>) -> nft::Listed {
        nft::Listed {
            family: F,
            table: TABLE.into(),
            chain: chain.into(),
            handle,
            comment: comment.map(str::to_string),
            expr: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_jumps_are_reinserted_only_when_missing_or_out_of_order() {
        let mut t = nft::Table {
            chains: vec![FORWARD.into()],
            rules: vec![listed(FORWARD, 1, Some("operator first"))],
        };
        for (i, (_, c)) in STRUCTURE.iter().enumerate() {
            t.rules.push(listed(FORWARD, 10 + i as u32, Some(c)));
        }
        t.rules.push(listed(FORWARD, 20, None));
        assert!(structure_ok(&t));
        let b = serde_json::to_value(add_batch(Some(&t), &[], &owner(), None).to_nftables())
            .unwrap()
            .to_string();
        assert!(!b.contains("insert") && !b.contains("delete"), "{b}");
        t.rules.swap(1, 2);
        assert!(!structure_ok(&t));
        t.rules.remove(1);
        assert!(!structure_ok(&t));
        let b = serde_json::to_value(add_batch(Some(&t), &[], &owner(), None).to_nftables())
            .unwrap()
            .to_string();
        assert_eq!(b.matches("\"insert\"").count(), 3, "{b}");
        assert_eq!(b.matches("\"delete\"").count(), 2, "{b}");
    }

    #[test]
    fn fresh_add_inserts_the_jumps_and_per_address_rules() {
        let b = add_batch(
            None,
            &["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            &owner(),
            Some(&Isolation {
                bridge: "br0",
                isolated: true,
            }),
        );
        let v = serde_json::to_value(b.to_nftables()).unwrap();
        let text = v.to_string();
        let inserts: Vec<&serde_json::Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c.get("insert"))
            .collect();
        assert_eq!(inserts.len(), 3);
        // Inserted last-first, so that they end up in STRUCTURE's order.
        assert_eq!(inserts[0]["rule"]["expr"][0]["jump"]["target"], CONTAINERS);
        assert_eq!(inserts[2]["rule"]["expr"][0]["jump"]["target"], STAGE1);
        assert!(text.contains(r#"{"match":{"left":{"ct":{"key":"state"}},"right":["established","related"],"op":"in"}}"#), "{text}");
        assert!(
            text.contains(r#""protocol":"ip6","field":"saddr"}},"right":"fd00::2""#),
            "{text}"
        );
        assert!(text.contains("ingressPolicy isolated: within bridge br0"));
        assert!(text.contains(r#""hook":"forward""#), "{text}");
    }
}
