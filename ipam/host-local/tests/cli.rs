//! Our binary end to end on temporary data directories: the on-disk format,
//! every verb, requested addresses, errors and their codes.

mod common;

use common::{ours, reservations, Call, TempDir};
use std::fs;
use std::os::unix::fs::PermissionsExt;

/// A config for network `n1` in `dir` with the given `ipam` keys (besides type and dataDir).
fn conf(dir: &TempDir, version: &str, ipam: &str) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"n1","type":"bridge",
            "ipam":{{"type":"host-local","dataDir":"{}",{ipam}}}}}"#,
        dir.path().display()
    )
}

const DUAL: &str = r#""ranges":[[{"subnet":"10.9.0.0/29"}],[{"subnet":"fd00::/125"}]]"#;

#[test]
fn add_writes_the_reference_format_and_del_removes_it() {
    let d = TempDir::new("format");
    let c = conf(&d, "1.0.0", DUAL);
    let o = Call::new(ours(), "ADD", "c1", &c).run();
    assert_eq!(o.ips(), ["10.9.0.2", "fd00::2"]);
    let j = o.json();
    assert_eq!(j["ips"][0]["address"], "10.9.0.2/29");
    assert_eq!(j["ips"][0]["gateway"], "10.9.0.1");
    assert_eq!(j["ips"][1]["gateway"], "fd00::1");
    assert_eq!(j["dns"], serde_json::json!({}));

    let net = d.net("n1");
    for name in ["10.9.0.2", "fd00::2"] {
        let p = net.join(name);
        assert_eq!(fs::read(&p).unwrap(), b"c1\r\neth0");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        fs::read(net.join("last_reserved_ip.0")).unwrap(),
        b"10.9.0.2"
    );
    assert_eq!(
        fs::read(net.join("last_reserved_ip.1")).unwrap(),
        b"fd00::2"
    );
    assert_eq!(fs::metadata(net.join("lock")).unwrap().len(), 0);

    // Round-robin continues after the last reservation.
    assert_eq!(
        Call::new(ours(), "ADD", "c2", &c).run().ips(),
        ["10.9.0.3", "fd00::3"]
    );
    assert!(Call::new(ours(), "DEL", "c1", &c).run().ok);
    assert_eq!(reservations(&net), ["10.9.0.3", "fd00::3"]);
    assert_eq!(
        Call::new(ours(), "ADD", "c3", &c).run().ips(),
        ["10.9.0.4", "fd00::4"]
    );
    // Repeated DEL, and DEL of something never added, succeed.
    assert!(Call::new(ours(), "DEL", "c1", &c).run().ok);
    assert!(Call::new(ours(), "DEL", "never", &c).run().ok);
    // The same container on another interface is another attachment.
    assert_eq!(
        Call::new(ours(), "ADD", "c2", &c)
            .ifname("net1")
            .run()
            .ips(),
        ["10.9.0.5", "fd00::5"]
    );
    assert!(Call::new(ours(), "DEL", "c2", &c).run().ok);
    assert_eq!(
        reservations(&net),
        ["10.9.0.4", "10.9.0.5", "fd00::4", "fd00::5"]
    );
    // The last_reserved and lock files survive DEL.
    assert!(net.join("last_reserved_ip.0").exists() && net.join("lock").exists());
}

#[test]
fn second_add_is_refused() {
    let d = TempDir::new("dup");
    let c = conf(&d, "1.0.0", DUAL);
    assert!(Call::new(ours(), "ADD", "c1", &c).run().ok);
    let o = Call::new(ours(), "ADD", "c1", &c).run();
    assert_eq!(o.code(), 103);
    assert!(
        o.msg().contains("duplicate allocation is not allowed"),
        "{}",
        o.msg()
    );
    assert_eq!(reservations(&d.net("n1")).len(), 2);
}

