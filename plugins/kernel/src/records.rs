//! Small per-network records a plugin keeps beside its kernel state, for
//! what the kernel state cannot say by itself (which network a rule
//! belongs to, which addresses an attachment had): `<dir>/<network>/<key>`,
//! written whole or not at all (a temporary file renamed into place), read
//! and removed without following symlinks. Keys and network names are the
//! validated CNI identifiers, safe as path components.

use crate::error::{Error, Result};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The records of one network.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(data_dir: &Path, network: &str) -> Records {
        Records {
            dir: data_dir.join(network),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Whether the network's directory exists; an error when it is not a
    /// directory of its own (a symlink planted there would lead every
    /// write out of the data directory, so it is refused, never followed).
    fn dir_exists(&self) -> Result<bool> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(Error::errno(
                format!(
                    "{} is not a directory (a symbolic link?); refusing to follow it",
                    self.dir.display()
                ),
                libc::ENOTDIR,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("stat {}", self.dir.display()), &e)),
        }
    }

    /// Write (or replace) the record `key`.
    pub fn write(&self, key: &str, content: &[u8]) -> Result<()> {
        if !self.dir_exists()? {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Error::io(format!("create {}", self.dir.display()), &e))?;
            self.dir_exists()?;
        }
        let path = self.path(key);
        // A leading dot: never listed as a record.
        let tmp = self.dir.join(format!(".{key}.tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut f| f.write_all(content))
            .and_then(|_| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("write {}", path.display()), &e)
        })
    }

    /// The record `key`; `None` when there is none.
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if !self.dir_exists()? {
            return Ok(None);
        }
        let path = self.path(key);
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        let mut f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), &e)),
        };
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut content)
            .map_err(|e| Error::io(format!("read {}", path.display()), &e))?;
        Ok(Some(content))
    }

    pub fn exists(&self, key: &str) -> bool {
        self.dir_exists().unwrap_or(false) && self.path(key).symlink_metadata().is_ok()
    }

    /// Remove the record `key`; absent is fine.
    pub fn remove(&self, key: &str) -> Result<()> {
        if !self.dir_exists()? {
            return Ok(());
        }
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(Error::io(format!("remove {}", path.display()), &e))
            }
            _ => Ok(()),
        }
    }

    /// The keys of every record, sorted (temporary files left out).
    pub fn keys(&self) -> Result<Vec<String>> {
        if !self.dir_exists()? {
            return Ok(Vec::new());
        }
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("list {}", self.dir.display()), &e)),
        };
        let mut keys = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(format!("list {}", self.dir.display()), &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                keys.push(name);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_list_remove() {
        let dir = std::env::temp_dir().join(format!("records-{}", std::process::id()));
        let r = Records::new(&dir, "net");
        assert_eq!(r.keys().unwrap(), Vec::<String>::new());
        assert_eq!(r.read("c1").unwrap(), None);
        r.write("c1", b"one").unwrap();
        r.write("c1", b"again").unwrap();
        r.write("c.2-eth0", b"").unwrap();
        assert_eq!(r.read("c1").unwrap().as_deref(), Some(&b"again"[..]));
        assert!(r.exists("c.2-eth0"));
        assert_eq!(r.keys().unwrap(), ["c.2-eth0", "c1"]);
        std::os::unix::fs::symlink("/etc/passwd", dir.join("net").join("link")).unwrap();
        assert!(r.read("link").is_err(), "a symlink is never read through");
        r.remove("c1").unwrap();
        r.remove("c1").unwrap();
        assert_eq!(r.read("c1").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_linked_network_directory_is_never_followed() {
        let dir = std::env::temp_dir().join(format!("records-link-{}", std::process::id()));
        let outside = dir.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("c1"), b"theirs").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("net")).unwrap();
        let r = Records::new(&dir, "net");
        let e = r.write("c2", b"ours").unwrap_err();
        assert!(e.to_string().contains("refusing to follow"), "{e}");
        assert!(r.read("c1").is_err());
        assert!(r.remove("c1").is_err());
        assert!(r.keys().is_err());
        assert!(!r.exists("c1"));
        let mut names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["c1"]);
        assert_eq!(std::fs::read(outside.join("c1")).unwrap(), b"theirs");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
