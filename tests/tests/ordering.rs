//! Ordering inside ADD: a plugin never releases an address it did not
//! obtain. A duplicate ADD (the same container and `CNI_IFNAME` again, the
//! interface already there) must fail before IPAM runs, so its rollback
//! cannot DEL the live attachment's reservation. host-local masks this by
//! refusing a second allocation for the same container; an idempotent
//! IPAM (static, dhcp) answers the second ADD with the same address, and a
//! rollback DEL would take it from the live container. The IPAM here is a
//! script that answers every ADD with the same address and records every
//! call.

use cni_tests::{our_plugin, PluginEnv, TestNetns};
use serde_json::{json, Value};

const IPAM: &str = "recording-ipam";

/// An env with `plugin` and the recording IPAM, whose calls go to
/// `<data>/calls`.
fn env(tag: &str, plugin: &str) -> PluginEnv {
    let env = PluginEnv::new(tag, &[(plugin, &our_plugin(plugin))]);
    let calls = env.data.path().join("calls");
    env.bin.script(
        IPAM,
        &format!(
            "echo \"$CNI_COMMAND\" >> '{}'\ncat >/dev/null\n\
             [ \"$CNI_COMMAND\" = ADD ] && printf '%s' '{{\"cniVersion\":\"1.0.0\",\
             \"ips\":[{{\"address\":\"10.248.50.2/24\",\"gateway\":\"10.248.50.1\"}}]}}'\nexit 0\n",
            calls.display()
        ),
    );
    env
}

fn calls(env: &PluginEnv) -> Vec<String> {
    std::fs::read_to_string(env.data.path().join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// ADD, then the same ADD again: the second fails naming the interface,
/// IPAM saw one ADD and no DEL, and the live attachment keeps its address.
fn duplicate_add_releases_nothing(env: &PluginEnv, c: &Value) {
    let ctr = TestNetns::new("ord-c");
    env.add(&ctr, "live", c).ok();
    assert_eq!(calls(env), vec!["ADD"]);
    let msg = env.add(&ctr, "live", c).error_with(100);
    assert!(msg.contains("\"eth0\" already exists"), "{msg}");
    assert_eq!(calls(env), vec!["ADD"], "no IPAM call for the duplicate");
    assert_eq!(ctr.addrs("eth0"), vec!["10.248.50.2/24".to_string()]);
    env.verb("DEL", Some(&ctr), "live", c).ok();
    assert_eq!(calls(env), vec!["ADD", "DEL"]);
}

fn conf(plugin: &str, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "ordnet", "type": plugin,
                       "ipam": {"type": IPAM}});
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

#[test]
fn bridge() {
    let env = env("ord-br", "bridge");
    duplicate_add_releases_nothing(&env, &conf("bridge", json!({"bridge": "ordbr0"})));
}

#[test]
fn ptp() {
    let env = env("ord-ptp", "ptp");
    duplicate_add_releases_nothing(&env, &conf("ptp", json!({})));
}

#[test]
fn macvlan() {
    let env = env("ord-mv", "macvlan");
    env.host
        .exec(&[
            "ip", "link", "add", "ordlow0", "type", "veth", "peer", "name", "ordlowp",
        ])
        .ok();
    duplicate_add_releases_nothing(&env, &conf("macvlan", json!({"master": "ordlow0"})));
}

#[test]
fn tap() {
    let env = env("ord-tap", "tap");
    duplicate_add_releases_nothing(&env, &conf("tap", json!({})));
}

#[test]
fn host_device() {
    let env = env("ord-hd", "host-device");
    for dev in ["orddev0", "orddev1"] {
        env.host
            .exec(&[
                "ip",
                "link",
                "add",
                dev,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{dev}p"),
            ])
            .ok();
    }
    // The second ADD names another device that is free: still refused,
    // because the container's eth0 is taken.
    let c = conf("host-device", json!({"device": "orddev0"}));
    let ctr = TestNetns::new("ord-hd-c");
    env.add(&ctr, "live", &c).ok();
    let again = conf("host-device", json!({"device": "orddev1"}));
    let msg = env.add(&ctr, "live", &again).error_with(100);
    assert!(msg.contains("\"eth0\" already exists"), "{msg}");
    assert_eq!(calls(&env), vec!["ADD"]);
    assert!(
        env.host.link("orddev1").is_some(),
        "orddev1 stayed on the host"
    );
    assert_eq!(ctr.addrs("eth0"), vec!["10.248.50.2/24".to_string()]);
    env.verb("DEL", Some(&ctr), "live", &c).ok();
    assert!(env.host.link("orddev0").is_some());
}
