//! The bandwidth plugin end to end, chained after our bridge and
//! host-local as a runtime chains it, in namespaces the test makes: real
//! TCP transfers between the test's "host" namespace and a container show
//! each direction shaped to its configured rate (and unshaped traffic much
//! faster); the kernel state (qdiscs, the IFB) is checked after ADD and
//! DEL; DEL is repeatable and works without a namespace or prevResult; GC
//! removes only the IFBs of containers its list does not name; CHECK
//! notices a qdisc removed behind its back; a failed ADD leaves nothing;
//! and our plugin and the reference one (/usr/lib/cni) chain with each
//! other's bridge and understand each other's state.
//!
//! Transfers use sockets this process opens inside the namespaces (a
//! socket stays in the namespace it was created in).
//!
//! Addresses: 10.243.N.0/24 and fd00:cafe:b0NN::/64, N per test.

mod common;

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, Output, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Ingress (towards the container) and egress rates the shaping tests ask
/// for, in bits per second: different, so a swapped direction shows.
const INGRESS_RATE: u64 = 16_000_000;
const EGRESS_RATE: u64 = 8_000_000;
/// Bursts of 32 KiB and 16 KiB: above the MTU, small against a second's
/// worth of traffic.
const INGRESS_BURST: u64 = 262_144;
const EGRESS_BURST: u64 = 131_072;

/// A shaped transfer's goodput must be within this fraction of the
/// configured rate. TCP over Ethernet carries at most 1448 bytes of payload
/// in 1514 on the wire (≈ 0.956 of the rate), and the bucket may add its
/// burst once, so the measured goodput sits a little under the rate.
const TOLERANCE_BELOW: f64 = 0.20;
const TOLERANCE_ABOVE: f64 = 0.10;

/// Unshaped traffic must be at least this many times the shaped rate.
const UNSHAPED_FACTOR: f64 = 10.0;

/// How long a transfer runs before it is measured, and for how long.
const WARMUP: Duration = Duration::from_millis(500);
const WINDOW: Duration = Duration::from_millis(2500);

/// The harness: our bridge, host-local and bandwidth on `CNI_PATH` (plus
/// the reference ones where a test adds them), network `bwnetN`, bridge
/// `bwbrN` with the gateway addresses in the host namespace.
struct Env {
    env: PluginEnv,
    net: String,
    n: u8,
}

impl Env {
    fn new(tag: &str, n: u8) -> Env {
        let env = PluginEnv::new(
            tag,
            &[
                ("bridge", &our_plugin("bridge")),
                ("host-local", &require_our_host_local("bandwidth tests")),
                ("bandwidth", &our_plugin("bandwidth")),
            ],
        );
        Env {
            env,
            net: format!("bwnet{n}"),
            n,
        }
    }

    fn host(&self) -> &TestNetns {
        &self.env.host
    }

    fn bridge_conf(&self, version: &str) -> Value {
        let n = self.n;
        let ipam = host_local_ipam(
            &self.env.data,
            &[
                &format!("10.243.{n}.0/24"),
                &format!("fd00:cafe:b0{n:02x}::/64"),
            ],
        );
        json!({"cniVersion": version, "name": self.net, "type": "bridge",
               "bridge": format!("bwbr{n}"), "isGateway": true, "ipam": ipam})
    }

    /// The bandwidth config with `limits` (top-level keys or runtimeConfig).
    fn bw_conf(&self, version: &str, limits: Value) -> Value {
        merge(
            json!({"cniVersion": version, "name": self.net, "type": "bandwidth"}),
            limits,
        )
    }

    /// bridge ADD, then bandwidth ADD with its result; returns (bridge
    /// result, bandwidth config with that prevResult, bandwidth result).
    fn add(&self, ctr: &TestNetns, id: &str, bw: &Value) -> (Value, Value, Value) {
        let version = bw["cniVersion"].as_str().unwrap();
        let br = self
            .env
            .add(ctr, id, &self.bridge_conf(version))
            .ok()
            .json();
        let bw = with_prev(bw, &br);
        let out = self.env.add(ctr, id, &bw).ok().json();
        (br, bw, out)
    }

