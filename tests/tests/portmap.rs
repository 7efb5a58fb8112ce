//! The portmap plugin end to end, chained after our bridge and host-local
//! as a runtime chains it, with real packets: a client namespace wired to
//! the test's host namespace reaches a container through the host's
//! address and mapped port (tcp and udp, IPv4 and IPv6), the container
//! reaches itself through the host port (hairpin), the host reaches it on
//! 127.0.0.1, and traffic to a non-local address is not redirected. Both
//! backends pass the same tests; rules go on DEL and GC, in parallel too,
//! across a backend switch, and between our plugin and the reference one.
//!
//! Servers and clients are sockets opened inside the test's namespaces by
//! this process (a socket stays in the namespace it was created in).

mod common;

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, PluginEnv, TempDir, TestNetns,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Host namespace with bridge + host-local + portmap on CNI_PATH, and a
/// client namespace on a veth to it: host 10.240.9N.1 / fd00:cafe:9N::1,
/// client .2 / ::2.
struct Env {
    env: PluginEnv,
    client: TestNetns,
    net: String,
    subnet4: String,
    subnet6: String,
    host4: String,
    host6: String,
}

impl Env {
    fn new(tag: &str, n: u8) -> Env {
        Env::with_nets(
            tag,
            n,
            &format!("10.241.{n}"),
            &format!("10.240.{}.0/24", 90 + n),
        )
    }

    /// `link4`: the first three octets of the host/client link (host .1,
    /// client .2); `subnet4`: the containers' IPv4 subnet.
    fn with_nets(tag: &str, n: u8, link4: &str, subnet4: &str) -> Env {
        let env = PluginEnv::new(
            tag,
            &[
                ("bridge", &our_plugin("bridge")),
                ("host-local", &require_our_host_local("portmap tests")),
                ("portmap", &our_plugin("portmap")),
            ],
        );
        let client = TestNetns::new(&format!("{tag}-cl"));
        let (h4, h6) = (format!("{link4}.1"), format!("fd00:cafe:f{n:x}::1"));
        let (c4, c6) = (format!("{link4}.2"), format!("fd00:cafe:f{n:x}::2"));
        let host = &env.host;
        host.exec(&[
            "ip",
            "link",
            "add",
            "pmhost",
            "type",
            "veth",
            "peer",
            "name",
            "pmcl",
            "netns",
            client.name(),
        ])
        .ok();
        for (ns, dev, a4, a6) in [(host, "pmhost", &h4, &h6), (&client, "pmcl", &c4, &c6)] {
            ns.exec(&["ip", "addr", "add", &format!("{a4}/24"), "dev", dev])
                .ok();
            ns.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{a6}/64"),
                "dev",
                dev,
                "nodad",
            ])
            .ok();
            ns.exec(&["ip", "link", "set", dev, "up"]).ok();
            ns.exec(&["ip", "link", "set", "lo", "up"]).ok();
        }
        Env {
            env,
            client,
            net: format!("pmnet{n}"),
            subnet4: subnet4.to_string(),
            subnet6: format!("fd00:cafe:e{n:x}::/64"),
            host4: h4,
            host6: h6,
        }
    }

    /// The client's IPv4 address on the link to the host.
    fn client_ip4(&self) -> String {
        let (net, _) = self.host4.rsplit_once('.').expect("an IPv4 address");
        format!("{net}.2")
    }

    fn bridge_conf(&self) -> Value {
        let mut ipam = host_local_ipam(&self.env.data, &[&self.subnet4, &self.subnet6]);
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
        json!({"cniVersion": "1.0.0", "name": self.net, "type": "bridge",
               "bridge": format!("pmbr{}", &self.net[5..]), "isGateway": true,
               // Hairpin traffic comes back out of the port it entered by
               // when br_netfilter is loaded (as runtimes configure it).
               "hairpinMode": true, "ipam": ipam})
    }

    fn portmap_conf(&self, extra: Value, mappings: Value, prev: &Value) -> Value {
        let mut c = merge(
            // Records go to the test's own directory, never /run/cni.
            json!({"cniVersion": "1.0.0", "name": self.net, "type": "portmap",
                   "dataDir": self.env.data.path().join("portmap"),
                   "runtimeConfig": {"portMappings": mappings}}),
            extra,
        );
        c["prevResult"] = prev.clone();
        c
    }

    /// bridge ADD, then portmap ADD with its result; returns the bridge result.
    fn add(&self, ctr: &TestNetns, id: &str, pm: &Value) -> (Value, Value) {
        let br = self.env.add(ctr, id, &self.bridge_conf()).ok().json();
        let mut pm = pm.clone();
        pm["prevResult"] = br.clone();
        let out = self.env.add(ctr, id, &pm).ok().json();
        assert_eq!(out["ips"], br["ips"], "portmap passes prevResult through");
        (br, pm)
    }

    fn del(&self, ctr: Option<&TestNetns>, id: &str, pm: &Value, br: &Value) {
        self.env.verb("DEL", ctr, id, pm).ok();
        self.env
            .verb("DEL", ctr, id, &with_prev(&self.bridge_conf(), br))
            .ok();
    }

    fn nat(&self, v6: bool) -> String {
        let bin = if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        // Without the "# Generated ... on <time>" lines.
        let out = self.env.host.exec(&[bin, "-t", "nat"]).ok().stdout;
        out.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn nft(&self, v6: bool) -> String {
        let fam = if v6 { "ip6" } else { "ip" };
        self.env.host.nft_chain(fam, "cni_hostport", "hostports")
            + &self.env.host.nft_chain(fam, "cni_hostport", "masquerading")
    }
}

