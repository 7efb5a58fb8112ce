//! The tuning plugin end to end, chained after our bridge and host-local
//! as a runtime chains it: sysctls read back inside the container's
//! namespace, link settings read back with `ip -j`, their restoration by
//! DEL, CHECK against live values, the keys' precedence, hostile sysctl
//! keys refused with nothing written, the allowlist (through a private
//! mount namespace, so no test hook exists in the plugin), the
//! conformance harness, and chains mixing ours with the reference.

mod common;

use cni_tests::{
    host_local_ipam, our_plugin, reference_plugin, require_our_host_local, with_prev, Call,
    PluginEnv, RunCall, TempDir, TestNetns, VERSIONS,
};
use serde_json::{json, Value};
use std::path::Path;

fn env(tag: &str, bridge: &Path) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("bridge", bridge),
            ("host-local", &require_our_host_local("tuning tests")),
            ("tuning", &our_plugin("tuning")),
        ],
    )
}

fn bridge_conf(env: &PluginEnv, version: &str, n: u8) -> Value {
    json!({"cniVersion": version, "name": format!("tun{n}"), "type": "bridge",
           "bridge": format!("tunbr{n}"), "isGateway": true,
           "ipam": host_local_ipam(&env.data, &[&format!("10.244.{n}.0/24")])})
}

fn tuning_conf(env: &PluginEnv, version: &str, n: u8, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": format!("tun{n}"), "type": "tuning",
                       "dataDir": env.data.path().join("tuning")});
    for (k, v) in extra.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

/// (mtu, mac, promisc, allmulti, txqlen) of `dev` in `ns`.
fn link_state(ns: &TestNetns, dev: &str) -> (u64, String, bool, bool, u64) {
    let l = ns.link(dev).unwrap_or_else(|| panic!("{dev} exists"));
    (
        l["mtu"].as_u64().expect("mtu"),
        l["address"].as_str().expect("address").to_string(),
        ns.link_has_flag(dev, "PROMISC"),
        ns.link_has_flag(dev, "ALLMULTI"),
        // `ip -j` leaves out a zero queue length.
        l["txqlen"].as_u64().unwrap_or(0),
    )
}

fn all_settings() -> Value {
    json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "777"},
           "mac": "0a:58:0a:f4:63:63", "promisc": true, "mtu": 1400, "allmulti": true,
           "txQLen": 4321})
}

/// Every setting applied, checked, and (link settings) restored by DEL,
/// under every spec version; DEL twice and without CNI_NETNS succeed.
#[test]
fn settings_apply_check_and_restore_in_every_version() {
    let env = env("tun-ver", &our_plugin("bridge"));
    for (i, version) in VERSIONS.iter().enumerate() {
        let ctr = TestNetns::new("tun-ver-c");
        let id = format!("tv{i}");
        let br = bridge_conf(&env, version, 1);
        let r = env.add(&ctr, &id, &br).ok().json();
        let before = link_state(&ctr, "eth0");
        let tc = with_prev(&tuning_conf(&env, version, 1, all_settings()), &r);
        let out = env.add(&ctr, &id, &tc).ok().json();
        assert_eq!(out["cniVersion"], *version);
        assert_eq!(
            link_state(&ctr, "eth0"),
            (1400, "0a:58:0a:f4:63:63".into(), true, true, 4321),
            "{version}"
        );
        assert_eq!(ctr.sysctl("net/ipv4/conf/eth0/arp_filter"), "1");
        assert_eq!(ctr.sysctl("net.core.somaxconn"), "777");
        assert_ne!(
            env.host.sysctl("net.core.somaxconn"),
            "777",
            "host untouched"
        );
        if let Some(ifaces) = out["interfaces"].as_array() {
            let eth0 = ifaces.iter().find(|i| i["name"] == "eth0").expect("eth0");
            assert_eq!(eth0["mac"], "0a:58:0a:f4:63:63", "{out}");
        }
        let saved = env.data.path().join(format!("tuning/{id}_eth0.json"));
        let file: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
        assert_eq!(file["mtu"], before.0);
        assert_eq!(file["mac"], before.1.as_str());
        assert_eq!(file["txQLen"], before.4);
        let prev = with_prev(&tc, &out);
        if *version >= "0.4.0" {
            env.verb("CHECK", Some(&ctr), &id, &prev).ok();
            ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1300"]).ok();
            let msg = env.verb("CHECK", Some(&ctr), &id, &prev).error_with(100);
            assert!(msg.contains("MTU") && msg.contains("1300"), "{msg}");
            ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1400"]).ok();
            ctr.exec(&["ip", "link", "set", "eth0", "promisc", "off"])
                .ok();
            let msg = env.verb("CHECK", Some(&ctr), &id, &prev).error_with(100);
            assert!(msg.contains("promisc"), "{msg}");
            ctr.exec(&["ip", "link", "set", "eth0", "promisc", "on"])
                .ok();
            ctr.exec(&[
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_filter",
            ])
            .ok();
            let msg = env.verb("CHECK", Some(&ctr), &id, &prev).error_with(100);
            assert!(msg.contains("arp_filter"), "{msg}");
        }
        env.verb("DEL", Some(&ctr), &id, &prev).ok();
        assert_eq!(link_state(&ctr, "eth0"), before, "{version}: restored");
        assert!(!saved.exists(), "the saved values are gone");
        env.verb("DEL", Some(&ctr), &id, &prev).ok();
        env.verb("DEL", None, &id, &prev).ok();
        env.verb("DEL", Some(&ctr), &id, &with_prev(&br, &r)).ok();
    }
}