    fn verb(&self, verb: &str, ctr: Option<&TestNetns>, id: &str, conf: &Value) -> Output {
        self.env.verb(verb, ctr, id, conf)
    }

    /// bandwidth DEL, then bridge DEL.
    fn del(&self, ctr: &TestNetns, id: &str, bw: &Value, br: &Value) {
        self.verb("DEL", Some(ctr), id, bw).ok();
        let version = bw["cniVersion"].as_str().unwrap();
        self.verb(
            "DEL",
            Some(ctr),
            id,
            &with_prev(&self.bridge_conf(version), br),
        )
        .ok();
    }

    /// `tc -j qdisc show dev DEV` in the host namespace.
    fn qdiscs(&self, dev: &str) -> Vec<Value> {
        let out = self.host().exec(&["tc", "-j", "qdisc", "show", "dev", dev]);
        assert_eq!(out.status, 0, "tc qdisc show dev {dev}: {}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("tc -j printed no JSON ({e}): {}", out.stdout))
            .as_array()
            .cloned()
            .expect("tc -j qdisc show prints a list")
    }

    /// The `tbf` at the root of `dev`, if there is one.
    fn root_tbf(&self, dev: &str) -> Option<Value> {
        self.qdiscs(dev)
            .into_iter()
            .find(|q| q["kind"] == "tbf" && q["root"] == true)
    }

    fn has_ingress_qdisc(&self, dev: &str) -> bool {
        self.qdiscs(dev).iter().any(|q| q["kind"] == "ingress")
    }

    /// `tc filter show dev DEV ingress` as text.
    fn ingress_filters(&self, dev: &str) -> String {
        self.host()
            .exec(&["tc", "filter", "show", "dev", dev, "ingress"])
            .ok()
            .stdout
    }
}

/// The IFB the reference names for a container: `bwp` and 12 hex digits of
/// SHA-512(network name + container ID).
fn ifb_of(net: &str, id: &str) -> String {
    format!(
        "bwp{}",
        cni_kernel::nft::hash_hex(&format!("{net}{id}"), 12)
    )
}

/// The host-side veth of a bridge result.
fn host_veth(br: &Value) -> String {
    br["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["name"].as_str().is_some_and(|n| n.starts_with("veth")))
        .and_then(|i| i["name"].as_str())
        .unwrap_or_else(|| panic!("no host veth in {br}"))
        .to_string()
}

fn limits() -> Value {
    json!({"ingressRate": INGRESS_RATE, "ingressBurst": INGRESS_BURST,
           "egressRate": EGRESS_RATE, "egressBurst": EGRESS_BURST})
}

/// TCP goodput in bits per second from `sender` to `addr` (an address in
/// `receiver`): the sender writes as fast as it can; the receiver counts
/// what arrives during `window` after `WARMUP`, then closes (the reset
/// stops the sender).
fn goodput(sender: &TestNetns, receiver: &TestNetns, addr: &str, window: Duration) -> f64 {
    let ip: IpAddr = addr.parse().expect("an IP address");
    let listener = receiver
        .ns()
        .run(|| TcpListener::bind(SocketAddr::new(ip, 0)))
        .expect("enter receiver namespace")
        .expect("bind receiver");
    let to = listener.local_addr().expect("local address");
    let stream = sender
        .ns()
        .run(|| TcpStream::connect_timeout(&to, IO_TIMEOUT))
        .expect("enter sender namespace")
        .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    let (mut rx, _) = listener.accept().expect("accept");
    rx.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut stream = stream;
            stream
                .set_write_timeout(Some(WARMUP + window + IO_TIMEOUT))
                .expect("write timeout");
            let buf = vec![0x5au8; 64 * 1024];
            let deadline = Instant::now() + WARMUP + window + IO_TIMEOUT;
            while Instant::now() < deadline && stream.write_all(&buf).is_ok() {}
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = |what: &str| -> usize {
            // A read with a timeout set is not restarted after a stop
            // signal (signal(7)): EINTR is a retry, as `read_exact` has it.
            let n = loop {
                match rx.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
            .unwrap_or_else(|e| panic!("receive ({what}) from {to}: {e}"));
            assert!(n > 0, "sender to {to} closed early ({what})");
            n
        };
        read("first bytes");
        let started = Instant::now();
        while started.elapsed() < WARMUP {
            read("warm-up");
        }
        let t0 = Instant::now();
        let mut bytes = 0usize;
        while t0.elapsed() < window {
            bytes += read("measurement");
        }
        let secs = t0.elapsed().as_secs_f64();
        // Unread data makes the close a reset: the sender's write fails.
        drop(rx);
        bytes as f64 * 8.0 / secs
    })
}

fn mbit(bps: f64) -> String {
    format!("{:.2} Mbit/s", bps / 1e6)
}

/// `got` (bits/s) is within the tolerance of `want`.
fn assert_shaped(what: &str, got: f64, want: u64) {
    let want = want as f64;
    println!(
        "{what}: {} measured, {} configured ({:.1}%)",
        mbit(got),
        mbit(want),
        got / want * 100.0
    );
    assert!(
        got >= want * (1.0 - TOLERANCE_BELOW) && got <= want * (1.0 + TOLERANCE_ABOVE),
        "{what}: {} is not within -{}%/+{}% of {}",
        mbit(got),
        TOLERANCE_BELOW * 100.0,
        TOLERANCE_ABOVE * 100.0,
        mbit(want)
    );
}

fn assert_unshaped(what: &str, got: f64, shaped: u64) {
    println!("{what}: {} unshaped", mbit(got));
    assert!(
        got >= shaped as f64 * UNSHAPED_FACTOR,
        "{what}: unshaped {} is not {UNSHAPED_FACTOR} times the shaped {}",
        mbit(got),
        mbit(shaped as f64)
    );
}

/// Real traffic: unshaped first, then shaped to the configured rate in
/// each direction; the kernel state after ADD and after DEL.
#[test]
fn shapes_each_direction_to_its_rate() {
    let e = Env::new("bw-rate", 1);
    let ctr = TestNetns::new("bw-rate-c");
    let br = e.env.add(&ctr, "c1", &e.bridge_conf("1.0.0")).ok().json();
    let c4 = result_ip(&br, false);
    let gw4 = format!("10.243.{}.1", e.n);
    assert!(ctr.ping_within(&gw4, Duration::from_secs(5)), "c1 -> {gw4}");
    let unshaped_in = goodput(e.host(), &ctr, &c4, Duration::from_secs(1));
    let unshaped_out = goodput(&ctr, e.host(), &gw4, Duration::from_secs(1));

    let bw = with_prev(&e.bw_conf("1.0.0", limits()), &br);
    let out = e.env.add(&ctr, "c1", &bw).ok().json();
    let veth = host_veth(&br);
    let ifb = ifb_of(&e.net, "c1");
    // The result is prevResult with the IFB appended.
    let ifaces = out["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), br["interfaces"].as_array().unwrap().len() + 1);
    assert_eq!(ifaces.last().unwrap()["name"], ifb.as_str(), "{out}");
    assert!(ifaces.last().unwrap()["mac"].is_string(), "{out}");
    assert_eq!(out["ips"], br["ips"]);
    // tc reports rates in bytes per second.
    let tbf = e.root_tbf(&veth).expect("tbf on the host veth");
    assert_eq!(tbf["handle"], "1:");
    assert_eq!(tbf["options"]["rate"], INGRESS_RATE / 8, "{tbf}");
    assert_eq!(tbf["options"]["burst"], INGRESS_BURST / 8, "{tbf}");
    assert_eq!(tbf["options"]["lat"], 25_000, "{tbf}");
    assert!(e.has_ingress_qdisc(&veth));
    let filters = e.ingress_filters(&veth);
    assert!(
        filters.contains(&format!("Egress Redirect to device {ifb}")),
        "{filters}"
    );
    let link = e.host().link(&ifb).expect("the IFB exists");
    assert_eq!(link["linkinfo"]["info_kind"], "ifb", "{link}");
    assert!(link["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(link["ifalias"], format!("cni-bandwidth:{}:c1", e.net));
    let tbf = e.root_tbf(&ifb).expect("tbf on the IFB");
    assert_eq!(tbf["options"]["rate"], EGRESS_RATE / 8, "{tbf}");
    e.verb("CHECK", Some(&ctr), "c1", &with_prev(&bw, &out))
        .ok();

    let shaped_in = goodput(e.host(), &ctr, &c4, WINDOW);
    let shaped_out = goodput(&ctr, e.host(), &gw4, WINDOW);
    assert_shaped("ingress (host -> container)", shaped_in, INGRESS_RATE);
    assert_shaped("egress (container -> host)", shaped_out, EGRESS_RATE);
    assert_unshaped("ingress (host -> container)", unshaped_in, INGRESS_RATE);
    assert_unshaped("egress (container -> host)", unshaped_out, EGRESS_RATE);

    // DEL: the IFB and both qdiscs go; the veth stays for the bridge's DEL.
    e.verb("DEL", Some(&ctr), "c1", &with_prev(&bw, &out)).ok();
    assert!(e.host().link(&ifb).is_none(), "IFB left");
    assert!(e.host().link(&veth).is_some());
    assert_eq!(e.root_tbf(&veth), None, "{:?}", e.qdiscs(&veth));
    assert!(!e.has_ingress_qdisc(&veth), "{:?}", e.qdiscs(&veth));
    // And traffic is unshaped again.
    let after = goodput(&ctr, e.host(), &gw4, Duration::from_secs(1));
    assert_unshaped("egress after DEL", after, EGRESS_RATE);
    e.del(&ctr, "c1", &bw, &br);
}

/// ADD, CHECK (0.4.0+), DEL and a second DEL under every version the
/// reference supports; 0.1.0 and 0.2.0 are refused with code 1.
#[test]
fn every_supported_version() {
    let e = Env::new("bw-ver", 2);
    for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        .iter()
        .enumerate()
    {
        let ctr = TestNetns::new("bw-ver-c");
        let id = format!("v{i}");
        let (br, bw, out) = e.add(&ctr, &id, &e.bw_conf(version, limits()));
        assert_eq!(out["cniVersion"], *version);
        assert!(
            out["interfaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["name"] == ifb_of(&e.net, &id).as_str()),
            "{version}: {out}"
        );
        if *version >= "0.4.0" {
            e.verb("CHECK", Some(&ctr), &id, &with_prev(&bw, &out)).ok();
        }
        e.verb("DEL", Some(&ctr), &id, &with_prev(&bw, &out)).ok();
        e.verb("DEL", Some(&ctr), &id, &with_prev(&bw, &out)).ok();
        assert!(e.host().link(&ifb_of(&e.net, &id)).is_none(), "{version}");
        e.del(&ctr, &id, &bw, &br);
    }
    for version in ["0.1.0", "0.2.0"] {
        let ctr = TestNetns::new("bw-ver-old");
        let conf = with_prev(
            &e.bw_conf(version, limits()),
            &json!({"cniVersion": version, "ip4": {"ip": "10.243.2.9/24"}}),
        );
        let msg = e.env.add(&ctr, "old", &conf).error_with(1);
        assert!(msg.contains("incompatible CNI versions"), "{msg}");
    }
}

/// containerd's CRI sends the capability with capitalised keys; no limits
/// (absent, zero, or an empty capability) pass prevResult through and
/// create nothing.
#[test]
fn runtime_config_in_any_case_and_no_limits_pass_through() {
    let e = Env::new("bw-case", 3);
    let ctr = TestNetns::new("bw-case-c");
    let rc = json!({"capabilities": {"bandwidth": true}, "runtimeConfig": {"Bandwidth":
        {"IngressRate": INGRESS_RATE, "IngressBurst": INGRESS_BURST,
         "EgressRate": EGRESS_RATE, "EgressBurst": EGRESS_BURST}}});
    let (br, bw, out) = e.add(&ctr, "c1", &e.bw_conf("1.0.0", rc));
    let veth = host_veth(&br);
    let tbf = e.root_tbf(&veth).expect("tbf from runtimeConfig");
    assert_eq!(tbf["options"]["rate"], INGRESS_RATE / 8);
    let ifb = ifb_of(&e.net, "c1");
    let tbf = e.root_tbf(&ifb).expect("tbf on the IFB from runtimeConfig");
    assert_eq!(tbf["options"]["rate"], EGRESS_RATE / 8);
    // Top-level keys win over runtimeConfig.
    let mut both = with_prev(&bw, &out);
    both["ingressRate"] = json!(INGRESS_RATE * 2);
    both["ingressBurst"] = json!(INGRESS_BURST);
    let msg = e.verb("CHECK", Some(&ctr), "c1", &both).error_with(100);
    assert!(msg.contains("rate"), "{msg}");
    e.del(&ctr, "c1", &bw, &br);

    for (i, none) in [
        json!({}),
        json!({"ingressRate": 0, "ingressBurst": 0, "egressRate": 0, "egressBurst": 0}),
        json!({"runtimeConfig": {"bandwidth": {}}}),
    ]
    .into_iter()
    .enumerate()
    {
        let ctr = TestNetns::new("bw-none-c");
        let id = format!("n{i}");
        let br = e.env.add(&ctr, &id, &e.bridge_conf("1.0.0")).ok().json();
        let veth = host_veth(&br);
        let links = e.host().link_names();
        let qdiscs = e.qdiscs(&veth);
        let bw = with_prev(&e.bw_conf("1.0.0", none.clone()), &br);
        let out = e.env.add(&ctr, &id, &bw).ok().json();
        assert_eq!(out, br, "{none}: prevResult passes through");
        assert_eq!(e.host().link_names(), links, "{none}");
        assert_eq!(e.qdiscs(&veth), qdiscs, "{none}");
        e.verb("CHECK", Some(&ctr), &id, &bw).ok();
        e.del(&ctr, &id, &bw, &br);
    }
}

/// CHECK fails, naming what is wrong, when a qdisc or the redirect is
/// removed behind the plugin's back; DEL still cleans up.
#[test]
fn check_notices_what_was_removed_behind_its_back() {
    let e = Env::new("bw-check", 4);
    type Break<'a> = (&'a str, Box<dyn Fn(&str, &str) -> Vec<String>>, &'a str);
    let cases: Vec<Break> = vec![
        (
            "ifb root",
            Box::new(|_veth: &str, ifb: &str| {
                vec![
                    "tc".into(),
                    "qdisc".into(),
                    "del".into(),
                    "dev".into(),
                    ifb.into(),
                    "root".into(),
                ]
            }),
            "egress shaping: the root qdisc of bwp",
        ),
        (
            "veth root",
            Box::new(|veth: &str, _ifb: &str| {
                vec![
                    "tc".into(),
                    "qdisc".into(),
                    "del".into(),
                    "dev".into(),
                    veth.into(),
                    "root".into(),
                ]
            }),
            "ingress shaping: the root qdisc of veth",
        ),
        (
            "veth ingress",
            Box::new(|veth: &str, _ifb: &str| {
                vec![
                    "tc".into(),
                    "qdisc".into(),
                    "del".into(),
                    "dev".into(),
                    veth.into(),
                    "ingress".into(),
                ]
            }),
            "is not redirected",
        ),
        (
            "ifb link",
            Box::new(|_veth: &str, ifb: &str| {
                vec!["ip".into(), "link".into(), "del".into(), ifb.into()]
            }),
            "does not exist",
        ),
    ];
    for (i, (what, breaker, want)) in cases.iter().enumerate() {
        let ctr = TestNetns::new("bw-check-c");
        let id = format!("k{i}");
        let (br, bw, out) = e.add(&ctr, &id, &e.bw_conf("1.1.0", limits()));
        let after = with_prev(&bw, &out);
        e.verb("CHECK", Some(&ctr), &id, &after).ok();
        let argv = breaker(&host_veth(&br), &ifb_of(&e.net, &id));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        e.host().exec(&argv).ok();
        let msg = e.verb("CHECK", Some(&ctr), &id, &after).error_with(100);
        assert!(msg.contains(want), "{what}: {msg}");
        e.verb("DEL", Some(&ctr), &id, &after).ok();
        assert!(e.host().link(&ifb_of(&e.net, &id)).is_none(), "{what}");
        assert_eq!(e.root_tbf(&host_veth(&br)), None, "{what}");
        assert!(!e.has_ingress_qdisc(&host_veth(&br)), "{what}");
        e.del(&ctr, &id, &bw, &br);
    }
}

/// DEL twice; DEL without CNI_NETNS and without prevResult (only the IFB
/// can be found, and goes); DEL with prevResult but no namespace (the
/// qdiscs go too); DEL after the namespace is gone.
#[test]
fn del_is_repeatable_and_needs_neither_netns_nor_prev_result() {
    let e = Env::new("bw-del", 5);
    let bare_conf = e.bw_conf("1.0.0", limits());

    let ctr = TestNetns::new("bw-del-c1");
    let (br, bw, _) = e.add(&ctr, "d1", &bare_conf);
    let ifb = ifb_of(&e.net, "d1");
    assert!(e.host().link(&ifb).is_some());
    e.verb("DEL", None, "d1", &bare_conf).ok();
    assert!(e.host().link(&ifb).is_none());
    e.verb("DEL", None, "d1", &bare_conf).ok();
    e.verb("DEL", Some(&ctr), "d1", &bw).ok();
    // The veth's qdiscs could only be found through the namespace or
    // prevResult; the bridge's DEL takes them with the veth.
    e.del(&ctr, "d1", &bw, &br);

    let ctr = TestNetns::new("bw-del-c2");
    let (br, bw, _) = e.add(&ctr, "d2", &bare_conf);
    let veth = host_veth(&br);
    e.verb("DEL", None, "d2", &bw).ok();
    assert!(e.host().link(&ifb_of(&e.net, "d2")).is_none());
    assert_eq!(e.root_tbf(&veth), None);
    assert!(!e.has_ingress_qdisc(&veth));
    e.verb("DEL", None, "d2", &bw).ok();
    e.del(&ctr, "d2", &bw, &br);

    // The namespace is gone by the time of the DEL (bridge first: the
    // namespace held the other end of the veth).
    let ctr = TestNetns::new("bw-del-c3");
    let path = ctr.path_str();
    let (br, bw, _) = e.add(&ctr, "d3", &bare_conf);
    drop(ctr);
    let del = |conf: &Value| {
        e.env
            .call("bandwidth", "DEL", conf)
            .container("d3")
            .netns(&path)
            .run_in(e.host())
            .ok();
    };
    del(&bw);
    del(&bw);
    assert!(e.host().link(&ifb_of(&e.net, "d3")).is_none());
    e.env
        .call("bridge", "DEL", &with_prev(&e.bridge_conf("1.0.0"), &br))
        .container("d3")
        .netns(&path)
        .run_in(e.host())
        .ok();
    assert_eq!(e.env.data.reservations(&e.net), Vec::<String>::new());
}

/// GC: without a list nothing goes; with one, only the IFBs of this
/// network's containers it does not name. Another network's IFB and a
/// listed container's stay and keep working; STATUS succeeds.
#[test]
fn gc_removes_only_stale_ifbs_of_its_network() {
    let e = Env::new("bw-gc", 6);
    let conf = e.bw_conf("1.1.0", limits());
    let live = TestNetns::new("bw-gc-live");
    let stale = TestNetns::new("bw-gc-stale");
    let (brl, bwl, outl) = e.add(&live, "live", &conf);
    let (brs, bws, _) = e.add(&stale, "stale", &conf);
    // A container of another network, with the same plugin.
    let mut other_conf = conf.clone();
    other_conf["name"] = json!("bwnet6other");
    let other = TestNetns::new("bw-gc-other");
    let mut other_br = e.bridge_conf("1.1.0");
    other_br["name"] = json!("bwnet6other");
    other_br["bridge"] = json!("bwbr6o");
    other_br["ipam"] = host_local_ipam(&e.env.data, &["10.243.106.0/24"]);
    let obr = e.env.add(&other, "other", &other_br).ok().json();
    let obw = with_prev(&other_conf, &obr);
    e.env.add(&other, "other", &obw).ok();
    let ifbs = [
        ifb_of(&e.net, "live"),
        ifb_of(&e.net, "stale"),
        ifb_of("bwnet6other", "other"),
    ];
    let exists = |n: &str| e.host().link(n).is_some();
    assert!(ifbs.iter().all(|n| exists(n)));

    e.env.bare("GC", &conf).ok();
    assert!(ifbs.iter().all(|n| exists(n)), "GC without a list");

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "live", "ifname": "eth0"}]);
    e.env.bare("GC", &gc).ok();
    assert!(exists(&ifbs[0]), "listed container kept");
    assert!(!exists(&ifbs[1]), "stale container collected");
    assert!(exists(&ifbs[2]), "another network's IFB kept");
    e.verb("CHECK", Some(&live), "live", &with_prev(&bwl, &outl))
        .ok();
    e.env.bare("STATUS", &conf).ok();

    e.del(&live, "live", &bwl, &brl);
    e.del(&stale, "stale", &bws, &brs);
    e.verb("DEL", Some(&other), "other", &obw).ok();
    e.verb("DEL", Some(&other), "other", &with_prev(&other_br, &obr))
        .ok();
    assert!(ifbs.iter().all(|n| !exists(n)));
}

/// An ADD failing half-way (the veth already has an ingress qdisc, so the
/// redirect cannot be added) undoes its tbf and IFB, and leaves the qdisc
/// it did not make. Bad limits are refused with code 7 before anything.
#[test]
fn a_failed_add_is_undone() {
    let e = Env::new("bw-fail", 7);
    let ctr = TestNetns::new("bw-fail-c");
    let br = e.env.add(&ctr, "f1", &e.bridge_conf("1.0.0")).ok().json();
    let veth = host_veth(&br);
    e.host()
        .exec(&["tc", "qdisc", "add", "dev", &veth, "ingress"])
        .ok();
    let links = e.host().link_names();
    let bw = with_prev(&e.bw_conf("1.0.0", limits()), &br);
    let msg = e.env.add(&ctr, "f1", &bw).error_with(100);
    assert!(
        msg.contains("ingress qdisc") && msg.contains("EEXIST"),
        "{msg}"
    );
    assert_eq!(e.host().link_names(), links, "IFB removed");
    assert_eq!(e.root_tbf(&veth), None, "tbf removed");
    assert!(
        e.has_ingress_qdisc(&veth),
        "the qdisc it did not make stays"
    );
    e.verb("DEL", Some(&ctr), "f1", &bw).ok();

    let bad = with_prev(&e.bw_conf("1.0.0", json!({"egressRate": 1000000})), &br);
    let msg = e.env.add(&ctr, "f1", &bad).error_with(7);
    assert!(
        msg.contains("if rate is set, burst must also be set"),
        "{msg}"
    );
    let msg = e
        .env
        .add(&ctr, "f1", &e.bw_conf("1.0.0", limits()))
        .error_with(7);
    assert!(msg.contains("must be called as chained plugin"), "{msg}");
    e.del(&ctr, "f1", &bw, &br);
}

/// The conformance harness: every version, the verbs, DEL without a
/// namespace. Its containers have no veth, so the config asks for no
/// limits (the shaping lifecycle is tested above).
#[test]
fn conformance() {
    let e = Env::new("bw-conf", 8);
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "bwc0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 2, "address": "10.243.8.2/24", "gateway": "10.243.8.1"},
                {"interface": 2, "address": "fd00:cafe:b008::2/64"}]});
    let config = json!({"cniVersion": "", "name": "conformance", "type": "bandwidth",
        "ingressRate": 0, "ingressBurst": 0, "prevResult": prev});
    let report = common::conformance_passes(&e.env.bin.path().join("bandwidth"), config);
    println!("{report}");
}

