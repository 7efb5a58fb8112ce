//! The macvlan plugin end to end. Each test makes its own host namespace
//! with a veth pair whose one end is the macvlans' lower device ("master"),
//! its own container namespaces and host-local `dataDir`; nothing touches
//! the machine's own interfaces.

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const LOWER: &str = "mvlow0";
const PING_WITHIN: Duration = Duration::from_secs(5);

/// `ip link add A type veth peer name B` in `ns`, both ends up.
fn veth(ns: &TestNetns, a: &str, b: &str) {
    ns.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        .ok();
    ns.exec(&["ip", "link", "set", a, "up"]).ok();
    ns.exec(&["ip", "link", "set", b, "up"]).ok();
}

fn env(tag: &str) -> PluginEnv {
    let env = PluginEnv::new(
        tag,
        &[
            ("macvlan", &our_plugin("macvlan")),
            ("host-local", &require_our_host_local("the macvlan tests")),
        ],
    );
    veth(&env.host, LOWER, "mvlowp");
    env
}

fn conf(version: &str, net: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "macvlan", "master": LOWER}),
        extra,
    )
}

/// The container's `ip -d -j link` entry for `dev`.
fn link(ns: &TestNetns, dev: &str) -> Value {
    ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"))
}

#[test]
fn two_containers_on_one_lower_device_ping_each_other() {
    let env = env("mv-ping");
    // A host interface with the container's name: the link is made inside
    // the container, so it does not collide.
    veth(&env.host, "eth0", "mvhostp");
    let ipam = merge(
        host_local_ipam(&env.data, &["10.248.10.0/24", "fd00:cafe:d010::/64"]),
        json!({"routes": [{"dst": "10.248.200.0/24"}]}),
    );
    let c = conf("1.0.0", "mvnet", json!({ "ipam": ipam }));
    let c1 = TestNetns::new("mv-ping-c1");
    let c2 = TestNetns::new("mv-ping-c2");
    let r1 = env.add(&c1, "c1", &c).ok().json();
    let r2 = env.add(&c2, "c2", &c).ok().json();
    for (r, ctr) in [(&r1, &c1), (&r2, &c2)] {
        let ifs = r["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 1, "{r}");
        assert_eq!(ifs[0]["name"], "eth0");
        assert_eq!(ifs[0]["sandbox"], ctr.path_str());
        let l = link(ctr, "eth0");
        assert_eq!(l["linkinfo"]["info_kind"], "macvlan", "{l}");
        assert_eq!(l["linkinfo"]["info_data"]["mode"], "bridge", "{l}");
        assert_eq!(l["address"], ifs[0]["mac"]);
        assert!(r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["interface"] == 0));
        assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        assert_eq!(ctr.sysctl("net/ipv6/conf/eth0/ndisc_notify"), "1");
    }
    assert!(
        env.host.link("eth0").is_some(),
        "the host's eth0 is untouched"
    );
    for v6 in [false, true] {
        assert!(c1.ping_within(&result_ip(&r2, v6), PING_WITHIN), "v6 {v6}");
        assert!(c2.ping_within(&result_ip(&r1, v6), PING_WITHIN), "v6 {v6}");
    }

    // CHECK passes, then fails naming what is missing.
    let p1 = with_prev(&c, &r1);
    env.verb("CHECK", Some(&c1), "c1", &p1).ok();
    // A config whose mode differs from the link's.
    let other = with_prev(&merge(c.clone(), json!({"mode": "vepa"})), &r1);
    let msg = env.verb("CHECK", Some(&c1), "c1", &other).error_with(100);
    assert!(msg.contains("mode bridge") && msg.contains("vepa"), "{msg}");

    c1.exec(&["ip", "route", "del", "10.248.200.0/24"]).ok();
    let msg = env.verb("CHECK", Some(&c1), "c1", &p1).error_with(100);
    assert!(
        msg.contains("route 10.248.200.0/24") && msg.contains("missing"),
        "{msg}"
    );
    let p2 = with_prev(&c, &r2);
    let ip2 = r2["ips"][0]["address"].as_str().unwrap();
    c2.exec(&["ip", "addr", "del", ip2, "dev", "eth0"]).ok();
    let msg = env.verb("CHECK", Some(&c2), "c2", &p2).error_with(100);
    assert!(msg.contains(&format!("missing address {ip2}")), "{msg}");
    // DEL is repeatable, also without CNI_NETNS and after the namespace.
    for (r, ctr, id) in [(&r1, c1, "c1"), (&r2, c2, "c2")] {
        let p = with_prev(&c, r);
        env.verb("DEL", Some(&ctr), id, &p).ok();
        assert!(ctr.link("eth0").is_none());
        env.verb("DEL", Some(&ctr), id, &p).ok();
        env.verb("DEL", None, id, &p).ok();
        let path = ctr.path_str();
        drop(ctr);
        env.call("macvlan", "DEL", &p)
            .container(id)
            .netns(&path)
            .run_in(&env.host)
            .ok();
    }
    assert_eq!(env.data.reservations("mvnet"), Vec::<String>::new());
}

