//! The test harness: throwaway network namespaces that remove themselves on
//! drop (also when a test panics), and running a plugin binary inside a
//! "host" namespace exactly as a runtime would: `CNI_*` variables in the
//! environment, the config on stdin, the result or error on stdout.
//!
//! Nothing here touches the machine's own namespace: every plugin and every
//! command runs inside a namespace the test made. Names carry the process
//! id and a counter, so tests run in parallel.

use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any external command may run before the harness kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace (`/run/netns/<name>`) deleted on drop, with
/// everything in it: links, addresses, routes, bridges.
pub struct TestNetns {
    name: String,
    path: PathBuf,
    ns: cni_kernel::Netns,
}

impl TestNetns {
    /// Create a namespace named after `tag`, with `lo` up.
    pub fn new(tag: &str) -> TestNetns {
        let name = unique(&format!("cnit-{tag}"));
        let path = cni_kernel::netns::create_named(&name)
            .unwrap_or_else(|e| panic!("create namespace {name} (are you root?): {e}"));
        let ns = cni_kernel::Netns::open(&path).expect("open the namespace just made");
        let me = TestNetns { name, path, ns };
        let mut nl = me.netlink();
        let lo = nl.link_by_name("lo").expect("lo exists");
        nl.set_up(lo.index).expect("set lo up");
        me
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    pub fn ns(&self) -> &cni_kernel::Netns {
        &self.ns
    }

    /// A netlink socket inside this namespace.
    pub fn netlink(&self) -> cni_kernel::Netlink {
        cni_kernel::Netlink::open_in(&self.ns).expect("netlink socket in test namespace")
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
        serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// A sysctl's value in this namespace.
    pub fn sysctl(&self, key: &str) -> String {
        self.ns
            .run(|| cni_kernel::sysctl::read(key))
            .expect("thread in namespace")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Spawn `cmd` inside this namespace, feed `stdin`, collect output.
    pub fn run(&self, mut cmd: Command, stdin: Option<&[u8]>) -> Output {
        let fd: RawFd = self.ns.as_raw_fd();
        // SAFETY: between fork and exec only setns(2), which is
        // async-signal-safe, runs; the fd stays open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run_with_timeout(cmd, stdin)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = cni_kernel::netns::delete_named(&self.name) {
            eprintln!("cleanup: {e}");
        }
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

/// Where our built plugin binaries are: `$CNI_BIN_DIR`, else the cargo
/// target directory this test binary was built into (`target/debug`).
pub fn our_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CNI_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The path of one of our plugin binaries; panics with the fix if it was
/// not built.
pub fn our_plugin(name: &str) -> PathBuf {
    let p = our_bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the plugins first (`cargo build --workspace --bins`, which `make test` does)",
        p.display()
    );
    p
}

/// Where the reference Go plugins are (Debian's containernetworking-plugins).
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// One invocation of a plugin, built up field by field.
#[derive(Debug, Clone)]
pub struct Call {
    pub binary: PathBuf,
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub cni_path: String,
    pub config: String,
    /// Variables to leave out entirely (to test their absence).
    pub unset: Vec<String>,
}

impl Call {
    pub fn new(binary: impl Into<PathBuf>, command: &str, config: &str) -> Call {
        let binary = binary.into();
        let dir = binary
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Call {
            binary,
            command: command.into(),
            container_id: "test-container".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: String::new(),
            cni_path: dir,
            config: config.into(),
            unset: Vec::new(),
        }
    }

    pub fn container(mut self, id: &str) -> Call {
        self.container_id = id.into();
        self
    }

    pub fn netns(mut self, path: &str) -> Call {
        self.netns = path.into();
        self
    }

    pub fn ifname(mut self, name: &str) -> Call {
        self.ifname = name.into();
        self
    }

    pub fn args(mut self, args: &str) -> Call {
        self.args = args.into();
        self
    }

    pub fn cni_path(mut self, path: &str) -> Call {
        self.cni_path = path.into();
        self
    }

    pub fn without(mut self, var: &str) -> Call {
        self.unset.push(var.into());
        self
    }

    /// The command as a runtime would start it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (k, v) in [
            ("CNI_COMMAND", &self.command),
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_ARGS", &self.args),
            ("CNI_PATH", &self.cni_path),
        ] {
            if self.unset.iter().any(|u| u == k) {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd
    }

    /// Run inside `host`.
    pub fn run_in(&self, host: &TestNetns) -> Output {
        host.run(self.command(), Some(self.config.as_bytes()))
    }
}
