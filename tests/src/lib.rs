//! The test harness: throwaway network namespaces that remove themselves on
//! drop (also when a test panics), and running a plugin binary inside a
//! "host" namespace exactly as a runtime would: `CNI_*` variables in the
//! environment, the config on stdin, the result or error on stdout.
//!
//! Nothing here touches the machine's own namespace: every plugin and every
//! command runs inside a namespace the test made. Names carry the process
//! id and a counter, so tests run in parallel.

pub mod guest;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any external command may run before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub use cni_conformance::ns::unique;

/// A named network namespace (`/run/netns/<name>`) deleted on drop, with
/// everything in it: links, addresses, routes, bridges. The conformance
/// harness's throwaway namespace, named `cnit-…`, with the test helpers
/// below.
pub struct TestNetns(cni_conformance::ns::ScratchNetns);

impl TestNetns {
    /// Create a namespace named after `tag`, with `lo` up.
    pub fn new(tag: &str) -> TestNetns {
        TestNetns(cni_conformance::ns::ScratchNetns::with_prefix("cnit", tag))
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn path_str(&self) -> String {
        self.0.path_str()
    }

    pub fn ns(&self) -> &cni_kernel::Netns {
        self.0.ns()
    }

    /// A netlink socket inside this namespace.
    pub fn netlink(&self) -> cni_kernel::Netlink {
        cni_kernel::Netlink::open_in(self.ns()).expect("netlink socket in test namespace")
    }

    /// Run a command inside this namespace, with a timeout.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        self.run(cmd, None)
    }

    /// `ping -c 1` from this namespace; true if a reply came back.
    pub fn ping(&self, ip: &str) -> bool {
        let argv = if ip.contains(':') {
            ["ping", "-6", "-c", "1", "-W", "2", ip]
        } else {
            ["ping", "-4", "-c", "1", "-W", "2", ip]
        };
        self.exec(&argv).status == 0
    }

