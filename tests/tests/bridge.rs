//! The bridge plugin end to end: every test has its own host namespace,
//! container namespaces and host-local `dataDir`, runs our bridge binary as
//! a runtime does, and checks what the kernel holds afterwards.
//!
//! Needs root, our bridge built (`cargo build -p bridge`) and a host-local:
//! ours when built (`cargo build -p host-local`), else the reference one in
//! /usr/lib/cni. The 1.1.0 tests (GC, STATUS) need ours.

mod common;

use cni_tests::{
    default_host_local, host_local_ipam, merge, our_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const NET: &str = "brnet";
const BR: &str = "cbr0";
/// Generous: IPv6 neighbours and the gateway's DAD take a moment.
const PING_WITHIN: Duration = Duration::from_secs(5);

fn env(tag: &str) -> PluginEnv {
    env_with(tag, &default_host_local())
}

fn env_with(tag: &str, host_local: &Path) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            ("host-local", host_local),
        ],
    )
}

/// A bridge config at `version` on bridge `cbr0` with `extra` keys merged in.
fn conf(version: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": version, "name": NET, "type": "bridge", "bridge": BR}),
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

#[test]
fn two_containers_ping_each_other_and_the_gateway() {
    let env = env("br-ping");
    let c = conf(
        "1.0.0",
        json!({"isGateway": true, "ipam": ipam(&env, &["10.240.1.0/24", "fd00:cafe:1::/64"])}),
    );
    let c1 = TestNetns::new("br-ping-c1");
    let c2 = TestNetns::new("br-ping-c2");
    let r1 = add_ok(&env, &c1, "c1", &c);
    let r2 = add_ok(&env, &c2, "c2", &c);

    // Result: [bridge, host veth, container veth], IPs on index 2.
    for (r, ctr) in [(&r1, &c1), (&r2, &c2)] {
        let ifs = r["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 3, "{r}");
        assert_eq!(ifs[0]["name"], BR);
        assert!(ifs[0].get("sandbox").is_none(), "{r}");
        let veth = ifs[1]["name"].as_str().expect("host veth name");
        assert!(ifs[1].get("sandbox").is_none(), "{r}");
        assert_eq!(ifs[2]["name"], "eth0");
        assert_eq!(ifs[2]["sandbox"], ctr.path_str());
        let host_veth = env.host.link(veth).expect("host veth exists");
        assert_eq!(host_veth["master"], BR, "{host_veth}");
        assert_eq!(
            ifs[2]["mac"],
            ctr.link("eth0").expect("eth0 in container")["address"]
        );
        assert_eq!(ifs[0]["mac"], env.host.link(BR).expect("bridge")["address"]);
        let ips = r["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 2, "{r}");
        for ip in ips {
            assert_eq!(ip["interface"], 2, "{r}");
        }
        let mut want: Vec<String> = ips
            .iter()
            .map(|i| i["address"].as_str().unwrap_or_default().to_string())
            .collect();
        want.sort();
        assert_eq!(ctr.addrs("eth0"), want);
    }
    assert_eq!(result_ip(&r1, false), "10.240.1.2");

    // isGateway: the gateways live on the bridge, forwarding is on.
    assert_eq!(
        env.host.addrs(BR),
        vec!["10.240.1.1/24".to_string(), "fd00:cafe:1::1/64".to_string()]
    );
    assert_eq!(env.host.sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(env.host.sysctl("net/ipv6/conf/all/forwarding"), "1");
    assert_eq!(r1["ips"][0]["gateway"], "10.240.1.1");

    for v6 in [false, true] {
        assert!(
            c1.ping_within(&result_ip(&r2, v6), PING_WITHIN),
            "c1 -> c2 (v6: {v6})"
        );
        assert!(
            c2.ping_within(&result_ip(&r1, v6), PING_WITHIN),
            "c2 -> c1 (v6: {v6})"
        );
    }
    assert!(c1.ping_within("10.240.1.1", PING_WITHIN), "c1 -> gateway");
    assert!(
        c2.ping_within("fd00:cafe:1::1", PING_WITHIN),
        "c2 -> v6 gateway"
    );

    // CHECK passes on both.
    for (r, ctr, id) in [(&r1, &c1, "c1"), (&r2, &c2, "c2")] {
        env.verb("CHECK", Some(ctr), id, &with_prev(&c, r)).ok();
    }

    let veth1 = r1["interfaces"][1]["name"].as_str().unwrap().to_string();
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    del_ok(&env, Some(&c2), "c2", &with_prev(&c, &r2));
    assert!(c1.link("eth0").is_none());
    assert!(env.host.link(&veth1).is_none(), "host veth gone with DEL");
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
}

#[test]
fn bridge_name_defaults_to_cni0() {
    let env = env("br-cni0");
    let mut c = conf("1.0.0", json!({"ipam": ipam(&env, &["10.240.2.0/24"])}));
    c.as_object_mut().unwrap().remove("bridge");
    let ctr = TestNetns::new("br-cni0-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(r["interfaces"][0]["name"], "cni0");
    let br = env
        .host
        .link("cni0")
        .expect("cni0 made in the host namespace");
    assert_eq!(br["linkinfo"]["info_kind"], "bridge", "{br}");
    assert!(env.host.link_has_flag("cni0", "UP"));
    // Not a gateway: no address on the bridge.
    assert!(env.host.addrs("cni0").is_empty());
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn an_existing_link_that_is_not_a_bridge_is_an_error() {
    let env = env("br-notbr");
    env.host
        .exec(&[
            "ip",
            "link",
            "add",
            BR,
            "type",
            "veth",
            "peer",
            "name",
            "cbr0-peer",
        ])
        .ok();
    let c = conf("1.0.0", json!({"ipam": ipam(&env, &["10.240.3.0/24"])}));
    let ctr = TestNetns::new("br-notbr-c");
    let links = env.host.link_names();
    let out = env.add(&ctr, "c1", &c);
    let msg = out.cni_error().1;
    assert!(msg.contains(BR) && msg.contains("not a bridge"), "{msg}");
    // Nothing was left behind.
    assert_eq!(env.host.link_names(), links);
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    del_ok(&env, Some(&ctr), "c1", &c);
    assert!(
        env.host.link(BR).is_some(),
        "DEL leaves a link it did not make"
    );
}

#[test]
fn mtu_is_set_on_bridge_and_both_veth_ends() {
    let env = env("br-mtu");
    let c = conf(
        "1.0.0",
        json!({"mtu": 1400, "ipam": ipam(&env, &["10.240.4.0/24"])}),
    );
    let ctr = TestNetns::new("br-mtu-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(env.host.link(BR).unwrap()["mtu"], 1400);
    assert_eq!(env.host.link(veth).unwrap()["mtu"], 1400);
    assert_eq!(ctr.link("eth0").unwrap()["mtu"], 1400);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn is_default_gateway_adds_default_routes_and_the_gateway() {
    let env = env("br-defgw");
    let c = conf(
        "1.0.0",
        json!({"isDefaultGateway": true,
               "ipam": ipam(&env, &["10.240.5.0/24", "fd00:cafe:5::/64"])}),
    );
    let ctr = TestNetns::new("br-defgw-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    let v4 = ctr.routes("-4");
    assert!(
        v4.iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "10.240.5.1" && r["dev"] == "eth0"),
        "{v4:?}"
    );
    let v6 = ctr.routes("-6");
    assert!(
        v6.iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "fd00:cafe:5::1"),
        "{v6:?}"
    );
    let routes = r["routes"].as_array().expect("routes in result");
    assert!(routes.iter().any(|x| x["dst"] == "0.0.0.0/0"), "{r}");
    assert!(routes.iter().any(|x| x["dst"] == "::/0"), "{r}");
    // Implies isGateway.
    assert_eq!(
        env.host.addrs(BR),
        vec!["10.240.5.1/24".to_string(), "fd00:cafe:5::1/64".to_string()]
    );
    assert_eq!(env.host.sysctl("net/ipv4/ip_forward"), "1");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn force_address_replaces_a_different_bridge_address_and_rolls_back_without() {
    let env = env("br-force");
    env.host
        .exec(&["ip", "link", "add", BR, "type", "bridge"])
        .ok();
    env.host
        .exec(&["ip", "addr", "add", "10.240.99.1/24", "dev", BR])
        .ok();
    let ipam = ipam(&env, &["10.240.6.0/24"]);

    // Without forceAddress: an error after IPAM ran, and a full rollback.
    let c = conf("1.0.0", json!({"isGateway": true, "ipam": ipam}));
    let ctr = TestNetns::new("br-force-c");
    let links = env.host.link_names();
    let out = env.add(&ctr, "c1", &c);
    let msg = out.cni_error().1;
    assert!(msg.contains("10.240.6.1"), "{msg}");
    assert_eq!(env.host.link_names(), links, "host veth removed");
    assert_eq!(ctr.link_names(), vec!["lo".to_string()]);
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    assert_eq!(env.host.addrs(BR), vec!["10.240.99.1/24".to_string()]);
    del_ok(&env, Some(&ctr), "c1", &c);

    // With it: the old address is replaced by the gateway.
    let c = conf(
        "1.0.0",
        json!({"isGateway": true, "forceAddress": true, "ipam": ipam}),
    );
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(env.host.addrs(BR), vec!["10.240.6.1/24".to_string()]);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn hairpin_mode_turns_hairpin_on_the_port() {
    let env = env("br-hairpin");
    let ctr = TestNetns::new("br-hairpin-c");
    for (hairpin, id) in [(true, "c1"), (false, "c2")] {
        let c = conf(
            "1.0.0",
            json!({"hairpinMode": hairpin, "ipam": ipam(&env, &["10.240.7.0/24"])}),
        );
        let r = add_ok(&env, &ctr, id, &c);
        let veth = r["interfaces"][1]["name"].as_str().unwrap();
        let port = env.host.netlink().link_by_name(veth).expect("host veth");
        assert_eq!(port.hairpin(), Some(hairpin), "{veth}");
        del_ok(&env, Some(&ctr), id, &with_prev(&c, &r));
    }
}

#[test]
fn promisc_mode_sets_the_bridge_promiscuous() {
    let env = env("br-promisc");
    let c = conf(
        "1.0.0",
        json!({"promiscMode": true, "ipam": ipam(&env, &["10.240.8.0/24"])}),
    );
    let ctr = TestNetns::new("br-promisc-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    assert!(
        env.host.link_has_flag(BR, "PROMISC"),
        "{:?}",
        env.host.link(BR)
    );
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn hairpin_with_promisc_is_code_7() {
    let env = env("br-hp-pr");
    let c = conf(
        "1.0.0",
        json!({"promiscMode": true, "hairpinMode": true, "ipam": ipam(&env, &["10.240.9.0/24"])}),
    );
    let ctr = TestNetns::new("br-hp-pr-c");
    let links = env.host.link_names();
    let msg = env.add(&ctr, "c1", &c).error_with(7);
    assert!(
        msg.contains("hairpinMode") && msg.contains("promiscMode"),
        "{msg}"
    );
    assert_eq!(env.host.link_names(), links);
    // The DEL that follows a failed ADD succeeds.
    del_ok(&env, Some(&ctr), "c1", &c);
}

#[test]
fn enabledad_decides_accept_dad_in_the_container() {
    let env = env("br-dad");
    for (dad, id) in [(false, "c1"), (true, "c2")] {
        let ctr = TestNetns::new("br-dad-c");
        let c = conf(
            "1.0.0",
            json!({"enabledad": dad, "ipam": ipam(&env, &["10.240.10.0/24", "fd00:cafe:a::/64"])}),
        );
        let r = add_ok(&env, &ctr, id, &c);
        let accept_dad = ctr.sysctl("net/ipv6/conf/eth0/accept_dad");
        if dad {
            assert_ne!(accept_dad, "0", "enabledad: DAD stays on");
        } else {
            assert_eq!(accept_dad, "0", "DAD off by default");
        }
        assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_notify"), "1");
        // Either way the address is usable (not tentative) when ADD returns.
        let v6 = ctr.ip_json(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
        let info = v6[0]["addr_info"][0]
            .as_object()
            .unwrap_or_else(|| panic!("eth0 has no global IPv6 address: {v6}"));
        assert_eq!(info["local"], result_ip(&r, true), "{v6}");
        assert!(info.get("tentative").is_none(), "{v6}");
        del_ok(&env, Some(&ctr), id, &with_prev(&c, &r));
    }
}

#[test]
fn macspoofchk_installs_rules_that_drop_a_spoofed_source() {
    let env = env("br-spoof");
    let c = conf(
        "1.0.0",
        json!({"macspoofchk": true, "ipam": ipam(&env, &["10.240.11.0/24"])}),
    );
    let c1 = TestNetns::new("br-spoof-c1");
    let c2 = TestNetns::new("br-spoof-c2");
    let r1 = add_ok(&env, &c1, "c1", &c);
    let r2 = add_ok(&env, &c2, "c2", &c);
    let mac1 = r1["interfaces"][2]["mac"].as_str().unwrap().to_string();
    let rules = env
        .host
        .nft_chain("bridge", "nat", "cni-br-iface-c1-eth0-mac");
    assert!(rules.contains(&mac1), "{rules}");
    assert!(rules.contains("drop"), "{rules}");
    let prerouting = env.host.nft_chain("bridge", "nat", "PREROUTING");
    let veth1 = r1["interfaces"][1]["name"].as_str().unwrap();
    assert!(prerouting.contains(veth1), "{prerouting}");

    let ip2 = result_ip(&r2, false);
    assert!(
        c1.ping_within(&ip2, PING_WITHIN),
        "with its own MAC c1 gets through"
    );
    c1.exec(&["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"])
        .ok();
    c1.exec(&["ip", "neigh", "flush", "dev", "eth0"]).ok();
    c2.exec(&["ip", "neigh", "flush", "dev", "eth0"]).ok();
    assert!(!c1.ping(&ip2), "a spoofed source MAC is dropped");
    c1.exec(&["ip", "link", "set", "eth0", "address", &mac1])
        .ok();
    assert!(c1.ping_within(&ip2, PING_WITHIN), "back to its own MAC");

    env.verb("CHECK", Some(&c1), "c1", &with_prev(&c, &r1)).ok();
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    assert_eq!(
        env.host
            .nft_chain("bridge", "nat", "cni-br-iface-c1-eth0-mac"),
        ""
    );
    assert!(!env
        .host
        .nft_chain("bridge", "nat", "PREROUTING")
        .contains("macspoofchk-c1-eth0"));
    assert!(env
        .host
        .nft_chain("bridge", "nat", "PREROUTING")
        .contains("macspoofchk-c2-eth0"));
    del_ok(&env, Some(&c2), "c2", &with_prev(&c, &r2));
    assert!(!env
        .host
        .nft_chain("bridge", "nat", "PREROUTING")
        .contains("macspoofchk"));
}

#[test]
fn disable_container_interface_leaves_it_down_and_refuses_ipam() {
    let env = env("br-noif");
    let c = conf("1.0.0", json!({"disableContainerInterface": true}));
    let ctr = TestNetns::new("br-noif-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    assert!(ctr.link("eth0").is_some());
    assert!(!ctr.link_has_flag("eth0", "UP"), "{:?}", ctr.link("eth0"));
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    assert!(env.host.link_has_flag(veth, "UP"));
    assert!(r
        .get("ips")
        .is_none_or(|i| i.as_array().is_some_and(Vec::is_empty)));
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
    assert!(ctr.link("eth0").is_none());

    let c = conf(
        "1.0.0",
        json!({"disableContainerInterface": true, "ipam": ipam(&env, &["10.240.12.0/24"])}),
    );
    let msg = env.add(&ctr, "c2", &c).error_with(7);
    assert!(msg.contains("disableContainerInterface"), "{msg}");
    assert!(ctr.link("eth0").is_none());
    del_ok(&env, Some(&ctr), "c2", &c);
}

#[test]
fn port_isolation_isolates_the_port() {
    let env = env("br-iso");
    let c = conf(
        "1.0.0",
        json!({"portIsolation": true, "ipam": ipam(&env, &["10.240.13.0/24"])}),
    );
    let c1 = TestNetns::new("br-iso-c1");
    let c2 = TestNetns::new("br-iso-c2");
    let r1 = add_ok(&env, &c1, "c1", &c);
    let r2 = add_ok(&env, &c2, "c2", &c);
    for r in [&r1, &r2] {
        let veth = r["interfaces"][1]["name"].as_str().unwrap();
        let port = env.host.netlink().link_by_name(veth).expect("host veth");
        assert_eq!(port.isolated(), Some(true), "{veth}");
    }
    // Two isolated ports cannot talk to each other.
    assert!(!c1.ping(&result_ip(&r2, false)));
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    del_ok(&env, Some(&c2), "c2", &with_prev(&c, &r2));
}

#[test]
fn ip_masq_with_nftables_adds_and_removes_rules() {
    let env = env("br-masq-nft");
    for backend in [None, Some("nftables")] {
        let mut extra = json!({"ipMasq": true, "isGateway": true,
                               "ipam": ipam(&env, &["10.240.14.0/24", "fd00:cafe:e::/64"])});
        if let Some(b) = backend {
            extra["ipMasqBackend"] = json!(b);
        }
        let c = conf("1.0.0", extra);
        let ctr = TestNetns::new("br-masq-nft-c");
        let r = add_ok(&env, &ctr, "c1", &c);
        let (v4, v6) = (result_ip(&r, false), result_ip(&r, true));
        let rules = env.host.masq_rules();
        assert!(rules.contains(&format!("\"{v4}\"")), "{backend:?}: {rules}");
        assert!(rules.contains(&format!("\"{v6}\"")), "{backend:?}: {rules}");
        assert!(rules.contains("masquerade"), "{rules}");
        env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r)).ok();

        // CHECK notices rules removed behind its back.
        env.host
            .exec(&[
                "nft",
                "flush",
                "chain",
                "inet",
                "cni_plugins_masquerade",
                "masq_checks",
            ])
            .ok();
        let out = env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r));
        assert_ne!(out.status, 0);
        assert!(out.stdout.contains("ipMasq"), "{}", out.stdout);

        // DEL tolerates the missing rules; a fresh ADD makes them again.
        del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
        let r = add_ok(&env, &ctr, "c1", &c);
        let (v4, v6) = (result_ip(&r, false), result_ip(&r, true));
        assert!(env.host.masq_rules().contains(&format!("\"{v4}\"")));
        del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
        let rules = env.host.masq_rules();
        assert!(!rules.contains(&format!("\"{v4}\"")), "{rules}");
        assert!(!rules.contains(&format!("\"{v6}\"")), "{rules}");
    }
}

#[test]
fn ip_masq_with_iptables_adds_and_removes_rules() {
    let env = env("br-masq-ipt");
    let c = conf(
        "1.0.0",
        json!({"ipMasq": true, "ipMasqBackend": "iptables",
               "ipam": ipam(&env, &["10.240.15.0/24", "fd00:cafe:f::/64"])}),
    );
    let ctr = TestNetns::new("br-masq-ipt-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    let chain = cni_support::ipmasq::iptables_chain(NET, "c1");
    let save = |bin: &str| env.host.exec(&[bin, "-t", "nat", "-S"]).ok().stdout;
    for (bin, ip, multicast) in [
        ("iptables", result_ip(&r, false), "224.0.0.0/4"),
        ("ip6tables", result_ip(&r, true), "ff00::/8"),
    ] {
        let rules = save(bin);
        let prefix = if bin == "iptables" { "32" } else { "128" };
        assert!(
            rules.contains(&format!("-A POSTROUTING -s {ip}/{prefix} ")) && rules.contains(&chain),
            "{bin}: {rules}"
        );
        assert!(
            rules.contains(&format!("-A {chain} ! -d {multicast} "))
                && rules.contains("MASQUERADE"),
            "{bin}: {rules}"
        );
    }
    // Nothing in nftables' own table for this backend.
    assert!(!env.host.masq_rules().contains(&result_ip(&r, false)));
    env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r)).ok();
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
    for bin in ["iptables", "ip6tables"] {
        let rules = save(bin);
        assert!(!rules.contains(&chain), "{bin}: {rules}");
    }

    // A DEL with neither the namespace nor a previous result still removes
    // the rules: they are found by their chain, not by address.
    let gone = TestNetns::new("br-masq-ipt-gone");
    add_ok(&env, &gone, "c2", &c);
    let chain2 = cni_support::ipmasq::iptables_chain(NET, "c2");
    for bin in ["iptables", "ip6tables"] {
        assert!(save(bin).contains(&chain2), "{bin}");
    }
    drop(gone);
    del_ok(&env, None, "c2", &c);
    for bin in ["iptables", "ip6tables"] {
        let rules = save(bin);
        assert!(!rules.contains(&chain2), "{bin}: {rules}");
    }
}

#[test]
fn dns_from_the_config_overrides_ipam() {
    let env = env("br-dns");
    let resolv = env.data.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.240.16.53\nsearch ipam.example\n").unwrap();
    let mut ipam = ipam(&env, &["10.240.16.0/24"]);
    ipam["resolvConf"] = json!(resolv.display().to_string());
    let ctr = TestNetns::new("br-dns-c");

    // IPAM's DNS comes through when the config has none.
    let c = conf("1.0.0", json!({"ipam": ipam}));
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(r["dns"]["nameservers"], json!(["10.240.16.53"]), "{r}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    let dns = json!({"nameservers": ["10.240.16.1"], "domain": "cfg.example",
                     "search": ["cfg.example"], "options": ["ndots:2"]});
    let c = conf("1.0.0", json!({"ipam": ipam, "dns": dns}));
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(r["dns"], dns, "{r}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn mac_comes_from_runtime_config_then_args_then_cni_args() {
    let env = env("br-mac");
    let ipam = ipam(&env, &["10.240.17.0/24"]);
    let (rt, args, cni_args) = (
        "02:00:00:00:17:01",
        "02:00:00:00:17:02",
        "02:00:00:00:17:03",
    );
    let cases = [
        (
            json!({"runtimeConfig": {"mac": rt}, "args": {"cni": {"mac": args}}}),
            rt,
        ),
        (json!({"args": {"cni": {"mac": args}}}), args),
        (json!({}), cni_args),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let mut extra = extra;
        extra["ipam"] = ipam.clone();
        let c = conf("1.0.0", extra);
        let ctr = TestNetns::new("br-mac-c");
        let id = format!("c{i}");
        let out = env
            .call("bridge", "ADD", &c)
            .container(&id)
            .netns(&ctr.path_str())
            .args(&format!("IgnoreUnknown=1;MAC={cni_args}"))
            .run_in(&env.host)
            .ok();
        let r = out.json();
        assert_eq!(ctr.link("eth0").unwrap()["address"], want, "case {i}");
        assert_eq!(r["interfaces"][2]["mac"], want, "case {i}");
        del_ok(&env, Some(&ctr), &id, &with_prev(&c, &r));
    }
}

/// The VLAN keys need bridge VLAN filtering, which this machine's kernel
/// lacks (the guest suite `bridge_vlan` tests them working): here an ADD
/// with one fails cleanly naming the missing feature, leaves nothing, and
/// its DEL succeeds. On a kernel that has the feature the same ADD works.
#[test]
fn vlan_keys_need_bridge_vlan_filtering() {
    let env = env("br-vlan");
    let ctr = TestNetns::new("br-vlan-c");
    let probe = env.host.exec(&[
        "ip",
        "link",
        "add",
        "brvprobe",
        "type",
        "bridge",
        "vlan_filtering",
        "1",
    ]);
    let kernel_has_it = probe.status == 0;
    for (key, value) in [("vlan", json!(100)), ("vlanTrunk", json!([{"id": 5}]))] {
        let mut extra = json!({"ipam": ipam(&env, &["10.240.18.0/24"])});
        extra[key] = value;
        let c = conf("1.0.0", extra);
        let out = env.add(&ctr, "c1", &c);
        if kernel_has_it {
            let r = out.ok().json();
            del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
        } else {
            let msg = out.error_with(100);
            assert!(msg.contains("no bridge VLAN filtering"), "{key}: {msg}");
            assert!(ctr.link("eth0").is_none());
            assert!(
                env.host.link(BR).is_none(),
                "the bridge this ADD made is gone"
            );
            // The runtime still DELs after a failed ADD; that must succeed.
            del_ok(&env, Some(&ctr), "c1", &c);
        }
    }
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
}

#[test]
fn check_fails_when_an_address_a_route_or_the_link_is_removed() {
    let env = env("br-check");
    let c = conf(
        "1.0.0",
        json!({"isDefaultGateway": true, "ipam": ipam(&env, &["10.240.19.0/24", "fd00:cafe:13::/64"])}),
    );
    let ctr = TestNetns::new("br-check-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    let check = || env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r));
    check().ok();

    // A route.
    ctr.exec(&["ip", "-4", "route", "del", "default"]).ok();
    let out = check();
    let msg = out.cni_error().1;
    assert!(msg.contains("route") && msg.contains("0.0.0.0/0"), "{msg}");
    ctr.exec(&["ip", "-4", "route", "add", "default", "via", "10.240.19.1"])
        .ok();
    check().ok();

    // An address.
    ctr.exec(&["ip", "addr", "del", "fd00:cafe:13::2/64", "dev", "eth0"])
        .ok();
    let msg = check().cni_error().1;
    assert!(
        msg.contains("address") && msg.contains("fd00:cafe:13::2"),
        "{msg}"
    );
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    // The link.
    let r = add_ok(&env, &ctr, "c1", &c);
    ctr.exec(&["ip", "link", "del", "eth0"]).ok();
    let msg = env
        .verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r))
        .cni_error()
        .1;
    assert!(msg.contains("eth0") && msg.contains("missing"), "{msg}");
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    // The IPAM reservation (CHECK is forwarded to IPAM).
    let r = add_ok(&env, &ctr, "c1", &c);
    for f in env.data.reservations(NET) {
        std::fs::remove_file(env.data.path().join(NET).join(f)).unwrap();
    }
    let out = env.verb("CHECK", Some(&ctr), "c1", &with_prev(&c, &r));
    assert_ne!(out.status, 0, "{}", out.stdout);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
}

#[test]
fn del_is_repeatable_and_works_without_netns_or_prev_result() {
    let env = env("br-del");
    let c = conf(
        "1.0.0",
        json!({"ipam": ipam(&env, &["10.240.20.0/24", "fd00:cafe:14::/64"])}),
    );

    // Twice, with prevResult.
    let ctr = TestNetns::new("br-del-c");
    let r = add_ok(&env, &ctr, "c1", &c);
    assert_eq!(env.data.reservations(NET).len(), 2);
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));
    assert!(ctr.link("eth0").is_none());
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    del_ok(&env, Some(&ctr), "c1", &with_prev(&c, &r));

    // Without prevResult.
    let r = add_ok(&env, &ctr, "c2", &c);
    let veth = r["interfaces"][1]["name"].as_str().unwrap().to_string();
    del_ok(&env, Some(&ctr), "c2", &c);
    assert!(ctr.link("eth0").is_none());
    assert!(env.host.link(&veth).is_none());
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());

    // After the container namespace is gone (deleted, or unmounted with its
    // file left): IPAM is still released.
    env.del_after_namespace_is_gone(NET, &c);

    // Without CNI_NETNS at all.
    let r = add_ok(&env, &ctr, "c4", &c);
    env.call("bridge", "DEL", &with_prev(&c, &r))
        .container("c4")
        .without("CNI_NETNS")
        .run_in(&env.host)
        .ok();
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    del_ok(&env, Some(&ctr), "c4", &with_prev(&c, &r));
}

#[test]
fn a_failed_add_leaves_host_and_ipam_as_they_were() {
    let env = env("br-rollback");
    // A /30 has one address for containers: .1 is the gateway.
    let c = conf(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "ipam": ipam(&env, &["10.240.21.0/30"])}),
    );
    let snapshot = |env: &PluginEnv| {
        (
            env.host.link_names(),
            env.data.listing(NET),
            env.host.addrs(BR),
            env.host.masq_rules(),
        )
    };
    // One ADD and DEL first: the bridge and host-local's own files exist
    // from then on, as on any host that has run a container.
    let c1 = TestNetns::new("br-rb-c1");
    let r1 = add_ok(&env, &c1, "c1", &c);
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));

    // A failure after IPAM and the veth: a route IPAM hands out cannot be
    // added (its gateway is off-link). Address released, veth removed.
    let before = snapshot(&env);
    let mut bad = c.clone();
    bad["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "10.240.250.1"}]);
    let c0 = TestNetns::new("br-rb-c0");
    let msg = env.add(&c0, "c0", &bad).cni_error().1;
    assert!(msg.contains("192.0.2.0/24"), "{msg}");
    assert_eq!(snapshot(&env), before);
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    assert_eq!(c0.link_names(), vec!["lo".to_string()]);

    // c1 again: it can have the one address, so the release was real.
    let r1 = add_ok(&env, &c1, "c1", &c);
    assert_eq!(result_ip(&r1, false), "10.240.21.2");
    let before = snapshot(&env);

    // IPAM exhausted: the veth made before IPAM is removed again.
    let c2 = TestNetns::new("br-rb-c2");
    let out = env.add(&c2, "c2", &c);
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("no IP addresses available"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(&env), before);
    assert_eq!(c2.link_names(), vec!["lo".to_string()]);
    del_ok(&env, Some(&c2), "c2", &c);

    // The container already has an eth0.
    let c3 = TestNetns::new("br-rb-c3");
    c3.exec(&[
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
    let out = env.add(&c3, "c3", &c);
    assert_ne!(out.status, 0, "{}", out.stdout);
    assert!(out.stdout.contains("eth0"), "{}", out.stdout);
    assert_eq!(snapshot(&env), before);
    assert_eq!(
        c3.link("eth0").unwrap()["linkinfo"]["info_kind"],
        "veth",
        "the container's own eth0 is untouched"
    );

    // And c1 is unharmed by all that.
    env.verb("CHECK", Some(&c1), "c1", &with_prev(&c, &r1)).ok();
    del_ok(&env, Some(&c1), "c1", &with_prev(&c, &r1));
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
}

#[test]
fn results_parse_as_every_spec_version() {
    let env = env("br-versions");
    if cni_tests::our_host_local().is_none() {
        require_our_host_local(
            "bridge at cniVersion 1.1.0 (the reference host-local stops at 1.0.0)",
        );
    }
    env.lifecycle_in_every_version(
        NET,
        |version| conf(version, json!({"isGateway": true, "ipam": ipam(&env, &["10.240.22.0/24", "fd00:cafe:16::/64"])})),
        3,
        2,
    );
}

#[test]
fn gc_removes_what_invalid_attachments_left_and_status_is_ok() {
    let hl = require_our_host_local("GC and STATUS (CNI 1.1.0)");
    let env = env_with("br-gc", &hl);
    let c = conf(
        "1.1.0",
        json!({"ipMasq": true, "ipam": ipam(&env, &["10.240.23.0/24"])}),
    );
    env.gc_keeps_only_valid_attachments(NET, &c);
}

#[test]
fn conformance_harness_passes() {
    let env = env("br-conf");
    let config = json!({
        "cniVersion": "",
        "name": "conformance",
        "type": "bridge",
        "bridge": BR,
        "isGateway": true,
        "ipMasq": true,
        "ipam": ipam(&env, &["10.240.24.0/24", "fd00:cafe:18::/64"]),
    });
    common::conformance_passes(&env.bin.path().join("bridge"), config);
    assert_eq!(env.data.reservations("conformance"), Vec::<String>::new());
}

#[test]
fn parallel_adds_share_one_bridge() {
    let env = env("br-par");
    let c = conf(
        "1.0.0",
        json!({"isGateway": true, "ipMasq": true, "macspoofchk": true,
               "ipam": ipam(&env, &["10.240.25.0/24", "fd00:cafe:19::/64"])}),
    );
    let ctrs: Vec<TestNetns> = (0..4).map(|_| TestNetns::new("br-par-c")).collect();
    // Runtimes ADD containers concurrently; the first ones race to make
    // the bridge, the firewall tables and the gateway address.
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let (env, c) = (&env, &c);
                s.spawn(move || add_ok(env, ctr, &format!("p{i}"), c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ADD thread"))
            .collect()
    });
    let mut v4: Vec<String> = results.iter().map(|r| result_ip(r, false)).collect();
    v4.sort();
    v4.dedup();
    assert_eq!(v4.len(), 4, "distinct addresses: {v4:?}");
    assert_eq!(
        env.host.addrs(BR),
        vec![
            "10.240.25.1/24".to_string(),
            "fd00:cafe:19::1/64".to_string()
        ]
    );
    let rules = env.host.masq_rules();
    for ip in &v4 {
        assert!(rules.contains(&format!("\"{ip}\"")), "{ip}: {rules}");
    }
    assert!(ctrs[0].ping_within(&result_ip(&results[3], true), PING_WITHIN));
    for (i, (ctr, r)) in ctrs.iter().zip(&results).enumerate() {
        let id = format!("p{i}");
        env.verb("CHECK", Some(ctr), &id, &with_prev(&c, r)).ok();
        del_ok(&env, Some(ctr), &id, &with_prev(&c, r));
    }
    assert_eq!(env.data.reservations(NET), Vec::<String>::new());
    assert!(!env.host.masq_rules().contains("10.240.25."));
    assert!(!env
        .host
        .nft_chain("bridge", "nat", "PREROUTING")
        .contains("macspoofchk"));
}
