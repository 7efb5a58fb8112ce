//! dhcp IPAM end to end: a real DHCP server (Debian's dnsmasq) in a
//! "server" namespace wired by a veth to a bridge in the test's host
//! namespace, the dhcp daemon on a socket in a temp dir, and containers on
//! that bridge (our bridge plugin with `ipam: dhcp`). Leases are observed
//! in dnsmasq's own lease file. Addresses are 10.249.0.0/16 only.
//!
//! Also the reference's halves against ours: its plugin (/usr/lib/cni/dhcp)
//! asking our daemon, and our plugin asking its daemon (`dhcp daemon`).
//! Every process a test starts is killed by a guard on drop.

use cni_tests::{our_plugin, reference_plugin, with_prev, PluginEnv, RunCall, TempDir, TestNetns};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "dhcpnet";
const BR: &str = "cnidhcp0";
const SERVER_IP: &str = "10.249.0.1";

/// A process killed (and reaped) on drop.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(mut cmd: Command, ns: &TestNetns, what: &str) -> Proc {
        ns.ns().enter_on_exec(&mut cmd);
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} ({cmd:?}): {e}"));
        Proc {
            child,
            what: what.to_string(),
        }
    }

    /// SIGTERM, and wait for the exit.
    fn stop(mut self) -> i32 {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.what);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A DHCP network: host namespace with bridge `cnidhcp0`, a server
/// namespace running dnsmasq behind a veth on it, and a work directory.
struct Lab {
    env: PluginEnv,
    _server_ns: TestNetns,
    dir: TempDir,
    _dnsmasq: Proc,
}

fn ok(out: cni_tests::Output, what: &str) {
    assert_eq!(out.status, 0, "{what}: {} {}", out.stdout, out.stderr);
}

impl Lab {
    fn new(tag: &str, dhcp_plugin: &Path) -> Lab {
        let env = PluginEnv::new(
            tag,
            &[("bridge", &our_plugin("bridge")), ("dhcp", dhcp_plugin)],
        );
        let server = TestNetns::new(&format!("{tag}-srv"));
        let h = &env.host;
        ok(
            h.exec(&["ip", "link", "add", BR, "type", "bridge"]),
            "bridge",
        );
        ok(h.exec(&["ip", "link", "set", BR, "up"]), "bridge up");
        ok(
            h.exec(&[
                "ip",
                "link",
                "add",
                "dsrv0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                server.name(),
            ]),
            "veth",
        );
        ok(
            h.exec(&["ip", "link", "set", "dsrv0", "master", BR, "up"]),
            "port",
        );
        ok(
            server.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{SERVER_IP}/16"),
                "dev",
                "eth0",
            ]),
            "server address",
        );
        ok(
            server.exec(&["ip", "link", "set", "eth0", "up"]),
            "server up",
        );

        let dir = TempDir::new(&format!("{tag}-dir"));
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(dir.path().join("leases"), "").expect("lease file");
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            &format!("--conf-file={}", p("dnsmasq.conf")),
            "--port=0",
            "--interface=eth0",
            "--bind-interfaces",
            "--dhcp-authoritative",
            // The shortest lease dnsmasq allows.
            "--dhcp-range=10.249.0.100,10.249.0.200,255.255.0.0,2m",
            &format!("--dhcp-option=option:router,{SERVER_IP}"),
            &format!("--dhcp-leasefile={}", p("leases")),
            &format!("--pid-file={}", p("dnsmasq.pid")),
            &format!("--log-facility={}", p("dnsmasq.log")),
            "--log-dhcp",
            "--user=root",
        ]);
        std::fs::write(dir.path().join("dnsmasq.conf"), "").expect("dnsmasq.conf");
        let dnsmasq = Proc::spawn(cmd, &server, "dnsmasq");
        // Ready once it has written its pid file.
        wait_for("dnsmasq to start", Duration::from_secs(10), || {
            dir.path().join("dnsmasq.pid").exists()
        });
        Lab {
            env,
            _server_ns: server,
            dir,
            _dnsmasq: dnsmasq,
        }
    }

    fn socket(&self) -> String {
        self.dir.path().join("dhcp.sock").display().to_string()
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Our daemon on this lab's socket, renewing every 2 s.
    fn our_daemon(&self) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let mut cmd = Command::new(our_plugin("dhcp"));
        cmd.args([
            "daemon",
            "-socketpath",
            &self.socket(),
            "-statedir",
            &self.state().display().to_string(),
            "-timeout",
            "5s",
            "-resendtimeout",
            "20s",
            "-renewinterval",
            "2s",
        ])
        .stdout(Stdio::null())
        .stderr(log);
        let p = Proc::spawn(cmd, &self.env.host, "our dhcp daemon");
        self.wait_for_socket();
        p
    }

    /// The reference daemon on this lab's socket.
    fn reference_daemon(&self) -> Proc {
        let mut cmd = Command::new(reference_plugin("dhcp"));
        cmd.args(["daemon", "-socketpath", &self.socket(), "-timeout", "5s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let p = Proc::spawn(cmd, &self.env.host, "reference dhcp daemon");
        self.wait_for_socket();
        p
    }

    fn wait_for_socket(&self) {
        let sock = self.socket();
        wait_for("the daemon's socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
    }

    fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version, "name": NET, "type": "bridge", "bridge": BR,
            "ipam": {"type": "dhcp", "daemonSocketPath": self.socket()}
        })
    }

    /// dnsmasq's lease for `ip`: (expiry, client id), if it holds one.
    fn lease(&self, ip: &str) -> Option<(u64, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("leases")).expect("lease file");
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&ip)).then(|| {
                (
                    f[0].parse().expect("expiry"),
                    f.get(4).unwrap_or(&"").to_string(),
                )
            })
        })
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- daemon.log\n{}\n--- dnsmasq.log\n{}",
            read("daemon.log"),
            read("dnsmasq.log")
        )
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The address a result leased, without its prefix.
fn leased(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().expect("an address");
    let ip = a.split('/').next().unwrap_or_default().to_string();
    assert!(ip.starts_with("10.249.0."), "{result}");
    assert!(a.ends_with("/16"), "{result}");
    ip
}

