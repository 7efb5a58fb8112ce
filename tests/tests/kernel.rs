//! The kernel layer against a real kernel: veth pairs made straight into a
//! namespace, addresses, routes, sysctls, and packets between namespaces.

use cni_kernel::link::{BridgeSpec, VethSpec};
use cni_kernel::{Family, Kind, Netns, Route};
use cni_tests::{unique, TestNetns};

#[test]
fn veth_into_namespace_addresses_routes_and_ping() {
    let host = TestNetns::new("k-host");
    let ctr = TestNetns::new("k-ctr");
    let mut nl = host.netlink();
    let name = unique("kv").replace('-', "");
    let host_if: String = format!("v{}", &name[name.len().saturating_sub(10)..]);
    nl.create_veth(&VethSpec {
        name: host_if.clone(),
        peer_name: "eth0".into(),
        mtu: Some(1400),
        peer_mac: Some(vec![0x02, 0, 0, 0, 0, 0x42]),
        peer_netns: Some(ctr.ns()),
        ..Default::default()
    })
    .unwrap();

    // The host end is here; the peer was created inside the container.
    let h = nl.link_by_name(&host_if).unwrap();
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert_eq!(h.mtu, Some(1400));
    let mut cnl = ctr.netlink();
    let c = cnl.link_by_name("eth0").unwrap();
    assert_eq!(c.mac_string().as_deref(), Some("02:00:00:00:00:42"));
    assert!(nl.link_by_name("eth0").unwrap_err().is_not_found());

    nl.add_addr(h.index, &"10.200.0.1/24".parse().unwrap())
        .unwrap();
    nl.set_up(h.index).unwrap();
    cnl.add_addr(c.index, &"10.200.0.2/24".parse().unwrap())
        .unwrap();
    cnl.set_up(c.index).unwrap();
    let again = cnl.add_addr(c.index, &"10.200.0.2/24".parse().unwrap());
    assert!(again.unwrap_err().is(libc::EEXIST));

    let addrs = cnl.addrs(Some(c.index), Some(Family::V4)).unwrap();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].net.to_string(), "10.200.0.2/24");

    let default = Route::new("0.0.0.0/0".parse().unwrap()).via("10.200.0.1".parse().unwrap());
    cnl.add_route(&default).unwrap();
    let routes = cnl.routes(Family::V4).unwrap();
    assert!(
        routes.iter().any(|r| r.dst.prefix_len() == 0
            && r.gw == Some("10.200.0.1".parse().unwrap())
            && r.oif == Some(c.index)),
        "{routes:?}"
    );
    assert!(ctr.ping("10.200.0.1"));
    assert!(host.ping("10.200.0.2"));

    cnl.del_route(&default).unwrap();
    let e = cnl.del_route(&default).unwrap_err();
    assert!(e.is(libc::ESRCH), "{e}");
    cnl.del_addr(c.index, &"10.200.0.2/24".parse().unwrap())
        .unwrap();
    assert!(!ctr.ping("10.200.0.1"));

    // Deleting one end removes both.
    nl.del_link(h.index).unwrap();
    assert!(cnl.link_by_name("eth0").unwrap_err().is_not_found());
    assert!(nl.del_link(h.index).unwrap_err().is_not_found());
}

#[test]
fn bridge_master_and_flags() {
    let host = TestNetns::new("k-host");
    let ctr = TestNetns::new("k-ctr");
    let mut nl = host.netlink();
    nl.create_bridge(&BridgeSpec {
        name: "br-test".into(),
        mtu: Some(1450),
        ..Default::default()
    })
    .unwrap();
    let br = nl.link_by_name("br-test").unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    let dup = nl.create_bridge(&BridgeSpec {
        name: "br-test".into(),
        ..Default::default()
    });
    assert!(dup.unwrap_err().is(libc::EEXIST));

    nl.create_veth(&VethSpec {
        name: "vbr0".into(),
        peer_name: "eth0".into(),
        peer_netns: Some(ctr.ns()),
        ..Default::default()
    })
    .unwrap();
    let v = nl.link_by_name("vbr0").unwrap();
    nl.set_master(v.index, br.index).unwrap();
    nl.set_up(v.index).unwrap();
    nl.set_promisc(br.index, true).unwrap();
    let v = nl.link_by_index(v.index).unwrap();
    assert_eq!(v.master, Some(br.index));
    assert!(v.is_up());
    let links = nl.links().unwrap();
    assert!(links.iter().any(|l| l.name == "br-test"));
    assert!(links.iter().any(|l| l.name == "lo"));
    nl.set_down(v.index).unwrap();
    nl.set_name(v.index, "vbr1").unwrap();
    assert_eq!(nl.link_by_index(v.index).unwrap().name, "vbr1");
}

