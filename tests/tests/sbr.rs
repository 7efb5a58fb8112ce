//! The sbr plugin end to end: a container on two bridges (two chained
//! networks, our bridge and host-local), sbr chained on the second. Real
//! packets show replies leave by the interface the request came in on:
//! the test's host drops packets arriving on an interface its route back
//! to their source does not use (nftables `fib saddr . iif oif missing`,
//! reverse-path filtering for both families), so a reply from eth1's
//! address sent out of eth0 never reaches the client. Rules and tables are
//! read with `ip -j` in the container, before and after DEL; parallel
//! ADDs get distinct tables; the conformance harness; reference chains.

mod common;

use cni_tests::{
    host_local_ipam, our_plugin, reference_plugin, require_our_host_local, result_ip, with_prev,
    PluginEnv, RunCall, TestNetns, VERSIONS,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn env(tag: &str, bridge: &Path, host_local: &Path, sbr: &Path) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[("bridge", bridge), ("host-local", host_local), ("sbr", sbr)],
    )
}

fn our_env(tag: &str) -> PluginEnv {
    env(
        tag,
        &our_plugin("bridge"),
        &require_our_host_local("sbr tests"),
        &our_plugin("sbr"),
    )
}

/// Network `which` (0: the first, with the default routes; 1, 2: more,
/// without) of test `n`.
fn net(env: &PluginEnv, version: &str, n: u8, which: u8) -> Value {
    let (v4, v6) = match which {
        0 => (
            format!("10.244.{n}.0/24"),
            format!("fd00:cafe:c0{n:02x}::/64"),
        ),
        1 => (
            format!("10.245.{n}.0/24"),
            format!("fd00:cafe:c1{n:02x}::/64"),
        ),
        _ => (
            format!("10.245.{}.0/24", 100 + n),
            format!("fd00:cafe:c2{n:02x}::/64"),
        ),
    };
    let mut ipam = host_local_ipam(&env.data, &[&v4, &v6]);
    if which == 0 {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
    }
    json!({"cniVersion": version, "name": format!("sbr{n}n{which}"), "type": "bridge",
           "bridge": format!("sbr{n}b{which}"), "isGateway": true, "ipam": ipam})
}

fn sbr_conf(version: &str, n: u8, which: u8, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": format!("sbr{n}n{which}"), "type": "sbr"});
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

/// ADD of network `which` on `ifname`; returns (conf, result).
fn attach(env: &PluginEnv, ctr: &TestNetns, id: &str, conf: &Value, ifname: &str) -> Value {
    env.call("bridge", "ADD", conf)
        .container(id)
        .netns(&ctr.path_str())
        .ifname(ifname)
        .run_in(&env.host)
        .ok()
        .json()
}

fn verb(
    env: &PluginEnv,
    command: &str,
    ctr: Option<&TestNetns>,
    id: &str,
    conf: &Value,
    ifname: &str,
) -> cni_tests::Output {
    let ty = conf["type"].as_str().expect("type");
    let mut call = env.call(ty, command, conf).container(id).ifname(ifname);
    if let Some(c) = ctr {
        call = call.netns(&c.path_str());
    }
    call.run_in(&env.host)
}

/// Source rules in `ns`: (source address, table).
fn source_rules(ns: &TestNetns) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ns.ip_json(&[fam, "rule", "show"]).as_array().expect("list") {
            // `ip -j` gives a /32 or /128 source without its `srclen`.
            let Some(src) = r["src"].as_str().filter(|s| *s != "all") else {
                continue;
            };
            let table = r["table"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            out.push((src.to_string(), table));
        }
    }
    out.sort();
    out
}

