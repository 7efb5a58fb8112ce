//! Whole chains driven through `cnitool`, as an operator (or a runtime)
//! runs them: bridge + host-local + portmap + firewall from one conflist,
//! port mappings passed as the `portMappings` capability (`CAP_ARGS`).
//! Ours throughout, and mixed with the reference plugins of
//! /usr/lib/cni both ways: our bridge with the reference's portmap and
//! firewall, the reference's bridge with our portmap and firewall.
//!
//! Each case has its own host namespace with iptables' `FORWARD` policy
//! set to DROP (what the firewall plugin exists for), a client namespace on
//! a veth to it, and temporary config, cache, IPAM and record directories.
//! Checked with real traffic: the container reaches the client through the
//! firewall's accepts; the host reaches the container through the mapped
//! port on its own address and on 127.0.0.1; after `cnitool del` no rule
//! names the container's address or ID in either iptables or nftables.
//! Addresses: 10.250.0.0/16 only.
//!
//! Needs root, `cargo build --workspace --bins`, nft, the iptables tools
//! and the reference plugins (`containernetworking-plugins`).

use cni_tests::{our_plugin, reference_plugin, result_ip, Output, TempDir, TestNetns};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Whose plugin each role is.
#[derive(Clone, Copy, Debug)]
enum Who {
    Ours,
    Reference,
}

fn plugin(who: Who, name: &str) -> std::path::PathBuf {
    match who {
        Who::Ours => our_plugin(name),
        Who::Reference => reference_plugin(name),
    }
}

/// One case's world: host and client namespaces, cnitool's directories.
struct Chain {
    host: TestNetns,
    client: TestNetns,
    bin: TempDir,
    conf: TempDir,
    cache: TempDir,
    data: TempDir,
    network: String,
    host4: String,
    client4: String,
}

impl Chain {
    /// Case `n` (0..16): link 10.250.(200+n).0/24 between host (.1) and
    /// client (.2), containers in 10.250.(220+n).0/24. `bridge` decides
    /// bridge and host-local, `chained` portmap and firewall.
    fn new(tag: &str, n: u8, bridge: Who, chained: Who) -> Chain {
        let c = Chain {
            host: TestNetns::new(tag),
            client: TestNetns::new(&format!("{tag}-cl")),
            bin: TempDir::new(&format!("{tag}-bin")),
            conf: TempDir::new(&format!("{tag}-conf")),
            cache: TempDir::new(&format!("{tag}-cache")),
            data: TempDir::new(&format!("{tag}-data")),
            network: format!("chain{n}"),
            host4: format!("10.250.{}.1", 200 + n),
            client4: format!("10.250.{}.2", 200 + n),
        };
        c.bin.add_plugin("bridge", &plugin(bridge, "bridge"));
        c.bin
            .add_plugin("host-local", &plugin(bridge, "host-local"));
        c.bin.add_plugin("portmap", &plugin(chained, "portmap"));
        c.bin.add_plugin("firewall", &plugin(chained, "firewall"));
        c.host
            .exec(&[
                "ip",
                "link",
                "add",
                "chhost",
                "type",
                "veth",
                "peer",
                "name",
                "chcl",
                "netns",
                c.client.name(),
            ])
            .ok();
        for (ns, dev, addr) in [
            (&c.host, "chhost", &c.host4),
            (&c.client, "chcl", &c.client4),
        ] {
            ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", dev])
                .ok();
            ns.exec(&["ip", "link", "set", dev, "up"]).ok();
            ns.exec(&["ip", "link", "set", "lo", "up"]).ok();
        }
        // The client answers the containers through the host.
        c.client
            .exec(&["ip", "route", "add", "10.250.0.0/16", "via", &c.host4])
            .ok();
        c.host.exec(&["iptables", "-P", "FORWARD", "DROP"]).ok();
        let conflist = json!({
            "cniVersion": "1.0.0",
            "name": c.network,
            "plugins": [
                {"type": "bridge", "bridge": format!("chbr{n}"), "isGateway": true,
                 "hairpinMode": true,
                 "ipam": {"type": "host-local",
                          "ranges": [[{"subnet": format!("10.250.{}.0/24", 220 + n)}]],
                          "routes": [{"dst": "0.0.0.0/0"}],
                          "dataDir": c.data.path().join("ipam")}},
                // dataDir: our plugins' records in the test's directory
                // (the reference ignores the key).
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true,
                 "dataDir": c.data.path().join("portmap")},
                {"type": "firewall", "dataDir": c.data.path().join("firewall")}
            ]
        });
        std::fs::write(
            c.conf.path().join("10-chain.conflist"),
            conflist.to_string(),
        )
        .expect("write conflist");
        c
    }

    /// `cnitool ARGS` in the host namespace, mapping host port 8080 to 80.
    fn cnitool(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(our_plugin("cnitool"));
        cmd.args(["--cache-dir", &self.cache.path_str()])
            .args(args)
            .env("NETCONFPATH", self.conf.path())
            .env("CNI_PATH", self.bin.path())
            .env(
                "CAP_ARGS",
                json!({"portMappings": [
                    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]})
                .to_string(),
            )
            .env_remove("CNI_IFNAME")
            .env_remove("CNI_ARGS");
        self.host.run(cmd, None)
    }

    /// Every rule of the host namespace: iptables (nat and filter) and the
    /// nftables ruleset.
    fn rules(&self) -> String {
        let mut out = String::new();
        for table in ["nat", "filter"] {
            out += &self.host.exec(&["iptables-save", "-t", table]).ok().stdout;
        }
        out + &self.host.exec(&["nft", "list", "ruleset"]).ok().stdout
    }
}