#[test]
fn namespaces_gone_and_not_namespaces_are_told_apart() {
    let e = Netns::open("/run/netns/no-such-namespace-here").unwrap_err();
    assert!(matches!(e.kind, Kind::NetnsGone), "{e}");
    assert!(e.is_not_found());
    let e = Netns::open("/proc/self/status").unwrap_err();
    assert!(matches!(e.kind, Kind::NotNetns), "{e}");
    let ns = TestNetns::new("k-ns");
    let a = Netns::open(ns.path()).unwrap();
    let b = Netns::open(ns.path()).unwrap();
    assert!(a.same_as(&b));
    let me = Netns::current().unwrap();
    assert!(!a.same_as(&me));
}

#[test]
fn run_in_namespace_leaves_the_caller_where_it_was() {
    let ns = TestNetns::new("k-run");
    let before = Netns::current().unwrap();
    let inside = ns
        .ns()
        .run(|| Netns::current().map(|n| n.same_as(ns.ns())))
        .unwrap()
        .unwrap();
    assert!(inside);
    assert!(Netns::current().unwrap().same_as(&before));
    // A panic inside is an error, and the caller is still home.
    let r = ns.ns().run(|| panic!("boom"));
    assert!(r.is_err());
    assert!(Netns::current().unwrap().same_as(&before));
    // Nested: the inner run returns to the outer namespace, the outer home.
    let other = TestNetns::new("k-run2");
    let (inner, back_in_outer) = ns
        .ns()
        .run(|| {
            let inner = other
                .ns()
                .run(|| Netns::current().unwrap().same_as(other.ns()))
                .unwrap();
            (inner, Netns::current().unwrap().same_as(ns.ns()))
        })
        .unwrap();
    assert!(inner && back_in_outer);
    assert!(Netns::current().unwrap().same_as(&before));
}

