//! The ptp plugin end to end: every test has its own host namespace,
//! container namespaces and host-local `dataDir`, runs our ptp binary as a
//! runtime does, and checks what the kernel holds afterwards.
//!
//! Needs root, our ptp built (`cargo build -p ptp`) and a host-local: ours
//! when built, else the reference one in /usr/lib/cni. The 1.1.0 tests (GC,
//! STATUS) need ours.

mod common;

use cni_tests::{
    default_host_local, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const NET: &str = "ptpnet";
const PING_WITHIN: Duration = Duration::from_secs(5);

fn env(tag: &str) -> PluginEnv {
    env_with(tag, &default_host_local())
}

fn env_with(tag: &str, host_local: &Path) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[("ptp", &our_plugin("ptp")), ("host-local", host_local)],
    )
}

fn conf(version: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": NET, "type": "ptp"}),
        extra,
    )
}

fn ipam(env: &PluginEnv, subnets: &[&str]) -> Value {
    host_local_ipam(&env.data, subnets)
}

fn add_ok(env: &PluginEnv, ctr: &TestNetns, id: &str, c: &Value) -> Value {
    env.add(ctr, id, c).ok().json()
}

fn del_ok(env: &PluginEnv, ctr: Option<&TestNetns>, id: &str, c: &Value) {
    env.verb("DEL", ctr, id, c).ok();
}

