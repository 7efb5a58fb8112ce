//! The on-disk state, byte-compatible with the reference plugin:
//!
//! ```text
//! <dataDir>/<network>/lock                 empty, flock(LOCK_EX) for every operation
//! <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>", no newline, 0600
//! <dataDir>/<network>/last_reserved_ip.<N> the last address reserved in range set N
//! ```
//!
//! Existence of `<ip>` is the reservation. A reservation file is complete or
//! absent: its content is written to a staging file (`.host-local-staging`,
//! a name no scan of ours or the reference's takes for an address) and
//! hard-linked into place with link(2), which fails with `EEXIST` if the
//! name is taken, so two processes can never both hold an address, even
//! without the lock. A host-local killed at any point leaves at most the
//! staging file, which the next run of any verb removes under the lock.
//! Files holding only the container ID were written by reference versions
//! that predate the interface name, and still count; empty files (left by
//! a host-local killed between creating and writing, before this scheme,
//! or by a host crash before the content reached the disk: nothing is
//! fsynced) hold an address for an unknown owner, which GC with a list
//! releases.
//!
//! Nothing in the directory is ever followed if it is a symbolic link: the
//! network directory is opened `O_NOFOLLOW` (a link there is refused), and
//! every file in it is reached relative to that descriptor with
//! `O_NOFOLLOW | O_CLOEXEC`. A link where a reservation should be holds its
//! address for an unknown owner and is only ever unlinked itself.
//!
//! A [`Store`] exists only while its lock is held: every method runs under it.

use cni::error::PLUGIN_FAILURE;
use cni::ip;
use cni::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// The reference's default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Prefix of the per-range-set round-robin cursor files.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// Where a reservation's content is written before it is linked into place.
/// It starts with '.', so it can never parse as an address.
pub const STAGING_FILE: &str = ".host-local-staging";

/// The text a reservation file holds for `(id, ifname)`.
pub fn owner_text(id: &str, ifname: &str) -> String {
    format!("{}\r\n{}", id.trim(), ifname)
}

/// Who a reservation file says holds the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Empty when the owner is unknown (an empty file, a symbolic link).
    pub id: String,
    /// `None` for a legacy file holding only the container ID.
    pub ifname: Option<String>,
}

impl Owner {
    /// Parse a reservation file's content the way the reference compares it:
    /// surrounding whitespace is ignored.
    pub fn parse(content: &str) -> Owner {
        let t = content.trim();
        match t.split_once("\r\n") {
            Some((id, ifname)) => Owner {
                id: id.to_string(),
                ifname: Some(ifname.to_string()),
            },
            None => Owner {
                id: t.to_string(),
                ifname: None,
            },
        }
    }

    /// A reservation whose holder cannot be known.
    pub fn unknown() -> Owner {
        Owner {
            id: String::new(),
            ifname: None,
        }
    }

    /// Whether nothing says who holds the address: no DEL can match it, and
    /// GC with a list of valid attachments treats it as stale.
    pub fn is_unknown(&self) -> bool {
        self.id.is_empty()
    }

    /// The reference's match for `(id, ifname)`: the full form, or (when
    /// `legacy`) the bare container ID. An unknown owner matches nothing.
    pub fn is(&self, id: &str, ifname: &str, legacy: bool) -> bool {
        !self.is_unknown()
            && self.id == id.trim()
            && match &self.ifname {
                Some(i) => !legacy && i == ifname,
                None => legacy,
            }
    }
}

/// What an errno means here, for messages: a symbolic link met with
/// `O_NOFOLLOW` gives `ELOOP`, which would otherwise read as nonsense.
pub(crate) fn describe(e: Errno) -> String {
    match e {
        Errno::ELOOP => "it is a symbolic link, which host-local never follows".to_string(),
        e => e.desc().to_string(),
    }
}

/// A data-directory failure (code 100): what was done, and the errno as [`describe`] puts it.
pub(crate) fn fail(what: impl std::fmt::Display, e: Errno) -> Error {
    Error::new(PLUGIN_FAILURE, format!("{what}: {}", describe(e)))
}