#[test]
fn legacy_and_reference_written_files_are_honoured() {
    let d = TempDir::new("legacy");
    let c = conf(&d, "1.0.0", r#""subnet":"10.9.0.0/24""#);
    let net = d.net("n1");
    fs::create_dir_all(&net).unwrap();
    // A pre-ifname file (only the ID) and a 0644 file as Debian's 1.1.1 writes.
    fs::write(net.join("10.9.0.7"), "old").unwrap();
    fs::write(net.join("10.9.0.8"), "refc\r\neth0").unwrap();
    fs::set_permissions(net.join("10.9.0.8"), fs::Permissions::from_mode(0o644)).unwrap();

    assert!(Call::new(ours(), "CHECK", "old", &c).run().ok);
    assert!(Call::new(ours(), "CHECK", "refc", &c).run().ok);
    // They are held: allocation goes around them.
    let ips: Vec<String> = (0..8)
        .map(|i| Call::new(ours(), "ADD", &format!("n{i}"), &c).run().ips()[0].clone())
        .collect();
    assert!(!ips.contains(&"10.9.0.7".to_string()) && !ips.contains(&"10.9.0.8".to_string()));
    // A second ADD of a legacy holder is a duplicate, as in the reference.
    assert_eq!(Call::new(ours(), "ADD", "old", &c).run().code(), 103);
    assert!(Call::new(ours(), "DEL", "old", &c).run().ok);
    assert!(Call::new(ours(), "DEL", "refc", &c).run().ok);
    assert!(!net.join("10.9.0.7").exists() && !net.join("10.9.0.8").exists());
}

#[test]
fn exhaustion_names_the_range_and_rolls_back() {
    let d = TempDir::new("exhaust");
    // Set 0 has room; set 1 (a /30) holds one address.
    let c = conf(
        &d,
        "1.0.0",
        r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.10.0.0/30"}]]"#,
    );
    assert!(Call::new(ours(), "ADD", "c1", &c).run().ok);
    let o = Call::new(ours(), "ADD", "c2", &c).run();
    assert_eq!(o.code(), 101);
    assert_eq!(
        o.msg(),
        "failed to allocate for range 1: no IP addresses available in range set: 10.10.0.1-10.10.0.2"
    );
    // What c2 took in set 0 was given back.
    assert_eq!(reservations(&d.net("n1")), ["10.10.0.2", "10.9.0.2"]);

    let small = conf(&d, "1.0.0", r#""subnet":"10.11.0.0/29""#).replace("n1", "n2");
    for i in 0..5 {
        assert!(Call::new(ours(), "ADD", &format!("x{i}"), &small).run().ok);
    }
    let o = Call::new(ours(), "ADD", "x9", &small).run();
    assert_eq!(
        o.msg(),
        "failed to allocate for range 0: no IP addresses available in range set: 10.11.0.1-10.11.0.6"
    );
}

#[test]
fn requested_addresses_from_every_source() {
    let d = TempDir::new("req");
    let base = r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"fd00::/64"}]]"#;
    let c = conf(&d, "1.0.0", base);
    let o = Call::new(ours(), "ADD", "a", &c)
        .args("IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.9.0.50")
        .run();
    assert_eq!(o.ips(), ["10.9.0.50", "fd00::2"]);
    let with_args = c.replacen(
        "\"ipam\"",
        r#""args":{"cni":{"ips":["10.9.0.60","fd00::60"]}},"ipam""#,
        1,
    );
    assert_eq!(
        Call::new(ours(), "ADD", "b", &with_args).run().ips(),
        ["10.9.0.60", "fd00::60"]
    );
    let with_rc = c.replacen(
        "\"ipam\"",
        r#""runtimeConfig":{"ips":["10.9.0.70/24"]},"ipam""#,
        1,
    );
    // A requested address moves the round-robin cursor, as in the reference.
    assert_eq!(
        Call::new(ours(), "ADD", "c", &with_rc).run().ips(),
        ["10.9.0.70", "fd00::61"]
    );

    // Taken already.
    let o = Call::new(ours(), "ADD", "d", &c).args("IP=10.9.0.50").run();
    assert_eq!(o.code(), 102);
    assert!(
        o.msg().contains("10.9.0.50") && o.msg().contains("not available"),
        "{}",
        o.msg()
    );
    // Outside every range, the gateway, two in one set: configuration errors.
    for (args, what) in [
        ("IP=10.99.0.5", "not in any range set"),
        ("IP=10.9.0.1", "gateway"),
        ("IP=nonsense", "CNI_ARGS IP"),
    ] {
        let o = Call::new(ours(), "ADD", "e", &c).args(args).run();
        assert!(o.msg().contains(what), "{args}: {}", o.msg());
        assert_eq!(
            o.code(),
            if args.contains("nonsense") { 4 } else { 7 },
            "{args}"
        );
    }
    let o = Call::new(ours(), "ADD", "e", &with_rc)
        .args("IP=10.9.0.80")
        .run();
    assert_eq!(o.code(), 7);
    assert!(o.msg().contains("both in range set 0"), "{}", o.msg());
    // Unknown CNI_ARGS without IgnoreUnknown: code 4.
    assert_eq!(
        Call::new(ours(), "ADD", "e", &c).args("FOO=1").run().code(),
        4
    );
    assert_eq!(reservations(&d.net("n1")).len(), 6);
}

