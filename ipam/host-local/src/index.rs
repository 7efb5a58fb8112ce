//! A cache that keeps ADD and DEL independent of how many addresses are held.
//!
//! The reference finds a container's addresses by reading every file of the
//! network directory, and finds a free address by trying to create files one
//! after another. With tens of thousands of reservations both are slow. This
//! index answers the same two questions from small files:
//!
//! ```text
//! <network>/.host-local-index/owners-<xx>       who holds what, bucketed by container ID
//! <network>/.host-local-index/bits-<start>-<end> one bit per address of a range: held?
//! <network>/.host-local-index/stamp             what the directory looked like when the index was last right
//! ```
//!
//! It is only a cache. The reservation files stay the truth:
//!
//! * every entry is checked against its address file before it is acted on,
//!   and a mismatch throws the index away and rebuilds it from the files;
//! * the stamp records the boot, the network directory's inode, mtime and
//!   size and the content and mtime of every `last_reserved_ip.N`. Any
//!   reservation made by someone else (the reference binary, an operator)
//!   creates a file, which changes the directory's mtime, and a reference
//!   ADD rewrites `last_reserved_ip.N`; on any difference the index is
//!   rebuilt from a scan. A mutation first deletes the stamp and writes it
//!   back when done, so a process killed in between also forces a rebuild.
//!   The index is never synced to disk: after a crash of the machine, what
//!   reached the disk is unknown, but the boot ID has changed, so the first
//!   run after the reboot rebuilds;
//! * the stamp also lists which owner buckets exist, so a bucket that
//!   disappears is damage, never "no entries"; so is an unreadable bucket or
//!   bitmap: the index is rebuilt;
//! * a "held" bit only lets an address be skipped; before reporting a range
//!   set exhausted, the caller re-checks the files themselves;
//! * a failure to update the index after a reservation does not fail the
//!   operation: the index is left without a stamp and rebuilt next time.
//!
//! Every file is opened relative to the network directory's descriptor with
//! `O_NOFOLLOW`: a link planted in the index is never followed, and makes
//! the index look damaged, so it is rebuilt (the link itself removed).
//!
//! The reference's DEL reads every regular file under the network directory,
//! subdirectories included, and deletes those whose trimmed content equals
//! `id\r\nifname` or `id`. Every index file, bitmaps included, starts with
//! `#`, and a container ID starts with a letter or digit, so no index file can
//! ever match; and if one is deleted, the index is simply rebuilt.

use crate::range::RangeSet;
use crate::store::{
    fail, io_errno, kind, list_at, open_at, open_dir_at, read_at, stat_at, unlink_at, write_at,
    Owner, Store, LAST_RESERVED_PREFIX,
};
use cni::error::PLUGIN_FAILURE;
use cni::ip;
use cni::{Error, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// The index directory's name inside the network directory.
pub const INDEX_DIR: &str = ".host-local-index";
const STAMP: &str = "stamp";
const HEADER: &str =
    "# host-local index v2: a cache rebuilt from the address files; safe to delete\n";
const BUCKETS: u64 = 256;
/// Ranges up to this many addresses get a bitmap (2 MiB at most); larger
/// ones (IPv6 /64s) are so sparsely used that probing finds a free address
/// at once.
const MAX_BITMAP_ADDRS: u128 = 1 << 24;
const PAGE: u64 = 4096;
/// Bitmaps start with this, so their content can never look like a container ID.
const BITMAP_HEADER: &[u8; 8] = b"#bitmap\n";
const BITMAP_BASE: u64 = BITMAP_HEADER.len() as u64;
/// Changes at every boot: a stamp written before a crash of the machine
/// never matches after it.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's ID, read once per process ("" if the kernel does not say:
/// the stamp then only misses crashes of the machine).
fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string(BOOT_ID)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// One reservation as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ip: IpAddr,
    pub owner: Owner,
}

