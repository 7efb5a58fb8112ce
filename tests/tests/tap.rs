//! The tap plugin end to end, in namespaces the tests make: the tap's
//! owner, group and queue mode read back with `ip -j -d`, frames written
//! into it (as a VM monitor would) reaching the bridge it is a port of,
//! CHECK, DEL, every spec version, GC/STATUS, the conformance harness, and
//! a chain with the reference plugins.

mod common;

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, with_prev,
    PluginEnv, TestNetns,
};
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

fn env(tag: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("tap", &our_plugin("tap")),
            ("host-local", &require_our_host_local("the tap tests")),
        ],
    )
}

fn conf(version: &str, net: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "tap"}),
        extra,
    )
}

/// Packets the bridge `dev` has received, from `ip -s -j link`.
fn rx_packets(ns: &TestNetns, dev: &str) -> u64 {
    let v = ns.ip_json(&["-s", "link", "show", dev]);
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no rx packet count for {dev}: {v}"))
}

#[test]
fn tap_with_owner_group_queues_on_a_bridge_carries_frames() {
    let env = env("tap-br");
    let ctr = TestNetns::new("tap-br-c");
    ctr.exec(&["ip", "link", "add", "tbr0", "type", "bridge"])
        .ok();
    ctr.exec(&["ip", "link", "set", "tbr0", "up"]).ok();
    let c = conf(
        "1.1.0",
        "tapnet",
        json!({"owner": 4242, "group": 4243, "multiQueue": true, "mtu": 1400,
               "mac": "0a:58:0a:f8:28:01", "bridge": "tbr0",
               "selinuxContext": "system_u:system_r:container_t:s0"}),
    );
    assert!(
        !std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        "this test expects a host without SELinux"
    );
    let r = env.add(&ctr, "t1", &c).ok().json();
    assert_eq!(
        r["interfaces"],
        json!([{"name": "eth0", "mac": "0a:58:0a:f8:28:01", "sandbox": ctr.path_str()}])
    );
    let l = ctr.link("eth0").expect("the tap is in the container");
    let info = &l["linkinfo"]["info_data"];
    assert_eq!(l["linkinfo"]["info_kind"], "tun", "{l}");
    assert_eq!(info["type"], "tap", "{l}");
    assert_eq!(info["multi_queue"], true, "{l}");
    assert_eq!(info["persist"], true, "{l}");
    assert_eq!(info["user"], 4242, "{l}");
    assert_eq!(info["group"], 4243, "{l}");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["master"], "tbr0");
    env.verb("CHECK", Some(&ctr), "t1", &with_prev(&c, &r)).ok();
    let single = merge(c.clone(), json!({"multiQueue": false}));
    let msg = env
        .verb("CHECK", Some(&ctr), "t1", &with_prev(&single, &r))
        .error_with(100);
    assert!(msg.contains("multi_queue"), "{msg}");

    // A VM monitor attaches and sends: broadcast frames enter the bridge.
    let mut q = cni_kernel::tuntap::open_tap(ctr.ns(), "eth0", true).expect("attach to the tap");
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x0a, 0x58, 0x0a, 0xf8, 0x28, 0x01, 0x88, 0xb5]);
    frame.resize(60, 0x5a);
    let before = rx_packets(&ctr, "tbr0");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        q.write_all(&frame).expect("write a frame into the tap");
        if rx_packets(&ctr, "tbr0") > before {
            break;
        }
        assert!(Instant::now() < deadline, "no frame reached the bridge");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(q);

    env.verb("DEL", Some(&ctr), "t1", &c).ok();
    assert!(ctr.link("eth0").is_none());
    env.verb("DEL", Some(&ctr), "t1", &c).ok();
    env.verb("DEL", None, "t1", &c).ok();

    // A bridge that is not there: refused, nothing left behind.
    let links = ctr.link_names();
    let msg = env
        .add(
            &ctr,
            "t2",
            &conf("1.1.0", "tapnet", json!({"bridge": "nobr0"})),
        )
        .error_with(100);
    assert!(msg.contains("nobr0"), "{msg}");
    assert_eq!(ctr.link_names(), links);
}

#[test]
fn addresses_check_and_every_spec_version() {
    let env = env("tap-ver");
    let ipam =
        |env: &PluginEnv| host_local_ipam(&env.data, &["10.248.40.0/24", "fd00:cafe:d040::/64"]);
    env.lifecycle_in_every_version(
        "tapver",
        |v| conf(v, "tapver", json!({"ipam": ipam(&env)})),
        1,
        0,
    );
    env.del_after_namespace_is_gone(
        "tapver",
        &conf("1.0.0", "tapver", json!({"ipam": ipam(&env)})),
    );

    let c = conf("1.0.0", "tapver", json!({"ipam": ipam(&env)}));
    let ctr = TestNetns::new("tap-ver-c");
    let r = env.add(&ctr, "a1", &c).ok().json();
    let ip = r["ips"][0]["address"].as_str().unwrap();
    assert!(ctr.addrs("eth0").contains(&ip.to_string()));
    assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
    // Without carrier (no VM attached) the tap still takes addresses.
    env.verb("CHECK", Some(&ctr), "a1", &with_prev(&c, &r)).ok();
    ctr.exec(&["ip", "addr", "del", ip, "dev", "eth0"]).ok();
    let msg = env
        .verb("CHECK", Some(&ctr), "a1", &with_prev(&c, &r))
        .error_with(100);
    assert!(msg.contains(&format!("missing address {ip}")), "{msg}");
    env.verb("DEL", Some(&ctr), "a1", &c).ok();
    assert_eq!(env.data.reservations("tapver"), Vec::<String>::new());
}

#[test]
fn gc_and_status() {
    let env = env("tap-gc");
    let c = conf(
        "1.1.0",
        "tapgc",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.41.0/24"])}),
    );
    let ctr = TestNetns::new("tap-gc-c");
    env.add(&ctr, "g1", &c).ok();
    env.bare("STATUS", &c).ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("tapgc"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "g1", &c).ok();
}

#[test]
fn conformance() {
    let env = env("tap-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "tap",
        "ipam": host_local_ipam(&env.data, &["10.248.42.0/24", "fd00:cafe:d042::/64"]),
    });
    common::conformance_passes(&env.bin.path().join("tap"), config);
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}

/// Our tap with the reference host-local and the reference tuning after it.
#[test]
fn chained_with_the_reference() {
    let env = PluginEnv::new(
        "tap-mix",
        &[
            ("tap", &our_plugin("tap")),
            ("host-local", &reference_plugin("host-local")),
            ("tuning", &reference_plugin("tuning")),
        ],
    );
    let c = conf(
        "1.0.0",
        "tapmix",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.43.0/24"])}),
    );
    let ctr = TestNetns::new("tap-mix-c");
    let r = env.add(&ctr, "x1", &c).ok().json();
    let tuning = json!({"cniVersion": "1.0.0", "name": "tapmix", "type": "tuning",
                        "promisc": true, "mtu": 1300});
    let tr = env.add(&ctr, "x1", &with_prev(&tuning, &r)).ok().json();
    assert!(ctr.link_has_flag("eth0", "PROMISC"));
    assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1300);
    env.verb("CHECK", Some(&ctr), "x1", &with_prev(&tuning, &tr))
        .ok();
    env.verb("CHECK", Some(&ctr), "x1", &with_prev(&c, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "x1", &with_prev(&tuning, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "x1", &with_prev(&c, &tr)).ok();
    assert!(ctr.link("eth0").is_none());
    assert_eq!(env.data.reservations("tapmix"), Vec::<String>::new());
}
