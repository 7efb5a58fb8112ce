//! cnitool end to end, in real namespaces: a conflist of bridge (with
//! host-local) followed by a chained plugin, driven through `cnitool` as an
//! operator would, then checked with packets and the files left behind.
//!
//! Each test makes its own "host" namespace and runs cnitool inside it (the
//! plugins it spawns inherit it), with `NETCONFPATH`, `CNI_PATH`, the cache
//! dir and host-local's `dataDir` in temporary directories of its own.
//!
//! Needs root and the binaries: `cargo build -p bridge -p host-local -p
//! cnitool` and the `chain-probe` example, which `cargo test -p cnitool`
//! builds (it is the chained plugin: it requires `prevResult`, passes it
//! on and records what it was sent).

use cni_tests::{our_plugin, result_ip, Output, TempDir, TestNetns};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PING_WITHIN: Duration = Duration::from_secs(5);

/// One test's world.
struct Tool {
    host: TestNetns,
    bin: TempDir,
    conf: TempDir,
    cache: TempDir,
    data: TempDir,
    record: TempDir,
    network: String,
    bridge: String,
}

impl Tool {
    /// `subnet` in 10.230.0.0/16; `bridge` at most 15 bytes.
    fn new(tag: &str, bridge: &str, subnet: &str) -> Tool {
        let t = Tool {
            host: TestNetns::new(tag),
            bin: TempDir::new(&format!("{tag}-bin")),
            conf: TempDir::new(&format!("{tag}-conf")),
            cache: TempDir::new(&format!("{tag}-cache")),
            data: TempDir::new(&format!("{tag}-data")),
            record: TempDir::new(&format!("{tag}-rec")),
            network: format!("{tag}-net"),
            bridge: bridge.to_string(),
        };
        t.bin.add_plugin("bridge", &our_plugin("bridge"));
        t.bin.add_plugin("host-local", &our_plugin("host-local"));
        t.bin.add_plugin("chain-probe", &chain_probe());
        t.write_conflist(
            "10-net.conflist",
            &json!({
                "cniVersion": "1.1.0",
                "name": t.network,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": t.bridge,
                        "isGateway": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": subnet}]],
                            "dataDir": t.data.path_str()
                        }
                    },
                    {"type": "chain-probe", "recordDir": t.record.path_str()}
                ]
            }),
        );
        t
    }

    fn write_conflist(&self, file: &str, v: &Value) {
        std::fs::write(self.conf.path().join(file), v.to_string()).expect("write conflist");
    }

    /// `cnitool ARGS` inside the host namespace.
    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(our_plugin("cnitool"));
        cmd.args(["--cache-dir", &self.cache.path_str()])
            .args(args)
            .env("NETCONFPATH", self.conf.path())
            .env("CNI_PATH", self.bin.path())
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS")
            .env_remove("CAP_ARGS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.host.run(cmd, None)
    }

    fn add(&self, ctr: &TestNetns) -> Value {
        self.run(&["add", &self.network, &ctr.path_str()])
            .ok()
            .json()
    }

    /// The request chain-probe recorded for `verb` (and container).
    fn recorded(&self, name: &str) -> Value {
        let p = self.record.path().join(name);
        let s = std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("chain-probe left no {}: {e}", p.display()));
        serde_json::from_str(&s).expect("recorded request is JSON")
    }

    fn cache_file(&self, id: &str) -> PathBuf {
        self.cache
            .path()
            .join("results")
            .join(format!("{}-{id}-eth0", self.network))
    }
}

/// The chained test plugin, built as an example of this package.
fn chain_probe() -> PathBuf {
    let p = cni_tests::target_dir().join("examples").join("chain-probe");
    assert!(
        p.is_file(),
        "{} is missing: `cargo test -p cnitool` builds it (or `cargo build -p cnitool --examples`)",
        p.display()
    );
    p
}

