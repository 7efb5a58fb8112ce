//! Sysctls under `/proc/sys`. Network sysctls are per namespace: they are
//! read and written in the namespace of the thread that opens the file, so
//! for a container run these inside [`crate::Netns::run`].

use crate::error::{Error, Result};
use std::path::PathBuf;

/// `net.ipv4.ip_forward` or `net/ipv4/ip_forward` → `/proc/sys/net/ipv4/ip_forward`.
/// Dots become slashes except inside an interface name is impossible to
/// tell apart, so callers with dotted interface names (`eth0.100`) pass the
/// slash form.
pub fn path(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel.trim_start_matches('/'))
}

/// `sysctl -n KEY`
pub fn read(key: &str) -> Result<String> {
    let p = path(key);
    std::fs::read_to_string(&p)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| Error::io(format!("read sysctl {}", p.display()), &e))
}

/// `sysctl -w KEY=VALUE`
pub fn write(key: &str, value: &str) -> Result<()> {
    let p = path(key);
    std::fs::write(&p, value)
        .map_err(|e| Error::io(format!("write {value} to sysctl {}", p.display()), &e))
}

/// Write only when the value differs (saves a write to a read-only /proc/sys
/// when forwarding is already on, as on most hosts).
pub fn ensure(key: &str, value: &str) -> Result<()> {
    if read(key)? == value {
        return Ok(());
    }
    write(key, value)
}

/// `net.ipv6.conf.<dev>.accept_dad = 0`: addresses usable at once. A no-op
/// where IPv6 is off entirely (the key does not exist).
pub fn disable_dad(dev: &str) -> Result<()> {
    let key = format!("net/ipv6/conf/{dev}/accept_dad");
    if read(&key).is_ok() {
        ensure(&key, "0")?;
    }
    Ok(())
}

/// Turn on IP forwarding in the caller's namespace for the families of
/// `addrs` (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`).
pub fn enable_forwarding(addrs: impl IntoIterator<Item = std::net::IpAddr>) -> Result<()> {
    let (mut v4, mut v6) = (false, false);
    for a in addrs {
        if a.is_ipv4() {
            v4 = true;
        } else {
            v6 = true;
        }
    }
    if v4 {
        ensure("net/ipv4/ip_forward", "1")?;
    }
    if v6 {
        ensure("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path("net/ipv6/conf/eth0.100/accept_dad"),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/accept_dad")
        );
    }

    #[test]
    fn reads_a_real_sysctl() {
        let v = read("kernel.ostype").unwrap();
        assert_eq!(v, "Linux");
        assert!(read("net.nope.nothing").is_err());
    }
}