/// A TCP and a UDP server in `ns` on `port` answering `tag` to anyone.
fn serve(ns: &TestNetns, port: u16, tag: &'static str) {
    let (tcp, udp) = ns
        .ns()
        .run(|| {
            (
                TcpListener::bind(("::", port)).expect("bind tcp"),
                UdpSocket::bind(("::", port)).expect("bind udp"),
            )
        })
        .expect("enter namespace");
    std::thread::spawn(move || {
        for s in tcp.incoming().flatten() {
            let mut s = s;
            let _ = s.write_all(tag.as_bytes());
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(tag.as_bytes(), from);
        }
    });
}

/// What a TCP connection from `ns` to `to` reads; `None` if it fails.
fn tcp_get(ns: &TestNetns, to: &str) -> Option<String> {
    let addr: SocketAddr = to.parse().expect("socket address");
    ns.ns()
        .run(|| {
            let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
            s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })
        .expect("enter namespace")
}

/// The reply to a UDP datagram from `ns` to `to`; `None` without one.
fn udp_get(ns: &TestNetns, to: &str) -> Option<String> {
    let addr: SocketAddr = to.parse().expect("socket address");
    ns.ns()
        .run(|| {
            let bind = if addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let s = UdpSocket::bind(bind).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(700))).ok()?;
            let mut buf = [0u8; 64];
            for _ in 0..4 {
                s.send_to(b"hi", addr).ok()?;
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            None
        })
        .expect("enter namespace")
}

fn v6(addr: &str, port: u16) -> String {
    format!("[{addr}]:{port}")
}

fn mappings() -> Value {
    json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
    ])
}

