//! The iptables backend, laid out exactly as the reference plugin lays it
//! out (filter table, each family separately), so that a node can switch
//! suites and either one's DEL removes what the other's ADD set up:
//!
//! ```text
//! FORWARD      -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD      (inserted first)
//! CNI-FORWARD  -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN  (first)
//! CNI-FORWARD  -d IP/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT         (per address)
//! CNI-FORWARD  -s IP/32 -j ACCEPT                                                    (per address)
//! ```
//!
//! plus, for `ingressPolicy`, the per-bridge `CNI-ISOLATION-STAGE-1/2`
//! chains. Chains, jumps and isolation rules are shared and never removed;
//! the admin chain is never flushed. Specs are written in the order
//! `iptables-save` prints them, and whether a rule is present is decided
//! from the listing, comparing everything but comments (the reference's
//! releases worded some comments differently).

use cni_kernel::iptables::{self, strings, Saved, SavedRule};
use cni_kernel::Result;
use std::net::IpAddr;

const FILTER: &str = "filter";
const FORWARD: &str = "FORWARD";
pub const PRIV_CHAIN: &str = "CNI-FORWARD";
pub const STAGE1: &str = "CNI-ISOLATION-STAGE-1";
pub const STAGE2: &str = "CNI-ISOLATION-STAGE-2";
const PRIV_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
/// The comment on the isolation rules shared by both policies.
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

/// `ingressPolicy` for one bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    pub bridge: String,
    /// `isolated` (else `same-bridge`).
    pub isolated: bool,
}

impl Isolation {
    fn comment(&self) -> String {
        let p = if self.isolated {
            "isolated"
        } else {
            "same-bridge"
        };
        format!("CNI firewall plugin rules (ingressPolicy: {p})")
    }
}

fn with_comment(comment: &str, mut rest: Vec<String>) -> Vec<String> {
    let mut v = strings(&["-m", "comment", "--comment", comment]);
    v.append(&mut rest);
    v
}

fn host(ip: IpAddr) -> String {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    format!("{ip}/{len}")
}

/// The two rules of an address, as `iptables-save` prints them.
pub fn per_ip_specs(ip: IpAddr) -> [Vec<String>; 2] {
    let h = host(ip);
    [
        strings(&[
            "-d",
            &h,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ]),
        strings(&["-s", &h, "-j", "ACCEPT"]),
    ]
}

/// A rule's words without its `-m comment --comment X`.
fn without_comment(args: &[String]) -> Vec<&str> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-m" && args.get(i + 1).is_some_and(|a| a == "comment") {
            i += 2;
            if args.get(i).is_some_and(|a| a == "--comment") {
                i += 2;
            }
            continue;
        }
        out.push(args[i].as_str());
        i += 1;
    }
    out
}

/// Whether a listed rule is `spec`, comments aside.
pub fn same_rule(r: &SavedRule, spec: &[String]) -> bool {
    without_comment(&r.args) == without_comment(spec)
}

fn present(saved: &Saved, chain: &str, spec: &[String]) -> bool {
    saved.chain_rules(chain).any(|r| same_rule(r, spec))
}

/// Where a rule goes when it is missing.
#[derive(Clone, Copy)]
enum At {
    Top,
    End,
}

/// The structural rules: (chain, position, spec).
fn structure(admin: &str) -> Vec<(&'static str, At, Vec<String>)> {
    vec![
        (
            FORWARD,
            At::Top,
            with_comment(PRIV_COMMENT, strings(&["-j", PRIV_CHAIN])),
        ),
        (
            PRIV_CHAIN,
            At::Top,
            with_comment(ADMIN_COMMENT, strings(&["-j", admin])),
        ),
    ]
}

/// The isolation rules of a bridge, in the order the reference adds them.
fn isolation_rules(iso: &Isolation) -> Vec<(&'static str, At, Vec<String>)> {
    let br = iso.bridge.as_str();
    let pc = iso.comment();
    let mut v = vec![
        (
            FORWARD,
            At::Top,
            with_comment(ISOLATION_COMMENT, strings(&["-j", STAGE1])),
        ),
        (STAGE1, At::Top, {
            let mut s = strings(&["-i", br, "!", "-o", br]);
            s.extend(with_comment(&pc, strings(&["-j", STAGE2])));
            s
        }),
    ];
    if iso.isolated {
        v.push((STAGE1, At::Top, {
            let mut s = strings(&["-i", br, "-o", br]);
            s.extend(with_comment(&pc, strings(&["-j", "DROP"])));
            s
        }));
    }
    v.push((
        STAGE1,
        At::End,
        with_comment(ISOLATION_COMMENT, strings(&["-j", "RETURN"])),
    ));
    v.push((STAGE2, At::Top, {
        let mut s = strings(&["-o", br]);
        s.extend(with_comment(ISOLATION_COMMENT, strings(&["-j", "DROP"])));
        s
    }));
    v.push((
        STAGE2,
        At::End,
        with_comment(ISOLATION_COMMENT, strings(&["-j", "RETURN"])),
    ));
    v
}

