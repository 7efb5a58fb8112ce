//! A conformance harness for CNI plugin binaries: it drives any plugin (ours
//! or the reference Go ones) through what the CNI spec requires of it and
//! reports one named check at a time.
//!
//! Every invocation runs inside a throwaway "host" network namespace, and
//! every ADD gets its own throwaway container namespace, so no plugin ever
//! touches the machine's own namespace. Namespaces are removed on drop, and
//! every successful ADD is followed by a DEL, also when a check fails or the
//! harness panics.
//!
//! ```no_run
//! let opts = cni_conformance::Options::new("/usr/lib/cni/loopback");
//! let report = cni_conformance::run(&opts);
//! print!("{report}");
//! assert!(!report.failed());
//! ```

pub mod call;
mod checks;
pub mod exec;
pub mod ns;
pub mod shape;

use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Every check, in the order they run.
pub const CHECKS: &[&str] = &[
    "version-shape",
    "about",
    "versions-accepted",
    "version-refused",
    "missing-env",
    "invalid-json",
    "bad-container-id",
    "bad-ifname",
    "bad-network-name",
    "lifecycle",
    "del-no-netns",
    "cni-path-optional",
    "gc-status",
    "no-garbage",
];

/// What to test and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The plugin binary.
    pub plugin: PathBuf,
    /// The network configuration; its `cniVersion` is replaced by each
    /// version under test. `None`: `{"name":"conformance","type":<basename>}`.
    pub config: Option<Map<String, Value>>,
    /// `CNI_PATH`; `None`: the plugin binary's directory.
    pub cni_path: Option<String>,
    /// `CNI_IFNAME` for the valid calls.
    pub ifname: String,
    /// Checks to report as SKIP without running them.
    pub skip: Vec<String>,
    /// How long one plugin invocation may take before it is killed.
    pub timeout: Duration,
    /// Run on the harness's host namespace before every ADD: makes what
    /// the config expects to find there (a macvlan's lower device, the
    /// interface host-device moves). It must tolerate what earlier calls
    /// left, and it never runs in the machine's own namespace.
    pub prepare_host: Option<fn(&cni_kernel::Netns)>,
    /// Run on each new container namespace, before any call uses it:
    /// makes what a chained plugin expects to find there (the interface
    /// an earlier plugin would have made). Never the machine's namespace.
    pub prepare_container: Option<fn(&cni_kernel::Netns)>,
}

impl Options {
    pub fn new(plugin: impl Into<PathBuf>) -> Options {
        Options {
            plugin: plugin.into(),
            config: None,
            cni_path: None,
            ifname: "eth0".into(),
            skip: Vec::new(),
            timeout: Duration::from_secs(30),
            prepare_host: None,
            prepare_container: None,
        }
    }

    /// The configuration template: the given one, or the default named
    /// after the binary.
    pub fn config_template(&self) -> Map<String, Value> {
        if let Some(c) = &self.config {
            return c.clone();
        }
        let ty = self
            .plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut m = Map::new();
        m.insert("cniVersion".into(), Value::from(""));
        m.insert("name".into(), Value::from("conformance"));
        m.insert("type".into(), Value::from(ty));
        m
    }

    /// `CNI_PATH` to pass: the given one, or the binary's directory.
    pub fn cni_path(&self) -> String {
        self.cni_path.clone().unwrap_or_else(|| {
            self.plugin
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
    /// Reported, never a failure: behaviour the spec leaves open.
    Info,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Info => "INFO",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Outcome,
    /// One line: what was checked, or every problem found (`; `-separated).
    pub detail: String,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}  {}",
            self.outcome.label(),
            self.name,
            self.detail
        )
    }
}

/// All verdicts of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The verdict of the check named `name`.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Whether any check failed.
    pub fn failed(&self) -> bool {
        self.count(Outcome::Fail) > 0
    }

    /// `conformance: N passed, M failed, K skipped[, I informational]`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "conformance: {} passed, {} failed, {} skipped",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        );
        let info = self.count(Outcome::Info);
        if info > 0 {
            s.push_str(&format!(", {info} informational"));
        }
        s
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{c}")?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// Run every check against `opts.plugin`.
pub fn run(opts: &Options) -> Report {
    run_streaming(opts, |_| {})
}

/// Like [`run`], calling `each` with every verdict as soon as it is known
/// (the CLI prints them as they come).
pub fn run_streaming(opts: &Options, each: impl FnMut(&CheckResult)) -> Report {
    checks::run_all(opts, each)
}