/// Open `name` in directory `dir`, never following a symbolic link and
/// never leaking the descriptor into a child.
pub(crate) fn open_at(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlag,
    mode: u32,
) -> nix::Result<File> {
    nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map(File::from)
}

/// Open the directory `name` in `dir`, never through a symbolic link.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The whole content of `name` in `dir`.
pub(crate) fn read_at(dir: BorrowedFd<'_>, name: &str) -> nix::Result<Vec<u8>> {
    let mut f = open_at(dir, name, OFlag::O_RDONLY, 0)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(io_errno)?;
    Ok(buf)
}

/// Replace the content of `name` in `dir` (created 0600 if absent).
///
/// Written over the old content and cut to length, never truncated to
/// zero first: truncating a file whose data has reached the disk frees its
/// block, and where the filesystem is mounted with `discard` (cloud images
/// often are; ext4 without a journal then discards on the spot) that waits
/// for the device, milliseconds inside every ADD. Overwritten, the file
/// keeps its block. Everything here runs under the network's lock, so no
/// reader sees the file between the write and the cut.
pub(crate) fn write_at(dir: BorrowedFd<'_>, name: &str, data: &[u8]) -> nix::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = open_at(dir, name, OFlag::O_WRONLY | OFlag::O_CREAT, 0o600)?;
    f.write_all_at(data, 0).map_err(io_errno)?;
    // Written, the old tail not yet cut: what a kill mid-write leaves.
    cni::fault::point("host-local:file-overwritten");
    let len = data.len() as u64;
    if f.metadata().map_err(io_errno)?.len() > len {
        f.set_len(len).map_err(io_errno)?;
    }
    Ok(())
}

/// Remove the entry `name` of `dir` (a link is removed, never its target);
/// `false` if there was none.
pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &str) -> nix::Result<bool> {
    match nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `lstat` of `name` in `dir`; `None` if absent.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &str) -> nix::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The kind of file a stat describes.
pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

pub(crate) fn io_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// Every entry of directory `dir` (by name) with its kind, without following links.
pub(crate) fn list_at(dir: BorrowedFd<'_>) -> nix::Result<Vec<(String, SFlag)>> {
    use nix::dir::{Dir, Type};
    let mut d = Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in d.iter() {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let k = match entry.file_type() {
            Some(Type::File) => SFlag::S_IFREG,
            Some(Type::Directory) => SFlag::S_IFDIR,
            Some(Type::Symlink) => SFlag::S_IFLNK,
            Some(_) => SFlag::S_IFIFO, // anything else: never a reservation
            // The file system does not say: ask.
            None => match stat_at(dir, name)? {
                Some(st) => kind(&st),
                None => continue,
            },
        };
        out.push((name.to_string(), k));
    }
    Ok(out)
}

/// An open, locked network directory.
pub struct Store {
    dir: PathBuf,
    fd: OwnedFd,
    /// The owner text now in the staging file, if any.
    staged: RefCell<Option<String>>,
    // Held for the Store's lifetime; dropping it unlocks (after `Drop for
    // Store` has removed the staging file).
    _lock: Flock<File>,
}

