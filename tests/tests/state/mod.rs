//! What the fault and load tests share: a snapshot of everything an
//! attachment can leave in a host namespace and a data directory, to
//! compare before and after; stopping a plugin at a named step of ADD and
//! SIGKILLing it there; a small tmpfs to make a data directory read-only
//! or full.

#![allow(dead_code)] // each test binary uses its own part

use cni_tests::{PluginEnv, TestNetns, COMMAND_TIMEOUT};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Everything an attachment can leave behind, by kind, each as sorted
/// lines: host links (with their master), addresses, routes and policy
/// rules of both families (administrative state only), the nftables ruleset, the iptables and
/// ip6tables nat and filter tables (counters and comments dropped), and
/// the data directory's files (with the content of reservations;
/// `last_reserved_ip.*` by name only, as its content is the round-robin
/// cursor, and host-local's index directory by name only, as it is a cache
/// whose buckets stay once made). Every tool must run: a failing tool fails
/// the test rather than reading as "nothing there".
pub type Snapshot = BTreeMap<&'static str, Vec<String>>;

pub fn snapshot(host: &TestNetns, data: &Path) -> Snapshot {
    let mut s = Snapshot::new();
    let links = host.ip_json(&["-d", "link", "show"]);
    s.insert(
        "links",
        lines(links.as_array().expect("ip -j link prints a list"), |l| {
            // Administrative state only: the operational state of a
            // bridge whose last port went follows a moment later.
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            format!(
                "{} master={} up={up}",
                l["ifname"].as_str().unwrap_or_default(),
                l["master"].as_str().unwrap_or("-"),
            )
        }),
    );
    let addrs = host.ip_json(&["addr", "show"]);
    let mut a = Vec::new();
    for l in addrs.as_array().expect("ip -j addr prints a list") {
        for i in l["addr_info"].as_array().into_iter().flatten() {
            a.push(format!(
                "{} {}/{}",
                l["ifname"].as_str().unwrap_or_default(),
                i["local"].as_str().unwrap_or_default(),
                i["prefixlen"]
            ));
        }
    }
    a.sort();
    s.insert("addresses", a);
    for (key, argv) in [
        (
            "routes4",
            &["ip", "-4", "route", "show", "table", "all"][..],
        ),
        (
            "routes6",
            &["ip", "-6", "route", "show", "table", "all"][..],
        ),
        ("rules4", &["ip", "-4", "rule", "show"][..]),
        ("rules6", &["ip", "-6", "rule", "show"][..]),
        ("nft", &["nft", "list", "ruleset"][..]),
        ("iptables-nat", &["iptables-save", "-t", "nat"][..]),
        ("ip6tables-nat", &["ip6tables-save", "-t", "nat"][..]),
        ("iptables-filter", &["iptables-save", "-t", "filter"][..]),
        ("ip6tables-filter", &["ip6tables-save", "-t", "filter"][..]),
    ] {
        let out = host.exec(argv);
        assert_eq!(out.status, 0, "{argv:?}: {}", out.stderr);
        let mut v: Vec<String> = out
            .stdout
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            // iptables-save's chain counters ([packets:bytes]) move with traffic.
            .map(|l| match l.find(" [") {
                Some(i) if l.starts_with(':') => l[..i].to_string(),
                // A route's "linkdown" follows the carrier, as above.
                _ => l.trim_end().trim_end_matches(" linkdown").to_string(),
            })
            // Routes the kernel adds for neighbours and caches come and go.
            .filter(|l| !l.contains("proto ra") && !l.starts_with("cache"))
            .collect();
        if !key.starts_with("nft") {
            v.sort();
        }
        s.insert(key, v);
    }
    s.insert("files", files(data));
    s
}

fn lines(items: &[Value], f: impl Fn(&Value) -> String) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(f).collect();
    v.sort();
    v
}