#[test]
fn runtime_ip_ranges_are_prepended() {
    let d = TempDir::new("ipranges");
    let c = conf(&d, "1.0.0", r#""ranges":[[{"subnet":"10.9.0.0/24"}]]"#).replacen(
        "\"ipam\"",
        r#""runtimeConfig":{"ipRanges":[[{"subnet":"10.20.0.0/24","rangeStart":"10.20.0.100"}]]},"ipam""#,
        1,
    );
    let o = Call::new(ours(), "ADD", "a", &c).run();
    assert_eq!(o.ips(), ["10.20.0.100", "10.9.0.2"]);
    assert_eq!(
        fs::read(d.net("n1").join("last_reserved_ip.0")).unwrap(),
        b"10.20.0.100"
    );
}

#[test]
fn invalid_configs_name_the_key() {
    let d = TempDir::new("invalid");
    for (ipam, key, code) in [
        (r#""subnet":"10.9.0.0/33""#, "ipam.subnet", 7),
        (r#""subnet":"10.9.0.0/31""#, "too small", 7),
        (
            r#""subnet":"10.9.0.0/24","rangeStart":"10.8.0.1""#,
            "ipam.rangeStart",
            7,
        ),
        (
            r#""subnet":"10.9.0.0/24","gateway":"10.8.0.1""#,
            "ipam.gateway",
            7,
        ),
        (
            r#""subnet":"10.9.0.0/24","rangeStart":"10.9.0.9","rangeEnd":"10.9.0.3""#,
            "is after rangeEnd",
            7,
        ),
        (
            r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.9.0.0/25"}]]"#,
            "overlaps",
            7,
        ),
        (
            r#""ranges":[[{"subnet":"10.9.0.0/24"},{"subnet":"fd00::/64"}]]"#,
            "mixed",
            7,
        ),
        (r#""ranges":[]"#, "no IP ranges", 7),
        (
            r#""ranges":[[{"subnet":"10.9.0.0/24"}]],"routes":[{"dst":"x"}]"#,
            "ipam.routes[0].dst",
            7,
        ),
    ] {
        let o = Call::new(ours(), "ADD", "c", &conf(&d, "1.0.0", ipam)).run();
        assert_eq!(o.code(), code, "{ipam}");
        assert!(o.msg().contains(key), "{ipam}: {}", o.msg());
    }
    // A network name cannot escape dataDir (the skeleton and the store both refuse).
    let bad = conf(&d, "1.0.0", DUAL).replace("\"n1\"", "\"../escape\"");
    assert_eq!(Call::new(ours(), "ADD", "c", &bad).run().code(), 7);
    assert!(!d.path().parent().unwrap().join("escape").exists());
    // Two addresses of one family need 0.3.0 or later.
    let two_v4 = r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.10.0.0/24"}]]"#;
    assert_eq!(
        Call::new(ours(), "ADD", "c", &conf(&d, "0.2.0", two_v4))
            .run()
            .code(),
        7
    );
}

#[test]
fn old_result_versions_and_dns_routes() {
    let d = TempDir::new("versions");
    let resolv = d.path().join("resolv.conf");
    fs::write(
        &resolv,
        "nameserver 10.0.0.53\nsearch a.example\noptions ndots:2\n",
    )
    .unwrap();
    let ipam = format!(
        r#"{DUAL},"routes":[{{"dst":"0.0.0.0/0"}},{{"dst":"10.0.0.0/8","gw":"10.9.0.1"}}],"resolvConf":"{}""#,
        resolv.display()
    );
    let o = Call::new(ours(), "ADD", "a", &conf(&d, "0.2.0", &ipam)).run();
    let j = o.json();
    assert_eq!(j["ip4"]["ip"], "10.9.0.2/29");
    assert_eq!(j["ip6"]["ip"], "fd00::2/125");
    let o = Call::new(ours(), "ADD", "b", &conf(&d, "0.4.0", &ipam)).run();
    let j = o.json();
    assert_eq!(j["ips"][0]["version"], "4");
    assert_eq!(j["routes"][1]["gw"], "10.9.0.1");
    assert_eq!(j["dns"]["nameservers"][0], "10.0.0.53");
    assert_eq!(j["dns"]["search"][0], "a.example");
    assert_eq!(j["dns"]["options"][0], "ndots:2");
}

#[test]
fn only_add_needs_the_resolv_conf() {
    // A resolv.conf that disappears after ADD (systemd-resolved stopped, a
    // file renamed) must not make DEL fail: that would leak the address
    // while the runtime retries DEL forever.
    let d = TempDir::new("resolv-gone");
    let resolv = d.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 10.0.0.53\n").unwrap();
    let ipam = format!(r#"{DUAL},"resolvConf":"{}""#, resolv.display());
    let c = conf(&d, "1.1.0", &ipam);
    let o = Call::new(ours(), "ADD", "a", &c).run();
    assert_eq!(o.json()["dns"]["nameservers"][0], "10.0.0.53");
    fs::remove_file(&resolv).unwrap();
    for verb in ["STATUS", "GC"] {
        let o = Call::new(ours(), verb, "", &c).run();
        assert!(o.ok, "{verb}: {}", o.stdout);
    }
    let o = Call::new(ours(), "DEL", "a", &c).run();
    assert!(o.ok, "{}", o.stdout);
    assert!(reservations(&d.net("n1")).is_empty());
    // ADD still says what is wrong.
    let o = Call::new(ours(), "ADD", "b", &c).run();
    assert_eq!(o.code(), 7);
    assert!(o.msg().contains("resolvConf"), "{}", o.msg());
}

#[test]
fn check_compares_with_prev_result() {
    let d = TempDir::new("check");
    let c = conf(&d, "1.0.0", DUAL);
    let add = Call::new(ours(), "ADD", "c1", &c).run();
    let with_prev = |prev: &serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(&c).unwrap();
        v["prevResult"] = prev.clone();
        v.to_string()
    };
    assert!(
        Call::new(ours(), "CHECK", "c1", &with_prev(&add.json()))
            .run()
            .ok
    );
    // prevResult naming an address the container does not hold.
    let mut wrong = add.json();
    wrong["ips"][0]["address"] = "10.9.0.5/29".into();
    let o = Call::new(ours(), "CHECK", "c1", &with_prev(&wrong)).run();
    assert_eq!(o.code(), 104);
    assert!(o.msg().contains("10.9.0.5"), "{}", o.msg());
    // Missing reservation.
    let o = Call::new(ours(), "CHECK", "c2", &with_prev(&add.json())).run();
    assert_eq!(o.code(), 104);
    assert!(o
        .msg()
        .contains("Failed to find address added by container c2"));
}

fn gc_conf(d: &TempDir, key: &str, keep: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"n1","ipam":{{"type":"host-local","dataDir":"{}",{DUAL}}},"{key}":{keep}}}"#,
        d.path().display()
    )
}