/// Routes of table `t` (both families) in `ns`; a table the kernel
/// never made for a family (`FIB table does not exist`) has none.
fn table_routes(ns: &TestNetns, t: u64) -> Vec<Value> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        let out = ns.exec(&["ip", "-j", fam, "route", "show", "table", &t.to_string()]);
        if out.status != 0 && out.stderr.contains("does not exist") {
            continue;
        }
        assert_eq!(out.status, 0, "ip route show table {t}: {}", out.stderr);
        let list: Value = serde_json::from_str(&out.stdout).expect("ip -j prints JSON");
        v.extend(list.as_array().cloned().expect("list"));
    }
    v
}

/// Main-table routes via `dev` in `ns` (both families).
fn main_routes_of(ns: &TestNetns, dev: &str) -> Vec<Value> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        v.extend(
            ns.ip_json(&[fam, "route", "show", "dev", dev])
                .as_array()
                .cloned()
                .expect("list"),
        );
    }
    v
}

/// A client namespace routed through the test's host: host side
/// 10.244.(200+n).1 / fd00:cafe:c3NN::1, client .2 / ::2.
fn client(env: &PluginEnv, n: u8) -> TestNetns {
    let cl = TestNetns::new("sbr-cl");
    let host = &env.host;
    let hdev = format!("sbrh{n}");
    host.exec(&[
        "ip",
        "link",
        "add",
        &hdev,
        "type",
        "veth",
        "peer",
        "name",
        "up0",
        "netns",
        cl.name(),
    ])
    .ok();
    let (h4, c4) = (
        format!("10.244.{}.1", 200 + n),
        format!("10.244.{}.2", 200 + n),
    );
    let (h6, c6) = (
        format!("fd00:cafe:c3{n:02x}::1"),
        format!("fd00:cafe:c3{n:02x}::2"),
    );
    for (ns, dev, a4, a6) in [(host, hdev.as_str(), &h4, &h6), (&cl, "up0", &c4, &c6)] {
        ns.exec(&["ip", "addr", "add", &format!("{a4}/24"), "dev", dev])
            .ok();
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{a6}/64"),
            "dev",
            dev,
            "nodad",
        ])
        .ok();
        ns.exec(&["ip", "link", "set", dev, "up"]).ok();
    }
    cl.exec(&["ip", "route", "add", "default", "via", &h4]).ok();
    cl.exec(&["ip", "-6", "route", "add", "default", "via", &h6])
        .ok();
    cl
}

/// Reverse-path filtering in the host for both families.
fn strict_reverse_path(env: &PluginEnv) {
    let rules = "table inet sbrtest {\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  fib saddr . iif oif missing drop\n }\n}\n";
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["-f", "-"]);
    env.host.run(cmd, Some(rules.as_bytes())).ok();
}

