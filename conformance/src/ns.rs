//! Throwaway network namespaces for the checks: a "host" namespace the
//! plugin runs in and container namespaces it wires, created under
//! `/run/netns` with names unique to this process and deleted (with all
//! they hold) when dropped. The machine's own namespace is never touched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A named network namespace with `lo` up, deleted on drop.
pub struct ScratchNetns {
    name: String,
    path: PathBuf,
    ns: cni_kernel::Netns,
}

impl ScratchNetns {
    /// Create one named after `tag`. Panics when it cannot (not root):
    /// the harness turns that into a failed check.
    pub fn new(tag: &str) -> ScratchNetns {
        ScratchNetns::with_prefix("cnic", tag)
    }

    /// Create one named `<prefix>-<tag>-<pid>-<n>`.
    pub fn with_prefix(prefix: &str, tag: &str) -> ScratchNetns {
        let name = unique(&format!("{prefix}-{tag}"));
        let path = cni_kernel::netns::create_named(&name)
            .unwrap_or_else(|e| panic!("create namespace {name} (are you root?): {e}"));
        let ns = cni_kernel::Netns::open(&path).expect("open the namespace just made");
        let me = ScratchNetns { name, path, ns };
        let mut nl = cni_kernel::Netlink::open_in(&me.ns).expect("netlink socket in the namespace");
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
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        if let Err(e) = cni_kernel::netns::delete_named(&self.name) {
            eprintln!("cleanup: {e}");
        }
    }
}