/// The files under `data`, recursively, as described at [`Snapshot`].
pub fn files(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(data, data, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let rd = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    for e in rd {
        let e = e.unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let ft = e.file_type().expect("file type");
        let name = e.file_name().to_string_lossy().into_owned();
        if ft.is_dir() {
            out.push(format!("{rel}/"));
            if name != ".host-local-index" {
                walk(root, &p, out);
            }
        } else if name.parse::<std::net::IpAddr>().is_ok() {
            let content = std::fs::read(&p).unwrap_or_default();
            out.push(format!("{rel} = {:?}", String::from_utf8_lossy(&content)));
        } else {
            out.push(rel);
        }
    }
}

/// Fail, showing only what differs, unless the snapshots are equal.
pub fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    let mut diff = String::new();
    for (k, b) in before {
        let a = after.get(k).cloned().unwrap_or_default();
        if *b != a {
            let gone: Vec<_> = b.iter().filter(|l| !a.contains(l)).collect();
            let new: Vec<_> = a.iter().filter(|l| !b.contains(l)).collect();
            diff.push_str(&format!("\n[{k}]\n  gone: {gone:#?}\n  new:  {new:#?}\n"));
            if gone.is_empty() && new.is_empty() {
                diff.push_str(&format!("  before: {b:#?}\n  after: {a:#?}\n"));
            }
        }
    }
    assert!(diff.is_empty(), "{what}: state differs from before:{diff}");
}

/// [`assert_same`], allowing `within` for the kernel to finish work it
/// does asynchronously: a deleted namespace is torn down by a workqueue
/// (`cleanup_net`), and the host end of its veth goes only then.
pub fn assert_same_within(
    before: &Snapshot,
    now: impl Fn() -> Snapshot,
    within: Duration,
    what: &str,
) {
    let deadline = Instant::now() + within;
    loop {
        let after = now();
        if after == *before || Instant::now() >= deadline {
            return assert_same(before, &after, what);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The link names inside a container namespace.
pub fn container_links(ctr: &TestNetns) -> Vec<String> {
    ctr.link_names()
}

/// What [`kill_at`] saw.
#[derive(Debug)]
pub struct Killed {
    /// The process the test started (the plugin, or cnitool).
    pub pid: u32,
    /// The process that announced the step: `pid`, or a child of it (an
    /// IPAM plugin it exec'd).
    pub stopped: u32,
    pub stderr: String,
}

/// Start `cmd` inside `host` with `stdin`, stopping at `step` (the test
/// builds' `CNI_TEST_STOP_AT`), and SIGKILL it once it says it is there.
/// An exec'd IPAM child that stopped dies with it (parent-death signal);
/// this waits until it has. Panics if the step is never reached (the
/// process ended, or the harness's timeout passed): a step name that no
/// code reaches must fail, not pass.
pub fn kill_at(host: &TestNetns, mut cmd: Command, stdin: &[u8], step: &str) -> Killed {
    cmd.env(cni::fault::STOP_AT_VAR, step)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    host.ns().enter_on_exec(&mut cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    if let Some(mut input) = child.stdin.take() {
        if let Err(e) = input.write_all(stdin) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<Option<u32>>();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split(cni::fault::STOPPED_MARKER).nth(1) {
                let stopped = rest
                    .rsplit("(pid ")
                    .next()
                    .and_then(|p| p.trim_end_matches(')').parse().ok());
                let _ = tx.send(stopped);
            }
            let mut l = log2.lock().expect("log lock");
            l.push_str(&line);
            l.push('\n');
        }
        let _ = tx.send(None);
    });
    let got = rx.recv_timeout(COMMAND_TIMEOUT);
    // Killed whatever happened: reached, ended early or hung.
    let _ = child.kill();
    let status = child.wait().expect("wait for the killed plugin");
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut stdout);
    }
    let _ = reader.join();
    let text = log.lock().expect("log lock").clone();
    let stopped = match got {
        Ok(Some(p)) => p,
        other => panic!(
            "{step}: never reached ({}; exit {status:?})\nstdout: {stdout}\nstderr: {text}",
            if other.is_err() {
                "timed out"
            } else {
                "ended first"
            }
        ),
    };
    assert_eq!(status.signal(), Some(9), "{step}: not killed: {status:?}");
    if stopped != pid {
        wait_gone(stopped);
    }
    Killed {
        pid,
        stopped,
        stderr: text,
    }
}

