//! The on-disk state, byte-compatible with the reference plugin:
//!
//! ```text
//! <dataDir>/<network>/lock                 empty, flock(LOCK_EX) for every operation
//! <dataDir>/<network>/<ip>                 "<containerID>\r\n<ifname>", no newline, 0600
//! <dataDir>/<network>/last_reserved_ip.<N> the last address reserved in range set N
//! ```
//!
//! Existence of `<ip>` is the reservation; it is created with `O_EXCL`, so two
//! processes can never both hold an address even without the lock. Files
//! holding only the container ID were written by reference versions that
//! predate the interface name, and still count.
//!
//! A [`Store`] exists only while its lock is held: every method runs under it.

use crate::ip;
use cni::error::{Context, PLUGIN_FAILURE};
use cni::{Error, Result};
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The reference's default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Prefix of the per-range-set round-robin cursor files.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";

/// The text a reservation file holds for `(id, ifname)`.
pub fn owner_text(id: &str, ifname: &str) -> String {
    format!("{}\r\n{}", id.trim(), ifname)
}

/// Who a reservation file says holds the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
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

    /// The reference's match for `(id, ifname)`: the full form, or (when
    /// `legacy`) the bare container ID.
    pub fn is(&self, id: &str, ifname: &str, legacy: bool) -> bool {
        self.id == id.trim()
            && match &self.ifname {
                Some(i) => !legacy && i == ifname,
                None => legacy,
            }
    }
}

/// An open, locked network directory.
pub struct Store {
    dir: PathBuf,
    // Held for the Store's lifetime; dropping it unlocks.
    _lock: Flock<File>,
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(PLUGIN_FAILURE, format!("{what}: {e}"))
}

impl Store {
    /// Create `<data_dir>/<network>` if needed and take its lock, waiting for
    /// any other host-local (ours or the reference) to finish.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store> {
        // The name becomes a path component: nothing but the spec's
        // identifier characters may pass, so it can never be `..` or hold `/`.
        cni::validate::network_name(network)?;
        let dir = data_dir.join(network);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(io_err(format_args!(
                "create data directory {}",
                dir.display()
            )))?;
        let lock_path = dir.join(LOCK_FILE);
        // The reference opens its lock `O_CREAT|O_RDONLY` with mode 0750; so
        // do we, so the file looks the same whichever plugin created it.
        let fd = nix::fcntl::open(
            &lock_path,
            OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o750),
        )
        .map_err(|e| {
            Error::new(
                PLUGIN_FAILURE,
                format!("open lock {}: {e}", lock_path.display()),
            )
        })?;
        let mut file = File::from(fd);
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(l) => break l,
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, e)) => {
                    return Err(Error::new(
                        PLUGIN_FAILURE,
                        format!("lock {}: {e}", lock_path.display()),
                    ))
                }
            }
        };
        Ok(Store { dir, _lock: lock })
    }

    /// Open only if the network directory exists (DEL, CHECK, GC need not create it).
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<Store>> {
        cni::validate::network_name(network)?;
        if !data_dir.join(network).is_dir() {
            return Ok(None);
        }
        Store::open(data_dir, network).map(Some)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, a: IpAddr) -> PathBuf {
        self.dir.join(ip::file_name(a))
    }

    /// Reserve `a` for `(id, ifname)`; `false` if someone holds it already.
    pub fn reserve(&self, a: IpAddr, id: &str, ifname: &str) -> Result<bool> {
        let path = self.ip_path(a);
        let mut f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(format_args!("reserve {}", path.display()))(e)),
        };
        if let Err(e) = f.write_all(owner_text(id, ifname).as_bytes()) {
            // Never leave an empty reservation behind: it would be held by no one.
            if let Err(rm) = fs::remove_file(&path) {
                log::warn!("remove half-written {}: {rm}", path.display());
            }
            return Err(io_err(format_args!("write {}", path.display()))(e));
        }
        Ok(true)
    }

    /// The owner recorded in `a`'s file, `None` if the address is free.
    pub fn owner(&self, a: IpAddr) -> Result<Option<Owner>> {
        let path = self.ip_path(a);
        match fs::read(&path) {
            Ok(b) => Ok(Some(Owner::parse(&String::from_utf8_lossy(&b)))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format_args!("read {}", path.display()))(e)),
        }
    }

    /// Whether `a`'s file exists.
    pub fn is_held(&self, a: IpAddr) -> Result<bool> {
        let path = self.ip_path(a);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(format_args!("stat {}", path.display()))(e)),
        }
    }

    /// Release `a`; `false` if it was already free.
    pub fn release(&self, a: IpAddr) -> Result<bool> {
        let path = self.ip_path(a);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(format_args!("release {}", path.display()))(e)),
        }
    }

    pub fn last_reserved_path(&self, set: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set}"))
    }

    /// The round-robin cursor of range set `set`; unreadable means "none",
    /// as in the reference (only round-robin order is lost).
    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        let text = fs::read_to_string(self.last_reserved_path(set)).ok()?;
        ip::parse_ip(&text).ok()
    }

    /// The raw content of range set `set`'s cursor file, `None` if it is
    /// absent or unreadable (then there is nothing to restore).
    pub fn read_cursor(&self, set: usize) -> Option<Vec<u8>> {
        fs::read(self.last_reserved_path(set)).ok()
    }

    /// Put a cursor back as [`Store::read_cursor`] found it: that content,
    /// or no file at all.
    pub fn restore_cursor(&self, set: usize, old: Option<&[u8]>) -> Result<()> {
        let path = self.last_reserved_path(set);
        match old {
            Some(b) => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(b))
                .map_err(io_err(format_args!("write {}", path.display()))),
            None => match fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err(format_args!("remove {}", path.display()))(e)),
            },
        }
    }

    /// Record `a` as range set `set`'s last reservation: the bare address, no newline.
    pub fn set_last_reserved(&self, set: usize, a: IpAddr) -> Result<()> {
        let path = self.last_reserved_path(set);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(ip::file_name(a).as_bytes()))
            .map_err(io_err(format_args!("write {}", path.display())))
    }

    /// Every reservation in the directory with its owner. Entries whose name
    /// is not an address (`lock`, `last_reserved_ip.*`, our index) are not
    /// reservations and are skipped; so are directories.
    pub fn scan(&self) -> Result<Vec<(IpAddr, Owner)>> {
        let rd = fs::read_dir(&self.dir)
            .context_code(PLUGIN_FAILURE, format_args!("list {}", self.dir.display()))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry =
                entry.context_code(PLUGIN_FAILURE, format_args!("list {}", self.dir.display()))?;
            let name = entry.file_name();
            let Some(a) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            match entry.file_type() {
                Ok(t) if t.is_file() => {}
                _ => continue,
            }
            match fs::read(entry.path()) {
                Ok(b) => out.push((ip::canonical(a), Owner::parse(&String::from_utf8_lossy(&b)))),
                // Released by no one else (we hold the lock), but tolerate it.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format_args!("read {}", entry.path().display()))(e)),
            }
        }
        Ok(out)
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
}
