//! The index as a cache: it is rebuilt once after someone else wrote the
//! directory, then used without scanning; it is never trusted over the files.

use host_local::config::Config;
use host_local::index::{Index, INDEX_DIR};
use host_local::range::{RangeConf, RangeSet};
use host_local::store::Store;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

fn setup(tag: &str) -> (PathBuf, Config) {
    let dir = std::env::temp_dir().join(format!("hl-idx-{tag}-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    let set = RangeSet::from_conf(
        &[RangeConf {
            subnet: Some("10.60.0.0/16".into()),
            ..Default::default()
        }],
        "ipam.ranges[0]",
    )
    .unwrap();
    let cfg = Config {
        name: "big".into(),
        data_dir: dir.clone(),
        range_sets: vec![set],
        requested: vec![None],
        routes: Vec::new(),
        dns: Default::default(),
    };
    (dir, cfg)
}

/// Write reservations as the reference would: `n` files from 10.60.0.2 on.
fn populate(dir: &std::path::Path, n: u32) {
    let net = dir.join("big");
    fs::create_dir_all(&net).unwrap();
    for i in 0..n {
        let a = IpAddr::from(std::net::Ipv4Addr::from(
            u32::from(std::net::Ipv4Addr::new(10, 60, 0, 2)) + i,
        ));
        fs::write(net.join(a.to_string()), format!("pre{i}\r\neth0")).unwrap();
    }
}

/// A file in the index directory that any rebuild deletes.
fn marker(dir: &std::path::Path) -> PathBuf {
    dir.join("big").join(INDEX_DIR).join("marker")
}

#[test]
fn rebuilt_once_then_used_without_scanning() {
    let (dir, cfg) = setup("once");
    populate(&dir, 3000);
    // No last_reserved file: the reference would try 3000 taken addresses.
    let r = host_local::allocate(&cfg, "new1", "eth0").unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.60.11.186/16");
    fs::write(marker(&dir), "#").unwrap();
    host_local::release(&cfg, "new1", "eth0", &[]).unwrap();
    let r = host_local::allocate(&cfg, "new2", "eth0").unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.60.11.187/16");
    host_local::release(&cfg, "pre5", "eth0", &[]).unwrap();
    assert!(!dir.join("big/10.60.0.7").exists());
    host_local::check(&cfg, "pre6", "eth0", None).unwrap();
    assert!(marker(&dir).exists(), "no rebuild on the common path");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn foreign_writes_are_seen_and_prev_result_avoids_a_scan() {
    let (dir, cfg) = setup("foreign");
    populate(&dir, 10);
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    fs::write(marker(&dir), "#").unwrap();
    // The reference allocates behind our back.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let net = dir.join("big");
    fs::write(net.join("10.60.0.100"), "ext\r\neth0").unwrap();
    fs::write(net.join("last_reserved_ip.0"), "10.60.0.100").unwrap();
    // DEL with the runtime's prevResult releases it without a rebuild.
    let hint: IpAddr = "10.60.0.100".parse().unwrap();
    assert_eq!(
        host_local::release(&cfg, "ext", "eth0", &[hint]).unwrap(),
        [hint]
    );
    assert!(!net.join("10.60.0.100").exists());
    assert!(marker(&dir).exists());
    // Another foreign reservation; the next ADD rebuilds and so refuses a duplicate.
    fs::write(net.join("10.60.0.101"), "ext2\r\neth0").unwrap();
    let e = host_local::allocate(&cfg, "ext2", "eth0").unwrap_err();
    assert_eq!(e.code, host_local::ERR_DUPLICATE);
    assert!(!marker(&dir).exists(), "rebuilt after a foreign write");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_wrong_index_is_never_trusted() {
    let (dir, cfg) = setup("wrong");
    populate(&dir, 10);
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    let net = dir.join("big");
    // Someone rewrote a's file to another owner (without touching anything
    // the stamp sees): DEL must not delete what is no longer a's.
    let a_ip = fs::read_to_string(net.join("last_reserved_ip.0")).unwrap();
    fs::write(net.join(&a_ip), "other\r\neth0").unwrap();
    host_local::release(&cfg, "a", "eth0", &[]).unwrap();
    assert_eq!(
        fs::read_to_string(net.join(&a_ip)).unwrap(),
        "other\r\neth0"
    );
    host_local::release(&cfg, "other", "eth0", &[]).unwrap();
    assert!(!net.join(&a_ip).exists());
    // Deleting the whole index is harmless.
    fs::remove_dir_all(net.join(INDEX_DIR)).unwrap();
    host_local::release(&cfg, "pre3", "eth0", &[]).unwrap();
    assert!(!net.join("10.60.0.5").exists());
    let store = Store::open(&dir, "big").unwrap();
    assert!(Index::open(&store, &cfg.range_sets).unwrap().is_fresh());
    drop(store);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reservation_hidden_from_the_stamp_is_still_released_by_prev_result() {
    use std::os::unix::fs::MetadataExt;
    let (dir, cfg) = setup("hidden");
    populate(&dir, 10);
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    let net = dir.join("big");
    let before = fs::metadata(&net).unwrap();
    // Another host-local reserves an address for container "b" within the
    // same clock tick as our last index update: simulate it by putting the
    // directory's times back, so the stamp still matches.
    fs::write(net.join("10.60.0.200"), "b\r\neth0").unwrap();
    let t = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &net,
        &t(before.atime(), before.atime_nsec()),
        &t(before.mtime(), before.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    let store = Store::open(&dir, "big").unwrap();
    assert!(Index::open(&store, &cfg.range_sets).unwrap().is_fresh());
    drop(store);
    // The index knows nothing of b; its DEL carries prevResult's address.
    let ip: IpAddr = "10.60.0.200".parse().unwrap();
    let released = host_local::release(&cfg, "b", "eth0", &[ip]).unwrap();
    assert_eq!(released, vec![ip]);
    assert!(!net.join("10.60.0.200").exists());
    fs::remove_dir_all(&dir).unwrap();
}

/// The network directory's times put back as they were, so that the index's
/// stamp still matches after a change made behind its back.
fn restore_times(net: &std::path::Path, before: &fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    let t = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        net,
        &t(before.atime(), before.atime_nsec()),
        &t(before.mtime(), before.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
}

/// The files of `net`'s index whose name starts with `prefix`.
fn index_files(net: &std::path::Path, prefix: &str) -> Vec<PathBuf> {
    fs::read_dir(net.join(INDEX_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

/// A config with one small range set.
fn small(tag: &str, subnet: &str) -> (PathBuf, Config) {
    let (dir, mut cfg) = setup(tag);
    cfg.range_sets = vec![RangeSet::from_conf(
        &[RangeConf {
            subnet: Some(subnet.into()),
            ..Default::default()
        }],
        "ipam.ranges[0]",
    )
    .unwrap()];
    (dir, cfg)
}

#[test]
fn a_missing_bucket_is_not_read_as_empty() {
    let (dir, cfg) = setup("bucket-gone");
    populate(&dir, 10);
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    let net = dir.join("big");
    let a_ip = fs::read_to_string(net.join("last_reserved_ip.0")).unwrap();
    // Every owners file goes; the stamp (which sees only the network
    // directory and the cursors) still matches.
    for p in index_files(&net, "owners-") {
        fs::remove_file(p).unwrap();
    }
    // DEL without prevResult must still find and release a's address.
    let released = host_local::release(&cfg, "a", "eth0", &[]).unwrap();
    assert_eq!(released, [a_ip.parse::<IpAddr>().unwrap()]);
    assert!(!net.join(&a_ip).exists());
    // And a second ADD of a pre-existing holder is still a duplicate.
    for p in index_files(&net, "owners-") {
        fs::remove_file(p).unwrap();
    }
    let e = host_local::allocate(&cfg, "pre3", "eth0").unwrap_err();
    assert_eq!(e.code, host_local::ERR_DUPLICATE);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn status_follows_the_files_not_stale_bits() {
    let (dir, cfg) = small("status-stale", "10.61.0.0/30");
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    assert_eq!(host_local::status(&cfg).unwrap_err().code, 50);
    // The only reservation goes behind the index's back; its bit stays set.
    let net = dir.join("big");
    let before = fs::metadata(&net).unwrap();
    fs::remove_file(net.join("10.61.0.2")).unwrap();
    restore_times(&net, &before);
    host_local::status(&cfg).unwrap();
    // And ADD finds it too.
    let r = host_local::allocate(&cfg, "b", "eth0").unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.61.0.2/30");
    fs::remove_dir_all(&dir).unwrap();
}

/// `chattr +i` on a file for the guard's lifetime: root can read it but
/// not open it for writing.
struct Immutable(PathBuf);

impl Immutable {
    fn set(p: PathBuf) -> Immutable {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&p)
            .status()
            .expect("chattr (e2fsprogs) is needed by this test");
        assert!(
            ok.success(),
            "chattr +i {}: the test needs ext4-like attributes",
            p.display()
        );
        Immutable(p)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let ok = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            eprintln!("chattr -i {} failed", self.0.display());
        }
    }
}

#[test]
fn an_index_failure_after_reserving_does_not_fail_the_add() {
    let (dir, cfg) = small("bits-fail", "10.62.0.0/30");
    host_local::allocate(&cfg, "a", "eth0").unwrap();
    let net = dir.join("big");
    let before = fs::metadata(&net).unwrap();
    fs::remove_file(net.join("10.62.0.2")).unwrap();
    restore_times(&net, &before);
    // The bit of 10.62.0.2 is stale (set, file gone): the search skips it,
    // then tries it for real, reserves it and must update the bitmap, which
    // cannot be written.
    let bits = index_files(&net, "bits-").remove(0);
    let guard = Immutable::set(bits);
    let r = host_local::allocate(&cfg, "b", "eth0");
    drop(guard);
    // The index is a cache: once the address is reserved, its failure is
    // logged and the index left to be rebuilt, never an ADD error (which
    // would hold an address the runtime does not know about).
    let r = r.unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.62.0.2/30");
    assert_eq!(fs::read(net.join("10.62.0.2")).unwrap(), b"b\r\neth0");
    // The index is right again afterwards.
    host_local::release(&cfg, "b", "eth0", &[]).unwrap();
    assert!(!net.join("10.62.0.2").exists());
    fs::remove_dir_all(&dir).unwrap();
}