/// The container on network 0 (eth0, default routes) and network 1
/// (eth1), with sbr on eth1: replies from eth1's addresses leave by eth1.
#[test]
fn replies_leave_by_the_interface_the_request_came_in_on() {
    let env = our_env("sbr-pkt");
    let ctr = TestNetns::new("sbr-pkt-c");
    let (n0, n1) = (net(&env, "1.0.0", 1, 0), net(&env, "1.0.0", 1, 1));
    let r0 = attach(&env, &ctr, "p1", &n0, "eth0");
    let r1 = attach(&env, &ctr, "p1", &n1, "eth1");
    let cl = client(&env, 1);
    strict_reverse_path(&env);
    let wait = Duration::from_secs(5);
    let (e0v4, e0v6) = (result_ip(&r0, false), result_ip(&r0, true));
    let (e1v4, e1v6) = (result_ip(&r1, false), result_ip(&r1, true));
    assert!(cl.ping_within(&e0v4, wait) && cl.ping_within(&e0v6, wait));
    // Without sbr the replies from eth1's addresses leave by eth0 (the
    // default route) and the host drops them.
    assert!(!cl.ping(&e1v4), "reply left by eth0 and still arrived");
    assert!(!cl.ping(&e1v6), "reply left by eth0 and still arrived");

    let sbr = with_prev(&sbr_conf("1.0.0", 1, 1, json!({})), &r1);
    let out = verb(&env, "ADD", Some(&ctr), "p1", &sbr, "eth1")
        .ok()
        .json();
    assert_eq!(out["ips"], r1["ips"], "prevResult passes through");
    assert!(cl.ping_within(&e1v4, wait), "IPv4 reply by eth1");
    assert!(cl.ping_within(&e1v6, wait), "IPv6 reply by eth1");
    assert!(cl.ping(&e0v4) && cl.ping(&e0v6), "eth0 still answers");

    // One table per address, from 100; the routes of eth1 are there and
    // no longer in main.
    assert_eq!(
        source_rules(&ctr),
        vec![(e1v4.clone(), 100), (e1v6.clone(), 101)]
    );
    let t100 = table_routes(&ctr, 100);
    let gw4 = r1["ips"][0]["gateway"].as_str().unwrap();
    assert!(
        t100.iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == gw4 && r["dev"] == "eth1"),
        "{t100:?}"
    );
    assert!(table_routes(&ctr, 101)
        .iter()
        .any(|r| r["dst"] == "default" && r["dev"] == "eth1"));
    assert_eq!(main_routes_of(&ctr, "eth1"), Vec::<Value>::new());
    verb(&env, "CHECK", Some(&ctr), "p1", &sbr, "eth1").ok();
    ctr.exec(&["ip", "route", "del", "default", "table", "100"])
        .ok();
    let msg = verb(&env, "CHECK", Some(&ctr), "p1", &sbr, "eth1").error_with(100);
    assert!(msg.contains("table 100"), "{msg}");

    verb(&env, "DEL", Some(&ctr), "p1", &sbr, "eth1").ok();
    assert_eq!(source_rules(&ctr), Vec::<(String, u64)>::new());
    assert_eq!(table_routes(&ctr, 100), Vec::<Value>::new());
    assert_eq!(table_routes(&ctr, 101), Vec::<Value>::new());
    verb(&env, "DEL", Some(&ctr), "p1", &sbr, "eth1").ok();
    verb(&env, "DEL", None, "p1", &sbr, "eth1").ok();
    let mut bare = sbr.clone();
    bare.as_object_mut().unwrap().remove("prevResult");
    verb(&env, "DEL", Some(&ctr), "p1", &bare, "eth1").ok();
    for (c, r, ifname) in [(&n1, &r1, "eth1"), (&n0, &r0, "eth0")] {
        verb(&env, "DEL", Some(&ctr), "p1", &with_prev(c, r), ifname).ok();
    }
}

/// ADD, CHECK (0.4.0+), DEL under every spec version.
#[test]
fn every_version() {
    let env = our_env("sbr-ver");
    for (i, version) in VERSIONS.iter().enumerate() {
        let ctr = TestNetns::new("sbr-ver-c");
        let id = format!("sv{i}");
        let (n0, n1) = (net(&env, version, 2, 0), net(&env, version, 2, 1));
        let r0 = attach(&env, &ctr, &id, &n0, "eth0");
        let r1 = attach(&env, &ctr, &id, &n1, "eth1");
        let sbr = with_prev(&sbr_conf(version, 2, 1, json!({})), &r1);
        let out = verb(&env, "ADD", Some(&ctr), &id, &sbr, "eth1").ok().json();
        assert_eq!(out["cniVersion"], *version);
        let rules = source_rules(&ctr);
        assert_eq!(rules.len(), 2, "{version}: {rules:?}");
        assert!(
            rules.iter().all(|(_, t)| *t == 100 || *t == 101),
            "{rules:?}"
        );
        assert_eq!(main_routes_of(&ctr, "eth1"), Vec::<Value>::new());
        if *version >= "0.4.0" {
            verb(
                &env,
                "CHECK",
                Some(&ctr),
                &id,
                &with_prev(&sbr, &out),
                "eth1",
            )
            .ok();
        }
        verb(&env, "DEL", Some(&ctr), &id, &sbr, "eth1").ok();
        assert_eq!(source_rules(&ctr), Vec::<(String, u64)>::new(), "{version}");
        verb(&env, "DEL", Some(&ctr), &id, &sbr, "eth1").ok();
        for (c, r, ifname) in [(&n1, &r1, "eth1"), (&n0, &r0, "eth0")] {
            verb(&env, "DEL", Some(&ctr), &id, &with_prev(c, r), ifname).ok();
        }
    }
}