/// Our bridge with the reference bandwidth: the reference names the IFB
/// as we do, our CHECK accepts its state and our DEL removes it; the
/// reference's CHECK accepts ours and its DEL removes our IFB, after which
/// ours removes the qdiscs it left.
#[test]
fn reference_bandwidth_and_ours_understand_each_other() {
    let e = Env::new("bw-ref", 9);
    e.env
        .bin
        .add_plugin("bandwidth-ref", &reference_plugin("bandwidth"));
    let ctr = TestNetns::new("bw-ref-c");
    // Debian's reference speaks up to 1.0.0.
    let ours = e.bw_conf("1.0.0", limits());
    let mut theirs = ours.clone();
    theirs["type"] = json!("bandwidth-ref");
    let br = e.env.add(&ctr, "r1", &e.bridge_conf("1.0.0")).ok().json();
    let veth = host_veth(&br);
    let ifb = ifb_of(&e.net, "r1");

    // Theirs adds.
    let out = e.env.add(&ctr, "r1", &with_prev(&theirs, &br)).ok().json();
    assert!(
        e.host().link(&ifb).is_some(),
        "the reference named it {out}"
    );
    e.verb("CHECK", Some(&ctr), "r1", &with_prev(&ours, &out))
        .ok();
    e.verb("DEL", Some(&ctr), "r1", &with_prev(&ours, &out))
        .ok();
    assert!(e.host().link(&ifb).is_none());
    assert_eq!(e.root_tbf(&veth), None);
    assert!(!e.has_ingress_qdisc(&veth));

    // Ours adds.
    let out = e.env.add(&ctr, "r1", &with_prev(&ours, &br)).ok().json();
    e.verb("CHECK", Some(&ctr), "r1", &with_prev(&theirs, &out))
        .ok();
    e.verb("DEL", Some(&ctr), "r1", &with_prev(&theirs, &out))
        .ok();
    assert!(
        e.host().link(&ifb).is_none(),
        "the reference removes our IFB"
    );
    // It leaves the veth's qdiscs (they go with the veth); ours removes
    // them, the redirect to a deleted IFB included.
    assert!(e.has_ingress_qdisc(&veth));
    e.verb("DEL", Some(&ctr), "r1", &with_prev(&ours, &out))
        .ok();
    assert_eq!(e.root_tbf(&veth), None);
    assert!(!e.has_ingress_qdisc(&veth));
    e.del(&ctr, "r1", &with_prev(&ours, &out), &br);
}