/// args.cni over runtimeConfig.mac (any letter case) over CNI_ARGS MAC
/// over the config's mac, as the reference ranks them.
#[test]
fn mac_precedence_and_args_overrides() {
    let env = env("tun-mac", &our_plugin("bridge"));
    let ctr = TestNetns::new("tun-mac-c");
    let br = bridge_conf(&env, "1.0.0", 2);
    let r = env.add(&ctr, "m1", &br).ok().json();
    let mac_after = |extra: Value, args: &str| -> String {
        let tc = with_prev(&tuning_conf(&env, "1.0.0", 2, extra), &r);
        let call = env
            .call("tuning", "ADD", &tc)
            .container("m1")
            .netns(&ctr.path_str())
            .args(args);
        call.run_in(&env.host).ok();
        let mac = link_state(&ctr, "eth0").1;
        env.verb("DEL", Some(&ctr), "m1", &tc).ok();
        mac
    };
    let conf_mac = json!({"mac": "0a:58:00:00:00:01"});
    assert_eq!(mac_after(conf_mac.clone(), ""), "0a:58:00:00:00:01");
    assert_eq!(
        mac_after(
            conf_mac.clone(),
            "IgnoreUnknown=1;K8S_POD_NAME=p;MAC=0a:58:00:00:00:02"
        ),
        "0a:58:00:00:00:02"
    );
    let mut rc = conf_mac.clone();
    rc["runtimeConfig"] = json!({"MAC": "0a:58:00:00:00:03"});
    assert_eq!(
        mac_after(rc.clone(), "MAC=0a:58:00:00:00:02"),
        "0a:58:00:00:00:03"
    );
    let mut a = rc.clone();
    a["args"] = json!({"cni": {"mac": "0a:58:00:00:00:04", "mtu": 1280,
                               "sysctl": {"net.core.somaxconn": "555"}}});
    a["sysctl"] = json!({"net.core.somaxconn": "111"});
    assert_eq!(mac_after(a, "MAC=0a:58:00:00:00:02"), "0a:58:00:00:00:04");
    assert_eq!(
        ctr.sysctl("net.core.somaxconn"),
        "555",
        "args.cni.sysctl wins"
    );
    // Restored after each DEL: the original MAC is back.
    let original = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap()["mac"]
        .clone();
    assert_eq!(link_state(&ctr, "eth0").1, original.as_str().unwrap());
    assert_eq!(link_state(&ctr, "eth0").0, 1500);
    // A bad MAC is a config error and changes nothing.
    let tc = with_prev(&tuning_conf(&env, "1.0.0", 2, json!({"mac": "zz"})), &r);
    env.add(&ctr, "m1", &tc).error_with(7);
    env.verb("DEL", Some(&ctr), "m1", &with_prev(&br, &r)).ok();
}

