//! Hostile values from a runtime or an operator, end to end: identifiers
//! built to escape a directory, interface names naming what is already
//! there, `CNI_NETNS` naming the wrong thing, huge and deeply nested
//! input, enormous ranges, out-of-range numbers, symlinks planted in data
//! directories. Each gets a CNI error with the right code and a message
//! naming the value, and changes nothing: the host's and the container's
//! links, addresses and routes, and every file under the data directories,
//! are compared before and after.
//!
//! Everything runs in namespaces the tests make ("host" and "container"),
//! on 10.239.0.0/16 and fd10:239::/32 only. `CNI_NETNS` pointing at a
//! namespace file of another kind (`/proc/self/ns/uts`), a FIFO or a
//! directory is covered for bridge and loopback by `defects.rs`; here it is
//! every other plugin. A NUL byte cannot be passed in an environment
//! variable, so identifiers with one go through the skeleton in-process.

use cni::skel::dispatch;
use cni_tests::{
    default_host_local, merge, our_plugin, with_prev, Output, PluginEnv, RunCall, TempDir,
    TestNetns,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const PLUGINS: &[&str] = &[
    "bridge",
    "ptp",
    "loopback",
    "macvlan",
    "tap",
    "host-device",
    "portmap",
    "firewall",
    "bandwidth",
    "tuning",
    "sbr",
    "static",
];

fn env(tag: &str) -> PluginEnv {
    let mut plugins: Vec<(&str, std::path::PathBuf)> =
        PLUGINS.iter().map(|p| (*p, our_plugin(p))).collect();
    plugins.push(("host-local", default_host_local()));
    let refs: Vec<(&str, &Path)> = plugins.iter().map(|(n, p)| (*n, p.as_path())).collect();
    PluginEnv::new(tag, &refs)
}

/// Everything a refused call must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// `ip -j addr`, `ip -j -4/-6 route show table all` per namespace.
    kernel: Vec<Value>,
    /// Every entry under the directories: (relative path, kind and content).
    files: BTreeMap<String, String>,
}

fn walk(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).expect("stat");
        if m.is_symlink() {
            out.insert(name, format!("-> {:?}", std::fs::read_link(&p).ok()));
        } else if m.is_dir() {
            out.insert(name.clone(), "dir".into());
            walk(&p, &name, out);
        } else {
            let content = std::fs::read(&p).unwrap_or_default();
            out.insert(name, String::from_utf8_lossy(&content).into_owned());
        }
    }
}

fn snapshot(namespaces: &[&TestNetns], dirs: &[&Path]) -> Snapshot {
    let mut kernel = Vec::new();
    for ns in namespaces {
        kernel.push(ns.ip_json(&["addr", "show"]));
        kernel.push(ns.ip_json(&["-4", "route", "show", "table", "all"]));
        kernel.push(ns.ip_json(&["-6", "route", "show", "table", "all"]));
    }
    let mut files = BTreeMap::new();
    for (i, d) in dirs.iter().enumerate() {
        walk(d, &i.to_string(), &mut files);
    }
    Snapshot { kernel, files }
}

/// The error of a refused call: its code is one of `codes`, and its
/// message says `mentions` (when given).
fn refused(out: &Output, codes: &[u64], mentions: &str, what: &str) -> String {
    assert_ne!(out.status, 0, "{what}: succeeded\n{}", out.stdout);
    let (code, msg) = out.cni_error();
    assert!(
        codes.contains(&code),
        "{what}: code {code}, want one of {codes:?}: {msg}\n{}",
        out.stdout
    );
    assert!(
        msg.contains(mentions) || out.stdout.contains(mentions),
        "{what}: the error does not name {mentions:?}: {}",
        out.stdout
    );
    msg
}

fn bridge_conf(env: &PluginEnv, name: &str) -> Value {
    json!({
        "cniVersion": "1.1.0", "name": name, "type": "bridge", "bridge": "hbr0",
        "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.239.1.0/24"}]],
                 "dataDir": env.data.path_str()}
    })
}

