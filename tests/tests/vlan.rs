//! The vlan plugin end to end, in the test guest (this machine's kernel
//! has no 8021q): run with `tests/guest/test.sh vlan`. Each test makes its
//! own host namespace with a veth pair whose two ends are lower devices
//! ("masters") wired to each other, so a VLAN on one end meets the same
//! VLAN on the other.

use cni_tests::{
    guest, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip, with_prev,
    PluginEnv, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const LOW_A: &str = "vlowa";
const LOW_B: &str = "vlowb";
const PING_WITHIN: Duration = Duration::from_secs(10);

/// `ip link add A type veth peer name B` in `ns`, both ends up.
fn veth(ns: &TestNetns, a: &str, b: &str) {
    ns.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        .ok();
    ns.exec(&["ip", "link", "set", a, "up"]).ok();
    ns.exec(&["ip", "link", "set", b, "up"]).ok();
}

fn env(tag: &str) -> PluginEnv {
    guest::require();
    let env = PluginEnv::new(
        tag,
        &[
            ("vlan", &our_plugin("vlan")),
            ("host-local", &require_our_host_local("the vlan tests")),
        ],
    );
    veth(&env.host, LOW_A, LOW_B);
    env
}

fn conf(version: &str, net: &str, master: &str, id: u16, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "vlan", "master": master, "vlanId": id}),
        extra,
    )
}

