//! Port mappings in iptables (`nat` table), laid out exactly as the
//! reference's iptables backend, so either suite removes the other's:
//! - `CNI-HOSTPORT-DNAT`, jumped to from PREROUTING and OUTPUT for traffic
//!   to a local address (`-m addrtype --dst-type LOCAL`);
//! - in it, per container, `-m comment --comment 'dnat name: "<net>" id:
//!   "<id>"' -m multiport -p PROTO --destination-ports P,... -j CNI-DN-<hash>`;
//! - `CNI-DN-<hash of network and container ID>`: per mapping, with `snat`
//!   the hairpin and localhost marks (`-j CNI-HOSTPORT-SETMARK`, or the
//!   external mark chain), then `-j DNAT --to-destination IP:PORT`;
//! - `CNI-HOSTPORT-SETMARK` (`-j MARK --set-xmark M`) and
//!   `CNI-HOSTPORT-MASQ` (`-m mark --mark M -j MASQUERADE`), jumped to first
//!   thing in POSTROUTING.
//!
//! All of one family's changes are one `iptables-restore` batch; rules are
//! removed by the spec the listing shows. An ADD first tries a batch that
//! needs no listing (see `optimistic_lines` and `shared_rules_in_place`),
//! so its time does not grow with the number of containers mapped.

use crate::Setup;
use cni_kernel::iptables::{self, line, strings, Saved};
use cni_kernel::nft::{self, hash_hex, NfFamily};
use cni_kernel::Result;
use std::net::IpAddr;

const DNAT: &str = "CNI-HOSTPORT-DNAT";
const SETMARK: &str = "CNI-HOSTPORT-SETMARK";
const MASQ: &str = "CNI-HOSTPORT-MASQ";
const LEGACY_SNAT: &str = "CNI-HOSTPORT-SNAT";
const MARK_COMMENT: &str = "CNI portfwd masquerade mark";
const MASQ_COMMENT: &str = "CNI portfwd requiring masquerade";

/// `CNI-<prefix><hex of SHA-512(network + container ID)>`, 28 characters,
/// as the reference's `utils.MustFormatHashWithPrefix(28, ...)`.
fn chain_name(prefix: &str, network: &str, container_id: &str) -> String {
    let head = format!("CNI-{prefix}");
    let n = 28 - head.len();
    format!("{head}{}", hash_hex(&format!("{network}{container_id}"), n))
}

pub fn dn_chain(network: &str, container_id: &str) -> String {
    chain_name("DN-", network, container_id)
}

fn sn_chain(network: &str, container_id: &str) -> String {
    chain_name("SN-", network, container_id)
}

/// The comment on a container's entry rules (cut to 255 as the reference).
pub fn entry_comment(network: &str, container_id: &str) -> String {
    let c = format!("dnat name: \"{network}\" id: \"{container_id}\"");
    if c.len() > 255 {
        let mut end = 253;
        while !c.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &c[..end])
    } else {
        c
    }
}

/// The entry rules: per protocol (sorted), host ports in chunks of 15.
fn entry_rules(s: &Setup, v6: bool, dn: &str) -> Vec<Vec<String>> {
    let mut protos: Vec<&str> = s.mappings.iter().map(|m| m.protocol.as_str()).collect();
    protos.sort_unstable();
    protos.dedup();
    let comment = entry_comment(&s.network, &s.container_id);
    let conds = s.conditions(v6);
    let mut rules = Vec::new();
    for proto in protos {
        let ports: Vec<String> = s
            .mappings
            .iter()
            .filter(|m| m.protocol == proto)
            .map(|m| m.host_port.to_string())
            .collect();
        for chunk in ports.chunks(15) {
            let mut r = strings(&[
                "-m",
                "comment",
                "--comment",
                &comment,
                "-m",
                "multiport",
                "-p",
                proto,
                "--destination-ports",
                &chunk.join(","),
            ]);
            r.extend(conds.iter().cloned());
            r.extend(strings(&["-j", dn]));
            rules.push(r);
        }
    }
    rules
}

