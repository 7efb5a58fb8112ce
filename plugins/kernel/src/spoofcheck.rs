//! MAC spoof checking on a bridge port (`macspoofchk`): frames entering the
//! bridge from a container's port with any source MAC but the container's
//! are dropped. Laid out as the reference does (table `bridge nat`, base
//! chain `PREROUTING`, per-attachment chains `cni-br-iface-<id>` and
//! `cni-br-iface-<id>-mac`, rules commented `macspoofchk-<id>`), so either
//! suite can remove what the other made.

use crate::error::Result;
use crate::nft;
use serde_json::{json, Value};

const TABLE: &str = "nat";
const BASE: &str = "PREROUTING";

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

fn obj(extra: Value) -> Value {
    let mut base = json!({"family": "bridge", "table": TABLE});
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

/// One transaction: table, base chain, the two chains (flushed), the jump
/// from PREROUTING for frames from `host_if`, and the MAC check.
pub fn setup_commands(host_if: &str, mac: &str, id: &str) -> Vec<Value> {
    let ic = iface_chain(id);
    let mc = format!("{ic}-mac");
    let c = comment(id);
    vec![
        json!({"add": {"table": {"family": "bridge", "name": TABLE}}}),
        json!({"add": {"chain": obj(json!({"name": BASE, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}))}}),
        json!({"add": {"chain": obj(json!({"name": ic}))}}),
        json!({"add": {"chain": obj(json!({"name": mc}))}}),
        json!({"flush": {"chain": obj(json!({"name": ic}))}}),
        json!({"flush": {"chain": obj(json!({"name": mc}))}}),
        json!({"add": {"rule": obj(json!({"chain": BASE, "comment": c, "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_if}},
            {"jump": {"target": ic}}
        ]}))}}),
        json!({"add": {"rule": obj(json!({"chain": ic, "comment": c, "expr": [{"jump": {"target": mc}}]}))}}),
        json!({"add": {"rule": obj(json!({"chain": mc, "comment": c, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac}},
            {"return": null}
        ]}))}}),
        json!({"add": {"rule": obj(json!({"chain": mc, "comment": c, "expr": [{"drop": null}]}))}}),
    ]
}

/// Install the spoof check for the port `host_if` whose container has `mac`.
pub fn setup(host_if: &str, mac: &str, id: &str) -> Result<()> {
    nft::apply(setup_commands(host_if, mac, id), &|| {
        format!("set up MAC spoof check on {host_if}")
    })
}

/// Remove it; succeeds when it is already gone.
pub fn teardown(id: &str) -> Result<()> {
    let what = || format!("tear down MAC spoof check {id}");
    let c = comment(id);
    let ic = iface_chain(id);
    let rules = match nft::list_rules("bridge", TABLE, BASE) {
        Ok(r) => r,
        // No nft on this host: there can be no rules of ours either.
        Err(e) if e.is_no_tool() => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut cmds: Vec<Value> = rules
        .iter()
        .filter(|r| nft::comment(r) == Some(c.as_str()))
        .map(nft::delete_rule)
        .collect();
    for ch in [ic.clone(), format!("{ic}-mac")] {
        if nft::chain_exists("bridge", TABLE, &ch)? {
            cmds.push(json!({"delete": {"chain": obj(json!({"name": ch}))}}));
        }
    }
    nft::apply(cmds, &what)
}

/// Whether the spoof check of `id` is in place.
pub fn check(id: &str) -> Result<bool> {
    let c = comment(id);
    Ok(nft::list_rules("bridge", TABLE, BASE)?
        .iter()
        .any(|r| nft::comment(r) == Some(c.as_str())))
}

/// Every spoof check present, as (ID, host port it watches), for GC.
pub fn list_ports() -> Result<Vec<(String, String)>> {
    Ok(nft::list_rules("bridge", TABLE, BASE)?
        .iter()
        .filter_map(|r| {
            let id = nft::comment(r)?.strip_prefix("macspoofchk-")?.to_string();
            let port = r["expr"]
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
        let cmds = setup_commands("veth1234", "02:00:00:00:00:01", &id);
        let text = serde_json::to_string(&cmds).unwrap();
        assert!(text.contains("cni-br-iface-c1-eth0-mac"));
        assert!(text.contains(r#""right":"veth1234""#));
        assert!(text.contains(r#""right":"02:00:00:00:00:01""#));
        assert!(text.contains("macspoofchk-c1-eth0"));
        assert!(text.contains(r#"{"drop":null}"#));
    }
}