/// A TCP server in `ns` on `port` writing `tag` to anyone who connects.
fn serve(ns: &TestNetns, port: u16, tag: &'static str) {
    let l = ns
        .ns()
        .run(|| TcpListener::bind(("0.0.0.0", port)).expect("bind tcp"))
        .expect("enter namespace");
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(tag.as_bytes());
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

/// ADD, traffic, CHECK, DEL through cnitool; no rule left behind.
fn chain_works(tag: &str, n: u8, bridge: Who, chained: Who) {
    let what = format!("bridge {bridge:?}, portmap and firewall {chained:?}");
    let c = Chain::new(tag, n, bridge, chained);
    let ctr = TestNetns::new(&format!("{tag}-c"));
    let ctr_path = ctr.path_str();
    serve(&ctr, 80, "ctr");
    serve(&c.client, 9000, "client");

    let result = c.cnitool(&["add", &c.network, &ctr_path]).ok().json();
    let c4 = result_ip(&result, false);
    assert!(
        c4.starts_with(&format!("10.250.{}.", 220 + n)),
        "{what}: {result}"
    );

    // The firewall's accepts let the container out past FORWARD DROP.
    assert_eq!(
        tcp_get(&ctr, &format!("{}:9000", c.client4)).as_deref(),
        Some("client"),
        "{what}: container to client through the firewall"
    );
    // The port mapping, from the host: its own address and localhost.
    assert_eq!(
        tcp_get(&c.host, &format!("{}:8080", c.host4)).as_deref(),
        Some("ctr"),
        "{what}: host address and mapped port"
    );
    assert_eq!(
        tcp_get(&c.host, "127.0.0.1:8080").as_deref(),
        Some("ctr"),
        "{what}: localhost and mapped port"
    );
    let rules = c.rules();
    assert!(rules.contains(&c4), "{what}: rules name {c4}: {rules}");
    // Debian's reference portmap 1.1.1 fails its own CHECK on an
    // IPv4-only container ("could not check ipv6 dnat: chain CNI-DN-...
    // not found"): CHECK runs only where the portmap is ours.
    if let Who::Ours = chained {
        c.cnitool(&["check", &c.network, &ctr_path]).ok();
    }

    c.cnitool(&["del", &c.network, &ctr_path]).ok();
    let rules = c.rules();
    assert!(
        !rules.contains(&c4) && !rules.contains("cnitool-"),
        "{what}: rules of the container left after DEL: {rules}"
    );
    assert_eq!(
        tcp_get(&c.host, &format!("{}:8080", c.host4)),
        None,
        "{what}: mapping gone"
    );
    // A second DEL (a runtime retrying) succeeds too.
    c.cnitool(&["del", &c.network, &ctr_path]).ok();
}

#[test]
fn ours_throughout() {
    chain_works("ch-ours", 0, Who::Ours, Who::Ours);
}

#[test]
fn our_bridge_with_reference_portmap_and_firewall() {
    chain_works("ch-obr", 1, Who::Ours, Who::Reference);
}

#[test]
fn reference_bridge_with_our_portmap_and_firewall() {
    chain_works("ch-rbr", 2, Who::Reference, Who::Ours);
}
