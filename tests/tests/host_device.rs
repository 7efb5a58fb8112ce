//! The host-device plugin end to end. The "devices" are veth ends and
//! macvlans in the test's own host namespace (this kernel has no dummy
//! links), moved into container namespaces the test makes.

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const DEV: &str = "hdev0";
const PING_WITHIN: Duration = Duration::from_secs(5);

/// `ip link add A type veth peer name B` in `ns`, both ends up.
fn veth(ns: &TestNetns, a: &str, b: &str) {
    ns.exec(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        .ok();
    ns.exec(&["ip", "link", "set", a, "up"]).ok();
    ns.exec(&["ip", "link", "set", b, "up"]).ok();
}

fn env(tag: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("host-device", &our_plugin("host-device")),
            (
                "host-local",
                &require_our_host_local("the host-device tests"),
            ),
        ],
    )
}

fn conf(version: &str, net: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": net, "type": "host-device", "device": DEV}),
        extra,
    )
}

/// A device in the host whose peer is in `peer` with `peer_ip`: the
/// container reaches `peer` through the device once it has been moved.
fn device_to(env: &PluginEnv, peer: &TestNetns, peer_ip: &str) {
    veth(&env.host, DEV, "hdevp");
    env.host
        .exec(&["ip", "link", "set", "hdevp", "netns", &peer.path_str()])
        .ok();
    peer.exec(&["ip", "link", "set", "hdevp", "up"]).ok();
    peer.exec(&["ip", "addr", "add", peer_ip, "dev", "hdevp"])
        .ok();
}

#[test]
fn moves_the_device_in_and_back_out() {
    let env = env("hd-move");
    let peer = TestNetns::new("hd-move-p");
    device_to(&env, &peer, "10.248.30.1/24");
    let mac = env.host.link(DEV).unwrap()["address"].clone();
    let ipam = merge(
        host_local_ipam(&env.data, &["10.248.30.0/24"]),
        json!({"ranges": [[{"subnet": "10.248.30.0/24", "rangeStart": "10.248.30.10"}]]}),
    );
    let c = conf("1.1.0", "hdnet", json!({ "ipam": ipam }));
    let ctr = TestNetns::new("hd-move-c");
    let r = env.add(&ctr, "h1", &c).ok().json();
    assert_eq!(
        r["interfaces"],
        json!([{"name": "eth0", "mac": mac, "sandbox": ctr.path_str()}]),
        "{r}"
    );
    assert_eq!(r["ips"][0]["interface"], 0);
    assert!(env.host.link(DEV).is_none(), "moved out of the host");
    let l = ctr.link("eth0").expect("eth0 in the container");
    assert_eq!(l["ifalias"], DEV, "the host name is kept as alias: {l}");
    assert!(ctr.ping_within("10.248.30.1", PING_WITHIN));

    let p = with_prev(&c, &r);
    env.verb("CHECK", Some(&ctr), "h1", &p).ok();
    let ip = r["ips"][0]["address"].as_str().unwrap();
    ctr.exec(&["ip", "addr", "del", ip, "dev", "eth0"]).ok();
    let msg = env.verb("CHECK", Some(&ctr), "h1", &p).error_with(100);
    assert!(msg.contains("missing address"), "{msg}");

    env.verb("DEL", Some(&ctr), "h1", &p).ok();
    assert!(ctr.link("eth0").is_none());
    let back = env.host.link(DEV).expect("back on the host under its name");
    assert_eq!(back["address"], mac);
    assert!(back.get("ifalias").is_none(), "alias dropped: {back}");
    assert_eq!(env.data.reservations("hdnet"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "h1", &p).ok();
    env.verb("DEL", None, "h1", &p).ok();

    // By MAC, and a macvlan as the device.
    veth(&env.host, "hdlow0", "hdlowp");
    env.host
        .exec(&[
            "ip",
            "link",
            "add",
            "hdmv0",
            "link",
            "hdlow0",
            "address",
            "0a:58:0a:f8:1f:01",
            "type",
            "macvlan",
        ])
        .ok();
    let byhw = json!({"cniVersion": "1.0.0", "name": "hdnet", "type": "host-device",
                      "hwaddr": "0a:58:0a:f8:1f:01", "ipam": host_local_ipam(&env.data, &["10.248.31.0/24"])});
    let r = env.add(&ctr, "h2", &byhw).ok().json();
    assert_eq!(
        ctr.link("eth0").unwrap()["linkinfo"]["info_kind"],
        "macvlan"
    );
    env.verb("CHECK", Some(&ctr), "h2", &with_prev(&byhw, &r))
        .ok();
    env.verb("DEL", Some(&ctr), "h2", &with_prev(&byhw, &r))
        .ok();
    assert!(env.host.link("hdmv0").is_some());

    // No such device, and no selector at all.
    let msg = env
        .add(
            &ctr,
            "h3",
            &conf("1.0.0", "hdnet", json!({"device": "nosuch0"})),
        )
        .error_with(100);
    assert!(msg.contains("nosuch0"), "{msg}");
    let mut none = conf("1.0.0", "hdnet", json!({}));
    none.as_object_mut().unwrap().remove("device");
    let msg = env.add(&ctr, "h3", &none).error_with(7);
    assert!(msg.contains("pciBusID"), "{msg}");
}

#[test]
fn every_spec_version() {
    let env = env("hd-ver");
    veth(&env.host, DEV, "hdevp");
    env.lifecycle_in_every_version(
        "hdver",
        |v| {
            conf(
                v,
                "hdver",
                json!({"ipam": host_local_ipam(&env.data, &["10.248.32.0/24", "fd00:cafe:d032::/64"])}),
            )
        },
        1,
        0,
    );
    assert!(env.host.link(DEV).is_some());
}

/// DEL after the container's namespace is gone releases the address (the
/// reference returns early and leaks it). A veth end dies with the
/// namespace; a physical device comes back to the host under another
/// name, which DEL finds by its alias and renames back.
#[test]
fn del_after_the_namespace_is_gone() {
    let env = env("hd-gone");
    veth(&env.host, DEV, "hdevp");
    let c = conf(
        "1.0.0",
        "hdgone",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.33.0/24"])}),
    );
    let ctr = TestNetns::new("hd-gone-c");
    let r = env.add(&ctr, "g1", &c).ok().json();
    assert_eq!(env.data.reservations("hdgone").len(), 1);
    let path = ctr.path_str();
    drop(ctr);
    let del = env
        .call("host-device", "DEL", &with_prev(&c, &r))
        .container("g1")
        .netns(&path);
    del.run_in(&env.host).ok();
    del.run_in(&env.host).ok();
    assert_eq!(env.data.reservations("hdgone"), Vec::<String>::new());

    // What the kernel leaves of a physical device whose namespace was
    // destroyed: the device in the host under its container name (or
    // `devN`) with our alias. (A veth cannot be returned, so the test
    // builds that state.)
    veth(&env.host, "dev7", "dev7p");
    env.host
        .exec(&["ip", "link", "set", "dev7", "alias", "hdphys0"])
        .ok();
    let phys = conf("1.0.0", "hdgone", json!({"device": "hdphys0"}));
    env.call("host-device", "DEL", &phys)
        .container("g2")
        .netns(&path)
        .run_in(&env.host)
        .ok();
    assert!(env.host.link("dev7").is_none());
    let l = env.host.link("hdphys0").expect("renamed back");
    assert!(l.get("ifalias").is_none(), "{l}");
}

#[test]
fn gc_and_status() {
    let env = env("hd-gc");
    veth(&env.host, DEV, "hdevp");
    let c = conf(
        "1.1.0",
        "hdgc",
        json!({"ipam": host_local_ipam(&env.data, &["10.248.34.0/24"])}),
    );
    let ctr = TestNetns::new("hd-gc-c");
    let r = env.add(&ctr, "k1", &c).ok().json();
    env.bare("STATUS", &c).ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "k1", "ifname": "eth0"}]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("hdgc"), vec![result_ip(&r, false)]);
    gc["cni.dev/valid-attachments"] = json!([]);
    env.bare("GC", &gc).ok();
    assert_eq!(env.data.reservations("hdgc"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "k1", &c).ok();
    assert!(env.host.link(DEV).is_some());
}

