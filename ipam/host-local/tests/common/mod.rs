//! Helpers for running host-local binaries (ours and the reference) as a
//! runtime would: env vars, config on stdin, a timeout on every run.

#![allow(dead_code)] // each test file uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Our host-local: the suite's executable under that name.
pub fn ours() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| cni_tests::our_plugin("host-local").display().to_string())
}
pub const REFERENCE: &str = "/usr/lib/cni/host-local";

/// A data directory unique to one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hl-it-{tag}-{}", std::process::id()));
        if p.exists() {
            std::fs::remove_dir_all(&p).expect("clear old temp dir");
        }
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The network directory of `name`.
    pub fn net(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cleanup {}: {e}", self.0.display());
        }
    }
}

/// What a plugin run printed.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} / {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// The error code of a failed run.
    pub fn code(&self) -> u64 {
        assert!(!self.ok, "expected failure, got {}", self.stdout);
        self.json()["code"].as_u64().expect("error has a code")
    }

    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_string()
    }

    /// The addresses of a successful ADD, without prefix.
    pub fn ips(&self) -> Vec<String> {
        assert!(self.ok, "ADD failed: {} {}", self.stdout, self.stderr);
        self.json()["ips"]
            .as_array()
            .expect("ips")
            .iter()
            .map(|i| {
                let a = i["address"].as_str().expect("address");
                a.split('/').next().unwrap_or(a).to_string()
            })
            .collect()
    }
}

/// A run to start: binary, verb, container, interface, CNI_ARGS, config.
pub struct Call<'a> {
    pub bin: &'a str,
    pub cmd: &'a str,
    pub id: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub conf: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(bin: &'a str, cmd: &'a str, id: &'a str, conf: &'a str) -> Call<'a> {
        Call {
            bin,
            cmd,
            id,
            ifname: "eth0",
            args: "",
            conf,
        }
    }

    pub fn ifname(mut self, i: &'a str) -> Self {
        self.ifname = i;
        self
    }

    pub fn args(mut self, a: &'a str) -> Self {
        self.args = a;
        self
    }

    pub fn spawn(&self) -> Child {
        self.spawn_via(Command::new(self.bin))
    }

    /// Start `c` (a wrapper that ends up exec'ing `bin`, say) with this
    /// call's environment and config.
    pub fn spawn_via(&self, mut c: Command) -> Child {
        c.env_clear()
            .env("CNI_COMMAND", self.cmd)
            .env("CNI_PATH", "/nonexistent")
            .env("CNI_ARGS", self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.id.is_empty() {
            c.env("CNI_CONTAINERID", self.id)
                .env("CNI_NETNS", "/var/run/netns/hl-test-unused")
                .env("CNI_IFNAME", self.ifname);
        }
        let mut child = c.spawn().unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(self.conf.as_bytes()).expect("write config");
        drop(stdin);
        child
    }

    pub fn run(&self) -> Out {
        wait(self.spawn(), Duration::from_secs(60))
    }
}

/// Wait for a plugin with a deadline; a hung plugin fails the test.
pub fn wait(mut child: Child, limit: Duration) -> Out {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => break,
            None if start.elapsed() > limit => {
                child.kill().expect("kill hung plugin");
                panic!("plugin did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let o = child.wait_with_output().expect("collect output");
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The names of the reservation files (address-named) in a network
/// directory; none when the directory does not exist. Any other failure to
/// list it fails the test, never reads as "no reservations".
pub fn reservations(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap_or_else(|e| panic!("list {}: {e}", dir.display())))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("list {}: {e}", dir.display()),
    };
    v.sort();
    v
}

/// The reference binary, or a failed test explaining how to get it; `None`
/// only when the caller opted out with CNI_SKIP_REFERENCE=1.
pub fn reference() -> Option<&'static str> {
    if Path::new(REFERENCE).is_file() {
        return Some(REFERENCE);
    }
    if std::env::var("CNI_SKIP_REFERENCE").as_deref() == Ok("1") {
        eprintln!("CNI_SKIP_REFERENCE=1: reference interop test not run");
        return None;
    }
    panic!(
        "the reference plugin {REFERENCE} is missing: install Debian's containernetworking-plugins \
         (apt-get install containernetworking-plugins), or set CNI_SKIP_REFERENCE=1 to skip this test explicitly"
    );
}
