//! Port mappings in nftables, laid out as the reference's nftables backend
//! (v1.9): per family a table `cni_hostport` with
//! - `prerouting` (nat, hook prerouting, priority -100) and `output` (nat,
//!   hook output, -100): `fib daddr type local jump hostports_all`, so only
//!   traffic addressed to this host is redirected, never traffic routed
//!   through it;
//! - `hostports_all`: jumps to `hostip_hostports` (kept for rules older
//!   reference versions wrote) and `hostports`;
//! - `hostports`: one DNAT rule per mapping, commented with the container ID;
//! - `masquerading` (nat, hook postrouting, 100): with `snat`, masquerade
//!   of hairpin (container to itself) and localhost traffic, also commented
//!   with the container ID.
//!
//! Both families' rules of one ADD are one transaction. DEL deletes, by
//! handle, every rule of the rule chains whose comment is the container ID
//! (found with one nfnetlink dump per chain, not by listing the table).

use crate::Setup;
use cni_kernel::nft::{self, x, Batch, NfFamily};
use cni_kernel::Result;
use nftables::expr::{Expression, Fib, FibFlag, FibResult, NamedExpression};
use nftables::schema::{FlushObject, NfCmd, NfListObject};
use nftables::stmt::{Statement, NAT};
use nftables::types::{NfChainType, NfHook};
use std::net::IpAddr;

const TABLE: &str = "cni_hostport";
/// The chains holding per-container rules.
const RULE_CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];

fn family(v6: bool) -> (NfFamily, &'static str) {
    if v6 {
        (NfFamily::IP6, "ip6")
    } else {
        (NfFamily::IP, "ip")
    }
}

fn fib_daddr_local() -> x::Stmt {
    let mut flags = std::collections::HashSet::new();
    flags.insert(FibFlag::Daddr);
    x::eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags,
        })),
        x::s("local"),
    )
}

/// `ct status dnat`: the connection was DNATed (by one of our rules).
fn ct_dnat() -> x::Stmt {
    x::ct("status", nftables::stmt::Operator::IN, x::s("dnat"))
}

fn dnat(ip: IpAddr, port: u16) -> x::Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(x::s(ip.to_string())),
        family: None,
        port: Some(x::n(u32::from(port))),
        flags: None,
    }))
}

/// Add to `b` the table, chains and hook rules of one family, and the
/// container's rules for `ip`.
fn family_batch(b: &mut Batch<'static>, s: &Setup, ip: IpAddr) {
    let v6 = ip.is_ipv6();
    let (f, proto) = family(v6);
    let id = Some(s.container_id.clone());
    b.add(NfListObject::Table(nft::table(f, TABLE)));
    for c in ["hostports", "hostip_hostports", "hostports_all"] {
        b.add(NfListObject::Chain(nft::chain(f, TABLE, c)));
    }
    let flush = |b: &mut Batch<'static>, c: &str| {
        b.add_cmd(NfCmd::Flush(FlushObject::Chain(nft::chain(f, TABLE, c))));
    };
    flush(b, "hostports_all");
    for target in ["hostip_hostports", "hostports"] {
        b.add(NfListObject::Rule(nft::rule(
            f,
            TABLE,
            "hostports_all",
            vec![x::jump(target)],
            None,
        )));
    }
    for (chain, hook) in [
        ("prerouting", NfHook::Prerouting),
        ("output", NfHook::Output),
    ] {
        b.add(NfListObject::Chain(nft::base_chain(
            f,
            TABLE,
            chain,
            NfChainType::NAT,
            hook,
            -100,
        )));
        flush(b, chain);
        b.add(NfListObject::Rule(nft::rule(
            f,
            TABLE,
            chain,
            vec![fib_daddr_local(), x::jump("hostports_all")],
            None,
        )));
    }
    for m in s.mappings.iter().filter(|m| m.applies_to(v6)) {
        let mut expr = Vec::new();
        if let Some(h) = m.host_ip {
            expr.push(x::eq(x::payload(proto, "daddr"), x::s(h.to_string())));
        }
        expr.push(x::eq(
            x::payload(&m.protocol, "dport"),
            x::n(u32::from(m.host_port)),
        ));
        expr.push(dnat(ip, m.container_port));
        b.add(NfListObject::Rule(nft::rule(
            f,
            TABLE,
            "hostports",
            expr,
            id.clone(),
        )));
    }
    if s.snat {
        b.add(NfListObject::Chain(nft::base_chain(
            f,
            TABLE,
            "masquerading",
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
        )));
        let cip = x::s(ip.to_string());
        let mut rules = Vec::new();
        if s.masq_all {
            // Every connection DNATed to the container leaves masqueraded
            // (macvlan-like setups where replies would bypass the host).
            rules.push(vec![
                x::eq(x::payload(proto, "daddr"), cip.clone()),
                ct_dnat(),
                x::masquerade(),
            ]);
        } else {
            rules.push(vec![
                x::eq(x::payload(proto, "saddr"), cip.clone()),
                x::eq(x::payload(proto, "daddr"), cip.clone()),
                x::masquerade(),
            ]);
            if !v6 {
                rules.push(vec![
                    x::eq(x::payload(proto, "saddr"), x::s("127.0.0.1")),
                    x::eq(x::payload(proto, "daddr"), cip.clone()),
                    x::masquerade(),
                ]);
            }
        }
        for expr in rules {
            b.add(NfListObject::Rule(nft::rule(
                f,
                TABLE,
                "masquerading",
                expr,
                id.clone(),
            )));
        }
    }
}