/// Wait until `pid` has exited (gone, or a zombie awaiting its reaper).
pub fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()));
        match state {
            None => return,
            Some(s) if s.starts_with('Z') || s.starts_with('X') => return,
            Some(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Some(s) => panic!("process {pid} outlived its killed parent (state {s})"),
        }
    }
}

/// A small tmpfs mounted at a fresh temporary directory (in this
/// process's mount namespace, at a path no one else uses), unmounted and
/// removed on drop. For data directories that are read-only or full.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn new(tag: &str, size_kb: u32) -> Tmpfs {
        let path = std::env::temp_dir().join(cni_tests::unique(&format!("cnit-{tag}")));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        nix::mount::mount(
            Some("tmpfs"),
            &path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size_kb}k,mode=0755").as_str()),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs at {} (are you root?): {e}", path.display()));
        Tmpfs { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// Remount read-only (`true`) or read-write.
    pub fn set_read_only(&self, ro: bool) {
        use nix::mount::MsFlags;
        let mut flags = MsFlags::MS_REMOUNT;
        if ro {
            flags |= MsFlags::MS_RDONLY;
        }
        nix::mount::mount(None::<&str>, &self.path, None::<&str>, flags, None::<&str>)
            .unwrap_or_else(|e| panic!("remount {} ro={ro}: {e}", self.path.display()));
    }

    /// Fill the file system to the last byte with a file `filler`.
    pub fn fill(&self) {
        let p = self.path.join("filler");
        let mut f = std::fs::File::create(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let block = vec![0u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("fill {}: {e}", p.display()),
            }
        }
        // Single bytes, to the very end.
        while let Ok(1) = f.write(&[0]) {}
    }

    /// Free the space [`Tmpfs::fill`] took.
    pub fn unfill(&self) {
        let p = self.path.join("filler");
        std::fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("cleanup: umount {}: {e}", self.path.display());
            return;
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("cleanup {}: {e}", self.path.display());
        }
    }
}

/// Give `bridge` a port of the host's own (a veth `name`, its peer
/// `<name>p` up beside it: this kernel has no dummy links), so
/// that it keeps its carrier when the last container leaves. Without one,
/// the bridge's operational state and the IPv6 local routes of its
/// gateway addresses come and go a moment after each last DEL, and a
/// snapshot would catch them half-way.
pub fn keep_carrier(host: &TestNetns, bridge: &str, name: &str) {
    let peer = format!("{name}p");
    host.exec(&[
        "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
    ])
    .ok();
    // No IPv6 on either end: their link-local addresses and routes would
    // otherwise appear a moment after they come up.
    for dev in [name, peer.as_str()] {
        host.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=1"),
        ])
        .ok();
    }
    host.exec(&["ip", "link", "set", &peer, "up"]).ok();
    host.exec(&["ip", "link", "set", name, "master", bridge, "up"])
        .ok();
    // Let the bridge settle before anything is compared: up, and its IPv6
    // addresses (its link-local one included) past duplicate address
    // detection, which is when their local routes appear.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = host.link(bridge).is_some_and(|l| l["operstate"] == "UP");
        let addrs = host.ip_json(&["-6", "addr", "show", "dev", bridge]);
        let infos = addrs[0]["addr_info"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let settled = infos.iter().any(|i| i["scope"] == "link")
            && infos.iter().all(|i| i["tentative"] != true);
        if up && settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bridge {bridge} never settled: {addrs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `snapshot` of a plugin environment's host and data directory.
pub fn env_snapshot(env: &PluginEnv) -> Snapshot {
    snapshot(&env.host, env.data.path())
}
