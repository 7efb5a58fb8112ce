//! The vrf plugin end to end, in the test guest (this machine's kernel has
//! no VRF links): `tests/guest/test.sh vrf`; `make test` runs it through
//! `tests/tests/guest.rs`. Every test is ignored on the host and fails
//! there with `--ignored` (`guest::require`).

use cni_tests::{
    guest, host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TestNetns, VERSIONS,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn env(tag: &str) -> PluginEnv {
    guest::require();
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            ("dummy", &our_plugin("dummy")),
            ("vrf", &our_plugin("vrf")),
            ("host-local", &require_our_host_local("the vrf tests")),
        ],
    )
}

fn vrf_conf(version: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": "vrfnet", "type": "vrf", "vrfname": "blue"}),
        extra,
    )
}

/// `ip -j route show table T` of one family in `ns`.
fn table(ns: &TestNetns, family: &str, t: &str) -> Vec<Value> {
    ns.ip_json(&[family, "route", "show", "table", t])
        .as_array()
        .cloned()
        .expect("a list of routes")
}

/// `ping` from `ns` bound to `dev` (a VRF: the socket routes through its
/// table), retried for a few seconds (IPv6 duplicate address detection).
fn ping_via(ns: &TestNetns, dev: &str, ip: &str) -> bool {
    let fam = if ip.contains(':') { "-6" } else { "-4" };
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if ns
            .exec(&["ping", fam, "-c", "1", "-W", "1", "-I", dev, ip])
            .status
            == 0
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// eth0 (a dummy, up, with 10.251.0.2/24 and a route via 10.251.0.1) in
/// a container namespace, as an earlier plugin would leave it.
fn dummy_eth0(ns: &cni_kernel::Netns) {
    let mut nl = cni_kernel::Netlink::open_in(ns).expect("netlink in the container");
    nl.create_dummy("eth0", None).expect("create eth0");
    let l = nl.link_by_name("eth0").expect("eth0");
    nl.set_up(l.index).expect("eth0 up");
    nl.add_addr(l.index, &"10.251.0.2/24".parse().unwrap())
        .expect("address");
    nl.add_route(
        &cni_kernel::Route::new("10.251.100.0/24".parse().unwrap())
            .via("10.251.0.1".parse().unwrap())
            .dev(l.index),
    )
    .expect("route");
}

/// A 1.0.0 prevResult naming eth0 in `sandbox`.
fn prev_for(sandbox: &str) -> Value {
    json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": sandbox}],
        "ips": [{"interface": 0, "address": "10.251.0.2/24", "gateway": "10.251.0.1"}]})
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn vrf_holds_the_routes_and_traffic_follows_it() {
    let env = env("vrf-route");
    let ipam = merge(
        host_local_ipam(&env.data, &["10.251.1.0/24", "fd00:cafe:f001::/64"]),
        json!({"routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}),
    );
    let br = json!({"cniVersion": "1.0.0", "name": "vrfnet", "type": "bridge",
        "bridge": "vrfbr0", "isGateway": true, "ipam": ipam});
    // Something beyond the gateway, on the host.
    env.host
        .exec(&["ip", "addr", "add", "10.251.99.1/32", "dev", "lo"])
        .ok();
    let ctr = TestNetns::new("vrf-route-c");
    let r = env.add(&ctr, "v1", &br).ok().json();
    let (v4, v6) = (result_ip(&r, false), result_ip(&r, true));
    let vrf = vrf_conf("1.0.0", json!({"table": 1001}));
    let out = env.add(&ctr, "v1", &with_prev(&vrf, &r)).ok().json();
    assert_eq!(out, r, "vrf passes prevResult through");

    let l = ctr.link("blue").expect("the VRF in the container");
    assert_eq!(l["linkinfo"]["info_kind"], "vrf", "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["table"], 1001, "{l}");
    assert!(ctr.link_has_flag("blue", "UP"));
    assert_eq!(ctr.link("eth0").unwrap()["master"], "blue");
    // Both addresses stay (IPv6 is put back after the enslaving).
    let addrs = ctr.addrs("eth0");
    assert!(addrs.contains(&format!("{v4}/24")), "{addrs:?}");
    assert!(addrs.contains(&format!("{v6}/64")), "{addrs:?}");
    // The routes are in the VRF's table, not in main.
    let t4 = table(&ctr, "-4", "1001");
    assert!(
        t4.iter()
            .any(|x| x["dst"] == "default" && x["gateway"] == "10.251.1.1" && x["dev"] == "eth0"),
        "{t4:?}"
    );
    assert!(t4.iter().any(|x| x["dst"] == "10.251.1.0/24"), "{t4:?}");
    let t6 = table(&ctr, "-6", "1001");
    assert!(
        t6.iter()
            .any(|x| x["dst"] == "default" && x["dev"] == "eth0"),
        "{t6:?}"
    );
    for fam in ["-4", "-6"] {
        let main = ctr.routes(fam);
        assert!(
            !main.iter().any(|x| x["dev"] == "eth0"),
            "main {fam} has no eth0 route: {main:?}"
        );
    }
    // Traffic follows the VRF: through it the gateway and beyond answer;
    // from the default VRF there is no route at all.
    assert!(ping_via(&ctr, "blue", "10.251.1.1"));
    assert!(ping_via(&ctr, "blue", "10.251.99.1"));
    let gw6 = r["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["gateway"].as_str().filter(|g| g.contains(':')))
        .expect("an IPv6 gateway")
        .to_string();
    assert!(ping_via(&ctr, "blue", &gw6), "ping6 {gw6} through blue");
    assert!(!ctr.ping("10.251.99.1"), "no route outside the VRF");

    // CHECK passes, and fails once eth0 has left the VRF.
    let pv = with_prev(&vrf, &r);
    env.verb("CHECK", Some(&ctr), "v1", &pv).ok();
    let other = with_prev(&vrf_conf("1.0.0", json!({"table": 7})), &r);
    let msg = env.verb("CHECK", Some(&ctr), "v1", &other).error_with(100);
    assert!(msg.contains("table 1001"), "{msg}");
    ctr.exec(&["ip", "link", "set", "eth0", "nomaster"]).ok();
    let msg = env.verb("CHECK", Some(&ctr), "v1", &pv).error_with(100);
    assert!(msg.contains("eth0 associated to vrf blue"), "{msg}");
    ctr.exec(&["ip", "link", "set", "eth0", "master", "blue"])
        .ok();

    // A second interface joins the same VRF (its table is taken from it).
    let r2 = env
        .call("bridge", "ADD", &br)
        .container("v1")
        .netns(&ctr.path_str())
        .ifname("net1")
        .run_in(&env.host)
        .ok()
        .json();
    let vrf_any = vrf_conf("1.0.0", json!({}));
    env.call("vrf", "ADD", &with_prev(&vrf_any, &r2))
        .container("v1")
        .netns(&ctr.path_str())
        .ifname("net1")
        .run_in(&env.host)
        .ok();
    assert_eq!(ctr.link("net1").unwrap()["master"], "blue");
    // DEL of one leaves the VRF to the other; DEL of the last removes it.
    env.verb("DEL", Some(&ctr), "v1", &pv).ok();
    assert!(ctr.link("eth0").unwrap().get("master").is_none());
    assert!(ctr.link("blue").is_some(), "net1 is still in blue");
    let del2 = || {
        env.call("vrf", "DEL", &with_prev(&vrf_any, &r2))
            .container("v1")
            .netns(&ctr.path_str())
            .ifname("net1")
            .run_in(&env.host)
            .ok();
    };
    del2();
    assert!(ctr.link("blue").is_none(), "the last DEL removes the VRF");
    del2();
    env.verb("DEL", Some(&ctr), "v1", &pv).ok();
    env.verb("DEL", Some(&ctr), "v1", &with_prev(&br, &r)).ok();
    env.call("bridge", "DEL", &with_prev(&br, &r2))
        .container("v1")
        .netns(&ctr.path_str())
        .ifname("net1")
        .run_in(&env.host)
        .ok();
    assert_eq!(env.data.reservations("vrfnet"), Vec::<String>::new());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn tables_conflicts_and_rollback() {
    let env = env("vrf-tab");
    let ctr = TestNetns::new("vrf-tab-c");
    dummy_eth0(ctr.ns());
    ctr.exec(&["ip", "link", "add", "net1", "type", "dummy"])
        .ok();
    ctr.exec(&["ip", "link", "add", "plain", "type", "dummy"])
        .ok();
    let prev = prev_for(&ctr.path_str());
    let red = with_prev(&vrf_conf("1.0.0", json!({"vrfname": "red"})), &prev);
    env.add(&ctr, "t", &red).ok();
    // No table given: the lowest no VRF uses.
    assert_eq!(
        ctr.link("red").unwrap()["linkinfo"]["info_data"]["table"],
        1
    );
    // eth0's gateway route moved into table 1.
    let t = table(&ctr, "-4", "1");
    assert!(
        t.iter()
            .any(|x| x["dst"] == "10.251.100.0/24" && x["gateway"] == "10.251.0.1"),
        "{t:?}"
    );
    let call = |conf: &Value, ifname: &str| {
        env.call("vrf", "ADD", conf)
            .container("t")
            .netns(&ctr.path_str())
            .ifname(ifname)
            .run_in(&env.host)
    };
    let green = with_prev(&vrf_conf("1.0.0", json!({"vrfname": "green"})), &prev);
    call(&green, "net1").ok();
    assert_eq!(
        ctr.link("green").unwrap()["linkinfo"]["info_data"]["table"],
        2
    );

    // The existing VRF with another table: refused.
    ctr.exec(&["ip", "link", "add", "net2", "type", "dummy"])
        .ok();
    let red5 = with_prev(
        &vrf_conf("1.0.0", json!({"vrfname": "red", "table": 5})),
        &prev,
    );
    let msg = call(&red5, "net2").error_with(100);
    assert!(msg.contains("different routing table 1"), "{msg}");
    // A link of that name that is no VRF: refused.
    let plain = with_prev(&vrf_conf("1.0.0", json!({"vrfname": "plain"})), &prev);
    let msg = call(&plain, "net2").error_with(100);
    assert!(msg.contains("not a VRF"), "{msg}");
    // An interface with a master already: refused, and the VRF this ADD
    // made is removed again.
    let fresh = with_prev(&vrf_conf("1.0.0", json!({"vrfname": "fresh"})), &prev);
    let msg = call(&fresh, "eth0").error_with(100);
    assert!(msg.contains("already a master set: red"), "{msg}");
    assert!(ctr.link("fresh").is_none(), "rolled back");
    // A missing interface: refused, nothing left.
    let msg = call(&fresh, "nosuch0").error_with(100);
    assert!(msg.contains("nosuch0"), "{msg}");
    assert!(ctr.link("fresh").is_none());
    // prevResult is required for ADD and CHECK, vrfname for every verb.
    let bare = vrf_conf("1.0.0", json!({}));
    env.add(&ctr, "t", &bare).error_with(7);
    env.verb("CHECK", Some(&ctr), "t", &bare).error_with(7);
    let nameless = with_prev(&vrf_conf("1.0.0", json!({"vrfname": ""})), &prev);
    for verb in ["ADD", "CHECK", "DEL"] {
        let msg = env.verb(verb, Some(&ctr), "t", &nameless).error_with(7);
        assert!(msg.contains("valid vrf name"), "{verb}: {msg}");
    }
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn del_is_idempotent() {
    let env = env("vrf-del");
    let ctr = TestNetns::new("vrf-del-c");
    dummy_eth0(ctr.ns());
    let c = with_prev(
        &vrf_conf("1.1.0", json!({"table": 300})),
        &prev_for(&ctr.path_str()),
    );
    env.add(&ctr, "d", &c).ok();
    // The interface vanished before DEL (the main plugin's DEL ran first).
    ctr.exec(&["ip", "link", "del", "eth0"]).ok();
    env.verb("DEL", Some(&ctr), "d", &c).ok();
    assert!(ctr.link("blue").is_none(), "the empty VRF goes");
    // No VRF, no CNI_NETNS, no namespace: all nothing to do.
    env.verb("DEL", Some(&ctr), "d", &c).ok();
    env.verb("DEL", None, "d", &c).ok();
    let path = ctr.path_str();
    drop(ctr);
    env.call("vrf", "DEL", &c)
        .container("d")
        .netns(&path)
        .run_in(&env.host)
        .ok();
    // GC and STATUS have nothing to do.
    env.bare("GC", &c).ok();
    env.bare("STATUS", &c).ok();
}

/// dummy then vrf, as a runtime chains them, under every version vrf
/// supports (0.3.1 on, as the reference); older ones are refused.
#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn every_spec_version_chained_after_dummy() {
    let env = env("vrf-ver");
    let ipam = host_local_ipam(&env.data, &["10.251.3.0/24", "fd00:cafe:f003::/64"]);
    for version in VERSIONS {
        let v = cni::Version::parse(version).expect("known version");
        let ctr = TestNetns::new("vrf-ver-c");
        let d = json!({"cniVersion": version, "name": "vrfver", "type": "dummy", "ipam": ipam});
        let r = env.add(&ctr, "v", &d).ok().json();
        let c = with_prev(&vrf_conf(version, json!({"table": 50})), &r);
        if v < cni::Version::V0_3_1 {
            env.add(&ctr, "v", &c).error_with(1);
            env.verb("DEL", Some(&ctr), "v", &with_prev(&d, &r)).ok();
            continue;
        }
        let out = env.add(&ctr, "v", &c).ok().json();
        assert_eq!(out["cniVersion"], *version);
        cni::CniResult::from_value(&out, v).unwrap_or_else(|e| panic!("{version}: {e:?}"));
        assert_eq!(out["ips"], r["ips"], "{version}");
        assert_eq!(ctr.link("eth0").unwrap()["master"], "blue", "{version}");
        assert_eq!(
            ctr.addrs("eth0").len(),
            2,
            "{version}: {:?}",
            ctr.addrs("eth0")
        );
        if v >= cni::Version::V0_4_0 {
            env.verb("CHECK", Some(&ctr), "v", &c).ok();
        }
        env.verb("DEL", Some(&ctr), "v", &c).ok();
        assert!(ctr.link("blue").is_none(), "{version}");
        env.verb("DEL", Some(&ctr), "v", &with_prev(&d, &r)).ok();
    }
    assert_eq!(env.data.reservations("vrfver"), Vec::<String>::new());
}

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn conformance() {
    let env = env("vrf-conf");
    let config = json!({"cniVersion": "", "name": "conformance", "type": "vrf",
        "vrfname": "conf-vrf", "table": 4001, "prevResult": prev_for("/x")});
    let mut opts = cni_conformance::Options::new(env.bin.path().join("vrf"));
    opts.config = config.as_object().cloned();
    opts.prepare_container = Some(dummy_eth0);
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
}

/// Ours and the reference's (Debian's, up to 1.0.0) undo each other.
#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn mixed_with_the_reference() {
    let env = env("vrf-mix");
    env.bin.add_plugin("vrf-ref", &reference_plugin("vrf"));
    for (add, del) in [("vrf", "vrf-ref"), ("vrf-ref", "vrf")] {
        let ctr = TestNetns::new("vrf-mix-c");
        dummy_eth0(ctr.ns());
        let c = with_prev(
            &vrf_conf("1.0.0", json!({"table": 77})),
            &prev_for(&ctr.path_str()),
        );
        let run = |plugin: &str, verb: &str| {
            env.call(plugin, verb, &c)
                .container("m")
                .netns(&ctr.path_str())
                .run_in(&env.host)
        };
        run(add, "ADD").ok();
        let t = table(&ctr, "-4", "77");
        // Debian's reference (1.1.1) predates moving the gateway routes.
        if add == "vrf" {
            assert!(
                t.iter().any(|x| x["dst"] == "10.251.100.0/24"),
                "{add}: {t:?}"
            );
        }
        assert!(
            t.iter().any(|x| x["dst"] == "10.251.0.0/24"),
            "{add}: {t:?}"
        );
        run(del, "CHECK").ok();
        run(del, "DEL").ok();
        assert!(ctr.link("blue").is_none(), "{add} then {del}");
        assert!(ctr.link("eth0").unwrap().get("master").is_none());
    }
}
