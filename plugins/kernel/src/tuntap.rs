//! Tap devices: `ip tuntap add mode tap name NAME [multi_queue] [user U]
//! [group G]`. The kernel does not create tun/tap links over rtnetlink
//! (`tun_validate` refuses RTM_NEWLINK with "tun/tap creation via
//! rtnetlink is not supported"): they are made by `TUNSETIFF` on an open
//! `/dev/net/tun`, in the namespace of the thread that opened it, and kept
//! after the descriptor closes by `TUNSETPERSIST`. Reading a tap's settings
//! back is plain rtnetlink (`IFLA_TUN_*` in its link info).

use crate::error::{Error, Result};
use crate::link::Link;
use crate::netns::Netns;
use netlink_packet_core::Nla;
use netlink_packet_route::link::{InfoData, LinkAttribute, LinkInfo};
use std::fs::File;
use std::os::fd::AsRawFd;

/// The tun/tap character device.
const TUN_DEVICE: &str = "/dev/net/tun";

/// A tap device to create.
#[derive(Debug, Clone, Default)]
pub struct TapSpec {
    pub name: String,
    /// `IFF_MULTI_QUEUE`: several descriptors may attach, one queue each.
    pub multi_queue: bool,
    /// The user allowed to attach without CAP_NET_ADMIN; `None`: nobody.
    pub owner: Option<u32>,
    /// The group allowed to attach; `None`: none.
    pub group: Option<u32>,
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags as a
/// short, in a union padded to 24 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// The `TUNSETIFF` flags of a tap: no packet-information header on the
/// frames (what `ip tuntap` makes unless told `pi`), one queue or many.
pub fn tap_flags(multi_queue: bool) -> libc::c_short {
    let mut f = libc::IFF_TAP | libc::IFF_NO_PI;
    if multi_queue {
        f |= libc::IFF_MULTI_QUEUE;
    }
    f as libc::c_short
}

/// The `ifreq` for `TUNSETIFF` of `name` with `flags`; the name must fit
/// with its terminating NUL.
pub fn ifreq(name: &str, flags: libc::c_short) -> Result<IfReq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(Error::protocol(
            format!("tap name {name:?}"),
            "must be 1 to 15 bytes without NUL",
        ));
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags,
        pad: [0; 22],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    Ok(req)
}

fn open_tun() -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_DEVICE)
        .map_err(|e| Error::io(format!("open {TUN_DEVICE}"), &e))
}