#[test]
fn sysctls_are_per_namespace() {
    let ns = TestNetns::new("k-sys");
    let ours = cni_kernel::sysctl::read("net.ipv4.ip_forward").unwrap();
    ns.ns()
        .run(|| cni_kernel::sysctl::write("net.ipv4.ip_forward", "1"))
        .unwrap()
        .unwrap();
    assert_eq!(ns.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(
        cni_kernel::sysctl::read("net.ipv4.ip_forward").unwrap(),
        ours
    );
}

/// `nft::chain_jumps` reads one chain's rules from the kernel: the chains
/// iptables-nft's `-j CHAIN` rules jump to, nothing for a verdict without
/// a chain, `None` for a chain or table nf_tables does not hold.
/// `chains_absent` answers from the kernel without iptables: true only
/// when the legacy nat table is not there and nf_tables has none of the
/// chains; a legacy nat table always sends the caller to the tools.
#[test]
fn chains_absent_asks_the_kernel_and_defers_to_legacy() {
    use cni_kernel::iptables::chains_absent;
    let ns = TestNetns::new("k-chabs");
    let absent = |v6: bool, chains: &[&str]| {
        ns.ns()
            .run(|| chains_absent(v6, "nat", chains))
            .unwrap()
            .unwrap()
    };
    assert!(absent(false, &["CNI-DN-k1"]), "fresh namespace");
    ns.exec(&["iptables-nft", "-t", "nat", "-N", "CNI-DN-k1"])
        .ok();
    assert!(!absent(false, &["CNI-DN-k2", "CNI-DN-k1"]));
    assert!(absent(false, &["CNI-DN-k2"]));
    assert!(
        absent(true, &["CNI-DN-k1"]),
        "the IPv6 table is another one"
    );
    let legacy = TestNetns::new("k-chabs-l");
    legacy
        .exec(&["iptables-legacy", "-t", "nat", "-N", "CNI-DN-k3"])
        .ok();
    let absent_legacy = legacy
        .ns()
        .run(|| chains_absent(false, "nat", &["CNI-DN-k4"]))
        .unwrap()
        .unwrap();
    assert!(!absent_legacy, "a legacy nat table is read by the tools");
}

/// `chain_rules` reads each rule's handle and comment from the kernel, as
/// `nft -a` shows them, and `remove_commented` deletes exactly the rules
/// with one comment, in the chains named, and nothing when none has it.
#[test]
fn chain_rules_and_remove_commented_follow_the_comments() {
    use cni_kernel::nft::{chain_rules, remove_commented, NfFamily};
    let ns = TestNetns::new("k-nftcmt");
    let rules = |chain: &str| {
        ns.ns()
            .run(|| chain_rules(NfFamily::IP, "cmt", chain))
            .unwrap()
            .unwrap()
    };
    assert_eq!(rules("a"), None, "no table yet");
    ns.exec(&["nft", "add table ip cmt"]).ok();
    ns.exec(&["nft", "add chain ip cmt a"]).ok();
    ns.exec(&["nft", "add chain ip cmt b"]).ok();
    for (chain, comment) in [("a", "c1"), ("a", "c2"), ("b", "c1"), ("a", "")] {
        let rule = if comment.is_empty() {
            format!("add rule ip cmt {chain} tcp dport 80 accept")
        } else {
            format!("add rule ip cmt {chain} tcp dport 80 accept comment \"{comment}\"")
        };
        ns.exec(&["nft", &rule]).ok();
    }
    let a = rules("a").expect("chain a");
    let comments: Vec<Option<&str>> = a.iter().map(|(_, c)| c.as_deref()).collect();
    assert_eq!(comments, [Some("c1"), Some("c2"), None]);
    // The handles are the ones nft shows.
    let listed = ns
        .exec(&["nft", "-a", "list", "chain", "ip", "cmt", "a"])
        .ok()
        .stdout;
    for (h, _) in &a {
        assert!(
            listed.contains(&format!("# handle {h}")),
            "{h} not in {listed}"
        );
    }
    let what = || "test".to_string();
    let removed = ns
        .ns()
        .run(|| remove_commented(NfFamily::IP, "cmt", &["a", "b", "none"], "c1", &what))
        .unwrap()
        .unwrap();
    assert_eq!(removed, 2);
    let left: Vec<Option<String>> = rules("a").unwrap().into_iter().map(|(_, c)| c).collect();
    assert_eq!(left, [Some("c2".to_string()), None]);
    assert_eq!(rules("b"), Some(vec![]));
    let again = ns
        .ns()
        .run(|| remove_commented(NfFamily::IP, "cmt", &["a", "b"], "c1", &what))
        .unwrap()
        .unwrap();
    assert_eq!(again, 0);
}

#[test]
fn chain_jumps_reads_one_chain_from_nf_tables() {
    use cni_kernel::nft::{chain_jumps, NfFamily};
    let ns = TestNetns::new("k-jumps");
    let jumps = |table: &str, chain: &str| {
        ns.ns()
            .run(|| chain_jumps(NfFamily::IP, table, chain))
            .unwrap()
            .unwrap()
    };
    assert_eq!(jumps("nat", "PREROUTING"), None, "no nat table yet");
    for args in [
        vec!["-t", "nat", "-N", "CNI-K-JUMP"],
        vec!["-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-j", "ACCEPT"],
        vec![
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "CNI-K-JUMP",
        ],
    ] {
        let mut argv = vec!["iptables-nft"];
        argv.extend(args);
        ns.exec(&argv).ok();
    }
    assert_eq!(
        jumps("nat", "PREROUTING"),
        Some(vec![vec![], vec!["CNI-K-JUMP".to_string()]])
    );
    assert_eq!(jumps("nat", "CNI-K-JUMP"), Some(vec![]));
    assert_eq!(jumps("nat", "CNI-K-NONE"), None);
}