/// The reference bridge with our bandwidth: ADD, real shaped traffic
/// towards the container, CHECK, DEL leaving nothing.
#[test]
fn reference_bridge_with_our_bandwidth() {
    let e = Env::new("bw-refbr", 10);
    e.env
        .bin
        .add_plugin("bridge-ref", &reference_plugin("bridge"));
    let ctr = TestNetns::new("bw-refbr-c");
    let mut brc = e.bridge_conf("1.0.0");
    brc["type"] = json!("bridge-ref");
    let br = e.env.add(&ctr, "b1", &brc).ok().json();
    let bw = with_prev(&e.bw_conf("1.0.0", limits()), &br);
    let out = e.env.add(&ctr, "b1", &bw).ok().json();
    let veth = host_veth(&br);
    let ifb = ifb_of(&e.net, "b1");
    assert!(e.root_tbf(&veth).is_some() && e.root_tbf(&ifb).is_some());
    let got = goodput(e.host(), &ctr, &result_ip(&br, false), WINDOW);
    assert_shaped("ingress behind the reference bridge", got, INGRESS_RATE);
    e.verb("CHECK", Some(&ctr), "b1", &with_prev(&bw, &out))
        .ok();
    e.verb("DEL", Some(&ctr), "b1", &with_prev(&bw, &out)).ok();
    assert!(e.host().link(&ifb).is_none());
    assert_eq!(e.root_tbf(&veth), None);
    e.verb("DEL", Some(&ctr), "b1", &with_prev(&brc, &br)).ok();
    assert_eq!(e.env.data.reservations(&e.net), Vec::<String>::new());
}
