//! The bridge's VLAN keys (`vlan`, `vlanTrunk`, `preserveDefaultVlan`) end
//! to end, in the test guest (this machine's kernel has no bridge VLAN
//! filtering): run with `tests/guest/test.sh bridge_vlan`. Kernel state is
//! read with `ip -d -j link` and `bridge -j vlan`; isolation is shown with
//! packets between container namespaces.

use cni_tests::{
    guest, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip, with_prev,
    PluginEnv, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const BR: &str = "vbr0";
const PING_WITHIN: Duration = Duration::from_secs(10);

fn env(tag: &str) -> PluginEnv {
    guest::require();
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            (
                "host-local",
                &require_our_host_local("the bridge VLAN tests"),
            ),
        ],
    )
}

fn conf(version: &str, net: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "bridge", "bridge": BR}),
        extra,
    )
}

/// `bridge -j vlan show dev DEV` in `ns`: `(vid, pvid, untagged)` per VLAN,
/// ranges expanded.
fn port_vlans(ns: &TestNetns, dev: &str) -> Vec<(u64, bool, bool)> {
    let out = ns.exec(&["bridge", "-j", "vlan", "show", "dev", dev]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("bridge -j vlan prints JSON");
    let mut vlans = Vec::new();
    for port in v.as_array().expect("a list of ports") {
        for e in port["vlans"].as_array().expect("vlans") {
            let flags: Vec<&str> = e["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let first = e["vlan"].as_u64().expect("vlan");
            let last = e["vlanEnd"].as_u64().unwrap_or(first);
            for vid in first..=last {
                vlans.push((
                    vid,
                    flags.contains(&"PVID"),
                    flags.contains(&"Egress Untagged"),
                ));
            }
        }
    }
    vlans
}

fn host_veth(r: &Value) -> String {
    r["interfaces"][1]["name"]
        .as_str()
        .expect("host veth name")
        .to_string()
}

fn filtering(ns: &TestNetns, br: &str) -> Value {
    ns.link(br).expect("bridge exists")["linkinfo"]["info_data"]["vlan_filtering"].clone()
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh bridge_vlan"]
fn vlans_isolate_and_the_gateway_port_serves_its_vlan() {
    let env = env("brv-iso");
    let ipam = host_local_ipam(&env.data, &["10.246.30.0/24", "fd00:cafe:e030::/64"]);
    let c100 = conf(
        "1.1.0",
        "brviso",
        json!({"vlan": 100, "isGateway": true, "ipam": ipam}),
    );
    // VLAN 200 on the same bridge and subnet, no gateway.
    let c200 = conf("1.1.0", "brviso", json!({"vlan": 200, "ipam": ipam}));
    let (n1, n2, n3) = (
        TestNetns::new("brv-iso-1"),
        TestNetns::new("brv-iso-2"),
        TestNetns::new("brv-iso-3"),
    );
    let r1 = env.add(&n1, "i1", &c100).ok().json();
    let r2 = env.add(&n2, "i2", &c100).ok().json();
    let r3 = env.add(&n3, "i3", &c200).ok().json();

    assert_eq!(filtering(&env.host, BR), 1);
    let gw_port = format!("{BR}.100");
    for r in [&r1, &r2] {
        // [bridge, host veth, container, gateway port]
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 4, "{r}");
        assert_eq!(ifs[3]["name"], gw_port.as_str());
        assert!(ifs[3].get("sandbox").is_none());
        assert!(r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["interface"] == 2));
        // Access port: VLAN 100 PVID untagged, the default VLAN 1 removed.
        assert_eq!(
            port_vlans(&env.host, &host_veth(r)),
            vec![(100, true, true)]
        );
    }
    assert_eq!(r3["interfaces"].as_array().unwrap().len(), 3, "{r3}");
    assert_eq!(
        port_vlans(&env.host, &host_veth(&r3)),
        vec![(200, true, true)]
    );

    // The gateway addresses are on <bridge>.100, not on the bridge; its
    // bridge end is an access port of VLAN 100.
    let gw_addrs = env.host.addrs(&gw_port);
    assert!(
        gw_addrs.contains(&"10.246.30.1/24".to_string()),
        "{gw_addrs:?}"
    );
    assert!(!env.host.addrs(BR).contains(&"10.246.30.1/24".to_string()));
    // Both ends are in the host namespace: `ip` names the peer.
    let gw_link = env.host.link(&gw_port).unwrap();
    let peer = gw_link["link"].as_str().expect("the gateway port's peer");
    let gw_peer = env.host.link(peer).expect("the gateway port's bridge end");
    assert_eq!(gw_peer["master"], BR);
    assert_eq!(port_vlans(&env.host, peer), vec![(100, true, true)]);

    // Packets: VLAN 100 reaches VLAN 100 and its gateway, not VLAN 200.
    for v6 in [false, true] {
        assert!(n1.ping_within(&result_ip(&r2, v6), PING_WITHIN), "v6 {v6}");
    }
    assert!(n1.ping_within("10.246.30.1", PING_WITHIN));
    assert!(
        !n3.ping(&result_ip(&r1, false)),
        "VLAN 200 reached VLAN 100"
    );
    assert!(
        !n3.ping("10.246.30.1"),
        "VLAN 200 reached VLAN 100's gateway"
    );

    // CHECK passes; without the port's VLAN it fails naming it.
    let p1 = with_prev(&c100, &r1);
    env.verb("CHECK", Some(&n1), "i1", &p1).ok();
    env.host
        .exec(&[
            "bridge",
            "vlan",
            "del",
            "dev",
            &host_veth(&r1),
            "vid",
            "100",
        ])
        .ok();
    let msg = env.verb("CHECK", Some(&n1), "i1", &p1).error_with(100);
    assert!(msg.contains("VLAN 100"), "{msg}");

    for (r, ns, id, c) in [
        (&r1, &n1, "i1", &c100),
        (&r2, &n2, "i2", &c100),
        (&r3, &n3, "i3", &c200),
    ] {
        env.verb("DEL", Some(ns), id, &with_prev(c, r)).ok();
        assert!(ns.link("eth0").is_none());
    }
    assert_eq!(env.data.reservations("brviso"), Vec::<String>::new());
    // The gateway port stays with the bridge, as the reference leaves it.
    assert!(env.host.link(&gw_port).is_some());
}

/// A trunk port carries its VLANs tagged: a container that tags its own
/// traffic for VLAN 20 reaches an access port of VLAN 20; `vlan` is the
/// trunk's native (untagged) VLAN.
#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh bridge_vlan"]
fn trunk_carries_tagged_vlans_with_vlan_as_native() {
    let env = env("brv-trunk");
    let trunk = conf(
        "1.1.0",
        "brvtrunk",
        json!({"vlan": 10, "vlanTrunk": [{"id": 20}, {"minID": 30, "maxID": 32}, {"id": 10}],
               "ipam": host_local_ipam(&env.data, &["10.246.31.0/24"])}),
    );
    let access20 = conf(
        "1.1.0",
        "brvtrunk",
        json!({"vlan": 20, "ipam": host_local_ipam(&env.data, &["10.246.31.0/24"])}),
    );
    let access10 = conf(
        "1.1.0",
        "brvtrunk",
        json!({"vlan": 10, "ipam": host_local_ipam(&env.data, &["10.246.31.0/24"])}),
    );
    let (nt, n20, n10) = (
        TestNetns::new("brv-trunk-t"),
        TestNetns::new("brv-trunk-20"),
        TestNetns::new("brv-trunk-10"),
    );
    let rt = env.add(&nt, "t1", &trunk).ok().json();
    let r20 = env.add(&n20, "t2", &access20).ok().json();
    let r10 = env.add(&n10, "t3", &access10).ok().json();
    // Native VLAN 10 stays PVID untagged although the trunk lists it too.
    assert_eq!(
        port_vlans(&env.host, &host_veth(&rt)),
        vec![
            (10, true, true),
            (20, false, false),
            (30, false, false),
            (31, false, false),
            (32, false, false)
        ]
    );
    // Untagged from the trunk container: native VLAN 10.
    assert!(nt.ping_within(&result_ip(&r10, false), PING_WITHIN));
    assert!(
        !nt.ping(&result_ip(&r20, false)),
        "untagged reached VLAN 20"
    );
    // Tagged 20 from inside the trunk container.
    nt.exec(&[
        "ip", "link", "add", "link", "eth0", "name", "eth0.20", "type", "vlan", "id", "20",
    ])
    .ok();
    nt.exec(&["ip", "addr", "add", "10.246.131.7/24", "dev", "eth0.20"])
        .ok();
    nt.exec(&["ip", "link", "set", "eth0.20", "up"]).ok();
    n20.exec(&["ip", "addr", "add", "10.246.131.8/24", "dev", "eth0"])
        .ok();
    assert!(
        nt.ping_within("10.246.131.8", PING_WITHIN),
        "tagged 20 over the trunk"
    );
    env.verb("CHECK", Some(&nt), "t1", &with_prev(&trunk, &rt))
        .ok();
    for (r, ns, id, c) in [
        (&rt, &nt, "t1", &trunk),
        (&r20, &n20, "t2", &access20),
        (&r10, &n10, "t3", &access10),
    ] {
        env.verb("DEL", Some(ns), id, &with_prev(c, r)).ok();
    }
    assert_eq!(env.data.reservations("brvtrunk"), Vec::<String>::new());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh bridge_vlan"]
fn preserve_default_vlan_and_an_existing_bridge_without_filtering() {
    let env = env("brv-keep");
    // Made by hand without VLAN filtering: ADD turns it on.
    env.host
        .exec(&["ip", "link", "add", BR, "type", "bridge"])
        .ok();
    assert_eq!(filtering(&env.host, BR), 0);
    let keep = conf(
        "1.1.0",
        "brvkeep",
        json!({"vlan": 5, "preserveDefaultVlan": true, "ipam": {}}),
    );
    let ctr = TestNetns::new("brv-keep-c");
    let r = env.add(&ctr, "k1", &keep).ok().json();
    assert_eq!(filtering(&env.host, BR), 1);
    // VLAN 1 kept (no longer the PVID), 5 is.
    assert_eq!(
        port_vlans(&env.host, &host_veth(&r)),
        vec![(1, false, true), (5, true, true)]
    );
    env.verb("CHECK", Some(&ctr), "k1", &with_prev(&keep, &r))
        .ok();
    env.verb("DEL", Some(&ctr), "k1", &keep).ok();

    // A trunk alone: tagged VLANs only, the default VLAN removed.
    let t = conf(
        "1.0.0",
        "brvkeep",
        json!({"vlanTrunk": [{"minID": 7, "maxID": 8}], "ipam": {}}),
    );
    let r = env.add(&ctr, "k2", &t).ok().json();
    assert_eq!(
        port_vlans(&env.host, &host_veth(&r)),
        vec![(7, false, false), (8, false, false)]
    );
    env.verb("DEL", Some(&ctr), "k2", &t).ok();

    // Refusals name the key, before anything is made.
    for (extra, what) in [
        (json!({"vlan": 4095}), "vlan: invalid VLAN ID 4095"),
        (
            json!({"vlanTrunk": [{"minID": 9, "maxID": 8}]}),
            "vlanTrunk: minID is greater than maxID",
        ),
        (
            json!({"vlanTrunk": [{"id": 5000}]}),
            "vlanTrunk: incorrect trunk id parameter",
        ),
    ] {
        let bad = conf("1.1.0", "brvkeep", merge(json!({"ipam": {}}), extra));
        let msg = env.add(&ctr, "bad", &bad).error_with(7);
        assert!(msg.contains(what), "{msg}");
    }
    assert!(ctr.link("eth0").is_none());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh bridge_vlan"]
fn every_spec_version() {
    let env = env("brv-ver");
    env.lifecycle_in_every_version(
        "brvver",
        |v| {
            conf(
                v,
                "brvver",
                json!({"vlan": 300, "isGateway": true,
                       "ipam": host_local_ipam(&env.data, &["10.246.32.0/24", "fd00:cafe:e032::/64"])}),
            )
        },
        4,
        2,
    );
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh bridge_vlan"]
fn conformance() {
    let env = env("brv-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "bridge", "bridge": BR,
        "vlan": 400, "vlanTrunk": [{"id": 401}], "isGateway": true,
        "ipam": host_local_ipam(&env.data, &["10.246.33.0/24", "fd00:cafe:e033::/64"]),
    });
    let mut opts = cni_conformance::Options::new(env.bin.path().join("bridge"));
    opts.config = config.as_object().cloned();
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}