#[test]
fn gc_releases_everything_not_listed() {
    let d = TempDir::new("gc");
    let c = conf(&d, "1.1.0", DUAL);
    for id in ["c1", "c2", "c3"] {
        assert!(Call::new(ours(), "ADD", id, &c).run().ok);
    }
    let net = d.net("n1");
    fs::write(net.join("10.9.0.6"), "legacykeep").unwrap();
    fs::write(net.join("fd00::6"), "legacygone").unwrap();
    let keep =
        r#"[{"containerID":"c2","ifname":"eth0"},{"containerID":"legacykeep","ifname":"eth0"}]"#;
    let o = Call::new(
        ours(),
        "GC",
        "",
        &gc_conf(&d, "cni.dev/valid-attachments", keep),
    )
    .run();
    assert!(o.ok, "{} {}", o.stdout, o.stderr);
    assert_eq!(reservations(&net), ["10.9.0.3", "10.9.0.6", "fd00::3"]);
    assert!(net.join("lock").exists());
    assert_eq!(
        fs::read(net.join("last_reserved_ip.0")).unwrap(),
        b"10.9.0.4"
    );
    assert_eq!(
        fs::read(net.join("last_reserved_ip.1")).unwrap(),
        b"fd00::4"
    );
    // The older key works too; an empty list releases everything.
    let o = Call::new(ours(), "GC", "", &gc_conf(&d, "cni.dev/attachments", "[]")).run();
    assert!(o.ok);
    assert!(reservations(&net).is_empty());
    assert!(net.join("lock").exists() && net.join("last_reserved_ip.1").exists());
    // Allocation after GC still works and the index agrees.
    assert!(Call::new(ours(), "ADD", "c4", &c).run().ok);
    assert!(Call::new(ours(), "DEL", "c4", &c).run().ok);
    assert!(reservations(&net).is_empty());
}