/// The container's rules of one family as they are now (to replace on a
/// repeated ADD).
fn listed(v6: bool, container_id: &str) -> Result<Vec<nft::Listed>> {
    Ok(nft::list_table(family(v6).0, TABLE)?
        .map(|t| {
            t.rules
                .into_iter()
                .filter(|r| {
                    RULE_CHAINS.contains(&r.chain.as_str())
                        && r.comment.as_deref() == Some(container_id)
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The transaction installing the container's mappings for `v4`/`v6`.
pub fn batch(s: &Setup, ips: &[IpAddr], stale: &[nft::Listed]) -> Batch<'static> {
    let mut b = Batch::new();
    for ip in ips {
        family_batch(&mut b, s, *ip);
    }
    for r in stale {
        b.add_cmd(r.delete());
    }
    b
}

/// `replace`: the container may already have rules (it was recorded
/// before this ADD), which the same transaction deletes. Without it the
/// table is not listed at all: a listing costs time in proportion to every
/// container's rules, and the transaction itself does not, so an ADD stays
/// as fast with 200 containers mapped as with one.
pub fn install(s: &Setup, v4: Option<IpAddr>, v6: Option<IpAddr>, replace: bool) -> Result<()> {
    let ips: Vec<IpAddr> = [v4, v6].into_iter().flatten().collect();
    let mut stale = Vec::new();
    for ip in ips.iter().filter(|_| replace) {
        stale.extend(listed(ip.is_ipv6(), &s.container_id)?);
    }
    nft::apply(batch(s, &ips, &stale), &|| {
        format!(
            "unable to set up nftables rules for port mappings of container {}",
            s.container_id
        )
    })
}

/// Remove the container's rules from both families' tables.
pub fn remove(container_id: &str) -> Result<()> {
    for v6 in [false, true] {
        // Asked of the kernel: without our table (with the iptables backend
        // configured, usually) no `nft` process runs.
        if !nft::table_exists(family(v6).0, TABLE)? {
            continue;
        }
        // Found by dumping just the rule chains over nfnetlink, not by
        // listing the table: a DEL then costs the same with 200 containers
        // mapped as with one.
        nft::remove_commented(family(v6).0, TABLE, &RULE_CHAINS, container_id, &|| {
            format!("remove nftables port mappings of container {container_id}")
        })?;
    }
    Ok(())
}

/// CHECK: a DNAT rule per mapping of the family, and the masquerade rules.
pub fn check(s: &Setup, ip: IpAddr) -> cni::Result<()> {
    let v6 = ip.is_ipv6();
    let rules = listed(v6, &s.container_id)?;
    let count = |chain: &str| rules.iter().filter(|r| r.chain == chain).count();
    let want = s.mappings.iter().filter(|m| m.applies_to(v6)).count();
    if count("hostports") < want {
        return Err(cni::Error::plugin(format!(
            "missing hostport rules in \"hostports\" chain for container {} ({} of {want})",
            s.container_id,
            count("hostports")
        )));
    }
    let masq = if !s.snat {
        0
    } else if v6 || s.masq_all {
        1
    } else {
        2
    };
    if count("masquerading") < masq {
        return Err(cni::Error::plugin(format!(
            "missing hostport rules in \"masquerading\" chain for container {}",
            s.container_id
        )));
    }
    Ok(())
}
