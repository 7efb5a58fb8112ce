//! The suite's one executable: every role answers under its name, an
//! unknown name gets a CNI error, and an IPAM plugin that resolves to this
//! same executable runs in-process with exactly the outcome an exec gives.
//! The equivalence test runs one sequence of bridge calls (ADD, CHECK,
//! failing ADDs that must roll back, a config error, GC, DEL) twice: once
//! with host-local a hard link to the suite (in-process) and once with a
//! copy of it (a different file: executed), and compares every answer and
//! the whole host-local directory after every step.

use cni_tests::{our_bin_dir, our_plugin, Call, Output, PluginEnv, RunCall, TempDir, TestNetns};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const NET: &str = "mcnet";

#[test]
fn every_role_answers_version_under_its_name() {
    let dir = our_bin_dir();
    let suite = cni_tests::target_dir().join(cni_tests::SUITE_BINARY);
    let mut cmd = Command::new(&suite);
    cmd.arg("--list");
    let roles = cni_tests::run_with_timeout(cmd, None).stdout;
    let roles: Vec<&str> = roles.lines().collect();
    for plugin in [
        "bridge",
        "ptp",
        "loopback",
        "portmap",
        "firewall",
        "host-local",
        "static",
    ] {
        assert!(roles.contains(&plugin), "{plugin} not in {roles:?}");
    }
    for role in roles.iter().filter(|r| **r != "cnitool") {
        let out = Call::new(dir.join(role), "VERSION", r#"{"cniVersion":"1.0.0"}"#).run_here();
        let v = out.ok().json();
        assert!(
            v["supportedVersions"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{role}"
        );
        // The about text names the role.
        let mut about = Command::new(dir.join(role));
        about.env_remove("CNI_COMMAND");
        let out = cni_tests::run_with_timeout(about, None);
        assert_eq!(out.status, 0, "{role}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("CNI {role} plugin")),
            "{role}: {}",
            out.stderr
        );
    }
}

#[test]
fn an_unknown_name_is_a_cni_error_listing_the_known_ones() {
    let tmp = TempDir::new("mc-unknown");
    let bogus = tmp.add_plugin("no-such-plugin", &our_plugin("bridge"));
    let out = Call::new(
        &bogus,
        "ADD",
        r#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#,
    )
    .run_here();
    let (code, msg) = out.cni_error();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("\"no-such-plugin\"") && msg.contains("host-local"),
        "{msg}"
    );
}

/// One sequence of calls and what each left behind.
#[derive(Debug, PartialEq)]
struct Step {
    what: &'static str,
    status: i32,
    answer: Value,
    files: BTreeMap<String, String>,
}

/// The answer with what differs between two runs by construction (veth
/// names and MAC addresses, which are random) taken out.
fn normalized(out: &Output) -> Value {
    let mut v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    if let Some(ifaces) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifaces {
            if let Some(o) = i.as_object_mut() {
                o.remove("mac");
                if o.get("sandbox").is_none() {
                    o.remove("name");
                }
            }
        }
    }
    v
}

/// Every file under `dir` (relative path -> content), with the index
/// stamp's record of the directory's inode and times left out.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                let content = std::fs::read(&p).unwrap_or_default();
                let content: String = String::from_utf8_lossy(&content)
                    .lines()
                    .filter(|l| {
                        !rel.ends_with("stamp")
                            || !(l.starts_with("dir ") || l.starts_with("last "))
                    })
                    .map(|l| format!("{l}\n"))
                    .collect();
                all.insert(rel, content);
            }
        }
    }
    all
}

fn conf(env: &PluginEnv, version: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": NET,
        "type": "bridge",
        "bridge": "mcbr0",
        "isGateway": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": env.data.path_str(),
        },
    })
}

