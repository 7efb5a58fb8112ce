//! The bodies of the fuzz targets, as plain functions of the input bytes.
//!
//! `fuzz/` (cargo-fuzz, libFuzzer, nightly) runs each of [`TARGETS`] under
//! coverage guidance; `tests/replay.rs` feeds every file saved under
//! `fuzz/corpus/<target>/` through the same function on stable, so a crash
//! found once stays fixed. A target fails by panicking: on an input no
//! plugin may panic on, or when an answer breaks the protocol (an error
//! without a code, a result that does not parse again).
//!
//! Nothing here touches the kernel or a path outside the scratch
//! directories it makes: plugins are driven through the functions that read
//! their configuration (`load_config` in each plugin crate), never through
//! a verb that could change the system.

use cni::args::CniArgs;
use cni::error::{DECODING_FAILURE, INTERNAL};
use cni::skel::{dispatch, Attachment, Command, Plugin, Request};
use cni::{CniResult, Error, NetConf, Result, Version};
use host_local::config::Config as HostLocalConfig;
use host_local::range::{RangeConf, RangeSet};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target: (name under `fuzz/fuzz_targets` and `fuzz/corpus`, body).
pub const TARGETS: &[(&str, Target)] = &[
    ("net_config", net_config),
    ("prev_result", prev_result),
    ("result_convert", result_convert),
    ("cni_args", cni_args),
    ("host_local_ranges", host_local_ranges),
    ("host_local_store", host_local_store),
    ("libcni_conflist", libcni_conflist),
    ("libcni_cache", libcni_cache),
];

/// Inputs that carry `CNI_ARGS`: the config, then a NUL, then the args.
/// Without a NUL the args are `IgnoreUnknown=1`.
fn split_args(data: &[u8]) -> (&[u8], String) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (
            &data[..i],
            String::from_utf8_lossy(&data[i + 1..]).replace('\0', ""),
        ),
        None => (data, "IgnoreUnknown=1".to_string()),
    }
}

/// An error a plugin may answer with: a spec or plugin code, a message,
/// never the panic hook's "internal error".
fn assert_cni_error(e: &Error, what: &str) {
    assert!(e.code != 0 && e.code != INTERNAL, "{what}: code {e:?}");
    assert!(!e.msg.is_empty(), "{what}: no message: {e:?}");
}

/// A plugin whose every verb reads the configuration the way every one of
/// ours does, so one run of the skeleton drives all the parsers.
struct EveryParser;

impl Plugin for EveryParser {
    fn name(&self) -> &str {
        "fuzz"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        every_parser(req).map(|_| CniResult::default())
    }

    fn check(&self, req: &Request) -> Result<()> {
        every_parser(req)
    }

    fn del(&self, req: &Request) -> Result<()> {
        every_parser(req)
    }
}

