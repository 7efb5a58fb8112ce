//! Fault injection for tests: named steps at which a test can stop a
//! plugin, to SIGKILL it there, and per-process figures for the soak run.
//!
//! Compiled in only with `debug_assertions` (the dev profile the tests
//! build `cni-plugins` with); in a release build both functions are empty
//! and the variables below are never read, so a shipped binary cannot be
//! stopped this way.
//!
//! - `CNI_TEST_STOP_AT=<step>`: when the process reaches [`point`]`(step)`,
//!   it prints `cni-test: stopped at <step> (pid <pid>)` on stderr and
//!   waits there for ever, for the test to kill it. The thread that reaches
//!   the step stops; an in-process IPAM thread stopping holds its plugin
//!   up too, as an exec'd IPAM child would. Step names are
//!   `<plugin>:<what is done by now>`, in the order an ADD reaches them:
//!   - bridge: `ipam-started`, `veth-created`, `port-up`, `ipam-done`,
//!     `addresses-set`, `gateway-set`, `masquerade-added` (with `ipMasq`),
//!     `spoofcheck-added` (with `macspoofchk`), `done` (result not yet
//!     printed);
//!   - ptp: `ipam-started`, `veth-created`, `ipam-done`, `addresses-set`,
//!     `host-routes-set`, `masquerade-added`, `done`;
//!   - host-local: `staging-created` (empty staging file), `reserved`
//!     (a reservation linked into place), `file-overwritten` (any other file
//!     of the store or index rewritten in place, its old tail not yet cut), `cursors-written`;
//!   - libcni: `cache-written` (temporary cache file complete, not yet
//!     renamed into place).
//! - `CNI_TEST_STATS=<file>`: when a plugin process ends, append one line
//!   `<role> <command> fds=<open descriptors> hwm_kb=<peak RSS>` to the file
//!   (see [`report`]).

/// The variable naming the step to stop at.
pub const STOP_AT_VAR: &str = "CNI_TEST_STOP_AT";
/// What [`point`] prints on stderr before it waits, followed by the step.
pub const STOPPED_MARKER: &str = "cni-test: stopped at ";
/// The variable naming the file [`report`] appends to.
pub const STATS_VAR: &str = "CNI_TEST_STATS";

/// A step of an operation: in a test build with `CNI_TEST_STOP_AT` naming
/// it, announce it on stderr and wait to be killed. Nothing otherwise.
#[cfg(debug_assertions)]
pub fn point(step: &str) {
    if std::env::var(STOP_AT_VAR).is_ok_and(|v| v == step) {
        eprintln!("{STOPPED_MARKER}{step} (pid {})", std::process::id());
        loop {
            std::thread::park();
        }
    }
}

/// Release build: no fault injection.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_step: &str) {}

/// At the end of a plugin process, in a test build with `CNI_TEST_STATS`
/// set: append the open descriptors (`/proc/self/fd`, less the one
/// listing it) and the peak resident set (`VmHWM`) to that file, so a soak
/// run can see both stay flat over thousands of calls.
#[cfg(debug_assertions)]
pub fn report(role: &str, command: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os(STATS_VAR) else {
        return;
    };
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1));
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches(" kB").trim().to_string())
        })
        .unwrap_or_default();
    let line = format!("{role} {command} fds={fds} hwm_kb={hwm}\n");
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        log::warn!("{STATS_VAR}: {e}");
    }
}

/// Release build: no figures.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn report(_role: &str, _command: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_not_named_passes_through() {
        // The variable is unset in unit tests (and only ever set on the
        // plugin processes a test starts): every step is a no-op.
        assert!(std::env::var_os(STOP_AT_VAR).is_none());
        point("test:anything");
    }
}