impl Store {
    /// Create `<data_dir>/<network>` if needed and take its lock, waiting for
    /// any other host-local (ours or the reference) to finish.
    ///
    /// `data_dir` itself may be a symbolic link (an operator moving
    /// `/var/lib/cni` elsewhere), but the network directory may not: it is
    /// refused with code 100. The configuration is valid; it is the state
    /// found on the host that is not ours to use, and following the link
    /// would put the reservations, the lock and the index wherever it
    /// points, where another network's (or anything's) files may be.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        // The name becomes a path component: nothing but the spec's
        // identifier characters may pass, so it can never be `..` or hold `/`.
        cni::validate::network_name(network)?;
        let dir = data_dir.join(network);
        let mkdir = |p: &Path| match nix::unistd::mkdir(p, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e),
        };
        let made = mkdir(&dir).or_else(|e| {
            if e != Errno::ENOENT {
                return Err(e);
            }
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(data_dir)
                .map_err(io_errno)?;
            mkdir(&dir)
        });
        made.map_err(|e| fail(format_args!("create data directory {}", dir.display()), e))?;
        let fd = nix::fcntl::open(
            &dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            // With O_DIRECTORY, a link gives ENOTDIR rather than ELOOP.
            let link = fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink());
            if link {
                Errno::ELOOP
            } else {
                e
            }
        })
        .map_err(|e| match e {
            Errno::ELOOP => Error::new(
                PLUGIN_FAILURE,
                format!(
                    "network directory {} is a symbolic link; host-local refuses to keep its \
                     reservations through a link (remove it, or point ipam.dataDir at the real \
                     directory)",
                    dir.display()
                ),
            ),
            Errno::ENOTDIR => Error::new(
                PLUGIN_FAILURE,
                format!("network directory {} is not a directory", dir.display()),
            ),
            e => fail(format_args!("open network directory {}", dir.display()), e),
        })?;
        // The reference opens its lock `O_CREAT|O_RDONLY` with mode 0750; so
        // do we, so the file looks the same whichever plugin created it.
        let mut file = open_at(
            fd.as_fd(),
            LOCK_FILE,
            OFlag::O_CREAT | OFlag::O_RDONLY,
            0o750,
        )
        .map_err(|e| fail(format_args!("open lock {}/{LOCK_FILE}", dir.display()), e))?;
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(l) => break l,
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(fail(format_args!("lock {}/{LOCK_FILE}", dir.display()), e))
                }
            }
        };
        // Under the lock, a staging file can only be what a killed run
        // left (every run removes its own before it unlocks). It may be
        // linked as a reservation, so only its name goes; left there, a DEL
        // would end with a file the ADD it cleans up made.
        if let Err(e) = unlink_at(fd.as_fd(), STAGING_FILE) {
            log::warn!("remove {}/{STAGING_FILE}: {e}", dir.display());
        }
        Ok(Store {
            dir,
            fd,
            staged: RefCell::new(None),
            _lock: lock,
        })
    }

    /// Open only if the network directory exists (DEL, CHECK, GC need not
    /// create it). A symbolic link there exists, and is refused by [`Store::open`].
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<Store>> {
        cni::validate::network_name(network)?;
        if fs::symlink_metadata(data_dir.join(network)).is_err() {
            return Ok(None);
        }
        Store::open(data_dir, network).map(Some)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network directory, for the index's files.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn at(&self, name: &str) -> String {
        format!("{}/{name}", self.dir.display())
    }

    /// Write `(id, ifname)`'s content to the staging file, unless
    /// it holds exactly that already (one ADD stages once for all its
    /// range sets, so their files share one inode).
    fn stage(&self, text: &str) -> Result<()> {
        if self.staged.borrow().as_deref() == Some(text) {
            return Ok(());
        }
        self.unstage();
        let create = || {
            open_at(
                self.fd(),
                STAGING_FILE,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            )
        };
        // Whatever a killed run left there may be linked as a reservation:
        // never write into it, replace it.
        let created = match create() {
            Err(Errno::EEXIST) => unlink_at(self.fd(), STAGING_FILE)
                .map_err(|e| fail(format_args!("remove {}", self.at(STAGING_FILE)), e))
                .map(|_| create())?,
            r => r,
        };
        if created.is_ok() {
            cni::fault::point("host-local:staging-created");
        }
        let written = created.and_then(|mut f| f.write_all(text.as_bytes()).map_err(io_errno));
        if let Err(e) = written {
            if let Err(rm) = unlink_at(self.fd(), STAGING_FILE) {
                log::warn!("remove {}: {rm}", self.at(STAGING_FILE));
            }
            return Err(fail(format_args!("write {}", self.at(STAGING_FILE)), e));
        }
        *self.staged.borrow_mut() = Some(text.to_string());
        Ok(())
    }

    /// Remove the staging file, if this store wrote one. Call it once the
    /// reservations are made and before the index is sealed (the removal
    /// changes the directory, which the index's stamp records); dropping the
    /// store does it too.
    pub fn unstage(&self) {
        if self.staged.borrow_mut().take().is_some() {
            if let Err(e) = unlink_at(self.fd(), STAGING_FILE) {
                log::warn!("remove {}: {e}", self.at(STAGING_FILE));
            }
        }
    }

    /// Reserve `a` for `(id, ifname)`; `false` if someone holds it already.
    pub fn reserve(&self, a: IpAddr, id: &str, ifname: &str) -> Result<bool> {
        let name = ip::file_name(a);
        self.stage(&owner_text(id, ifname))?;
        match nix::unistd::linkat(
            self.fd(),
            STAGING_FILE,
            self.fd(),
            name.as_str(),
            nix::fcntl::AtFlags::empty(),
        ) {
            Ok(()) => {
                cni::fault::point("host-local:reserved");
                Ok(true)
            }
            Err(Errno::EEXIST) => Ok(false),
            // A file system without hard links: create the file exclusively
            // and write it, as the reference does.
            Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EMLINK) => {
                self.reserve_by_create(&name, id, ifname)
            }
            Err(e) => Err(fail(format_args!("reserve {}", self.at(&name)), e)),
        }
    }

    fn reserve_by_create(&self, name: &str, id: &str, ifname: &str) -> Result<bool> {
        let mut f = match open_at(
            self.fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            0o600,
        ) {
            Ok(f) => f,
            Err(Errno::EEXIST) => return Ok(false),
            Err(e) => return Err(fail(format_args!("reserve {}", self.at(name)), e)),
        };
        let written = f
            .write_all(owner_text(id, ifname).as_bytes())
            .map_err(io_errno);
        if let Err(e) = written {
            // Never leave an empty reservation behind: it would be held by no one.
            if let Err(rm) = unlink_at(self.fd(), name) {
                log::warn!("remove half-written {}: {rm}", self.at(name));
            }
            return Err(fail(format_args!("write {}", self.at(name)), e));
        }
        Ok(true)
    }

    /// The owner recorded in `a`'s file, `None` if the address is free. A
    /// symbolic link there holds the address for an unknown owner.
    pub fn owner(&self, a: IpAddr) -> Result<Option<Owner>> {
        let name = ip::file_name(a);
        match read_at(self.fd(), &name) {
            Ok(b) => Ok(Some(Owner::parse(&String::from_utf8_lossy(&b)))),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP) => Ok(Some(Owner::unknown())),
            Err(e) => Err(fail(format_args!("read {}", self.at(&name)), e)),
        }
    }

    /// Whether `a`'s file exists (a link counts).
    pub fn is_held(&self, a: IpAddr) -> Result<bool> {
        let name = ip::file_name(a);
        stat_at(self.fd(), &name)
            .map(|st| st.is_some())
            .map_err(|e| fail(format_args!("stat {}", self.at(&name)), e))
    }

    /// Release `a` (unlink its name; a link goes, never its target); `false`
    /// if it was already free.
    pub fn release(&self, a: IpAddr) -> Result<bool> {
        let name = ip::file_name(a);
        unlink_at(self.fd(), &name).map_err(|e| fail(format_args!("release {}", self.at(&name)), e))
    }

    fn cursor_name(set: usize) -> String {
        format!("{LAST_RESERVED_PREFIX}{set}")
    }

    pub fn last_reserved_path(&self, set: usize) -> PathBuf {
        self.dir.join(Store::cursor_name(set))
    }

    /// The round-robin cursor of range set `set`; unreadable means "none",
    /// as in the reference (only round-robin order is lost).
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let text = read_at(self.fd(), &Store::cursor_name(set)).ok()?;
        ip::parse_ip(&String::from_utf8_lossy(&text)).ok()
    }

    /// The raw content of range set `set`'s cursor file, `None` if it does
    /// not exist; an error if it cannot be read (a link, say), since it
    /// could then not be put back.
    pub fn read_cursor(&self, set: usize) -> Result<Option<Vec<u8>>> {
        let name = Store::cursor_name(set);
        match read_at(self.fd(), &name) {
            Ok(b) => Ok(Some(b)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(fail(format_args!("read {}", self.at(&name)), e)),
        }
    }

    /// Put a cursor back as [`Store::read_cursor`] found it: that content,
    /// or no file at all.
    pub fn restore_cursor(&self, set: usize, old: Option<&[u8]>) -> Result<()> {
        let name = Store::cursor_name(set);
        match old {
            Some(b) => write_at(self.fd(), &name, b),
            None => unlink_at(self.fd(), &name).map(|_| ()),
        }
        .map_err(|e| fail(format_args!("restore {}", self.at(&name)), e))
    }

    /// Record `a` as range set `set`'s last reservation: the bare address, no newline.
    pub fn set_last_reserved(&self, set: usize, a: IpAddr) -> Result<()> {
        let name = Store::cursor_name(set);
        write_at(self.fd(), &name, ip::file_name(a).as_bytes())
            .map_err(|e| fail(format_args!("write {}", self.at(&name)), e))
    }

    /// Every reservation in the directory with its owner. Entries whose name
    /// is not an address (`lock`, `last_reserved_ip.*`, the staging file, our
    /// index) are not reservations and are skipped; so are directories. A
    /// link named like an address is a reservation of an unknown owner.
    pub fn scan(&self) -> Result<Vec<(IpAddr, Owner)>> {
        let entries =
            list_at(self.fd()).map_err(|e| fail(format_args!("list {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for (name, k) in entries {
            let Ok(a) = name.parse::<IpAddr>() else {
                continue;
            };
            let owner = if k == SFlag::S_IFLNK {
                Owner::unknown()
            } else if k == SFlag::S_IFREG {
                match read_at(self.fd(), &name) {
                    Ok(b) => Owner::parse(&String::from_utf8_lossy(&b)),
                    // Released by no one else (we hold the lock), but tolerate it.
                    Err(Errno::ENOENT) => continue,
                    Err(Errno::ELOOP) => Owner::unknown(),
                    Err(e) => return Err(fail(format_args!("read {}", self.at(&name)), e)),
                }
            } else {
                continue;
            };
            out.push((ip::canonical(a), owner));
        }
        Ok(out)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Still under the lock: the lock is a field, dropped after this.
        self.unstage();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "hl-store-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ignored = fs::remove_dir_all(&p);
        p
    }

    /// A file is rewritten in place: same inode (its block is never freed
    /// and discarded), and a shorter content leaves none of the old tail.
    #[test]
    fn rewrite_keeps_the_file_and_cuts_the_old_tail() {
        use std::os::unix::fs::MetadataExt;
        let d = tmp("rewrite");
        fs::create_dir_all(&d).unwrap();
        let dir = File::open(&d).unwrap();
        write_at(dir.as_fd(), "cursor", b"10.1.0.10").unwrap();
        let ino = fs::metadata(d.join("cursor")).unwrap().ino();
        write_at(dir.as_fd(), "cursor", b"10.1.0.9").unwrap();
        assert_eq!(fs::read(d.join("cursor")).unwrap(), b"10.1.0.9");
        assert_eq!(fs::metadata(d.join("cursor")).unwrap().ino(), ino);
        write_at(dir.as_fd(), "cursor", b"10.1.0.200").unwrap();
        assert_eq!(fs::read(d.join("cursor")).unwrap(), b"10.1.0.200");
        let mode = fs::metadata(d.join("cursor")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reservation_file_format_is_the_references() {
        let d = tmp("fmt");
        let s = Store::open(&d, "net1").unwrap();
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        assert!(s.reserve(a, "c1", "eth0").unwrap());
        assert!(!s.reserve(a, "c2", "eth0").unwrap());
        let p = d.join("net1/10.1.0.2");
        assert_eq!(fs::read(&p).unwrap(), b"c1\r\neth0");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        s.set_last_reserved(0, a).unwrap();
        assert_eq!(
            fs::read(d.join("net1/last_reserved_ip.0")).unwrap(),
            b"10.1.0.2"
        );
        assert_eq!(s.last_reserved(0), Some(a));
        let lock = fs::metadata(d.join("net1/lock")).unwrap();
        assert_eq!(lock.len(), 0);
        assert_eq!(lock.permissions().mode() & 0o777, 0o750);
        let v6: IpAddr = "fd00:0::2".parse().unwrap();
        assert!(s.reserve(v6, "c1", "eth0").unwrap());
        assert!(d.join("net1/fd00::2").exists());
        let mut scanned = s.scan().unwrap();
        scanned.sort_by_key(|(a, _)| *a);
        assert_eq!(scanned.len(), 2);
        assert!(scanned[0].1.is("c1", "eth0", false));
        assert!(s.release(a).unwrap());
        assert!(!s.release(a).unwrap());
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn owners_parse_like_the_reference_compares() {
        let o = Owner::parse("c1\r\neth0\n");
        assert!(o.is("c1", "eth0", false));
        assert!(!o.is("c1", "eth1", false));
        assert!(!o.is("c1", "eth0", true));
        let legacy = Owner::parse(" c1 \n");
        assert!(legacy.is("c1", "eth0", true));
        assert!(!legacy.is("c1", "eth0", false));
        assert!(!legacy.is("c2", "eth0", true));
    }

    #[test]
    fn network_name_cannot_escape() {
        let d = tmp("esc");
        for bad in ["..", "../x", "a/b", "/abs", ""] {
            assert_eq!(Store::open(&d, bad).err().map(|e| e.code), Some(7), "{bad}");
        }
        assert!(!d.exists());
    }

    #[test]
    fn staging_is_replaced_never_written_through_and_removed() {
        let d = tmp("stage");
        let s = Store::open(&d, "n").unwrap();
        let net = d.join("n");
        // A staging file a killed run left, already linked as a reservation.
        fs::write(net.join(STAGING_FILE), "old\r\neth0").unwrap();
        fs::hard_link(net.join(STAGING_FILE), net.join("10.1.0.9")).unwrap();
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        assert!(s.reserve(a, "c1", "eth0").unwrap());
        assert_eq!(fs::read(net.join("10.1.0.9")).unwrap(), b"old\r\neth0");
        assert_eq!(fs::read(net.join("10.1.0.2")).unwrap(), b"c1\r\neth0");
        // A second owner restages; the first reservation keeps its content.
        let b: IpAddr = "10.1.0.3".parse().unwrap();
        assert!(s.reserve(b, "c2", "eth0").unwrap());
        assert_eq!(fs::read(net.join("10.1.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(fs::read(net.join("10.1.0.3")).unwrap(), b"c2\r\neth0");
        assert!(net.join(STAGING_FILE).exists());
        drop(s);
        assert!(
            !net.join(STAGING_FILE).exists(),
            "dropping the store unstages"
        );
        // One a killed run left goes when the store is next opened (its
        // reservation stays).
        fs::write(net.join(STAGING_FILE), "c1\r\neth0").unwrap();
        fs::remove_file(net.join("10.1.0.2")).unwrap();
        fs::hard_link(net.join(STAGING_FILE), net.join("10.1.0.2")).unwrap();
        let s = Store::open(&d, "n").unwrap();
        assert!(
            !net.join(STAGING_FILE).exists(),
            "a killed run's staging file is removed"
        );
        assert_eq!(fs::read(net.join("10.1.0.2")).unwrap(), b"c1\r\neth0");
        // Scans never take it (or anything not named like an address) for a reservation.
        fs::write(net.join(STAGING_FILE), "c9\r\neth0").unwrap();
        let mut all: Vec<String> = s
            .scan()
            .unwrap()
            .iter()
            .map(|(a, _)| a.to_string())
            .collect();
        all.sort();
        assert_eq!(all, ["10.1.0.2", "10.1.0.3", "10.1.0.9"]);
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }
}