/// Two ADDs at once in one namespace (eth1 and eth2) never share a table.
#[test]
fn parallel_adds_get_their_own_tables() {
    let env = our_env("sbr-par");
    for round in 0..3 {
        let ctr = TestNetns::new("sbr-par-c");
        let id = format!("pp{round}");
        let nets: Vec<Value> = (0..3).map(|w| net(&env, "1.0.0", 3, w)).collect();
        let rs: Vec<Value> = ["eth0", "eth1", "eth2"]
            .iter()
            .zip(&nets)
            .map(|(ifname, c)| attach(&env, &ctr, &id, c, ifname))
            .collect();
        std::thread::scope(|s| {
            for (w, ifname) in [(1usize, "eth1"), (2, "eth2")] {
                let (env, ctr, id, r) = (&env, &ctr, &id, &rs[w]);
                s.spawn(move || {
                    let c = with_prev(&sbr_conf("1.0.0", 3, w as u8, json!({})), r);
                    verb(env, "ADD", Some(ctr), id, &c, ifname).ok();
                });
            }
        });
        let rules = source_rules(&ctr);
        let mut tables: Vec<u64> = rules.iter().map(|(_, t)| *t).collect();
        tables.sort();
        tables.dedup();
        assert_eq!(tables, vec![100, 101, 102, 103], "{rules:?}");
        for (w, ifname) in [(2usize, "eth2"), (1, "eth1")] {
            let c = with_prev(&sbr_conf("1.0.0", 3, w as u8, json!({})), &rs[w]);
            verb(&env, "DEL", Some(&ctr), &id, &c, ifname).ok();
        }
        assert_eq!(source_rules(&ctr), Vec::<(String, u64)>::new());
        for (w, ifname) in [(2usize, "eth2"), (1, "eth1"), (0, "eth0")] {
            verb(
                &env,
                "DEL",
                Some(&ctr),
                &id,
                &with_prev(&nets[w], &rs[w]),
                ifname,
            )
            .ok();
        }
    }
}

/// A fixed `table`: only the rules, pointing at it; the routes stay.
#[test]
fn fixed_table_adds_rules_only() {
    let env = our_env("sbr-fix");
    let ctr = TestNetns::new("sbr-fix-c");
    let (n0, n1) = (net(&env, "1.1.0", 4, 0), net(&env, "1.1.0", 4, 1));
    let r0 = attach(&env, &ctr, "f1", &n0, "eth0");
    let r1 = attach(&env, &ctr, "f1", &n1, "eth1");
    let routes_before = main_routes_of(&ctr, "eth1");
    let sbr = with_prev(&sbr_conf("1.1.0", 4, 1, json!({"table": 5001})), &r1);
    verb(&env, "ADD", Some(&ctr), "f1", &sbr, "eth1").ok();
    let rules = source_rules(&ctr);
    assert_eq!(
        rules,
        vec![(result_ip(&r1, false), 5001), (result_ip(&r1, true), 5001)]
    );
    assert_eq!(main_routes_of(&ctr, "eth1"), routes_before);
    verb(&env, "CHECK", Some(&ctr), "f1", &sbr, "eth1").ok();
    for bad in [
        json!({"table": -1}),
        json!({"table": 254}),
        json!({"gateways": ["10.245.4.1"]}),
    ] {
        let c = with_prev(&sbr_conf("1.1.0", 4, 1, bad.clone()), &r1);
        let (code, _) = verb(&env, "ADD", Some(&ctr), "f2", &c, "eth1").cni_error();
        assert!(code == 7 || code == 2, "{bad}: {code}");
    }
    verb(&env, "DEL", Some(&ctr), "f1", &sbr, "eth1").ok();
    assert_eq!(source_rules(&ctr), Vec::<(String, u64)>::new());
    for (c, r, ifname) in [(&n1, &r1, "eth1"), (&n0, &r0, "eth0")] {
        verb(&env, "DEL", Some(&ctr), "f1", &with_prev(c, r), ifname).ok();
    }
}

