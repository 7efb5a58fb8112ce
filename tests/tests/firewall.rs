//! The firewall plugin end to end, chained after our bridge as a runtime
//! chains it: bridge + host-local ADD, then firewall ADD with the bridge's
//! result as `prevResult`. Every test has its own host namespace (whose
//! iptables and nftables rules are its own), its own containers, bridges
//! and subnets (10.240.80.0/24 .. 10.240.89.0/24, fd00:cafe:50::/64 ..
//! fd00:cafe:59::/64), and checks the rules the host holds and real pings.
//!
//! Needs root, `cargo build --workspace --bins`, nft and the iptables
//! tools, and for the interop test the reference firewall in /usr/lib/cni.

mod common;

use cni_tests::{
    host_local_ipam, merge, our_plugin, reference_plugin, require_our_host_local, result_ip,
    with_prev, Output, PluginEnv, RunCall, TestNetns,
};
use serde_json::{json, Value};
use std::time::Duration;

const PING_WITHIN: Duration = Duration::from_secs(5);
const BACKENDS: [&str; 2] = ["iptables", "nftables"];

fn env(tag: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            ("host-local", &require_our_host_local("firewall tests")),
            ("firewall", &our_plugin("firewall")),
        ],
    )
}

/// One network: a bridge config (gateway on the bridge, default routes
/// through it, so the host routes between networks) and its name.
struct Net {
    name: String,
    bridge: Value,
}

fn net(env: &PluginEnv, name: &str, br: &str, v4: &str, v6: &str) -> Net {
    let ipam = merge(
        host_local_ipam(&env.data, &[v4, v6]),
        json!({"routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}),
    );
    Net {
        name: name.into(),
        bridge: json!({"cniVersion": "1.0.0", "name": name, "type": "bridge",
                       "bridge": br, "isGateway": true, "ipam": ipam}),
    }
}

/// Networks `fwa` (bridge `fwa0`, 10.240.8N.0/25, fd00:cafe:5N:a::/64) and
/// `fwb` (bridge `fwb0`, 10.240.8N.128/25, fd00:cafe:5N:b::/64).
fn two_nets(env: &PluginEnv, n: u8) -> (Net, Net) {
    (
        net(
            env,
            "fwa",
            "fwa0",
            &format!("10.240.8{n}.0/25"),
            &format!("fd00:cafe:5{n}:a::/64"),
        ),
        net(
            env,
            "fwb",
            "fwb0",
            &format!("10.240.8{n}.128/25"),
            &format!("fd00:cafe:5{n}:b::/64"),
        ),
    )
}

/// A container attached by the bridge plugin.
struct Ctr {
    ns: TestNetns,
    id: String,
    result: Value,
    v4: String,
    v6: String,
}

fn attach(env: &PluginEnv, net: &Net, id: &str) -> Ctr {
    let ns = TestNetns::new("fw-c");
    let result = env.add(&ns, id, &net.bridge).ok().json();
    Ctr {
        v4: result_ip(&result, false),
        v6: result_ip(&result, true),
        ns,
        id: id.into(),
        result,
    }
}

/// The firewall config of `net` for `backend`, its records in the test's
/// data directory.
fn fw(env: &PluginEnv, net: &Net, backend: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": "1.0.0", "name": net.name, "type": "firewall",
               "backend": backend,
               "dataDir": env.data.path().join("firewall").display().to_string()}),
        extra,
    )
}

/// Run the firewall `verb` for `c` with its bridge result as prevResult.
fn fw_verb(env: &PluginEnv, verb: &str, c: &Ctr, conf: &Value) -> Output {
    env.verb(verb, Some(&c.ns), &c.id, &with_prev(conf, &c.result))
}

/// DEL as a runtime may send it late: no prevResult, no CNI_NETNS.
fn fw_bare_del(env: &PluginEnv, id: &str, conf: &Value) -> Output {
    env.verb("DEL", None, id, conf)
}