fn host_veth(r: &Value) -> String {
    r["interfaces"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host veth in {r}"))
        .to_string()
}

/// Whether `routes` (`ip -j route` objects) holds one to `dst` with the
/// given gateway (`None`: none) on `dev`.
fn has_route(routes: &[Value], dst: &str, gw: Option<&str>, dev: &str) -> bool {
    routes.iter().any(|r| {
        r["dst"] == dst
            && r["dev"] == dev
            && match gw {
                Some(g) => r["gateway"] == g,
                None => r.get("gateway").is_none(),
            }
    })
}

#[test]
fn containers_reach_the_host_end_and_each_other() {
    let env = env("ptp-ping");
    let mut ipam = ipam(&env, &["10.240.40.0/24", "fd00:cafe:28::/64"]);
    ipam["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
    let c = conf("1.0.0", json!({"ipam": ipam}));
    let c1 = TestNetns::new("ptp-ping-c1");
    let c2 = TestNetns::new("ptp-ping-c2");
    let r1 = add_ok(&env, &c1, "c1", &c);
    let r2 = add_ok(&env, &c2, "c2", &c);

    for (r, ctr) in [(&r1, &c1), (&r2, &c2)] {
        // Result: [host veth, container veth], IPs on index 1.
        let ifs = r["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 2, "{r}");
        assert!(ifs[0].get("sandbox").is_none(), "{r}");
        assert_eq!(ifs[1]["name"], "eth0");
        assert_eq!(ifs[1]["sandbox"], ctr.path_str());
        assert_eq!(ifs[1]["mac"], ctr.link("eth0").unwrap()["address"]);
        let ips = r["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 2, "{r}");
        assert!(ips.iter().all(|i| i["interface"] == 1), "{r}");

        // Host end: the gateways as /32 and /128, a host route to each
        // container address through it.
        let veth = host_veth(r);
        assert_eq!(
            env.host.addrs(&veth),
            vec![
                "10.240.40.1/32".to_string(),
                "fd00:cafe:28::1/128".to_string()
            ]
        );
        let (v4, v6) = (result_ip(r, false), result_ip(r, true));
        assert!(
            has_route(&env.host.routes("-4"), &v4, None, &veth),
            "{:?}",
            env.host.routes("-4")
        );
        assert!(
            has_route(&env.host.routes("-6"), &v6, None, &veth),
            "{:?}",
            env.host.routes("-6")
        );

        // Container: the gateway on the link, the subnet and IPAM's routes
        // via the gateway, no on-link subnet route.
        let routes4 = ctr.routes("-4");
        assert!(
            has_route(&routes4, "10.240.40.1", None, "eth0"),
            "{routes4:?}"
        );
        assert!(
            has_route(&routes4, "10.240.40.0/24", Some("10.240.40.1"), "eth0"),
            "{routes4:?}"
        );
        assert!(
            !has_route(&routes4, "10.240.40.0/24", None, "eth0"),
            "{routes4:?}"
        );
        assert!(
            has_route(&routes4, "default", Some("10.240.40.1"), "eth0"),
            "{routes4:?}"
        );
        let routes6 = ctr.routes("-6");
        assert!(
            has_route(
                &routes6,
                "fd00:cafe:28::/64",
                Some("fd00:cafe:28::1"),
                "eth0"
            ),
            "{routes6:?}"
        );
        assert!(
            has_route(&routes6, "default", Some("fd00:cafe:28::1"), "eth0"),
            "{routes6:?}"
        );
    }
    assert_eq!(env.host.sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(env.host.sysctl("net/ipv6/conf/all/forwarding"), "1");

    for gw in ["10.240.40.1", "fd00:cafe:28::1"] {
        assert!(c1.ping_within(gw, PING_WITHIN), "c1 -> host end {gw}");
    }
    for v6 in [false, true] {
        assert!(
            c1.ping_within(&result_ip(&r2, v6), PING_WITHIN),
            "c1 -> c2 via the host (v6: {v6})"
        );
        assert!(
            env.host.ping_within(&result_ip(&r1, v6), PING_WITHIN),
            "host -> c1 (v6: {v6})"
        );
    }

    for (r, ctr, id) in [(&r1, &c1, "c1"), (&r2, &c2, "c2")] {
        env.verb("CHECK", Some(ctr), id, &with_prev(&c, r)).ok();
    }
    let veth1 = host_veth(&r1);
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    assert!(env.host.link(&veth1).is_none());
    assert!(!has_route(
        &env.host.routes("-4"),
        &result_ip(&r1, false),
        None,
        &veth1
    ));
    // c2 still works.
    assert!(c2.ping_within("10.240.40.1", PING_WITHIN));
    del_ok(&env, Some(&c2), "c2", &with_prev(&c, &r2));
    assert!(c2.link("eth0").is_none());
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
}

#[test]
fn mtu_is_set_on_both_ends() {
    let env = env("ptp-mtu");
    let c = conf(
        "1.0.0",
        json!({"mtu": 1380, "ipam": ipam(&env, &["10.240.41.0/24"])}),
    );
    let ctr = TestNetns::new("ptp-mtu-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(env.host.link(&host_veth(&r)).unwrap()["mtu"], 1380);
    assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1380);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn ip_masq_rules_come_and_go_with_both_backends() {
    let env = env("ptp-masq");
    let ctr = TestNetns::new("ptp-masq-c");
    for backend in ["nftables", "iptables"] {
        let c = conf(
            "1.0.0",
            json!({"ipMasq": true, "ipMasqBackend": backend,
                   "ipam": ipam(&env, &["10.240.42.0/24"])}),
        );
        let r = add_ok(&env, &ctr, "c1", &c);
        let ip = result_ip(&r, false);
        let chain = cni_support::ipmasq::iptables_chain(NET, "c1");
        let present = || {
            if backend == "nftables" {
                env.host.masq_rules().contains(&format!("\"{ip}\""))
            } else {
                let rules = env.host.exec(&["iptables", "-t", "nat", "-S"]).ok().stdout;
                rules.contains(&format!("-A POSTROUTING -s {ip}/32 ")) && rules.contains(&chain)
            }
        };
        assert!(present(), "{backend}: rules after ADD");
        env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r)).ok();
        del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
        assert!(!present(), "{backend}: rules gone after DEL");
    }
}

#[test]
fn ipam_is_required() {
    let env = env("ptp-noipam");
    let ctr = TestNetns::new("ptp-noipam-c");
    let links = env.host.link_names();
    let msg = env.add(&ctr, "c1", &conf("1.0.0", json!({}))).error_with(7);
    assert!(msg.contains("ipam"), "{msg}");
    assert_eq!(env.host.link_names(), links);
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    // The DEL that follows a failed ADD succeeds.
    del_ok(&env, Some(&ctr), "c1", &conf("1.0.0", json!({})));
}

#[test]
fn dns_from_the_config_overrides_ipam() {
    let env = env("ptp-dns");
    let resolv = env.data.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.240.43.53\n").unwrap();
    let mut ipam = ipam(&env, &["10.240.43.0/24"]);
    ipam["resolvConf"] = json!(resolv.display().to_string());
    let ctr = TestNetns::new("ptp-dns-c");
    let c = conf("1.0.0", json!({"ipam": ipam}));
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(r["dns"]["nameservers"], json!(["10.240.43.53"]), "{r}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    let dns = json!({"nameservers": ["10.240.43.1"], "search": ["ptp.example"]});
    let c = conf("1.0.0", json!({"ipam": ipam, "dns": dns}));
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(r["dns"], dns, "{r}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn check_fails_when_state_is_removed_behind_its_back() {
    let env = env("ptp-check");
    let c = conf(
        "1.0.0",
        json!({"ipam": ipam(&env, &["10.240.44.0/24", "fd00:cafe:2c::/64"])}),
    );
    let ctr = TestNetns::new("ptp-check-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    let check = |r: &Value| env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, r));
    check(&r).ok();
    let veth = host_veth(&r);
    let ip = result_ip(&r, false);

    // The host route to the container.
    env.host
        .exec(&["ip", "route", "del", &format!("{ip}/32"), "dev", &veth])
        .ok();
    let msg = check(&r).cni_error().1;
    assert!(msg.contains("route") && msg.contains(&ip), "{msg}");
    env.host
        .exec(&[
            "ip",
            "route",
            "add",
            &format!("{ip}/32"),
            "dev",
            &veth,
            "scope",
            "link",
        ])
        .ok();
    check(&r).ok();

    // The gateway address on the host end.
    env.host
        .exec(&["ip", "addr", "del", "fd00:cafe:2c::1/128", "dev", &veth])
        .ok();
    let msg = check(&r).cni_error().1;
    assert!(msg.contains("fd00:cafe:2c::1"), "{msg}");
    env.host
        .exec(&["ip", "addr", "add", "fd00:cafe:2c::1/128", "dev", &veth])
        .ok();
    check(&r).ok();

    // The container's address.
    ctr.exec(&["ip", "addr", "del", &format!("{ip}/24"), "dev", "eth0"])
        .ok();
    let msg = check(&r).cni_error().1;
    assert!(msg.contains("address") && msg.contains(&ip), "{msg}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    // The link.
    let r = add_ok(&env, &ctr, "c1", &c);
    ctr.exec(&["ip", "link", "del", "eth0"]).ok();
    let msg = check(&r).cni_error().1;
    assert!(msg.contains("eth0") && msg.contains("missing"), "{msg}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn del_is_repeatable_and_works_without_netns_or_prev_result() {
    let env = env("ptp-del");
    let c = conf(
        "1.0.0",
        json!({"ipMasq": true, "ipam": ipam(&env, &["10.240.45.0/24", "fd00:cafe:2d::/64"])}),
    );
    let ctr = TestNetns::new("ptp-del-c");

    let r = add_ok(&env, &ctr, "c1", &c);
    let veth = host_veth(&r);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
    assert!(env.host.link(&veth).is_none());
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    // Without prevResult: the masquerade rule goes too.
    let r = add_ok(&env, &ctr, "c2", &c);
    let ip = result_ip(&r, false);
    del_ok(&env, Some(&ctr), "c2", &c);
    assert!(ctr.link("eth0").is_none());
    assert!(!env.host.masq_rules().contains(&format!("\"{ip}\"")));
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());

    // The namespace is gone (deleted, or unmounted with its file left).
    for r in env.del_after_namespace_is_gone(NET, &c) {
        assert!(!env
            .host
            .masq_rules()
            .contains(&format!("\"{}\"", result_ip(&r, false))));
    }

    // No CNI_NETNS.
    let r = add_ok(&env, &ctr, "c4", &c);
    env.call("ptp", "DEL", &with_prev(&c, &r))
        .container("c4")
        .without("CNI_NETNS")
        .run_in(&env.host)
        .ok();
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    del_ok(&env, Some(&ctr), "c4", &with_prev(&c, &r));
}

#[test]
fn a_failed_add_leaves_host_and_ipam_as_they_were() {
    let env = env("ptp-rollback");
    let c = conf(
        "1.0.0",
        json!({"ipMasq": true, "ipam": ipam(&env, &["10.240.46.0/30"])}),
    );
    let snapshot = |env: &PluginEnv| {
        (
            env.host.link_names(),
            env.data.listing(NET),
            env.host.routes("-4"),
            env.host.masq_rules(),
        )
    };

    // The container already has an eth0: found before IPAM runs, so IPAM
    // is never called (host-local does not even make its directory).
    let c0 = TestNetns::new("ptp-rb-c0");
    c0.exec(&[
        "ip",
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ])
    .ok();
    let before = snapshot(&env);
    let out = env.add(&c0, "c0", &c);
    assert!(out.cni_error().1.contains("eth0"), "{}", out.stdout);
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    let after = snapshot(&env);
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1, "IPAM never ran");
    assert_eq!(after.2, before.2);
    assert_eq!(after.3, before.3);

    // A failure after IPAM and the veth: a route IPAM hands out cannot be
    // added (its gateway is off-link).
    let before = snapshot(&env);
    let mut bad = c.clone();
    bad["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "10.240.250.1"}]);
    let c0b = TestNetns::new("ptp-rb-c0b");
    let msg = env.add(&c0b, "c0b", &bad).cni_error().1;
    assert!(msg.contains("192.0.2.0/24"), "{msg}");
    // host-local's first run leaves its lock and last-reserved files.
    let after = snapshot(&env);
    assert_eq!(
        (&after.0, &after.2, &after.3),
        (&before.0, &before.2, &before.3)
    );
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    assert_eq!(c0b.link_names(), vec!["lo".to_string()]);

    // IPAM exhausted (a /30 has one address besides the gateway).
    let c1 = TestNetns::new("ptp-rb-c1");
    let r1 = add_ok(&env, &c1, "c1", &c);
    let before = snapshot(&env);
    let c2 = TestNetns::new("ptp-rb-c2");
    let out = env.add(&c2, "c2", &c);
    assert!(
        out.cni_error().1.contains("no IP addresses available"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(&env), before);
    assert_eq!(c2.link_names(), vec!["lo".to_string()]);

    env.verb("CHECK", Some(&c1), "c1", &with_prev(&c, &r1)).ok();
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
}

#[test]
fn results_parse_as_every_spec_version() {
    let env = env("ptp-versions");
    if cni_tests::our_host_local().is_none() {
        require_our_host_local("ptp at cniVersion 1.1.0 (the reference host-local stops at 1.0.0)");
    }
    env.lifecycle_in_every_version(
        NET,
        |version| {
            conf(
                version,
                json!({"ipam": ipam(&env, &["10.240.47.0/24", "fd00:cafe:2f::/64"])}),
            )
        },
        2,
        1,
    );
}

#[test]
fn gc_removes_what_invalid_attachments_left_and_status_is_ok() {
    let hl = require_our_host_local("GC and STATUS (CNI 1.1.0)");
    let env = env_with("ptp-gc", &hl);
    let c = conf(
        "1.1.0",
        json!({"ipMasq": true, "ipam": ipam(&env, &["10.240.48.0/24"])}),
    );
    env.gc_keeps_only_valid_attachments(NET, &c);
}

#[test]
fn conformance_harness_passes() {
    let env = env("ptp-conf");
    let config = json!({
        "cniVersion": "",
        "name": "conformance",
        "type": "ptp",
        "ipMasq": true,
        "ipam": ipam(&env, &["10.240.49.0/24", "fd00:cafe:31::/64"]),
    });
    common::conformance_passes(&env.bin.path().join("ptp"), config);
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}
