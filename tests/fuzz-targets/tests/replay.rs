//! The saved fuzz corpus as regression tests, on stable: every file under
//! `fuzz/corpus/<target>/` (what `fuzz/run.sh` kept, minimised) and
//! `fuzz/regressions/<target>/` (the inputs that once crashed) goes through
//! the same function the fuzzer ran. A missing corpus fails the test.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let d = fuzz.join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&d) else {
            assert_ne!(dir, "corpus", "{} is missing", d.display());
            continue;
        };
        files.extend(rd.map(|e| e.expect("read corpus entry").path()));
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let body = cni_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no target {target}"));
    let files = inputs(target);
    assert!(!files.is_empty(), "no saved inputs for {target}");
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", f.display());
    }
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<&str> = cni_fuzz_targets::TARGETS.iter().map(|(n, _)| *n).collect();
    let src = include_str!("replay.rs");
    for n in names {
        assert!(
            src.contains(&format!("fn {n}()")),
            "add a replay test for {n}"
        );
    }
}

#[test]
fn net_config() {
    replay("net_config");
}

#[test]
fn prev_result() {
    replay("prev_result");
}

#[test]
fn result_convert() {
    replay("result_convert");
}

#[test]
fn cni_args() {
    replay("cni_args");
}

#[test]
fn host_local_ranges() {
    replay("host_local_ranges");
}

#[test]
fn host_local_store() {
    replay("host_local_store");
}

#[test]
fn libcni_conflist() {
    replay("libcni_conflist");
}

#[test]
fn libcni_cache() {
    replay("libcni_cache");
}