/// The container ID cnitool derives for a netns path (the reference's).
fn id_of(ctr: &TestNetns) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s '{}' | sha512sum | cut -c1-20",
            ctr.path_str()
        ))
        .output()
        .expect("sha512sum");
    format!("cnitool-{}", String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn add_ping_check_del() {
    let t = Tool::new("ct-basic", "ctb0", "10.230.1.0/24");
    let ctr = TestNetns::new("ct-basic-c");
    let id = id_of(&ctr);

    let out = t.run(&["add", &t.network, &ctr.path_str()]).ok();
    // The chained plugin's stderr reaches cnitool's caller.
    assert!(
        out.stderr.contains(&format!("chain-probe: ADD {id}")),
        "{}",
        out.stderr
    );
    let result = out.json();
    assert_eq!(result["cniVersion"], "1.1.0");
    let ip = result_ip(&result, false);
    assert!(ip.starts_with("10.230.1."), "{result}");
    let eth0 = result["interfaces"]
        .as_array()
        .and_then(|ifs| ifs.iter().find(|i| i["name"] == "eth0"))
        .unwrap_or_else(|| panic!("no eth0 in {result}"));
    assert_eq!(eth0["sandbox"], ctr.path_str());

    // chain-probe got bridge's result as prevResult, and its own
    // environment-derived name and version.
    let add = t.recorded(&format!("ADD-{id}"));
    assert_eq!(add["name"], t.network.as_str());
    assert_eq!(add["cniVersion"], "1.1.0");
    assert_eq!(add["prevResult"]["ips"], result["ips"]);

    // Real packets, from the host to the container.
    assert!(t.host.ping_within(&ip, PING_WITHIN), "no reply from {ip}");

    // The cache entry, in the reference's format.
    let cache: Value =
        serde_json::from_slice(&std::fs::read(t.cache_file(&id)).expect("cache file")).unwrap();
    assert_eq!(cache["kind"], "cniCacheV1");
    assert_eq!(cache["containerId"], id.as_str());
    assert_eq!(cache["netns"], ctr.path_str());
    assert_eq!(cache["result"], result);

    t.run(&["check", &t.network, &ctr.path_str()]).ok();
    assert_eq!(t.recorded(&format!("CHECK-{id}"))["prevResult"], result);

    t.run(&["del", &t.network, &ctr.path_str()]).ok();
    assert_eq!(t.recorded(&format!("DEL-{id}"))["prevResult"], result);
    assert!(ctr.link("eth0").is_none(), "eth0 left in the container");
    assert!(t.data.reservations(&t.network).is_empty());
    assert!(!t.cache_file(&id).exists());
    // DEL again: nothing cached, nothing to do, still success.
    t.run(&["del", &t.network, &ctr.path_str()]).ok();
    // CHECK after DEL: the chained plugin sees no prevResult and says so.
    let out = t.run(&["check", &t.network, &ctr.path_str()]);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(out.stderr.contains("failed (check)"), "{}", out.stderr);
}

#[test]
fn gc_releases_a_leaked_attachment_and_keeps_the_live_one() {
    let t = Tool::new("ct-gc", "ctg0", "10.230.2.0/24");
    let live = TestNetns::new("ct-gc-live");
    let leaked = TestNetns::new("ct-gc-leak");
    let (live_id, leaked_id) = (id_of(&live), id_of(&leaked));
    let live_ip = result_ip(&t.add(&live), false);
    let leaked_ip = result_ip(&t.add(&leaked), false);
    assert_eq!(t.data.reservations(&t.network).len(), 2);

    // The container dies without a DEL: its namespace is gone, its address
    // reservation and cache entry stay behind.
    drop(leaked);
    assert!(t.cache_file(&leaked_id).exists());

    t.run(&["gc", &t.network, "--valid", &live.path_str()]).ok();
    assert!(!t.cache_file(&leaked_id).exists());
    assert!(t.cache_file(&live_id).exists());
    assert_eq!(
        t.data.reservations(&t.network),
        std::slice::from_ref(&live_ip)
    );
    assert!(!t.data.reservations(&t.network).contains(&leaked_ip));
    // The stale DEL was made from the cache (the netns it was added in).
    let del = t.recorded(&format!("DEL-{leaked_id}"));
    assert_eq!(
        del["prevResult"]["ips"][0]["address"],
        format!("{leaked_ip}/24")
    );
    let gc = t.recorded("GC");
    let valid = json!([{"containerID": live_id, "ifname": "eth0"}]);
    assert_eq!(gc["cni.dev/valid-attachments"], valid);
    assert_eq!(gc["cni.dev/attachments"], valid);
    // The live one still works.
    assert!(t.host.ping_within(&live_ip, PING_WITHIN));
    t.run(&["check", &t.network, &live.path_str()]).ok();

    // The reference's plain form (everything cached is stale) is refused:
    // a forgotten --valid must not release every container of the network.
    let out = t.run(&["gc", &t.network, &live.path_str()]);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(out.stderr.contains("--all"), "{}", out.stderr);
    assert!(t.cache_file(&live_id).exists());
    assert_eq!(
        t.data.reservations(&t.network),
        std::slice::from_ref(&live_ip)
    );
    assert!(live.link("eth0").is_some());
    let out = t.run(&["gc", &t.network, "--all", "--valid", &live.path_str()]);
    assert_eq!(out.status, 1, "{out:?}");
    assert!(t.cache_file(&live_id).exists());

    // --all says it: every cached attachment is listed on stderr, then
    // released, and the plugins get an explicit empty list.
    let out = t.run(&["gc", &t.network, "--all"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "gc --all: releasing 1 cached attachment of network {:?}\n  container {live_id} interface eth0 netns {}",
            t.network,
            live.path_str()
        )),
        "{}",
        out.stderr
    );
    assert!(!t.cache_file(&live_id).exists());
    assert!(t.data.reservations(&t.network).is_empty());
    assert!(live.link("eth0").is_none());
    let gc = t.recorded("GC");
    assert_eq!(gc["cni.dev/valid-attachments"], json!([]));
    assert_eq!(gc["cni.dev/attachments"], json!([]));
}