/// dnsmasq's client-id column for `id`: hex bytes of type 0 and the id.
fn client_id_hex(id: &str) -> String {
    std::iter::once(0u8)
        .chain(id.bytes())
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn add(lab: &Lab, ctr: &TestNetns, id: &str, c: &Value) -> Value {
    let out = lab.env.add(ctr, id, c);
    assert_eq!(
        out.status,
        0,
        "ADD: {} {}\n{}",
        out.stdout,
        out.stderr,
        lab.logs()
    );
    out.json()
}

fn del(lab: &Lab, ctr: &TestNetns, id: &str, c: &Value) {
    let out = lab.env.verb("DEL", Some(ctr), id, c);
    assert_eq!(
        out.status,
        0,
        "DEL: {} {}\n{}",
        out.stdout,
        out.stderr,
        lab.logs()
    );
}

#[test]
fn a_bridge_container_gets_renews_and_releases_a_lease() {
    let lab = Lab::new("dhcp-life", &our_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    let c = lab.conf("1.1.0");
    let ctr = TestNetns::new("dhcp-life-c");
    let r = add(&lab, &ctr, "life1", &c);
    let ip = leased(&r);
    assert_eq!(r["ips"][0]["gateway"], SERVER_IP, "{r}");
    assert!(
        r["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .any(|rt| rt["dst"] == "0.0.0.0/0" && rt["gw"] == SERVER_IP),
        "{r}"
    );
    assert_eq!(ctr.addrs("eth0"), vec![format!("{ip}/16")]);
    assert!(ctr.ping(SERVER_IP), "the container reaches the DHCP server");

    let (expiry, client) = lab.lease(&ip).expect("dnsmasq holds the lease");
    assert_eq!(client, client_id_hex(&format!("life1/{NET}/eth0")));
    // Renewed (every 2 s here): dnsmasq moves the expiry on.
    wait_for("a renewal", Duration::from_secs(15), || {
        lab.lease(&ip).is_some_and(|(e, _)| e > expiry)
    });

    // CHECK: the daemon still holds it and prevResult has it.
    let out = lab
        .env
        .verb("CHECK", Some(&ctr), "life1", &with_prev(&c, &r));
    assert_eq!(out.status, 0, "CHECK: {} {}", out.stdout, out.stderr);
    // A second ADD of the same attachment (the runtime retrying) gets the same lease.
    let again = lab
        .env
        .call("dhcp", "ADD", &c)
        .container("life1")
        .netns(&ctr.path_str())
        .run_in(&lab.env.host);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert_eq!(leased(&again.json()), ip);

    del(&lab, &ctr, "life1", &c);
    wait_for("the release", Duration::from_secs(5), || {
        lab.lease(&ip).is_none()
    });
    del(&lab, &ctr, "life1", &c);
}

#[test]
fn every_spec_version_gets_a_lease_in_its_own_shape() {
    let lab = Lab::new("dhcp-ver", &our_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    for (n, version) in cni_tests::VERSIONS.iter().enumerate() {
        let c = lab.conf(version);
        let ctr = TestNetns::new("dhcp-ver-c");
        let id = format!("ver{n}");
        let r = add(&lab, &ctr, &id, &c);
        assert_eq!(r["cniVersion"], *version);
        let parsed = cni::CniResult::from_value(&r, cni::Version::parse(version).expect("known"))
            .unwrap_or_else(|e| panic!("{version}: {e:?}\n{r}"));
        let ip = parsed.ips[0].address.addr().to_string();
        assert!(lab.lease(&ip).is_some(), "{version}: {r}");
        del(&lab, &ctr, &id, &c);
        wait_for("the release", Duration::from_secs(5), || {
            lab.lease(&ip).is_none()
        });
    }
}

#[test]
fn a_restarted_daemon_keeps_and_then_releases_the_lease_it_held() {
    let lab = Lab::new("dhcp-restart", &our_plugin("dhcp"));
    let daemon = lab.our_daemon();
    let c = lab.conf("1.0.0");
    let ctr = TestNetns::new("dhcp-restart-c");
    let ip = leased(&add(&lab, &ctr, "rs1", &c));
    assert_eq!(daemon.stop(), 0, "the daemon exits cleanly on SIGTERM");
    assert!(!Path::new(&lab.socket()).exists(), "socket removed on exit");
    let (expiry, _) = lab
        .lease(&ip)
        .expect("still leased while the daemon is down");

    let _daemon = lab.our_daemon();
    // The new daemon read the lease from disk and renews it...
    wait_for(
        "a renewal by the restarted daemon",
        Duration::from_secs(15),
        || lab.lease(&ip).is_some_and(|(e, _)| e > expiry),
    );
    // ... and releases it on DEL.
    del(&lab, &ctr, "rs1", &c);
    wait_for("the release", Duration::from_secs(5), || {
        lab.lease(&ip).is_none()
    });
    assert_eq!(
        std::fs::read_dir(lab.state()).expect("state dir").count(),
        0,
        "no lease left on disk"
    );
}

#[test]
fn a_lease_whose_interface_is_gone_is_no_longer_renewed() {
    let lab = Lab::new("dhcp-gone", &our_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    let c = lab.conf("1.0.0");
    let ctr = TestNetns::new("dhcp-gone-c");
    let ip = leased(&add(&lab, &ctr, "gone1", &c));
    ok(ctr.exec(&["ip", "link", "del", "eth0"]), "remove eth0");
    // The daemon notices at its next renewal and drops the lease.
    wait_for(
        "the daemon to drop the lease",
        Duration::from_secs(15),
        || {
            std::fs::read_dir(lab.state())
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
        },
    );
    let (expiry, _) = lab
        .lease(&ip)
        .expect("dnsmasq still has it until it expires");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        lab.lease(&ip).map(|l| l.0),
        Some(expiry),
        "not renewed any more"
    );
}

#[test]
fn without_the_daemon_calls_fail_clearly_and_status_says_so() {
    let lab = Lab::new("dhcp-down", &our_plugin("dhcp"));
    let ipam = json!({"cniVersion": "1.1.0", "name": NET, "type": "dhcp",
                      "ipam": {"type": "dhcp", "daemonSocketPath": lab.socket()}});
    let ctr = TestNetns::new("dhcp-down-c");
    let out = lab.env.add(&ctr, "down1", &ipam);
    let msg = out.error_with(11);
    assert!(
        msg.contains("dhcp daemon") && msg.contains(&lab.socket()),
        "{msg}"
    );
    let out = lab.env.call("dhcp", "STATUS", &ipam).run_in(&lab.env.host);
    let msg = out.error_with(50);
    assert!(msg.contains("not reachable"), "{msg}");
    // The bridge forwards STATUS to its IPAM.
    let out = lab
        .env
        .call("bridge", "STATUS", &lab.conf("1.1.0"))
        .run_in(&lab.env.host);
    assert_eq!(out.error_code(), Some(50), "{} {}", out.stdout, out.stderr);

    let _daemon = lab.our_daemon();
    let out = lab.env.call("dhcp", "STATUS", &ipam).run_in(&lab.env.host);
    assert_eq!(out.status, 0, "{} {}", out.stdout, out.stderr);
}

#[test]
fn gc_releases_leases_of_attachments_it_does_not_list() {
    let lab = Lab::new("dhcp-gc", &our_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    let c = lab.conf("1.1.0");
    let (c1, c2) = (TestNetns::new("dhcp-gc-1"), TestNetns::new("dhcp-gc-2"));
    let ip1 = leased(&add(&lab, &c1, "gc1", &c));
    let ip2 = leased(&add(&lab, &c2, "gc2", &c));
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gc1", "ifname": "eth0"}]);
    let out = lab.env.call("dhcp", "GC", &gc).run_in(&lab.env.host);
    assert_eq!(out.status, 0, "GC: {} {}", out.stdout, out.stderr);
    wait_for("gc2's release", Duration::from_secs(5), || {
        lab.lease(&ip2).is_none()
    });
    assert!(
        lab.lease(&ip1).is_some(),
        "gc1 is valid and keeps its lease"
    );
    del(&lab, &c1, "gc1", &c);
}

#[test]
fn the_reference_plugin_gets_its_lease_from_our_daemon() {
    let lab = Lab::new("dhcp-refplug", &reference_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    let c = lab.conf("1.0.0");
    let ctr = TestNetns::new("dhcp-refplug-c");
    let r = add(&lab, &ctr, "rp1", &c);
    let ip = leased(&r);
    assert_eq!(r["ips"][0]["gateway"], SERVER_IP, "{r}");
    assert!(lab.lease(&ip).is_some());
    let out = lab.env.verb("CHECK", Some(&ctr), "rp1", &with_prev(&c, &r));
    assert_eq!(out.status, 0, "CHECK: {} {}", out.stdout, out.stderr);
    del(&lab, &ctr, "rp1", &c);
    wait_for("the release", Duration::from_secs(5), || {
        lab.lease(&ip).is_none()
    });
}

#[test]
fn our_plugin_gets_its_lease_from_the_reference_daemon() {
    let lab = Lab::new("dhcp-refd", &our_plugin("dhcp"));
    let _daemon = lab.reference_daemon();
    let c = lab.conf("1.0.0");
    let ctr = TestNetns::new("dhcp-refd-c");
    let r = add(&lab, &ctr, "rd1", &c);
    let ip = leased(&r);
    assert_eq!(r["ips"][0]["gateway"], SERVER_IP, "{r}");
    assert!(lab.lease(&ip).is_some());
    del(&lab, &ctr, "rd1", &c);
    wait_for("the release", Duration::from_secs(10), || {
        lab.lease(&ip).is_none()
    });
}

/// DHCP servers started for the conformance harness's own host
/// namespaces: (server namespace, dnsmasq), stopped after the run.
static CONFORMANCE_SERVERS: std::sync::Mutex<Vec<(TestNetns, Proc)>> =
    std::sync::Mutex::new(Vec::new());
/// Where their files go.
static CONFORMANCE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
const CONF_BR: &str = "cnidhcpc";

/// The harness's `prepare_host`: its throwaway host namespace gets the
/// bridge the config names and, behind a veth on it, a server namespace
/// running dnsmasq (10.249.128.0/24), once per host namespace.
fn dhcp_server_on(host: &cni_kernel::Netns) {
    let ns = format!("--net={}", host.path().display());
    let sh = |argv: &[&str]| {
        let mut cmd = Command::new("nsenter");
        cmd.arg(&ns).args(argv);
        cni_tests::run_with_timeout(cmd, None)
    };
    if sh(&["ip", "link", "show", CONF_BR]).status == 0 {
        return;
    }
    ok(
        sh(&["ip", "link", "add", CONF_BR, "type", "bridge"]),
        "bridge",
    );
    ok(sh(&["ip", "link", "set", CONF_BR, "up"]), "bridge up");
    let server = TestNetns::new("dhcp-confsrv");
    ok(
        sh(&[
            "ip",
            "link",
            "add",
            "csrv0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            server.name(),
        ]),
        "veth",
    );
    ok(
        sh(&["ip", "link", "set", "csrv0", "master", CONF_BR, "up"]),
        "port",
    );
    ok(
        server.exec(&["ip", "addr", "add", "10.249.128.1/24", "dev", "eth0"]),
        "server address",
    );
    ok(
        server.exec(&["ip", "link", "set", "eth0", "up"]),
        "server up",
    );
    let dir = CONFORMANCE_DIR
        .get()
        .expect("conformance dir")
        .join(server.name());
    std::fs::create_dir_all(&dir).expect("server dir");
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(dir.join("leases"), "").expect("lease file");
    std::fs::write(dir.join("dnsmasq.conf"), "").expect("dnsmasq.conf");
    let mut cmd = Command::new("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        &format!("--conf-file={}", p("dnsmasq.conf")),
        "--port=0",
        "--interface=eth0",
        "--bind-interfaces",
        "--dhcp-authoritative",
        "--dhcp-range=10.249.128.10,10.249.128.250,255.255.255.0,2m",
        &format!("--dhcp-leasefile={}", p("leases")),
        &format!("--pid-file={}", p("dnsmasq.pid")),
        &format!("--log-facility={}", p("dnsmasq.log")),
        "--user=root",
    ]);
    let dnsmasq = Proc::spawn(cmd, &server, "dnsmasq");
    wait_for("dnsmasq to start", Duration::from_secs(10), || {
        dir.join("dnsmasq.pid").exists()
    });
    CONFORMANCE_SERVERS
        .lock()
        .expect("servers")
        .push((server, dnsmasq));
}

/// The conformance harness on our bridge with `ipam: dhcp` and our daemon:
/// every check, the lifecycle under every version included, against a
/// DHCP server the harness's own host namespace gets before each ADD.
#[test]
fn the_conformance_harness_passes_on_a_bridge_with_dhcp() {
    let lab = Lab::new("dhcp-conf", &our_plugin("dhcp"));
    let _daemon = lab.our_daemon();
    CONFORMANCE_DIR.get_or_init(|| lab.dir.path().join("conformance"));
    let mut opts = cni_conformance::Options::new(lab.env.bin.path().join("bridge"));
    opts.config = json!({"name": NET, "type": "bridge", "bridge": CONF_BR,
                         "ipam": {"type": "dhcp", "daemonSocketPath": lab.socket()}})
    .as_object()
    .cloned();
    opts.prepare_host = Some(dhcp_server_on);
    let report = cni_conformance::run(&opts);
    CONFORMANCE_SERVERS.lock().expect("servers").clear();
    println!("{report}");
    assert!(!report.failed(), "{report}\n{}", lab.logs());
}
