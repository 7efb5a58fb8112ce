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
//!   ACCEPT for the subnet and a MASQUERADE, jumped to from POSTROUTING.
//!
//! Teardown always tries both, as the reference does.

use crate::error::{Error, Result};
use crate::nft;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::process::Command;

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";

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

/// The attachment the rules belong to.
#[derive(Debug, Clone)]
pub struct Owner<'a> {
    pub network: &'a str,
    pub ifname: &'a str,
    pub container_id: &'a str,
}

fn network_hash(network: &str) -> String {
    nft::hash_hex(network, 16)
}

fn instance_hash(o: &Owner) -> String {
    format!(
        "{}-{}",
        network_hash(o.network),
        nft::hash_hex(&format!("{}:{}", o.ifname, o.container_id), 16)
    )
}

/// The comment on an attachment's nftables rule: hash first (what DEL and GC
/// match on), then a readable description.
pub fn nft_comment(o: &Owner) -> String {
    nft::truncate_comment(format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(o),
        o.network.replace('"', ""),
        o.ifname.replace('"', ""),
        o.container_id.replace('"', "")
    ))
}

fn family_of(ip: &IpNet) -> &'static str {
    if ip.addr().is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

fn prefix(net: &IpNet) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}

fn payload_match(op: &str, proto: &str, field: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}})
}

