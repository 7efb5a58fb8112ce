//! The store against what can be found in a network directory: files a
//! crashed host-local left, and symbolic links someone planted. Nothing is
//! ever followed, written or deleted through a link, and a reservation file
//! is complete or absent.

mod common;

use common::{ours, reservations, wait, Call, TempDir};
use std::fs;
use std::os::unix::fs::symlink;
use std::process::Command;
use std::time::Duration;

fn conf(dir: &TempDir, ipam: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"n1","type":"bridge",
            "ipam":{{"type":"host-local","dataDir":"{}",{ipam}}}}}"#,
        dir.path().display()
    )
}

const ONE: &str = r#""ranges":[[{"subnet":"10.9.0.0/24"}]]"#;

fn gc_keep(dir: &TempDir, keep: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"n1","ipam":{{"type":"host-local","dataDir":"{}",{ONE}}},"cni.dev/valid-attachments":{keep}}}"#,
        dir.path().display()
    )
}

/// A file outside the data directory that a followed link would change.
fn victim(dir: &TempDir, name: &str, content: &str) -> std::path::PathBuf {
    let outside = dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let p = outside.join(name);
    fs::write(&p, content).unwrap();
    p
}

#[test]
fn a_network_directory_that_is_a_symlink_is_refused() {
    let d = TempDir::new("netdir-link");
    let c = conf(&d, ONE);
    let target = d.path().join("elsewhere");
    fs::create_dir_all(&target).unwrap();
    symlink(&target, d.net("n1")).unwrap();
    let gc = gc_keep(&d, "[]");
    for verb in ["ADD", "DEL", "CHECK", "GC"] {
        let o = if verb == "GC" {
            Call::new(ours(), verb, "", &gc).run()
        } else {
            Call::new(ours(), verb, "c1", &c).run()
        };
        assert_eq!(o.code(), 100, "{verb}: {}", o.stdout);
        assert!(
            o.msg().contains("symbolic link") && o.msg().contains("n1"),
            "{verb}: {}",
            o.msg()
        );
    }
    let o = Call::new(ours(), "STATUS", "", &c).run();
    assert_eq!(o.code(), 50, "{}", o.stdout);
    assert!(o.msg().contains("symbolic link"), "{}", o.msg());
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[test]
fn cursor_and_lock_links_are_not_followed() {
    let d = TempDir::new("file-links");
    let c = conf(&d, ONE);
    let net = d.net("n1");
    fs::create_dir_all(&net).unwrap();
    let cursor_victim = victim(&d, "cursor", "keep");
    symlink(&cursor_victim, net.join("last_reserved_ip.0")).unwrap();
    let o = Call::new(ours(), "ADD", "c1", &c).run();
    assert_eq!(o.code(), 100, "{}", o.stdout);
    assert!(o.msg().contains("last_reserved_ip.0"), "{}", o.msg());
    assert_eq!(fs::read_to_string(&cursor_victim).unwrap(), "keep");
    assert!(reservations(&net).is_empty(), "a failed ADD keeps nothing");

    fs::remove_file(net.join("last_reserved_ip.0")).unwrap();
    fs::remove_file(net.join("lock")).unwrap();
    let lock_victim = d.path().join("outside/lock-target");
    symlink(&lock_victim, net.join("lock")).unwrap();
    let o = Call::new(ours(), "ADD", "c1", &c).run();
    assert_eq!(o.code(), 100, "{}", o.stdout);
    assert!(o.msg().contains("lock"), "{}", o.msg());
    assert!(
        !lock_victim.exists(),
        "the lock was created through the link"
    );
}

#[test]
fn index_links_are_not_followed() {
    let d = TempDir::new("index-links");
    let c = conf(&d, ONE);
    assert!(Call::new(ours(), "ADD", "c1", &c).run().ok);
    let idx = d.net("n1").join(".host-local-index");
    // Every index file but the stamp becomes a link to a copy of itself
    // outside: the index still looks right, and a write through a link
    // would change the copy.
    let mut victims = Vec::new();
    for e in fs::read_dir(&idx).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == "stamp" {
            continue;
        }
        let content = fs::read(&p).unwrap();
        let v = victim(&d, &name, "");
        fs::write(&v, &content).unwrap();
        fs::remove_file(&p).unwrap();
        symlink(&v, &p).unwrap();
        victims.push((v, content));
    }
    assert!(victims.len() >= 2, "a bucket and a bitmap at least");
    assert_eq!(Call::new(ours(), "ADD", "c2", &c).run().ips(), ["10.9.0.3"]);
    assert!(Call::new(ours(), "DEL", "c1", &c).run().ok);
    assert!(Call::new(ours(), "CHECK", "c2", &c).run().ok);
    for (v, content) in &victims {
        assert_eq!(&fs::read(v).unwrap(), content, "{}", v.display());
    }
    assert_eq!(reservations(&d.net("n1")), ["10.9.0.3"]);
    // Directories and links planted inside the index: a rebuild removes
    // them, descending into no link.
    let keep_dir = d.path().join("outside-keep");
    fs::create_dir_all(&keep_dir).unwrap();
    fs::write(keep_dir.join("precious"), "x").unwrap();
    fs::create_dir_all(idx.join("junk/deeper")).unwrap();
    fs::write(idx.join("junk/deeper/file"), "x").unwrap();
    symlink(&keep_dir, idx.join("junk/link")).unwrap();
    fs::remove_file(idx.join("stamp")).unwrap();
    assert!(Call::new(ours(), "CHECK", "c2", &c).run().ok);
    assert!(!idx.join("junk").exists());
    assert!(keep_dir.join("precious").exists());
    // The index directory itself as a link.
    fs::remove_dir_all(&idx).unwrap();
    let outside_dir = d.path().join("outside-index");
    fs::create_dir_all(&outside_dir).unwrap();
    symlink(&outside_dir, &idx).unwrap();
    assert!(Call::new(ours(), "DEL", "c2", &c).run().ok);
    assert!(reservations(&d.net("n1")).is_empty());
    assert_eq!(fs::read_dir(&outside_dir).unwrap().count(), 0);
}