/// An id or ifname the index can store in its whitespace-separated lines.
fn storable(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('#') && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// FNV-1a: a stable hash, so every version of this plugin picks the same bucket.
fn bucket_of(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.trim().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % BUCKETS
}

fn bucket_name(b: u64) -> String {
    format!("owners-{b:02x}")
}

/// The index of one locked network directory.
pub struct Index<'s> {
    store: &'s Store,
    /// The index directory, `None` if it is missing or not a directory.
    fd: Option<OwnedFd>,
    sets: &'s [RangeSet],
    pages: HashMap<(String, u64), Vec<u8>>,
    /// Whether the index described the directory when opened (or was rebuilt since).
    fresh: bool,
    /// Set when a file turned up that the index did not know: sealing then
    /// rebuilds instead, so no owner is left out.
    stale: bool,
    /// Set when an update failed: the index must not be sealed, so the next
    /// run rebuilds it.
    poisoned: bool,
    /// Which owner buckets exist (bit `b` for `owners-<b>`), as the stamp
    /// recorded them and updated since; `None` when not known (no valid
    /// stamp), and then every missing bucket counts as damage.
    present: Option<[u64; 4]>,
    /// How many times this process rebuilt the index (tests and benchmarks look).
    pub rebuilds: u32,
}

fn has_bucket(present: &[u64; 4], b: u64) -> bool {
    present[(b / 64) as usize] & (1 << (b % 64)) != 0
}

fn mark_bucket(present: &mut [u64; 4], b: u64) {
    present[(b / 64) as usize] |= 1 << (b % 64);
}

/// The stamp's last line: the existing buckets, as 64 hex digits.
fn buckets_line(present: &[u64; 4]) -> String {
    format!(
        "buckets {:016x}{:016x}{:016x}{:016x}\n",
        present[0], present[1], present[2], present[3]
    )
}

fn parse_buckets_line(rest: &str) -> Option<[u64; 4]> {
    let hex = rest.strip_prefix("buckets ")?.strip_suffix('\n')?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u64; 4];
    for (i, w) in out.iter_mut().enumerate() {
        *w = u64::from_str_radix(&hex[i * 16..(i + 1) * 16], 16).ok()?;
    }
    Some(out)
}