/// `ioctl(fd, request, &req)`.
fn ioctl_ifreq(file: &File, request: libc::Ioctl, req: &mut IfReq, what: &str) -> Result<()> {
    // SAFETY: `req` is a live, properly sized `struct ifreq` for the call;
    // the kernel reads (and may write) only within it.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, req as *mut IfReq) };
    if rc < 0 {
        return Err(Error::io(what, &std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `ioctl(fd, request, value)` for the tun ioctls that take an integer
/// argument by value.
fn ioctl_value(file: &File, request: libc::Ioctl, value: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: these requests take their argument by value; no memory of
    // ours is passed.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request, value) };
    if rc < 0 {
        return Err(Error::io(what, &std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Create the persistent tap `spec` inside `ns`. Fails with `EBUSY` or
/// `EINVAL` if a device of that name exists there already; create under a
/// name nobody else uses (a `TUNSETIFF` on the name of an existing tap
/// attaches to it instead of failing). Until `TUNSETPERSIST` the device
/// lives only as long as the descriptor, so a failure half-way leaves
/// nothing behind.
pub fn create_tap(ns: &Netns, spec: &TapSpec) -> Result<()> {
    let spec = spec.clone();
    ns.run(move || -> Result<()> {
        let what = |step: &str| format!("create tap {}: {step}", spec.name);
        let file = open_tun()?;
        let mut req = ifreq(&spec.name, tap_flags(spec.multi_queue))?;
        ioctl_ifreq(&file, libc::TUNSETIFF, &mut req, &what("TUNSETIFF"))?;
        if let Some(uid) = spec.owner {
            ioctl_value(&file, libc::TUNSETOWNER, uid.into(), &what("TUNSETOWNER"))?;
        }
        if let Some(gid) = spec.group {
            ioctl_value(&file, libc::TUNSETGROUP, gid.into(), &what("TUNSETGROUP"))?;
        }
        ioctl_value(&file, libc::TUNSETPERSIST, 1, &what("TUNSETPERSIST"))
    })?
}

/// Attach to the existing tap `name` inside `ns` and return its queue
/// descriptor: frames written to it enter the tap as if received; frames
/// the tap sends can be read from it. `multi_queue` must match how the tap
/// was made.
pub fn open_tap(ns: &Netns, name: &str, multi_queue: bool) -> Result<File> {
    let name = name.to_string();
    ns.run(move || -> Result<File> {
        let file = open_tun()?;
        let mut req = ifreq(&name, tap_flags(multi_queue))?;
        ioctl_ifreq(
            &file,
            libc::TUNSETIFF,
            &mut req,
            &format!("attach to tap {name}"),
        )?;
        Ok(file)
    })?
}

/// What `IFLA_INFO_DATA` of a tun/tap link says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunInfo {
    /// `IFLA_TUN_TYPE` is `IFF_TAP`.
    pub tap: bool,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub multi_queue: bool,
    pub persist: bool,
}

/// `IFLA_TUN_*` attribute numbers (linux/if_link.h).
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;

impl Link {
    /// A tun/tap link's settings; `None` for other links. The kernel
    /// reports "no owner" as uid -1, which is `None` here.
    pub fn tun_info(&self) -> Option<TunInfo> {
        let data = self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Tun(d)) => Some(d),
                _ => None,
            }),
            _ => None,
        })?;
        let mut info = TunInfo::default();
        for nla in data {
            let mut v = vec![0u8; nla.value_len()];
            nla.emit_value(&mut v);
            let u32_of = |v: &[u8]| {
                v.get(..4)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .filter(|id| *id != u32::MAX)
            };
            let flag = |v: &[u8]| v.first().is_some_and(|b| *b != 0);
            match nla.kind() {
                IFLA_TUN_OWNER => info.owner = u32_of(&v),
                IFLA_TUN_GROUP => info.group = u32_of(&v),
                IFLA_TUN_TYPE => info.tap = v.first() == Some(&(libc::IFF_TAP as u8)),
                IFLA_TUN_PERSIST => info.persist = flag(&v),
                IFLA_TUN_MULTI_QUEUE => info.multi_queue = flag(&v),
                _ => {}
            }
        }
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::DefaultNla;
    use netlink_packet_route::link::{InfoKind, InfoTun, LinkMessage};

    #[test]
    fn ifreq_layout_and_name() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40, "sizeof(struct ifreq)");
        let r = ifreq("tap0", tap_flags(false)).unwrap();
        assert_eq!(&r.name[..5], b"tap0\0");
        assert_eq!(r.flags as i32, libc::IFF_TAP | libc::IFF_NO_PI);
        let r = ifreq("tap0", tap_flags(true)).unwrap();
        assert_ne!(r.flags as i32 & libc::IFF_MULTI_QUEUE, 0);
        assert!(ifreq("", 0).is_err());
        assert!(ifreq("sixteen-bytes-xx", 0).is_err());
        assert!(ifreq("a\0b", 0).is_err());
        assert!(ifreq("fifteen-bytes-x", 0).is_ok());
    }

    #[test]
    fn tun_info_is_read_from_link_info() {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Tun),
            LinkInfo::Data(InfoData::Tun(vec![
                InfoTun::Other(DefaultNla::new(
                    IFLA_TUN_OWNER,
                    1000u32.to_ne_bytes().to_vec(),
                )),
                InfoTun::Other(DefaultNla::new(
                    IFLA_TUN_GROUP,
                    u32::MAX.to_ne_bytes().to_vec(),
                )),
                InfoTun::Other(DefaultNla::new(IFLA_TUN_TYPE, vec![libc::IFF_TAP as u8])),
                InfoTun::Other(DefaultNla::new(IFLA_TUN_MULTI_QUEUE, vec![1])),
                InfoTun::Other(DefaultNla::new(IFLA_TUN_PERSIST, vec![1])),
            ])),
        ]));
        let info = Link::from(m).tun_info().unwrap();
        assert_eq!(
            info,
            TunInfo {
                tap: true,
                owner: Some(1000),
                group: None,
                multi_queue: true,
                persist: true
            }
        );
        assert_eq!(Link::from(LinkMessage::default()).tun_info(), None);
    }
}
