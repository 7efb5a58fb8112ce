//! The ipvlan plugin end to end, in the test guest (this machine's kernel
//! has no ipvlan): run with `tests/guest/test.sh ipvlan`. Each test makes
//! its own host namespace with a veth pair as the lower device ("master");
//! the kernel keeps one mode per master, so each mode gets its own.

use cni_tests::{
    guest, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip, with_prev,
    PluginEnv, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const LOW_L2: &str = "ipvl2";
const LOW_L3: &str = "ipvl3";
const PING_WITHIN: Duration = Duration::from_secs(10);

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
            ("ipvlan", &our_plugin("ipvlan")),
            ("host-local", &require_our_host_local("the ipvlan tests")),
        ],
    );
    veth(&env.host, LOW_L2, "ipvl2p");
    veth(&env.host, LOW_L3, "ipvl3p");
    env
}

fn conf(version: &str, net: &str, master: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "ipvlan", "master": master}),
        extra,
    )
}

fn link(ns: &TestNetns, dev: &str) -> Value {
    ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"))
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh ipvlan"]
fn l2_and_l3_containers_ping_each_other() {
    let env = env("ipv-ping");
    for (mode, lower, subnets) in [
        ("l2", LOW_L2, ["10.246.20.0/24", "fd00:cafe:e020::/64"]),
        ("l3", LOW_L3, ["10.246.21.0/24", "fd00:cafe:e021::/64"]),
    ] {
        let net = format!("ipv{mode}");
        let c = conf(
            "1.1.0",
            &net,
            lower,
            json!({"mode": mode, "ipam": host_local_ipam(&env.data, &subnets)}),
        );
        let n1 = TestNetns::new("ipv-ping-1");
        let n2 = TestNetns::new("ipv-ping-2");
        let r1 = env.add(&n1, "p1", &c).ok().json();
        let r2 = env.add(&n2, "p2", &c).ok().json();
        let lower_link = env.host.link(lower).unwrap();
        for (r, ns) in [(&r1, &n1), (&r2, &n2)] {
            let ifs = r["interfaces"].as_array().expect("interfaces");
            assert_eq!(ifs.len(), 1, "{r}");
            assert_eq!(ifs[0]["name"], "eth0");
            assert_eq!(ifs[0]["sandbox"], ns.path_str());
            let l = link(ns, "eth0");
            assert_eq!(l["linkinfo"]["info_kind"], "ipvlan", "{l}");
            assert_eq!(l["linkinfo"]["info_data"]["mode"], mode, "{l}");
            assert_eq!(l["link_index"], lower_link["ifindex"], "{l}");
            // Every ipvlan has its master's MAC.
            assert_eq!(l["address"], lower_link["address"], "{l}");
            assert_eq!(ifs[0]["mac"], lower_link["address"]);
            assert_eq!(ns.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        }
        for v6 in [false, true] {
            assert!(
                n1.ping_within(&result_ip(&r2, v6), PING_WITHIN),
                "{mode} v6 {v6}"
            );
            assert!(
                n2.ping_within(&result_ip(&r1, v6), PING_WITHIN),
                "{mode} v6 {v6}"
            );
        }
        env.verb("CHECK", Some(&n1), "p1", &with_prev(&c, &r1)).ok();
        // A config whose mode differs from the link's.
        let other_mode = if mode == "l2" { "l3s" } else { "l2" };
        let other = merge(c.clone(), json!({ "mode": other_mode }));
        let msg = env
            .verb("CHECK", Some(&n1), "p1", &with_prev(&other, &r1))
            .error_with(100);
        assert!(
            msg.contains(&format!("mode {mode}")) && msg.contains(other_mode),
            "{msg}"
        );
        for (r, ns, id) in [(&r1, &n1, "p1"), (&r2, &n2, "p2")] {
            let p = with_prev(&c, r);
            env.verb("DEL", Some(ns), id, &p).ok();
            assert!(ns.link("eth0").is_none());
            env.verb("DEL", Some(ns), id, &p).ok();
            env.verb("DEL", None, id, &p).ok();
        }
        assert_eq!(env.data.reservations(&net), Vec::<String>::new());
    }
}

/// Chained without `master` and `ipam`: the master is the single
/// interface of `prevResult` and the addresses are its addresses.
#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh ipvlan"]
fn chained_master_and_addresses_from_prev_result() {
    let env = env("ipv-chain");
    let ctr = TestNetns::new("ipv-chain-c");
    let peer = TestNetns::new("ipv-chain-p");
    let c = json!({"cniVersion": "1.0.0", "name": "ipvchain", "type": "ipvlan"});
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": LOW_L2}],
        "ips": [{"interface": 0, "address": "10.246.22.5/24", "gateway": "10.246.22.1"}],
        "routes": [{"dst": "10.246.122.0/24"}],
    });
    let r = env.add(&ctr, "ch1", &with_prev(&c, &prev)).ok().json();
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["ips"][0]["address"], "10.246.22.5/24");
    assert_eq!(r["ips"][0]["interface"], 0);
    let l = link(&ctr, "eth0");
    assert_eq!(
        l["link_index"],
        env.host.link(LOW_L2).unwrap()["ifindex"],
        "{l}"
    );
    assert_eq!(ctr.addrs("eth0"), vec!["10.246.22.5/24".to_string()]);
    assert!(
        ctr.routes("-4")
            .iter()
            .any(|rt| rt["dst"] == "10.246.122.0/24" && rt["gateway"] == "10.246.22.1"),
        "{:?}",
        ctr.routes("-4")
    );
    // Another ipvlan on the same master reaches it.
    let pc = conf(
        "1.0.0",
        "ipvchain",
        LOW_L2,
        json!({"ipam": {"type": "static",
        "addresses": [{"address": "10.246.22.6/24"}]}}),
    );
    env.bin.add_plugin("static", &our_plugin("static"));
    env.add(&peer, "ch2", &pc).ok();
    assert!(peer.ping_within("10.246.22.5", PING_WITHIN));
    env.verb("CHECK", Some(&ctr), "ch1", &with_prev(&c, &r))
        .ok();
    env.verb("DEL", Some(&ctr), "ch1", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&peer), "ch2", &pc).ok();

    // prevResult without a single named interface: refused, nothing made.
    let bad_prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": LOW_L2}, {"name": LOW_L3}], "ips": []});
    let msg = env
        .add(&ctr, "ch3", &with_prev(&c, &bad_prev))
        .error_with(7);
    assert!(msg.contains("single named interface"), "{msg}");
    assert!(ctr.link("eth0").is_none());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh ipvlan"]
