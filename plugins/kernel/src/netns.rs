//! Network namespaces.
//!
//! Work inside a container's namespace happens in [`Netns::run`]: the
//! calling thread enters the namespace, runs the closure and returns to its
//! own, the return made by a guard's drop, so that neither a panic nor an
//! early return half-way can leave the plugin stranded in the container
//! (the hazard the Go `pkg/ns` README describes); if the return itself
//! fails the process aborts rather than go on in the wrong namespace. No
//! thread is started per call: a thread's start (and, on a VM, the wake-up
//! of another CPU) cost up to a millisecond. Netlink work needs only the
//! socket made inside:
//! a socket opened in a namespace stays bound to it, so
//! [`crate::Netlink::open_in`] creates it there and drives it from home.

use crate::error::{Error, Kind, Result};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// `NSFS_MAGIC` from linux/magic.h: the filesystem of namespace files.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Returns the calling thread to the namespace it holds when dropped.
struct Return(File);

impl Drop for Return {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Going on in the container's namespace would put the host's
            // work there: stop instead.
            eprintln!("cannot return to the plugin's own network namespace: {e}");
            std::process::abort();
        }
    }
}

/// An open network namespace.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/net`).
    /// A path that does not exist is [`Kind::NetnsGone`]; anything else
    /// that is not a network namespace (a leftover file whose mount is
    /// gone, a FIFO, a directory, a device, another kind of namespace) is
    /// [`Kind::NotNetns`], and the message says what it is.
    ///
    /// The path is checked before it is opened, and opened without
    /// blocking: `open(2)` of a FIFO waits for a writer, so a `CNI_NETNS`
    /// naming one used to hang ADD and DEL forever.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        match open_checked(path.as_ref()) {
            Ok(ns) => Ok(ns),
            Err(Refused::Leftover(e) | Refused::Other(e)) => Err(e),
        }
    }

    /// Open the namespace at `path` if it is still there: `None` when the
    /// path is gone or is a leftover file no longer mounted as a namespace
    /// (an empty regular file, what `ip netns` leaves once the mount is
    /// gone). For DEL and other teardown, where either means there is
    /// nothing left in it to undo. Anything else that is not a network
    /// namespace is an error, as for [`Netns::open`].
    pub fn open_if_present(path: impl AsRef<Path>) -> Result<Option<Netns>> {
        match open_checked(path.as_ref()) {
            Ok(ns) => Ok(Some(ns)),
            Err(Refused::Leftover(_)) => Ok(None),
            Err(Refused::Other(e)) => Err(e),
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

    /// Run `f` inside this namespace, on the calling thread, which then
    /// returns to its own namespace (also when `f` panics or the closure
    /// returns early). A panic in `f` is reported as an error, not
    /// propagated.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let work = || format!("work in network namespace {}", self.path.display());
        let home = File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io(format!("{}: open own namespace", work()), &e))?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::errno(
                format!("enter network namespace {}", self.path.display()),
                e as i32,
            )
        })?;
        let back = Return(home);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        drop(back);
        r.map_err(|_| Error::protocol(work(), "panicked"))
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

    /// Take an exclusive `flock(2)` on the namespace file, waiting for it;
    /// held until this handle is dropped. Every path to one namespace
    /// (`/run/netns/x`, `/proc/<pid>/ns/net`) is the same nsfs inode, so
    /// this serialises every process that locks it, whatever path it was
    /// given, the reference plugins included (sbr locks the same file).
    pub fn lock(&self) -> Result<()> {
        loop {
            // SAFETY: flock(2) only takes the descriptor, which `self.file`
            // keeps open for the call.
            let rc = unsafe { libc::flock(self.fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::io(
                    format!("lock network namespace {}", self.path.display()),
                    &e,
                ));
            }
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

/// Why a path was not opened as a network namespace.
enum Refused {
    /// Gone, or a regular file that is not (any more) a namespace: for
    /// teardown, a namespace that no longer exists.
    Leftover(Error),
    /// Anything else.
    Other(Error),
}

/// `NS_GET_NSTYPE` from linux/nsfs.h, `_IO(0xb7, 0x3)`: the `CLONE_NEW*`
/// flag of the namespace a descriptor refers to (Linux 4.11 and later).
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

fn open_checked(path: &Path) -> std::result::Result<Netns, Refused> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let what = || format!("open network namespace {}", path.display());
    let not_netns = |is: &str| Error {
        what: format!("{} ({is})", what()),
        kind: Kind::NotNetns,
    };
    // Gone (before the stat, or between it and the open) is a leftover.
    let io_refused = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::ENOENT) => Refused::Leftover(Error {
            what: what(),
            kind: Kind::NetnsGone,
        }),
        _ => Refused::Other(Error::io(what(), &e)),
    };
    // stat(2) follows the /proc/<pid>/ns/net symlinks, as open does.
    let meta = std::fs::metadata(path).map_err(io_refused)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let is = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(Refused::Other(not_netns(is)));
    }
    // O_NONBLOCK: should the path turn into a FIFO between the stat and
    // here, the open still returns at once (and the checks below refuse
    // it). Namespace files are symlinks under /proc, so no O_NOFOLLOW.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_refused)?;
    let meta = file
        .metadata()
        .map_err(|e| Refused::Other(Error::io(what(), &e)))?;
    if !meta.file_type().is_file() {
        return Err(Refused::Other(not_netns("not a regular file")));
    }
    let st = nix::sys::statfs::fstatfs(&file)
        .map_err(|e| Refused::Other(Error::errno(what(), e as i32)))?;
    if st.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err(Refused::Leftover(not_netns(
            "a regular file, not a mounted namespace",
        )));
    }
    match ns_type(&file) {
        Ok(t) if t == libc::CLONE_NEWNET => {}
        Ok(t) => {
            return Err(Refused::Other(not_netns(&format!(
                "a {} namespace",
                ns_kind(t)
            ))))
        }
        // Before Linux 4.11 there is no asking; setns(2) will refuse
        // another kind of namespace with EINVAL.
        Err(libc::ENOTTY) | Err(libc::EINVAL) => {}
        Err(n) => return Err(Refused::Other(Error::errno(what(), n))),
    }
    Ok(Netns {
        file,
        path: path.to_path_buf(),
    })
}

/// The `CLONE_NEW*` type of the namespace `file` refers to, or the errno.
fn ns_type(file: &File) -> std::result::Result<libc::c_int, i32> {
    use std::os::fd::AsRawFd;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the
    // descriptor, which `file` keeps open for the call.
    let t = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if t < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    } else {
        Ok(t)
    }
}

/// The name `/proc/<pid>/ns/` gives a namespace type.
fn ns_kind(t: libc::c_int) -> &'static str {
    match t {
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        0x80 => "time", // CLONE_NEWTIME
        _ => "non-network",
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