/// The whole behaviour on one backend.
fn forwards_traffic(backend: &str, n: u8) {
    let e = Env::new(&format!("pm-fwd-{}", &backend[..3]), n);
    let ctr = TestNetns::new("pm-fwd-c");
    serve(&ctr, 80, "ctr");
    serve(&ctr, 8080, "direct");
    let pm = e.portmap_conf(json!({"backend": backend}), mappings(), &Value::Null);
    let (br, pm) = e.add(&ctr, "c1", &pm);
    let (c4, c6) = (result_ip(&br, false), result_ip(&br, true));

    // A client outside reaches the container through the host's addresses.
    let h4 = format!("{}:8080", e.host4);
    let h6 = v6(&e.host6, 8080);
    assert_eq!(
        tcp_get(&e.client, &h4).as_deref(),
        Some("ctr"),
        "{backend} tcp4"
    );
    assert_eq!(
        udp_get(&e.client, &h4).as_deref(),
        Some("ctr"),
        "{backend} udp4"
    );
    assert_eq!(
        tcp_get(&e.client, &h6).as_deref(),
        Some("ctr"),
        "{backend} tcp6"
    );
    assert_eq!(
        udp_get(&e.client, &h6).as_deref(),
        Some("ctr"),
        "{backend} udp6"
    );
    // Hairpin: the container through the host port (snat on by default).
    assert_eq!(
        tcp_get(&ctr, &h4).as_deref(),
        Some("ctr"),
        "{backend} hairpin"
    );
    // The host itself, on 127.0.0.1.
    assert_eq!(
        tcp_get(&e.env.host, "127.0.0.1:8080").as_deref(),
        Some("ctr"),
        "{backend} localhost"
    );
    // Traffic to a non-local address is routed, not redirected.
    e.client
        .exec(&["ip", "route", "add", &e.subnet4, "via", &e.host4])
        .ok();
    assert_eq!(
        tcp_get(&e.client, &format!("{c4}:8080")).as_deref(),
        Some("direct"),
        "{backend}: non-local destination redirected"
    );
    e.env.verb("CHECK", Some(&ctr), "c1", &pm).ok();

    // CHECK notices a missing rule.
    if backend == "nftables" {
        e.env
            .host
            .exec(&["nft", "flush", "chain", "ip", "cni_hostport", "hostports"])
            .ok();
    } else {
        let dn = cni_kernel::nft::hash_hex(&format!("{}c1", e.net), 21);
        e.env
            .host
            .exec(&["iptables", "-t", "nat", "-F", &format!("CNI-DN-{dn}")])
            .ok();
    }
    let out = e.env.verb("CHECK", Some(&ctr), "c1", &pm);
    assert_eq!(
        out.status, 1,
        "{backend}: CHECK after a flush: {}",
        out.stdout
    );

    // DEL removes every rule of the container, twice, and without
    // prevResult or namespace.
    let mut bare = pm.clone();
    bare.as_object_mut().unwrap().remove("prevResult");
    e.env.verb("DEL", None, "c1", &bare).ok();
    e.env.verb("DEL", None, "c1", &bare).ok();
    for v6 in [false, true] {
        assert!(!e.nat(v6).contains("CNI-DN-"), "{backend}: {}", e.nat(v6));
        assert!(!e.nft(v6).contains("\"c1\""), "{backend}: {}", e.nft(v6));
    }
    assert_eq!(tcp_get(&e.client, &h4), None, "{backend}: mapping gone");
    e.del(Some(&ctr), "c1", &pm, &br);
    let _ = c6;
}

#[test]
fn nftables_forwards_tcp_and_udp_both_families_hairpin_and_localhost() {
    forwards_traffic("nftables", 1);
}

#[test]
fn iptables_forwards_tcp_and_udp_both_families_hairpin_and_localhost() {
    forwards_traffic("iptables", 2);
}

/// containerd's CRI sends the mapping keys capitalised; the default backend
/// is nftables; no mappings means nothing is touched.
#[test]
fn capability_keys_in_any_case_and_no_mappings_pass_through() {
    let e = Env::new("pm-case", 3);
    let ctr = TestNetns::new("pm-case-c");
    serve(&ctr, 80, "ctr");
    let pm = e.portmap_conf(
        json!({}),
        json!([{"HostPort": 8081, "ContainerPort": 80, "Protocol": "TCP", "HostIP": ""}]),
        &Value::Null,
    );
    let (br, pm) = e.add(&ctr, "c1", &pm);
    assert!(e.nft(false).contains("8081"), "{}", e.nft(false));
    assert_eq!(
        tcp_get(&e.client, &format!("{}:8081", e.host4)).as_deref(),
        Some("ctr")
    );
    e.del(Some(&ctr), "c1", &pm, &br);

    let ctr2 = TestNetns::new("pm-case-c2");
    let none = e.portmap_conf(json!({}), json!([]), &Value::Null);
    let before = (
        e.nat(false),
        e.env.host.exec(&["nft", "list", "ruleset"]).ok().stdout,
    );
    let (br2, none) = e.add(&ctr2, "c2", &none);
    let after = (
        e.nat(false),
        e.env.host.exec(&["nft", "list", "ruleset"]).ok().stdout,
    );
    // Only the bridge's own changes (none in nat/nft here: no ipMasq).
    assert_eq!(before, after);
    e.del(Some(&ctr2), "c2", &none, &br2);
}