/// The batch lines of an ADD for one family: missing chains declared (an
/// existing chain is never declared: in a `--noflush` batch that flushes
/// it), then every missing rule inserted or appended.
pub fn plan_add(
    saved: &Saved,
    admin: &str,
    ips: &[IpAddr],
    iso: Option<&Isolation>,
) -> Vec<String> {
    let mut chains = vec![PRIV_CHAIN, admin];
    let mut rules = structure(admin);
    for ip in ips {
        for spec in per_ip_specs(*ip) {
            rules.push((PRIV_CHAIN, At::End, spec));
        }
    }
    if let Some(iso) = iso {
        chains.extend([STAGE1, STAGE2]);
        rules.extend(isolation_rules(iso));
    }
    let mut lines: Vec<String> = chains
        .iter()
        .filter(|c| !saved.has_chain(c))
        .map(|c| format!(":{} - [0:0]", iptables::quote(c)))
        .collect();
    let mut planned: Vec<(&str, &[String])> = Vec::new();
    for (chain, at, spec) in &rules {
        if present(saved, chain, spec)
            || planned
                .iter()
                .any(|(c, s)| c == chain && without_comment(s) == without_comment(spec))
        {
            continue;
        }
        planned.push((chain, spec));
        lines.push(match at {
            At::Top => {
                let mut l = format!("-I {} 1", iptables::quote(chain));
                for w in spec {
                    l.push(' ');
                    l.push_str(&iptables::quote(w));
                }
                l
            }
            At::End => iptables::line("-A", chain, spec),
        });
    }
    lines
}

/// The batch lines deleting the per-address rules of `ips`, by their specs
/// as listed (every copy, should there be several).
pub fn plan_del(saved: &Saved, ips: &[IpAddr]) -> Vec<String> {
    let specs: Vec<Vec<String>> = ips.iter().flat_map(|ip| per_ip_specs(*ip)).collect();
    saved
        .chain_rules(PRIV_CHAIN)
        .filter(|r| specs.iter().any(|s| same_rule(r, s)))
        .map(SavedRule::delete_line)
        .collect()
}

fn split(ips: &[IpAddr]) -> [(bool, Vec<IpAddr>); 2] {
    [false, true].map(|v6| {
        (
            v6,
            ips.iter()
                .filter(|ip| ip.is_ipv6() == v6)
                .copied()
                .collect(),
        )
    })
}

/// ADD: for each family with addresses, one batch.
pub fn add(admin: &str, ips: &[IpAddr], iso: Option<&Isolation>) -> Result<()> {
    for (v6, ips) in split(ips) {
        if ips.is_empty() {
            continue;
        }
        let what = || format!("add firewall rules for {ips:?}");
        iptables::edit(v6, FILTER, &what, &|saved| {
            plan_add(saved, admin, &ips, iso)
        })?;
    }
    Ok(())
}

/// DEL: the per-address rules of `ips`; chains and jumps stay.
pub fn del(ips: &[IpAddr]) -> Result<()> {
    for (v6, ips) in split(ips) {
        if ips.is_empty() {
            continue;
        }
        let what = || format!("delete firewall rules for {ips:?}");
        iptables::edit(v6, FILTER, &what, &|saved| plan_del(saved, &ips))?;
    }
    Ok(())
}

/// CHECK: what is missing, as the reference words it; `Ok(None)` when
/// everything is in place.
pub fn check(admin: &str, ips: &[IpAddr]) -> Result<Option<String>> {
    for (v6, ips) in split(ips) {
        if ips.is_empty() {
            continue;
        }
        let saved = iptables::save(v6, FILTER)?;
        for c in [PRIV_CHAIN, admin] {
            if !saved.has_chain(c) {
                return Ok(Some(format!("chain {c} not found in table filter")));
            }
        }
        let mut rules = structure(admin);
        rules.extend(
            ips.iter()
                .flat_map(|ip| per_ip_specs(*ip))
                .map(|s| (PRIV_CHAIN, At::End, s)),
        );
        for (chain, _, spec) in rules {
            if !present(&saved, chain, &spec) {
                return Ok(Some(format!(
                    "expected rule [{}] not found in chain {chain}",
                    spec.join(" ")
                )));
            }
        }
    }
    Ok(None)
}

