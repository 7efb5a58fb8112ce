//! The vrf plugin, in the test guest (this machine's kernel has no VRF
//! links): run with `tests/guest/test.sh vrf`.

use cni_tests::*;

#[test]
#[ignore = "needs the guest kernel: tests/guest/test.sh vrf"]
fn guest_kernel_makes_vrf_links() {
    guest::require();
    let ns = TestNetns::new("vrf");
    ns.exec(&["ip", "link", "add", "vrf0", "type", "vrf", "table", "10"])
        .ok();
    assert!(ns.link("vrf0").is_some());
}
