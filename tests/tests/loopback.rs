//! The loopback plugin in real namespaces, under every spec version.

use cni_tests::{our_plugin, Call, RunCall, TestNetns};

fn conf(version: &str) -> String {
    format!(r#"{{"cniVersion":"{version}","name":"lonet","type":"loopback"}}"#)
}

fn lo_up(ns: &TestNetns) -> bool {
    let links = ns.ip_json(&["link", "show", "lo"]);
    links[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP")
}

#[test]
fn add_check_del_in_every_version() {
    let host = TestNetns::new("lo-host");
    for version in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ] {
        let ctr = TestNetns::new("lo-ctr");
        let lo = our_plugin("loopback");
        // A fresh namespace's lo is down until the plugin runs.
        ctr.exec(&["ip", "link", "set", "lo", "down"]);
        assert!(!lo_up(&ctr));
        let out = Call::new(&lo, "ADD", &conf(version))
            .netns(&ctr.path_str())
            .ifname("lo")
            .run_in(&host)
            .ok();
        let result = out.json();
        assert_eq!(result["cniVersion"], version);
        let parsed = cni::CniResult::from_value(&result, cni::Version::V0_1_0).unwrap();
        assert!(
            parsed
                .ips
                .iter()
                .any(|ip| ip.address.to_string() == "127.0.0.1/8"),
            "{version}: {result}"
        );
        if version >= "0.3.0" {
            assert_eq!(result["interfaces"][0]["name"], "lo");
            assert_eq!(result["interfaces"][0]["sandbox"], ctr.path_str());
        } else {
            assert_eq!(result["ip4"]["ip"], "127.0.0.1/8");
        }
        assert!(lo_up(&ctr), "{version}: lo is up after ADD");

        if version >= "0.4.0" {
            let mut check = Call::new(&lo, "CHECK", &conf(version)).netns(&ctr.path_str());
            check.config = with_prev(&conf(version), &result);
            check.run_in(&host).ok();
        }

        Call::new(&lo, "DEL", &conf(version))
            .netns(&ctr.path_str())
            .run_in(&host)
            .ok();
        assert!(!lo_up(&ctr), "{version}: lo is down after DEL");
        // DEL again succeeds.
        Call::new(&lo, "DEL", &conf(version))
            .netns(&ctr.path_str())
            .run_in(&host)
            .ok();
    }
}

fn with_prev(conf: &str, prev: &serde_json::Value) -> String {
    let mut c: serde_json::Value = serde_json::from_str(conf).unwrap();
    c["prevResult"] = prev.clone();
    c.to_string()
}

#[test]
fn chained_add_passes_prev_result_through() {
    let host = TestNetns::new("lo-host");
    let ctr = TestNetns::new("lo-ctr");
    let prev = serde_json::json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": ctr.path_str()}],
        "ips": [{"address": "10.99.0.2/24", "interface": 0}],
        "dns": {}
    });
    let mut add = Call::new(our_plugin("loopback"), "ADD", "").netns(&ctr.path_str());
    add.config = with_prev(&conf("1.0.0"), &prev);
    let out = add.run_in(&host).ok().json();
    assert_eq!(out, prev);
    assert!(lo_up(&ctr));
}

#[test]
fn check_fails_when_lo_is_down() {
    let host = TestNetns::new("lo-host");
    let ctr = TestNetns::new("lo-ctr");
    let lo = our_plugin("loopback");
    Call::new(&lo, "ADD", &conf("1.0.0"))
        .netns(&ctr.path_str())
        .run_in(&host)
        .ok();
    ctr.exec(&["ip", "link", "set", "lo", "down"]);
    let out = Call::new(&lo, "CHECK", &conf("1.0.0"))
        .netns(&ctr.path_str())
        .run_in(&host);
    assert_eq!(out.status, 1);
    assert!(
        out.json()["msg"].as_str().unwrap().contains("down"),
        "{}",
        out.stdout
    );
}

#[test]
fn add_refuses_non_loopback_address_on_lo() {
    let host = TestNetns::new("lo-host");
    let ctr = TestNetns::new("lo-ctr");
    ctr.exec(&["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
    let out = Call::new(our_plugin("loopback"), "ADD", &conf("1.0.0"))
        .netns(&ctr.path_str())
        .run_in(&host);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(out.stdout.contains("192.0.2.1"), "{}", out.stdout);
}

#[test]
fn del_succeeds_when_namespace_is_gone_or_unset() {
    let host = TestNetns::new("lo-host");
    let path = {
        let ctr = TestNetns::new("lo-ctr");
        ctr.path_str()
    }; // dropped: the namespace is deleted
    let lo = our_plugin("loopback");
    Call::new(&lo, "DEL", &conf("1.0.0"))
        .netns(&path)
        .run_in(&host)
        .ok();
    Call::new(&lo, "DEL", &conf("1.0.0"))
        .without("CNI_NETNS")
        .run_in(&host)
        .ok();
}

#[test]
fn add_with_a_path_that_is_not_a_namespace_is_code_4() {
    let host = TestNetns::new("lo-host");
    let out = Call::new(our_plugin("loopback"), "ADD", &conf("1.0.0"))
        .netns("/proc/self/status")
        .run_in(&host);
    assert_eq!(out.error_code(), Some(4), "{}", out.stdout);
    assert!(out.stdout.contains("not a network namespace"));
    let out = Call::new(our_plugin("loopback"), "ADD", &conf("1.0.0"))
        .netns("/run/netns/definitely-not-there")
        .run_in(&host);
    assert_eq!(out.error_code(), Some(4), "{}", out.stdout);
    assert!(out.stdout.contains("does not exist"));
}
