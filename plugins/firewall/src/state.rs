//! What the iptables backend needs to remember: the reference's per-address
//! rules carry no container ID, so the addresses each attachment was given
//! are written down at ADD (`<dataDir>/<network>/<containerID>-<ifname>`,
//! JSON, through [`Records`]) and removed at DEL. DEL without a `prevResult` and GC read them;
//! a rule no record attributes to a stale attachment is never deleted.
//!
//! The default directory is under `/run`: like the rules themselves, the
//! records do not survive a reboot.

use cni::{Error, Result};
use cni_kernel::records::Records;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;

pub const DEFAULT_DIR: &str = "/run/cni/firewall";

/// One attachment's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub ips: Vec<IpAddr>,
}

/// The records of one network.
pub struct Store {
    records: Records,
}

fn key(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

impl Store {
    /// `network` is a validated network name: safe as a path component.
    pub fn new(data_dir: &Path, network: &str) -> Store {
        Store {
            records: Records::new(data_dir, network),
        }
    }

    /// Write (or replace) an attachment's record, atomically.
    pub fn write(&self, r: &Record) -> Result<()> {
        let text = serde_json::to_vec(r).map_err(|e| Error::plugin(e.to_string()))?;
        Ok(self
            .records
            .write(&key(&r.container_id, &r.ifname), &text)?)
    }

    /// An attachment's record; `None` when there is none (or it is not ours).
    pub fn read(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        Ok(self
            .records
            .read(&key(container_id, ifname))?
            .and_then(|text| serde_json::from_slice::<Record>(&text).ok())
            .filter(|r| r.container_id == container_id && r.ifname == ifname))
    }

    /// Remove an attachment's record; absent is fine.
    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        Ok(self.records.remove(&key(container_id, ifname))?)
    }

    /// Every record of the network. Files that do not parse as a record
    /// whose name matches its content are skipped: nothing they say is
    /// trusted enough to delete a rule for.
    pub fn list(&self) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for name in self.records.keys()? {
            let Ok(Some(text)) = self.records.read(&name) else {
                continue;
            };
            match serde_json::from_slice::<Record>(&text) {
                Ok(r) if name == key(&r.container_id, &r.ifname) => out.push(r),
                _ => log::debug!("{name}: not a firewall record, ignored"),
            }
        }
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
