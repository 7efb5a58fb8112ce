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

/// `PROC_SUPER_MAGIC` from linux/magic.h.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Open `/proc/sys/net/<components...>` one component at a time, never
/// following a symlink (`O_NOFOLLOW` at every step) and checking the
/// start is procfs, so the file opened is a sysctl under `/proc/sys/net`
/// whatever the components are. Components must be plain names (no `/`,
/// not `.`, `..` or empty); anything else is `EINVAL` before any open.
fn open_net(components: &[&str], write: bool) -> Result<std::fs::File> {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::Mode;
    let shown = format!("/proc/sys/net/{}", components.join("/"));
    let what = || format!("{} sysctl {shown}", if write { "write" } else { "read" });
    if components.is_empty()
        || components
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains(['/', '\0']))
    {
        return Err(Error::errno(what(), libc::EINVAL));
    }
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = open("/proc/sys/net", dir_flags, Mode::empty())
        .map_err(|e| Error::errno(what(), e as i32))?;
    let st = nix::sys::statfs::fstatfs(&dir).map_err(|e| Error::errno(what(), e as i32))?;
    if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
        return Err(Error::protocol(what(), "/proc/sys/net is not procfs"));
    }
    let (last, parents) = components.split_last().expect("not empty");
    for c in parents {
        dir = openat(&dir, *c, dir_flags, Mode::empty())
            .map_err(|e| Error::errno(what(), e as i32))?;
    }
    let mode = if write {
        OFlag::O_WRONLY
    } else {
        OFlag::O_RDONLY
    };
    let fd = openat(
        &dir,
        *last,
        mode | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::errno(what(), e as i32))?;
    Ok(std::fs::File::from(fd))
}

/// Write `value` to the network sysctl `/proc/sys/net/<components...>`
/// of the calling thread's namespace, refusing any path that would leave
/// `/proc/sys/net` (see [`open_net`]).
pub fn write_net(components: &[&str], value: &str) -> Result<()> {
    use std::io::Write;
    let mut f = open_net(components, true)?;
    f.write_all(value.as_bytes()).map_err(|e| {
        Error::io(
            format!(
                "write {value:?} to sysctl /proc/sys/net/{}",
                components.join("/")
            ),
            &e,
        )
    })
}

/// Read the network sysctl `/proc/sys/net/<components...>` (trailing
/// newline removed), under the same rules as [`write_net`].
pub fn read_net(components: &[&str]) -> Result<String> {
    use std::io::Read;
    let mut f = open_net(components, false)?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| {
        Error::io(
            format!("read sysctl /proc/sys/net/{}", components.join("/")),
            &e,
        )
    })?;
    Ok(s.trim_end_matches('\n').to_string())
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
    fn net_sysctls_stay_under_proc_sys_net() {
        assert_eq!(
            read_net(&["ipv4", "ip_forward"]).unwrap(),
            read("net.ipv4.ip_forward").unwrap()
        );
        for bad in [
            &[][..],
            &["..", "kernel", "ostype"][..],
            &["ipv4", ""][..],
            &["ipv4/ip_forward"][..],
            &[".", "ipv4", "ip_forward"][..],
            &["ipv4", "ip_forward\0"][..],
        ] {
            let e = read_net(bad).unwrap_err();
            assert!(e.is(libc::EINVAL), "{bad:?}: {e}");
        }
        assert!(read_net(&["nope"]).unwrap_err().is_not_found());
    }

    #[test]
    fn reads_a_real_sysctl() {
        let v = read("kernel.ostype").unwrap();
        assert_eq!(v, "Linux");
        assert!(read("net.nope.nothing").is_err());
    }
}