impl<'s> Index<'s> {
    /// Open the index, rebuilding it if it does not describe the directory.
    pub fn load(store: &'s Store, sets: &'s [RangeSet]) -> Result<Index<'s>> {
        let mut idx = Index::open(store, sets)?;
        idx.ensure_fresh()?;
        Ok(idx)
    }

    /// Open the index without rebuilding it; see [`Index::is_fresh`].
    pub fn open(store: &'s Store, sets: &'s [RangeSet]) -> Result<Index<'s>> {
        let fd = open_dir_at(store.fd(), INDEX_DIR).ok();
        let mut idx = Index {
            store,
            fd,
            sets,
            pages: HashMap::new(),
            fresh: false,
            stale: false,
            poisoned: false,
            present: None,
            rebuilds: 0,
        };
        if idx.fd.is_some() {
            let current = idx.stamp_now()?;
            let recorded = idx.dir().and_then(|d| read_at(d, STAMP).ok());
            idx.present = recorded
                .as_deref()
                .and_then(|r| r.strip_prefix(current.as_bytes()))
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(parse_buckets_line);
            idx.fresh = idx.present.is_some() && idx.bitmaps_present();
        }
        Ok(idx)
    }

    fn dir(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// The index directory, or an error saying it is missing.
    fn dir_or_err(&self) -> Result<BorrowedFd<'_>> {
        self.dir().ok_or_else(|| {
            Error::new(
                PLUGIN_FAILURE,
                format!("{}/{INDEX_DIR} is missing", self.store.dir().display()),
            )
        })
    }

    fn at(&self, name: &str) -> String {
        format!("{}/{INDEX_DIR}/{name}", self.store.dir().display())
    }

    /// Whether the index can be trusted to know every reservation.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Rebuild unless fresh.
    pub fn ensure_fresh(&mut self) -> Result<()> {
        if self.fresh {
            Ok(())
        } else {
            self.rebuild(None)
        }
    }

    /// An update failed after the files changed: log it, and leave the index
    /// unsealed so the next run rebuilds it from the files.
    pub fn poison(&mut self, e: &Error) {
        if !self.poisoned {
            log::warn!("index update failed ({}); it will be rebuilt", e.msg);
        }
        self.poisoned = true;
        self.fresh = false;
    }

    /// `a` turned out to be held although the index said it was free: note
    /// it, and rebuild at [`Index::seal`] to learn its owner. Never fails:
    /// an index that cannot be updated is poisoned instead.
    pub fn surprise(&mut self, a: IpAddr) {
        self.stale = true;
        if let Err(e) = self.set_bit(a, true) {
            self.poison(&e);
        }
    }

    fn bitmap_name(&self, set: usize, range: usize) -> Option<(String, u128)> {
        let r = self.sets.get(set)?.0.get(range)?;
        let size = r.size();
        (size <= MAX_BITMAP_ADDRS).then(|| (format!("bits-{}-{}", r.start, r.end), size))
    }

    fn bitmaps_present(&self) -> bool {
        let Some(dir) = self.dir() else {
            return false;
        };
        self.sets.iter().enumerate().all(|(si, s)| {
            (0..s.0.len()).all(|ri| match self.bitmap_name(si, ri) {
                Some((name, size)) => stat_at(dir, &name).ok().flatten().is_some_and(|st| {
                    kind(&st) == SFlag::S_IFREG
                        && u128::try_from(st.st_size).ok()
                            == Some(u128::from(BITMAP_BASE) + size.div_ceil(8))
                }),
                None => true,
            })
        })
    }

    /// What the directory looks like now; equal to the recorded stamp only
    /// if nobody but us changed it since, in this boot.
    fn stamp_now(&self) -> Result<String> {
        let d = self.store.fd();
        let m = nix::sys::stat::fstat(d)
            .map_err(|e| fail(format_args!("stat {}", self.store.dir().display()), e))?;
        let mut s = format!(
            "{HEADER}boot {}\ndir {} {} {} {}\n",
            boot_id(),
            m.st_ino,
            m.st_mtime,
            m.st_mtime_nsec,
            m.st_size
        );
        for i in 0..self.sets.len() {
            let name = format!("{LAST_RESERVED_PREFIX}{i}");
            match (stat_at(d, &name), read_at(d, &name)) {
                (Ok(Some(m)), Ok(c)) => s.push_str(&format!(
                    "last {i} {} {} {}\n",
                    m.st_mtime,
                    m.st_mtime_nsec,
                    String::from_utf8_lossy(&c).escape_default()
                )),
                _ => s.push_str(&format!("last {i} -\n")),
            }
        }
        Ok(s)
    }

    /// Mark the index as being changed: until [`Index::seal`] runs, any
    /// reader (including a later run of ours after a crash) rebuilds it.
    pub fn begin(&self) -> Result<()> {
        match self.dir() {
            Some(d) => unlink_at(d, STAMP)
                .map(|_| ())
                .map_err(|e| fail(format_args!("invalidate {}", self.at(STAMP)), e)),
            None => Ok(()),
        }
    }

    /// Record that the index describes the directory as it is now. A
    /// poisoned index stays unsealed.
    pub fn seal(&mut self) -> Result<()> {
        if self.poisoned {
            return Ok(());
        }
        if self.stale {
            self.stale = false;
            return self.rebuild(None);
        }
        let present = self.present.ok_or_else(|| {
            Error::new(
                PLUGIN_FAILURE,
                "internal: sealing an index whose buckets are unknown",
            )
        })?;
        let s = self.stamp_now()? + &buckets_line(&present);
        let d = self.dir_or_err()?;
        write_at(d, STAMP, s.as_bytes())
            .map_err(|e| fail(format_args!("write {}", self.at(STAMP)), e))?;
        self.fresh = true;
        Ok(())
    }

    /// Remove the index directory (or whatever is in its place: a link is
    /// unlinked, never followed), whatever someone put inside it.
    fn remove_dir(&mut self) -> Result<()> {
        self.fd = None;
        remove_tree(self.store.fd(), INDEX_DIR).map_err(|(path, e)| {
            fail(
                format_args!("remove {}/{path}", self.store.dir().display()),
                e,
            )
        })
    }

    /// Throw the index away and rebuild it from the address files (or from
    /// `scanned`, when the caller has just read them all).
    pub fn rebuild(&mut self, scanned: Option<Vec<(IpAddr, Owner)>>) -> Result<()> {
        self.rebuilds += 1;
        self.pages.clear();
        self.stale = false;
        self.poisoned = false;
        let all = match scanned {
            Some(s) => s,
            None => self.store.scan()?,
        };
        self.remove_dir()?;
        let top = self.store.fd();
        let what = format!("{}/{INDEX_DIR}", self.store.dir().display());
        nix::sys::stat::mkdirat(top, INDEX_DIR, Mode::from_bits_truncate(0o700))
            .map_err(|e| fail(format_args!("create {what}"), e))?;
        let fd = open_dir_at(top, INDEX_DIR).map_err(|e| fail(format_args!("open {what}"), e))?;
        self.fd = Some(fd);

        let mut buckets: BTreeMap<u64, String> = BTreeMap::new();
        for (a, o) in &all {
            if let Some(line) = entry_line(*a, o) {
                buckets.entry(bucket_of(&o.id)).or_default().push_str(&line);
            }
        }
        let mut present = [0u64; 4];
        for (b, lines) in buckets {
            self.write(&bucket_name(b), format!("{HEADER}{lines}").as_bytes())?;
            mark_bucket(&mut present, b);
        }
        self.present = Some(present);
        for (si, set) in self.sets.iter().enumerate() {
            for (ri, r) in set.0.iter().enumerate() {
                let Some((name, size)) = self.bitmap_name(si, ri) else {
                    continue;
                };
                // `size` is at most 2^24 here, so the cast is exact.
                let mut bits = BITMAP_HEADER.to_vec();
                bits.resize(BITMAP_HEADER.len() + size.div_ceil(8) as usize, 0);
                for (a, _) in &all {
                    if let Some(off) = r.offset_of(*a) {
                        bits[BITMAP_HEADER.len() + (off / 8) as usize] |= 1 << (off % 8);
                    }
                }
                self.write(&name, &bits)?;
            }
        }
        self.seal()
    }

    /// Write a whole index file (0600: it names containers).
    fn write(&self, name: &str, data: &[u8]) -> Result<()> {
        write_at(self.dir_or_err()?, name, data)
            .map_err(|e| fail(format_args!("write {}", self.at(name)), e))
    }

    /// The parsed bucket `b`: empty if the index knows it does not exist;
    /// `None` if it should exist and is missing, unreadable or damaged.
    fn read_bucket(&self, b: u64) -> Option<Vec<Entry>> {
        if self.present.is_some_and(|p| !has_bucket(&p, b)) {
            return Some(Vec::new());
        }
        let text = read_at(self.dir()?, &bucket_name(b)).ok()?;
        parse_bucket(&String::from_utf8_lossy(&text))
    }

    /// [`Index::read_bucket`], with a missing or damaged bucket an error.
    fn bucket(&self, b: u64) -> Result<Vec<Entry>> {
        self.read_bucket(b).ok_or_else(|| {
            Error::new(
                PLUGIN_FAILURE,
                format!("{} is missing or damaged", self.at(&bucket_name(b))),
            )
        })
    }

    /// Write bucket `b` and record that it exists.
    fn write_bucket(&mut self, b: u64, entries: &[Entry]) -> Result<()> {
        self.write(&bucket_name(b), bucket_text(entries).as_bytes())?;
        if let Some(p) = self.present.as_mut() {
            mark_bucket(p, b);
        }
        Ok(())
    }

    /// Every reservation the index records for container `id`.
    pub fn entries(&mut self, id: &str) -> Result<Vec<Entry>> {
        let b = bucket_of(id);
        let all = match self.read_bucket(b) {
            Some(all) => all,
            None => {
                log::warn!(
                    "index bucket {} is missing or damaged; rebuilding",
                    self.at(&bucket_name(b))
                );
                self.rebuild(None)?;
                self.bucket(b)?
            }
        };
        Ok(all
            .into_iter()
            .filter(|e| e.owner.id == id.trim())
            .collect())
    }

    /// Record a new reservation. Call between [`Index::begin`] and [`Index::seal`].
    pub fn add(&mut self, a: IpAddr, owner: &Owner) -> Result<()> {
        if entry_line(a, owner).is_some() {
            let b = bucket_of(&owner.id);
            let mut entries = self.bucket(b)?;
            entries.push(Entry {
                ip: a,
                owner: owner.clone(),
            });
            self.write_bucket(b, &entries)?;
        }
        self.set_bit(a, true)
    }

    /// Forget the reservations of `released` (all in the bucket of `id`).
    pub fn remove(&mut self, id: &str, released: &[IpAddr]) -> Result<()> {
        if released.is_empty() {
            return Ok(());
        }
        let b = bucket_of(id);
        let kept: Vec<Entry> = self
            .bucket(b)?
            .into_iter()
            .filter(|e| !(e.owner.id == id.trim() && released.contains(&e.ip)))
            .collect();
        // An emptied bucket stays, header only: it is still listed as present.
        self.write_bucket(b, &kept)?;
        for a in released {
            self.set_bit(*a, false)?;
        }
        Ok(())
    }

    /// Where `a`'s bit lives: bitmap file name and bit offset.
    fn locate(&self, a: IpAddr) -> Option<(String, u128)> {
        self.sets.iter().enumerate().find_map(|(si, s)| {
            let (ri, r) = s.range_for(a)?;
            let (name, _) = self.bitmap_name(si, ri)?;
            Some((name, r.offset_of(a)?))
        })
    }

    /// Whether the index believes `a` is held. `false` when it has no bitmap
    /// for `a`'s range: the caller then simply tries the address.
    pub fn maybe_held(&mut self, a: IpAddr) -> Result<bool> {
        let Some((name, off)) = self.locate(a) else {
            return Ok(false);
        };
        let byte = BITMAP_BASE + (off / 8) as u64;
        let page = byte / PAGE;
        let key = (name, page);
        if !self.pages.contains_key(&key) {
            let f = open_at(self.dir_or_err()?, &key.0, OFlag::O_RDONLY, 0)
                .map_err(|e| fail(format_args!("open {}", self.at(&key.0)), e))?;
            let mut buf = vec![0u8; PAGE as usize];
            let n = f
                .read_at(&mut buf, page * PAGE)
                .map_err(|e| fail(format_args!("read {}", self.at(&key.0)), io_errno(e)))?;
            buf.truncate(n);
            self.pages.insert(key.clone(), buf);
        }
        let bit = self
            .pages
            .get(&key)
            .and_then(|p| p.get((byte % PAGE) as usize))
            .is_some_and(|b| b & (1 << (off % 8)) != 0);
        Ok(bit)
    }

    /// Set or clear `a`'s bit (no-op without a bitmap for its range).
    pub fn set_bit(&mut self, a: IpAddr, held: bool) -> Result<()> {
        let Some((name, off)) = self.locate(a) else {
            return Ok(());
        };
        let byte = BITMAP_BASE + (off / 8) as u64;
        let mask = 1u8 << (off % 8);
        let f = open_at(self.dir_or_err()?, &name, OFlag::O_RDWR, 0)
            .map_err(|e| fail(format_args!("open {}", self.at(&name)), e))?;
        let mut cur = [0u8; 1];
        f.read_exact_at(&mut cur, byte)
            .map_err(|e| fail(format_args!("read {}", self.at(&name)), io_errno(e)))?;
        let new = if held { cur[0] | mask } else { cur[0] & !mask };
        f.write_all_at(&[new], byte)
            .map_err(|e| fail(format_args!("write {}", self.at(&name)), io_errno(e)))?;
        if let Some(p) = self.pages.get_mut(&(name, byte / PAGE)) {
            if let Some(b) = p.get_mut((byte % PAGE) as usize) {
                *b = new;
            }
        }
        Ok(())
    }
}