/// The rules of the container's DNAT chain for `ip`.
fn dn_rules(s: &Setup, ip: IpAddr, prefix_len: u8) -> Vec<Vec<String>> {
    let v6 = ip.is_ipv6();
    let mark_chain = s.external_set_mark_chain.as_deref().unwrap_or(SETMARK);
    let mut rules = Vec::new();
    for m in s.mappings.iter().filter(|m| m.applies_to(v6)) {
        let mut base = strings(&["-p", &m.protocol, "--dport", &m.host_port.to_string()]);
        if let Some(h) = m.host_ip {
            base.extend(strings(&["-d", &h.to_string()]));
        }
        if s.snat {
            let hairpin = if s.masq_all {
                if v6 { "::/0" } else { "0.0.0.0/0" }.to_string()
            } else {
                format!("{ip}/{prefix_len}")
            };
            let mut r = base.clone();
            r.extend(strings(&["-s", &hairpin, "-j", mark_chain]));
            rules.push(r);
            if !v6 && !s.masq_all {
                let mut r = base.clone();
                r.extend(strings(&["-s", "127.0.0.1", "-j", mark_chain]));
                rules.push(r);
            }
        }
        let to = if v6 {
            format!("[{ip}]:{}", m.container_port)
        } else {
            format!("{ip}:{}", m.container_port)
        };
        let mut r = base;
        r.extend(strings(&["-j", "DNAT", "--to-destination", &to]));
        rules.push(r);
    }
    rules
}

fn declare(saved: &Saved, chain: &str, lines: &mut Vec<String>) {
    if !saved.has_chain(chain) {
        lines.push(format!(":{chain} - [0:0]"));
    }
}

/// The shared rules, as written and as asserted.
fn setmark_rule(mark: &str) -> Vec<String> {
    strings(&[
        "-m",
        "comment",
        "--comment",
        MARK_COMMENT,
        "-j",
        "MARK",
        "--set-xmark",
        mark,
    ])
}

fn masq_rule(mark: &str) -> Vec<String> {
    strings(&["-m", "mark", "--mark", mark, "-j", "MASQUERADE"])
}

fn postrouting_rule() -> Vec<String> {
    strings(&["-m", "comment", "--comment", MASQ_COMMENT, "-j", MASQ])
}

const HOOKS: [&str; 2] = ["PREROUTING", "OUTPUT"];