/// Two containers; 50 rounds of both DELed in parallel and re-added: each
/// DEL removes exactly its own rules, the other's mapping keeps working.
#[test]
fn parallel_dels_remove_only_their_own_rules() {
    for (backend, n) in [("iptables", 4), ("nftables", 5)] {
        let e = Env::new(&format!("pm-par-{}", &backend[..3]), n);
        let c1 = TestNetns::new("pm-par-c1");
        let c2 = TestNetns::new("pm-par-c2");
        let c3 = TestNetns::new("pm-par-c3");
        serve(&c3, 80, "keeper");
        let conf = |port: u16| {
            e.portmap_conf(
                json!({"backend": backend}),
                json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]),
                &Value::Null,
            )
        };
        let (br3, pm3) = e.add(&c3, "c3", &conf(9003));
        let (br1, pm1) = e.add(&c1, "c1", &conf(9001));
        let (br2, pm2) = e.add(&c2, "c2", &conf(9002));
        for round in 0..50 {
            std::thread::scope(|s| {
                s.spawn(|| e.env.verb("DEL", None, "c1", &pm1).ok());
                s.spawn(|| e.env.verb("DEL", None, "c2", &pm2).ok());
            });
            let rules = format!("{}{}", e.nat(false), e.nft(false));
            assert!(
                !rules.contains("9001") && !rules.contains("9002"),
                "round {round}: {rules}"
            );
            assert!(
                rules.contains("9003"),
                "round {round}: c3's rules kept: {rules}"
            );
            e.env.add(&c1, "c1", &pm1).ok();
            e.env.add(&c2, "c2", &pm2).ok();
        }
        assert_eq!(
            tcp_get(&e.client, &format!("{}:9003", e.host4)).as_deref(),
            Some("keeper"),
            "{backend}"
        );
        e.del(Some(&c1), "c1", &pm1, &br1);
        e.del(Some(&c2), "c2", &pm2, &br2);
        e.del(Some(&c3), "c3", &pm3, &br3);
    }
}

/// GC without a list removes nothing; with a list, the rules of recorded
/// containers it does not name go and the others keep working.
#[test]
fn gc_removes_only_stale_containers() {
    for (backend, n) in [("nftables", 6), ("iptables", 7)] {
        let e = Env::new(&format!("pm-gc-{}", &backend[..3]), n);
        let live = TestNetns::new("pm-gc-live");
        let stale = TestNetns::new("pm-gc-stale");
        serve(&live, 80, "live");
        let conf = |port: u16| {
            let mut c = e.portmap_conf(
                json!({"backend": backend, "cniVersion": "1.1.0",
                       "dataDir": e.env.data.path().join("portmap")}),
                json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]),
                &Value::Null,
            );
            c["cniVersion"] = json!("1.1.0");
            c
        };
        let (brl, pml) = e.add(&live, "live", &conf(9011));
        let (brs, pms) = e.add(&stale, "stale", &conf(9012));
        let rules = || format!("{}{}", e.nat(false), e.nft(false));
        let mut gc = conf(1);
        gc.as_object_mut().unwrap().remove("prevResult");
        gc.as_object_mut().unwrap().remove("runtimeConfig");
        e.env.bare("GC", &gc).ok();
        assert!(
            rules().contains("9011") && rules().contains("9012"),
            "no list: {}",
            rules()
        );
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "live", "ifname": "eth0"}]);
        e.env.bare("GC", &gc).ok();
        assert!(rules().contains("9011"), "{backend}: {}", rules());
        assert!(!rules().contains("9012"), "{backend}: {}", rules());
        assert_eq!(
            tcp_get(&e.client, &format!("{}:9011", e.host4)).as_deref(),
            Some("live")
        );
        e.del(Some(&live), "live", &pml, &brl);
        e.del(Some(&stale), "stale", &pms, &brs);
    }
}

/// A container added with one backend is cleanly deleted after the config
/// switched to the other.
#[test]
fn del_after_a_backend_switch_removes_the_rules() {
    let e = Env::new("pm-switch", 8);
    for (add_with, del_with) in [("nftables", "iptables"), ("iptables", "nftables")] {
        let ctr = TestNetns::new("pm-switch-c");
        let pm = e.portmap_conf(json!({"backend": add_with}), mappings(), &Value::Null);
        let (br, pm) = e.add(&ctr, "c1", &pm);
        let mut del = pm.clone();
        del["backend"] = json!(del_with);
        e.env.verb("DEL", Some(&ctr), "c1", &del).ok();
        for v6 in [false, true] {
            assert!(!e.nat(v6).contains("CNI-DN-"), "{add_with}: {}", e.nat(v6));
            assert!(!e.nft(v6).contains("\"c1\""), "{add_with}: {}", e.nft(v6));
        }
        e.del(Some(&ctr), "c1", &pm, &br);
    }
}