fn every_spec_version() {
    let env = env("ipv-ver");
    let c = |v: &str| {
        conf(
            v,
            "ipvver",
            LOW_L2,
            json!({"ipam": host_local_ipam(&env.data, &["10.246.23.0/24", "fd00:cafe:e023::/64"])}),
        )
    };
    env.lifecycle_in_every_version("ipvver", c, 1, 0);
    assert_eq!(
        env.del_after_namespace_is_gone("ipvver", &c("1.0.0")).len(),
        2
    );
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh ipvlan"]
fn mtu_default_master_link_in_container_refusals_gc() {
    let env = env("ipv-keys");
    let ctr = TestNetns::new("ipv-keys-c");
    // No master: the interface of the default route.
    env.host
        .exec(&["ip", "addr", "add", "10.246.24.1/24", "dev", LOW_L3])
        .ok();
    env.host
        .exec(&["ip", "route", "add", "default", "via", "10.246.24.254"])
        .ok();
    let c = json!({"cniVersion": "1.1.0", "name": "ipvkeys", "type": "ipvlan", "mode": "l3s",
                   "mtu": 1400, "ipam": host_local_ipam(&env.data, &["10.246.25.0/24"])});
    let r = env.add(&ctr, "k1", &c).ok().json();
    let l = link(&ctr, "eth0");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "l3s", "{l}");
    assert_eq!(
        l["link_index"],
        env.host.link(LOW_L3).unwrap()["ifindex"],
        "{l}"
    );
    env.verb("CHECK", Some(&ctr), "k1", &with_prev(&c, &r)).ok();
    // GC with only another attachment listed drops k1's reservation.
    env.bare("STATUS", &c).ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "other", "ifname": "eth0"}]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("ipvkeys"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "k1", &c).ok();

    // linkInContainer: the master is inside the container.
    veth(&ctr, "inlow0", "inlowp");
    let c = conf(
        "1.1.0",
        "ipvkeys",
        "inlow0",
        json!({"linkInContainer": true, "ipam": {}}),
    );
    let r = env.add(&ctr, "k2", &c).ok().json();
    assert_eq!(link(&ctr, "eth0")["link"], "inlow0");
    env.verb("CHECK", Some(&ctr), "k2", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&ctr), "k2", &c).ok();

    let links = ctr.link_names();
    for (extra, code, what) in [
        (json!({"mode": "bridge"}), 7, "unknown ipvlan mode"),
        (json!({"mtu": 9000}), 7, "must be [0, master MTU(1500)]"),
        (json!({"master": "nosuch0"}), 100, "nosuch0"),
    ] {
        let bad = merge(conf("1.1.0", "ipvkeys", LOW_L2, json!({"ipam": {}})), extra);
        let msg = env.add(&ctr, "bad", &bad).error_with(code);
        assert!(msg.contains(what), "{msg}");
    }
    assert_eq!(ctr.link_names(), links, "nothing was left behind");
}

fn lower_device(ns: &cni_kernel::Netns) {
    let mut nl = cni_kernel::Netlink::open_in(ns).expect("netlink in the harness's host");
    if nl.link_by_name(LOW_L2).is_ok() {
        return;
    }
    nl.create_veth(&cni_kernel::VethSpec {
        name: LOW_L2.into(),
        peer_name: "ipvl2p".into(),
        ..Default::default()
    })
    .expect("create the lower device");
    for name in [LOW_L2, "ipvl2p"] {
        let l = nl.link_by_name(name).expect("lower device");
        nl.set_up(l.index).expect("lower device up");
    }
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh ipvlan"]
fn conformance() {
    let env = env("ipv-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "ipvlan", "master": LOW_L2,
        "ipam": host_local_ipam(&env.data, &["10.246.26.0/24", "fd00:cafe:e026::/64"]),
    });
    let mut opts = cni_conformance::Options::new(env.bin.path().join("ipvlan"));
    opts.config = config.as_object().cloned();
    opts.prepare_host = Some(lower_device);
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}