    /// `ip -j ARGS` inside this namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["ip", "-j"];
        argv.extend_from_slice(args);
        let out = self.exec(&argv);
        assert_eq!(out.status, 0, "ip {args:?}: {}", out.stderr);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("ip -j {args:?} printed no JSON ({e}): {}", out.stdout))
    }

    /// A sysctl's value in this namespace.
    pub fn sysctl(&self, key: &str) -> String {
        self.ns()
            .run(|| cni_kernel::sysctl::read(key))
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawn `cmd` inside this namespace, feed `stdin`, collect output.
    pub fn run(&self, mut cmd: Command, stdin: Option<&[u8]>) -> Output {
        self.ns().enter_on_exec(&mut cmd);
        run_with_timeout(cmd, stdin)
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status; -1 when killed by a signal or the timeout.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Stdout as JSON; panics with the output when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The CNI error code printed on failure.
    pub fn error_code(&self) -> Option<u64> {
        serde_json::from_str::<serde_json::Value>(&self.stdout)
            .ok()?
            .get("code")?
            .as_u64()
    }

    /// The (code, msg) of the CNI error printed on failure; panics with
    /// everything the plugin said unless it failed with an error object.
    pub fn cni_error(&self) -> (u64, String) {
        assert_ne!(
            self.status, 0,
            "expected failure\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        let v = self.json();
        let code = v["code"].as_u64().unwrap_or_else(|| {
            panic!(
                "no numeric code in {}\nstderr: {}",
                self.stdout, self.stderr
            )
        });
        let msg = v["msg"].as_str().unwrap_or_default().to_string();
        (code, msg)
    }

    /// The msg of the CNI error printed on failure, checked to carry `code`.
    pub fn error_with(&self, code: u64) -> String {
        let (got, msg) = self.cni_error();
        assert_eq!(
            got, code,
            "unexpected code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        msg
    }

    /// Panic with everything the plugin said unless it succeeded.
    pub fn ok(self) -> Output {
        assert_eq!(
            self.status, 0,
            "command failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Run a command with a timeout, killing it when the time is up.
pub fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let (Some(data), Some(mut input)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        // A plugin may exit before reading all its input; that is its answer.
        if let Err(e) = input.write_all(data) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {COMMAND_TIMEOUT:?}");
            }
            Err(e) => panic!("wait for {cmd:?}: {e}"),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The cargo target directory this test binary was built into
/// (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The suite's one executable, as built into [`target_dir`].
pub const SUITE_BINARY: &str = "cni-plugins";

/// Where our plugins are, each a name linked to the suite's executable as
/// `make install` installs them: `$CNI_BIN_DIR` (an installed directory),
/// else `target/debug/cni-bin`, whose links this process (re)makes once
/// from the freshly built `target/debug/cni-plugins` and its `--list`.
pub fn our_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CNI_BIN_DIR") {
        return PathBuf::from(d);
    }
    static LINKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LINKED.get_or_init(link_roles).clone()
}

/// Make `target/debug/cni-bin/<role>` a hard link to the built suite
/// binary for every role it lists. Each link is made under a temporary
/// name and renamed into place, so test processes running at once never
/// see a missing or half-made name.
fn link_roles() -> PathBuf {
    let target = target_dir();
    let binary = target.join(SUITE_BINARY);
    assert!(
        binary.is_file(),
        "{} is missing: build the suite first (`cargo build --workspace --bins`, which `make test` does)",
        binary.display()
    );
    let mut cmd = Command::new(&binary);
    cmd.arg("--list");
    let out = run_with_timeout(cmd, None);
    assert!(
        out.status == 0,
        "{} --list failed: {}",
        binary.display(),
        out.stderr
    );
    let dir = target.join("cni-bin");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    for role in out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let tmp = dir.join(format!(".{role}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::fs::hard_link(&binary, &tmp)
            .unwrap_or_else(|e| panic!("link {} to {}: {e}", binary.display(), tmp.display()));
        std::fs::rename(&tmp, dir.join(role))
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", tmp.display()));
    }
    dir
}

/// The path of one of our plugins (a link to the suite's executable);
/// panics with the fix if it was not built.
pub fn our_plugin(name: &str) -> PathBuf {
    let p = our_bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the suite first (`cargo build --workspace --bins`, which `make test` does) \
         and register the plugin in plugins/suite",
        p.display()
    );
    p
}

/// Where the reference Go plugins are (Debian's containernetworking-plugins).
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

pub use cni_conformance::call::Call;

/// Running a [`Call`] the way tests do: inside a test namespace, with the
/// harness's timeout, panicking if it cannot be started.
pub trait RunCall {
    /// Run inside `host`.
    fn run_in(&self, host: &TestNetns) -> Output;

    /// Run in the test process's own namespace: only for calls that touch
    /// no network state (VERSION, refusals before any work).
    fn run_here(&self) -> Output;
}

impl RunCall for Call {
    fn run_in(&self, host: &TestNetns) -> Output {
        host.run(self.command(), Some(self.config.as_bytes()))
    }

    fn run_here(&self) -> Output {
        run_with_timeout(self.command(), Some(self.config.as_bytes()))
    }
}

/// A directory under the system temp dir, removed with everything in it on
/// drop. For host-local `dataDir`s and `CNI_PATH` directories.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(&format!("cnit-{tag}")));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn path_str(&self) -> String {
        self.0.display().to_string()
    }

    /// Write an executable shell script named `name` (a fake plugin).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}"))
            .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        p
    }

    /// The file names in `sub` (relative to this directory), sorted; empty
    /// when it does not exist.
    pub fn listing(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.0.join(sub)) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("list {}: {e}", self.0.join(sub).display()),
        };
        names.sort();
        names
    }

    /// host-local's reservation files of `network` in this `dataDir`: the
    /// files named by an IP address (not `lock`, `last_reserved_ip.*` or an
    /// implementation's own index files).
    pub fn reservations(&self, network: &str) -> Vec<String> {
        self.listing(network)
            .into_iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// Put `binary` here as `name`: a hard link when possible (a rebuild
    /// replaces the target's file, never rewrites it, so the link keeps the
    /// binary this test started with), else a copy.
    pub fn add_plugin(&self, name: &str, binary: &Path) -> PathBuf {
        let dst = self.0.join(name);
        if std::fs::hard_link(binary, &dst).is_err() {
            // The test guest's /tmp is not the filesystem of target/ (the
            // host's, read-only there), and copies of a debug build soon
            // fill it: a symlink, which nothing rebuilds there.
            if guest::inside() {
                std::os::unix::fs::symlink(binary, &dst).unwrap_or_else(|e| {
                    panic!("symlink {} to {}: {e}", binary.display(), dst.display())
                });
                return dst;
            }
            std::fs::copy(binary, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", binary.display(), dst.display()));
        }
        dst
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cleanup {}: {e}", self.0.display());
        }
    }
}

