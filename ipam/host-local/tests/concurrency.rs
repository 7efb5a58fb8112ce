//! 64 processes of our binary allocating at once in one network: the flock
//! must serialise them so that every one gets its own address and every
//! reservation file is there afterwards.

mod common;

use common::{ours, reservations, wait, Call, TempDir};
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn sixty_four_concurrent_adds_and_dels() {
    let d = TempDir::new("concurrent");
    let c = format!(
        r#"{{"cniVersion":"1.0.0","name":"busy","ipam":{{"type":"host-local","dataDir":"{}",
            "ranges":[[{{"subnet":"10.50.0.0/24"}}],[{{"subnet":"fd50::/120"}}]]}}}}"#,
        d.path().display()
    );
    let ids: Vec<String> = (0..64).map(|i| format!("ctr{i}")).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| Call::new(ours(), "ADD", id, &c).spawn())
        .collect();
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for child in children {
        let o = wait(child, Duration::from_secs(120));
        let ips = o.ips();
        assert!(v4.insert(ips[0].clone()), "duplicate {}", ips[0]);
        assert!(v6.insert(ips[1].clone()), "duplicate {}", ips[1]);
    }
    assert_eq!((v4.len(), v6.len()), (64, 64));
    let files = reservations(&d.net("busy"));
    assert_eq!(files.len(), 128, "every reservation has its file");
    // Each file names the container that got the address.
    for id in &ids {
        let holders = files
            .iter()
            .filter(|f| {
                std::fs::read_to_string(d.net("busy").join(f)).unwrap() == format!("{id}\r\neth0")
            })
            .count();
        assert_eq!(holders, 2, "{id}");
    }

    let children: Vec<_> = ids
        .iter()
        .map(|id| Call::new(ours(), "DEL", id, &c).spawn())
        .collect();
    for child in children {
        let o = wait(child, Duration::from_secs(120));
        assert!(o.ok, "{} {}", o.stdout, o.stderr);
    }
    assert!(reservations(&d.net("busy")).is_empty());
}