/// The harness's host namespace gets the device before every ADD.
fn the_device(ns: &cni_kernel::Netns) {
    let mut nl = cni_kernel::Netlink::open_in(ns).expect("netlink in the harness's host");
    if nl.link_by_name(DEV).is_ok() {
        return;
    }
    // The peer of an earlier device may still be here while that device
    // is in a container: each peer gets its own name.
    static PEERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let peer = format!(
        "hdevp{}",
        PEERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    nl.create_veth(&cni_kernel::VethSpec {
        name: DEV.into(),
        peer_name: peer.clone(),
        ..Default::default()
    })
    .expect("create the device");
    let p = nl.link_by_name(&peer).expect("peer");
    nl.set_up(p.index).expect("peer up");
}

#[test]
fn conformance() {
    let env = env("hd-conf");
    let config = json!({
        "cniVersion": "", "name": "conformance", "type": "host-device", "device": DEV,
        "ipam": host_local_ipam(&env.data, &["10.248.35.0/24", "fd00:cafe:d035::/64"]),
    });
    let mut opts = cni_conformance::Options::new(env.bin.path().join("host-device"));
    opts.config = config.as_object().cloned();
    opts.prepare_host = Some(the_device);
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}

/// Our host-device with the reference host-local, and the reference
/// tuning chained after it.
#[test]
fn chained_with_the_reference() {
    let env = PluginEnv::new(
        "hd-mix",
        &[
            ("host-device", &our_plugin("host-device")),
            ("host-local", &reference_plugin("host-local")),
            ("tuning", &reference_plugin("tuning")),
        ],
    );
    let peer = TestNetns::new("hd-mix-p");
    device_to(&env, &peer, "10.248.36.1/24");
    let c = conf(
        "1.0.0",
        "hdmix",
        json!({"ipam": {"type": "host-local", "dataDir": env.data.path_str(),
                        "ranges": [[{"subnet": "10.248.36.0/24", "rangeStart": "10.248.36.10"}]]}}),
    );
    let ctr = TestNetns::new("hd-mix-c");
    let r = env.add(&ctr, "m1", &c).ok().json();
    let tuning = json!({"cniVersion": "1.0.0", "name": "hdmix", "type": "tuning", "mtu": 1400});
    let tr = env.add(&ctr, "m1", &with_prev(&tuning, &r)).ok().json();
    assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1400);
    assert!(ctr.ping_within("10.248.36.1", PING_WITHIN));
    env.verb("CHECK", Some(&ctr), "m1", &with_prev(&c, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "m1", &with_prev(&tuning, &tr))
        .ok();
    env.verb("DEL", Some(&ctr), "m1", &with_prev(&c, &tr)).ok();
    assert!(env.host.link(DEV).is_some());
    assert_eq!(env.data.reservations("hdmix"), Vec::<String>::new());
}