/// Whether the host holds `ip`'s accept rules in `backend`'s layout.
fn has_rules(env: &PluginEnv, backend: &str, ip: &str) -> bool {
    if backend == "nftables" {
        env.host
            .nft_chain("inet", "cni_firewall", "containers")
            .contains(&format!("\"{ip}\""))
    } else {
        let (save, len) = if ip.contains(':') {
            ("ip6tables-save", 128)
        } else {
            ("iptables-save", 32)
        };
        let out = env.host.exec(&[save, "-t", "filter"]).ok().stdout;
        let s = out.contains(&format!("-A CNI-FORWARD -s {ip}/{len} -j ACCEPT"));
        let d = out.contains(&format!(
            "-A CNI-FORWARD -d {ip}/{len} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        ));
        assert_eq!(s, d, "half of {ip}'s rules:\n{out}");
        s
    }
}

fn filter(env: &PluginEnv, v6: bool) -> String {
    let save = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    env.host.exec(&[save, "-t", "filter"]).ok().stdout
}

/// One ping with a short wait: for pings that must fail.
fn blocked(from: &Ctr, ip: &str) -> bool {
    let fam = if ip.contains(':') { "-6" } else { "-4" };
    from.ns
        .exec(&["ping", fam, "-c", "1", "-W", "1", ip])
        .status
        != 0
}

fn reaches(from: &Ctr, ip: &str) -> bool {
    from.ns.ping_within(ip, PING_WITHIN)
}

/// A default-deny for forwarded traffic in the test's host namespace,
/// where `backend`'s accepts can override it: iptables' FORWARD policy
/// DROP for the iptables backend; for nftables, a final `drop` in the
/// plugin's own `forward` chain (made here before the plugin's first ADD,
/// which must put its jumps ahead of it).
fn default_deny(env: &PluginEnv, backend: &str) {
    if backend == "nftables" {
        let script = "add table inet cni_firewall\n\
            add chain inet cni_firewall forward { type filter hook forward priority 0; policy accept; }\n\
            add rule inet cni_firewall forward drop comment \"operator default deny\"\n";
        let mut cmd = std::process::Command::new("nft");
        cmd.args(["-f", "-"]);
        env.host.run(cmd, Some(script.as_bytes())).ok();
    } else {
        for bin in ["iptables", "ip6tables"] {
            env.host.exec(&[bin, "-P", "FORWARD", "DROP"]).ok();
        }
    }
}

/// Two networks, one container each, a default-deny in the host: traffic
/// between them flows only as far as the firewall's accept rules allow,
/// both ways and both families; CHECK, DEL (with and without prevResult
/// and netns, twice) remove exactly that container's rules.
fn forwarding_follows_the_accept_rules(backend: &str, n: u8) {
    let env = env(&format!("fw-fwd{n}"));
    let (a, b) = two_nets(&env, n);
    let a1 = attach(&env, &a, "a1");
    let b1 = attach(&env, &b, "b1");
    assert!(
        reaches(&a1, &b1.v4),
        "no forwarding at all between the bridges"
    );
    default_deny(&env, backend);
    assert!(blocked(&a1, &b1.v4), "the default deny is not in effect");

    let fa = fw(&env, &a, backend, json!({}));
    let fb = fw(&env, &b, backend, json!({}));
    let out = fw_verb(&env, "ADD", &a1, &fa).ok().json();
    assert_eq!(out, a1.result, "ADD passes prevResult on unchanged");
    assert!(has_rules(&env, backend, &a1.v4) && has_rules(&env, backend, &a1.v6));
    for ip in [&b1.v4, &b1.v6] {
        assert!(reaches(&a1, ip), "a1 -> {ip} is accepted (and its replies)");
    }
    for ip in [&a1.v4, &a1.v6] {
        assert!(blocked(&b1, ip), "b1 -> {ip}: b1 has no rules yet");
    }
    fw_verb(&env, "ADD", &b1, &fb).ok();
    for ip in [&a1.v4, &a1.v6] {
        assert!(reaches(&b1, ip), "b1 -> {ip} now accepted");
    }
    fw_verb(&env, "CHECK", &a1, &fa).ok();
    fw_verb(&env, "CHECK", &b1, &fb).ok();

    // DEL a1 with its prevResult, twice: its rules go, b1's stay.
    fw_verb(&env, "DEL", &a1, &fa).ok();
    fw_verb(&env, "DEL", &a1, &fa).ok();
    assert!(!has_rules(&env, backend, &a1.v4) && !has_rules(&env, backend, &a1.v6));
    assert!(has_rules(&env, backend, &b1.v4) && has_rules(&env, backend, &b1.v6));
    assert!(blocked(&a1, &b1.v4), "a1's accepts are gone");
    assert!(reaches(&b1, &a1.v4), "b1's accepts still let it through");
    fw_verb(&env, "CHECK", &b1, &fb).ok();
    let msg = fw_verb(&env, "CHECK", &a1, &fa).error_with(100);
    assert!(msg.contains("not found"), "{msg}");

    // b1's DEL arrives late: no prevResult, no netns. Still everything goes.
    fw_bare_del(&env, "b1", &fb).ok();
    fw_bare_del(&env, "b1", &fb).ok();
    assert!(!has_rules(&env, backend, &b1.v4) && !has_rules(&env, backend, &b1.v6));
    assert!(blocked(&b1, &a1.v4));

    // What is shared stays: chains, jumps, the admin chain, the operator's rules.
    if backend == "nftables" {
        let fwd = env.host.nft_chain("inet", "cni_firewall", "forward");
        assert!(fwd.contains("operator default deny"), "{fwd}");
        assert!(
            fwd.contains("\"target\": \"admin\"") || fwd.contains("\"target\":\"admin\""),
            "{fwd}"
        );
        assert!(!env
            .host
            .nft_chain("inet", "cni_firewall", "admin")
            .is_empty());
    } else {
        for v6 in [false, true] {
            let f = filter(&env, v6);
            assert!(
                f.contains(":CNI-ADMIN - ") && f.contains(":FORWARD DROP"),
                "{f}"
            );
            assert!(
                f.contains(
                    "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD"
                ),
                "{f}"
            );
            assert!(f.contains("-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN"), "{f}");
        }
    }
    assert_eq!(env.data.listing("firewall/fwa"), Vec::<String>::new());
    assert_eq!(env.data.listing("firewall/fwb"), Vec::<String>::new());
}

#[test]
fn iptables_accepts_exactly_the_containers_traffic() {
    forwarding_follows_the_accept_rules("iptables", 0);
}

#[test]
fn nftables_accepts_exactly_the_containers_traffic() {
    forwarding_follows_the_accept_rules("nftables", 1);
}

/// An accept in one nftables base chain ends the packet's walk through
/// that chain only: a drop elsewhere in the forward hook (here iptables'
/// FORWARD policy) still drops it. The nftables backend cannot open a host
/// whose iptables FORWARD policy is DROP; the iptables backend can (above).
#[test]
fn nftables_accepts_do_not_override_an_iptables_drop_policy() {
    let env = env("fw-comp");
    let (a, b) = two_nets(&env, 2);
    let a1 = attach(&env, &a, "a1");
    let b1 = attach(&env, &b, "b1");
    default_deny(&env, "iptables");
    fw_verb(&env, "ADD", &a1, &fw(&env, &a, "nftables", json!({}))).ok();
    fw_verb(&env, "ADD", &b1, &fw(&env, &b, "nftables", json!({}))).ok();
    assert!(has_rules(&env, "nftables", &a1.v4));
    assert!(
        blocked(&a1, &b1.v4),
        "iptables' DROP policy wins over our nftables accept"
    );
    // The same containers through the iptables backend get through.
    fw_verb(&env, "ADD", &a1, &fw(&env, &a, "iptables", json!({}))).ok();
    assert!(reaches(&a1, &b1.v4));
}

/// `ingressPolicy` with real pings: two networks with the policy (a1, a2
/// on A; b1 on B). same-bridge: A's containers talk, A and B do not.
/// isolated: not even a1 and a2. The host (not a bridge) still reaches
/// them.
fn ingress_policy(backend: &str, policy: &str, n: u8) {
    let env = env(&format!("fw-ing{n}"));
    // Bridged traffic reaches iptables and the inet forward hook only
    // through br_netfilter; "isolated" cannot work without it.
    assert_eq!(
        env.host.sysctl("net.bridge.bridge-nf-call-iptables"),
        "1",
        "br_netfilter is needed for intra-bridge filtering"
    );
    let (a, b) = two_nets(&env, n);
    let a1 = attach(&env, &a, "a1");
    let a2 = attach(&env, &a, "a2");
    let b1 = attach(&env, &b, "b1");
    assert!(reaches(&a1, &b1.v4) && reaches(&a1, &a2.v4));
    let extra = json!({"ingressPolicy": policy});
    for c in [&a1, &a2] {
        fw_verb(&env, "ADD", c, &fw(&env, &a, backend, extra.clone())).ok();
    }
    fw_verb(&env, "ADD", &b1, &fw(&env, &b, backend, extra.clone())).ok();

    for ip in [&b1.v4, &b1.v6] {
        assert!(blocked(&a1, ip), "{policy}: A -> B {ip} dropped");
    }
    assert!(blocked(&b1, &a1.v4), "{policy}: B -> A dropped");
    let within = policy == "same-bridge";
    for ip in [&a2.v4, &a2.v6] {
        if within {
            assert!(reaches(&a1, ip), "same-bridge: a1 -> a2 {ip} allowed");
        } else {
            assert!(blocked(&a1, ip), "isolated: a1 -> a2 {ip} dropped");
        }
    }
    assert!(
        env.host.ping_within(&a1.v4, PING_WITHIN),
        "the host reaches a1"
    );
    for c in [&a1, &a2, &b1] {
        let conf = fw(
            &env,
            if c.id == "b1" { &b } else { &a },
            backend,
            extra.clone(),
        );
        fw_verb(&env, "CHECK", c, &conf).ok();
        fw_verb(&env, "DEL", c, &conf).ok();
    }
    // The per-bridge rules are shared and stay, as the reference's do.
    assert!(blocked(&a1, &b1.v4));
}

#[test]
fn iptables_same_bridge_policy() {
    ingress_policy("iptables", "same-bridge", 3);
}

#[test]
fn nftables_same_bridge_policy() {
    ingress_policy("nftables", "same-bridge", 4);
}

#[test]
fn iptables_isolated_policy() {
    ingress_policy("iptables", "isolated", 5);
}

#[test]
fn nftables_isolated_policy() {
    ingress_policy("nftables", "isolated", 6);
}

/// GC (1.1.0): without a list nothing goes; with [c1] the other
/// attachments of this network go; with [] all of them; another network's
/// attachment is never touched.
#[test]
fn gc_removes_only_stale_attachments_of_its_network() {
    for (i, backend) in BACKENDS.iter().enumerate() {
        let env = env(&format!("fw-gc{i}"));
        let (a, b) = two_nets(&env, 7);
        let ctrs: Vec<Ctr> = ["c1", "c2", "c3"]
            .iter()
            .map(|id| attach(&env, &a, id))
            .collect();
        let other = attach(&env, &b, "c1");
        let v11 = json!({"cniVersion": "1.1.0"});
        let fa = fw(&env, &a, backend, v11.clone());
        let fb = fw(&env, &b, backend, v11.clone());
        for c in &ctrs {
            fw_verb(&env, "ADD", c, &fa).ok();
        }
        fw_verb(&env, "ADD", &other, &fb).ok();
        let all_there = |which: &[bool]| {
            for (c, want) in ctrs.iter().zip(which) {
                for ip in [&c.v4, &c.v6] {
                    assert_eq!(
                        has_rules(&env, backend, ip),
                        *want,
                        "{backend}: {} {ip}",
                        c.id
                    );
                }
            }
            assert!(
                has_rules(&env, backend, &other.v4),
                "{backend}: other network kept"
            );
        };
        all_there(&[true, true, true]);

        env.bare("GC", &fa).ok();
        all_there(&[true, true, true]);

        let mut gc = fa.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
        env.bare("GC", &gc).ok();
        all_there(&[true, false, false]);
        fw_verb(&env, "CHECK", &ctrs[0], &fa).ok();
        if *backend == "iptables" {
            assert_eq!(env.data.listing("firewall/fwa"), ["c1-eth0"]);
        }

        gc["cni.dev/valid-attachments"] = json!([]);
        env.bare("GC", &gc).ok();
        all_there(&[false, false, false]);
        env.bare("STATUS", &fa).ok();
        fw_verb(&env, "DEL", &other, &fb).ok();
        assert!(!has_rules(&env, backend, &other.v4));
    }
}

/// A container added with one backend is removed by DEL after the config
/// switched to the other one, with or without prevResult.
#[test]
fn del_after_a_backend_switch_removes_the_other_backends_rules() {
    let env = env("fw-sw");
    let a = net(&env, "fwa", "fwa0", "10.240.88.0/24", "fd00:cafe:58::/64");
    for (i, (from, to)) in [("iptables", "nftables"), ("nftables", "iptables")]
        .iter()
        .enumerate()
    {
        for with_prev_result in [true, false] {
            let c = attach(&env, &a, &format!("s{i}{with_prev_result}"));
            fw_verb(&env, "ADD", &c, &fw(&env, &a, from, json!({}))).ok();
            assert!(has_rules(&env, from, &c.v4) && has_rules(&env, from, &c.v6));
            let conf = fw(&env, &a, to, json!({}));
            if with_prev_result {
                fw_verb(&env, "DEL", &c, &conf).ok();
            } else {
                fw_bare_del(&env, &c.id, &conf).ok();
            }
            assert!(
                !has_rules(&env, from, &c.v4) && !has_rules(&env, from, &c.v6),
                "{from} -> {to}, prevResult: {with_prev_result}"
            );
        }
    }
    assert_eq!(env.data.listing("firewall/fwa"), Vec::<String>::new());
}

/// With the reference firewall (iptables backend): its ADD, our CHECK and
/// DEL; our ADD, its CHECK and DEL. Both leave no per-address rule.
#[test]
fn interop_with_the_reference_iptables_backend() {
    let env = env("fw-ref");
    env.bin
        .add_plugin("reffirewall", &reference_plugin("firewall"));
    let a = net(&env, "fwa", "fwa0", "10.240.89.0/24", "fd00:cafe:59::/64");
    let ours = fw(&env, &a, "iptables", json!({}));
    let theirs = merge(ours.clone(), json!({"type": "reffirewall"}));

    let c1 = attach(&env, &a, "r1");
    fw_verb(&env, "ADD", &c1, &theirs).ok();
    assert!(has_rules(&env, "iptables", &c1.v4) && has_rules(&env, "iptables", &c1.v6));
    fw_verb(&env, "CHECK", &c1, &ours).ok();
    fw_verb(&env, "ADD", &c1, &ours).ok();
    let f = filter(&env, false);
    assert_eq!(
        f.matches(&format!("-s {}/32 -j ACCEPT", c1.v4)).count(),
        1,
        "our ADD adds no duplicate of the reference's rule:\n{f}"
    );
    assert_eq!(f.matches("-j CNI-FORWARD").count(), 1, "{f}");
    fw_verb(&env, "DEL", &c1, &ours).ok();
    assert!(!has_rules(&env, "iptables", &c1.v4) && !has_rules(&env, "iptables", &c1.v6));

    let c2 = attach(&env, &a, "r2");
    fw_verb(&env, "ADD", &c2, &ours).ok();
    fw_verb(&env, "CHECK", &c2, &theirs).ok();
    fw_verb(&env, "DEL", &c2, &theirs).ok();
    assert!(!has_rules(&env, "iptables", &c2.v4) && !has_rules(&env, "iptables", &c2.v6));
    // Our record of c2 outlived the reference's DEL; ours cleans it up.
    fw_bare_del(&env, "r2", &ours).ok();
    assert_eq!(env.data.listing("firewall/fwa"), Vec::<String>::new());
}

/// Config errors, versions, STATUS and a missing tool.
#[test]
fn errors_versions_status_and_missing_tools() {
    let env = env("fw-err");
    let a = net(&env, "fwa", "fwa0", "10.240.86.0/24", "fd00:cafe:56::/64");
    let c = attach(&env, &a, "e1");
    let base = fw(&env, &a, "nftables", json!({}));

    let msg = env.add(&c.ns, "e1", &base).error_with(7);
    assert_eq!(msg, "missing prevResult from earlier plugin");
    let msg = fw_verb(
        &env,
        "ADD",
        &c,
        &merge(base.clone(), json!({"backend": "firewalld"})),
    )
    .error_with(2);
    assert!(
        msg.contains("firewalld") && msg.contains("nftables"),
        "{msg}"
    );
    let msg = fw_verb(
        &env,
        "ADD",
        &c,
        &merge(base.clone(), json!({"ingressPolicy": "closed"})),
    )
    .error_with(7);
    assert_eq!(msg, "unknown ingress policy: \"closed\"");
    let no_ifs = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.240.86.9/24"}]});
    let msg = env
        .add(
            &c.ns,
            "e1",
            &with_prev(
                &merge(base.clone(), json!({"ingressPolicy": "isolated"})),
                &no_ifs,
            ),
        )
        .error_with(7);
    assert!(
        msg.contains("make sure to chain \"firewall\" plugin with \"bridge\""),
        "{msg}"
    );
    fw_verb(
        &env,
        "ADD",
        &c,
        &merge(base.clone(), json!({"cniVersion": "0.3.1"})),
    )
    .error_with(1);

    let mut version = env.call("firewall", "VERSION", &base);
    version.config = "{}".into();
    let v = version.run_in(&env.host).ok().json();
    assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));

    // No backend key: iptables, as the reference without firewalld.
    let dflt = fw(&env, &a, "", json!({}));
    fw_verb(&env, "ADD", &c, &dflt).ok();
    assert!(has_rules(&env, "iptables", &c.v4));
    assert!(!has_rules(&env, "nftables", &c.v4));
    fw_verb(&env, "DEL", &c, &dflt).ok();
    assert!(!has_rules(&env, "iptables", &c.v4));

    // STATUS and DEL when a tool cannot run: the configured backend's is
    // an error (code 50 for STATUS), the other's is tolerated.
    let v11 = json!({"cniVersion": "1.1.0"});
    for backend in BACKENDS {
        let conf = merge(fw(&env, &a, backend, json!({})), v11.clone());
        env.bare("STATUS", &conf).ok();
        let mut cmd = env
            .call("firewall", "STATUS", &conf)
            .without("CNI_CONTAINERID")
            .without("CNI_NETNS")
            .without("CNI_IFNAME")
            .command();
        cmd.env("PATH", "/nonexistent")
            .env("CNI_NFT", "/nonexistent/nft");
        let out = env.host.run(cmd, Some(conf.to_string().as_bytes()));
        let msg = out.error_with(50);
        assert!(msg.contains(backend), "{msg}");
    }
    let ipt = fw(&env, &a, "iptables", json!({}));
    fw_verb(&env, "ADD", &c, &ipt).ok();
    let del_with = |conf: &Value, vars: &[(&str, &str)]| {
        let prev = with_prev(conf, &c.result);
        let mut cmd = env.call("firewall", "DEL", &prev).container("e1").command();
        for (k, val) in vars {
            cmd.env(k, val);
        }
        env.host.run(cmd, Some(prev.to_string().as_bytes()))
    };
    let nft = fw(&env, &a, "nftables", json!({}));
    let msg = del_with(&nft, &[("CNI_NFT", "/nonexistent/nft")]).error_with(100);
    assert!(msg.contains("/nonexistent/nft"), "{msg}");
    // The cleanup went on (the iptables rules are gone) and the record
    // stays, so that the runtime's retry can finish.
    assert!(!has_rules(&env, "iptables", &c.v4));
    assert_eq!(env.data.listing("firewall/fwa"), ["e1-eth0"]);
    del_with(&ipt, &[("CNI_NFT", "/nonexistent/nft")]).ok();
    assert_eq!(env.data.listing("firewall/fwa"), Vec::<String>::new());
}