/// Run every plugin's configuration reader on `req`; the first error.
fn every_parser(req: &Request) -> Result<()> {
    let mut req = req.clone();
    // host-local reads `ipam.resolvConf` from disk on ADD: fuzz input must
    // never name a file to read (`/dev/zero` would never end).
    if let Some(ipam) = req.net.ipam.as_mut() {
        ipam.rest.remove("resolvConf");
    }
    let req = &req;
    let outcomes: Vec<(&str, Result<()>)> = vec![
        ("bridge", bridge::load_config(req)),
        ("ptp", ptp::load_config(req)),
        ("macvlan", macvlan::load_config(req)),
        ("tap", tap::load_config(req)),
        ("host-device", host_device::load_config(req)),
        ("portmap", portmap::load_config(req)),
        ("firewall", firewall::load_config(req)),
        ("bandwidth", bandwidth::load_config(req)),
        ("tuning", tuning::load_config(req)),
        ("sbr", sbr::load_config(req)),
        ("prevResult", req.net.prev_result().map(drop)),
        ("valid-attachments", req.valid_attachments().map(drop)),
        (
            "host-local ADD",
            HostLocalConfig::from_request(req, true).map(drop),
        ),
        (
            "host-local DEL",
            HostLocalConfig::from_request(req, false).map(drop),
        ),
        ("static", static_ipam::Config::from_request(req).map(drop)),
        ("dhcp", dhcp_config(req)),
    ];
    let mut first = Ok(());
    for (what, o) in outcomes {
        if let Err(e) = o {
            assert_cni_error(&e, what);
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

fn dhcp_config(req: &Request) -> Result<()> {
    let c = dhcp::config::Conf::parse(&req.config).map_err(Error::config)?;
    c.options(&req.args).map_err(Error::config)?;
    Ok(())
}

/// Run the skeleton (ADD) with `stdin` and `CNI_ARGS=args` over every
/// parser; check the answer is a result or a CNI error object, and that
/// input that is not JSON is code 6.
fn run_skeleton(stdin: &[u8], args: &str) {
    let vars: HashMap<&str, String> = HashMap::from([
        ("CNI_COMMAND", "ADD".to_string()),
        ("CNI_CONTAINERID", "fuzz-container".to_string()),
        ("CNI_NETNS", "/nonexistent/fuzz-netns".to_string()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_ARGS", args.to_string()),
        ("CNI_PATH", "/nonexistent/fuzz-bin".to_string()),
    ]);
    let env = move |k: &str| vars.get(k).cloned();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = dispatch(&EveryParser, &env, &mut &stdin[..], &mut out, &mut err);
    let answer: Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {out:?}"));
    if code == 0 {
        return;
    }
    let c = answer["code"]
        .as_u64()
        .expect("an error has a numeric code");
    assert!(
        answer["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    assert_ne!(c, u64::from(INTERNAL), "{answer}");
    // Input that is not JSON is code 6. Only its syntax counts: a value
    // under a key nobody reads is skipped unconverted (invalid UTF-8 in a
    // string, a number beyond f64), as Go's decoder skips it.
    if serde_json::from_slice::<serde::de::IgnoredAny>(stdin).is_err() {
        assert_eq!(
            c,
            u64::from(DECODING_FAILURE),
            "undecodable input: {answer}"
        );
    }
}

/// A network configuration (with optional `CNI_ARGS`) through the skeleton
/// and every plugin's configuration reader.
pub fn net_config(data: &[u8]) {
    let (stdin, args) = split_args(data);
    run_skeleton(stdin, &args);
}

/// Every spec version's result shape, in and out: what parses is written
/// back in every version, and that output parses again to the same thing.
fn round_trips(r: &CniResult) {
    for w in Version::ALL.iter().copied() {
        let out = r.to_value(w);
        assert_eq!(out["cniVersion"], w.as_str(), "{out}");
        let back = CniResult::from_value(&out, Version::V0_1_0)
            .unwrap_or_else(|e| panic!("our own {w} result does not parse: {e:?}\n{out}"));
        assert_eq!(back.to_value(w), out, "a {w} result changed when read back");
        let text = serde_json::to_vec(&out).expect("a Value serialises");
        assert_eq!(
            CniResult::from_slice(&text, w).ok().as_ref(),
            Some(&back),
            "{w} as text"
        );
        if w == Version::V1_1_0 {
            assert_eq!(&back, r, "1.1.0 holds everything: {out}");
        }
    }
}

/// `prevResult` of every spec version as a chained plugin reads it.
pub fn prev_result(data: &[u8]) {
    let Ok(prev) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for v in Version::ALL.iter().copied() {
        let conf =
            json!({"cniVersion": v.as_str(), "name": "fuzz", "type": "fuzz", "prevResult": prev});
        let net: NetConf = serde_json::from_value(conf).expect("a config with any prevResult");
        match net.prev_result() {
            Ok(Some(r)) => {
                round_trips(&r);
                sbr::addresses_of(&r, "eth0");
            }
            Ok(None) => {}
            Err(e) => assert_cni_error(&e, "prevResult"),
        }
    }
}

/// A result parsed as every version (its own `cniVersion` wins when it has
/// one) and converted to every other.
pub fn result_convert(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for default in Version::ALL.iter().copied() {
        match CniResult::from_value(&v, default) {
            Ok(r) => round_trips(&r),
            Err(e) => assert_cni_error(&e, "result"),
        }
    }
}

/// A configuration whose plugins read `CNI_ARGS`: host-local's `IP`, the
/// `MAC` of bridge, macvlan, tap and tuning, dhcp's `fromArg` options.
const ARGS_CONFIG: &str = r#"{"cniVersion":"1.1.0","name":"fuzz","type":"bridge",
  "ipam":{"type":"host-local","ranges":[[{"subnet":"10.239.0.0/24"}],[{"subnet":"fd00:239::/64"}]],
          "provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"}]}}"#;

/// `CNI_ARGS` alone and as the plugins read it.
pub fn cni_args(data: &[u8]) {
    let raw = String::from_utf8_lossy(data).replace('\0', "");
    let known: [&[&str]; 3] = [&[], &["IP", "MAC", "GATEWAY"], &["K8S_POD_NAME", "IP"]];
    for k in known {
        match CniArgs::parse(&raw, k) {
            Ok(a) => {
                for (key, _) in a.pairs() {
                    assert!(!key.is_empty() && a.get(key).is_some(), "{raw:?}");
                }
            }
            Err(e) => assert_eq!(e.code, cni::error::INVALID_ENV, "{e:?}"),
        }
    }
    run_skeleton(ARGS_CONFIG.as_bytes(), &raw);
}

/// A request for `conf` as the skeleton would make it.
fn request(conf: &Value, args: &str) -> Option<Request> {
    let config = serde_json::to_vec(conf).ok()?;
    let net: NetConf = serde_json::from_slice(&config).ok()?;
    let version = net.version().ok()?;
    Some(Request {
        command: Command::Add,
        container_id: "fuzz-container".into(),
        netns: None,
        ifname: "eth0".into(),
        args: args.into(),
        path: Vec::new(),
        config,
        net,
        version,
    })
}

/// host-local's `ipam` object (with optional `CNI_ARGS`): its ranges,
/// validated, then walked the way allocation walks them.
pub fn host_local_ranges(data: &[u8]) {
    let (ipam, args) = split_args(data);
    let Ok(Value::Object(mut ipam)) = serde_json::from_slice::<Value>(ipam) else {
        return;
    };
    ipam.remove("resolvConf");
    ipam.insert("type".into(), json!("host-local"));
    for version in ["0.2.0", "1.1.0"] {
        let conf = json!({"cniVersion": version, "name": "fuzz", "type": "bridge", "ipam": ipam});
        let Some(req) = request(&conf, &args) else {
            continue;
        };
        match HostLocalConfig::from_request(&req, true) {
            Ok(cfg) => walk_ranges(&cfg),
            Err(e) => assert_cni_error(&e, "host-local config"),
        }
    }
}

fn walk_ranges(cfg: &HostLocalConfig) {
    assert_eq!(cfg.requested.len(), cfg.range_sets.len());
    for set in &cfg.range_sets {
        let _ = set.to_string();
        for (ri, a) in set.candidates(None).take(64) {
            assert_eq!(set.range_for(a).map(|(i, _)| i), Some(ri), "{a} in {set}");
        }
        for r in &set.0 {
            assert!(r.size() >= 1);
            assert_eq!(r.offset_of(r.start), Some(0), "{r}");
            assert_eq!(
                r.offset_of(r.end),
                Some(r.size() - 1),
                "{r}: size {}",
                r.size()
            );
            assert!(r.subnet.contains(&r.start) && r.subnet.contains(&r.end));
            let _ = r.with_prefix(r.end);
            for last in [r.start, r.end] {
                for (_, a) in set.candidates(Some(last)).take(4) {
                    assert!(set.contains(a), "{a} in {set}");
                }
            }
        }
    }
    for (i, want) in cfg.requested.iter().enumerate() {
        if let Some(want) = want {
            assert!(cfg.range_sets[i].contains(want.ip), "{want:?}");
        }
    }
}

/// A fresh directory for one run, removed on drop: under /dev/shm when
/// there is one (the store fsyncs), else the temp dir.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!(
            "cni-fuzz-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the outside file holds; a store that follows a planted link would
/// change it.
const OUTSIDE: &[u8] = b"outside the data directory\n";

/// The names in host-local's network directory the store target changes.
const STORE_NAMES: &[&str] = &[
    ".",
    "10.239.0.2",
    "10.239.0.3",
    "10.239.0.4",
    "10.239.0.6",
    "fd00:239::2",
    "fd00:239::3",
    "last_reserved_ip.0",
    "last_reserved_ip.1",
    "lock",
    ".host-local-staging",
    ".host-local-index",
    ".host-local-index/stamp",
];

fn store_config(data_dir: &Path) -> HostLocalConfig {
    let set = |subnet: &str| {
        RangeSet::from_conf(
            &[RangeConf {
                subnet: Some(subnet.into()),
                ..Default::default()
            }],
            "ranges",
        )
        .expect("a valid range")
    };
    HostLocalConfig {
        name: "fuzz".into(),
        data_dir: data_dir.to_path_buf(),
        range_sets: vec![set("10.239.0.0/29"), set("fd00:239::/125")],
        requested: vec![None, None],
        routes: Vec::new(),
        dns: Default::default(),
    }
}

/// Change one entry of the network directory `net` as input says.
fn damage(net: &Path, name: &str, op: u8, content: &[u8], outside: &Path, outside_dir: &Path) {
    use std::io::Write;
    let p = net.join(name);
    let remove = |p: &Path| {
        let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
    };
    // The damage itself never writes through a link it planted (that would
    // be this harness following it, not the store).
    let link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_symlink());
    if link && matches!(op % 6, 0 | 1 | 5) {
        return;
    }
    // Failures are part of the game (a name that is a directory, say).
    let _ = match op % 6 {
        0 => std::fs::write(&p, content),
        1 => std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| f.write_all(content)),
        2 => {
            remove(&p);
            Ok(())
        }
        3 => {
            remove(&p);
            let target = if content.len() & 1 == 0 {
                outside
            } else {
                outside_dir
            };
            std::os::unix::fs::symlink(target, &p)
        }
        4 => {
            remove(&p);
            std::fs::create_dir(&p)
        }
        _ => std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(content.len() as u64)),
    };
}

