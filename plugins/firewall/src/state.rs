//! What the iptables backend needs to remember: the reference's per-address
//! rules carry no container ID, so the addresses each attachment was given
//! are written down at ADD (`<dataDir>/<network>/<containerID>-<ifname>`,
//! JSON) and removed at DEL. DEL without a `prevResult` and GC read them;
//! a rule no record attributes to a stale attachment is never deleted.
//!
//! The default directory is under `/run`: like the rules themselves, the
//! records do not survive a reboot.

use cni::error::IO_FAILURE;
use cni::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_DIR: &str = "/run/cni/firewall";

/// One attachment's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub ips: Vec<IpAddr>,
}

fn io(what: String, e: std::io::Error) -> Error {
    Error::new(IO_FAILURE, format!("{what}: {e}"))
}

/// The records of one network.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `network` is a validated network name: safe as a path component.
    pub fn new(data_dir: &Path, network: &str) -> Store {
        Store {
            dir: data_dir.join(network),
        }
    }

    fn path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{container_id}-{ifname}"))
    }

    /// Write (or replace) an attachment's record, atomically.
    pub fn write(&self, r: &Record) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io(format!("create {}", self.dir.display()), e))?;
        let path = self.path(&r.container_id, &r.ifname);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_vec(r).map_err(|e| Error::plugin(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(format!("rename {}", path.display()), e)
        })
    }

    /// An attachment's record; `None` when there is none (or it is not ours).
    pub fn read(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        let path = self.path(container_id, ifname);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("read {}", path.display()), e)),
        };
        Ok(serde_json::from_slice::<Record>(&text)
            .ok()
            .filter(|r| r.container_id == container_id && r.ifname == ifname))
    }

    /// Remove an attachment's record; absent is fine.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        let path = self.path(container_id, ifname);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(io(format!("remove {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    /// Every record of the network. Files that do not parse as a record
    /// whose name matches its content are skipped: nothing they say is
    /// trusted enough to delete a rule for.
    pub fn list(&self) -> Result<Vec<Record>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("list {}", self.dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io(format!("list {}", self.dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read(entry.path()) else {
                continue;
            };
            match serde_json::from_slice::<Record>(&text) {
                Ok(r) if name == format!("{}-{}", r.container_id, r.ifname) => out.push(r),
                _ => log::debug!("{}: not a firewall record, ignored", entry.path().display()),
            }
        }
        out.sort_by(|a, b| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_list() {
        let dir = std::env::temp_dir().join(format!("fw-state-{}", std::process::id()));
        let s = Store::new(&dir, "net");
        let r = Record {
            container_id: "c-1".into(),
            ifname: "eth0".into(),
            ips: vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        };
        assert_eq!(s.read("c-1", "eth0").unwrap(), None);
        assert!(s.list().unwrap().is_empty());
        s.write(&r).unwrap();
        assert_eq!(s.read("c-1", "eth0").unwrap(), Some(r.clone()));
        std::fs::write(dir.join("net").join("junk"), "{}").unwrap();
        assert_eq!(s.list().unwrap(), vec![r]);
        s.remove("c-1", "eth0").unwrap();
        s.remove("c-1", "eth0").unwrap();
        assert_eq!(s.read("c-1", "eth0").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
