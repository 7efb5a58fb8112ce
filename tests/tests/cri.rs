//! Kubernetes-style pods through containerd's CRI plugin, invoking our
//! plugins exactly as kubelet would have them invoked.
//!
//! A private containerd (CRI on, cgroupfs with runc, restrict_oom_score_adj,
//! its `bin_dir` a tracing directory in front of our plugins and its
//! `conf_dir` the test's) runs in a host network namespace of the test's and
//! a mount namespace where /run/containerd, /var/lib/cni and /run/cni are
//! the test's. A CRI client (tests/runtime/cri.py on the generated CRI v1
//! stubs of the PyPI package `container-runtime-interface-api`, installed
//! in a venv under target/) calls RunPodSandbox with port mappings and
//! bandwidth annotations, CreateContainer/StartContainer, StopPodSandbox and
//! RemovePodSandbox. The conflist is a Kubernetes node's: bridge +
//! host-local with the node's pod range + portmap + bandwidth.

mod runtime;

use cni_tests::{our_bin_dir, TempDir, TestNetns};
use runtime::{require, tracing_plugin_dir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PAUSE: &str = "docker.io/cnitest/pause:1";
const BUSYBOX: &str = "docker.io/cnitest/busybox:1";

/// A Python with `cri_api` and `grpc`: a venv under the target directory,
/// made once (`python3 -m venv`, then pip from PyPI).
fn cri_python() -> PathBuf {
    static PY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let venv = cni_tests::target_dir().join("cri-venv");
        let py = venv.join("bin/python3");
        let has = |py: &Path| {
            Command::new(py)
                .args(["-c", "import cri_api.v1.api_pb2, grpc"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if has(&py) {
            return py;
        }
        // Several test processes may get here at once: build aside, rename.
        let tmp = cni_tests::target_dir().join(format!("cri-venv.{}", std::process::id()));
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&tmp)
            .status()
            .expect("python3 (apt-get install python3-venv; .ci/run does)");
        assert!(
            st.success(),
            "python3 -m venv failed: apt-get install python3-venv"
        );
        let out = Command::new(tmp.join("bin/pip"))
            .args(["install", "-q", "container-runtime-interface-api==2.0.1"])
            .output()
            .expect("pip");
        assert!(
            out.status.success(),
            "pip install container-runtime-interface-api: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&tmp, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(has(&py), "{} has no cri_api", py.display());
        py
    })
    .clone()
}

struct Node {
    host: TestNetns,
    dir: TempDir,
    daemon: Option<runtime::Containerd>,
    traces: PathBuf,
}

impl Node {
    /// A node with the pod range `subnet` (its gateway on the bridge `br`);
    /// `masq`: pods' traffic leaving the range is masqueraded (off where
    /// pod ranges are routed between nodes, as a cluster needs).
    fn new(tag: &str, subnet: &str, br: &str, masq: bool) -> Node {
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
                "varlibcni",
                "runcni",
                "runcontainerd",
                "traces",
                "image",
                "pause",
            ],
            &["/var/lib/cni", "/run/cni", "/run/containerd"],
        );
        let traces = d.join("traces");
        tracing_plugin_dir(&d.join("bin"), &traces, &our_bin_dir());
        // A Kubernetes node's conflist: the node's pod range, port
        // mappings and bandwidth from the pod spec.
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "plugins": [
                {"type": "bridge", "bridge": br, "isGateway": true, "isDefaultGateway": true,
                 "ipMasq": masq, "hairpinMode": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]},
                 "capabilities": {"ips": true}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "bandwidth", "capabilities": {"bandwidth": true}},
            ]
        });
        std::fs::write(d.join("netd/10-k8s.conflist"), conf.to_string()).expect("conflist");
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
                 [{cri}]\n  sandbox_image = \"{PAUSE}\"\n  restrict_oom_score_adj = true\n\
                 [{cri}.containerd]\n  default_runtime_name = \"runc\"\n\
                 [{cri}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [{cri}.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n\
                 [{cri}.cni]\n  bin_dir = \"{d}/bin\"\n  conf_dir = \"{d}/netd\"\n  max_conf_num = 1\n",
                d = d.display()
            ),
        )
        .expect("config.toml");
        let daemon = runtime::Containerd::start(
            d,
            &host.path_str(),
            &[
                (d.join("runcontainerd"), "/run/containerd"),
                (d.join("varlibcni"), "/var/lib/cni"),
                (d.join("runcni"), "/run/cni"),
            ],
        );
        let node = Node {
            host,
            dir,
            daemon: Some(daemon),
            traces,
        };
        if let Some(daemon) = &node.daemon {
            daemon.wait_ready(Duration::from_secs(30), || {
                node.ctr(&["version"]).status == 0
            });
        }
        for (sub, name, cmd) in [
            ("pause", PAUSE, &["sleep", "1000000"][..]),
            ("image", BUSYBOX, &["sh"][..]),
        ] {
            let tar = runtime::build_image(&node.path(sub), name, cmd);
            let out = node.ctr(&[
                "image",
                "import",
                "--all-platforms",
                &tar.display().to_string(),
            ]);
            assert_eq!(out.status, 0, "import {name}: {}", out.stderr);
        }
        node
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn ctr(&self, args: &[&str]) -> cni_tests::Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.path("containerd.sock"))
            .args(["-n", "k8s.io"])
            .args(args);
        cni_tests::run_with_timeout(cmd, None)
    }

    /// One CRI call through tests/runtime/cri.py; its JSON answer.
    fn cri(&self, command: &str, args: Value) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/cri.py");
        let mut cmd = Command::new(cri_python());
        cmd.arg(script)
            .arg(self.path("containerd.sock"))
            .arg(command)
            .arg(args.to_string());
        let out = cni_tests::run_with_timeout(cmd, None);
        assert_eq!(
            out.status,
            0,
            "CRI {command} {args}: {}\ncontainerd log tail:\n{}",
            out.stderr,
            tail(&self.path("containerd.log"))
        );
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("CRI {command}: {e}: {}", out.stdout))
    }
}