#[test]
fn status_reports_readiness() {
    let d = TempDir::new("status");
    let ok = format!(
        r#"{{"cniVersion":"1.1.0","name":"n1","ipam":{{"type":"host-local","dataDir":"{}","subnet":"10.9.0.0/30"}}}}"#,
        d.path().display()
    );
    assert!(Call::new(ours(), "STATUS", "", &ok).run().ok);
    // Full: code 50.
    let add = ok.replace("1.1.0", "1.0.0");
    assert!(Call::new(ours(), "ADD", "c1", &add).run().ok);
    let o = Call::new(ours(), "STATUS", "", &ok).run();
    assert_eq!(o.code(), 50);
    assert!(o.msg().contains("no IP addresses available"), "{}", o.msg());
    // A data directory that cannot be created: code 50.
    let bad = ok.replace(&d.path().display().to_string(), "/proc/hl-status-test");
    let o = Call::new(ours(), "STATUS", "", &bad).run();
    assert_eq!(o.code(), 50);
    assert!(o.msg().contains("data directory"), "{}", o.msg());
}

#[test]
fn gc_without_a_list_releases_nothing() {
    // No `cni.dev/valid-attachments` (nor the older key): the runtime said
    // nothing about which attachments are valid, so nothing is known to be
    // stale. An explicit empty list still means "every attachment is gone".
    let d = TempDir::new("gc-nolist");
    let c = conf(&d, "1.1.0", DUAL);
    for id in ["c1", "c2"] {
        assert!(Call::new(ours(), "ADD", id, &c).run().ok);
    }
    let net = d.net("n1");
    let held = ["10.9.0.2", "10.9.0.3", "fd00::2", "fd00::3"];
    let no_list = format!(
        r#"{{"cniVersion":"1.1.0","name":"n1","ipam":{{"type":"host-local","dataDir":"{}",{DUAL}}}}}"#,
        d.path().display()
    );
    let o = Call::new(ours(), "GC", "", &no_list).run();
    assert!(o.ok, "{} {}", o.stdout, o.stderr);
    assert_eq!(reservations(&net), held);
    // A null list is no list.
    let o = Call::new(
        ours(),
        "GC",
        "",
        &gc_conf(&d, "cni.dev/valid-attachments", "null"),
    )
    .run();
    assert!(o.ok, "{} {}", o.stdout, o.stderr);
    assert_eq!(reservations(&net), held);
    // DEL still works afterwards: the index was not damaged.
    assert!(Call::new(ours(), "DEL", "c1", &c).run().ok);
    assert_eq!(reservations(&net), ["10.9.0.3", "fd00::3"]);
    let o = Call::new(
        ours(),
        "GC",
        "",
        &gc_conf(&d, "cni.dev/valid-attachments", "[]"),
    )
    .run();
    assert!(o.ok, "{} {}", o.stdout, o.stderr);
    assert!(reservations(&net).is_empty());
}

