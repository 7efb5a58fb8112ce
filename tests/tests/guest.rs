//! The guest suites: test binaries whose tests need a kernel this machine
//! lacks (dummy, vrf, 8021q, ipvlan, bridge VLAN filtering) run in one boot
//! of the test guest, Debian's distribution kernel under QEMU
//! (`tests/guest/`, see its README). This host-side test is how `make test`
//! runs them: it fails with the guest's console output when any guest test
//! fails, when the guest does not boot, or when it times out.
//!
//! A suite listed here is a file `tests/tests/<name>.rs` whose tests are
//! all `#[ignore = "needs the guest kernel: tests/guest/test.sh <name>"]`
//! and call `cni_tests::guest::require()` first.

use std::path::Path;
use std::process::Command;

/// The test targets run in the guest, in this order, in one boot.
const SUITES: &[&str] = &["dummy", "vrf", "vlan", "ipvlan", "bridge_vlan"];

/// The guest run's whole budget (boot, every suite, power-off) before
/// `timeout` kills it; QEMU itself gets [`GUEST_SECS`] inside it. Under
/// TCG on two busy cores the five suites took about 10 minutes in one boot.
const BUDGET_SECS: u32 = 2700;
/// `GUEST_TIMEOUT` for QEMU.
const GUEST_SECS: u32 = 2400;

#[test]
fn guest_suites_pass_in_the_guest_kernel() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent");
    let started = std::time::Instant::now();
    let out = Command::new("timeout")
        .arg("-k")
        .arg("10")
        .arg(BUDGET_SECS.to_string())
        .arg(repo.join("tests/guest/test.sh"))
        .args(SUITES)
        .env("GUEST_TIMEOUT", GUEST_SECS.to_string())
        .current_dir(repo)
        .output()
        .expect("run tests/guest/test.sh (needs coreutils' timeout)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    println!("guest suites {SUITES:?} took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "guest suites {SUITES:?} failed ({}):\n--- console ---\n{stdout}\n--- runner ---\n{stderr}",
        out.status
    );
    for s in SUITES {
        let ran = tests_run(&stdout, s);
        assert!(
            ran.is_some_and(|n| n > 0),
            "suite {s} ran no guest tests ({ran:?}): are they #[ignore]d?\n{stdout}"
        );
    }
}

/// How many tests suite `name` said it was running (libtest's "running N
/// tests" after the runner's "=== guest suite NAME" line).
fn tests_run(console: &str, name: &str) -> Option<u32> {
    let mut lines = console.lines().map(str::trim_end);
    lines.find(|l| *l == format!("=== guest suite {name}"))?;
    lines.find_map(|l| {
        l.strip_prefix("running ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}