/// Run the sequence with host-local as `host_local` on `CNI_PATH`; every
/// call logs at debug level, so whether host-local ran in-process shows.
fn sequence(tag: &str, copied: bool) -> (Vec<Step>, String) {
    let env = PluginEnv::new(tag, &[("bridge", &our_plugin("bridge"))]);
    let hl = env.bin.path().join("host-local");
    if copied {
        std::fs::copy(our_plugin("host-local"), &hl).expect("copy host-local");
    } else {
        env.bin.add_plugin("host-local", &our_plugin("host-local"));
    }
    let mut steps = Vec::new();
    let mut stderr = String::new();
    let ctrs: Vec<TestNetns> = (0..4)
        .map(|i| TestNetns::new(&format!("{tag}-c{i}")))
        .collect();
    let mut run = |what: &'static str, verb: &str, ctr: Option<&TestNetns>, id: &str, c: &Value| {
        let mut call = env.call("bridge", verb, c).container(id);
        if let Some(ctr) = ctr {
            call = call.netns(&ctr.path_str());
        }
        let mut cmd = call.command();
        cmd.env("CNI_LOG_LEVEL", "debug");
        let mut out = env.host.run(cmd, Some(c.to_string().as_bytes()));
        stderr.push_str(&out.stderr);
        let raw = serde_json::from_str::<Value>(&out.stdout).unwrap_or(Value::Null);
        if let Some(ctr) = ctr {
            out.stdout = out.stdout.replace(&ctr.path_str(), "<netns>");
        }
        steps.push(Step {
            what,
            status: out.status,
            answer: normalized(&out),
            files: files(env.data.path()),
        });
        raw
    };
    // A /29: .1 gateway, .2-.6 for containers.
    let good = conf(&env, "1.1.0", "10.247.1.0/29");
    let r1 = run("add c1", "ADD", Some(&ctrs[0]), "c1", &good);
    let mut checked = good.clone();
    checked["prevResult"] = r1.clone();
    run("check c1", "CHECK", Some(&ctrs[0]), "c1", &checked);
    // Fails after IPAM reserved: a route whose gateway is off-link.
    let mut bad_route = good.clone();
    bad_route["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "10.247.250.1"}]);
    run("add c2, bad route", "ADD", Some(&ctrs[1]), "c2", &bad_route);
    // Fails in IPAM: an invalid range.
    let bad_range = conf(&env, "1.1.0", "10.247.1.0/33");
    run("add c2, bad range", "ADD", Some(&ctrs[1]), "c2", &bad_range);
    // Fails in IPAM: the same container asks twice.
    run("add c1 again", "ADD", Some(&ctrs[0]), "c1", &good);
    run("add c3", "ADD", Some(&ctrs[2]), "c3", &good);
    // GC with c1 valid releases c3's address (its veth stays: GC does
    // not know the container's namespace).
    let mut gc = good.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    run("gc", "GC", None, "", &gc);
    let mut del = good.clone();
    del["prevResult"] = r1;
    run("del c1", "DEL", Some(&ctrs[0]), "c1", &del);
    run("del c1 again", "DEL", Some(&ctrs[0]), "c1", &del);
    run("del c3 without netns", "DEL", None, "c3", &good);
    (steps, stderr)
}

#[test]
fn ipam_in_process_and_executed_give_the_same_answers_and_files() {
    let (linked, linked_log) = sequence("mc-link", false);
    let (copied, copied_log) = sequence("mc-copy", true);
    // The two runs really took the two paths.
    assert!(linked_log.contains("running it in-process"), "{linked_log}");
    assert!(
        !copied_log.contains("running it in-process"),
        "{copied_log}"
    );
    for (a, b) in linked.iter().zip(&copied) {
        assert_eq!(
            a, b,
            "step {:?} differs between in-process and exec",
            a.what
        );
    }
    assert_eq!(linked.len(), copied.len());
    // And the sequence did what it says: successes, failures, rollbacks.
    let status: Vec<(&str, i32)> = linked.iter().map(|s| (s.what, s.status)).collect();
    assert_eq!(
        status,
        vec![
            ("add c1", 0),
            ("check c1", 0),
            ("add c2, bad route", 1),
            ("add c2, bad range", 1),
            ("add c1 again", 1),
            ("add c3", 0),
            ("gc", 0),
            ("del c1", 0),
            ("del c1 again", 0),
            ("del c3 without netns", 0),
        ]
    );
    let reserved = |s: &Step| {
        s.files
            .keys()
            .filter(|k| k.starts_with(&format!("{NET}/10.")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(reserved(&linked[0]), vec![format!("{NET}/10.247.1.2")]);
    assert_eq!(
        reserved(&linked[2]),
        reserved(&linked[0]),
        "bad route rolled back"
    );
    assert_eq!(reserved(&linked[5]).len(), 2);
    assert_eq!(
        reserved(&linked[6]),
        vec![format!("{NET}/10.247.1.2")],
        "gc released c3"
    );
    assert!(reserved(linked.last().unwrap()).is_empty());
}