/// The conformance harness, with a fixed table (its container namespaces
/// have no interface whose routes could move) and a prevResult.
#[test]
fn conformance() {
    let env = our_env("sbr-conf");
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "br0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 2, "address": "10.245.9.2/24", "gateway": "10.245.9.1"},
                {"interface": 2, "address": "fd00:cafe:c009::2/64"}]});
    let config = json!({"cniVersion": "", "name": "conformance", "type": "sbr",
                        "table": 5002, "prevResult": prev});
    common::conformance_passes(&env.bin.path().join("sbr"), config);
}

/// The reference bridge with our sbr, and each suite's DEL undoing the
/// other's ADD (the reference release moves routes into one table).
#[test]
fn mixed_with_the_reference() {
    let env = env(
        "sbr-mix",
        &reference_plugin("bridge"),
        &reference_plugin("host-local"),
        &our_plugin("sbr"),
    );
    env.bin.add_plugin("ref-sbr", &reference_plugin("sbr"));
    let ctr = TestNetns::new("sbr-mix-c");
    let (n0, n1) = (net(&env, "1.0.0", 5, 0), net(&env, "1.0.0", 5, 1));
    let r0 = attach(&env, &ctr, "x1", &n0, "eth0");
    let r1 = attach(&env, &ctr, "x1", &n1, "eth1");
    let ours = with_prev(&sbr_conf("1.0.0", 5, 1, json!({})), &r1);
    let mut theirs = ours.clone();
    theirs["type"] = json!("ref-sbr");

    verb(&env, "ADD", Some(&ctr), "x1", &ours, "eth1").ok();
    assert_eq!(source_rules(&ctr).len(), 2);
    verb(&env, "CHECK", Some(&ctr), "x1", &ours, "eth1").ok();
    verb(&env, "DEL", Some(&ctr), "x1", &theirs, "eth1").ok();
    assert_eq!(
        source_rules(&ctr),
        Vec::<(String, u64)>::new(),
        "theirs removed ours"
    );
    verb(&env, "DEL", Some(&ctr), "x1", &ours, "eth1").ok();

    // Put the routes back as the bridge made them, then the other way round.
    let ctr2 = TestNetns::new("sbr-mix-d");
    let s0 = attach(&env, &ctr2, "x2", &n0, "eth0");
    let s1 = attach(&env, &ctr2, "x2", &n1, "eth1");
    let ours = with_prev(&sbr_conf("1.0.0", 5, 1, json!({})), &s1);
    let mut theirs = ours.clone();
    theirs["type"] = json!("ref-sbr");
    verb(&env, "ADD", Some(&ctr2), "x2", &theirs, "eth1").ok();
    assert_eq!(source_rules(&ctr2).len(), 2);
    verb(&env, "DEL", Some(&ctr2), "x2", &ours, "eth1").ok();
    assert_eq!(
        source_rules(&ctr2),
        Vec::<(String, u64)>::new(),
        "ours removed theirs"
    );
    assert_eq!(table_routes(&ctr2, 100), Vec::<Value>::new());
    for (ns, id, rs) in [(&ctr, "x1", [&r0, &r1]), (&ctr2, "x2", [&s0, &s1])] {
        for (c, r, ifname) in [(&n1, rs[1], "eth1"), (&n0, rs[0], "eth0")] {
            verb(&env, "DEL", Some(ns), id, &with_prev(c, r), ifname).ok();
        }
    }
}