impl Node {
    /// Stop and remove `pod` (DEL runs twice, as the CRI does it).
    fn remove(&self, pod: &Pod) {
        self.cri("stop-pod", json!({"id": pod.id}));
        self.cri("remove-pod", json!({"id": pod.id}));
    }

    /// Nothing of `pods` left on this node: links (only `lo`, the bridge and
    /// `keep`), reservations, firewall rules, IFBs.
    fn assert_clean(&self, br: &str, pods: &[&Pod], keep: &[&str]) {
        let links = self.host.link_names();
        assert!(
            links
                .iter()
                .all(|l| l == "lo" || l == br || keep.contains(&l.as_str())),
            "links left: {links:?}"
        );
        let held = runtime::reservations(&self.path("varlibcni/networks/k8s-pod-network"));
        assert!(held.is_empty(), "reservations left: {held:?}");
        let nft = self.host.exec(&["nft", "list", "ruleset"]);
        assert_eq!(nft.status, 0, "nft: {}", nft.stderr);
        let ipt = self.host.exec(&["iptables-save"]);
        assert_eq!(ipt.status, 0, "iptables-save: {}", ipt.stderr);
        for p in pods {
            let ip = &p.ip;
            for text in [&nft.stdout, &ipt.stdout] {
                assert!(
                    !text.contains(&format!("{ip} "))
                        && !text.contains(&format!("{ip}/"))
                        && !text.contains(&format!("{ip}:")),
                    "{ip} left in the firewall:\n{text}"
                );
            }
        }
        runtime::assert_every_call_succeeded(&self.traces);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.daemon.take();
        runtime::keep_traces(&self.traces, self.host.name());
    }
}