/// Network names, container IDs and interface names built to escape a
/// directory or to break a parser: refused by the skeleton with code 7
/// (4 for the variables) before anything is created.
#[test]
fn identifiers_that_escape_a_directory_are_refused() {
    let env = env("ho-id");
    let ctr = TestNetns::new("ho-id-c");
    let before = snapshot(&[&env.host, &ctr], &[env.data.path()]);
    let snapshot_ctr_before = snapshot(&[&ctr], &[]);
    let long = "n".repeat(300);
    let names = [
        "..",
        "../escape",
        "a/b",
        "/abs",
        ".hidden",
        "réseau",
        "网络",
        "sp ace",
        "",
    ];
    for name in names {
        let conf = bridge_conf(&env, name);
        for cmd in ["ADD", "CHECK", "DEL"] {
            let out = env.verb(cmd, Some(&ctr), "hostile1", &conf);
            refused(&out, &[7], "network name", &format!("{cmd} name {name:?}"));
        }
    }
    let conf = bridge_conf(&env, "hostile");
    let ids = [
        "..",
        "../../etc",
        "a/b",
        "/abs",
        "-x",
        "ctr é",
        "容器",
        ".x",
    ];
    for id in ids {
        for cmd in ["ADD", "CHECK", "DEL"] {
            let out = env.verb(cmd, Some(&ctr), id, &conf);
            refused(&out, &[4], "containerID", &format!("{cmd} id {id:?}"));
        }
    }
    let ifnames = [
        "..",
        ".",
        "a/b",
        "eth 0",
        "eth0:1",
        "sixteen-chars-xx",
        "éééééééé",
    ];
    for ifname in ifnames {
        for cmd in ["ADD", "CHECK", "DEL"] {
            let out = env
                .call("bridge", cmd, &conf)
                .container("hostile1")
                .netns(&ctr.path_str())
                .ifname(ifname)
                .run_in(&env.host);
            refused(
                &out,
                &[4],
                "interface name",
                &format!("{cmd} ifname {ifname:?}"),
            );
        }
    }
    assert_eq!(snapshot(&[&env.host, &ctr], &[env.data.path()]), before);
    // Long names the pattern allows but no file system takes: a clear
    // error, nothing left behind.
    let conf = bridge_conf(&env, &long);
    let out = env.add(&ctr, "hostile1", &conf);
    refused(&out, &[7, 100], "too long", "ADD with a 300-byte name");
    assert_eq!(snapshot(&[&env.host, &ctr], &[env.data.path()]), before);
    // A 300-byte container ID is valid (the spec sets no length) and only
    // ever file content: ADD works and DEL leaves nothing.
    let id = "c".repeat(300);
    let conf = bridge_conf(&env, "hostile");
    let r = env.add(&ctr, &id, &conf).ok().json();
    env.verb("DEL", Some(&ctr), &id, &with_prev(&conf, &r)).ok();
    assert_eq!(env.data.reservations("hostile"), Vec::<String>::new());
    assert_eq!(snapshot(&[&ctr], &[]), snapshot_ctr_before);
}