#[test]
fn ranges_the_reference_refuses_are_refused() {
    // Debian's 1.1.1 fails every one of these (0.0.0.0/0 and ::/0 with "no IP
    // addresses available in range set: ?01-...", a mapped subnet with "IPNet
    // IP and Mask version mismatch"). A /0 would hand out 0.0.0.2/0 or ::2/0,
    // which the kernel refuses or which swallows the default route; a subnet
    // in ::ffff:0:0/96 names IPv4 addresses, whose files would collide with
    // the IPv4 range sets'.
    let d = TempDir::new("refused-ranges");
    for (ipam, key, value) in [
        (
            r#""ranges":[[{"subnet":"0.0.0.0/0"}]]"#,
            "ipam.ranges[0][0].subnet",
            "0.0.0.0/0",
        ),
        (
            r#""ranges":[[{"subnet":"::/0"}]]"#,
            "ipam.ranges[0][0].subnet",
            "::/0",
        ),
        (r#""subnet":"0.0.0.0/0""#, "ipam.subnet", "0.0.0.0/0"),
        (
            r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"::ffff:0:0/96"}]]"#,
            "ipam.ranges[1][0].subnet",
            "::ffff:0:0/96",
        ),
        (
            r#""ranges":[[{"subnet":"::ffff:10.0.0.0/120"}]]"#,
            "ipam.ranges[0][0].subnet",
            "::ffff:10.0.0.0/120",
        ),
        (
            r#""ranges":[[{"subnet":"::/64"}]]"#,
            "ipam.ranges[0][0].subnet",
            "::/64",
        ),
    ] {
        let o = Call::new(ours(), "ADD", "c", &conf(&d, "1.0.0", ipam)).run();
        assert_eq!(o.code(), 7, "{ipam}: {}", o.stdout);
        assert!(
            o.msg().contains(key) && o.msg().contains(value),
            "{ipam}: {}",
            o.msg()
        );
        assert!(!d.net("n1").exists(), "{ipam}: nothing may be written");
    }
    // Neighbours of those stay valid.
    for (i, ok) in ["128.0.0.0/1", "8000::/1", "64:ff9b::/96", "::1:0:0/96"]
        .iter()
        .enumerate()
    {
        let ipam = format!(r#""ranges":[[{{"subnet":"{ok}"}}]]"#);
        let id = format!("ok{i}");
        let o = Call::new(ours(), "ADD", &id, &conf(&d, "1.0.0", &ipam)).run();
        assert!(o.ok, "{ok}: {}", o.stdout);
    }
}

