//! Regression tests for defects from the issue tracker, each in namespaces
//! of its own: `CNI_NETNS` naming something that is not a network
//! namespace (a FIFO used to hang ADD and DEL forever), `"mtu": 0`, a
//! bridge left behind by a failed ADD, and an IPAM child outliving a killed
//! plugin.
//!
//! Needs root and our plugins built (`cargo build -p bridge -p ptp -p
//! loopback -p host-local`): the host-local is always ours, never the
//! reference's.

use cni_tests::{
    default_host_local, host_local_ipam, merge, our_plugin, Output, PluginEnv, RunCall, TempDir,
    TestNetns,
};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// What "promptly" means for a refused `CNI_NETNS`: the reference answers
/// in milliseconds; a debug build under load in well under this.
const PROMPT: Duration = Duration::from_secs(5);

fn env(tag: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            ("ptp", &our_plugin("ptp")),
            ("loopback", &our_plugin("loopback")),
            ("host-local", &default_host_local()),
        ],
    )
}

/// Run `command` of `conf`'s plugin with `CNI_NETNS=netns` in the host,
/// and check it answered within [`PROMPT`]. (The harness kills a command
/// that hangs past its own timeout and fails the test.)
fn run_prompt(env: &PluginEnv, command: &str, netns: &str, conf: &Value) -> Output {
    let ty = conf["type"].as_str().expect("config has a type");
    let call = env.call(ty, command, conf).container("defect").netns(netns);
    let started = Instant::now();
    let out = call.run_in(&env.host);
    let took = started.elapsed();
    assert!(
        took < PROMPT,
        "{ty} {command} with CNI_NETNS={netns} took {took:?}: {out:?}"
    );
    out
}

/// Paths that exist but are not network namespaces: (what, path, what the
/// error must call it). Made in `dir`.
fn not_network_namespaces(dir: &TempDir) -> Vec<(&'static str, String, &'static str)> {
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let file = dir.path().join("file");
    std::fs::write(&file, "").expect("write file");
    let subdir = dir.path().join("dir");
    std::fs::create_dir(&subdir).expect("mkdir");
    vec![
        ("FIFO", fifo.display().to_string(), "FIFO"),
        ("regular file", file.display().to_string(), "regular file"),
        ("directory", subdir.display().to_string(), "directory"),
        // The plugin's own UTS namespace: opened read-only and refused.
        ("uts namespace", "/proc/self/ns/uts".into(), "uts namespace"),
    ]
}

#[test]
fn netns_that_is_not_a_network_namespace_is_refused_promptly() {
    let env = env("df-ns");
    let bridge = json!({"cniVersion": "1.0.0", "name": "dfnet", "type": "bridge",
                        "bridge": "dfbr0"});
    let lo = json!({"cniVersion": "1.0.0", "name": "dflo", "type": "loopback"});
    let before = env.host.link_names();
    for (what, path, called) in not_network_namespaces(&env.data) {
        for conf in [&bridge, &lo] {
            let ty = conf["type"].as_str().unwrap_or_default();
            let out = run_prompt(&env, "ADD", &path, conf);
            let msg = out.error_with(4);
            assert!(
                msg.contains(&path) && msg.contains("not a network namespace"),
                "{ty} ADD, {what}: {msg}"
            );
            assert!(msg.contains(called), "{ty} ADD, {what}: {msg}");
            assert_eq!(env.host.link_names(), before, "{ty} ADD, {what}");

            // DEL: an unmounted namespace file (a regular file) is a
            // namespace that is gone, as for the reference; anything else
            // is an error, promptly.
            let out = run_prompt(&env, "DEL", &path, conf);
            if what == "regular file" {
                out.ok();
            } else {
                let (_, msg) = out.cni_error();
                assert!(
                    msg.contains(&path) && msg.contains("not a network namespace"),
                    "{ty} DEL, {what}: {msg}"
                );
            }
            assert_eq!(env.host.link_names(), before, "{ty} DEL, {what}");
        }
    }
    assert!(env.host.link("dfbr0").is_none());
}

/// The library call under both: `open_if_present` (DEL's) takes only an
/// unmounted regular file, or no file, for "the namespace is gone".
#[test]
fn open_if_present_takes_only_a_leftover_file_for_gone() {
    let dir = TempDir::new("df-open");
    for (what, path, called) in not_network_namespaces(&dir) {
        let started = Instant::now();
        let e = cni_kernel::Netns::open(&path).expect_err(what);
        assert!(e.to_string().contains(called), "{what}: {e}");
        let present = cni_kernel::Netns::open_if_present(&path);
        assert!(started.elapsed() < PROMPT, "{what}");
        match present {
            Ok(None) => assert_eq!(what, "regular file"),
            Ok(Some(_)) => panic!("{what} opened as a network namespace"),
            Err(e) => {
                assert_ne!(what, "regular file", "{e}");
                assert!(e.to_string().contains(called), "{what}: {e}");
            }
        }
    }
    let gone = dir.path().join("no-such-namespace");
    assert!(matches!(
        cni_kernel::Netns::open_if_present(&gone),
        Ok(None)
    ));
    let ns = TestNetns::new("df-open-ns");
    assert!(cni_kernel::Netns::open(ns.path()).is_ok());
    assert!(cni_kernel::Netns::open("/proc/self/ns/net").is_ok());
}