fn tail(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A pod as the test keeps track of it.
struct Pod {
    id: String,
    ip: String,
    netns: String,
}

fn run_pod(node: &Node, spec: Value) -> Pod {
    let id = node.cri("run-pod", spec)["id"]
        .as_str()
        .expect("pod id")
        .to_string();
    let st = node.cri("pod-status", json!({"id": id}));
    Pod {
        id,
        ip: st["ip"].as_str().unwrap_or_default().to_string(),
        netns: st["netns"].as_str().unwrap_or_default().to_string(),
    }
}

fn ping_from(netns: &str, ip: &str) -> bool {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={netns}"))
        .args(["ping", "-c", "1", "-W", "3", ip]);
    cni_tests::run_with_timeout(cmd, None).status == 0
}

/// An HTTP GET of `/` on `addr` from `host`'s namespace: the body.
fn http_get(host: &TestNetns, addr: &str) -> String {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().expect("ip:port");
    let timeout = Duration::from_secs(3);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = host
            .ns()
            .run(move || -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
                s.set_read_timeout(Some(timeout))?;
                s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .expect("enter the host namespace");
        match got {
            Ok(reply) => {
                return reply
                    .split_once("\r\n\r\n")
                    .map(|(_, body)| body.to_string())
                    .unwrap_or_else(|| panic!("no HTTP response from {addr}: {reply:?}"))
            }
            // The server in the pod may still be starting.
            Err(e) if Instant::now() < deadline => {
                eprintln!("GET {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("GET http://{addr}/: {e}"),
        }
    }
}

#[test]
fn pods_through_cri_ping_reach_a_host_port_get_shaped_and_leave_nothing() {
    let node = Node::new("cri-pods", "10.253.1.0/24", "cnibr1", true);
    let p1 = run_pod(&node, json!({"name": "p1", "uid": "uid-p1"}));
    let p2_spec = json!({
        "name": "p2", "uid": "uid-p2",
        "ports": [[18090, 8080, "TCP"]],
        "annotations": {"kubernetes.io/ingress-bandwidth": "10M",
                        "kubernetes.io/egress-bandwidth": "20M"},
    });
    let p2 = run_pod(&node, p2_spec.clone());
    for p in [&p1, &p2] {
        assert!(p.ip.starts_with("10.253.1."), "pod IP {:?}", p.ip);
        assert!(!p.netns.is_empty(), "pod {} has no netns path", p.id);
    }
    assert!(ping_from(&p1.netns, &p2.ip), "p1 -> p2");
    assert!(ping_from(&p2.netns, &p1.ip), "p2 -> p1");
    node.cri(
        "start",
        json!({"pod": p2.id, "name": "web", "image": BUSYBOX,
               "command": ["httpd", "-f", "-p", "8080", "-h", "/www"], "pod_config": p2_spec}),
    );
    // The host port, through portmap, on the node's address on the bridge.
    assert_eq!(
        http_get(&node.host, "10.253.1.1:18090"),
        "hello from containerd\n"
    );
    // Bandwidth: a token bucket on the host side of p2, and its IFB.
    let qd = node.host.exec(&["tc", "qdisc", "show"]);
    assert_eq!(qd.status, 0, "tc: {}", qd.stderr);
    assert!(qd.stdout.contains("tbf"), "no tbf qdisc:\n{}", qd.stdout);
    assert!(
        node.host.link_names().iter().any(|l| l.starts_with("bwp")),
        "no IFB: {:?}",
        node.host.link_names()
    );

    // What the CRI sent, as kubelet would have it sent.
    let calls = runtime::calls(&node.traces);
    let add = calls
        .iter()
        .find(|c| c.plugin == "bridge" && c.command() == "ADD")
        .expect("a bridge ADD");
    let args = add.var("CNI_ARGS");
    for k in [
        "IgnoreUnknown=1",
        "K8S_POD_NAMESPACE=default",
        "K8S_POD_NAME=p",
        "K8S_POD_INFRA_CONTAINER_ID=",
        "K8S_POD_UID=uid-p",
    ] {
        assert!(args.contains(k), "CNI_ARGS {args:?} lacks {k}");
    }
    let pm = calls
        .iter()
        .find(|c| {
            c.plugin == "portmap"
                && c.command() == "ADD"
                && c.stdin["runtimeConfig"]["portMappings"].is_array()
        })
        .expect("a portmap ADD with mappings");
    let m = &pm.stdin["runtimeConfig"]["portMappings"][0];
    assert!(
        m.get("HostPort")
            .or(m.get("hostPort"))
            .is_some_and(|v| v == 18090),
        "{m}"
    );
    let bw = calls
        .iter()
        .find(|c| {
            c.plugin == "bandwidth"
                && c.command() == "ADD"
                && !c.stdin["runtimeConfig"]["bandwidth"].is_null()
        })
        .expect("a bandwidth ADD with limits");
    eprintln!("bandwidth runtimeConfig: {}", bw.stdin["runtimeConfig"]);

    for p in [&p1, &p2] {
        node.remove(p);
    }
    node.assert_clean("cnibr1", &[&p1, &p2], &[]);
}

/// Two nodes as a cluster wires them: each runs its own containerd with
/// the CRI and a node conflist with its own pod range; a veth "underlay"
/// (10.254.0.0/24, through a switch namespace) joins them and a client;
/// each node routes the other's pod range through the other's underlay
/// address (the static routes kubenet-style setups install). No overlay.
#[test]
fn two_nodes_pods_reach_each_other_and_a_host_port_from_the_underlay() {
    let a = Node::new("k8s-na", "10.253.10.0/24", "cnibra", false);
    let b = Node::new("k8s-nb", "10.253.11.0/24", "cnibrb", false);
    let switch = TestNetns::new("k8s-sw");
    let client = TestNetns::new("k8s-cl");
    let ok = |ns: &TestNetns, argv: &[&str]| {
        let out = ns.exec(argv);
        assert_eq!(out.status, 0, "{argv:?}: {}", out.stderr);
    };
    ok(&switch, &["ip", "link", "add", "ulbr", "type", "bridge"]);
    ok(&switch, &["ip", "link", "set", "ulbr", "up"]);
    for (ns, port, addr) in [
        (&a.host, "ula", "10.254.0.1/24"),
        (&b.host, "ulb", "10.254.0.2/24"),
        (&client, "ulc", "10.254.0.3/24"),
    ] {
        ok(
            &switch,
            &[
                "ip",
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "ul0",
                "netns",
                ns.name(),
            ],
        );
        ok(
            &switch,
            &["ip", "link", "set", port, "master", "ulbr", "up"],
        );
        ok(ns, &["ip", "addr", "add", addr, "dev", "ul0"]);
        ok(ns, &["ip", "link", "set", "ul0", "up"]);
    }
    ok(
        &a.host,
        &["ip", "route", "add", "10.253.11.0/24", "via", "10.254.0.2"],
    );
    ok(
        &b.host,
        &["ip", "route", "add", "10.253.10.0/24", "via", "10.254.0.1"],
    );

    let pa = run_pod(&a, json!({"name": "pa", "uid": "uid-pa"}));
    let pb_spec = json!({"name": "pb", "uid": "uid-pb", "ports": [[18091, 8080, "TCP"]]});
    let pb = run_pod(&b, pb_spec.clone());
    assert!(
        pa.ip.starts_with("10.253.10.") && pb.ip.starts_with("10.253.11."),
        "{} {}",
        pa.ip,
        pb.ip
    );
    assert!(ping_from(&pa.netns, &pb.ip), "pod on A -> pod on B");
    assert!(ping_from(&pb.netns, &pa.ip), "pod on B -> pod on A");
    b.cri(
        "start",
        json!({"pod": pb.id, "name": "web", "image": BUSYBOX,
               "command": ["httpd", "-f", "-p", "8080", "-h", "/www"], "pod_config": pb_spec}),
    );
    // A client on the underlay reaches the pod through node B's host port.
    assert_eq!(
        http_get(&client, "10.254.0.2:18091"),
        "hello from containerd\n"
    );

    a.remove(&pa);
    b.remove(&pb);
    a.assert_clean("cnibra", &[&pa], &["ul0"]);
    b.assert_clean("cnibrb", &[&pb], &["ul0"]);
}