fn link(ns: &TestNetns, dev: &str) -> Value {
    ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"))
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vlan"]
fn same_vlan_pings_other_vlan_does_not() {
    let env = env("vl-ping");
    // A host interface with the container's name: the link is made inside
    // the container under a temporary name, so it does not collide.
    veth(&env.host, "eth0", "vlhostp");
    let ipam = host_local_ipam(&env.data, &["10.246.1.0/24", "fd00:cafe:e001::/64"]);
    let c100a = conf("1.1.0", "vlnet", LOW_A, 100, json!({ "ipam": ipam }));
    let c100b = conf("1.1.0", "vlnet", LOW_B, 100, json!({ "ipam": ipam }));
    let c200b = conf("1.1.0", "vlnet", LOW_B, 200, json!({ "ipam": ipam }));
    let (n1, n2, n3) = (
        TestNetns::new("vl-ping-1"),
        TestNetns::new("vl-ping-2"),
        TestNetns::new("vl-ping-3"),
    );
    let r1 = env.add(&n1, "p1", &c100a).ok().json();
    let r2 = env.add(&n2, "p2", &c100b).ok().json();
    let r3 = env.add(&n3, "p3", &c200b).ok().json();
    for (r, ns, lower, id) in [
        (&r1, &n1, LOW_A, 100),
        (&r2, &n2, LOW_B, 100),
        (&r3, &n3, LOW_B, 200),
    ] {
        let ifs = r["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 1, "{r}");
        assert_eq!(ifs[0]["name"], "eth0");
        assert_eq!(ifs[0]["sandbox"], ns.path_str());
        let l = link(ns, "eth0");
        assert_eq!(l["linkinfo"]["info_kind"], "vlan", "{l}");
        assert_eq!(l["linkinfo"]["info_data"]["id"], id, "{l}");
        assert_eq!(l["linkinfo"]["info_data"]["protocol"], "802.1Q", "{l}");
        assert_eq!(
            l["link_index"],
            env.host.link(lower).unwrap()["ifindex"],
            "{l}"
        );
        assert_eq!(l["address"], ifs[0]["mac"]);
        assert!(r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["interface"] == 0));
    }
    assert!(
        env.host.link("eth0").is_some(),
        "the host's eth0 is untouched"
    );
    for v6 in [false, true] {
        assert!(n1.ping_within(&result_ip(&r2, v6), PING_WITHIN), "v6 {v6}");
        assert!(n2.ping_within(&result_ip(&r1, v6), PING_WITHIN), "v6 {v6}");
    }
    // VLAN 200 shares the wire and the subnet, but not the VLAN.
    assert!(
        !n1.ping(&result_ip(&r3, false)),
        "VLAN 100 reached VLAN 200"
    );
    assert!(
        !n3.ping(&result_ip(&r2, false)),
        "VLAN 200 reached VLAN 100"
    );

    // CHECK passes, and fails on a VLAN ID or MTU the config does not match.
    env.verb("CHECK", Some(&n1), "p1", &with_prev(&c100a, &r1))
        .ok();
    let other = merge(c100a.clone(), json!({"vlanId": 101}));
    let msg = env
        .verb("CHECK", Some(&n1), "p1", &with_prev(&other, &r1))
        .error_with(100);
    assert!(msg.contains("VLAN ID 100") && msg.contains("101"), "{msg}");
    let other = merge(c100a.clone(), json!({"mtu": 1400}));
    let msg = env
        .verb("CHECK", Some(&n1), "p1", &with_prev(&other, &r1))
        .error_with(100);
    assert!(msg.contains("MTU"), "{msg}");

    // DEL is repeatable, also without CNI_NETNS.
    for (r, ns, id, c) in [
        (&r1, &n1, "p1", &c100a),
        (&r2, &n2, "p2", &c100b),
        (&r3, &n3, "p3", &c200b),
    ] {
        let p = with_prev(c, r);
        env.verb("DEL", Some(ns), id, &p).ok();
        assert!(ns.link("eth0").is_none());
        env.verb("DEL", Some(ns), id, &p).ok();
        env.verb("DEL", None, id, &p).ok();
    }
    assert_eq!(env.data.reservations("vlnet"), Vec::<String>::new());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vlan"]
fn every_spec_version() {
    let env = env("vl-ver");
    let c = |v: &str| {
        conf(
            v,
            "vlver",
            LOW_A,
            300,
            json!({"ipam": host_local_ipam(&env.data, &["10.246.2.0/24", "fd00:cafe:e002::/64"])}),
        )
    };
    env.lifecycle_in_every_version("vlver", c, 1, 0);
    assert_eq!(
        env.del_after_namespace_is_gone("vlver", &c("1.0.0")).len(),
        2
    );
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vlan"]
fn mtu_dns_link_in_container_and_refusals() {
    let env = env("vl-keys");
    let ctr = TestNetns::new("vl-keys-c");
    let c = conf(
        "1.1.0",
        "vlkeys",
        LOW_A,
        0,
        json!({"mtu": 1400, "dns": {"nameservers": ["10.246.3.53"]},
               "ipam": host_local_ipam(&env.data, &["10.246.3.0/24"])}),
    );
    let r = env.add(&ctr, "k1", &c).ok().json();
    let l = link(&ctr, "eth0");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["linkinfo"]["info_data"]["id"], 0, "{l}");
    assert_eq!(r["dns"]["nameservers"], json!(["10.246.3.53"]), "{r}");
    env.verb("CHECK", Some(&ctr), "k1", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&ctr), "k1", &c).ok();

    // linkInContainer: the master is inside the container.
    veth(&ctr, "inlow0", "inlowp");
    let c = conf(
        "1.1.0",
        "vlkeys",
        "inlow0",
        7,
        json!({"linkInContainer": true, "ipam": {}}),
    );
    let r = env.add(&ctr, "k2", &c).ok().json();
    let l = link(&ctr, "eth0");
    assert_eq!(l["link"], "inlow0", "{l}");
    assert!(ctr.link_has_flag("eth0", "UP"), "no IPAM: up, no address");
    env.verb("CHECK", Some(&ctr), "k2", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&ctr), "k2", &c).ok();
    assert!(ctr.link("eth0").is_none());

    // Refused before anything is made.
    let links = ctr.link_names();
    for (bad, code, what) in [
        (
            conf("1.1.0", "vlkeys", LOW_A, 1, json!({"mtu": 9000})),
            7,
            "must be [0, master MTU(1500)]",
        ),
        (
            conf("1.1.0", "vlkeys", LOW_A, 4095, json!({})),
            7,
            "vlanId: invalid VLAN ID 4095",
        ),
        (
            json!({"cniVersion": "1.1.0", "name": "vlkeys", "type": "vlan", "vlanId": 5}),
            7,
            "master:",
        ),
        (
            conf("1.1.0", "vlkeys", "nosuch0", 1, json!({})),
            100,
            "nosuch0",
        ),
    ] {
        let msg = env.add(&ctr, "bad", &bad).error_with(code);
        assert!(msg.contains(what), "{msg}");
        env.verb("DEL", Some(&ctr), "bad", &bad).ok();
    }
    assert_eq!(ctr.link_names(), links, "nothing was left behind");
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vlan"]
fn gc_and_status() {
    let env = env("vl-gc");
    let c = conf(
        "1.1.0",
        "vlgc",
        LOW_A,
        400,
        json!({"ipam": host_local_ipam(&env.data, &["10.246.4.0/24"])}),
    );
    let c1 = TestNetns::new("vl-gc-c1");
    let c2 = TestNetns::new("vl-gc-c2");
    let r1 = env.add(&c1, "g1", &c).ok().json();
    // The second on the other end: one VLAN 400 per lower device.
    let c_b = merge(c.clone(), json!({"master": LOW_B}));
    env.add(&c2, "g2", &c_b).ok();
    env.bare("STATUS", &c).ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "eth0"}]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("vlgc"), vec![result_ip(&r1, false)]);
    env.verb("CHECK", Some(&c1), "g1", &with_prev(&c, &r1)).ok();
    env.verb("DEL", Some(&c1), "g1", &c).ok();
    env.verb("DEL", Some(&c2), "g2", &c_b).ok();
    assert_eq!(env.data.reservations("vlgc"), Vec::<String>::new());
}

/// The harness's host namespace gets the lower device before every ADD.
fn lower_device(ns: &cni_kernel::Netns) {
    let mut nl = cni_kernel::Netlink::open_in(ns).expect("netlink in the harness's host");
    if nl.link_by_name(LOW_A).is_ok() {
        return;
    }
    nl.create_veth(&cni_kernel::VethSpec {
        name: LOW_A.into(),
        peer_name: LOW_B.into(),
        ..Default::default()
    })
    .expect("create the lower device");
    for name in [LOW_A, LOW_B] {
        let l = nl.link_by_name(name).expect("lower device");
        nl.set_up(l.index).expect("lower device up");
    }
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vlan"]
fn conformance() {
    let env = env("vl-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "vlan", "master": LOW_A, "vlanId": 500,
        "ipam": host_local_ipam(&env.data, &["10.246.5.0/24", "fd00:cafe:e005::/64"]),
    });
    let mut opts = cni_conformance::Options::new(env.bin.path().join("vlan"));
    opts.config = config.as_object().cloned();
    opts.prepare_host = Some(lower_device);
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}