/// Remove `name` in `parent` and, if it is a directory, everything in it,
/// descending only through descriptors opened `O_NOFOLLOW`, so a link is
/// removed and never followed. The error names the path below `parent`.
fn remove_tree(parent: BorrowedFd<'_>, name: &str) -> std::result::Result<(), (String, Errno)> {
    let Some(st) = stat_at(parent, name).map_err(|e| (name.to_string(), e))? else {
        return Ok(());
    };
    if kind(&st) == SFlag::S_IFDIR {
        let dir = open_dir_at(parent, name).map_err(|e| (name.to_string(), e))?;
        for (child, _) in list_at(dir.as_fd()).map_err(|e| (name.to_string(), e))? {
            remove_tree(dir.as_fd(), &child).map_err(|(p, e)| (format!("{name}/{p}"), e))?;
        }
        match nix::unistd::unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err((name.to_string(), e)),
        }
    } else {
        unlink_at(parent, name)
            .map(|_| ())
            .map_err(|e| (name.to_string(), e))
    }
}

/// A bucket file's text for `entries` (those that can be stored).
fn bucket_text(entries: &[Entry]) -> String {
    let mut out = HEADER.to_string();
    for e in entries {
        out.push_str(&entry_line(e.ip, &e.owner).unwrap_or_default());
    }
    out
}