/// The reference portmap (iptables) and ours remove each other's rules.
#[test]
fn reference_and_ours_remove_each_others_rules() {
    let e = Env::new("pm-ref", 9);
    e.env
        .bin
        .add_plugin("portmap-ref", &reference_plugin("portmap"));
    let ctr = TestNetns::new("pm-ref-c");
    serve(&ctr, 80, "ctr");
    // The reference's 1.1.1 chooses iptables; ours is told to.
    let pm = e.portmap_conf(json!({"backend": "iptables"}), mappings(), &Value::Null);
    let (br, pm) = e.add(&ctr, "c1", &pm);
    let mut theirs = pm.clone();
    theirs["type"] = json!("portmap-ref");
    theirs.as_object_mut().unwrap().remove("backend");
    // Ours added: the reference's DEL removes it. (Debian 1.1.1's CHECK
    // looks for IPv4 rules in ip6tables on dual-stack containers and so
    // fails on its own rules as well: not used here.)
    e.env.verb("DEL", Some(&ctr), "c1", &theirs).ok();
    assert!(!e.nat(false).contains("CNI-DN-"), "{}", e.nat(false));
    // Theirs added: ours sees it in CHECK and removes it on DEL.
    e.env.add(&ctr, "c1", &theirs).ok();
    assert_eq!(
        tcp_get(&e.client, &format!("{}:8080", e.host4)).as_deref(),
        Some("ctr")
    );
    e.env.verb("CHECK", Some(&ctr), "c1", &pm).ok();
    e.env.verb("DEL", Some(&ctr), "c1", &pm).ok();
    for v6 in [false, true] {
        assert!(!e.nat(v6).contains("CNI-DN-"), "{}", e.nat(v6));
    }
    e.del(Some(&ctr), "c1", &pm, &br);
}

/// An ADD failing half-way (IPv4 rules in, `ip6tables-restore` refusing)
/// leaves no rule of either family and no record; a DEL after it, as a
/// runtime sends one, succeeds.
#[test]
fn an_add_failing_half_way_is_undone() {
    let e = Env::new("pm-half", 10);
    let tools = cni_tests::TempDir::new("pm-half-tools");
    tools.script(
        "ip6tables-restore",
        "#!/bin/sh\necho 'injected failure' >&2\nexit 1\n",
    );
    let ctr = TestNetns::new("pm-half-c");
    let data = e.env.data.path().join("portmap");
    let pm = e.portmap_conf(
        json!({"backend": "iptables", "dataDir": data}),
        mappings(),
        &Value::Null,
    );
    let br = e.env.add(&ctr, "c1", &e.bridge_conf()).ok().json();
    let pm = with_prev(&pm, &br);
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = e
        .env
        .call("portmap", "ADD", &pm)
        .container("c1")
        .netns(&ctr.path_str())
        .command();
    cmd.env("PATH", &path);
    let out = e.env.host.run(cmd, Some(pm.to_string().as_bytes()));
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(out.stdout.contains("injected failure"), "{}", out.stdout);
    assert!(!e.nat(false).contains("CNI-DN-"), "{}", e.nat(false));
    assert_eq!(e.env.data.listing("portmap/pmnet10"), Vec::<String>::new());
    e.del(Some(&ctr), "c1", &pm, &br);
}

/// The conformance harness on portmap, both backends: every spec version,
/// the lifecycle with a bridge-shaped prevResult, DEL without a netns.
#[test]
fn conformance() {
    for (i, backend) in ["nftables", "iptables"].iter().enumerate() {
        let e = Env::new(&format!("pm-conf{i}"), 11 + i as u8);
        let prev = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "pmc0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [{"interface": 2, "address": "10.240.101.2/24", "gateway": "10.240.101.1"},
                    {"interface": 2, "address": "fd00:cafe:fb::2/64"}]});
        let data = e.env.data.path().join("portmap");
        let config = json!({"cniVersion": "", "name": "conformance", "type": "portmap",
            "backend": backend, "dataDir": data,
            "runtimeConfig": {"portMappings": mappings()},
            "prevResult": prev});
        common::conformance_passes(&e.env.bin.path().join("portmap"), config);
        assert_eq!(
            e.env.data.listing("portmap/conformance"),
            Vec::<String>::new()
        );
    }
}