#[test]
fn every_spec_version() {
    let env = env("mv-ver");
    env.lifecycle_in_every_version(
        "mvver",
        |v| {
            conf(
                v,
                "mvver",
                json!({"ipam": host_local_ipam(&env.data, &["10.248.11.0/24", "fd00:cafe:d011::/64"])}),
            )
        },
        1,
        0,
    );
    let results = env.del_after_namespace_is_gone(
        "mvver",
        &conf(
            "1.0.0",
            "mvver",
            json!({"ipam": host_local_ipam(&env.data, &["10.248.11.0/24", "fd00:cafe:d011::/64"])}),
        ),
    );
    assert_eq!(results.len(), 2);
}

#[test]
fn mode_mtu_mac_bcqueuelen_and_refusals() {
    let env = env("mv-keys");
    let ctr = TestNetns::new("mv-keys-c");
    let mut c = conf(
        "1.1.0",
        "mvkeys",
        json!({"mode": "private", "mtu": 1400, "bcqueuelen": 1234,
               "mac": "0a:58:0a:f8:0c:01", "ipam": {}}),
    );
    let r = env.add(&ctr, "k1", &c).ok().json();
    assert!(
        r.get("ips")
            .is_none_or(|i| i.as_array().unwrap().is_empty()),
        "{r}"
    );
    let l = link(&ctr, "eth0");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "private", "{l}");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["address"], "0a:58:0a:f8:0c:01");
    assert!(ctr.link_has_flag("eth0", "UP"), "ipam {{}}: up, no address");
    assert_eq!(ctr.addrs("eth0"), Vec::<String>::new());
    assert_eq!(r["interfaces"][0]["mac"], "0a:58:0a:f8:0c:01");
    let bcq = &l["linkinfo"]["info_data"]["bcqueuelen"];
    assert!(bcq.is_null() || *bcq == 1234, "{l}");
    env.verb("CHECK", Some(&ctr), "k1", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&ctr), "k1", &c).ok();

    // runtimeConfig.mac over CNI_ARGS MAC over the config's mac.
    c["runtimeConfig"] = json!({"mac": "0a:58:0a:f8:0c:03"});
    env.call("macvlan", "ADD", &c)
        .container("k2")
        .netns(&ctr.path_str())
        .args("IgnoreUnknown=1;MAC=0a:58:0a:f8:0c:02")
        .run_in(&env.host)
        .ok();
    assert_eq!(link(&ctr, "eth0")["address"], "0a:58:0a:f8:0c:03");
    env.verb("DEL", Some(&ctr), "k2", &c).ok();
    c.as_object_mut().unwrap().remove("runtimeConfig");
    env.call("macvlan", "ADD", &c)
        .container("k3")
        .netns(&ctr.path_str())
        .args("IgnoreUnknown=1;MAC=0a:58:0a:f8:0c:02")
        .run_in(&env.host)
        .ok();
    assert_eq!(link(&ctr, "eth0")["address"], "0a:58:0a:f8:0c:02");
    env.verb("DEL", Some(&ctr), "k3", &c).ok();

    // Refused before anything is made.
    let links = ctr.link_names();
    for (extra, what) in [
        (json!({"mtu": 9000}), "must be [0, master MTU(1500)]"),
        (json!({"mode": "l3"}), "unknown macvlan mode"),
        (json!({"mac": "nope"}), "not a MAC address"),
    ] {
        let bad = merge(conf("1.1.0", "mvkeys", json!({"ipam": {}})), extra);
        let msg = env.add(&ctr, "bad", &bad).error_with(7);
        assert!(msg.contains(what), "{msg}");
    }
    let msg = env
        .add(
            &ctr,
            "bad",
            &conf("1.1.0", "mvkeys", json!({"master": "nosuch0", "ipam": {}})),
        )
        .error_with(100);
    assert!(msg.contains("nosuch0"), "{msg}");
    assert_eq!(ctr.link_names(), links, "nothing was left behind");
}

/// Without `master`: the interface of the default route, in the host's
/// namespace, or with `linkInContainer` in the container's.
#[test]
fn default_master_and_link_in_container() {
    let env = env("mv-dflt");
    env.host
        .exec(&["ip", "addr", "add", "10.248.12.1/24", "dev", LOWER])
        .ok();
    env.host
        .exec(&["ip", "route", "add", "default", "via", "10.248.12.254"])
        .ok();
    let ctr = TestNetns::new("mv-dflt-c");
    let mut c = json!({"cniVersion": "1.0.0", "name": "mvdflt", "type": "macvlan", "ipam": {}});
    env.add(&ctr, "d1", &c).ok();
    let lower_index = env.host.link(LOWER).unwrap()["ifindex"].clone();
    let l = link(&ctr, "eth0");
    assert_eq!(l["link_index"], lower_index, "{l}");
    env.verb("DEL", Some(&ctr), "d1", &c).ok();

    // linkInContainer: the lower device and the default route are inside.
    veth(&ctr, "inlow0", "inlowp");
    ctr.exec(&["ip", "addr", "add", "10.248.13.1/24", "dev", "inlow0"])
        .ok();
    ctr.exec(&["ip", "route", "add", "default", "via", "10.248.13.254"])
        .ok();
    c["linkInContainer"] = json!(true);
    let r = env.add(&ctr, "d2", &c).ok().json();
    assert_eq!(
        link(&ctr, "eth0")["link"],
        "inlow0",
        "{}",
        link(&ctr, "eth0")
    );
    env.verb("CHECK", Some(&ctr), "d2", &with_prev(&c, &r)).ok();
    c["master"] = json!("inlow0");
    env.verb("CHECK", Some(&ctr), "d2", &with_prev(&c, &r)).ok();
    env.verb("DEL", Some(&ctr), "d2", &c).ok();
    assert!(ctr.link("eth0").is_none());
}

