//! The list operations against fake plugins: shell scripts that record
//! their environment and stdin, answer VERSION with a configurable list
//! and ADD with a fixed result, and fail on demand. No root needed.

use libcni::cache::{self, CacheEntry, CachedAttachment};
use libcni::{CniConfig, Error, NetworkConfigList, RuntimeConf};
use serde_json::{json, Map, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A test's world: a `CNI_PATH` directory of fake plugins, a cache root
/// and the log the plugins write.
struct World {
    root: PathBuf,
}

impl World {
    fn new(tag: &str) -> World {
        let root = std::env::temp_dir().join(format!(
            "libcni-ops-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        for sub in ["bin", "log", "cache", "ctl"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        World { root }
    }

    fn cni(&self) -> CniConfig {
        CniConfig::new(vec![self.root.join("nonexistent"), self.root.join("bin")])
            .with_cache_dir(self.root.join("cache"))
    }

    /// A fake plugin `name` supporting `versions`; ADD prints `reply`.
    fn plugin(&self, name: &str, versions: &[&str], reply: &Value) {
        let ctl = self.root.join("ctl");
        std::fs::write(ctl.join(format!("reply-{name}")), reply.to_string()).unwrap();
        let script = format!(
            r#"#!/bin/sh
ctl="{ctl}"; log="{log}"; me="{name}"
if [ "$CNI_COMMAND" = VERSION ]; then
  if [ -f "$ctl/legacy-$me" ]; then printf '{{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}}'; exit 1; fi
  printf '{{"cniVersion":"1.1.0","supportedVersions":{versions}}}'; exit 0
fi
n=$(cat "$ctl/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$ctl/count"
f="$log/$(printf %03d $n)-$me-$CNI_COMMAND"
cat > "$f.stdin"
env | grep '^CNI_' | sort > "$f.env"
if [ -f "$ctl/fail-$me-$CNI_COMMAND" ]; then cat "$ctl/fail-$me-$CNI_COMMAND"; exit 1; fi
if [ "$CNI_COMMAND" = ADD ]; then cat "$ctl/reply-$me"; fi
exit 0
"#,
            ctl = ctl.display(),
            log = self.root.join("log").display(),
            versions = json!(versions),
        );
        let p = self.root.join("bin").join(name);
        std::fs::write(&p, script).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Make `name` fail `command` with this CNI error.
    fn fail(&self, name: &str, command: &str, code: u32, msg: &str) {
        std::fs::write(
            self.root.join("ctl").join(format!("fail-{name}-{command}")),
            json!({"cniVersion":"1.0.0","code":code,"msg":msg}).to_string(),
        )
        .unwrap();
    }

    fn heal(&self, name: &str, command: &str) {
        std::fs::remove_file(self.root.join("ctl").join(format!("fail-{name}-{command}"))).unwrap();
    }

    /// The calls so far, in order: (plugin, command, stdin JSON, env lines).
    fn calls(&self) -> Vec<Call> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join("log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".stdin"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let stem = n.trim_end_matches(".stdin").to_string();
                let mut parts = stem.splitn(3, '-');
                let _seq = parts.next();
                let plugin = parts.next().unwrap().to_string();
                let command = parts.next().unwrap().to_string();
                let log = self.root.join("log");
                let stdin = std::fs::read_to_string(log.join(&n)).unwrap();
                let env = std::fs::read_to_string(log.join(format!("{stem}.env"))).unwrap();
                Call {
                    plugin,
                    command,
                    stdin: serde_json::from_str(&stdin).unwrap_or(Value::Null),
                    env: env.lines().map(str::to_string).collect(),
                }
            })
            .collect()
    }

    fn clear_log(&self) {
        std::fs::remove_dir_all(self.root.join("log")).unwrap();
        std::fs::create_dir(self.root.join("log")).unwrap();
    }

    fn cache_file(&self, network: &str, rt: &RuntimeConf) -> PathBuf {
        cache::cache_file(&self.root.join("cache"), network, rt).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[derive(Debug)]
struct Call {
    plugin: String,
    command: String,
    stdin: Value,
    env: Vec<String>,
}

impl Call {
    fn env(&self, key: &str) -> String {
        self.env
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} not set in {:?}", self.env))
            .to_string()
    }
}

fn who(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .map(|c| format!("{} {}", c.plugin, c.command))
        .collect()
}

const ALL: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

fn result_a() -> Value {
    json!({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],
           "ips":[{"address":"10.230.0.2/24","gateway":"10.230.0.1","interface":0}],"dns":{}})
}

fn result_b() -> Value {
    json!({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"},{"name":"extra"}],
           "ips":[{"address":"10.230.0.2/24","gateway":"10.230.0.1","interface":0}],"dns":{}})
}

fn list(version: &str, extra: Value) -> NetworkConfigList {
    let mut v = json!({"cniVersion": version, "name": "net1", "plugins": [
        {"type": "a", "capabilities": {"mac": true, "portMappings": false}, "keep": "me"},
        {"type": "b", "capabilities": {"portMappings": true}}
    ]});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    NetworkConfigList::from_bytes(v.to_string().as_bytes()).unwrap()
}

fn rt(id: &str) -> RuntimeConf {
    RuntimeConf {
        container_id: id.into(),
        netns: format!("/run/netns/{id}"),
        ifname: "eth0".into(),
        args: vec![("IgnoreUnknown".into(), "1".into()), ("K".into(), "V".into())],
        capability_args: json!({"mac":"c2:11:22:33:44:55","portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]})
            .as_object()
            .cloned()
            .unwrap(),
    }
}

fn world(tag: &str) -> World {
    let w = World::new(tag);
    w.plugin("a", ALL, &result_a());
    w.plugin("b", ALL, &result_b());
    w
}

#[test]
fn add_chains_prev_result_and_caches_the_final_result() {
    let w = world("add");
    let l = list("1.1.0", json!({}));
    let r = w.cni().add_network_list(&l, &rt("c1")).unwrap();
    assert_eq!(r.to_value(l.cni_version), result_b());
    let calls = w.calls();
    assert_eq!(who(&calls), ["a ADD", "b ADD"]);
    // First plugin: no prevResult; runtimeConfig only with what it enables.
    let a = &calls[0].stdin;
    assert_eq!(a["name"], "net1");
    assert_eq!(a["cniVersion"], "1.1.0");
    assert_eq!(a["keep"], "me");
    assert!(a.get("prevResult").is_none(), "{a}");
    assert_eq!(a["runtimeConfig"], json!({"mac":"c2:11:22:33:44:55"}));
    let b = &calls[1].stdin;
    assert_eq!(b["prevResult"], result_a());
    assert_eq!(
        b["runtimeConfig"],
        json!({"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp"}]})
    );
    for c in &calls {
        assert_eq!(c.env("CNI_COMMAND"), "ADD");
        assert_eq!(c.env("CNI_CONTAINERID"), "c1");
        assert_eq!(c.env("CNI_NETNS"), "/run/netns/c1");
        assert_eq!(c.env("CNI_IFNAME"), "eth0");
        assert_eq!(c.env("CNI_ARGS"), "IgnoreUnknown=1;K=V");
        assert_eq!(
            c.env("CNI_PATH"),
            format!(
                "{}:{}",
                w.root.join("nonexistent").display(),
                w.root.join("bin").display()
            )
        );
    }
    // The cache, in the reference's shape.
    let path = w.cache_file("net1", &rt("c1"));
    assert!(path.ends_with("results/net1-c1-eth0"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(raw["kind"], "cniCacheV1");
    assert_eq!(raw["containerId"], "c1");
    assert_eq!(raw["ifName"], "eth0");
    assert_eq!(raw["networkName"], "net1");
    assert_eq!(raw["netns"], "/run/netns/c1");
    assert_eq!(raw["cniArgs"], json!([["IgnoreUnknown", "1"], ["K", "V"]]));
    assert_eq!(
        raw["capabilityArgs"],
        Value::Object(rt("c1").capability_args)
    );
    assert_eq!(raw["result"], result_b());
    let config = raw["config"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(config)
            .unwrap(),
        l.bytes
    );
    assert_eq!(
        w.cni()
            .get_network_list_cached_result(&l, &rt("c1"))
            .unwrap()
            .unwrap()
            .to_value(l.cni_version),
        result_b()
    );
    let (config, cached_rt) = w
        .cni()
        .get_network_list_cached_config(&l, &rt("c1"))
        .unwrap()
        .unwrap();
    assert_eq!(config, l.bytes);
    assert_eq!(cached_rt, rt("c1"));
}

#[test]
fn add_stops_at_the_first_error_and_caches_nothing() {
    let w = world("addfail");
    w.fail("a", "ADD", 11, "try later");
    let l = list("1.0.0", json!({}));
    let e = w.cni().add_network_list(&l, &rt("c1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin type=\"a\" name=\"net1\" failed (add): try later (code 11)"
    );
    assert_eq!(e.code(), Some(11));
    assert_eq!(who(&w.calls()), ["a ADD"]);
    assert!(!w.cache_file("net1", &rt("c1")).exists());
}

#[test]
fn add_refuses_a_version_a_plugin_lacks_before_creating_anything() {
    let w = world("version");
    w.plugin("b", &["0.3.1", "0.4.0", "1.0.0"], &result_b());
    let l = list("1.1.0", json!({}));
    let e = w.cni().add_network_list(&l, &rt("c1")).unwrap_err();
    assert_eq!(e.code(), Some(1));
    let s = e.to_string();
    assert!(
        s.starts_with("plugin type=\"b\" name=\"net1\" failed (version): plugin does not support config version \"1.1.0\"; plugin supports [0.3.1, 0.4.0, 1.0.0]"),
        "{s}"
    );
    assert!(w.calls().is_empty(), "{:?}", who(&w.calls()));
    // validate reports it too, with every failing plugin.
    std::fs::write(w.root.join("ctl/legacy-a"), "").unwrap();
    let e = w.cni().validate_network_list(&l).unwrap_err();
    match e {
        Error::Multiple(errs) => {
            assert_eq!(errs.len(), 2);
            assert!(errs[0].to_string().contains("type=\"a\""));
            assert!(errs[1].to_string().contains("type=\"b\""));
        }
        e => panic!("{e}"),
    }
    // A plugin from before VERSION speaks 0.1.0.
    assert_eq!(w.cni().version_info("a").unwrap(), ["0.1.0"]);
}

#[test]
fn validate_returns_enabled_capabilities() {
    let w = world("validate");
    let l = list("1.0.0", json!({}));
    assert_eq!(
        w.cni().validate_network_list(&l).unwrap(),
        ["mac", "portMappings"]
    );
    let missing = NetworkConfigList::from_bytes(
        json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"nope"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let e = w.cni().validate_network_list(&missing).unwrap_err();
    assert!(
        e.to_string().contains("failed to find plugin \"nope\""),
        "{e}"
    );
    assert_eq!(e.code(), Some(7));
}

#[test]
fn invalid_runtime_values_are_refused_on_add() {
    let w = world("invalid");
    let l = list("1.0.0", json!({}));
    let mut r = rt("c1");
    r.container_id = String::new();
    assert_eq!(
        w.cni().add_network_list(&l, &r).unwrap_err().code(),
        Some(3)
    );
    r.container_id = "a/b".into();
    assert_eq!(
        w.cni().add_network_list(&l, &r).unwrap_err().code(),
        Some(4)
    );
    let mut r = rt("c1");
    r.ifname = "a-very-long-interface-name".into();
    assert_eq!(
        w.cni().add_network_list(&l, &r).unwrap_err().code(),
        Some(4)
    );
    assert!(w.calls().is_empty());
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_then_removes_the_cache() {
    let w = world("del");
    let l = list("1.0.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    w.clear_log();
    w.cni().del_network_list(&l, &rt("c1")).unwrap();
    let calls = w.calls();
    assert_eq!(who(&calls), ["b DEL", "a DEL"]);
    // The cached result, in the list's version (1.0.0 here).
    let mut want = result_b();
    want["cniVersion"] = json!("1.0.0");
    for c in &calls {
        assert_eq!(c.stdin["prevResult"], want);
        assert_eq!(c.env("CNI_COMMAND"), "DEL");
    }
    assert!(!w.cache_file("net1", &rt("c1")).exists());
    // A second DEL: no cache, no prevResult, still success.
    w.clear_log();
    w.cni().del_network_list(&l, &rt("c1")).unwrap();
    assert!(w
        .calls()
        .iter()
        .all(|c| c.stdin.get("prevResult").is_none()));
}

#[test]
fn del_failure_keeps_the_cache_for_a_retry() {
    let w = world("delfail");
    let l = list("1.0.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    w.fail("b", "DEL", 100, "link busy");
    w.clear_log();
    let e = w.cni().del_network_list(&l, &rt("c1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin type=\"b\" name=\"net1\" failed (delete): link busy (code 100)"
    );
    assert_eq!(who(&w.calls()), ["b DEL"]);
    assert!(w.cache_file("net1", &rt("c1")).exists());
    w.heal("b", "DEL");
    w.cni().del_network_list(&l, &rt("c1")).unwrap();
    assert!(!w.cache_file("net1", &rt("c1")).exists());
}

#[test]
fn del_is_not_blocked_by_an_empty_or_corrupt_cache() {
    let w = world("corrupt");
    let l = list("1.0.0", json!({}));
    for junk in [
        "",
        "{\"kind\":\"cniCacheV1\",\"containerId\":\"c1\",\"conf",
        "[]",
    ] {
        let path = w.cache_file("net1", &rt("c1"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, junk).unwrap();
        w.clear_log();
        w.cni().del_network_list(&l, &rt("c1")).unwrap();
        let calls = w.calls();
        assert_eq!(who(&calls), ["b DEL", "a DEL"]);
        assert!(calls.iter().all(|c| c.stdin.get("prevResult").is_none()));
        assert!(!path.exists(), "{junk:?}");
    }
    // CHECK, though, needs it intact.
    let path = w.cache_file("net1", &rt("c1"));
    std::fs::write(&path, "").unwrap();
    let e = w.cni().check_network_list(&l, &rt("c1")).unwrap_err();
    assert!(e.to_string().contains("empty file"), "{e}");
}

/// A cache file exactly as the reference libcni writes it (Go's
/// `json.Marshal` of its `cachedInfo`), written by hand: our DEL reads it
/// and hands its result to the plugins.
#[test]
fn del_uses_a_cache_file_written_by_the_reference() {
    let w = world("refcache");
    let l = list("1.0.0", json!({}));
    use base64::Engine;
    let config = base64::engine::general_purpose::STANDARD.encode(&l.bytes);
    let fixture = format!(
        concat!(
            r#"{{"kind":"cniCacheV1","containerId":"c1","config":"{}","ifName":"eth0","networkName":"net1","#,
            r#""netns":"/run/netns/c1","cniArgs":[["IgnoreUnknown","1"]],"#,
            r#""result":{{"cniVersion":"1.0.0","dns":{{}},"interfaces":[{{"mac":"aa:bb:cc:dd:ee:ff","name":"eth0","sandbox":"/run/netns/c1"}}],"#,
            r#""ips":[{{"address":"10.230.7.5/24","gateway":"10.230.7.1","interface":0}}],"routes":[{{"dst":"0.0.0.0/0"}}]}}}}"#
        ),
        config
    );
    let path = w.cache_file("net1", &rt("c1"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &fixture).unwrap();
    let attachments = w.cni().get_cached_attachments(Some("c1")).unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].config, l.bytes);
    assert_eq!(
        attachments[0].cni_args,
        [("IgnoreUnknown".into(), "1".into())]
    );
    w.cni().check_network_list(&l, &rt("c1")).unwrap();
    w.cni().del_network_list(&l, &rt("c1")).unwrap();
    let calls = w.calls();
    assert_eq!(who(&calls), ["a CHECK", "b CHECK", "b DEL", "a DEL"]);
    let prev = &calls[2].stdin["prevResult"];
    assert_eq!(prev["ips"][0]["address"], "10.230.7.5/24");
    assert_eq!(prev["interfaces"][0]["mac"], "aa:bb:cc:dd:ee:ff");
    assert_eq!(prev["routes"][0]["dst"], "0.0.0.0/0");
    assert!(!path.exists());
}

#[test]
fn legacy_cache_file_is_read_as_a_result() {
    let w = world("legacy");
    let l = list("0.4.0", json!({}));
    let path = w.cache_file("net1", &rt("c1"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.230.9.2/24"}],"dns":{}}"#,
    )
    .unwrap();
    w.cni().del_network_list(&l, &rt("c1")).unwrap();
    let calls = w.calls();
    assert_eq!(
        calls[0].stdin["prevResult"]["ips"][0],
        json!({"version":"4","address":"10.230.9.2/24"})
    );
}

#[test]
fn check_forward_with_cached_result_honouring_disable_check_and_version() {
    let w = world("check");
    let l = list("1.0.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    w.clear_log();
    w.cni().check_network_list(&l, &rt("c1")).unwrap();
    let calls = w.calls();
    assert_eq!(who(&calls), ["a CHECK", "b CHECK"]);
    assert_eq!(
        calls[0].stdin["prevResult"]["interfaces"][1]["name"],
        "extra"
    );
    w.fail("a", "CHECK", 100, "eth0 is gone");
    let e = w.cni().check_network_list(&l, &rt("c1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin type=\"a\" name=\"net1\" failed (check): eth0 is gone (code 100)"
    );
    w.clear_log();
    let off = list("1.0.0", json!({"disableCheck": "true"}));
    w.cni().check_network_list(&off, &rt("c1")).unwrap();
    assert!(w.calls().is_empty());
    let old = list("0.3.1", json!({}));
    let e = w.cni().check_network_list(&old, &rt("c1")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configuration version \"0.3.1\" does not support the CHECK command"
    );
    assert!(w.calls().is_empty());
}

#[test]
fn gc_deletes_stale_attachments_from_their_cache_then_sends_gc() {
    let w = world("gc");
    let l = list("1.1.0", json!({}));
    let mut c1 = rt("c1");
    c1.args = vec![("ONLY".into(), "c1".into())];
    w.cni().add_network_list(&l, &c1).unwrap();
    w.cni().add_network_list(&l, &rt("c2")).unwrap();
    let mut eth1 = rt("c2");
    eth1.ifname = "eth1".into();
    w.cni().add_network_list(&l, &eth1).unwrap();
    // Another network's attachment is never touched.
    let other = NetworkConfigList::from_bytes(
        json!({"cniVersion":"1.1.0","name":"other","plugins":[{"type":"a"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    w.cni().add_network_list(&other, &rt("c9")).unwrap();
    w.clear_log();

    let valid = [rt("c2").attachment(), eth1.attachment()];
    let cni = w.cni();
    let stale: Vec<String> = cni
        .gc_candidates(&l, &valid)
        .unwrap()
        .into_iter()
        .map(|a| format!("{}/{}", a.container_id, a.ifname))
        .collect();
    assert_eq!(stale, ["c1/eth0"]);
    cni.gc_network_list(&l, &valid).unwrap();
    let calls = w.calls();
    assert_eq!(who(&calls), ["b DEL", "a DEL", "a GC", "b GC"]);
    // The DEL is made from the cache: its netns, CNI_ARGS, capability args.
    assert_eq!(calls[0].env("CNI_CONTAINERID"), "c1");
    assert_eq!(calls[0].env("CNI_NETNS"), "/run/netns/c1");
    assert_eq!(calls[0].env("CNI_ARGS"), "ONLY=c1");
    assert_eq!(calls[1].stdin["runtimeConfig"]["mac"], "c2:11:22:33:44:55");
    assert_eq!(calls[1].stdin["prevResult"], result_b());
    // GC: no container, both keys.
    let want = json!([{"containerID":"c2","ifname":"eth0"},{"containerID":"c2","ifname":"eth1"}]);
    for c in &calls[2..] {
        assert_eq!(c.env("CNI_CONTAINERID"), "");
        assert_eq!(c.env("CNI_NETNS"), "");
        assert_eq!(c.env("CNI_IFNAME"), "");
        assert_eq!(c.env("CNI_ARGS"), "");
        assert_eq!(c.stdin["cni.dev/valid-attachments"], want);
        assert_eq!(c.stdin["cni.dev/attachments"], want);
        assert!(c.stdin.get("prevResult").is_none());
        assert!(c.stdin.get("runtimeConfig").is_none());
    }
    let left: Vec<String> = cni
        .get_cached_attachments(None)
        .unwrap()
        .into_iter()
        .map(|a| format!("{}/{}/{}", a.network, a.container_id, a.ifname))
        .collect();
    assert_eq!(left, ["net1/c2/eth0", "net1/c2/eth1", "other/c9/eth0"]);

    // Nothing valid: everything of this network is stale, and GC still
    // carries the (empty) list, so plugins release everything too.
    w.clear_log();
    cni.gc_network_list(&l, &[]).unwrap();
    let calls = w.calls();
    assert_eq!(
        who(&calls),
        ["b DEL", "a DEL", "b DEL", "a DEL", "a GC", "b GC"]
    );
    assert_eq!(calls[4].stdin["cni.dev/valid-attachments"], json!([]));
    assert_eq!(calls[4].stdin["cni.dev/attachments"], json!([]));
    assert_eq!(cni.get_cached_attachments(None).unwrap().len(), 1);
}

#[test]
fn gc_keeps_going_and_reports_every_error() {
    let w = world("gcerr");
    let l = list("1.1.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    w.cni().add_network_list(&l, &rt("c2")).unwrap();
    w.fail("b", "DEL", 100, "cannot delete");
    w.fail("a", "GC", 100, "cannot collect");
    w.clear_log();
    let e = w.cni().gc_network_list(&l, &[]).unwrap_err();
    let Error::Multiple(errs) = &e else {
        panic!("{e}")
    };
    let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "delete stale attachment c1 eth0: plugin type=\"b\" name=\"net1\" failed (delete): cannot delete (code 100)",
            "delete stale attachment c2 eth0: plugin type=\"b\" name=\"net1\" failed (delete): cannot delete (code 100)",
            "plugin type=\"a\" name=\"net1\" failed (gc): cannot collect (code 100)",
        ]
    );
    assert_eq!(who(&w.calls()), ["b DEL", "b DEL", "a GC", "b GC"]);
    // Failed DELs keep their caches for the next GC.
    assert_eq!(w.cni().get_cached_attachments(None).unwrap().len(), 2);
}

#[test]
fn gc_before_1_1_0_only_deletes_and_disable_gc_does_nothing() {
    let w = world("gcold");
    let l = list("1.0.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    let off = list("1.1.0", json!({"disableGC": true}));
    w.clear_log();
    w.cni().gc_network_list(&off, &[]).unwrap();
    assert!(w.calls().is_empty());
    w.cni().gc_network_list(&l, &[]).unwrap();
    assert_eq!(who(&w.calls()), ["b DEL", "a DEL"]);
}

#[test]
fn status_in_order_first_error_wins() {
    let w = world("status");
    let l = list("1.1.0", json!({}));
    w.cni().status_network_list(&l).unwrap();
    let calls = w.calls();
    assert_eq!(who(&calls), ["a STATUS", "b STATUS"]);
    assert_eq!(calls[0].stdin["name"], "net1");
    assert_eq!(calls[0].env("CNI_CONTAINERID"), "");
    w.fail("a", "STATUS", 50, "no addresses left");
    w.clear_log();
    let e = w.cni().status_network_list(&l).unwrap_err();
    assert_eq!(e.code(), Some(50));
    assert_eq!(who(&w.calls()), ["a STATUS"]);
    w.clear_log();
    w.cni()
        .status_network_list(&list("1.0.0", json!({})))
        .unwrap();
    assert!(w.calls().is_empty());
}

#[test]
fn missing_plugin_is_named_with_the_path() {
    let w = world("missing");
    let l = NetworkConfigList::from_bytes(
        json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"nope"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let e = w.cni().del_network_list(&l, &rt("c1")).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("plugin type=\"nope\" name=\"n\" failed (delete): failed to find plugin \"nope\" in CNI_PATH"),
        "{s}"
    );
    let empty = CniConfig::new(vec![]).with_cache_dir(w.root.join("cache"));
    assert_eq!(
        empty.del_network_list(&l, &rt("c1")).unwrap_err().code(),
        Some(4)
    );
}

#[test]
fn our_cache_files_parse_as_the_reference_struct() {
    // The reference reads with Go's encoding/json into cachedInfo: check
    // every field has the name and JSON type it declares.
    let w = world("shape");
    let l = list("1.1.0", json!({}));
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    let bytes = std::fs::read(w.cache_file("net1", &rt("c1"))).unwrap();
    let v: Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
    let keys: Vec<&str> = v.keys().map(String::as_str).collect();
    // In the order Go declares (and writes) them.
    let want = [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ];
    assert_eq!(keys, want);
    assert!(v["config"].is_string());
    assert!(v["cniArgs"].as_array().unwrap().iter().all(|p| p
        .as_array()
        .is_some_and(|kv| kv.len() == 2 && kv.iter().all(Value::is_string))));
    assert!(v["capabilityArgs"].is_object());
    assert!(v["result"].is_object());
    match CacheEntry::from_bytes(&bytes).unwrap() {
        CacheEntry::V1(a) => assert_eq!(*a, {
            let mut want = CachedAttachment::new("net1", &l.bytes, &rt("c1"), Some(result_b()));
            want.result = Some(result_b());
            want
        }),
        e => panic!("{e:?}"),
    }
}

#[test]
fn loads_from_a_directory_and_runs() {
    let w = world("load");
    let dir = w.root.join("net.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("10-net1.conflist"),
        json!({"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"a"}]}).to_string(),
    )
    .unwrap();
    let l = NetworkConfigList::load(&dir, "net1").unwrap();
    w.cni().add_network_list(&l, &rt("c1")).unwrap();
    assert_eq!(who(&w.calls()), ["a ADD"]);
    assert!(Path::new(&w.cache_file("net1", &rt("c1"))).exists());
}