/// The UDP conntrack entries of the test host whose original destination
/// port is `port`, read with our ctnetlink dump, as "src:sport>dst:dport".
fn udp_flows_to(e: &Env, port: u16) -> Vec<String> {
    let mut nl = cni_kernel::Netlink::open_netfilter_in(e.env.host.ns()).expect("nfnetlink socket");
    let mut out = Vec::new();
    for family in [cni_kernel::Family::V4, cni_kernel::Family::V6] {
        for f in nl.conntrack_flows(family).expect("dump conntrack") {
            if f.protocol == cni_kernel::conntrack::IPPROTO_UDP && f.dst_port == Some(port) {
                out.push(format!(
                    "{}:{}>{}:{}",
                    f.src,
                    f.src_port.unwrap_or(0),
                    f.dst,
                    port
                ));
            }
        }
    }
    out
}

/// The kernel's own listing of the test host's conntrack table.
fn proc_conntrack(e: &Env) -> String {
    e.env
        .host
        .exec(&["cat", "/proc/net/nf_conntrack"])
        .ok()
        .stdout
}

/// A UDP flow to hostIP:hostPort that began before the mapping (answered
/// by a server on the host itself, so conntrack holds an entry to the old
/// destination) reaches the container with its next packet after ADD:
/// ADD deleted the stale entry. The client keeps one socket, so every
/// datagram belongs to the same flow.
fn clears_stale_udp_conntrack(backend: &str, n: u8) {
    let e = Env::with_nets(
        &format!("pm-ct-{}", &backend[..3]),
        n,
        &format!("10.250.{n}"),
        &format!("10.250.{}.0/24", 100 + n),
    );
    let ctr = TestNetns::new("pm-ct-c");
    serve(&ctr, 80, "ctr");
    let port = 5300 + u16::from(n);
    // The host's own server on the port about to be mapped.
    let host_srv = e
        .env
        .host
        .ns()
        .run(move || UdpSocket::bind(("0.0.0.0", port)).expect("bind host udp"))
        .expect("enter namespace");
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = host_srv.recv_from(&mut buf) {
            let _ = host_srv.send_to(b"host", from);
        }
    });
    let client = e
        .client
        .ns()
        .run(|| UdpSocket::bind("0.0.0.0:0").expect("bind client udp"))
        .expect("enter namespace");
    client
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let to: SocketAddr = format!("{}:{port}", e.host4).parse().unwrap();
    let ask = || {
        let mut buf = [0u8; 64];
        for _ in 0..4 {
            client.send_to(b"hi", to).ok()?;
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    };

    // A namespace tracks connections only once a rule needs conntrack (on
    // a node: earlier mappings, a firewall's `ct state`); this one does.
    e.env
        .host
        .exec(&[
            "nft",
            "add table ip ctprobe; \
             add chain ip ctprobe in { type filter hook prerouting priority 0; }; \
             add rule ip ctprobe in ct state new counter",
        ])
        .ok();
    let br = e.env.add(&ctr, "c1", &e.bridge_conf()).ok().json();
    assert_eq!(
        ask().as_deref(),
        Some("host"),
        "{backend}: before the mapping"
    );
    let sport = client.local_addr().unwrap().port();
    let flow = format!("{}:{sport}>{}:{port}", e.client_ip4(), e.host4);
    assert_eq!(udp_flows_to(&e, port), vec![flow.clone()], "{backend}");
    assert!(
        proc_conntrack(&e).contains(&format!("dport={port}")),
        "{backend}: {}",
        proc_conntrack(&e)
    );

    let pm = e.portmap_conf(
        json!({"backend": backend}),
        json!([{"hostPort": port, "containerPort": 80, "protocol": "udp"}]),
        &br,
    );
    e.env.add(&ctr, "c1", &pm).ok();
    // The entry to the host's server is gone ...
    assert_eq!(udp_flows_to(&e, port), Vec::<String>::new(), "{backend}");
    // ... so the same flow's next datagram is NATed to the container.
    assert_eq!(ask().as_deref(), Some("ctr"), "{backend}: after ADD");
    assert_eq!(
        client.local_addr().unwrap().port(),
        sport,
        "still the same flow"
    );
    let c4 = result_ip(&br, false);
    let after = proc_conntrack(&e);
    assert!(
        after
            .lines()
            .any(|l| l.contains(&format!("dport={port}")) && l.contains(&format!("src={c4}"))),
        "{backend}: the flow is tracked to the container now: {after}"
    );
    e.del(Some(&ctr), "c1", &pm, &br);
}