/// `"mtu": 0` is "not set", as for the reference: the links get the
/// kernel's default.
#[test]
fn mtu_zero_means_unset() {
    let env = env("df-mtu");
    let ctr = TestNetns::new("df-mtu-c");
    let ctr2 = TestNetns::new("df-mtu-c2");
    let br = json!({"cniVersion": "1.0.0", "name": "dfmtu", "type": "bridge",
                    "bridge": "dfmtu0", "mtu": 0,
                    "ipam": host_local_ipam(&env.data, &["10.241.1.0/24"])});
    let r = env.add(&ctr, "m1", &br).ok().json();
    assert_eq!(ctr.link("eth0").expect("eth0")["mtu"], 1500, "{r}");
    assert_eq!(env.host.link("dfmtu0").expect("bridge")["mtu"], 1500);
    env.verb("DEL", Some(&ctr), "m1", &br).ok();

    let ptp = json!({"cniVersion": "1.0.0", "name": "dfmtup", "type": "ptp", "mtu": 0,
                     "ipam": host_local_ipam(&env.data, &["10.241.2.0/24"])});
    let r = env.add(&ctr2, "m2", &ptp).ok().json();
    assert_eq!(ctr2.link("eth0").expect("eth0")["mtu"], 1500, "{r}");
    let host_veth = r["interfaces"][0]["name"].as_str().expect("host veth");
    assert_eq!(env.host.link(host_veth).expect("host veth")["mtu"], 1500);
    env.verb("DEL", Some(&ctr2), "m2", &ptp).ok();
}

/// An `ipam` section host-local refuses (runs alongside the bridge work,
/// so it fails after the bridge was made).
fn refused_ipam(env: &PluginEnv) -> Value {
    json!({"type": "host-local", "ranges": [[{"subnet": "not-a-subnet"}]],
           "dataDir": env.data.path_str()})
}

/// A failed ADD removes the bridge it created itself, and never a bridge
/// that was there before (empty, or with other containers on it).
#[test]
fn failed_add_removes_only_a_bridge_it_created() {
    let env = env("df-br");
    let ctr = TestNetns::new("df-br-c");
    let before = env.host.link_names();
    let bad = json!({"cniVersion": "1.0.0", "name": "dfbrn", "type": "bridge",
                     "bridge": "dfbr1", "isGateway": true, "ipam": refused_ipam(&env)});
    env.add(&ctr, "b1", &bad).cni_error();
    assert!(env.host.link("dfbr1").is_none(), "the new bridge is left");
    assert_eq!(env.host.link_names(), before);
    assert_eq!(ctr.link_names(), ["lo"]);

    // A bridge that was there before, empty: kept.
    env.host
        .exec(&["ip", "link", "add", "dfbr1", "type", "bridge"])
        .ok();
    env.add(&ctr, "b1", &bad).cni_error();
    assert!(env.host.link("dfbr1").is_some(), "a pre-existing bridge");
    env.host.exec(&["ip", "link", "del", "dfbr1"]).ok();

    // A bridge made by an earlier ADD, carrying its container: kept, and
    // that container stays attached.
    let good = merge(
        bad.clone(),
        json!({"ipam": host_local_ipam(&env.data, &["10.241.3.0/24"])}),
    );
    let c1 = TestNetns::new("df-br-c1");
    let r1 = env.add(&c1, "c1", &good).ok().json();
    let port = r1["interfaces"][1]["name"].as_str().expect("host veth");
    env.add(&ctr, "b2", &bad).cni_error();
    let br = env.host.link("dfbr1").expect("the bridge stays");
    assert_eq!(
        env.host.link(port).expect("c1's port")["master"],
        br["ifname"],
        "c1's port left the bridge"
    );
    assert!(c1.ping_within("10.241.3.1", Duration::from_secs(5)));
    env.verb("DEL", Some(&c1), "c1", &good).ok();
    env.host.exec(&["ip", "link", "del", "dfbr1"]).ok();
    assert_eq!(env.host.link_names(), before);
}