#[test]
fn status_and_errors() {
    let t = Tool::new("ct-status", "cts0", "10.230.3.0/24");
    t.run(&["status", &t.network]).ok();
    assert_eq!(t.recorded("STATUS")["name"], t.network.as_str());

    // A plugin that is not there: exit 1, the plugin and step named.
    t.write_conflist(
        "20-broken.conflist",
        &json!({"cniVersion":"1.1.0","name":"broken","plugins":[{"type":"nope"}]}),
    );
    let out = t.run(&["status", "broken"]);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.starts_with(
            "plugin type=\"nope\" name=\"broken\" failed (status): failed to find plugin \"nope\""
        ),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());

    // A bad key: the file and key are named, nothing is run.
    t.write_conflist(
        "30-bad.conflist",
        &json!({"cniVersion":"1.1.0","name":"bad","disableCheck":"maybe","plugins":[{"type":"bridge"}]}),
    );
    let ctr = TestNetns::new("ct-status-c");
    let out = t.run(&["add", "bad", &ctr.path_str()]);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr
            .contains("30-bad.conflist: key \"disableCheck\": invalid value \"maybe\""),
        "{}",
        out.stderr
    );
    std::fs::remove_file(t.conf.path().join("30-bad.conflist")).unwrap();

    let out = t.run(&["add", "missing", &ctr.path_str()]);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr
            .contains("no net configuration with name \"missing\""),
        "{}",
        out.stderr
    );
    // A version a plugin does not speak: refused before anything exists.
    t.write_conflist(
        "40-old.conflist",
        &json!({"cniVersion":"9.9.9","name":"old","plugins":[{"type":"bridge"}]}),
    );
    let out = t.run(&["add", "old", &ctr.path_str()]);
    assert_eq!(out.status, 1);
    assert!(out.stderr.contains("key \"cniVersion\""), "{}", out.stderr);

    let out = t.run(&["--help"]).ok();
    assert!(out.stdout.contains("NETCONFPATH"));
    let out = t.run(&["frob"]);
    assert_eq!(out.status, 1);
    assert!(out.stderr.contains("unknown command"));
}

/// A cache entry written in exactly the reference's format (by hand, as Go's
/// `json.Marshal` of libcni's `cachedInfo` prints it) is what our DEL hands
/// the plugins; and ours is what the reference would read.
#[test]
fn del_reads_a_reference_cache_entry() {
    let t = Tool::new("ct-ref", "ctr0", "10.230.4.0/24");
    let ctr = TestNetns::new("ct-ref-c");
    let id = id_of(&ctr);
    let result = t.add(&ctr);
    let ours: Value =
        serde_json::from_slice(&std::fs::read(t.cache_file(&id)).expect("cache file")).unwrap();
    // Our file has the reference struct's fields and types.
    assert!(ours["config"].is_string());
    assert_eq!(ours["ifName"], "eth0");
    assert_eq!(ours["networkName"], t.network.as_str());

    // Replace it with a reference-written one whose result carries a marker.
    let mut marked = result.clone();
    marked["dns"] = json!({"nameservers": ["10.230.4.53"]});
    let fixture = format!(
        r#"{{"kind":"cniCacheV1","containerId":"{id}","config":{config},"ifName":"eth0","networkName":"{net}","netns":"{netns}","result":{result}}}"#,
        config = ours["config"],
        net = t.network,
        netns = ctr.path_str(),
        result = marked,
    );
    std::fs::write(t.cache_file(&id), fixture).unwrap();
    t.run(&["del", &t.network, &ctr.path_str()]).ok();
    let del = t.recorded(&format!("DEL-{id}"));
    assert_eq!(
        del["prevResult"]["dns"]["nameservers"],
        json!(["10.230.4.53"])
    );
    assert!(ctr.link("eth0").is_none());
    assert!(t.data.reservations(&t.network).is_empty());
    assert!(!t.cache_file(&id).exists());
}