/// host-local's files damaged by input, then every verb on them: each
/// answers (no panic, a coded error), and no planted link is followed out
/// of the data directory.
///
/// Input: records of `[op, name, len, len bytes of content]`; `name`
/// picks one of [`STORE_NAMES`] or a file the index made.
pub fn host_local_store(data: &[u8]) {
    let scratch = Scratch::new("store");
    let data_dir = scratch.0.join("data");
    let outside = scratch.0.join("outside");
    let outside_dir = scratch.0.join("outside-dir");
    std::fs::create_dir(&data_dir).expect("mkdir data");
    std::fs::create_dir(&outside_dir).expect("mkdir outside-dir");
    std::fs::write(&outside, OUTSIDE).expect("write outside");
    std::fs::write(outside_dir.join("keep"), OUTSIDE).expect("write outside-dir/keep");

    let cfg = store_config(&data_dir);
    host_local::allocate(&cfg, "c1", "eth0").expect("ADD on an empty store");
    host_local::allocate(&cfg, "c2", "eth0").expect("second ADD");
    let net = data_dir.join("fuzz");
    let mut names: Vec<String> = STORE_NAMES.iter().map(|s| s.to_string()).collect();
    let index = net.join(host_local::index::INDEX_DIR);
    let mut made: Vec<String> = std::fs::read_dir(&index)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    format!(
                        "{}/{}",
                        host_local::index::INDEX_DIR,
                        e.file_name().to_string_lossy()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    made.sort();
    names.extend(made);

    let mut rest = data;
    while let [op, name, len, tail @ ..] = rest {
        let n = (*len as usize).min(tail.len());
        let (content, next) = tail.split_at(n);
        let name = &names[*name as usize % names.len()];
        damage(&net, name, *op, content, &outside, &outside_dir);
        rest = next;
    }

    let mut answers: Vec<(&str, Result<()>)> = Vec::new();
    answers.push(("ADD c3", host_local::allocate(&cfg, "c3", "eth1").map(drop)));
    answers.push(("CHECK c1", host_local::check(&cfg, "c1", "eth0", None)));
    answers.push((
        "DEL c1",
        host_local::release(&cfg, "c1", "eth0", &[]).map(drop),
    ));
    let keep = [Attachment {
        container_id: "c2".into(),
        ifname: "eth0".into(),
    }];
    answers.push(("GC", host_local::gc(&cfg, &keep).map(drop)));
    answers.push(("STATUS", host_local::status(&cfg)));
    answers.push((
        "DEL c3",
        host_local::release(&cfg, "c3", "eth1", &[]).map(drop),
    ));
    answers.push(("ADD c1", host_local::allocate(&cfg, "c1", "eth0").map(drop)));
    for (what, a) in &answers {
        if let Err(e) = a {
            assert_cni_error(e, what);
        }
    }
    assert_eq!(
        std::fs::read(&outside).ok().as_deref(),
        Some(OUTSIDE),
        "a link in the network directory was followed out of it"
    );
    let mut listing: Vec<String> = std::fs::read_dir(&outside_dir)
        .expect("list outside-dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    listing.sort();
    assert_eq!(listing, ["keep"], "a linked directory was written to");
    assert_eq!(
        std::fs::read(outside_dir.join("keep")).ok().as_deref(),
        Some(OUTSIDE)
    );
}

/// A conflist (and a single-plugin config) as libcni loads it, and the
/// requests it would then build for each plugin.
pub fn libcni_conflist(data: &[u8]) {
    let caps = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80}],
                      "mac": "0a:58:0a:ef:00:05", "ips": ["10.239.0.5/24"]});
    let caps = caps.as_object().cloned().unwrap_or_default();
    let prev = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.239.0.5/24"}]});
    for parsed in [
        libcni::NetworkConfigList::from_bytes(data),
        libcni::NetworkConfigList::from_single_conf(data),
    ] {
        match parsed {
            Ok(list) => {
                for p in &list.plugins {
                    let _ = p.enabled_capabilities().count();
                    let add = libcni::invoke::build_request(&list, p, Some(&prev), &caps);
                    assert_eq!(add["cniVersion"], list.cni_version.as_str());
                    libcni::invoke::build_gc_request(&list, p, &[]);
                    libcni::invoke::build_status_request(&list, p);
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if let Err(e) = libcni::PluginConfig::from_bytes(data) {
        assert!(!e.to_string().is_empty());
    }
}

/// A result-cache file as libcni reads it; what it reads is written back
/// and read again unchanged.
pub fn libcni_cache(data: &[u8]) {
    let Ok(entry) = libcni::cache::CacheEntry::from_bytes(data) else {
        return;
    };
    if let Some(r) = entry.result() {
        if let Ok(r) = CniResult::from_value(r, Version::V1_1_0) {
            round_trips(&r);
        }
    }
    if let libcni::cache::CacheEntry::V1(a) = &entry {
        let _ = a.runtime_conf().cni_args_string();
        let bytes = a.to_bytes();
        let again = libcni::cache::CacheEntry::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("our own cache file does not parse: {e}"));
        assert_eq!(again, entry, "a cache entry changed when written back");
    }
}