/// A NUL byte in any identifier, which only an in-process caller can pass:
/// refused by the skeleton before the plugin runs.
#[test]
fn identifiers_with_a_nul_byte_are_refused() {
    let data = TempDir::new("ho-nul");
    let conf = |name: &str| {
        json!({"cniVersion": "1.1.0", "name": name, "type": "host-local",
               "ipam": {"type": "host-local", "subnet": "10.239.2.0/24", "dataDir": data.path_str()}})
    };
    let cases = [
        ("name", "net\0x", "c1", "eth0"),
        ("CNI_CONTAINERID", "net", "c1\0/../x", "eth0"),
        ("CNI_IFNAME", "net", "c1", "eth0\0"),
    ];
    for (what, name, id, ifname) in cases {
        let vars: HashMap<&str, String> = HashMap::from([
            ("CNI_COMMAND", "ADD".to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", "/nonexistent-netns".to_string()),
            ("CNI_IFNAME", ifname.to_string()),
            ("CNI_PATH", "/nonexistent".to_string()),
        ]);
        let env = move |k: &str| vars.get(k).cloned();
        let input = conf(name).to_string();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = dispatch(
            &host_local::HostLocal,
            &env,
            &mut input.as_bytes(),
            &mut out,
            &mut err,
        );
        assert_eq!(code, 1, "{what}");
        let v: Value = serde_json::from_slice(&out).expect("an error object");
        assert!(
            [4, 7].contains(&v["code"].as_u64().unwrap_or_default()),
            "{what}: {v}"
        );
        assert_eq!(data.listing(""), Vec::<String>::new(), "{what}");
    }
}

/// Configs every plugin accepts, chained ones with a `prevResult`.
fn plugin_confs(env: &PluginEnv) -> Vec<Value> {
    let prev = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 0, "address": "10.239.4.2/24", "gateway": "10.239.4.1"}]});
    let ipam =
        json!({"type": "host-local", "subnet": "10.239.4.0/24", "dataDir": env.data.path_str()});
    let base = |ty: &str, extra: Value| {
        merge(
            json!({"cniVersion": "1.1.0", "name": "hnet", "type": ty}),
            extra,
        )
    };
    vec![
        base("bridge", json!({"bridge": "hbr1", "ipam": ipam})),
        base("ptp", json!({"ipam": ipam})),
        base("loopback", json!({})),
        base("macvlan", json!({"master": "lo", "ipam": ipam})),
        base("tap", json!({})),
        base("host-device", json!({"device": "hdev0"})),
        base(
            "portmap",
            json!({"prevResult": prev, "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}),
        ),
        base("firewall", json!({"prevResult": prev})),
        base(
            "bandwidth",
            json!({"prevResult": prev, "ingressRate": 8000, "ingressBurst": 8000}),
        ),
        base("tuning", json!({"prevResult": prev, "mtu": 1400})),
        base("sbr", json!({"prevResult": prev})),
    ]
}

/// `CNI_NETNS` naming the plugin's own namespace (code 8), a regular
/// file, or a namespace file of another kind (code 4): every plugin
/// refuses, promptly, and changes nothing in the host namespace.
#[test]
fn netns_that_is_not_a_container_namespace_is_refused_by_every_plugin() {
    let env = env("ho-ns");
    let file = env.data.path().join("not-a-netns");
    std::fs::write(&file, "").expect("write file");
    let file = file.display().to_string();
    let own = env.host.path_str();
    let before = snapshot(&[&env.host], &[]);
    for conf in plugin_confs(&env) {
        let ty = conf["type"].as_str().unwrap_or_default().to_string();
        for (what, path, codes, says) in [
            (
                "own namespace",
                own.as_str(),
                &[8][..],
                "own network namespace",
            ),
            (
                "uts namespace",
                "/proc/self/ns/uts",
                &[4][..],
                "not a network namespace",
            ),
            (
                "regular file",
                file.as_str(),
                &[4][..],
                "not a network namespace",
            ),
        ] {
            // portmap and firewall work in the host's namespace only and,
            // as the reference's, never open CNI_NETNS.
            if what != "own namespace" && (ty == "portmap" || ty == "firewall") {
                continue;
            }
            // CHECK wants its prevResult before it looks at the namespace;
            // the skeleton refuses the plugin's own namespace first.
            let cmds: &[&str] = if what == "own namespace" {
                &["ADD", "CHECK"]
            } else {
                &["ADD"]
            };
            for cmd in cmds {
                let started = Instant::now();
                let out = env
                    .call(&ty, cmd, &conf)
                    .container("hostile1")
                    .netns(path)
                    .run_in(&env.host);
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{ty} {cmd} {what}"
                );
                refused(&out, codes, says, &format!("{ty} {cmd} with {what}"));
            }
            let out = env
                .call(&ty, "DEL", &conf)
                .container("hostile1")
                .netns(path)
                .run_in(&env.host);
            if what == "own namespace" {
                refused(&out, codes, says, &format!("{ty} DEL with {what}"));
            }
            assert_eq!(snapshot(&[&env.host], &[]), before, "{ty} {what}");
        }
    }
}