#[test]
fn ifname_and_cni_args_reach_the_plugins() {
    let t = Tool::new("ct-args", "cta0", "10.230.5.0/24");
    let ctr = TestNetns::new("ct-args-c");
    let id = id_of(&ctr);
    let env = [
        ("CNI_ARGS", "IgnoreUnknown=1;IP=10.230.5.77"),
        ("CNI_IFNAME", "net0"),
    ];
    let out = t
        .run_env(&["add", &t.network, &ctr.path_str(), "-i", "net9"], &env)
        .ok();
    let result = out.json();
    assert_eq!(result_ip(&result, false), "10.230.5.77");
    assert!(
        ctr.link("net9").is_some(),
        "the -i name wins over CNI_IFNAME"
    );
    assert!(t
        .cache
        .path()
        .join("results")
        .join(format!("{}-{id}-net9", t.network))
        .exists());
    t.run_env(&["del", &t.network, &ctr.path_str(), "-i", "net9"], &env)
        .ok();
    assert!(ctr.link("net9").is_none());
    assert!(t.data.reservations(&t.network).is_empty());
}

/// Our runtime driving the reference Go plugins (Debian's, which speak up to
/// 1.0.0): the chain works at 1.0.0, and a 1.1.0 list is refused at
/// VERSION before anything is created.
#[test]
fn drives_the_reference_plugins() {
    let (bridge, host_local) = (
        cni_tests::reference_plugin("bridge"),
        cni_tests::reference_plugin("host-local"),
    );
    let t = Tool::new("ct-goref", "ctgo0", "10.230.6.0/24");
    std::fs::remove_file(t.bin.path().join("bridge")).unwrap();
    std::fs::remove_file(t.bin.path().join("host-local")).unwrap();
    t.bin.add_plugin("bridge", &bridge);
    t.bin.add_plugin("host-local", &host_local);
    let conf = |version: &str| {
        json!({
            "cniVersion": version,
            "name": "goref",
            "plugins": [
                {"type": "bridge", "bridge": t.bridge, "isGateway": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.230.6.0/24"}]],
                          "dataDir": t.data.path_str()}},
                {"type": "chain-probe", "recordDir": t.record.path_str()}
            ]
        })
    };
    let ctr = TestNetns::new("ct-goref-c");
    let id = id_of(&ctr);

    if !cni_tests::plugin_supports(&bridge, "1.1.0") {
        t.write_conflist("10-goref.conflist", &conf("1.1.0"));
        let out = t.run(&["add", "goref", &ctr.path_str()]);
        assert_eq!(out.status, 1);
        assert!(
            out.stderr.starts_with(
                "plugin type=\"bridge\" name=\"goref\" failed (version): plugin does not support config version \"1.1.0\""
            ),
            "{}",
            out.stderr
        );
        assert!(ctr.link("eth0").is_none());
        assert!(t.data.reservations("goref").is_empty());
        assert!(t.cache.listing("results").is_empty());
    }

    t.write_conflist("10-goref.conflist", &conf("1.0.0"));
    let result = t.run(&["add", "goref", &ctr.path_str()]).ok().json();
    assert_eq!(result["cniVersion"], "1.0.0");
    let ip = result_ip(&result, false);
    assert!(t.host.ping_within(&ip, PING_WITHIN), "no reply from {ip}");
    t.run(&["check", "goref", &ctr.path_str()]).ok();
    t.run(&["del", "goref", &ctr.path_str()]).ok();
    assert_eq!(t.recorded(&format!("DEL-{id}"))["prevResult"], result);
    assert!(ctr.link("eth0").is_none());
    assert!(t.data.reservations("goref").is_empty());
}