/// The reference plugin `name` in [`REFERENCE_DIR`], or a panic saying how
/// to install it: a test that compares with the reference never passes
/// without it (`.ci/run` installs Debian's containernetworking-plugins).
pub fn reference_plugin(name: &str) -> PathBuf {
    let p = Path::new(REFERENCE_DIR).join(name);
    assert!(
        p.is_file(),
        "{} is missing: install containernetworking-plugins (apt-get install containernetworking-plugins)",
        p.display()
    );
    p
}

/// Whether `binary` answers VERSION listing `version`.
pub fn plugin_supports(binary: &Path, version: &str) -> bool {
    let mut cmd = Command::new(binary);
    cmd.env("CNI_COMMAND", "VERSION");
    let out = run_with_timeout(cmd, Some(br#"{"cniVersion":"1.0.0"}"#));
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["supportedVersions"].as_array().cloned())
        .is_some_and(|vs| vs.iter().any(|v| v == version))
}

/// Our host-local, when it is built and speaks 1.1.0 (a placeholder binary
/// answers nothing).
pub fn our_host_local() -> Option<PathBuf> {
    let p = our_bin_dir().join("host-local");
    (p.is_file() && plugin_supports(&p, "1.1.0")).then_some(p)
}

/// Our host-local, or a panic saying why a test needs it.
pub fn require_our_host_local(why: &str) -> PathBuf {
    our_host_local().unwrap_or_else(|| {
        panic!(
            "{}/host-local is missing or does not speak CNI 1.1.0: {why} needs our host-local \
             (`cargo build -p host-local`)",
            our_bin_dir().display()
        )
    })
}

/// The IPAM plugin the main tests use: always ours, so a broken or missing
/// host-local fails the tests instead of being replaced by the reference.
pub fn default_host_local() -> PathBuf {
    require_our_host_local("the bridge and ptp tests")
}

/// `base` (an object) with the keys of `extra` (an object) set on it.
pub fn merge(base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut base = base;
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

/// A host-local `ipam` section with one range set per subnet, storing in `data`.
pub fn host_local_ipam(data: &TempDir, subnets: &[&str]) -> serde_json::Value {
    let ranges: Vec<serde_json::Value> = subnets
        .iter()
        .map(|s| serde_json::json!([{ "subnet": s }]))
        .collect();
    serde_json::json!({"type": "host-local", "ranges": ranges, "dataDir": data.path_str()})
}

/// The address (without prefix) of a 0.3.0+ result's first IP of one family.
pub fn result_ip(result: &serde_json::Value, v6: bool) -> String {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .find(|a| a.contains(':') == v6)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no IPv{} address in {result}", if v6 { 6 } else { 4 }))
        .to_string()
}

/// `conf` with `prevResult` set to `prev`.
pub fn with_prev(conf: &serde_json::Value, prev: &serde_json::Value) -> serde_json::Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

impl TestNetns {
    /// `ip -j -d link show DEV`: the link's JSON object; `None` when absent
    /// (decided from the list of all links, so a failing `ip` fails the test).
    pub fn link(&self, dev: &str) -> Option<serde_json::Value> {
        self.ip_json(&["-d", "link", "show"])
            .as_array()
            .expect("ip -j link show prints a list")
            .iter()
            .find(|l| l["ifname"] == dev)
            .cloned()
    }

    /// Whether `dev` exists and has the flag (`UP`, `PROMISC`, ...).
    pub fn link_has_flag(&self, dev: &str, flag: &str) -> bool {
        self.link(dev)
            .and_then(|l| l["flags"].as_array().cloned())
            .is_some_and(|f| f.iter().any(|x| x == flag))
    }

    /// The global addresses of `dev` as `addr/prefix`, sorted.
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        let mut out: Vec<String> = v[0]["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["scope"] != "link" && i["scope"] != "host")
                    .map(|i| {
                        format!(
                            "{}/{}",
                            i["local"].as_str().unwrap_or_default(),
                            i["prefixlen"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_else(|| panic!("ip -j addr show dev {dev}: no addr_info in {v}"));
        out.sort();
        out
    }

    /// The routes of one family (`-4`/`-6`) in the main table, as
    /// `ip -j route show` objects.
    pub fn routes(&self, family: &str) -> Vec<serde_json::Value> {
        self.ip_json(&[family, "route", "show"])
            .as_array()
            .cloned()
            .expect("ip -j route show prints a list")
    }

    /// The names of all links, sorted: a snapshot to compare before and
    /// after an operation.
    pub fn link_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ip_json(&["link", "show"])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                    .collect()
            })
            .expect("ip -j link show prints a list");
        names.sort();
        names
    }

    /// `nft -j list chain FAMILY TABLE CHAIN` here; empty when the table or
    /// chain does not exist (decided from nft's JSON list of chains). Any
    /// failure of nft itself fails the test: a "rules are gone" check must
    /// never pass because nft could not run.
    pub fn nft_chain(&self, family: &str, table: &str, chain: &str) -> String {
        let out = self.exec(&["nft", "-j", "list", "chains", family]);
        assert_eq!(out.status, 0, "nft list chains {family}: {}", out.stderr);
        let chains: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("nft printed no JSON ({e}): {}", out.stdout));
        let exists = chains["nftables"]
            .as_array()
            .expect("nft -j prints an nftables list")
            .iter()
            .filter_map(|i| i.get("chain"))
            .any(|c| c["table"] == table && c["name"] == chain);
        if !exists {
            return String::new();
        }
        let out = self.exec(&["nft", "-j", "list", "chain", family, table, chain]);
        assert_eq!(
            out.status, 0,
            "nft list chain {family} {table} {chain}: {}",
            out.stderr
        );
        out.stdout
    }

    /// The ipMasq nftables rules here (chain `masq_checks` of table
    /// `inet cni_plugins_masquerade`), as `nft -j` prints them.
    pub fn masq_rules(&self) -> String {
        self.nft_chain("inet", "cni_plugins_masquerade", "masq_checks")
    }

    /// `ping` until a reply comes back or `within` passes (IPv6 addresses
    /// may still be finishing DAD, neighbours resolving).
    pub fn ping_within(&self, ip: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.ping(ip) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every spec version, oldest first.
pub const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// Everything one plugin test runs in: its own "host" namespace, a
/// `CNI_PATH` directory holding the plugins it calls, and a host-local
/// `dataDir`. All removed on drop.
pub struct PluginEnv {
    pub host: TestNetns,
    pub bin: TempDir,
    pub data: TempDir,
}

impl PluginEnv {
    /// `plugins`: (name on `CNI_PATH`, binary).
    pub fn new(tag: &str, plugins: &[(&str, &Path)]) -> PluginEnv {
        let env = PluginEnv {
            host: TestNetns::new(tag),
            bin: TempDir::new(&format!("{tag}-bin")),
            data: TempDir::new(&format!("{tag}-data")),
        };
        for (name, binary) in plugins {
            env.bin.add_plugin(name, binary);
        }
        env
    }

    /// A call of the plugin `name` from the `CNI_PATH` directory, with
    /// `CNI_PATH` set to it.
    pub fn call(&self, name: &str, command: &str, conf: &serde_json::Value) -> Call {
        Call::new(self.bin.path().join(name), command, &conf.to_string())
    }

    /// ADD of `conf`'s plugin for `container` in `ctr` (`eth0`), run in the host.
    pub fn add(&self, ctr: &TestNetns, container: &str, conf: &serde_json::Value) -> Output {
        self.verb("ADD", Some(ctr), container, conf)
    }

    /// Any verb of `conf`'s plugin (`type`) for `container`; `ctr` gives
    /// `CNI_NETNS` (empty without).
    pub fn verb(
        &self,
        command: &str,
        ctr: Option<&TestNetns>,
        container: &str,
        conf: &serde_json::Value,
    ) -> Output {
        let ty = conf["type"].as_str().expect("config has a type");
        let mut call = self.call(ty, command, conf).container(container);
        if let Some(c) = ctr {
            call = call.netns(&c.path_str());
        }
        call.run_in(&self.host)
    }

    /// ADD, CHECK (0.4.0 and later, with the ADD's result as prevResult)
    /// and DEL of one dual-stack attachment under every spec version. The
    /// result must carry that version and its shape (`ip4`/`ip6` before
    /// 0.3.0; else `interfaces` entries with both addresses on
    /// `ip_interface`, and `ips[].version` before 1.0.0), parse, and DEL must
    /// leave no reservation in `network`. `conf(version)` gives the config.
    pub fn lifecycle_in_every_version(
        &self,
        network: &str,
        conf: impl Fn(&str) -> serde_json::Value,
        interfaces: usize,
        ip_interface: usize,
    ) {
        for (n, version) in VERSIONS.iter().enumerate() {
            let c = conf(version);
            let ctr = TestNetns::new("ver-c");
            let id = format!("v{n}");
            let r = self.add(&ctr, &id, &c).ok().json();
            assert_eq!(r["cniVersion"], *version);
            let v = cni::Version::parse(version).expect("known version");
            let parsed = cni::CniResult::from_value(&r, v)
                .unwrap_or_else(|e| panic!("{version}: {e:?}\n{r}"));
            assert_eq!(parsed.ips.len(), 2, "{version}: {r}");
            if v.is_legacy() {
                assert!(r.get("ip4").is_some() && r.get("ip6").is_some(), "{r}");
                assert!(
                    r.get("interfaces").is_none() && r.get("ips").is_none(),
                    "{r}"
                );
            } else {
                assert_eq!(parsed.interfaces.len(), interfaces, "{version}: {r}");
                assert!(
                    parsed.ips.iter().all(|i| i.interface == Some(ip_interface)),
                    "{r}"
                );
                let has_version = r["ips"][0].get("version").is_some();
                assert_eq!(has_version, v < cni::Version::V1_0_0, "{version}: {r}");
            }
            let prev = with_prev(&c, &r);
            if v >= cni::Version::V0_4_0 {
                self.verb("CHECK", Some(&ctr), &id, &prev).ok();
            }
            self.verb("DEL", Some(&ctr), &id, &prev).ok();
            assert_eq!(
                self.data.reservations(network),
                Vec::<String>::new(),
                "{version}"
            );
        }
    }

    /// DEL when the container namespace is gone by the time the runtime
    /// deletes: once deleted outright, once unmounted with its file left
    /// behind (a runtime cleaning up in the wrong order). Both succeed, a
    /// repeat succeeds, and no reservation of `network` is left. Returns the
    /// results of the two ADDs, for plugin-specific checks.
    pub fn del_after_namespace_is_gone(
        &self,
        network: &str,
        conf: &serde_json::Value,
    ) -> Vec<serde_json::Value> {
        let plugin = conf["type"].as_str().expect("config has a type");
        let leftover = self.data.path().join("netns-leftover");
        std::fs::write(&leftover, "").expect("write leftover netns file");
        let mut results = Vec::new();
        for (id, leave_file) in [("gone1", false), ("gone2", true)] {
            let ns = TestNetns::new("del-gone");
            let r = self.add(&ns, id, conf).ok().json();
            assert!(!self.data.reservations(network).is_empty());
            let path = if leave_file {
                leftover.display().to_string()
            } else {
                ns.path_str()
            };
            drop(ns);
            let del = self
                .call(plugin, "DEL", &with_prev(conf, &r))
                .container(id)
                .netns(&path);
            del.run_in(&self.host).ok();
            del.run_in(&self.host).ok();
            assert_eq!(
                self.data.reservations(network),
                Vec::<String>::new(),
                "{id}"
            );
            results.push(r);
        }
        results
    }

    /// GC (1.1.0) with two attachments and `ipMasq`: without a list nothing
    /// is removed; listing only c1 in
    /// `cni.dev/valid-attachments` removes c2's masquerade rule and
    /// reservation and leaves c1 working (CHECK passes); STATUS succeeds;
    /// both DELs leave nothing. `c` is a 1.1.0 config with `ipMasq`.
    pub fn gc_keeps_only_valid_attachments(&self, network: &str, c: &serde_json::Value) {
        let c1 = TestNetns::new("gc-c1");
        let c2 = TestNetns::new("gc-c2");
        let r1 = self.add(&c1, "c1", c).ok().json();
        let r2 = self.add(&c2, "c2", c).ok().json();
        let (ip1, ip2) = (result_ip(&r1, false), result_ip(&r2, false));
        let rules = self.host.masq_rules();
        assert!(rules.contains(&format!("\"{ip1}\"")) && rules.contains(&format!("\"{ip2}\"")));
        assert_eq!(
            self.data.reservations(network),
            vec![ip1.clone(), ip2.clone()]
        );

        // A GC without a list knows nothing to be stale: nothing goes.
        self.bare("GC", c).ok();
        assert_eq!(
            self.host.masq_rules(),
            rules,
            "GC without a list kept the rules"
        );
        assert_eq!(
            self.data.reservations(network),
            vec![ip1.clone(), ip2.clone()],
            "GC without a list kept the reservations"
        );

        let mut gc = c.clone();
        gc["cni.dev/valid-attachments"] =
            serde_json::json!([{"containerID": "c1", "ifname": "eth0"}]);
        gc["cni.dev/attachments"] = gc["cni.dev/valid-attachments"].clone();
        self.bare("GC", &gc).ok();
        let rules = self.host.masq_rules();
        assert!(rules.contains(&format!("\"{ip1}\"")), "c1 kept: {rules}");
        assert!(
            !rules.contains(&format!("\"{ip2}\"")),
            "c2 collected: {rules}"
        );
        assert_eq!(self.data.reservations(network), vec![ip1.clone()]);
        self.verb("CHECK", Some(&c1), "c1", &with_prev(c, &r1)).ok();
        self.bare("STATUS", c).ok();

        self.verb("DEL", Some(&c1), "c1", &with_prev(c, &r1)).ok();
        self.verb("DEL", Some(&c2), "c2", &with_prev(c, &r2)).ok();
        assert_eq!(self.data.reservations(network), Vec::<String>::new());
        assert!(!self.host.masq_rules().contains(&ip1));
    }

    /// GC or STATUS of `conf`'s plugin: only `CNI_COMMAND` and `CNI_PATH` set.
    pub fn bare(&self, command: &str, conf: &serde_json::Value) -> Output {
        let ty = conf["type"].as_str().expect("config has a type");
        self.call(ty, command, conf)
            .without("CNI_CONTAINERID")
            .without("CNI_NETNS")
            .without("CNI_IFNAME")
            .without("CNI_ARGS")
            .run_in(&self.host)
    }
}
