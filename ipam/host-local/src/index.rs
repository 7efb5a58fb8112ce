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
//! * the stamp records the network directory's inode, mtime and size and the
//!   content and mtime of every `last_reserved_ip.N`. Any reservation made by
//!   someone else (the reference binary, an operator) creates a file, which
//!   changes the directory's mtime, and a reference ADD rewrites
//!   `last_reserved_ip.N`; on any difference the index is rebuilt from a scan.
//!   A mutation first deletes the stamp and writes it back when done, so a
//!   crash in between also forces a rebuild;
//! * a "held" bit only lets an address be skipped; before reporting a range
//!   set exhausted, the caller re-checks the files themselves.
//!
//! The reference's DEL reads every regular file under the network directory,
//! subdirectories included, and deletes those whose trimmed content equals
//! `id\r\nifname` or `id`. Every index file, bitmaps included, starts with
//! `#`, and a container ID starts with a letter or digit, so no index file can
//! ever match; and if one is deleted, the index is simply rebuilt.

use crate::ip;
use crate::range::RangeSet;
use crate::store::{Owner, Store, LAST_RESERVED_PREFIX};
use cni::error::PLUGIN_FAILURE;
use cni::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The index directory's name inside the network directory.
pub const INDEX_DIR: &str = ".host-local-index";
const STAMP: &str = "stamp";
const HEADER: &str =
    "# host-local index v1: a cache rebuilt from the address files; safe to delete\n";
const BUCKETS: u64 = 256;
/// Ranges up to this many addresses get a bitmap (2 MiB at most); larger
/// ones (IPv6 /64s) are so sparsely used that probing finds a free address
/// at once.
const MAX_BITMAP_ADDRS: u128 = 1 << 24;
const PAGE: u64 = 4096;
/// Bitmaps start with this, so their content can never look like a container ID.
const BITMAP_HEADER: &[u8; 8] = b"#bitmap\n";
const BITMAP_BASE: u64 = BITMAP_HEADER.len() as u64;

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

fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::new(PLUGIN_FAILURE, format!("{what}: {e}"))
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

