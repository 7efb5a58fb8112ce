//! The dummy plugin, in the test guest (this machine's kernel has no
//! dummy links): run with `tests/guest/test.sh dummy`.

use cni_tests::*;

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh dummy"]
fn guest_kernel_makes_dummy_links() {
    guest::require();
    let ns = TestNetns::new("dummy");
    ns.exec(&["ip", "link", "add", "d0", "type", "dummy"]).ok();
    assert!(ns.link("d0").is_some());
}
