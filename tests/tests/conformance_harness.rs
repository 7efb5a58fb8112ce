//! The harness against our loopback, the reference Go plugins, and fake
//! plugins that break the contract on purpose.
//!
//! Needs root (network namespaces) and our loopback built first:
//! `cargo build -p loopback && cargo test -p cni-conformance`.
//! The reference plugins are expected in /usr/lib/cni; without them the
//! reference tests fail (`.ci/run` installs them).

use cni_conformance::{Options, Outcome, Report, CHECKS};
use std::time::Duration;

fn outcome(report: &Report, name: &str) -> Outcome {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no check {name} in\n{report}"))
        .outcome
}

fn assert_outcome(report: &Report, name: &str, want: Outcome) {
    assert_eq!(
        outcome(report, name),
        want,
        "check {name} in this report:\n{report}"
    );
}

use cni_tests::{reference_plugin as reference, TempDir};

#[test]
fn our_loopback_passes_every_check() {
    let report = cni_conformance::run(&Options::new(cni_tests::our_plugin("loopback")));
    println!("{report}");
    assert_eq!(report.checks.len(), CHECKS.len(), "{report}");
    for name in CHECKS {
        let want = if *name == "cni-path-optional" {
            Outcome::Info
        } else {
            Outcome::Pass
        };
        assert_outcome(&report, name, want);
    }
    assert!(!report.failed());
}

#[test]
fn reference_loopback() {
    let plugin = reference("loopback");
    let report = cni_conformance::run(&Options::new(plugin));
    println!("{report}");
    let versions = &report.get("version-shape").expect("version-shape").detail;
    assert!(
        versions.contains("supportedVersions 0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0"),
        "{report}"
    );
    for name in [
        "version-shape",
        "about",
        "version-refused",
        "missing-env",
        "invalid-json",
        "bad-container-id",
        "bad-ifname",
        "bad-network-name",
        "lifecycle",
        "del-no-netns",
        "no-garbage",
    ] {
        assert_outcome(&report, name, Outcome::Pass);
    }
    // Before 1.1.0 there is no GC/STATUS to test.
    assert_outcome(&report, "gc-status", Outcome::Skip);
    // The Go skeleton insists on CNI_PATH: reported, never failed.
    assert_outcome(&report, "cni-path-optional", Outcome::Info);
    assert!(report
        .get("cni-path-optional")
        .is_some_and(|c| c.detail.contains("code 4")));
    // Debian's 1.1.1 loopback labels its 1.0.0-shaped result with the
    // requested older version (0.1.0/0.2.0 with "ips", 0.3.x/0.4.0 without
    // ips[].version). Every ADD and DEL still succeeds, and 1.0.0 is right.
    let va = report.get("versions-accepted").expect("versions-accepted");
    if va.outcome == Outcome::Fail {
        assert!(!va.detail.contains("1.0.0:"), "{report}");
        assert!(
            !va.detail.contains(": ADD ") && !va.detail.contains(": DEL "),
            "{report}"
        );
    }
}

#[test]
fn reference_host_local_passes_and_leaves_no_reservation() {
    let plugin = reference("host-local");
    let data = TempDir::new("conf-hl");
    let config = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "conf",
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.250.0.0/24"}]],
            "dataDir": data.path(),
        },
    });
    let mut opts = Options::new(plugin);
    opts.config = config.as_object().cloned();
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    assert_outcome(&report, "versions-accepted", Outcome::Pass);
    assert_outcome(&report, "lifecycle", Outcome::Pass);
    // Every ADD was undone: only the store's own files are left.
    let left: Vec<String> = std::fs::read_dir(data.path().join("conf"))
        .expect("host-local made its network dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
        .collect();
    assert!(left.is_empty(), "reservations left behind: {left:?}");
}

/// Answers VERSION correctly, then says yes to everything and labels its
/// results with the wrong version.
const YES_MAN: &str = r#"cat >/dev/null
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
ADD) echo '{"cniVersion":"0.3.1","ips":[]}' ;;
esac
exit 0
"#;