#[test]
fn nftables_add_clears_stale_udp_conntrack_entries() {
    clears_stale_udp_conntrack("nftables", 20);
}

#[test]
fn iptables_add_clears_stale_udp_conntrack_entries() {
    clears_stale_udp_conntrack("iptables", 21);
}

/// A portmap call at debug level; whether one of its first iptables
/// batches (those that assert instead of listing) was refused and the
/// listing decided.
fn logged(e: &Env, verb: &str, ctr: &TestNetns, id: &str, pm: &Value) -> bool {
    let mut cmd = e
        .env
        .call("portmap", verb, pm)
        .container(id)
        .netns(&ctr.path_str())
        .command();
    cmd.env("CNI_LOG_LEVEL", "debug");
    let out = e.env.host.run(cmd, Some(pm.to_string().as_bytes())).ok();
    out.stderr.contains("listing the table")
}

/// iptables ADD without listing the table: after the first container, an
/// ADD asks the kernel (nfnetlink) whether the shared rules are in place
/// and applies one batch that creates the container's chain (`-N`) and
/// appends to the shared chains. The first container, an ADD repeated
/// without DEL, and a hook removed behind our back take the listing path,
/// which repairs: the rules are there once, the hook is back once (CHECK
/// reported it missing meanwhile), and the mappings carry traffic. DEL with
/// the mappings deletes exactly the rules ADD wrote without listing either.
#[test]
fn iptables_add_without_listing_falls_back_whole() {
    let e = Env::new("pm-opt", 30);
    let tags: [&'static str; 3] = ["c0", "c1", "c2"];
    let ctrs: Vec<TestNetns> = tags.iter().map(|_| TestNetns::new("pm-opt-c")).collect();
    let mut attached = Vec::new();
    let jumps_to = |nat: &str, id: &str| {
        let dn = format!(
            "CNI-DN-{}",
            cni_kernel::nft::hash_hex(&format!("{}{id}", e.net), 21)
        );
        let entries = nat
            .lines()
            .filter(|l| l.starts_with("-A CNI-HOSTPORT-DNAT") && l.ends_with(&format!("-j {dn}")))
            .count();
        let own = nat
            .lines()
            .filter(|l| l.starts_with(&format!("-A {dn} ")))
            .count();
        (entries, own)
    };
    let hook = "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT";
    let hooks = |nat: &str| nat.lines().filter(|l| *l == hook).count();
    for (i, (ctr, tag)) in ctrs.iter().zip(tags).enumerate() {
        serve(ctr, 80, tag);
        let br = e.env.add(ctr, tag, &e.bridge_conf()).ok().json();
        let maps = json!([{"hostPort": 9000 + i, "containerPort": 80, "protocol": "tcp"}]);
        let pm = e.portmap_conf(json!({"backend": "iptables"}), maps, &br);
        if i == 2 {
            // A hook removed behind our back: CHECK says so, and the next
            // ADD, whichever container's, puts it back.
            let mut del_hook = vec!["iptables", "-t", "nat", "-D"];
            del_hook.extend(hook.split(' ').skip(1));
            e.env.host.exec(&del_hook).ok();
            let (_, pm1) = &attached[1];
            let (code, msg) = e.env.verb("CHECK", Some(&ctrs[1]), "c1", pm1).cni_error();
            assert!(code == 100 && msg.contains("PREROUTING"), "{code} {msg}");
        }
        let listed = logged(&e, "ADD", ctr, tag, &pm);
        assert_eq!(listed, i != 1, "{tag}: which ADD lists the table");
        let nat = e.nat(false);
        assert_eq!(hooks(&nat), 1, "{nat}");
        // One entry rule (one protocol); a hairpin mark, a localhost mark, a DNAT.
        assert_eq!(jumps_to(&nat, tag), (1, 3), "{tag}: {nat}");
        e.env.verb("CHECK", Some(ctr), tag, &pm).ok();
        attached.push((br, pm));
    }
    e.env
        .verb("CHECK", Some(&ctrs[1]), "c1", &attached[1].1)
        .ok();
    // An ADD repeated without DEL: `-N` refuses, the listing rewrites.
    assert!(logged(&e, "ADD", &ctrs[1], "c1", &attached[1].1));
    let nat = e.nat(false);
    assert_eq!(jumps_to(&nat, "c1"), (1, 3), "c1 again: {nat}");
    assert_eq!(hooks(&nat), 1, "{nat}");
    for (i, tag) in tags.iter().enumerate() {
        let to = format!("{}:{}", e.host4, 9000 + i);
        assert_eq!(tcp_get(&e.client, &to).as_deref(), Some(*tag), "{to}");
    }
    // DEL with the mappings deletes exactly the rules ADD wrote, in both
    // families, without listing; the bridge DEL follows.
    for ((br, pm), (ctr, tag)) in attached.iter().zip(ctrs.iter().zip(tags)) {
        assert!(!logged(&e, "DEL", ctr, tag, pm), "{tag}: DEL listed");
        for v6 in [false, true] {
            let nat = e.nat(v6);
            assert_eq!(jumps_to(&nat, tag), (0, 0), "{tag} after DEL: {nat}");
        }
        e.del(Some(ctr), tag, pm, br);
    }
    assert!(!e.nat(false).contains("CNI-DN-"), "{}", e.nat(false));
    assert!(!e.nat(true).contains("CNI-DN-"), "{}", e.nat(true));
}

/// With iptables-legacy there is no nf_tables chain to ask, so the
/// listing-free ADD asserts the shared rules with `-C` in its batch: the
/// second container's ADD lists nothing; with a hook gone that batch is
/// refused, changing nothing, and the listing repairs. DEL removes all.
#[test]
fn iptables_legacy_add_asserts_the_shared_rules_in_its_batch() {
    let e = Env::new("pm-leg", 31);
    // The iptables tools a runtime finds first on PATH: the legacy ones.
    let tools = TempDir::new("pm-leg-tools");
    for t in [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ] {
        let legacy = format!("/usr/sbin/{}", t.replacen("tables", "tables-legacy", 1));
        assert!(Path::new(&legacy).exists(), "{legacy} missing");
        std::os::unix::fs::symlink(&legacy, tools.path().join(t)).unwrap();
    }
    let path = format!(
        "{}:{}",
        tools.path_str(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A portmap call with the legacy tools; whether it listed the table.
    let call = |verb: &str, ctr: &TestNetns, id: &str, pm: &Value| {
        let mut cmd = e
            .env
            .call("portmap", verb, pm)
            .container(id)
            .netns(&ctr.path_str())
            .command();
        cmd.env("CNI_LOG_LEVEL", "debug").env("PATH", &path);
        let out = e.env.host.run(cmd, Some(pm.to_string().as_bytes())).ok();
        out.stderr.contains("listing the table")
    };
    let nat = || {
        e.env
            .host
            .exec(&["iptables-legacy-save", "-t", "nat"])
            .ok()
            .stdout
    };
    let hook = "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT";
    let tags: [&'static str; 3] = ["l0", "l1", "l2"];
    let ctrs: Vec<TestNetns> = tags.iter().map(|_| TestNetns::new("pm-leg-c")).collect();
    let mut attached = Vec::new();
    for (i, (ctr, tag)) in ctrs.iter().zip(tags).enumerate() {
        serve(ctr, 80, tag);
        let br = e.env.add(ctr, tag, &e.bridge_conf()).ok().json();
        let maps = json!([{"hostPort": 9100 + i, "containerPort": 80, "protocol": "tcp"}]);
        let pm = e.portmap_conf(json!({"backend": "iptables"}), maps, &br);
        if i == 2 {
            let mut del_hook = vec!["iptables-legacy", "-t", "nat", "-D"];
            del_hook.extend(hook.split(' ').skip(1));
            e.env.host.exec(&del_hook).ok();
        }
        assert_eq!(call("ADD", ctr, tag, &pm), i != 1, "{tag}: which ADD lists");
        let rules = nat();
        assert_eq!(rules.lines().filter(|l| *l == hook).count(), 1, "{rules}");
        attached.push((br, pm));
    }
    for (i, tag) in tags.iter().enumerate() {
        let to = format!("{}:{}", e.host4, 9100 + i);
        assert_eq!(tcp_get(&e.client, &to).as_deref(), Some(*tag), "{to}");
    }
    for ((br, pm), (ctr, tag)) in attached.iter().zip(ctrs.iter().zip(tags)) {
        call("DEL", ctr, tag, pm);
        e.env
            .verb("DEL", Some(ctr), tag, &with_prev(&e.bridge_conf(), br))
            .ok();
    }
    assert!(!nat().contains("CNI-DN-"), "{}", nat());
}