/// The nftables commands that set up masquerade for `ips`, replacing any
/// rules this attachment had.
pub fn nft_setup_commands(ips: &[IpNet], o: &Owner, stale: &[Value]) -> Vec<Value> {
    let t = |extra: Value| {
        let mut base = json!({"family": "inet", "table": TABLE});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let mut cmds = vec![
        json!({"add": {"table": {"family": "inet", "name": TABLE}}}),
        json!({"add": {"chain": t(json!({"name": CHAIN}))}}),
        json!({"add": {"chain": t(json!({"name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}))}}),
        json!({"flush": {"chain": t(json!({"name": "postrouting"}))}}),
        json!({"add": {"rule": t(json!({"chain": "postrouting", "expr": [
            payload_match("==", "ip", "daddr", json!({"prefix": {"addr": "224.0.0.0", "len": 4}})),
            {"return": null}
        ]}))}}),
        json!({"add": {"rule": t(json!({"chain": "postrouting", "expr": [
            payload_match("==", "ip6", "daddr", json!({"prefix": {"addr": "ff00::", "len": 8}})),
            {"return": null}
        ]}))}}),
        json!({"add": {"rule": t(json!({"chain": "postrouting", "expr": [{"goto": {"target": CHAIN}}]}))}}),
    ];
    cmds.extend(stale.iter().map(nft::delete_rule));
    for ip in ips {
        let fam = family_of(ip);
        cmds.push(
            json!({"add": {"rule": t(json!({"chain": CHAIN, "comment": nft_comment(o), "expr": [
                payload_match("==", fam, "saddr", json!(ip.addr().to_string())),
                payload_match("!=", fam, "daddr", prefix(ip)),
                {"masquerade": null}
            ]}))}}),
        );
    }
    cmds
}

fn nft_rules_with_prefix(prefix: &str) -> Result<Vec<Value>> {
    Ok(nft::list_rules("inet", TABLE, CHAIN)?
        .into_iter()
        .filter(|r| nft::comment(r).is_some_and(|c| c.starts_with(prefix)))
        .collect())
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

/// How running an iptables command went wrong.
enum IptError {
    /// The binary could not be run at all (not installed).
    NoTool(String),
    /// It ran and refused; its stderr.
    Failed(String),
}

impl std::fmt::Display for IptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IptError::NoTool(m) | IptError::Failed(m) => f.write_str(m),
        }
    }
}

/// Run `iptables -w ARGS` (`ip6tables` for IPv6); its stdout on success.
fn iptables_out(v6: bool, args: &[String]) -> std::result::Result<String, IptError> {
    let bin = if v6 { "ip6tables" } else { "iptables" };
    let out = Command::new(bin)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| IptError::NoTool(format!("cannot run {bin}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(IptError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn iptables(v6: bool, args: &[String]) -> std::result::Result<(), IptError> {
    iptables_out(v6, args).map(|_| ())
}

/// Remove an attachment's iptables chain of one family and every
/// POSTROUTING rule jumping to it, whatever its match (this layout's and
/// the reference's older `-s <ip>/<prefix>` form alike), so teardown needs
/// neither the namespace nor the addresses. Absent chain or tool: nothing
/// to do.
fn iptables_teardown(v6: bool, chain: &str) -> std::result::Result<(), String> {
    match iptables(v6, &strings(&["-t", "nat", "-L", chain, "-n"])) {
        Ok(()) => {}
        Err(_) => return Ok(()),
    }
    let listing = iptables_out(
        v6,
        &strings(&["-t", "nat", "-L", "POSTROUTING", "-n", "--line-numbers"]),
    )
    .map_err(|e| e.to_string())?;
    // Lines are "NUM TARGET PROT OPT SOURCE DESTINATION ..."; delete from
    // the highest number down so the others keep theirs.
    let mut numbers: Vec<u32> = listing
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let n = cols.next()?.parse().ok()?;
            (cols.next()? == chain).then_some(n)
        })
        .collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    for n in numbers {
        iptables(
            v6,
            &strings(&["-t", "nat", "-D", "POSTROUTING", &n.to_string()]),
        )
        .map_err(|e| e.to_string())?;
    }
    iptables(v6, &strings(&["-t", "nat", "-F", chain]))
        .and_then(|_| iptables(v6, &strings(&["-t", "nat", "-X", chain])))
        .map_err(|e| e.to_string())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
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
            let stale = nft_rules_with_prefix(&instance_hash(o))?;
            nft::apply(nft_setup_commands(ips, o, &stale), &what)
        }
        Backend::Iptables => {
            let chain = iptables_chain(o.network, o.container_id);
            let comment = iptables_comment(o.network, o.container_id);
            for ip in ips {
                let v6 = ip.addr().is_ipv6();
                // The chain may exist from another address of the same attachment.
                if iptables(v6, &strings(&["-t", "nat", "-L", &chain, "-n"])).is_err() {
                    iptables(v6, &strings(&["-t", "nat", "-N", &chain]))
                        .map_err(|e| Error::protocol(what(), e.to_string()))?;
                }
                for (ch, spec) in iptables_rules(ip, &chain, &comment) {
                    let mut check = strings(&["-t", "nat", "-C", &ch]);
                    check.extend(spec.iter().cloned());
                    if iptables(v6, &check).is_ok() {
                        continue;
                    }
                    let mut add = strings(&["-t", "nat", "-A", &ch]);
                    add.extend(spec);
                    iptables(v6, &add).map_err(|e| Error::protocol(what(), e.to_string()))?;
                }
            }
            Ok(())
        }
    }
}

/// Remove an attachment's masquerade rules from both backends and both
/// families; succeeds when they are already gone. Needs only the owner: DEL
/// can clean up without the namespace or a previous result.
pub fn teardown(o: &Owner) -> Result<()> {
    let what = || format!("tear down ipMasq for container {}", o.container_id);
    let mut errors = Vec::new();
    match nft_rules_with_prefix(&instance_hash(o)) {
        Ok(rules) => {
            if let Err(e) = nft::apply(rules.iter().map(nft::delete_rule).collect(), &what) {
                errors.push(e.to_string());
            }
        }
        // No nft binary: there can be no nftables rules of ours either.
        Err(e) if e.is_no_tool() => {}
        Err(e) => errors.push(e.to_string()),
    }
    let chain = iptables_chain(o.network, o.container_id);
    for v6 in [false, true] {
        if let Err(e) = iptables_teardown(v6, &chain) {
            errors.push(e);
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
            let rules = nft_rules_with_prefix(&instance_hash(o))?;
            Ok(ips.iter().all(|ip| {
                rules
                    .iter()
                    .any(|r| r.to_string().contains(&format!("\"{}\"", ip.addr())))
            }))
        }
        Backend::Iptables => {
            let chain = iptables_chain(o.network, o.container_id);
            let comment = iptables_comment(o.network, o.container_id);
            Ok(ips.iter().all(|ip| {
                iptables_rules(ip, &chain, &comment)
                    .into_iter()
                    .all(|(ch, spec)| {
                        let mut c = strings(&["-t", "nat", "-C", &ch]);
                        c.extend(spec);
                        iptables(ip.addr().is_ipv6(), &c).is_ok()
                    })
            }))
        }
    }
}

/// GC: remove the nftables masquerade rules of `network` whose attachment
/// is not in `keep` (container ID, ifname). The iptables layout carries no
/// per-network marker, so its leftovers cannot be told apart (as in the
/// reference); DEL still removes them.
pub fn gc(network: &str, keep: &[(String, String)]) -> Result<usize> {
    let rules = match nft_rules_with_prefix(&network_hash(network)) {
        Ok(r) => r,
        Err(e) if e.is_no_tool() => return Ok(0),
        Err(e) => return Err(e),
    };
    let valid: Vec<String> = keep
        .iter()
        .map(|(id, ifname)| {
            nft_comment(&Owner {
                network,
                ifname,
                container_id: id,
            })
        })
        .collect();
    let stale: Vec<Value> = rules
        .iter()
        .filter(|r| !nft::comment(r).is_some_and(|c| valid.iter().any(|v| v == c)))
        .map(nft::delete_rule)
        .collect();
    let n = stale.len();
    nft::apply(stale, &|| format!("GC ipMasq rules of network {network}"))?;
    Ok(n)
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
    fn comment_layout_matches_reference() {
        let c = nft_comment(&owner());
        let (hash, rest) = c.split_once(", ").unwrap();
        assert_eq!(hash.len(), 33);
        assert_eq!(&hash[..16], nft::hash_hex("mynet", 16));
        assert_eq!(&hash[17..], nft::hash_hex("eth0:c1", 16));
        assert_eq!(rest, "net: mynet, if: eth0, id: c1");
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
    fn setup_commands_shape() {
        let cmds = nft_setup_commands(
            &[
                "10.1.0.2/24".parse().unwrap(),
                "fd00::2/64".parse().unwrap(),
            ],
            &owner(),
            &[json!({"family":"inet","table":TABLE,"chain":CHAIN,"handle":4})],
        );
        let text = serde_json::to_string(&cmds).unwrap();
        // serde_json orders object keys, so look at the structure, not the text.
        let v4_match = &cmds
            .iter()
            .find(|c| c["add"]["rule"]["expr"][0]["match"]["right"] == "10.1.0.2")
            .unwrap_or_else(|| panic!("no rule for 10.1.0.2: {text}"))["add"]["rule"]["expr"][0]
            ["match"];
        assert_eq!(v4_match["left"]["payload"]["field"], "saddr", "{text}");
        assert_eq!(v4_match["op"], "==", "{text}");
        assert!(
            text.contains(r#""prefix":{"addr":"10.1.0.0","len":24}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""prefix":{"addr":"fd00::","len":64}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"{"delete":{"rule":{"chain":"masq_checks","family":"inet","handle":4"#)
                || text.contains(r#""handle":4"#)
        );
        assert_eq!(Backend::parse(None), Ok(Backend::Nftables));
        assert_eq!(Backend::parse(Some("iptables")), Ok(Backend::Iptables));
        assert!(Backend::parse(Some("pf")).is_err());
    }
}
