//! What the runtime suites (Podman, containerd) share: a busybox root
//! filesystem, a tracing plugin directory in front of ours, and reading
//! the traces back.

#![allow(dead_code)] // each runtime suite uses a different subset

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugins a runtime suite may call, traced.
pub const PLUGINS: &[&str] = &[
    "bridge",
    "ptp",
    "host-local",
    "portmap",
    "firewall",
    "tuning",
    "bandwidth",
    "loopback",
];

/// A tool the test cannot run without: a panic naming the Debian package.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is missing: apt-get install {package} (.ci/run does)"
    );
}

/// A root filesystem with a static busybox and its applets as relative
/// links, and `/www/index.html` saying `hello from <who>`.
pub fn build_rootfs(root: &Path, who: &str) {
    assert!(
        Path::new("/bin/busybox").is_file(),
        "/bin/busybox is missing: apt-get install busybox-static (.ci/run does)"
    );
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "www"] {
        std::fs::create_dir_all(root.join(sub)).expect("rootfs dir");
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("www/index.html"), format!("hello from {who}\n")).expect("index");
}

/// Fill `bin` with one wrapper per plugin: it records the `CNI_*`
/// environment and stdin into `traces`, runs the plugin of that name from
/// `ours` with the same stdin, and records the exit code. The plugins are
/// linked (or copied) into `bin/.plugins` first, so the wrappers still find
/// them where a runtime's view hides `ours` (a private /usr/lib/cni).
pub fn tracing_plugin_dir(bin: &Path, traces: &Path, ours: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let real = bin.join(".plugins");
    std::fs::create_dir_all(&real).expect("plugin copies");
    for p in PLUGINS {
        let src = ours.join(p);
        if !src.is_file() {
            continue;
        }
        if std::fs::hard_link(&src, real.join(p)).is_err() {
            std::fs::copy(&src, real.join(p))
                .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
    for p in PLUGINS {
        let body = format!(
            "n=$(date +%s%N)-$$\n\
             env | grep -E '^CNI_' | grep -v '^CNI_TRACE_OUT=' | sort > {t}/$n.{p}.env\n\
             tee {t}/$n.{p}.stdin | {o}/{p}\nrc=$?\necho $rc > {t}/$n.{p}.rc\nexit $rc\n",
            t = traces.display(),
            o = real.display(),
        );
        let path = bin.join(p);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("wrapper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// One recorded plugin call.
#[derive(Debug, Clone)]
pub struct Traced {
    pub plugin: String,
    pub env: Vec<(String, String)>,
    pub rc: i32,
    pub stdin: Value,
}

impl Traced {
    pub fn var(&self, k: &str) -> &str {
        self.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn command(&self) -> &str {
        self.var("CNI_COMMAND")
    }
}

/// Every call recorded in `traces`, in call order.
pub fn calls(traces: &Path) -> Vec<Traced> {
    let mut names: Vec<String> = std::fs::read_dir(traces)
        .expect("traces")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rc"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let stem = n.trim_end_matches(".rc");
            let plugin = stem.rsplit('.').next().unwrap_or_default().to_string();
            let read = |ext: &str| {
                std::fs::read_to_string(traces.join(format!("{stem}.{ext}"))).unwrap_or_default()
            };
            let env = read("env")
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Traced {
                plugin,
                env,
                rc: read("rc").trim().parse().unwrap_or(-1),
                stdin: serde_json::from_str(&read("stdin")).unwrap_or(Value::Null),
            }
        })
        .collect()
}

/// Every recorded call succeeded (there was at least one).
pub fn assert_every_call_succeeded(traces: &Path) {
    let calls = calls(traces);
    assert!(!calls.is_empty(), "no plugin was called");
    for c in &calls {
        assert_eq!(
            c.rc,
            0,
            "{} {} failed; it was given {} with {:?}",
            c.plugin,
            c.command(),
            c.stdin,
            c.env
        );
    }
}

/// `CNI_TRACE_OUT=DIR`: copy the traces into DIR/<name> (how the fixtures
/// under tests/fixtures/runtime-traces were made).
pub fn keep_traces(traces: &Path, name: &str) {
    let Some(out) = std::env::var_os("CNI_TRACE_OUT") else {
        return;
    };
    let out = Path::new(&out).join(name);
    let copied = std::fs::create_dir_all(&out).and_then(|_| {
        for e in std::fs::read_dir(traces)? {
            let e = e?;
            std::fs::copy(e.path(), out.join(e.file_name()))?;
        }
        Ok(())
    });
    if let Err(e) = copied {
        eprintln!("keep traces in {}: {e}", out.display());
    }
}

/// Names of files under `dir` that are IP addresses (host-local
/// reservations); none when `dir` does not exist.
pub fn reservations(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// An OCI image layout tar of a busybox root, named `name` (a full
/// reference like `docker.io/cnitest/busybox:1`, which is what the CRI
/// looks up) with `cmd` as its command, in `dir`.
pub fn build_image(dir: &Path, name: &str, cmd: &[&str]) -> PathBuf {
    use sha2_free::digest;
    let rootfs = dir.join("rootfs");
    build_rootfs(&rootfs, "containerd");
    let blobs = dir.join("layout/blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs");
    let layer = dir.join("layer.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(&layer)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the rootfs failed");
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = digest(bytes);
        std::fs::write(blobs.join(&d), bytes).expect("blob");
        (d, bytes.len())
    };
    let (l, ls) = put(&std::fs::read(&layer).expect("layer"));
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{l}")]},
    });
    let (c, cs) = put(config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{c}"), "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{l}"), "size": ls}],
    });
    let (m, ms) = put(manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{m}"), "size": ms,
                       "annotations": {"org.opencontainers.image.ref.name": name}}],
    });
    std::fs::write(dir.join("layout/index.json"), index.to_string()).expect("index");
    std::fs::write(
        dir.join("layout/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let tar = dir.join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir.join("layout"))
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the image layout failed");
    tar
}

/// SHA-256 by `sha256sum` (the test crate has no hashing dependency).
pub mod sha2_free {
    pub fn digest(bytes: &[u8]) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha256sum");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write");
        let out = child.wait_with_output().expect("sha256sum");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .expect("digest")
            .to_string()
    }
}