/// The conformance harness, with a bridge-shaped prevResult in the config
/// (the harness hands each ADD's result on as prevResult, as a runtime).
#[test]
fn conformance() {
    for (i, backend) in BACKENDS.iter().enumerate() {
        let env = env(&format!("fw-conf{i}"));
        let prev = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "fwc0"}, {"name": "veth0"}, {"name": "eth0", "sandbox": "/x"}],
            "ips": [{"interface": 2, "address": "10.240.85.2/24", "gateway": "10.240.85.1"},
                    {"interface": 2, "address": "fd00:cafe:55::2/64"}]});
        let config = json!({"cniVersion": "", "name": "conformance", "type": "firewall",
            "backend": backend, "ingressPolicy": "same-bridge",
            "dataDir": env.data.path().join("firewall").display().to_string(),
            "prevResult": prev});
        common::conformance_passes(&env.bin.path().join("firewall"), config);
        assert_eq!(
            env.data.listing("firewall/conformance"),
            Vec::<String>::new()
        );
    }
}

/// Eight ADDs at once on a fresh host, per backend: every container gets
/// its rules, and the shared chains and jumps exist exactly once.
#[test]
fn parallel_adds_share_one_set_of_jumps() {
    for (i, backend) in BACKENDS.iter().enumerate() {
        let env = env(&format!("fw-par{i}"));
        let a = net(&env, "fwa", "fwa0", "10.240.84.0/24", "fd00:cafe:54::/64");
        let ctr = TestNetns::new("fw-par-c");
        let conf = fw(&env, &a, backend, json!({"ingressPolicy": "same-bridge"}));
        let ips: Vec<String> = (0..8).map(|n| format!("10.240.84.{}", n + 10)).collect();
        std::thread::scope(|s| {
            for (n, ip) in ips.iter().enumerate() {
                let (env, ctr, conf) = (&env, &ctr, &conf);
                s.spawn(move || {
                    let prev = json!({"cniVersion": "1.0.0",
                        "interfaces": [{"name": "fwa0"}, {"name": format!("veth{n}")},
                                       {"name": "eth0", "sandbox": ctr.path_str()}],
                        "ips": [{"interface": 2, "address": format!("{ip}/24")}]});
                    env.add(ctr, &format!("p{n}"), &with_prev(conf, &prev)).ok();
                });
            }
        });
        for ip in &ips {
            assert!(has_rules(&env, backend, ip), "{backend}: {ip}");
        }
        if *backend == "nftables" {
            let fwd = env.host.nft_chain("inet", "cni_firewall", "forward");
            for target in ["isolation_stage_1", "admin", "containers"] {
                let n = fwd.matches(&format!("\"target\": \"{target}\"")).count()
                    + fwd.matches(&format!("\"target\":\"{target}\"")).count();
                assert_eq!(n, 1, "{target}: {fwd}");
            }
            let s2 = env
                .host
                .nft_chain("inet", "cni_firewall", "isolation_stage_2");
            assert_eq!(s2.matches("\"drop\"").count(), 1, "{s2}");
        } else {
            let f = filter(&env, false);
            for rule in [
                "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD",
                "-j CNI-ISOLATION-STAGE-1",
                "-j CNI-ADMIN",
                "-A CNI-ISOLATION-STAGE-2 -o fwa0 ",
                "-j RETURN",
            ] {
                let n = f.matches(rule).count();
                let want = if rule == "-j RETURN" { 2 } else { 1 };
                assert_eq!(n, want, "{rule}:\n{f}");
            }
        }
    }
}