#[test]
fn a_plugin_that_accepts_everything_fails() {
    let dir = TempDir::new("conf-fake");
    let report = cni_conformance::run(&Options::new(dir.script("yes-man", YES_MAN)));
    println!("{report}");
    for name in [
        "versions-accepted",
        "version-refused",
        "missing-env",
        "invalid-json",
        "bad-container-id",
        "bad-ifname",
        "bad-network-name",
    ] {
        assert_outcome(&report, name, Outcome::Fail);
    }
    let va = &report.get("versions-accepted").expect("checked").detail;
    assert!(
        va.contains("cniVersion is \"0.3.1\", requested 1.0.0"),
        "{va}"
    );
    let env = &report.get("missing-env").expect("checked").detail;
    assert!(
        env.contains("ADD without CNI_NETNS: exit 0, expected code 4"),
        "{env}"
    );
    assert!(report.failed());
}

#[test]
fn a_plugin_that_prints_garbage_on_errors_fails() {
    let dir = TempDir::new("conf-fake");
    let plugin = dir.script(
        "garbage",
        r#"cat >/dev/null
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0
fi
echo "oops, something broke"
exit 1
"#,
    );
    let report = cni_conformance::run(&Options::new(plugin));
    println!("{report}");
    assert_outcome(&report, "version-shape", Outcome::Pass);
    assert_outcome(&report, "no-garbage", Outcome::Fail);
    assert_outcome(&report, "invalid-json", Outcome::Fail);
    let d = &report.get("no-garbage").expect("checked").detail;
    assert!(d.contains("not a JSON error object"), "{d}");
}

#[test]
fn a_broken_version_answer_fails_and_skips_what_needs_it() {
    let dir = TempDir::new("conf-fake");
    let plugin = dir.script(
        "badversion",
        r#"cat >/dev/null
echo '{"cniVersion":"1.0","supportedVersions":"all"}'
"#,
    );
    let report = cni_conformance::run(&Options::new(plugin));
    println!("{report}");
    assert_outcome(&report, "version-shape", Outcome::Fail);
    assert_outcome(&report, "versions-accepted", Outcome::Skip);
    assert_outcome(&report, "lifecycle", Outcome::Skip);
}

#[test]
fn a_hanging_plugin_is_killed_and_fails() {
    let dir = TempDir::new("conf-fake");
    let plugin = dir.script(
        "hang",
        r#"if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0
fi
sleep 60
"#,
    );
    let mut opts = Options::new(plugin);
    opts.timeout = Duration::from_secs(1);
    // Only what is needed to see a timeout become a FAIL line.
    opts.skip = CHECKS
        .iter()
        .filter(|c| !["version-shape", "versions-accepted", "no-garbage"].contains(c))
        .map(|c| c.to_string())
        .collect();
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert_outcome(&report, "versions-accepted", Outcome::Fail);
    assert_outcome(&report, "no-garbage", Outcome::Fail);
    assert_outcome(&report, "missing-env", Outcome::Skip);
    let d = &report.get("versions-accepted").expect("checked").detail;
    assert!(d.contains("did not finish"), "{d}");
}

#[test]
fn cli_exit_codes_and_lines() {
    let cli = cni_tests::target_dir().join("cni-conformance");
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&cli);
        cmd.args(args);
        cni_tests::run_with_timeout(cmd, None)
    };
    let ours = cni_tests::our_plugin("loopback");
    let out = run(&[ours.to_str().expect("utf-8 path")]);
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("PASS  versions-accepted  0.1.0 0.2.0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("conformance: 13 passed, 0 failed, 0 skipped"),
        "{}",
        out.stdout
    );

    let dir = TempDir::new("conf-fake");
    let fake = dir.script("yes-man", YES_MAN);
    let out = run(&[
        "--skip-check",
        "lifecycle",
        fake.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(out.stdout.contains("FAIL  missing-env  "), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("SKIP  lifecycle  skipped by --skip-check"),
        "{}",
        out.stdout
    );

    assert_eq!(run(&["--skip-check", "nonsense", "/bin/true"]).status, 2);
    assert_eq!(run(&["--config-json", "[1]", "/bin/true"]).status, 2);
    assert_eq!(run(&[]).status, 2);
}
