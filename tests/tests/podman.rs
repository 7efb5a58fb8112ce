//! Podman (Debian's 4.3, CNI backend) running containers on our plugins.
//!
//! Each test gets its own "host" network namespace, its own Podman storage,
//! run and libpod directories, its own network config directory, and a
//! plugin directory holding only our plugins (`$CNI_BIN_DIR` points it at
//! another one, e.g. the reference's /usr/lib/cni, for comparison). Every
//! podman call runs in a mount namespace of its own where /var/lib/cni
//! (host-local's default dataDir and Podman's CNI result cache) and
//! /run/cni are the test's directories, so nothing of the machine's is
//! read or written; `--propagation unchanged` keeps /run/netns shared so
//! Podman's next call sees the namespaces its previous call mounted.
//! Containers run from a busybox root filesystem the test builds
//! (`busybox-static`); no image is pulled.
//!
//! Every call goes through a tracing plugin directory: a wrapper per plugin
//! that records the environment and stdin Podman sent, then runs ours. The
//! tests check that every call Podman made succeeded and that the calls
//! carry what our plugins expect; `tests/fixtures/runtime-traces/podman`
//! keeps a trace of one run.

mod runtime;

use cni_tests::{our_bin_dir, TempDir, TestNetns};
use runtime::{build_rootfs, require, tracing_plugin_dir};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One Podman "machine": host namespace, directories, tracing plugin dir.
struct Podman {
    host: TestNetns,
    dir: TempDir,
    /// How many wrapper calls were recorded so far (trace files).
    traces: PathBuf,
}

