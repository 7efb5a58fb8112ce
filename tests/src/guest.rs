//! Tests that need the test guest's kernel (Debian's, under QEMU: 8021q,
//! ipvlan, dummy, vrf, bridge VLAN filtering) rather than the machine's.
//!
//! Such tests are `#[ignore]`d, so a plain `cargo test` on the host skips
//! them visibly ("ignored"), and each starts with [`require`], so running
//! them on the host with `--ignored` fails with how to run them instead of
//! failing obscurely or passing. `tests/tests/guest.rs` (part of `make
//! test`) runs them in the guest with `tests/guest/test.sh`; see
//! `tests/guest/README.md`.

/// Set to `1` by the guest's init for the job it runs.
pub const ENV: &str = "CNI_GUEST";

/// True inside the test guest.
pub fn inside() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == "1")
}

/// Panic unless running inside the test guest.
pub fn require() {
    assert!(
        inside(),
        "this test needs the test guest's kernel (dummy, vrf, 8021q, ipvlan, bridge VLAN filtering): \
         run it with `tests/guest/test.sh SUITE` (make test does, through tests/tests/guest.rs), \
         not directly on the host"
    );
}
