//! MAC spoof checking on a bridge port (`macspoofchk`): frames entering the
//! bridge from a container's port with any source MAC but the container's
//! are dropped. Laid out as the reference does (table `bridge nat`, base
//! chain `PREROUTING`, per-attachment chains `cni-br-iface-<id>` and
//! `cni-br-iface-<id>-mac`, rules commented `macspoofchk-<id>`), so either
//! suite can remove what the other made.

use cni_kernel::error::Result;
use cni_kernel::nft::{self, x, Batch, NfFamily};
use nftables::expr::MetaKey;
use nftables::schema::{FlushObject, NfCmd, NfListObject};
use nftables::types::{NfChainType, NfHook};

const TABLE: &str = "nat";
const BASE: &str = "PREROUTING";
const F: NfFamily = NfFamily::Bridge;

/// The attachment ID the reference uses: `<containerID>-<ifname>`.
pub fn ref_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

fn iface_chain(id: &str) -> String {
    format!("cni-br-iface-{id}")
}

fn comment(id: &str) -> String {
    format!("macspoofchk-{id}")
}

/// One transaction: table, base chain, the two chains (flushed), the jump
/// from PREROUTING for frames from `host_if`, and the MAC check.
pub fn setup_batch(host_if: &str, mac: &str, id: &str) -> Batch<'static> {
    let ic = iface_chain(id);
    let mc = format!("{ic}-mac");
    let c = Some(comment(id));
    let mut b = Batch::new();
    b.add(NfListObject::Table(nft::table(F, TABLE)));
    b.add(NfListObject::Chain(nft::base_chain(
        F,
        TABLE,
        BASE,
        NfChainType::Filter,
        NfHook::Prerouting,
        -300,
    )));
    for ch in [&ic, &mc] {
        b.add(NfListObject::Chain(nft::chain(F, TABLE, ch)));
        b.add_cmd(NfCmd::Flush(FlushObject::Chain(nft::chain(F, TABLE, ch))));
    }
    let rules = [
        (
            BASE,
            vec![
                x::eq(x::meta(MetaKey::Iifname), x::s(host_if)),
                x::jump(&ic),
            ],
        ),
        (ic.as_str(), vec![x::jump(&mc)]),
        (
            mc.as_str(),
            vec![x::eq(x::payload("ether", "saddr"), x::s(mac)), x::ret()],
        ),
        (mc.as_str(), vec![x::drop()]),
    ];
    for (chain, expr) in rules {
        b.add(NfListObject::Rule(nft::rule(
            F,
            TABLE,
            chain,
            expr,
            c.clone(),
        )));
    }
    b
}

/// Install the spoof check for the port `host_if` whose container has `mac`.
pub fn setup(host_if: &str, mac: &str, id: &str) -> Result<()> {
    nft::apply(setup_batch(host_if, mac, id), &|| {
        format!("set up MAC spoof check on {host_if}")
    })
}

/// Remove it; succeeds when it is already gone. nft must be runnable: the
/// config asked for the check, so its rules may be in the kernel.
pub fn teardown(id: &str) -> Result<()> {
    let what = || format!("tear down MAC spoof check {id}");
    let c = comment(id);
    let ic = iface_chain(id);
    let mc = format!("{ic}-mac");
    nft::remove(
        F,
        TABLE,
        &|r| r.chain == BASE && r.comment.as_deref() == Some(c.as_str()),
        &|ch| ch == ic || ch == mc,
        &what,
    )
    .map(|_| ())
}

/// Whether the spoof check of `id` is in place.
pub fn check(id: &str) -> Result<bool> {
    let c = comment(id);
    Ok(nft::list_table(F, TABLE)?.is_some_and(|t| {
        t.chain_rules(BASE)
            .any(|r| r.comment.as_deref() == Some(c.as_str()))
    }))
}

/// Every spoof check present, as (ID, host port it watches), for GC.
pub fn list_ports() -> Result<Vec<(String, String)>> {
    let Some(t) = nft::list_table(F, TABLE)? else {
        return Ok(Vec::new());
    };
    Ok(t.chain_rules(BASE)
        .filter_map(|r| {
            let id = r
                .comment
                .as_deref()?
                .strip_prefix("macspoofchk-")?
                .to_string();
            let port = r
                .expr
                .as_array()?
                .iter()
                .find_map(|e| e["match"]["right"].as_str())?
                .to_string();
            Some((id, port))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules() {
        let id = ref_id("c1", "eth0");
        assert_eq!(id, "c1-eth0");
        let text =
            serde_json::to_string(&setup_batch("veth1234", "02:00:00:00:00:01", &id).to_nftables())
                .unwrap();
        assert!(text.contains("cni-br-iface-c1-eth0-mac"));
        assert!(text.contains(r#""right":"veth1234""#));
        assert!(text.contains(r#""right":"02:00:00:00:00:01""#));
        assert!(text.contains("macspoofchk-c1-eth0"));
        assert!(text.contains(r#"{"drop":null}"#));
        assert!(text.contains(r#"{"meta":{"key":"iifname"}}"#));
    }
}