impl Podman {
    fn new(tag: &str) -> Podman {
        require("podman", "podman");
        require("runc", "runc");
        require("nsenter", "util-linux");
        let host = TestNetns::new(tag);
        let dir = TempDir::new(tag);
        let d = dir.path();
        runtime::make_dirs(
            d,
            &[
                "root",
                "runroot",
                "tmpdir",
                "netconf",
                "varlibcni",
                "runcni",
                "bin",
                "traces",
            ],
            &["/var/lib/cni", "/run/cni"],
        );
        build_rootfs(&d.join("rootfs"), "podman");
        let traces = d.join("traces");
        // The tracing plugin directory: each name records env and stdin,
        // then runs ours with the same stdin.
        tracing_plugin_dir(&d.join("bin"), &traces, &our_bin_dir());
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [network]\n\
                 network_backend = \"cni\"\n\
                 cni_plugin_dirs = [\"{bin}\"]\n\
                 network_config_dir = \"{netconf}\"\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{d}/events.log\"\n\
                 tmp_dir = \"{d}/tmpdir\"\n",
                bin = d.join("bin").display(),
                netconf = d.join("netconf").display(),
                d = d.display(),
            ),
        )
        .expect("containers.conf");
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{d}/runroot\"\ngraphroot = \"{d}/root\"\n",
                d = d.display()
            ),
        )
        .expect("storage.conf");
        Podman { host, dir, traces }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// `podman ARGS` as this machine's Podman, in the host namespace.
    fn podman(&self, args: &[&str]) -> cni_tests::Output {
        let d = self.dir.path();
        let script = format!(
            "mount --bind {d}/varlibcni /var/lib/cni && mount --bind {d}/runcni /run/cni && \
             exec nsenter --net={ns} podman \"$@\"",
            d = d.display(),
            ns = self.host.path_str(),
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
        .args(args)
        .env("CONTAINERS_CONF", d.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"));
        cni_tests::run_with_timeout(cmd, None)
    }

    /// `podman ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert_eq!(
            out.status, 0,
            "podman {args:?}: {}{}",
            out.stdout, out.stderr
        );
        out.stdout.trim().to_string()
    }

    /// A container running `cmd` on `network`, with NET_RAW for ping.
    fn run(&self, name: &str, network: &str, extra: &[&str], cmd: &[&str]) {
        let rootfs = self.path("rootfs").display().to_string();
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--cap-add",
            "NET_RAW",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--rootfs", &rootfs]);
        args.extend_from_slice(cmd);
        self.ok(&args);
    }

    fn ip(&self, name: &str, network: &str, v6: bool) -> String {
        let field = if v6 { "GlobalIPv6Address" } else { "IPAddress" };
        let ip = self.ok(&[
            "inspect",
            name,
            "--format",
            &format!("{{{{.NetworkSettings.Networks.{network}.{field}}}}}"),
        ]);
        assert!(
            ip.parse::<std::net::IpAddr>().is_ok(),
            "{name} on {network}: {ip:?}"
        );
        ip
    }

    fn ping(&self, from: &str, ip: &str) -> bool {
        self.podman(&["exec", from, "ping", "-c", "1", "-W", "3", ip])
            .status
            == 0
    }

    /// Every recorded plugin call.
    fn calls(&self) -> Vec<runtime::Traced> {
        runtime::calls(&self.traces)
    }

    /// Nothing of `ids` (container IDs) or `ips` is left in the host
    /// namespace's links, firewall rules, host-local's directory or
    /// Podman's CNI result cache; only `lo` and bridges are left as links.
    fn assert_clean(&self, network: &str, ids: &[String], ips: &[String]) {
        let links = self.host.link_names();
        assert!(
            links
                .iter()
                .all(|l| l == "lo" || l.starts_with("cni-podman")),
            "links left: {links:?}"
        );
        let nft = self.host.exec(&["nft", "list", "ruleset"]);
        assert_eq!(nft.status, 0, "nft: {}", nft.stderr);
        let ipt = self.host.exec(&["iptables-save"]);
        assert_eq!(ipt.status, 0, "iptables-save: {}", ipt.stderr);
        for what in ids.iter().chain(ips) {
            assert!(
                !nft.stdout.contains(what.as_str()),
                "{what} left in nft:\n{}",
                nft.stdout
            );
            assert!(
                !ipt.stdout.contains(what.as_str()),
                "{what} left in iptables:\n{}",
                ipt.stdout
            );
        }
        let held = runtime::reservations(&self.path("varlibcni/networks").join(network));
        assert!(held.is_empty(), "reservations left: {held:?}");
        let cached: Vec<String> = std::fs::read_dir(self.path("varlibcni/results"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(cached.is_empty(), "result cache left: {cached:?}");
    }

    /// Every plugin call Podman made succeeded; DELs included.
    fn assert_every_call_succeeded(&self) {
        runtime::assert_every_call_succeeded(&self.traces);
    }

    fn id(&self, name: &str) -> String {
        self.ok(&["inspect", name, "--format", "{{.Id}}"])
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.podman(&["rm", "-af", "-t", "0"]);
        if out.status != 0 {
            eprintln!("cleanup: podman rm: {}", out.stderr);
        }
        runtime::keep_traces(&self.traces, self.host.name());
    }
}

/// An HTTP GET of `/` on `addr` (ip:port) from the host namespace, by a
/// socket opened there: the response body.
fn http_get(host: &TestNetns, addr: &str) -> String {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().expect("ip:port");
    let timeout = std::time::Duration::from_secs(3);
    let reply = host
        .ns()
        .run(move || -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .expect("enter the host namespace")
        .unwrap_or_else(|e| panic!("GET http://{addr}/: {e}"));
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_else(|| panic!("no HTTP response from {addr}: {reply:?}"))
}

#[test]
fn bridge_network_two_containers_ping_reach_a_host_port_and_leave_nothing() {
    let pm = Podman::new("pm-br");
    pm.ok(&["network", "create", "--subnet", "10.251.1.0/24", "pmnet1"]);
    pm.run("c1", "pmnet1", &[], &["sleep", "600"]);
    pm.run(
        "c2",
        "pmnet1",
        &["-p", "18080:8080"],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let (ip1, ip2) = (pm.ip("c1", "pmnet1", false), pm.ip("c2", "pmnet1", false));
    assert_ne!(ip1, ip2);
    assert!(pm.ping("c1", &ip2), "c1 -> c2");
    assert!(pm.ping("c2", &ip1), "c2 -> c1");
    assert!(pm.ping("c1", "10.251.1.1"), "c1 -> gateway");
    // Through portmap: the host's address on the bridge, the mapped port.
    assert_eq!(
        http_get(&pm.host, "10.251.1.1:18080"),
        "hello from podman\n"
    );
    let ids = vec![pm.id("c1"), pm.id("c2")];
    pm.ok(&["rm", "-f", "-t", "0", "c1", "c2"]);
    pm.assert_clean("pmnet1", &ids, &[ip1, ip2]);
    pm.assert_every_call_succeeded();
    // Podman asked for a port mapping through the capability, and DEL came.
    let calls = pm.calls();
    assert!(
        calls.iter().any(|c| c.plugin == "portmap"
            && c.command() == "ADD"
            && c.stdin["runtimeConfig"]["portMappings"][0]["hostPort"] == 18080),
        "{calls:?}"
    );
    assert!(calls
        .iter()
        .any(|c| c.plugin == "bridge" && c.command() == "DEL"));
}

#[test]
fn dual_stack_network_pings_over_both_families() {
    let pm = Podman::new("pm-ds");
    pm.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.251.2.0/24",
        "--subnet",
        "fd00:cafe:251:2::/64",
        "pmnet2",
    ]);
    pm.run("d1", "pmnet2", &[], &["sleep", "600"]);
    pm.run("d2", "pmnet2", &[], &["sleep", "600"]);
    let (a4, b4) = (pm.ip("d1", "pmnet2", false), pm.ip("d2", "pmnet2", false));
    let (a6, b6) = (pm.ip("d1", "pmnet2", true), pm.ip("d2", "pmnet2", true));
    assert!(pm.ping("d1", &b4) && pm.ping("d2", &a4), "IPv4");
    assert!(pm.ping("d1", &b6) && pm.ping("d2", &a6), "IPv6");
    let ids = vec![pm.id("d1"), pm.id("d2")];
    pm.ok(&["rm", "-f", "-t", "0", "d1", "d2"]);
    pm.assert_clean("pmnet2", &ids, &[a4, b4, a6, b6]);
    pm.assert_every_call_succeeded();
}

#[test]
fn ptp_network_containers_reach_each_other_through_the_host() {
    let pm = Podman::new("pm-ptp");
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "pmptp",
        "plugins": [
            {"type": "ptp", "ipMasq": true,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.3.0/24"}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"},
        ]
    });
    std::fs::write(pm.path("netconf/pmptp.conflist"), conf.to_string()).expect("conflist");
    pm.run("p1", "pmptp", &[], &["sleep", "600"]);
    pm.run(
        "p2",
        "pmptp",
        &["-p", "18081:8080"],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let (ip1, ip2) = (pm.ip("p1", "pmptp", false), pm.ip("p2", "pmptp", false));
    assert!(pm.ping("p1", &ip2) && pm.ping("p2", &ip1));
    // The host namespace has no address of its own on the network: the
    // mapped port is reached on the host's loopback.
    assert_eq!(http_get(&pm.host, "127.0.0.1:18081"), "hello from podman\n");
    let ids = vec![pm.id("p1"), pm.id("p2")];
    pm.ok(&["rm", "-f", "-t", "0", "p1", "p2"]);
    pm.assert_clean("pmptp", &ids, &[ip1, ip2]);
    pm.assert_every_call_succeeded();
}

