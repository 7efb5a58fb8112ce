//! The dummy plugin end to end, in the test guest (this machine's kernel
//! has no dummy links): `tests/guest/test.sh dummy`; `make test` runs it
//! through `tests/tests/guest.rs`. Every test is ignored on the host and
//! fails there with `--ignored` (`guest::require`).

mod common;

use cni_tests::{
    guest, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip, with_prev,
    PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};

fn env(tag: &str) -> PluginEnv {
    guest::require();
    PluginEnv::new(
        tag,
        &[
            ("dummy", &our_plugin("dummy")),
            ("host-local", &require_our_host_local("the dummy tests")),
        ],
    )
}

fn conf(version: &str, net: &str, ipam: Value) -> Value {
    json!({"cniVersion": version, "name": net, "type": "dummy", "ipam": ipam})
}

/// A counter of `dev` from `ip -s -j link`.
fn tx_packets(ns: &TestNetns, dev: &str) -> u64 {
    let v = ns.ip_json(&["-s", "link", "show", "dev", dev]);
    v[0]["stats64"]["tx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no tx packets counter for {dev}: {v}"))
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn dummy_gets_its_addresses_and_routes() {
    let env = env("dm-add");
    let ipam = merge(
        host_local_ipam(&env.data, &["10.249.1.0/24", "fd00:cafe:e001::/64"]),
        json!({"routes": [{"dst": "10.249.200.0/24"}]}),
    );
    let c = conf("1.1.0", "dmnet", ipam);
    let ctr = TestNetns::new("dm-add-c");
    // A host link named like the container's: the dummy is made inside
    // the container, so it does not matter.
    env.host
        .exec(&["ip", "link", "add", "eth0", "type", "dummy"])
        .ok();
    let r = env.add(&ctr, "d1", &c).ok().json();
    let ifs = r["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 1, "{r}");
    assert_eq!(ifs[0]["name"], "eth0");
    assert_eq!(ifs[0]["sandbox"], ctr.path_str());
    let l = ctr.link("eth0").expect("eth0 in the container");
    assert_eq!(l["linkinfo"]["info_kind"], "dummy", "{l}");
    assert_eq!(l["address"], ifs[0]["mac"], "{l}");
    assert!(ctr.link_has_flag("eth0", "UP"), "{l}");
    let (v4, v6) = (result_ip(&r, false), result_ip(&r, true));
    assert!(v4.starts_with("10.249.1."), "{r}");
    let mut want = vec![format!("{v4}/24"), format!("{v6}/64")];
    want.sort();
    assert_eq!(ctr.addrs("eth0"), want);
    assert!(r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["interface"] == 0));
    assert!(
        ctr.routes("-4")
            .iter()
            .any(|rt| rt["dst"] == "10.249.200.0/24" && rt["dev"] == "eth0"),
        "{:?}",
        ctr.routes("-4")
    );
    assert!(
        env.host.link("eth0").is_some(),
        "the host's eth0 is untouched"
    );

    // Real packets: the container reaches its own addresses, and traffic
    // to the IPAM route leaves through the dummy (which drops it).
    assert!(ctr.ping(&v4), "ping {v4}");
    assert!(ctr.ping(&v6), "ping {v6}");
    let before = tx_packets(&ctr, "eth0");
    assert!(!ctr.ping("10.249.200.7"), "a dummy answers nothing");
    assert!(
        tx_packets(&ctr, "eth0") > before,
        "the ping went out of eth0"
    );

    // A second ADD for the same name fails and keeps the first one's
    // addresses.
    let dup = env.add(&ctr, "d1", &c);
    assert_ne!(dup.status, 0, "{}", dup.stdout);
    assert_eq!(ctr.addrs("eth0"), want);
    assert_eq!(env.data.reservations("dmnet").len(), 2);

    // CHECK passes, then names what is wrong.
    let p = with_prev(&c, &r);
    env.verb("CHECK", Some(&ctr), "d1", &p).ok();
    ctr.exec(&["ip", "route", "del", "10.249.200.0/24"]).ok();
    let msg = env.verb("CHECK", Some(&ctr), "d1", &p).error_with(100);
    assert!(
        msg.contains("10.249.200.0/24") && msg.contains("missing"),
        "{msg}"
    );
    ctr.exec(&["ip", "route", "add", "10.249.200.0/24", "dev", "eth0"])
        .ok();
    ctr.exec(&["ip", "link", "set", "eth0", "down"]).ok();
    let msg = env.verb("CHECK", Some(&ctr), "d1", &p).error_with(100);
    assert!(msg.contains("down"), "{msg}");
    ctr.exec(&["ip", "link", "set", "eth0", "up"]).ok();
    ctr.exec(&["ip", "addr", "del", &format!("{v4}/24"), "dev", "eth0"])
        .ok();
    let msg = env.verb("CHECK", Some(&ctr), "d1", &p).error_with(100);
    assert!(msg.contains(&format!("missing address {v4}")), "{msg}");
    // Not a dummy any more.
    ctr.exec(&["ip", "link", "del", "eth0"]).ok();
    ctr.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ])
    .ok();
    let msg = env.verb("CHECK", Some(&ctr), "d1", &p).error_with(100);
    assert!(
        msg.contains("not of type dummy") || msg.contains("MAC"),
        "{msg}"
    );
    ctr.exec(&["ip", "link", "del", "eth0"]).ok();

    // DEL releases, and is repeatable: again, without CNI_NETNS, and after
    // the namespace is gone.
    env.verb("DEL", Some(&ctr), "d1", &p).ok();
    assert!(ctr.link("eth0").is_none());
    assert_eq!(env.data.reservations("dmnet"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "d1", &p).ok();
    env.verb("DEL", None, "d1", &p).ok();
    let path = ctr.path_str();
    drop(ctr);
    env.call("dummy", "DEL", &p)
        .container("d1")
        .netns(&path)
        .run_in(&env.host)
        .ok();
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn delete_removes_the_link_and_leaves_others() {
    let env = env("dm-del");
    let c = conf(
        "1.0.0",
        "dmdel",
        host_local_ipam(&env.data, &["10.249.2.0/24"]),
    );
    let ctr = TestNetns::new("dm-del-c");
    let r0 = env.add(&ctr, "a", &c).ok().json();
    let r1 = env
        .call("dummy", "ADD", &c)
        .container("a")
        .netns(&ctr.path_str())
        .ifname("net1")
        .run_in(&env.host)
        .ok()
        .json();
    assert_ne!(result_ip(&r0, false), result_ip(&r1, false));
    assert_eq!(ctr.link("net1").unwrap()["linkinfo"]["info_kind"], "dummy");
    env.verb("DEL", Some(&ctr), "a", &with_prev(&c, &r0)).ok();
    assert!(ctr.link("eth0").is_none());
    assert!(ctr.link("net1").is_some(), "the other attachment stays");
    assert_eq!(env.data.reservations("dmdel"), vec![result_ip(&r1, false)]);
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn ipam_is_required_and_a_failed_ipam_leaves_nothing() {
    let env = env("dm-noipam");
    let ctr = TestNetns::new("dm-noipam-c");
    let c = json!({"cniVersion": "1.0.0", "name": "dmx", "type": "dummy"});
    let msg = env.add(&ctr, "x", &c).error_with(7);
    assert!(msg.contains("requires an IPAM configuration"), "{msg}");
    assert!(ctr.link("eth0").is_none());
    // IPAM that fails: no link is left behind.
    let c = conf("1.0.0", "dmx", json!({"type": "host-local", "ranges": []}));
    let out = env.add(&ctr, "x", &c);
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(ctr.link("eth0").is_none());
    // CHECK without IPAM is refused as ADD is.
    let c = json!({"cniVersion": "1.0.0", "name": "dmx", "type": "dummy", "prevResult": {"cniVersion": "1.0.0"}});
    env.verb("CHECK", Some(&ctr), "x", &c).error_with(7);
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn every_spec_version() {
    let env = env("dm-ver");
    let ipam = host_local_ipam(&env.data, &["10.249.3.0/24", "fd00:cafe:e003::/64"]);
    env.lifecycle_in_every_version("dmver", |v| conf(v, "dmver", ipam.clone()), 1, 0);
    let results = env.del_after_namespace_is_gone("dmver", &conf("1.0.0", "dmver", ipam.clone()));
    assert_eq!(results.len(), 2);
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn gc_and_status() {
    let env = env("dm-gc");
    let c = conf(
        "1.1.0",
        "dmgc",
        host_local_ipam(&env.data, &["10.249.4.0/24"]),
    );
    let c1 = TestNetns::new("dm-gc-c1");
    let c2 = TestNetns::new("dm-gc-c2");
    let r1 = env.add(&c1, "g1", &c).ok().json();
    env.add(&c2, "g2", &c).ok();
    env.bare("STATUS", &c).ok();
    // Without a list nothing is known to be stale.
    env.bare("GC", &c).ok();
    assert_eq!(env.data.reservations("dmgc").len(), 2);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "eth0"}]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("dmgc"), vec![result_ip(&r1, false)]);
    env.verb("CHECK", Some(&c1), "g1", &with_prev(&c, &r1)).ok();
    env.verb("DEL", Some(&c1), "g1", &c).ok();
    env.verb("DEL", Some(&c2), "g2", &c).ok();
    assert_eq!(env.data.reservations("dmgc"), Vec::<String>::new());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn conformance() {
    let env = env("dm-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "dummy",
        "ipam": host_local_ipam(&env.data, &["10.249.5.0/24", "fd00:cafe:e005::/64"]),
    });
    common::conformance_passes(&env.bin.path().join("dummy"), config);
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}