fn hook_rule() -> Vec<String> {
    strings(&["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT])
}

/// The shared rules as a listing shows them (the reference's variants of
/// a rule count), for the listing path and CHECK alike.
fn has_setmark(saved: &Saved, mark: &str) -> bool {
    saved
        .chain_rules(SETMARK)
        .any(|r| r.value("--set-xmark") == Some(mark))
}

fn has_masq(saved: &Saved, mark: &str) -> bool {
    saved
        .chain_rules(MASQ)
        .any(|r| r.value("--mark") == Some(mark) && r.target() == Some("MASQUERADE"))
}

fn jumps_from(saved: &Saved, chain: &str, target: &str) -> bool {
    saved.chain_rules(chain).any(|r| r.target() == Some(target))
}

/// Whether the shared SETMARK/MASQ rules are ours to keep.
fn own_mark_chains(s: &Setup) -> bool {
    s.snat && s.external_set_mark_chain.is_none()
}

/// The container's own chain and entry rules, appended to `lines`.
fn container_lines(s: &Setup, ip: IpAddr, prefix_len: u8, dn: &str, lines: &mut Vec<String>) {
    for r in dn_rules(s, ip, prefix_len) {
        lines.push(line("-A", dn, &r));
    }
    for r in entry_rules(s, ip.is_ipv6(), dn) {
        lines.push(line("-A", DNAT, &r));
    }
}

/// The batch installing `ip`'s mappings, given the table as listed.
fn install_lines(s: &Setup, ip: IpAddr, prefix_len: u8, saved: &Saved) -> Vec<String> {
    let dn = dn_chain(&s.network, &s.container_id);
    let mut decl = Vec::new();
    let mut lines = Vec::new();
    if own_mark_chains(s) {
        declare(saved, SETMARK, &mut decl);
        declare(saved, MASQ, &mut decl);
        if !has_setmark(saved, &s.mark) {
            lines.push(line("-A", SETMARK, &setmark_rule(&s.mark)));
        }
        if !has_masq(saved, &s.mark) {
            lines.push(line("-A", MASQ, &masq_rule(&s.mark)));
        }
        if !jumps_from(saved, "POSTROUTING", MASQ) {
            let mut first = strings(&["1"]);
            first.extend(postrouting_rule());
            lines.push(line("-I", "POSTROUTING", &first));
        }
    }
    declare(saved, DNAT, &mut decl);
    for hook in HOOKS {
        if !jumps_from(saved, hook, DNAT) {
            lines.push(line("-A", hook, &hook_rule()));
        }
    }
    // The container's own chain and entry rules are written anew.
    lines.extend(
        saved
            .chain_rules(DNAT)
            .filter(|r| r.target() == Some(dn.as_str()))
            .map(|r| r.delete_line()),
    );
    if saved.has_chain(&dn) {
        lines.push(format!("-F {dn}"));
    } else {
        decl.push(format!(":{dn} - [0:0]"));
    }
    container_lines(s, ip, prefix_len, &dn, &mut lines);
    decl.extend(lines);
    decl
}

/// The batch of the usual ADD, applied without listing the table (whose
/// listing grows with every container's rules): it creates (`-N`) the
/// container's chain, which must not exist yet, and appends to the shared
/// chains, which must exist (the mark chain is a jump target of the
/// container's rules). When that does not hold (the first container, an
/// ADD repeated without DEL, the chains flushed away) the batch fails
/// whole and [`install_lines`] plans from the listing. With `assert_shared`
/// the batch also asserts (`-C`) each shared rule [`install_lines`] would
/// add if missing.
fn optimistic_lines(s: &Setup, ip: IpAddr, prefix_len: u8, assert_shared: bool) -> Vec<String> {
    let dn = dn_chain(&s.network, &s.container_id);
    let mut lines = Vec::new();
    if assert_shared {
        if own_mark_chains(s) {
            lines.push(line("-C", SETMARK, &setmark_rule(&s.mark)));
            lines.push(line("-C", MASQ, &masq_rule(&s.mark)));
            lines.push(line("-C", "POSTROUTING", &postrouting_rule()));
        }
        for hook in HOOKS {
            lines.push(line("-C", hook, &hook_rule()));
        }
    }
    lines.push(format!("-N {dn}"));
    container_lines(s, ip, prefix_len, &dn, &mut lines);
    lines
}

/// Whether the shared rules an ADD needs are in place, asked of the kernel
/// rather than of a listing: iptables-nft keeps its chains in nf_tables,
/// where one small chain can be dumped alone (over nfnetlink, no process),
/// while any `-C` in an iptables-nft batch reads every rule of the table.
/// A hook must jump to its chain; the mark and masquerade chains must not
/// be empty. `None` when the `nat` table is not in nf_tables
/// (iptables-legacy, which reads the whole table for any change anyway, so
/// there the batch asserts them with `-C`).
fn shared_rules_in_place(s: &Setup, v6: bool) -> Result<Option<bool>> {
    let family = if v6 { NfFamily::IP6 } else { NfFamily::IP };
    let rules = |chain: &str| nft::chain_jumps(family, "nat", chain);
    let jumps_to =
        |r: &[Vec<String>], target: &str| r.iter().any(|j| j.iter().any(|c| c == target));
    let Some(prerouting) = rules("PREROUTING")? else {
        return Ok(None);
    };
    let mut ok = jumps_to(&prerouting, DNAT);
    ok = ok && rules("OUTPUT")?.is_some_and(|r| jumps_to(&r, DNAT));
    if own_mark_chains(s) {
        ok = ok && rules("POSTROUTING")?.is_some_and(|r| jumps_to(&r, MASQ));
        ok = ok && rules(SETMARK)?.is_some_and(|r| !r.is_empty());
        ok = ok && rules(MASQ)?.is_some_and(|r| !r.is_empty());
    }
    Ok(Some(ok))
}

/// Install the mappings of one container address: without listing the
/// table when the shared rules are in place, else (and whenever the batch
/// is refused) from the listing, which writes or repairs them.
pub fn install(s: &Setup, net: ipnet::IpNet) -> Result<()> {
    // The hairpin source is the container's subnet as the reference
    // writes it (address/prefix of the result, stored as the network).
    let (ip, prefix_len) = (net.addr(), net.prefix_len());
    let what = || format!("unable to setup DNAT for container {}", s.container_id);
    let plan = |saved: &Saved| install_lines(s, ip, prefix_len, saved);
    let v6 = ip.is_ipv6();
    let assert_shared = match shared_rules_in_place(s, v6) {
        Ok(Some(true)) => false,
        Ok(Some(false)) => {
            log::debug!("shared iptables rules incomplete, listing the table");
            return iptables::edit(v6, "nat", &what, &plan);
        }
        Ok(None) => true,
        Err(e) => {
            log::debug!("cannot ask nf_tables for the shared rules: {e}");
            true
        }
    };
    let batch = optimistic_lines(s, ip, prefix_len, assert_shared);
    iptables::edit_optimistic(v6, "nat", &what, &batch, &plan)
}

/// Remove a container's DNAT chain (and the legacy SNAT one) of one family.
/// When `s` carries the container's mappings (a runtime's DEL does), a
/// batch deleting exactly the rules ADD wrote is tried first, without
/// listing the table; it fails whole if any of them is not there (other
/// mappings, rules of the other family, none at all) and the listing
/// decides.
pub fn remove(v6: bool, s: &Setup) -> Result<()> {
    let dn = dn_chain(&s.network, &s.container_id);
    let sn = sn_chain(&s.network, &s.container_id);
    let what = || format!("could not teardown ipv{} dnat", if v6 { 6 } else { 4 });
    let plan = |saved: &Saved| {
        let mut lines = saved.teardown_lines(DNAT, &dn);
        lines.extend(saved.teardown_lines(LEGACY_SNAT, &sn));
        lines
    };
    // Every rule of the container's is in its chains or jumps to them (a
    // jump cannot outlive its chain): with neither chain anywhere, there
    // is nothing to remove, and no iptables process needs to say so.
    if iptables::chains_absent(v6, "nat", &[&dn, &sn])? {
        return Ok(());
    }
    if s.mappings.is_empty() {
        return iptables::edit(v6, "nat", &what, &plan);
    }
    let mut exact: Vec<String> = entry_rules(s, v6, &dn)
        .iter()
        .map(|r| line("-D", DNAT, r))
        .collect();
    exact.push(format!("-F {dn}"));
    exact.push(format!("-X {dn}"));
    // The reference's old SNAT chain must not exist: made and dropped.
    exact.push(format!("-N {sn}"));
    exact.push(format!("-X {sn}"));
    iptables::edit_optimistic(v6, "nat", &what, &exact, &plan)
}

/// Container IDs whose entry rules name `network` (for GC).
pub fn containers_of(v6: bool, network: &str) -> Result<Vec<String>> {
    let saved = iptables::save(v6, "nat")?;
    let head = format!("dnat name: \"{network}\" id: \"");
    Ok(saved
        .chain_rules(DNAT)
        .filter_map(|r| {
            let id = r
                .value("--comment")?
                .strip_prefix(&head)?
                .strip_suffix('"')?;
            Some(id.to_string())
        })
        .collect())
}

/// CHECK: the container's chain holds a DNAT rule per mapping of the
/// family, and the entry rules jump to it.
pub fn check(s: &Setup, ip: IpAddr) -> cni::Result<()> {
    let v6 = ip.is_ipv6();
    let dn = dn_chain(&s.network, &s.container_id);
    let saved = iptables::save(v6, "nat")?;
    let family = if v6 { "ipv6" } else { "ipv4" };
    if !saved.has_chain(&dn) {
        return Err(cni::Error::plugin(format!(
            "could not check {family} dnat: chain {dn} not found in iptables table nat"
        )));
    }
    for m in s.mappings.iter().filter(|m| m.applies_to(v6)) {
        let to = if v6 {
            format!("[{ip}]:{}", m.container_port)
        } else {
            format!("{ip}:{}", m.container_port)
        };
        let port = m.host_port.to_string();
        if !saved
            .chain_rules(&dn)
            .any(|r| r.value("--to-destination") == Some(&to) && r.value("--dport") == Some(&port))
        {
            return Err(cni::Error::plugin(format!(
                "could not check {family} dnat: no DNAT of {} port {port} to {to} in chain {dn}",
                m.protocol
            )));
        }
    }
    if !jumps_from(&saved, DNAT, &dn) {
        return Err(cni::Error::plugin(format!(
            "could not check {family} dnat: no rule in {DNAT} jumps to {dn}"
        )));
    }
    // The shared rules every mapping depends on.
    for hook in HOOKS {
        if !jumps_from(&saved, hook, DNAT) {
            return Err(cni::Error::plugin(format!(
                "could not check {family} dnat: no rule in {hook} jumps to {DNAT}"
            )));
        }
    }
    if own_mark_chains(s) {
        let complete = has_setmark(&saved, &s.mark)
            && has_masq(&saved, &s.mark)
            && jumps_from(&saved, "POSTROUTING", MASQ);
        if !complete {
            return Err(cni::Error::plugin(format!(
                "could not check {family} dnat: the hairpin masquerade rules \
                 ({SETMARK}, {MASQ} and its jump from POSTROUTING) are incomplete"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_reference() {
        assert_eq!(
            dn_chain(
                "testNetName",
                "icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8yohb9ceu0daez5hashee8ooYai5wa3y"
            ),
            "CNI-DN-bfd599665540dd91d5d28"
        );
        assert_eq!(entry_comment("n", "c"), "dnat name: \"n\" id: \"c\"");
        assert_eq!(entry_comment("n", &"x".repeat(300)).len(), 256);
    }
}
