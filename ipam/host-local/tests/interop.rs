//! Ours and the reference binary on one data directory, as on a node where
//! one replaces the other: each sees, releases and refuses to duplicate the
//! other's reservations, and concurrent runs of both never collide.
//!
//! The reference (Debian's containernetworking-plugins, /usr/lib/cni) speaks
//! at most cniVersion 1.0.0. Without it this test fails, unless
//! CNI_SKIP_REFERENCE=1 says to skip it on purpose.

mod common;

use common::{ours, reference, reservations, wait, Call, TempDir};
use std::collections::BTreeSet;
use std::time::Duration;

fn conf(d: &TempDir) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"shared","ipam":{{"type":"host-local","dataDir":"{}",
            "ranges":[[{{"subnet":"10.70.0.0/24"}}],[{{"subnet":"fd70::/120"}}]]}}}}"#,
        d.path().display()
    )
}

#[test]
fn ours_and_reference_share_one_directory() {
    let Some(reference) = reference() else { return };
    let d = TempDir::new("interop");
    let c = conf(&d);
    let net = d.net("shared");

    let mut seen = BTreeSet::new();
    for i in 0..4 {
        for ip in Call::new(reference, "ADD", &format!("ref{i}"), &c)
            .run()
            .ips()
        {
            assert!(seen.insert(ip.clone()), "duplicate {ip}");
        }
    }
    // Ours continues the reference's round-robin.
    let first = Call::new(ours(), "ADD", "our0", &c).run().ips();
    assert_eq!(first, ["10.70.0.6", "fd70::6"]);
    seen.extend(first);
    for i in 1..4 {
        for ip in Call::new(ours(), "ADD", &format!("our{i}"), &c).run().ips() {
            assert!(seen.insert(ip.clone()), "duplicate {ip}");
        }
    }
    // And the reference continues ours.
    assert_eq!(
        Call::new(reference, "ADD", "ref4", &c).run().ips(),
        ["10.70.0.10", "fd70::a"]
    );
    assert_eq!(reservations(&net).len(), 18);

    // Each refuses a second ADD of the other's container.
    assert_eq!(Call::new(ours(), "ADD", "ref1", &c).run().code(), 103);
    let o = Call::new(reference, "ADD", "our1", &c).run();
    assert!(o.msg().contains("duplicate allocation"), "{}", o.stdout);
    // Each CHECKs the other's.
    assert!(Call::new(ours(), "CHECK", "ref2", &c).run().ok);
    assert!(Call::new(reference, "CHECK", "our2", &c).run().ok);

    // DEL through each other's binary.
    for i in 0..3 {
        assert!(Call::new(ours(), "DEL", &format!("ref{i}"), &c).run().ok);
        assert!(Call::new(reference, "DEL", &format!("our{i}"), &c).run().ok);
    }
    assert_eq!(reservations(&net).len(), 6);
    // The reference's DEL reads every file, our index included, and must
    // neither delete it by mistake nor be confused by it.
    assert!(net.join(".host-local-index").is_dir());

    // Concurrent ADDs from both binaries.
    let ids: Vec<(bool, String)> = (0..32).map(|i| (i % 2 == 0, format!("mix{i}"))).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|(is_ours, id)| {
            Call::new(if *is_ours { ours() } else { reference }, "ADD", id, &c).spawn()
        })
        .collect();
    let mut all = BTreeSet::new();
    for child in children {
        for ip in wait(child, Duration::from_secs(120)).ips() {
            assert!(all.insert(ip.clone()), "duplicate {ip}");
        }
    }
    assert_eq!(all.len(), 64);
    assert_eq!(reservations(&net).len(), 70);

    // Release everything through the binary that did not allocate it.
    let mut dels: Vec<(&str, String)> = ids
        .iter()
        .map(|(is_ours, id)| (if *is_ours { reference } else { ours() }, id.clone()))
        .collect();
    dels.push((ours(), "ref3".into()));
    dels.push((ours(), "ref4".into()));
    dels.push((reference, "our3".into()));
    for (bin, id) in &dels {
        let o = Call::new(bin, "DEL", id, &c).run();
        assert!(o.ok, "{bin} DEL {id}: {} {}", o.stdout, o.stderr);
    }
    assert!(
        reservations(&net).is_empty(),
        "leaked: {:?}",
        reservations(&net)
    );
    // Both still allocate from the now-empty directory.
    assert!(Call::new(ours(), "ADD", "after", &c).run().ok);
    assert!(Call::new(reference, "DEL", "after", &c).run().ok);
    assert!(reservations(&net).is_empty());
}
