//! The static binary end to end.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Our static: the suite's executable under that name.
fn bin() -> std::path::PathBuf {
    cni_tests::our_plugin("static")
}

fn run(cmd: &str, args: &str, conf: &str) -> (bool, serde_json::Value) {
    let mut child = Command::new(bin())
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", "c1")
        .env("CNI_NETNS", "/var/run/netns/static-test-unused")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .env("CNI_ARGS", args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn static");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.as_bytes())
        .expect("write config");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "static hung");
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = child.wait_with_output().expect("output");
    let v = if o.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&o.stdout).expect("JSON on stdout")
    };
    (o.status.success(), v)
}

fn conf(version: &str, extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"s","type":"bridge",{extra}
            "ipam":{{"type":"static",
              "addresses":[{{"address":"10.10.0.5/24","gateway":"10.10.0.1"}},{{"address":"fd10::5/64"}}],
              "routes":[{{"dst":"0.0.0.0/0","gw":"10.10.0.1"}}],
              "dns":{{"nameservers":["10.10.0.53"],"search":["example"]}}}}}}"#
    )
}

#[test]
fn add_returns_the_configuration() {
    let (ok, j) = run("ADD", "", &conf("1.0.0", ""));
    assert!(ok, "{j}");
    assert_eq!(
        j["ips"][0],
        serde_json::json!({"address":"10.10.0.5/24","gateway":"10.10.0.1"})
    );
    assert_eq!(j["ips"][1], serde_json::json!({"address":"fd10::5/64"}));
    assert_eq!(j["routes"][0]["gw"], "10.10.0.1");
    assert_eq!(j["dns"]["nameservers"][0], "10.10.0.53");
    // DEL, GC and STATUS have nothing to do.
    assert!(run("DEL", "", &conf("1.0.0", "")).0);
    assert!(run("GC", "", &conf("1.1.0", "")).0);
    assert!(run("STATUS", "", &conf("1.1.0", "")).0);
}

#[test]
fn cni_args_add_addresses_and_gateways() {
    let (ok, j) = run(
        "ADD",
        "IP=10.20.0.7/16,fd20::7/64;GATEWAY=10.20.0.1",
        &conf("1.0.0", ""),
    );
    assert!(ok, "{j}");
    let ips = j["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 4);
    assert_eq!(
        ips[2],
        serde_json::json!({"address":"10.20.0.7/16","gateway":"10.20.0.1"})
    );
    assert_eq!(ips[3]["address"], "fd20::7/64");
    // GATEWAY reaches only CNI_ARGS addresses, never configured ones (as
    // the reference): 10.10.0.5/24 keeps its configured gateway.
    let (ok, j) = run(
        "ADD",
        "IP=10.10.0.8/24;GATEWAY=10.10.0.254",
        &conf("1.0.0", ""),
    );
    assert!(ok, "{j}");
    assert_eq!(j["ips"][0]["gateway"], "10.10.0.1");
    assert_eq!(j["ips"][2]["gateway"], "10.10.0.254");
    // "ips": null is no list, as Go decodes it.
    let (ok, j) = run("ADD", "", &conf("1.0.0", r#""args":{"cni":{"ips":null}},"#));
    assert!(ok, "{j}");
    assert_eq!(j["ips"][0]["address"], "10.10.0.5/24");
    let (ok, j) = run("ADD", "IP=10.20.0.7", &conf("1.0.0", ""));
    assert!(!ok);
    assert_eq!(j["code"], 4);
    assert!(j["msg"].as_str().unwrap().contains("CNI_ARGS IP"));
}

#[test]
fn args_and_runtime_config_replace_the_list() {
    let extra = r#""args":{"cni":{"ips":["10.30.0.3/24"]}},"#;
    let (_, j) = run("ADD", "", &conf("1.0.0", extra));
    assert_eq!(j["ips"], serde_json::json!([{"address":"10.30.0.3/24"}]));
    let extra =
        r#""args":{"cni":{"ips":["10.30.0.3/24"]}},"runtimeConfig":{"ips":["10.40.0.4/24"]},"#;
    let (_, j) = run("ADD", "", &conf("1.0.0", extra));
    assert_eq!(j["ips"], serde_json::json!([{"address":"10.40.0.4/24"}]));
}

#[test]
fn errors_and_old_versions() {
    let bad = conf("1.0.0", "").replace("10.10.0.5/24", "10.10.0.5");
    let (ok, j) = run("ADD", "", &bad);
    assert!(!ok);
    assert_eq!(j["code"], 7);
    assert!(
        j["msg"]
            .as_str()
            .unwrap()
            .contains("ipam.addresses[0].address"),
        "{j}"
    );
    let bad = conf("1.0.0", "").replace("\"gateway\":\"10.10.0.1\"", "\"gateway\":\"fd00::1\"");
    assert_eq!(run("ADD", "", &bad).1["code"], 7);
    let (ok, j) = run("ADD", "", &conf("0.2.0", ""));
    assert!(ok, "{j}");
    assert_eq!(j["ip4"]["ip"], "10.10.0.5/24");
    assert_eq!(j["ip6"]["ip"], "fd10::5/64");
    let (_, j) = run("ADD", "IP=10.20.0.7/16", &conf("0.2.0", ""));
    assert_eq!(j["code"], 7);
}

#[test]
fn check_needs_the_addresses_in_prev_result() {
    let (_, added) = run("ADD", "", &conf("1.0.0", ""));
    let with = |prev: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(&conf("1.0.0", "")).unwrap();
        v["prevResult"] = prev;
        v.to_string()
    };
    assert!(run("CHECK", "", &with(added.clone())).0);
    let mut other_gw = added.clone();
    other_gw["ips"][0]["gateway"] = "10.10.0.254".into();
    assert!(!run("CHECK", "", &with(other_gw)).0);
    let mut missing = added;
    missing["ips"].as_array_mut().unwrap().truncate(1);
    assert!(!run("CHECK", "", &with(missing)).0);
    assert!(!run("CHECK", "", &conf("1.0.0", "")).0);
}
