//! `cnitool gc` runs alone: it waits while another cnitool run (holding the
//! shared lock) is in flight, then proceeds.

use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn gc_waits_for_runs_in_flight() {
    let root = std::env::temp_dir().join(format!("cnitool-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (conf, cache) = (root.join("net.d"), root.join("cache"));
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    // 1.0.0: GC only DELs stale cached attachments (there are none) and
    // sends no GC verb, so no plugin binary is needed.
    std::fs::write(
        conf.join("10-n.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"none"}]}"#,
    )
    .unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(cache.join("cnitool.lock"))
        .unwrap();
    // Another run in flight.
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockShared).unwrap();

    let mut gc = Command::new(cni_tests::our_plugin("cnitool"))
        .args(["--cache-dir", cache.to_str().unwrap(), "gc", "n", "--all"])
        .env("NETCONFPATH", &conf)
        .env("CNI_PATH", "/nonexistent")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        gc.try_wait().unwrap().is_none(),
        "gc ran beside a run in flight"
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = gc.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "gc did not proceed after the lock was released"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
    std::fs::remove_dir_all(&root).unwrap();
}
