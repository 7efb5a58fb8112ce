//! Our plugins mixed with the reference Go plugins (Debian's, in
//! /usr/lib/cni, which speak up to CNI 1.0.0): each side delegating to the
//! other's host-local, and each side removing what the other set up.
//!
//! Without /usr/lib/cni these tests fail (`.ci/run` installs it).

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TempDir, TestNetns,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const PING_WITHIN: Duration = Duration::from_secs(5);

/// A main plugin and a host-local, by name on `CNI_PATH`.
fn env(tag: &str, main: (&str, PathBuf), host_local: PathBuf) -> PluginEnv {
    PluginEnv::new(tag, &[(main.0, &main.1), ("host-local", &host_local)])
}

/// ADD two containers, ping between them (v4 and v6) and to the gateway,
/// CHECK, DEL; then nothing is left: no reservation, no host veth.
fn two_containers(env: &PluginEnv, c: &Value, gateways: &[&str]) {
    let net = c["name"].as_str().unwrap();
    let c1 = TestNetns::new("mix-c1");
    let c2 = TestNetns::new("mix-c2");
    let links = env.host.link_names();
    let r1 = env.add(&c1, "c1", c).ok().json();
    let r2 = env.add(&c2, "c2", c).ok().json();
    assert_eq!(env.data.reservations(net).len(), 4, "{r1}\n{r2}");
    for v6 in [false, true] {
        assert!(
            c1.ping_within(&result_ip(&r2, v6), PING_WITHIN),
            "c1 -> c2 (v6: {v6})"
        );
        assert!(
            c2.ping_within(&result_ip(&r1, v6), PING_WITHIN),
            "c2 -> c1 (v6: {v6})"
        );
    }
    for gw in gateways {
        assert!(c1.ping_within(gw, PING_WITHIN), "c1 -> gateway {gw}");
    }
    for (r, ctr, id) in [(&r1, &c1, "c1"), (&r2, &c2, "c2")] {
        env.verb("CHECK", Some(ctr), id, &with_prev(c, r)).ok();
        env.verb("DEL", Some(ctr), id, &with_prev(c, r)).ok();
        assert!(ctr.link("eth0").is_none());
        // Repeated DEL is fine on both sides.
        env.verb("DEL", Some(ctr), id, &with_prev(c, r)).ok();
    }
    assert_eq!(env.data.reservations(net), Vec::<String>::new());
    // Only the bridge (if any) stays.
    let left: Vec<String> = env
        .host
        .link_names()
        .into_iter()
        .filter(|l| !links.contains(l))
        .collect();
    assert!(left.iter().all(|l| !l.starts_with("veth")), "{left:?}");
}

fn bridge_conf(env: &PluginEnv, net: &str, v4: &str, v6: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": net,
        "type": "bridge",
        "bridge": "mixbr0",
        "isGateway": true,
        "ipam": host_local_ipam(&env.data, &[v4, v6]),
    })
}

fn ptp_conf(env: &PluginEnv, net: &str, v4: &str, v6: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": net,
        "type": "ptp",
        "ipam": host_local_ipam(&env.data, &[v4, v6]),
    })
}

#[test]
fn our_bridge_with_the_reference_host_local() {
    let hl = reference_plugin("host-local");
    let env = env("mix-br-ours", ("bridge", our_plugin("bridge")), hl);
    let c = bridge_conf(&env, "mixnet", "10.240.60.0/24", "fd00:cafe:3c::/64");
    two_containers(&env, &c, &["10.240.60.1", "fd00:cafe:3c::1"]);
}

#[test]
fn the_reference_bridge_with_our_host_local() {
    let br = reference_plugin("bridge");
    let hl = require_our_host_local("the reference bridge delegating to our host-local");
    let env = env("mix-br-ref", ("bridge", br), hl);
    let c = bridge_conf(&env, "mixnet", "10.240.61.0/24", "fd00:cafe:3d::/64");
    two_containers(&env, &c, &["10.240.61.1", "fd00:cafe:3d::1"]);
}

#[test]
fn our_ptp_with_the_reference_host_local() {
    let hl = reference_plugin("host-local");
    let env = env("mix-ptp-ours", ("ptp", our_plugin("ptp")), hl);
    let c = ptp_conf(&env, "mixnet", "10.240.62.0/24", "fd00:cafe:3e::/64");
    two_containers(&env, &c, &["10.240.62.1", "fd00:cafe:3e::1"]);
}

#[test]
fn the_reference_ptp_with_our_host_local() {
    let ptp = reference_plugin("ptp");
    let hl = require_our_host_local("the reference ptp delegating to our host-local");
    let env = env("mix-ptp-ref", ("ptp", ptp), hl);
    let c = ptp_conf(&env, "mixnet", "10.240.63.0/24", "fd00:cafe:3f::/64");
    two_containers(&env, &c, &["10.240.63.1", "fd00:cafe:3f::1"]);
}

/// `iptables -t nat -S` and `ip6tables -t nat -S` in the host, joined.
fn nat_rules(env: &PluginEnv) -> String {
    ["iptables", "ip6tables"]
        .iter()
        .map(|bin| env.host.exec(&[bin, "-t", "nat", "-S"]).ok().stdout)
        .collect::<Vec<_>>()
        .join("\n")
}

/// ipMasq with iptables is laid out as the reference lays it out: either
/// side's DEL removes what the other side's ADD made.
#[test]
fn ip_masq_rules_are_removed_by_the_other_side() {
    let (ref_bridge, ref_hl) = (reference_plugin("bridge"), reference_plugin("host-local"));
    let env = PluginEnv::new("mix-masq", &[("host-local", &ref_hl)]);
    // Ours answers to its own name only (the name picks the role of the
    // suite's executable): it lives under "bridge" in a directory of its own.
    let ours_dir = TempDir::new("mix-masq-ours");
    let ours = ours_dir.add_plugin("bridge", &our_plugin("bridge"));
    let theirs = env.bin.add_plugin("bridge-ref", &ref_bridge);
    let c = merge(
        bridge_conf(&env, "masqnet", "10.240.64.0/24", "fd00:cafe:40::/64"),
        json!({"ipMasq": true, "ipMasqBackend": "iptables"}),
    );
    let ctr = TestNetns::new("mix-masq-c");
    let run = |plugin: &PathBuf, verb: &str, conf: &Value, id: &str| {
        cni_tests::Call::new(plugin, verb, &conf.to_string())
            .container(id)
            .netns(&ctr.path_str())
            .cni_path(&env.bin.path_str())
            .run_in(&env.host)
    };
    let before = nat_rules(&env);
    for (add, del, id) in [(&ours, &theirs, "c1"), (&theirs, &ours, "c2")] {
        let r = run(add, "ADD", &c, id).ok().json();
        let chain = cni_support::ipmasq::iptables_chain("masqnet", id);
        let rules = nat_rules(&env);
        assert!(rules.contains(&format!("-N {chain}")), "{rules}");
        for v6 in [false, true] {
            let ip = result_ip(&r, v6);
            assert!(
                rules.contains(&format!("-s {ip}/{} ", if v6 { 128 } else { 32 })),
                "{id}: {rules}"
            );
        }
        run(del, "DEL", &with_prev(&c, &r), id).ok();
        assert_eq!(nat_rules(&env), before, "{id}: everything removed");
    }
    assert_eq!(env.data.reservations("masqnet"), Vec::<String>::new());
}