/// Keys that would leave /proc/sys/net are refused with code 7 before
/// anything is written: the valid key placed before them keeps its value.
#[test]
fn hostile_sysctl_keys_are_refused_and_nothing_is_written() {
    let env = env("tun-hostile", &our_plugin("bridge"));
    let ctr = TestNetns::new("tun-host-c");
    let br = bridge_conf(&env, "1.0.0", 3);
    let r = env.add(&ctr, "h1", &br).ok().json();
    let somaxconn = ctr.sysctl("net.core.somaxconn");
    let ostype_host = env.host.sysctl("kernel.hostname");
    for key in [
        "net/../kernel/hostname",
        "/proc/sys/kernel/hostname",
        "net.ipv4.conf.IFNAME/../../../../kernel/hostname",
        "kernel.hostname",
        "net..kernel",
        "net.core\u{0}.x",
        "net",
        "",
    ] {
        let mut sysctl = serde_json::Map::new();
        sysctl.insert("net.core.somaxconn".into(), json!("999"));
        sysctl.insert(key.into(), json!("pwned"));
        let tc = with_prev(
            &tuning_conf(&env, "1.0.0", 3, json!({"sysctl": sysctl})),
            &r,
        );
        let msg = env.add(&ctr, "h1", &tc).error_with(7);
        assert!(msg.contains("invalid net sysctl key"), "{key:?}: {msg}");
        assert!(msg.contains("nothing was written"), "{msg}");
        assert_eq!(ctr.sysctl("net.core.somaxconn"), somaxconn, "{key:?}");
    }
    // A key that does not exist fails the ADD and the earlier key gets
    // its old value back.
    let tc = with_prev(
        &tuning_conf(
            &env,
            "1.0.0",
            3,
            json!({"sysctl": {"net.core.somaxconn": "999", "net.core.no_such_key": "1"}}),
        ),
        &r,
    );
    let msg = env.add(&ctr, "h1", &tc).error_with(100);
    assert!(msg.contains("no_such_key"), "{msg}");
    assert_eq!(ctr.sysctl("net.core.somaxconn"), somaxconn);
    // A duplicated key is refused too.
    let text = format!(
        r#"{{"cniVersion":"1.0.0","name":"tun3","type":"tuning","sysctl":{{"net.core.somaxconn":"1","net.core.somaxconn":"2"}},"prevResult":{r}}}"#
    );
    let out = Call::new(env.bin.path().join("tuning"), "ADD", &text)
        .container("h1")
        .netns(&ctr.path_str())
        .run_in(&env.host);
    let (code, msg) = out.cni_error();
    assert!(msg.contains("duplicated sysctl keys"), "{code} {msg}");
    assert_eq!(env.host.sysctl("kernel.hostname"), ostype_host);
    env.verb("DEL", Some(&ctr), "h1", &with_prev(&br, &r)).ok();
}