/// An iptables ADD failing half-way (IPv4 batch in, IPv6 refused) leaves
/// neither the IPv4 rules nor the record behind.
#[test]
fn an_iptables_add_failing_half_way_is_undone() {
    let env = env("fw-half");
    let tools = cni_tests::TempDir::new("fw-half-tools");
    tools.script(
        "ip6tables-restore",
        "#!/bin/sh\necho 'injected failure' >&2\nexit 1\n",
    );
    let a = net(&env, "fwa", "fwa0", "10.240.83.0/24", "fd00:cafe:53::/64");
    let c = attach(&env, &a, "h1");
    let conf = with_prev(&fw(&env, &a, "iptables", json!({})), &c.result);
    let path = format!(
        "{}:{}",
        tools.path_str(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = env
        .call("firewall", "ADD", &conf)
        .container("h1")
        .netns(&c.ns.path_str())
        .command();
    cmd.env("PATH", path);
    let out = env.host.run(cmd, Some(conf.to_string().as_bytes()));
    let msg = out.error_with(100);
    assert!(msg.contains("injected failure"), "{msg}");
    assert!(!has_rules(&env, "iptables", &c.v4), "IPv4 rules undone");
    assert_eq!(env.data.listing("firewall/fwa"), Vec::<String>::new());
    // And a clean ADD afterwards works.
    fw_verb(&env, "ADD", &c, &fw(&env, &a, "iptables", json!({}))).ok();
    assert!(has_rules(&env, "iptables", &c.v6));
}
