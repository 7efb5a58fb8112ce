//! One executable, every plugin: the role comes from the name the binary
//! was started under (`argv[0]`'s file name), as busybox does. Runtimes
//! find plugins by file name in their plugin directory, so each name there
//! is a hard link (or symlink) to the same file and nothing changes for
//! them.
//!
//! The table of roles is registered once, by the binary's `main`. It also
//! lets delegation skip a fork and exec: when the IPAM plugin a config
//! names resolves on `CNI_PATH` to this very executable (same device and
//! inode as the running binary), [`crate::delegate`] runs that role on a
//! thread of this process, with the same environment, stdin, stdout, exit
//! code and stderr an exec would have had.

use crate::error::{Error, INVALID_CONFIG};
use crate::skel::Plugin;
use std::path::Path;
use std::sync::OnceLock;

/// A plugin this executable can be.
pub struct Role {
    /// The file name it answers to (`bridge`, `host-local`, ...).
    pub name: &'static str,
    pub plugin: &'static (dyn Plugin + Sync),
}

static ROLES: OnceLock<&'static [Role]> = OnceLock::new();

/// The role `argv0` names: its file name.
pub fn role_name(argv0: &std::ffi::OsStr) -> String {
    Path::new(argv0)
        .file_name()
        .unwrap_or(argv0)
        .to_string_lossy()
        .into_owned()
}

/// Register the executable's roles (once; later calls are ignored).
pub fn register(roles: &'static [Role]) {
    let _ = ROLES.set(roles);
}

/// The registered role called `name`.
pub fn find(name: &str) -> Option<&'static Role> {
    ROLES.get()?.iter().find(|r| r.name == name)
}

/// Run as the registered role `name` (the plugin's whole process), or
/// answer a name this executable does not know with a CNI error naming
/// the ones it knows (`also` lists roles that are not plugins, like
/// cnitool).
pub fn run(name: &str, also: &[&str]) -> ! {
    match find(name) {
        Some(role) => crate::skel::run(role.plugin),
        None => {
            let e = unknown_role(name, also);
            println!("{}", e.to_json(crate::Version::CURRENT.as_str()));
            eprintln!("{e}");
            #[allow(clippy::disallowed_methods)] // the dispatcher ends an unknown role
            std::process::exit(1);
        }
    }
}

/// The error for a name no role answers to.
pub fn unknown_role(name: &str, also: &[&str]) -> Error {
    let mut known: Vec<&str> = ROLES
        .get()
        .map(|r| r.iter().map(|r| r.name).collect())
        .unwrap_or_default();
    known.extend_from_slice(also);
    Error::new(
        INVALID_CONFIG,
        format!(
            "this executable has no plugin called {name:?}: it is started under the name of \
             the plugin to run, one of: {}",
            known.join(", ")
        ),
    )
}

/// Device and inode of the running executable: of the file opened through
/// `/proc/self/exe` (which is also what valgrind hands its client, so the
/// link-order profile of scripts/symbol-order.py sees the in-process path).
fn own_executable() -> Option<(u64, u64)> {
    static OWN: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *OWN.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::File::open("/proc/self/exe")
            .and_then(|f| f.metadata())
            .ok()
            .map(|m| (m.dev(), m.ino()))
    })
}

/// The role to run in-process for a delegate: `plugin_type`, when
/// `binary` (its path found on `CNI_PATH`, links followed) is this running
/// executable and the name is a registered role. Any other binary, a copy
/// of this one included, is executed.
pub fn in_process(binary: &Path, plugin_type: &str) -> Option<&'static Role> {
    use std::os::unix::fs::MetadataExt;
    let role = find(plugin_type)?;
    let m = std::fs::metadata(binary).ok()?;
    (own_executable()? == (m.dev(), m.ino())).then_some(role)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_is_the_file_name() {
        assert_eq!(role_name("/opt/cni/bin/host-local".as_ref()), "host-local");
        assert_eq!(role_name("bridge".as_ref()), "bridge");
        assert_eq!(role_name("./x/ptp".as_ref()), "ptp");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = unknown_role("nope", &["cnitool"]);
        assert_eq!(e.code, INVALID_CONFIG);
        assert!(
            e.msg.contains("\"nope\"") && e.msg.contains("cnitool"),
            "{e}"
        );
    }

    #[test]
    fn nothing_runs_in_process_without_roles() {
        assert!(in_process(Path::new("/proc/self/exe"), "host-local").is_none());
    }
}