/// /etc/cni/tuning/allowlist.conf, made visible to the plugin alone: the
/// plugin runs under `unshare -m` with an overlay on /etc whose upper
/// layer holds the file, so the machine's /etc is never touched and the
/// plugin has no test-only switch.
#[test]
fn allowlist_limits_the_keys() {
    let env = env("tun-allow", &our_plugin("bridge"));
    let ctr = TestNetns::new("tun-allow-c");
    let br = bridge_conf(&env, "1.0.0", 4);
    let r = env.add(&ctr, "a1", &br).ok().json();
    let overlay = TempDir::new("tun-overlay");
    let upper = overlay.path().join("upper");
    std::fs::create_dir_all(upper.join("cni/tuning")).unwrap();
    std::fs::create_dir_all(overlay.path().join("work")).unwrap();
    std::fs::write(
        upper.join("cni/tuning/allowlist.conf"),
        "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n^net\\.core\\.somaxconn$\n",
    )
    .unwrap();
    let mount = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && exec \"$0\" \"$@\"",
        upper.display(),
        overlay.path().join("work").display()
    );
    let run = |sysctl: Value| {
        let tc = with_prev(
            &tuning_conf(&env, "1.0.0", 4, json!({"sysctl": sysctl})),
            &r,
        );
        let call = env
            .call("tuning", "ADD", &tc)
            .container("a1")
            .netns(&ctr.path_str());
        let inner = call.command();
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["-m", "sh", "-c", &mount])
            .arg(inner.get_program());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        env.host.run(cmd, Some(tc.to_string().as_bytes()))
    };
    run(json!({"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "321"})).ok();
    assert_eq!(ctr.sysctl("net.core.somaxconn"), "321");
    let msg = run(json!({"net.ipv4.ip_forward": "1"})).error_with(7);
    assert!(
        msg.contains("Sysctl net.ipv4.ip_forward is not allowed"),
        "{msg}"
    );
    // The same key without the allowlist (the machine has none) passes.
    assert!(!Path::new("/etc/cni/tuning/allowlist.conf").exists());
    let tc = with_prev(
        &tuning_conf(
            &env,
            "1.0.0",
            4,
            json!({"sysctl": {"net.ipv4.ip_forward": "1"}}),
        ),
        &r,
    );
    env.add(&ctr, "a1", &tc).ok();
    assert_eq!(ctr.sysctl("net.ipv4.ip_forward"), "1");
    env.verb("DEL", Some(&ctr), "a1", &with_prev(&br, &r)).ok();
}

/// The conformance harness: sysctls only (its container namespaces have
/// no eth0), with a bridge-shaped prevResult.
#[test]
fn conformance() {
    let env = env("tun-conf", &our_plugin("bridge"));
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "br0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 2, "address": "10.244.5.2/24", "gateway": "10.244.5.1"}]});
    let config = json!({"cniVersion": "", "name": "conformance", "type": "tuning",
        "sysctl": {"net.core.somaxconn": "600", "net.ipv4.conf.all.arp_ignore": "1"},
        "dataDir": env.data.path().join("tuning").display().to_string(),
        "prevResult": prev});
    common::conformance_passes(&env.bin.path().join("tuning"), config);
    assert_eq!(env.data.listing("tuning"), Vec::<String>::new());
}

/// The reference bridge with our tuning; the reference tuning's ADD
/// undone by our DEL and ours by theirs (one file format).
#[test]
fn mixed_with_the_reference() {
    let env = PluginEnv::new(
        "tun-mix",
        &[
            ("bridge", &reference_plugin("bridge")),
            ("host-local", &reference_plugin("host-local")),
            ("tuning", &our_plugin("tuning")),
            ("ref-tuning", &reference_plugin("tuning")),
        ],
    );
    let ctr = TestNetns::new("tun-mix-c");
    let br = bridge_conf(&env, "1.0.0", 6);
    let r = env.add(&ctr, "x1", &br).ok().json();
    let before = link_state(&ctr, "eth0");
    // Keys the reference's release (1.1.1) knows.
    let settings = json!({"sysctl": {"net.core.somaxconn": "700"},
                          "mac": "0a:58:0a:f4:06:06", "promisc": true, "mtu": 1450,
                          "allmulti": true});
    let ours = with_prev(&tuning_conf(&env, "1.0.0", 6, settings.clone()), &r);
    let mut theirs = ours.clone();
    theirs["type"] = json!("ref-tuning");

    env.add(&ctr, "x1", &ours).ok();
    assert_eq!(
        link_state(&ctr, "eth0"),
        (1450, "0a:58:0a:f4:06:06".into(), true, true, before.4)
    );
    env.verb("CHECK", Some(&ctr), "x1", &theirs).ok();
    env.verb("DEL", Some(&ctr), "x1", &theirs).ok();
    assert_eq!(
        link_state(&ctr, "eth0"),
        before,
        "reference DEL restored ours"
    );

    env.add(&ctr, "x1", &theirs).ok();
    assert_eq!(link_state(&ctr, "eth0").0, 1450);
    env.verb("CHECK", Some(&ctr), "x1", &ours).ok();
    env.verb("DEL", Some(&ctr), "x1", &ours).ok();
    assert_eq!(link_state(&ctr, "eth0"), before, "our DEL restored theirs");
    assert_eq!(env.data.listing("tuning"), Vec::<String>::new());
    env.verb("DEL", Some(&ctr), "x1", &with_prev(&br, &r)).ok();
}
