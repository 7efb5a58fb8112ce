//! containerd (Debian's 1.6) running containers on our plugins with
//! `ctr run --cni`.
//!
//! Each test starts a private containerd (its own root, state and socket in
//! a temp dir, the CRI plugin off) inside a "host" network namespace of the
//! test's, imports an OCI image it builds from a static busybox, and runs
//! containers in the foreground: `ctr` sends DEL only when a foreground run
//! sees its task exit. `ctr` has its CNI paths compiled in (configs in
//! /etc/cni/net.d, plugins in /opt/cni/bin and /usr/lib/cni), so each `ctr`
//! call runs in a mount namespace of its own where those paths hold only
//! the test's config and a tracing directory in front of our plugins (an
//! empty /usr/lib/cni hides the reference plugins), and /var/lib/cni and
//! /run/cni are the test's. `$CNI_BIN_DIR` points the wrappers at another
//! plugin directory (the reference's, for comparison).
//!
//! `ctr run` has no port mappings; the CRI suite covers portmap.

mod runtime;

use cni_tests::{our_bin_dir, TempDir, TestNetns};
use runtime::{require, tracing_plugin_dir};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "docker.io/cnitest/busybox:1";

struct Containerd {
    host: TestNetns,
    /// The containerd namespace, unique per test: runc keeps its state under
    /// /run/containerd/runc/<namespace>/<container> whatever the daemon, so
    /// tests running at once must not share one.
    namespace: String,
    dir: TempDir,
    daemon: Option<runtime::Containerd>,
    traces: PathBuf,
}