#[test]
fn podmans_own_default_network_runs_unchanged() {
    let pm = Podman::new("pm-def");
    // The conflist Podman ships and writes for its default network: bridge
    // (ipMasq, hairpin) + portmap + firewall + tuning, kept byte for byte.
    let shipped = Path::new("/etc/cni/net.d/87-podman-bridge.conflist");
    assert!(
        shipped.is_file(),
        "{} is missing: apt-get install podman",
        shipped.display()
    );
    std::fs::copy(shipped, pm.path("netconf/87-podman-bridge.conflist")).expect("copy conflist");
    pm.run("w1", "podman", &[], &["sleep", "600"]);
    pm.run(
        "w2",
        "podman",
        &["-p", "18082:8080"],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    let (ip1, ip2) = (pm.ip("w1", "podman", false), pm.ip("w2", "podman", false));
    assert!(pm.ping("w1", &ip2) && pm.ping("w2", &ip1));
    assert_eq!(http_get(&pm.host, "10.88.0.1:18082"), "hello from podman\n");
    let ids = vec![pm.id("w1"), pm.id("w2")];
    pm.ok(&["rm", "-f", "-t", "0", "w1", "w2"]);
    pm.assert_clean("podman", &ids, &[ip1, ip2]);
    pm.assert_every_call_succeeded();
    let plugins: std::collections::BTreeSet<String> =
        pm.calls().into_iter().map(|c| c.plugin).collect();
    for p in ["bridge", "host-local", "portmap", "firewall", "tuning"] {
        assert!(plugins.contains(p), "{p} was never called: {plugins:?}");
    }
}