#[test]
fn a_failed_add_leaves_no_cursor_behind() {
    // 1,000 range sets; the last one is full. The ADD fails, and neither the
    // addresses it took in the 999 others nor their last_reserved_ip.N files
    // may stay; cursors that existed before keep their content.
    let d = TempDir::new("cursors");
    let sets: Vec<String> = (0..1000)
        .map(|i| format!(r#"[{{"subnet":"10.{}.{}.0/30"}}]"#, 100 + i / 256, i % 256))
        .collect();
    let c = conf(&d, "1.0.0", &format!(r#""ranges":[{}]"#, sets.join(",")));
    let net = d.net("n1");
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("10.103.231.2"), "other\r\neth0").unwrap();
    fs::write(net.join("last_reserved_ip.5"), "10.100.5.2").unwrap();
    let o = Call::new(ours(), "ADD", "c1", &c).run();
    assert_eq!(o.code(), 101, "{}", o.stdout);
    assert!(o.msg().contains("range 999"), "{}", o.msg());
    let mut left: Vec<String> = fs::read_dir(&net)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    left.sort();
    assert_eq!(left, ["10.103.231.2", "last_reserved_ip.5", "lock"]);
    assert_eq!(
        fs::read(net.join("last_reserved_ip.5")).unwrap(),
        b"10.100.5.2"
    );
    // A failed requested address rolls back the cursors just the same.
    let two = conf(
        &d,
        "1.0.0",
        r#""ranges":[[{"subnet":"10.9.0.0/24"}],[{"subnet":"10.10.0.0/24"}]]"#,
    )
    .replace("\"n1\"", "\"n2\"");
    fs::create_dir_all(d.net("n2")).unwrap();
    fs::write(d.net("n2").join("10.10.0.7"), "other\r\neth0").unwrap();
    let o = Call::new(ours(), "ADD", "c1", &two)
        .args("IP=10.10.0.7")
        .run();
    assert_eq!(o.code(), 102, "{}", o.stdout);
    assert_eq!(reservations(&d.net("n2")), ["10.10.0.7"]);
    assert!(!d.net("n2").join("last_reserved_ip.0").exists());
}

#[test]
fn repeated_cni_args_keys_are_refused() {
    // The reference's LoadArgs sets the field once per pair, so the last IP
    // silently wins: a runtime that sent two addresses gets one it may not
    // expect. We refuse conflicting repeats with code 4 naming the key;
    // a key repeated with the same value is harmless and accepted.
    let d = TempDir::new("repeat-args");
    let c = conf(&d, "1.0.0", r#""ranges":[[{"subnet":"10.9.0.0/24"}]]"#);
    let o = Call::new(ours(), "ADD", "c1", &c)
        .args("IP=10.9.0.5;IP=10.9.0.6")
        .run();
    assert_eq!(o.code(), 4, "{}", o.stdout);
    let m = o.msg();
    assert!(
        m.contains("CNI_ARGS")
            && m.contains("IP")
            && m.contains("10.9.0.5")
            && m.contains("10.9.0.6"),
        "{m}"
    );
    assert!(reservations(&d.net("n1")).is_empty());
    let o = Call::new(ours(), "ADD", "c1", &c)
        .args("IgnoreUnknown=1;IP=10.9.0.5;K8S_POD_NAME=p;IP=10.9.0.5")
        .run();
    assert_eq!(o.ips(), ["10.9.0.5"]);
    // DEL does not read IP, so a repeat cannot block it.
    let o = Call::new(ours(), "DEL", "c1", &c)
        .args("IP=10.9.0.5;IP=10.9.0.6")
        .run();
    assert!(o.ok, "{}", o.stdout);
    assert!(reservations(&d.net("n1")).is_empty());
}