/// 50 MB and 100,000-level-deep JSON on stdin: refused with a clear error
/// (the skeleton reads at most 16 MiB; serde_json nests at most 128 deep
/// where a value is decoded), promptly, with nothing created.
#[test]
fn huge_and_deep_input_is_refused() {
    let env = env("ho-big");
    let ctr = TestNetns::new("ho-big-c");
    let before = snapshot(&[&env.host, &ctr], &[env.data.path()]);
    let conf = bridge_conf(&env, "hbig");
    let text = conf.to_string();
    let huge = format!(
        "{}, \"pad\": \"{}\"}}",
        &text[..text.len() - 1],
        "x".repeat(50 << 20)
    );
    let deep = format!(
        "{}, \"runtimeConfig\": {}{}}}",
        &text[..text.len() - 1],
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (what, input, code, says) in [
        ("50 MB", huge, 7, "larger than 16 MiB"),
        ("100,000 levels", deep, 6, "recursion limit"),
    ] {
        for cmd in ["ADD", "DEL"] {
            let mut call = env
                .call("bridge", cmd, &conf)
                .container("big1")
                .netns(&ctr.path_str());
            call.config = input.clone();
            let started = Instant::now();
            let out = call.run_in(&env.host);
            assert!(started.elapsed() < Duration::from_secs(10), "{what} {cmd}");
            refused(&out, &[code], says, &format!("{cmd} with {what}"));
        }
    }
    assert_eq!(snapshot(&[&env.host, &ctr], &[env.data.path()]), before);
}

/// Ranges of 2^64 addresses and more work (an address is handed out,
/// checked and released; STATUS and GC answer); ranges the reference
/// refuses (`/0`, IPv4-mapped) are refused with code 7 and nothing on disk.
#[test]
fn ranges_of_two_to_the_64_addresses() {
    let env = env("ho-rng");
    let ctr = TestNetns::new("ho-rng-c");
    let conf = |ranges: Value| {
        json!({"cniVersion": "1.1.0", "name": "hrange", "type": "ptp",
               "ipam": {"type": "host-local", "ranges": ranges, "dataDir": env.data.path_str()}})
    };
    for ranges in [
        json!([[{"subnet": "fd10:239::/64"}]]),
        json!([[{"subnet": "fd10:239:1::/56", "rangeStart": "fd10:239:1::ffff:ffff:ffff:fff0",
                 "rangeEnd": "fd10:239:1:ff:ffff:ffff:ffff:fffe"}]]),
        json!([[{"subnet": "fd10:239:2::/48", "rangeStart": "fd10:239:2:0:ffff:ffff:ffff:ffff"}],
               [{"subnet": "10.239.5.0/24"}]]),
    ] {
        let c = conf(ranges.clone());
        let r = env.add(&ctr, "r1", &c).ok().json();
        let ip = cni_tests::result_ip(&r, true);
        let set = &ranges[0][0];
        assert!(
            ip.starts_with(&set["subnet"].as_str().unwrap_or_default()[..10]),
            "{ip} in {set}"
        );
        env.verb("CHECK", Some(&ctr), "r1", &with_prev(&c, &r)).ok();
        env.bare("STATUS", &c).ok();
        let mut gc = c.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "r1", "ifname": "eth0"}]);
        env.bare("GC", &gc).ok();
        assert_eq!(
            env.data.reservations("hrange").len(),
            r["ips"].as_array().map_or(0, Vec::len)
        );
        env.verb("DEL", Some(&ctr), "r1", &with_prev(&c, &r)).ok();
        assert_eq!(env.data.reservations("hrange"), Vec::<String>::new());
    }
    let _ = std::fs::remove_dir_all(env.data.path().join("hrange"));
    let before = snapshot(&[&env.host, &ctr], &[env.data.path()]);
    for subnet in [
        "::/0",
        "0.0.0.0/0",
        "::ffff:10.239.6.0/120",
        "fd10:239::/129",
        "10.239.6.0/33",
    ] {
        let out = env.add(&ctr, "r2", &conf(json!([[{"subnet": subnet}]])));
        refused(&out, &[7], subnet, &format!("subnet {subnet}"));
        assert_eq!(
            snapshot(&[&env.host, &ctr], &[env.data.path()]),
            before,
            "{subnet}"
        );
    }
}