/// Make `subs` under `dir`, and the machine-side mount points `points`
/// (empty directories, created only where absent) that the runtimes' views
/// bind the test's directories over.
pub fn make_dirs(dir: &Path, subs: &[&str], points: &[&str]) {
    for sub in subs {
        std::fs::create_dir_all(dir.join(sub)).expect("test directory");
    }
    for m in points {
        std::fs::create_dir_all(m).unwrap_or_else(|e| panic!("create {m}: {e}"));
    }
}

/// A private containerd: `<dir>/config.toml`, its socket at
/// `<dir>/containerd.sock`, its log at `<dir>/containerd.log`, started in
/// `netns` (a namespace path) inside a mount namespace where each
/// `(from, onto)` of `binds` is bind-mounted (/run/containerd at least: the
/// daemon, its shims and runc keep state there whatever the config says).
/// Killed on drop, with its shims.
pub struct Containerd {
    child: Option<std::process::Child>,
    dir: PathBuf,
}

impl Containerd {
    pub fn start(dir: &Path, netns: &str, binds: &[(PathBuf, &str)]) -> Containerd {
        let mut script = String::new();
        for (from, onto) in binds {
            script.push_str(&format!("mount --bind {} {onto} && ", from.display()));
        }
        script.push_str(&format!(
            "exec nsenter --net={netns} containerd --config {}/config.toml",
            dir.display()
        ));
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "unchanged", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        Containerd {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Wait until `answers()` (a `ctr version`, say) says it is up.
    pub fn wait_ready(&self, within: std::time::Duration, answers: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + within;
        while !answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not answer: {}",
                std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut d) = self.child.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        // Shims outlive their daemon; they carry its socket on their command line.
        let sock = self.socket().display().to_string();
        let _ = Command::new("pkill").args(["-KILL", "-f", &sock]).status();
    }
}
