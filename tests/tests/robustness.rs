//! Malformed configs never panic a plugin. Every member of a full config is
//! replaced, in turn, by values of every wrong JSON type (and removed); each
//! call must answer with a result or a CNI error object with a numeric code
//! and a message.
//!
//! The plugins run in-process through the skeleton and touch no kernel
//! state: the IPAM plugins work in a temporary `dataDir` (never mutated, so
//! nothing is written elsewhere); the interface plugins get a `CNI_NETNS`
//! that does not exist and run only ADD, which reads and validates the whole
//! config before it looks at the namespace.

use cni::skel::{dispatch, Plugin};
use cni_tests::TempDir;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Values of every JSON type, including ones no key accepts.
fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1e300),
        json!(u64::MAX),
        json!(""),
        json!("garbage"),
        json!("10.0.0.0/33"),
        json!([]),
        json!([[[]]]),
        json!({}),
        json!({"x": {"y": [1, "z"]}}),
    ]
}

/// Every variant of `v` with one member (at any depth) replaced by a wrong
/// value or removed. Members named in `keep` are left alone.
fn mutations(v: &Value, keep: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if keep.contains(&k.as_str()) {
                    continue;
                }
                let mut removed = m.clone();
                removed.remove(k);
                out.push(Value::Object(removed));
                for w in wrong_values() {
                    let mut changed = m.clone();
                    changed.insert(k.clone(), w);
                    out.push(Value::Object(changed));
                }
                for inner in mutations(child, keep) {
                    let mut changed = m.clone();
                    changed.insert(k.clone(), inner);
                    out.push(Value::Object(changed));
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                for w in wrong_values() {
                    let mut changed = a.clone();
                    changed[i] = w;
                    out.push(Value::Array(changed));
                }
                for inner in mutations(child, keep) {
                    let mut changed = a.clone();
                    changed[i] = inner;
                    out.push(Value::Array(changed));
                }
            }
        }
        _ => {}
    }
    out
}

/// Run `plugin` in-process on `conf` for `command`; the answer must be a
/// result or a CNI error object. Returns whether it succeeded.
fn answers(plugin: &impl Plugin, command: &str, netns: &str, conf: &Value) -> bool {
    let vars: HashMap<&str, String> = HashMap::from([
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", "robust1".to_string()),
        ("CNI_NETNS", netns.to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_ARGS", "IgnoreUnknown=1".to_string()),
        ("CNI_PATH", "/nonexistent-cni-path".to_string()),
    ]);
    let env = move |k: &str| vars.get(k).cloned();
    let input = conf.to_string();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = dispatch(plugin, &env, &mut input.as_bytes(), &mut out, &mut err);
    let text = String::from_utf8_lossy(&out);
    if code != 0 {
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{command} {conf}: not JSON ({e}): {text}"));
        assert!(
            v["code"].is_u64() && v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{command} {conf}: {v}"
        );
    } else if command == "ADD" {
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{command} {conf}: result not JSON ({e}): {text}"));
    }
    code == 0
}

fn ipam_conf(data: &TempDir, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["dataDir"] = json!(data.path().display().to_string());
    json!({
        "cniVersion": "1.1.0",
        "name": "robust",
        "type": "bridge",
        "ipam": ipam,
        "runtimeConfig": {"ips": ["10.77.0.9/24"], "ipRanges": [[{"subnet": "10.78.0.0/24"}]]},
        "args": {"cni": {"ips": ["10.77.0.10"]}},
        "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}]},
        "cni.dev/valid-attachments": [{"containerID": "robust1", "ifname": "eth0"}]
    })
}

#[test]
fn host_local_answers_every_mangled_config() {
    let data = TempDir::new("robust-hl");
    let conf = ipam_conf(
        &data,
        json!({
            "type": "host-local",
            "ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.5", "rangeEnd": "10.77.0.50", "gateway": "10.77.0.1"}],
                       [{"subnet": "fd77::/64"}]],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.77.0.1", "mtu": 1400}],
            "resolvConf": "/nonexistent/resolv.conf"
        }),
    );
    let variants = mutations(&conf, &["dataDir"]);
    assert!(variants.len() > 300, "{}", variants.len());
    for v in &variants {
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            answers(&host_local::HostLocal, command, "/nonexistent-netns", v);
        }
        // Leave nothing reserved between variants.
        answers(&host_local::HostLocal, "DEL", "/nonexistent-netns", &conf);
    }
}

#[test]
fn static_answers_every_mangled_config() {
    let data = TempDir::new("robust-static");
    let conf = ipam_conf(
        &data,
        json!({
            "type": "static",
            "addresses": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}, {"address": "fd77::9/64"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.77.0.53"], "domain": "x", "search": ["x"], "options": ["ndots:1"]}
        }),
    );
    for v in &mutations(&conf, &["dataDir"]) {
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            answers(&static_ipam::Static, command, "/nonexistent-netns", v);
        }
    }
}

#[test]
fn interface_plugins_answer_every_mangled_config() {
    let bridge = json!({
        "cniVersion": "1.1.0", "name": "robust", "type": "bridge", "bridge": "br-robust",
        "mtu": 1400, "isGateway": true, "isDefaultGateway": true, "forceAddress": false,
        "ipMasq": true, "ipMasqBackend": "nftables", "hairpinMode": false, "promiscMode": false,
        "vlan": 0, "vlanTrunk": [], "preserveDefaultVlan": false, "enabledad": false,
        "macspoofchk": true, "disableContainerInterface": false, "portIsolation": false,
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24"},
        "dns": {"nameservers": ["10.77.0.53"]},
        "runtimeConfig": {"mac": "0a:58:0a:4d:00:09"},
        "args": {"cni": {"mac": "0a:58:0a:4d:00:0a"}},
        "capabilities": {"mac": true}
    });
    for v in &mutations(&bridge, &[]) {
        // The namespace does not exist: whatever the config, ADD must stop
        // with an answer before it changes anything.
        assert!(
            !answers(&bridge::Bridge, "ADD", "/nonexistent-netns", v),
            "{v}"
        );
    }
    let mut ptp = bridge.clone();
    ptp["type"] = json!("ptp");
    for v in &mutations(&ptp, &[]) {
        assert!(!answers(&ptp::Ptp, "ADD", "/nonexistent-netns", v), "{v}");
    }
}