/// MTUs and prefix lengths out of range: a CNI error naming the value,
/// and nothing left in either namespace or on disk.
#[test]
fn mtus_and_prefix_lengths_out_of_range_are_refused() {
    let env = env("ho-num");
    let ctr = TestNetns::new("ho-num-c");
    let data = env.data.path_str();
    let before = snapshot(&[&env.host, &ctr], &[env.data.path()]);
    let ipam = json!({"type": "host-local", "subnet": "10.239.7.0/24", "dataDir": data});
    let prev = json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": ctr.path_str()}],
                      "ips": [{"interface": 0, "address": "10.239.7.2/33"}]});
    let cases: Vec<(Value, &[u64], &str)> = vec![
        (
            json!({"type": "bridge", "bridge": "hbr2", "mtu": 70000, "ipam": ipam}),
            &[7],
            "70000",
        ),
        (
            json!({"type": "bridge", "bridge": "hbr2", "mtu": 1, "ipam": ipam}),
            &[7],
            "mtu: 1 ",
        ),
        (
            json!({"type": "bridge", "bridge": "hbr2", "mtu": -1, "ipam": ipam}),
            &[6],
            "-1",
        ),
        (
            json!({"type": "bridge", "bridge": "hbr2", "mtu": 4294967296u64, "ipam": ipam}),
            &[6],
            "4294967296",
        ),
        (
            json!({"type": "ptp", "mtu": 70000, "ipam": ipam}),
            &[7],
            "70000",
        ),
        (
            json!({"type": "macvlan", "master": "lo", "mtu": -5, "ipam": ipam}),
            &[7],
            "mtu",
        ),
        (
            json!({"type": "tuning", "mtu": 4294967296u64, "prevResult": prev}),
            &[6, 7],
            "4294967296",
        ),
        (
            json!({"type": "bridge", "bridge": "hbr2",
                "ipam": {"type": "host-local", "subnet": "10.239.7.0/33", "dataDir": data}}),
            &[7],
            "10.239.7.0/33",
        ),
        (
            json!({"type": "ptp",
                "ipam": {"type": "host-local", "subnet": "fd10:239::/129", "dataDir": data}}),
            &[7],
            "fd10:239::/129",
        ),
        (
            json!({"type": "ptp",
                "ipam": {"type": "host-local", "subnet": "10.239.7.0/24", "dataDir": data,
                         "routes": [{"dst": "0.0.0.0/40"}]}}),
            &[7],
            "0.0.0.0/40",
        ),
        (
            json!({"type": "ptp",
                "ipam": {"type": "static", "addresses": [{"address": "10.239.7.5/99"}]}}),
            &[7],
            "10.239.7.5/99",
        ),
        (
            json!({"type": "sbr", "prevResult": prev}),
            &[6],
            "invalid prevResult",
        ),
        (
            json!({"type": "bandwidth", "ingressRate": 8000, "ingressBurst": 8000, "prevResult": prev}),
            &[6],
            "invalid prevResult",
        ),
    ];
    for (extra, codes, says) in cases {
        let conf = merge(json!({"cniVersion": "1.1.0", "name": "hnum"}), extra);
        let out = env.add(&ctr, "num1", &conf);
        refused(&out, codes, says, &format!("{conf}"));
        assert_eq!(
            snapshot(&[&env.host, &ctr], &[env.data.path()]),
            before,
            "{conf}"
        );
    }
}