/// A cheap call proving the tool runs (STATUS).
pub fn probe() -> Result<()> {
    iptables::save(false, FILTER).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :CNI-ADMIN - [0:0]\n:CNI-FORWARD - [0:0]\n\
        -A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
        -A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
        -A CNI-FORWARD -d 10.0.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT\n\
        -A CNI-FORWARD -s 10.0.0.3/32 -j ACCEPT\nCOMMIT\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fresh_table_gets_everything_in_reference_order() {
        let saved = Saved::parse("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", "filter").unwrap();
        let lines = plan_add(&saved, "CNI-ADMIN", &[ip("10.0.0.2")], None);
        assert_eq!(
            lines,
            [
                ":CNI-FORWARD - [0:0]",
                ":CNI-ADMIN - [0:0]",
                "-I FORWARD 1 -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD",
                "-I CNI-FORWARD 1 -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN",
                "-A CNI-FORWARD -d 10.0.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
            ]
        );
    }

    #[test]
    fn present_rules_are_not_added_again() {
        let saved = Saved::parse(REF, "filter").unwrap();
        assert!(plan_add(&saved, "CNI-ADMIN", &[ip("10.0.0.2")], None).is_empty());
        assert_eq!(
            plan_add(&saved, "CNI-ADMIN", &[ip("10.0.0.3"), ip("10.0.0.3")], None),
            ["-A CNI-FORWARD -d 10.0.0.3/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
        );
        // Another admin chain name: declared and jumped to, CNI-ADMIN untouched.
        let l = plan_add(&saved, "MY-ADMIN", &[], None);
        assert_eq!(l[0], ":MY-ADMIN - [0:0]");
        assert!(l[1].starts_with("-I CNI-FORWARD 1 ") && l[1].ends_with("-j MY-ADMIN"));
    }

    #[test]
    fn del_is_by_spec_and_only_that_address() {
        let saved = Saved::parse(REF, "filter").unwrap();
        assert_eq!(
            plan_del(&saved, &[ip("10.0.0.2")]),
            [
                "-D CNI-FORWARD -d 10.0.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
            ]
        );
        assert!(plan_del(&saved, &[ip("10.0.0.9")]).is_empty());
    }

    #[test]
    fn isolation_rules_match_whatever_the_comment() {
        let iso = Isolation {
            bridge: "cni1".into(),
            isolated: true,
        };
        let saved = Saved::parse(REF, "filter").unwrap();
        let lines = plan_add(&saved, "CNI-ADMIN", &[ip("10.0.0.2")], Some(&iso));
        assert_eq!(lines.len(), 8, "{lines:#?}");
        assert!(
            lines[2].starts_with("-I FORWARD 1 ") && lines[2].ends_with("-j CNI-ISOLATION-STAGE-1")
        );
        assert_eq!(lines[3], "-I CNI-ISOLATION-STAGE-1 1 -i cni1 ! -o cni1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j CNI-ISOLATION-STAGE-2");
        assert!(lines[4].contains("-i cni1 -o cni1 ") && lines[4].ends_with("-j DROP"));
        // The 1.1.1 reference's listing: other comments, same rules.
        let old = "*filter\n:FORWARD ACCEPT [0:0]\n:CNI-ISOLATION-STAGE-1 - [0:0]\n:CNI-ISOLATION-STAGE-2 - [0:0]\n\
            -A FORWARD -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-1\n\
            -A CNI-ISOLATION-STAGE-1 -i cni1 ! -o cni1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
            -A CNI-ISOLATION-STAGE-1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\n\
            -A CNI-ISOLATION-STAGE-2 -o cni1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j DROP\n\
            -A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\nCOMMIT\n";
        let saved = Saved::parse(old, "filter").unwrap();
        let same = Isolation {
            isolated: false,
            ..iso
        };
        let lines = plan_add(&saved, "CNI-ADMIN", &[], Some(&same));
        assert!(lines.iter().all(|l| !l.contains("ISOLATION")), "{lines:#?}");
    }
}
