//! Helpers shared by the integration tests of this crate.

use std::path::Path;

/// Run the conformance harness on `binary` with `config` (its
/// `cniVersion` is replaced by each version under test), print the report
/// and fail on any failed check.
pub fn conformance_passes(binary: &Path, config: serde_json::Value) -> cni_conformance::Report {
    let mut opts = cni_conformance::Options::new(binary);
    opts.config = config.as_object().cloned();
    let report = cni_conformance::run(&opts);
    println!("{report}");
    assert!(!report.failed(), "{report}");
    report
}
