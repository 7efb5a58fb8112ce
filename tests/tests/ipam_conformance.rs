//! The conformance harness on our IPAM plugins, every spec version
//! including 1.1.0's GC and STATUS.

mod common;

use cni_tests::{our_plugin, TempDir};
use serde_json::json;

fn run(plugin: &str, ipam: serde_json::Value) {
    let config = json!({"cniVersion": "", "name": "conf", "type": plugin, "ipam": ipam});
    common::conformance_passes(&our_plugin(plugin), config);
}

#[test]
fn host_local_passes_and_leaves_no_reservation() {
    let data = TempDir::new("conf-hl");
    run(
        "host-local",
        json!({"type": "host-local", "dataDir": data.path(),
               "ranges": [[{"subnet": "10.250.2.0/24"}], [{"subnet": "fd00:250:2::/64"}]]}),
    );
    assert_eq!(data.reservations("conf"), Vec::<String>::new());
}

#[test]
fn static_passes() {
    run(
        "static",
        json!({"type": "static",
               "addresses": [{"address": "10.250.3.5/24", "gateway": "10.250.3.1"},
                             {"address": "fd00:250:3::5/64"}]}),
    );
}
