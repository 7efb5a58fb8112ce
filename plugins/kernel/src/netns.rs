//! Network namespaces.
//!
//! Work inside a container's namespace happens on a short-lived thread that
//! enters it and then ends ([`Netns::run`]), so the process's own threads
//! never change namespace: a panic or an early return half-way cannot leave
//! the plugin stranded in the container (the hazard the Go `pkg/ns` README
//! describes). Netlink work does not even need that: a socket opened inside
//! a namespace stays bound to it, so [`crate::Netlink::open_in`] creates the
//! socket on such a thread and drives it from the caller's.

use crate::error::{Error, Kind, Result};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// `NSFS_MAGIC` from linux/magic.h: the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`).
    /// A path that does not exist is [`Kind::NetnsGone`]; one that is not a
    /// namespace (a leftover file whose mount is gone) is [`Kind::NotNetns`].
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let what = || format!("open network namespace {}", path.display());
        let file = File::open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Error {
                what: what(),
                kind: Kind::NetnsGone,
            },
            _ => Error::io(what(), &e),
        })?;
        let st = nix::sys::statfs::fstatfs(&file).map_err(|e| Error::errno(what(), e as i32))?;
        if st.filesystem_type().0 as i64 != NSFS_MAGIC {
            return Err(Error {
                what: what(),
                kind: Kind::NotNetns,
            });
        }
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Open the namespace at `path` if it is still there: `None` when the
    /// path is gone or is a leftover file no longer mounted as a namespace.
    /// For DEL and other teardown, where either means there is nothing left
    /// in it to undo.
    pub fn open_if_present(path: impl AsRef<Path>) -> Result<Option<Netns>> {
        match Netns::open(path) {
            Ok(ns) => Ok(Some(ns)),
            Err(e) if matches!(e.kind, Kind::NetnsGone | Kind::NotNetns) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        Netns::open(format!("/proc/self/task/{}/ns/net", nix::unistd::gettid()))
    }

    /// The namespace file's descriptor, for `IFLA_NET_NS_FD`.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on a new thread inside this namespace; the thread ends with `f`,
    /// so no thread of the caller ever leaves its own namespace. A panic in
    /// `f` is reported as an error, not propagated.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                    Error::errno(
                        format!("enter network namespace {}", self.path.display()),
                        e as i32,
                    )
                })?;
                Ok(f())
            });
            handle.join().unwrap_or_else(|_| {
                Err(Error::protocol(
                    format!("work in network namespace {}", self.path.display()),
                    "thread panicked",
                ))
            })
        })
    }

    /// Make `cmd` start inside this namespace: the child enters it between
    /// fork and exec, so the caller never moves. `self` must stay open
    /// until the child has been spawned.
    pub fn enter_on_exec(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let fd = self.fd();
        // SAFETY: between fork and exec only setns(2), which is
        // async-signal-safe, runs; the descriptor stays open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Whether two handles name the same namespace.
    pub fn same_as(&self, other: &Netns) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), other.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

impl std::os::fd::AsRawFd for Netns {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd()
    }
}

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Create a named namespace at `/run/netns/<name>`, as `ip netns add` does:
/// a thread unshares a new network namespace and bind-mounts it there.
pub fn create_named(name: &str) -> Result<PathBuf> {
    let dir = Path::new(NETNS_RUN_DIR);
    let path = dir.join(name);
    let what = format!("create network namespace {}", path.display());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(&what, &e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io(&what, &e))?;
    let target = path.clone();
    let mounted = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        nix::mount::mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join();
    match mounted {
        Ok(Ok(())) => Ok(path),
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::errno(what, e as i32))
        }
        Err(_) => {
            let _ = std::fs::remove_file(&path);
            Err(Error::protocol(what, "thread panicked"))
        }
    }
}

/// Remove a named namespace made by [`create_named`] or `ip netns add`;
/// succeeds if it is already gone.
pub fn delete_named(name: &str) -> Result<()> {
    let path = Path::new(NETNS_RUN_DIR).join(name);
    let what = format!("delete network namespace {}", path.display());
    match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::errno(what, e as i32)),
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(what, &e)),
    }
}