/// `"<ip> <id> [<ifname>]\n"`, or `None` if the owner cannot be stored
/// (such a file can match no valid request anyway).
fn entry_line(a: IpAddr, o: &Owner) -> Option<String> {
    if !storable(&o.id) {
        return None;
    }
    match &o.ifname {
        Some(i) if storable(i) => Some(format!("{} {} {}\n", ip::file_name(a), o.id, i)),
        Some(_) => None,
        None => Some(format!("{} {}\n", ip::file_name(a), o.id)),
    }
}

/// A bucket's entries; `None` if it is damaged.
fn parse_bucket(text: &str) -> Option<Vec<Entry>> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    if lines.next() != HEADER.strip_suffix('\n') {
        return None;
    }
    for line in lines {
        let mut f = line.split(' ');
        let a = ip::parse_ip(f.next()?).ok()?;
        let id = f.next()?.to_string();
        let ifname = f.next().map(str::to_string);
        if f.next().is_some() {
            return None;
        }
        out.push(Entry {
            ip: a,
            owner: Owner { id, ifname },
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::RangeConf;
    use std::fs;
    use std::path::PathBuf;

    fn set(subnet: &str) -> RangeSet {
        RangeSet::from_conf(
            &[RangeConf {
                subnet: Some(subnet.into()),
                ..Default::default()
            }],
            "s",
        )
        .unwrap()
    }

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("hl-index-{tag}-{}", std::process::id()));
        let _ignored = fs::remove_dir_all(&p);
        p
    }

    /// The bucket file holding `id`'s entries in the index of network `n` under `d`.
    fn bucket_file(d: &std::path::Path, id: &str) -> PathBuf {
        d.join("n").join(INDEX_DIR).join(bucket_name(bucket_of(id)))
    }

    #[test]
    fn index_files_never_match_a_reference_del() {
        // The reference compares TrimSpace(content) with "id\r\nifname" and "id";
        // container IDs start with a letter or digit.
        assert!(HEADER.trim_start().starts_with('#'));
        let o = Owner {
            id: "c1".into(),
            ifname: Some("eth0".into()),
        };
        assert_eq!(
            entry_line("10.0.0.2".parse().unwrap(), &o).unwrap(),
            "10.0.0.2 c1 eth0\n"
        );
        assert_eq!(
            entry_line(
                "10.0.0.2".parse().unwrap(),
                &Owner {
                    id: "a b".into(),
                    ifname: None
                }
            ),
            None
        );
    }

    #[test]
    fn rebuilds_when_someone_else_writes() {
        let d = tmp("stamp");
        let sets = vec![set("10.1.0.0/24")];
        let s = Store::open(&d, "n").unwrap();
        {
            let idx = Index::load(&s, &sets).unwrap();
            assert_eq!(idx.rebuilds, 1);
        }
        assert_eq!(Index::load(&s, &sets).unwrap().rebuilds, 0);
        // A file written behind the index's back, as the reference would.
        let a: IpAddr = "10.1.0.7".parse().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(d.join("n/10.1.0.7"), "ref\r\neth0").unwrap();
        fs::write(d.join("n/last_reserved_ip.0"), "10.1.0.7").unwrap();
        let mut idx = Index::load(&s, &sets).unwrap();
        assert_eq!(idx.rebuilds, 1);
        assert!(idx.maybe_held(a).unwrap());
        assert!(!idx.maybe_held("10.1.0.8".parse().unwrap()).unwrap());
        let e = idx.entries("ref").unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].ip, a);
        // A damaged bucket is rebuilt, not trusted.
        fs::write(bucket_file(&d, "ref"), "garbage").unwrap();
        assert_eq!(idx.entries("ref").unwrap().len(), 1);
        assert_eq!(idx.rebuilds, 2);
        drop(idx);
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn add_remove_and_bits() {
        let d = tmp("bits");
        let sets = vec![set("10.2.0.0/16"), set("fd00::/64")];
        let s = Store::open(&d, "n").unwrap();
        let mut idx = Index::load(&s, &sets).unwrap();
        let o = Owner {
            id: "c1".into(),
            ifname: Some("eth0".into()),
        };
        let a: IpAddr = "10.2.200.9".parse().unwrap();
        let b: IpAddr = "fd00::9".parse().unwrap();
        idx.begin().unwrap();
        idx.add(a, &o).unwrap();
        idx.add(b, &o).unwrap();
        idx.seal().unwrap();
        assert!(idx.maybe_held(a).unwrap());
        // No bitmap for a /64: never "maybe held".
        assert!(!idx.maybe_held(b).unwrap());
        assert_eq!(idx.entries("c1").unwrap().len(), 2);
        assert!(idx.entries("c2").unwrap().is_empty());
        idx.remove("c1", &[a]).unwrap();
        assert!(!idx.maybe_held(a).unwrap());
        assert_eq!(idx.entries("c1").unwrap().len(), 1);
        idx.remove("c1", &[b]).unwrap();
        // The bucket stays, empty: only a damaged index lacks one.
        assert!(idx.entries("c1").unwrap().is_empty());
        assert!(bucket_file(&d, "c1").is_file());
        drop(idx);
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_stamp_from_another_boot_is_stale() {
        let d = tmp("boot");
        let sets = vec![set("10.3.0.0/24")];
        let s = Store::open(&d, "n").unwrap();
        let idx = Index::load(&s, &sets).unwrap();
        let boot = fs::read_to_string(BOOT_ID).unwrap();
        assert!(idx
            .stamp_now()
            .unwrap()
            .contains(&format!("boot {}\n", boot.trim())));
        drop(idx);
        assert!(Index::open(&s, &sets).unwrap().is_fresh());
        // What a stamp written before a crash of the machine looks like.
        let stamp = d.join("n").join(INDEX_DIR).join(STAMP);
        let text = fs::read_to_string(&stamp).unwrap();
        fs::write(&stamp, text.replace(boot.trim(), "another-boot")).unwrap();
        assert!(!Index::open(&s, &sets).unwrap().is_fresh());
        let mut p = [0u64; 4];
        p[1] = 5;
        p[3] = 1 << 63;
        assert_eq!(parse_buckets_line(&buckets_line(&p)), Some(p));
        assert_eq!(parse_buckets_line("buckets 12\n"), None);
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }
}