#[test]
fn gc_and_status() {
    let env = env("mv-gc");
    let c = conf(
        "1.1.0",
        "mvgc",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.14.0/24"])}),
    );
    let c1 = TestNetns::new("mv-gc-c1");
    let c2 = TestNetns::new("mv-gc-c2");
    let r1 = env.add(&c1, "g1", &c).ok().json();
    env.add(&c2, "g2", &c).ok();
    env.bare("STATUS", &c).ok();
    env.bare("GC", &c).ok();
    assert_eq!(env.data.reservations("mvgc").len(), 2);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "eth0"}]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("mvgc"), vec![result_ip(&r1, false)]);
    env.verb("CHECK", Some(&c1), "g1", &with_prev(&c, &r1)).ok();
    env.verb("DEL", Some(&c1), "g1", &c).ok();
    env.verb("DEL", Some(&c2), "g2", &c).ok();
    assert_eq!(env.data.reservations("mvgc"), Vec::<String>::new());
}

/// The harness's host namespace gets the lower device before every ADD.
fn lower_device(ns: &cni_kernel::Netns) {
    let mut nl = cni_kernel::Netlink::open_in(ns).expect("netlink in the harness's host");
    if nl.link_by_name(LOWER).is_ok() {
        return;
    }
    nl.create_veth(&cni_kernel::VethSpec {
        name: LOWER.into(),
        peer_name: "mvlowp".into(),
        ..Default::default()
    })
    .expect("create the lower device");
    // Both ends up: a lower device without carrier never lets the
    // macvlans' IPv6 addresses finish DAD.
    for name in [LOWER, "mvlowp"] {
        let l = nl.link_by_name(name).expect("lower device");
        nl.set_up(l.index).expect("lower device up");
    }
}

#[test]
fn conformance() {
    let env = env("mv-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "macvlan", "master": LOWER,
        "ipam": host_local_ipam(&env.data, &["10.248.15.0/24", "fd00:cafe:d015::/64"]),
    });
    let mut opts = cni_conformance::Options::new(env.bin.path().join("macvlan"));
    opts.config = config.as_object().cloned();
    opts.prepare_host = Some(lower_device);
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}

/// Our macvlan with the reference host-local, and the reference tuning
/// chained after it (Debian's plugins speak up to 1.0.0).
#[test]
fn chained_with_the_reference() {
    let env = PluginEnv::new(
        "mv-mix",
        &[
            ("macvlan", &our_plugin("macvlan")),
            ("host-local", &reference_plugin("host-local")),
            ("tuning", &reference_plugin("tuning")),
        ],
    );
    veth(&env.host, LOWER, "mvlowp");
    let ctr = TestNetns::new("mv-mix-c");
    let peer = TestNetns::new("mv-mix-p");
    let mv = conf(
        "1.0.0",
        "mvmix",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.16.0/24", "fd00:cafe:d016::/64"])}),
    );
    let r = env.add(&ctr, "x1", &mv).ok().json();
    let r2 = env.add(&peer, "x2", &mv).ok().json();
    assert_eq!(env.data.reservations("mvmix").len(), 4);
    let tuning = json!({"cniVersion": "1.0.0", "name": "mvmix", "type": "tuning",
                        "mac": "0a:58:0a:f8:10:99", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}});
    let tr = env.add(&ctr, "x1", &with_prev(&tuning, &r)).ok().json();
    assert_eq!(link(&ctr, "eth0")["address"], "0a:58:0a:f8:10:99");
    assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_filter"), "1");
    assert!(ctr.ping_within(&result_ip(&r2, false), PING_WITHIN));
    env.verb("CHECK", Some(&ctr), "x1", &with_prev(&tuning, &tr))
        .ok();
    // Our CHECK with the chain's final result: the MAC tuning set is
    // what the result now says.
    env.verb("CHECK", Some(&ctr), "x1", &with_prev(&mv, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "x1", &with_prev(&tuning, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "x1", &with_prev(&mv, &tr)).ok();
    env.verb("DEL", Some(&peer), "x2", &with_prev(&mv, &r2))
        .ok();
    assert_eq!(env.data.reservations("mvmix"), Vec::<String>::new());
    assert!(ctr.link("eth0").is_none());
}