/// Same with an IPAM plugin that fails on its own (a fake), and the
/// failure coming late (after the veth was made and enslaved).
#[test]
fn failed_add_with_a_failing_ipam_plugin_leaves_no_bridge() {
    let env = env("df-br2");
    env.bin.script(
        "fail-ipam",
        "cat >/dev/null\nsleep 0.2\nprintf '%s' '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no addresses today\"}'\nexit 1\n",
    );
    let ctr = TestNetns::new("df-br2-c");
    let before = env.host.link_names();
    let bad = json!({"cniVersion": "1.0.0", "name": "dfbrf", "type": "bridge",
                     "bridge": "dfbr2", "ipam": {"type": "fail-ipam"}});
    let msg = env.add(&ctr, "f1", &bad).error_with(11);
    assert!(msg.contains("no addresses today"), "{msg}");
    assert_eq!(env.host.link_names(), before);
    assert_eq!(ctr.link_names(), ["lo"]);
}

/// A process that must not outlive the test: SIGKILLed on drop.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        // Gone already is the expected case.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Whether `pid` has exited (gone, or a zombie awaiting its reaper).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// A fake IPAM plugin that records its pid in `dir/ipam.pid`, then sleeps.
fn sleepy_ipam(env: &PluginEnv) -> std::path::PathBuf {
    let pidfile = env.data.path().join("ipam.pid");
    env.bin.script(
        "sleepy-ipam",
        &format!(
            "cat >/dev/null\necho $$ > {p}.tmp && mv {p}.tmp {p}\nexec sleep 30\n",
            p = pidfile.display()
        ),
    );
    pidfile
}

/// A bridge config `network` (bridge `<network>0`) whose IPAM is
/// [`sleepy_ipam`], and the command of its ADD for `container` in `ctr`.
fn sleepy_add(
    env: &PluginEnv,
    ctr: &TestNetns,
    network: &str,
    container: &str,
) -> (Value, std::process::Command) {
    let conf = json!({"cniVersion": "1.0.0", "name": network, "type": "bridge",
                      "bridge": format!("{network}0"), "ipam": {"type": "sleepy-ipam"}});
    let cmd = env
        .call("bridge", "ADD", &conf)
        .container(container)
        .netns(&ctr.path_str())
        .command();
    (conf, cmd)
}

fn wait_for_pid(pidfile: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(pidfile) {
            if let Ok(pid) = s.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "the IPAM plugin never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A plugin killed while its IPAM plugin runs takes the IPAM plugin with
/// it: otherwise the IPAM ADD could reserve after the runtime's DEL.
#[test]
fn ipam_child_dies_with_a_killed_plugin() {
    let env = env("df-kill");
    let pidfile = sleepy_ipam(&env);
    let ctr = TestNetns::new("df-kill-c");
    let (conf, mut cmd) = sleepy_add(&env, &ctr, "dfkill", "k1");
    env.host.ns().enter_on_exec(&mut cmd);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut plugin = cmd.spawn().expect("spawn bridge");
    let _plugin_guard = Reap(plugin.id() as i32);
    {
        use std::io::Write;
        let mut stdin = plugin.stdin.take().expect("stdin");
        stdin
            .write_all(conf.to_string().as_bytes())
            .expect("write config");
    }
    let ipam = wait_for_pid(&pidfile);
    let _ipam_guard = Reap(ipam);
    assert!(!exited(ipam));
    plugin.kill().expect("kill the plugin");
    plugin.wait().expect("reap the plugin");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !exited(ipam) {
        assert!(
            Instant::now() < deadline,
            "IPAM child {ipam} outlived its killed plugin"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A delegate that never answers is killed after the delegate timeout
/// (shortened here with `CNI_DELEGATE_TIMEOUT_MS`) and the ADD fails with
/// an error naming the plugin and the timeout, leaving nothing behind.
#[test]
fn a_hanging_ipam_plugin_times_out() {
    let env = env("df-tmo");
    let pidfile = sleepy_ipam(&env);
    let ctr = TestNetns::new("df-tmo-c");
    let before = env.host.link_names();
    let (conf, mut cmd) = sleepy_add(&env, &ctr, "dftmo", "t1");
    cmd.env("CNI_DELEGATE_TIMEOUT_MS", "500");
    let started = Instant::now();
    let out = env.host.run(cmd, Some(conf.to_string().as_bytes()));
    let took = started.elapsed();
    let ipam = wait_for_pid(&pidfile);
    let _ipam_guard = Reap(ipam);
    let msg = out.error_with(100);
    assert!(
        msg.contains("sleepy-ipam") && msg.contains("0.5 s"),
        "{msg}"
    );
    assert!(took < PROMPT, "took {took:?}");
    assert!(exited(ipam), "the timed-out IPAM plugin still runs");
    assert_eq!(env.host.link_names(), before);
    assert_eq!(ctr.link_names(), ["lo"]);
}