#[test]
fn a_reservation_that_is_a_symlink_is_never_followed() {
    let d = TempDir::new("resv-link");
    let c = conf(&d, ONE);
    let net = d.net("n1");
    fs::create_dir_all(&net).unwrap();
    // Its target says "c1 on eth0": following it would let DEL delete it.
    let v = victim(&d, "resv", "c1\r\neth0");
    symlink(&v, net.join("10.9.0.2")).unwrap();
    // The name is taken, so the address is: ADD goes around it.
    assert_eq!(Call::new(ours(), "ADD", "c2", &c).run().ips(), ["10.9.0.3"]);
    // c1 holds nothing: CHECK fails, DEL succeeds and leaves link and target.
    assert_eq!(Call::new(ours(), "CHECK", "c1", &c).run().code(), 104);
    assert!(Call::new(ours(), "DEL", "c1", &c).run().ok);
    assert!(fs::symlink_metadata(net.join("10.9.0.2")).is_ok());
    assert_eq!(fs::read_to_string(&v).unwrap(), "c1\r\neth0");
    // GC with a list: a link is no reservation anyone wrote; its owner is
    // unknown, so it is stale. The link goes, never its target.
    let o = Call::new(
        ours(),
        "GC",
        "",
        &gc_keep(&d, r#"[{"containerID":"c2","ifname":"eth0"}]"#),
    )
    .run();
    assert!(o.ok, "{}", o.stdout);
    assert!(fs::symlink_metadata(net.join("10.9.0.2")).is_err());
    assert_eq!(fs::read_to_string(&v).unwrap(), "c1\r\neth0");
    assert_eq!(reservations(&net), ["10.9.0.3"]);
}

/// Run an ADD of ours that is killed by SIGXFSZ at its first write of a
/// non-empty file: `ulimit -f 0` lets it create files but not write them,
/// exactly a host-local killed between creating a file and writing it.
fn add_killed_at_first_write(c: &str, id: &str) {
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(format!("ulimit -f 0; exec {}", ours()));
    let child = Call::new(ours(), "ADD", id, c).spawn_via(sh);
    let o = wait(child, Duration::from_secs(60));
    assert!(!o.ok, "the ADD was meant to die: {}", o.stdout);
}

#[test]
fn a_killed_add_leaves_no_reservation() {
    let d = TempDir::new("killed");
    let c = conf(&d, ONE);
    // One normal ADD first, so the index exists and the killed run's first
    // write is its reservation.
    assert!(Call::new(ours(), "ADD", "c1", &c).run().ok);
    add_killed_at_first_write(&c, "c2");
    let net = d.net("n1");
    assert_eq!(
        reservations(&net),
        ["10.9.0.2"],
        "no empty reservation file"
    );
    // The next ADD gets the address the killed one was taking.
    assert_eq!(Call::new(ours(), "ADD", "c3", &c).run().ips(), ["10.9.0.3"]);
    assert!(Call::new(ours(), "DEL", "c3", &c).run().ok);
    assert_eq!(reservations(&net), ["10.9.0.2"]);
}

#[test]
fn legacy_empty_reservations() {
    // Left by older host-locals killed mid-reservation: the owner is
    // unknown. ADD goes around it, DEL cannot match it, GC without a list
    // leaves it, GC with a list releases it.
    let d = TempDir::new("empty-resv");
    let c = conf(&d, ONE);
    let net = d.net("n1");
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("10.9.0.2"), "").unwrap();
    fs::write(net.join("10.9.0.3"), "\n").unwrap();
    assert_eq!(Call::new(ours(), "ADD", "c1", &c).run().ips(), ["10.9.0.4"]);
    assert!(Call::new(ours(), "DEL", "c2", &c).run().ok);
    assert_eq!(reservations(&net), ["10.9.0.2", "10.9.0.3", "10.9.0.4"]);
    let no_list = conf(&d, ONE);
    assert!(Call::new(ours(), "GC", "", &no_list).run().ok);
    assert_eq!(reservations(&net).len(), 3);
    let o = Call::new(
        ours(),
        "GC",
        "",
        &gc_keep(&d, r#"[{"containerID":"c1","ifname":"eth0"}]"#),
    )
    .run();
    assert!(o.ok, "{}", o.stdout);
    assert_eq!(reservations(&net), ["10.9.0.4"]);
}

#[test]
fn leftovers_of_a_crash_are_ignored_and_no_temporary_files_stay() {
    let d = TempDir::new("tmp-left");
    let c = conf(&d, ONE);
    assert!(Call::new(ours(), "ADD", "c1", &c).run().ok);
    let net = d.net("n1");
    let dotfiles = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&net)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') && n != ".host-local-index")
            .collect();
        v.sort();
        v
    };
    assert!(dotfiles().is_empty(), "{:?}", dotfiles());
    add_killed_at_first_write(&c, "c2");
    // Whatever the killed run left is no reservation, and the next run copes.
    assert_eq!(reservations(&net), ["10.9.0.2"]);
    assert_eq!(Call::new(ours(), "ADD", "c3", &c).run().ips(), ["10.9.0.3"]);
    assert!(dotfiles().is_empty(), "{:?}", dotfiles());
    assert_eq!(fs::read(net.join("10.9.0.3")).unwrap(), b"c3\r\neth0");
}