/// The index of one locked network directory.
pub struct Index<'s> {
    store: &'s Store,
    dir: PathBuf,
    sets: &'s [RangeSet],
    pages: HashMap<(PathBuf, u64), Vec<u8>>,
    /// Whether the index described the directory when opened (or was rebuilt since).
    fresh: bool,
    /// Set when a file turned up that the index did not know: sealing then
    /// rebuilds instead, so no owner is left out.
    stale: bool,
    /// How many times this process rebuilt the index (tests and benchmarks look).
    pub rebuilds: u32,
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
        let mut idx = Index {
            store,
            dir: store.dir().join(INDEX_DIR),
            sets,
            pages: HashMap::new(),
            fresh: false,
            stale: false,
            rebuilds: 0,
        };
        let current = idx.stamp_now()?;
        let recorded = fs::read_to_string(idx.dir.join(STAMP)).ok();
        idx.fresh = recorded.as_deref() == Some(current.as_str()) && idx.bitmaps_present();
        Ok(idx)
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

    /// The range sets the index covers.
    pub fn range_set(&self, i: usize) -> Option<&RangeSet> {
        self.sets.get(i)
    }

    /// `a` turned out to be held although the index said it was free: note
    /// it, and rebuild at [`Index::seal`] to learn its owner.
    pub fn surprise(&mut self, a: IpAddr) -> Result<()> {
        self.stale = true;
        self.set_bit(a, true)
    }

    fn bitmap_path(&self, set: usize, range: usize) -> Option<(PathBuf, u128)> {
        let r = self.sets.get(set)?.0.get(range)?;
        let size = r.size();
        (size <= MAX_BITMAP_ADDRS)
            .then(|| (self.dir.join(format!("bits-{}-{}", r.start, r.end)), size))
    }

    fn bitmaps_present(&self) -> bool {
        self.sets.iter().enumerate().all(|(si, s)| {
            (0..s.0.len()).all(|ri| match self.bitmap_path(si, ri) {
                Some((p, size)) => fs::metadata(p).is_ok_and(|m| {
                    u128::from(m.len()) == u128::from(BITMAP_BASE) + size.div_ceil(8)
                }),
                None => true,
            })
        })
    }

    /// What the directory looks like now; equal to the recorded stamp only
    /// if nobody but us changed it since.
    fn stamp_now(&self) -> Result<String> {
        let d = self.store.dir();
        let m = fs::metadata(d).map_err(|e| fail(format_args!("stat {}", d.display()), e))?;
        let mut s = format!(
            "{HEADER}dir {} {} {} {}\n",
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.size()
        );
        for i in 0..self.sets.len() {
            let p = d.join(format!("{LAST_RESERVED_PREFIX}{i}"));
            match (fs::metadata(&p), fs::read(&p)) {
                (Ok(m), Ok(c)) => s.push_str(&format!(
                    "last {i} {} {} {}\n",
                    m.mtime(),
                    m.mtime_nsec(),
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
        match fs::remove_file(self.dir.join(STAMP)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fail("invalidate index stamp", e)),
        }
    }

    /// Record that the index describes the directory as it is now.
    pub fn seal(&mut self) -> Result<()> {
        if self.stale {
            self.stale = false;
            return self.rebuild(None);
        }
        let s = self.stamp_now()?;
        write_file(&self.dir.join(STAMP), s.as_bytes())?;
        self.fresh = true;
        Ok(())
    }

    /// Throw the index away and rebuild it from the address files (or from
    /// `scanned`, when the caller has just read them all).
    pub fn rebuild(&mut self, scanned: Option<Vec<(IpAddr, Owner)>>) -> Result<()> {
        self.rebuilds += 1;
        self.pages.clear();
        self.stale = false;
        let all = match scanned {
            Some(s) => s,
            None => self.store.scan()?,
        };
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(fail(format_args!("remove {}", self.dir.display()), e)),
        }
        fs::create_dir(&self.dir)
            .map_err(|e| fail(format_args!("create {}", self.dir.display()), e))?;

        let mut buckets: BTreeMap<u64, String> = BTreeMap::new();
        for (a, o) in &all {
            if let Some(line) = entry_line(*a, o) {
                buckets.entry(bucket_of(&o.id)).or_default().push_str(&line);
            }
        }
        for (b, lines) in buckets {
            write_file(&self.bucket_path(b), format!("{HEADER}{lines}").as_bytes())?;
        }
        for (si, set) in self.sets.iter().enumerate() {
            for (ri, r) in set.0.iter().enumerate() {
                let Some((path, size)) = self.bitmap_path(si, ri) else {
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
                write_file(&path, &bits)?;
            }
        }
        self.seal()
    }

    fn bucket_path(&self, b: u64) -> PathBuf {
        self.dir.join(format!("owners-{b:02x}"))
    }

    /// Every reservation the index records for container `id`.
    pub fn entries(&mut self, id: &str) -> Result<Vec<Entry>> {
        let path = self.bucket_path(bucket_of(id));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fail(format_args!("read {}", path.display()), e)),
        };
        match parse_bucket(&text) {
            Some(all) => Ok(all
                .into_iter()
                .filter(|e| e.owner.id == id.trim())
                .collect()),
            None => {
                log::warn!("index bucket {} is damaged; rebuilding", path.display());
                self.rebuild(None)?;
                self.entries_no_rebuild(id)
            }
        }
    }

    fn entries_no_rebuild(&self, id: &str) -> Result<Vec<Entry>> {
        let path = self.bucket_path(bucket_of(id));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fail(format_args!("read {}", path.display()), e)),
        };
        Ok(parse_bucket(&text)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.owner.id == id.trim())
            .collect())
    }

    /// Record a new reservation. Call between [`Index::begin`] and [`Index::seal`].
    pub fn add(&mut self, a: IpAddr, owner: &Owner) -> Result<()> {
        if let Some(line) = entry_line(a, owner) {
            let path = self.bucket_path(bucket_of(&owner.id));
            let mut text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => HEADER.to_string(),
                Err(e) => return Err(fail(format_args!("read {}", path.display()), e)),
            };
            text.push_str(&line);
            write_file(&path, text.as_bytes())?;
        }
        self.set_bit(a, true)
    }

    /// Forget the reservations of `released` (all in the bucket of `id`).
    pub fn remove(&mut self, id: &str, released: &[IpAddr]) -> Result<()> {
        if released.is_empty() {
            return Ok(());
        }
        let path = self.bucket_path(bucket_of(id));
        if let Ok(text) = fs::read_to_string(&path) {
            let kept: Vec<Entry> = parse_bucket(&text)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| !(e.owner.id == id.trim() && released.contains(&e.ip)))
                .collect();
            if kept.is_empty() {
                fs::remove_file(&path)
                    .map_err(|e| fail(format_args!("remove {}", path.display()), e))?;
            } else {
                let mut out = HEADER.to_string();
                for e in &kept {
                    out.push_str(&entry_line(e.ip, &e.owner).unwrap_or_default());
                }
                write_file(&path, out.as_bytes())?;
            }
        }
        for a in released {
            self.set_bit(*a, false)?;
        }
        Ok(())
    }

    /// Where `a`'s bit lives: bitmap file and bit offset.
    fn locate(&self, a: IpAddr) -> Option<(PathBuf, u128)> {
        self.sets.iter().enumerate().find_map(|(si, s)| {
            let (ri, r) = s.range_for(a)?;
            let (path, _) = self.bitmap_path(si, ri)?;
            Some((path, r.offset_of(a)?))
        })
    }

    /// Whether the index believes `a` is held. `false` when it has no bitmap
    /// for `a`'s range: the caller then simply tries the address.
    pub fn maybe_held(&mut self, a: IpAddr) -> Result<bool> {
        let Some((path, off)) = self.locate(a) else {
            return Ok(false);
        };
        let byte = BITMAP_BASE + (off / 8) as u64;
        let page = byte / PAGE;
        let key = (path, page);
        if !self.pages.contains_key(&key) {
            let f = fs::File::open(&key.0)
                .map_err(|e| fail(format_args!("open {}", key.0.display()), e))?;
            let mut buf = vec![0u8; PAGE as usize];
            let n = f
                .read_at(&mut buf, page * PAGE)
                .map_err(|e| fail(format_args!("read {}", key.0.display()), e))?;
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
        let Some((path, off)) = self.locate(a) else {
            return Ok(());
        };
        let byte = BITMAP_BASE + (off / 8) as u64;
        let mask = 1u8 << (off % 8);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| fail(format_args!("open {}", path.display()), e))?;
        let mut cur = [0u8; 1];
        f.read_exact_at(&mut cur, byte)
            .map_err(|e| fail(format_args!("read {}", path.display()), e))?;
        let new = if held { cur[0] | mask } else { cur[0] & !mask };
        f.write_all_at(&[new], byte)
            .map_err(|e| fail(format_args!("write {}", path.display()), e))?;
        if let Some(p) = self.pages.get_mut(&(path, byte / PAGE)) {
            if let Some(b) = p.get_mut((byte % PAGE) as usize) {
                *b = new;
            }
        }
        Ok(())
    }
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

/// Write a whole index file (0600: it names containers).
fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| fail(format_args!("write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::RangeConf;

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
        fs::write(idx.bucket_path(bucket_of("ref")), "garbage").unwrap();
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
        assert!(!idx.bucket_path(bucket_of("c1")).exists());
        drop(idx);
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }
}