impl Containerd {
    fn new(tag: &str, conflist: &Value) -> Containerd {
        require("containerd", "containerd");
        require("ctr", "containerd");
        require("runc", "runc");
        require("nsenter", "util-linux");
        let host = TestNetns::new(tag);
        let dir = TempDir::new(tag);
        let d = dir.path();
        runtime::make_dirs(
            d,
            &[
                "root",
                "state",
                "netd",
                "bin",
                "empty",
                "varlibcni",
                "runcni",
                "traces",
                "image",
                "runcontainerd",
            ],
            &[
                "/var/lib/cni",
                "/run/cni",
                "/etc/cni/net.d",
                "/usr/lib/cni",
                "/run/containerd",
            ],
        );
        let traces = d.join("traces");
        tracing_plugin_dir(&d.join("bin"), &traces, &our_bin_dir());
        std::fs::write(d.join("netd/10-test.conflist"), conflist.to_string()).expect("conflist");
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n",
                d = d.display()
            ),
        )
        .expect("config.toml");
        // ctr calls get the same view of /run/containerd, for the stdio FIFOs.
        let daemon = runtime::Containerd::start(
            d,
            &host.path_str(),
            &[(d.join("runcontainerd"), "/run/containerd")],
        );
        let me = Containerd {
            namespace: host.name().to_string(),
            host,
            dir,
            daemon: Some(daemon),
            traces,
        };
        if let Some(daemon) = &me.daemon {
            daemon.wait_ready(Duration::from_secs(20), || me.ctr(&["version"]).status == 0);
        }
        let tar = runtime::build_image(&me.path("image"), IMAGE, &["sh"]);
        let tar = tar.display().to_string();
        me.ok(&["image", "import", "--all-platforms", &tar]);
        me
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// The `ctr` command line in the test's view of the CNI paths.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let script = format!(
            "mount --bind {d}/netd /etc/cni/net.d && \
             mount -t tmpfs tmpfs /opt && mkdir -p /opt/cni/bin && mount --bind {d}/bin /opt/cni/bin && \
             mount --bind {d}/empty /usr/lib/cni && \
             mount --bind {d}/varlibcni /var/lib/cni && mount --bind {d}/runcni /run/cni && \
             mount --bind {d}/runcontainerd /run/containerd && \
             exec nsenter --net={ns} ctr -a {d}/containerd.sock -n {n} \"$@\"",
            d = d.display(),
            ns = self.host.path_str(),
            n = self.namespace,
        );
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--propagation",
            "unchanged",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(args);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> cni_tests::Output {
        cni_tests::run_with_timeout(self.command(args), None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert_eq!(out.status, 0, "ctr {args:?}: {}{}", out.stdout, out.stderr);
        out.stdout
    }

    /// `ctr run --cni --rm IMAGE name cmd...` in the foreground, in the
    /// background of the test: the handle of that `ctr` process.
    fn start(&self, name: &str, cmd: &[&str]) -> Child {
        let mut args = vec!["run", "--cni", "--rm", IMAGE, name];
        args.extend_from_slice(cmd);
        self.command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ctr run")
    }

    /// Wait until the task `name` runs.
    fn wait_running(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ctr(&["task", "ls"]);
            if out
                .stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains("RUNNING"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never ran: {}",
                out.stdout
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr run --cni --rm` of `cmd` to its end: its exit code and output.
    fn run(&self, name: &str, cmd: &[&str]) -> cni_tests::Output {
        let mut args = vec!["run", "--cni", "--rm", IMAGE, name];
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// Stop the background container `name` and wait for its `ctr run`
    /// (which then sends DEL) to end.
    fn stop(&self, name: &str, mut run: Child) {
        self.ok(&["task", "kill", "-s", "KILL", name]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while run.try_wait().expect("wait ctr").is_none() {
            assert!(Instant::now() < deadline, "ctr run {name} did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// No veth, reservation or rule of `ips` is left; only `lo` and the
    /// test's bridges remain as links.
    fn assert_clean(&self, network: &str, ips: &[&str]) {
        let links = self.host.link_names();
        assert!(
            links.iter().all(|l| l == "lo" || l.starts_with("ctrbr")),
            "links left: {links:?}"
        );
        let nft = self.host.exec(&["nft", "list", "ruleset"]);
        assert_eq!(nft.status, 0, "nft: {}", nft.stderr);
        let ipt = self.host.exec(&["iptables-save"]);
        assert_eq!(ipt.status, 0, "iptables-save: {}", ipt.stderr);
        for ip in ips {
            // A whole address: the rules hold it followed by a space or "/".
            for text in [&nft.stdout, &ipt.stdout] {
                assert!(
                    !text.contains(&format!("{ip} ")) && !text.contains(&format!("{ip}/")),
                    "{ip} left in the firewall:\n{text}"
                );
            }
        }
        let held = runtime::reservations(&self.path("varlibcni/networks").join(network));
        assert!(held.is_empty(), "reservations left: {held:?}");
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers left by a failed test, then the daemon and its shims.
        let tasks = self.ctr(&["task", "ls", "-q"]).stdout;
        for t in tasks.lines().filter(|l| !l.trim().is_empty()) {
            self.ctr(&["task", "kill", "-s", "KILL", t.trim()]);
        }
        std::thread::sleep(Duration::from_millis(200));
        for c in self.ctr(&["container", "ls", "-q"]).stdout.lines() {
            self.ctr(&["task", "delete", "-f", c.trim()]);
            self.ctr(&["container", "delete", c.trim()]);
        }
        self.daemon.take();
        runtime::keep_traces(&self.traces, self.host.name());
    }
}

fn bridge_conflist(name: &str, bridge: &str, ranges: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": ranges,
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}},
            {"type": "firewall"},
            {"type": "tuning"},
        ]
    })
}

/// A long-running container and a second one that pings it (and `also`),
/// both over `ctr run --cni`; then both stop and DEL leaves nothing.
fn two_containers(cd: &Containerd, network: &str, first: &[&str], also: &[&str]) {
    let a = cd.start("a1", &["sleep", "120"]);
    cd.wait_running("a1");
    let mut script = String::new();
    for ip in first.iter().chain(also) {
        script.push_str(&format!("ping -c 1 -W 3 {ip} && "));
    }
    script.push_str("true");
    let out = cd.run("b1", &["sh", "-c", &script]);
    assert_eq!(
        out.status, 0,
        "b1 could not reach {first:?} {also:?}: {}{}",
        out.stdout, out.stderr
    );
    cd.stop("a1", a);
    let mut ips: Vec<&str> = first.to_vec();
    ips.extend_from_slice(also);
    cd.assert_clean(network, &ips);
    runtime::assert_every_call_succeeded(&cd.traces);
    let calls = runtime::calls(&cd.traces);
    let dels: Vec<&runtime::Traced> = calls
        .iter()
        .filter(|c| c.command() == "DEL" && c.plugin == "bridge")
        .collect();
    assert_eq!(dels.len(), 2, "one bridge DEL per container: {calls:?}");
    // containerd sends DEL without the namespace (gone with the task) but
    // with the ADD's result.
    for d in dels {
        assert!(d.stdin.get("prevResult").is_some(), "{:?}", d.stdin);
    }
}

#[test]
fn ctr_run_two_containers_on_a_bridge_ping_and_leave_nothing() {
    let conf = bridge_conflist("ctrnet1", "ctrbr1", json!([[{"subnet": "10.252.1.0/24"}]]));
    let cd = Containerd::new("cd-br", &conf);
    // host-local hands out addresses in order: a1 .2, b1 .3.
    two_containers(&cd, "ctrnet1", &["10.252.1.2"], &["10.252.1.1"]);
}

#[test]
fn ctr_run_dual_stack_pings_over_both_families() {
    let conf = bridge_conflist(
        "ctrnet2",
        "ctrbr2",
        json!([[{"subnet": "10.252.2.0/24"}], [{"subnet": "fd00:cafe:252:2::/64"}]]),
    );
    let cd = Containerd::new("cd-ds", &conf);
    two_containers(
        &cd,
        "ctrnet2",
        &["10.252.2.2", "fd00:cafe:252:2::2"],
        &["10.252.2.1", "fd00:cafe:252:2::1"],
    );
}

#[test]
fn ctr_run_on_a_ptp_network() {
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "ctrnet3",
        "plugins": [
            {"type": "ptp", "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.252.3.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "firewall"},
        ]
    });
    let cd = Containerd::new("cd-ptp", &conf);
    let a = cd.start("a1", &["sleep", "120"]);
    cd.wait_running("a1");
    let out = cd.run("b1", &["ping", "-c", "1", "-W", "3", "10.252.3.2"]);
    assert_eq!(out.status, 0, "{}{}", out.stdout, out.stderr);
    cd.stop("a1", a);
    let links = cd.host.link_names();
    assert_eq!(links, vec!["lo".to_string()], "links left");
    let held = runtime::reservations(&cd.path("varlibcni/networks/ctrnet3"));
    assert!(held.is_empty(), "reservations left: {held:?}");
    runtime::assert_every_call_succeeded(&cd.traces);
}
