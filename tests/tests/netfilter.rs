//! The netfilter layer under load and failure, through the bridge plugin:
//! iptables rules deleted by spec (never by line number) while DELs run in
//! parallel next to an operator's own rules; DEL failing, not leaking,
//! when the configured backend's tool cannot run; ADDs that fail after
//! their masquerade or spoof-check rules went in leaving nothing behind;
//! GC without a list touching nothing.

use cni_tests::{
    host_local_ipam, merge, our_plugin, require_our_host_local, result_ip, with_prev, Output,
    PluginEnv, TempDir, TestNetns,
};
use serde_json::{json, Value};

fn env(tag: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            ("bridge", &our_plugin("bridge")),
            ("host-local", &require_our_host_local("netfilter tests")),
        ],
    )
}

fn conf(net: &str, br: &str, extra: Value) -> Value {
    merge(
        json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": br}),
        extra,
    )
}

/// `iptables-save -t nat` (or ip6tables) in the host namespace.
fn nat(env: &PluginEnv, v6: bool) -> String {
    let bin = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    env.host.exec(&[bin, "-t", "nat"]).ok().stdout
}

/// Run `conf`'s plugin with `verb` for `id`, with extra environment.
fn run_with_env(
    env: &PluginEnv,
    verb: &str,
    ctr: Option<&TestNetns>,
    id: &str,
    conf: &Value,
    vars: &[(&str, &str)],
) -> Output {
    let mut call = env.call("bridge", verb, conf).container(id);
    if let Some(c) = ctr {
        call = call.netns(&c.path_str());
    }
    let mut cmd = call.command();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    env.host.run(cmd, Some(conf.to_string().as_bytes()))
}

/// 16 containers with iptables masquerade, an operator's POSTROUTING rules
/// around them, then 16 DELs at once (five rounds): every DEL succeeds,
/// every container rule goes, every operator rule stays. Deleting by line
/// number loses operator rules here within a round or two.
#[test]
fn parallel_iptables_dels_remove_exactly_their_own_rules() {
    let env = env("nf-par");
    let c = conf(
        "parnet",
        "nfpar0",
        json!({"ipMasq": true, "ipMasqBackend": "iptables",
               "ipam": host_local_ipam(&env.data, &["10.240.70.0/24", "fd00:cafe:46::/64"])}),
    );
    const N: usize = 16;
    let foreign: [&[&str]; 2] = [
        &["-I", "POSTROUTING", "1", "-s", "192.0.2.1", "-j", "RETURN"],
        &["-A", "POSTROUTING", "-s", "192.0.2.2", "-j", "RETURN"],
    ];
    for rule in foreign {
        env.host
            .exec(&[&["iptables", "-t", "nat"], rule].concat())
            .ok();
    }
    env.host
        .exec(&[
            "ip6tables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "2001:db8::1",
            "-j",
            "RETURN",
        ])
        .ok();
    for round in 0..5 {
        let ctrs: Vec<TestNetns> = (0..N).map(|_| TestNetns::new("nf-par-c")).collect();
        let results: Vec<Value> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| env.add(ctr, &format!("c{i}"), &c).ok().json())
            .collect();
        let before = nat(&env, false);
        assert_eq!(
            before.matches("-j CNI-").count(),
            N,
            "round {round}: {before}"
        );
        std::thread::scope(|s| {
            for (i, (ctr, r)) in ctrs.iter().zip(&results).enumerate() {
                let (env, c) = (&env, &c);
                s.spawn(move || {
                    env.verb("DEL", Some(ctr), &format!("c{i}"), &with_prev(c, r))
                        .ok();
                });
            }
        });
        let (v4, v6) = (nat(&env, false), nat(&env, true));
        assert!(!v4.contains("CNI-"), "round {round}: rules left: {v4}");
        assert!(!v6.contains("CNI-"), "round {round}: rules left: {v6}");
        assert!(
            v4.contains("-A POSTROUTING -s 192.0.2.1/32 -j RETURN"),
            "{v4}"
        );
        assert!(
            v4.contains("-A POSTROUTING -s 192.0.2.2/32 -j RETURN"),
            "{v4}"
        );
        assert!(
            v6.contains("-A POSTROUTING -s 2001:db8::1/128 -j RETURN"),
            "{v6}"
        );
        assert_eq!(v4.matches("-A POSTROUTING").count(), 2, "{v4}");
    }
}

/// A DEL whose configured backend's tool cannot be run fails (the rules
/// may still be in the kernel, and a runtime retries only a failed DEL);
/// the other backend's tool may be missing.
#[test]
fn del_fails_when_the_configured_tool_cannot_run() {
    let env = env("nf-notool");
    let ctr = TestNetns::new("nf-notool-c");
    for backend in ["nftables", "iptables"] {
        let c = conf(
            "notoolnet",
            "nfnotool0",
            json!({"ipMasq": true, "ipMasqBackend": backend,
                   "ipam": host_local_ipam(&env.data, &["10.240.71.0/24"])}),
        );
        let r = env.add(&ctr, "c1", &c).ok().json();
        let ip = result_ip(&r, false);
        let prev = with_prev(&c, &r);
        // No tool at all: nft through CNI_NFT, the iptables tools through PATH.
        let out = run_with_env(
            &env,
            "DEL",
            Some(&ctr),
            "c1",
            &prev,
            &[("PATH", "/nonexistent"), ("CNI_NFT", "/nonexistent/nft")],
        );
        assert_eq!(
            out.status, 1,
            "{backend}: DEL without tools must fail: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("cannot run"),
            "{backend}: {}",
            out.stdout
        );
        let still = if backend == "nftables" {
            env.host.masq_rules()
        } else {
            nat(&env, false)
        };
        assert!(still.contains(&ip), "{backend}: rules still there: {still}");
        // Only the other backend's tool missing: DEL succeeds and cleans up.
        let vars: &[(&str, &str)] = if backend == "nftables" {
            &[("PATH", "/nonexistent"), ("CNI_NFT", "/usr/sbin/nft")]
        } else {
            &[("CNI_NFT", "/nonexistent/nft")]
        };
        run_with_env(&env, "DEL", Some(&ctr), "c1", &prev, vars).ok();
        assert!(!env.host.masq_rules().contains(&ip));
        assert!(!nat(&env, false).contains(&ip));
        assert_eq!(env.data.reservations("notoolnet"), Vec::<String>::new());
    }
}

/// An `nft` that fails the transaction whose JSON contains `needle` and
/// passes everything else to the real nft.
fn failing_nft(dir: &TempDir, needle: &str) -> String {
    dir.script(
        "nft",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = -j ] && [ \"$2\" = -f ]; then\n  doc=$(cat)\n  \
             case \"$doc\" in *'{needle}'*) echo 'injected failure' >&2; exit 1;; esac\n  \
             printf '%s' \"$doc\" | exec nft \"$@\"\nfi\nexec nft \"$@\"\n"
        ),
    )
    .display()
    .to_string()
}

/// The spoof check is the last rule step of a bridge ADD: when it fails,
/// the masquerade rules already added, the veth, the reservation and the
/// bridge's gateway setup of this ADD are undone.
#[test]
fn an_add_failing_after_its_rules_went_in_removes_them() {
    let env = env("nf-rollback");
    let tools = TempDir::new("nf-rollback-tools");
    let nft = failing_nft(&tools, "cni-br-iface");
    for backend in ["nftables", "iptables"] {
        let c = conf(
            "rbnet",
            "nfrb0",
            json!({"ipMasq": true, "ipMasqBackend": backend, "macspoofchk": true,
                   "ipam": host_local_ipam(&env.data, &["10.240.72.0/24", "fd00:cafe:48::/64"])}),
        );
        let ctr = TestNetns::new("nf-rollback-c");
        let links_before = env.host.link_names();
        let out = run_with_env(&env, "ADD", Some(&ctr), "c1", &c, &[("CNI_NFT", &nft)]);
        assert_eq!(out.status, 1, "{backend}: {}", out.stdout);
        assert!(out.stdout.contains("injected failure"), "{}", out.stdout);
        assert!(!env.host.masq_rules().contains("10.240.72."), "{backend}");
        assert!(!nat(&env, false).contains("CNI-"), "{backend}");
        assert!(!nat(&env, true).contains("CNI-"), "{backend}");
        assert_eq!(env.data.reservations("rbnet"), Vec::<String>::new());
        let mut now = env.host.link_names();
        now.retain(|l| l != "nfrb0");
        let mut before = links_before;
        before.retain(|l| l != "nfrb0");
        assert_eq!(now, before, "{backend}: no veth left");
        assert!(ctr.link("eth0").is_none(), "{backend}");
        assert_eq!(
            env.host.nft_chain("bridge", "nat", "cni-br-iface-c1-eth0"),
            "",
            "{backend}: no spoof-check chain"
        );
        // And the same ADD without the injected failure works.
        let r = env.add(&ctr, "c1", &c).ok().json();
        env.verb("DEL", Some(&ctr), "c1", &with_prev(&c, &r)).ok();
    }
}

/// The masquerade step itself failing half-way (IPv4 rules in, IPv6
/// refused) leaves neither family's rules.
#[test]
fn a_masquerade_setup_failing_half_way_is_undone() {
    let env = env("nf-half");
    let tools = TempDir::new("nf-half-tools");
    let bin = tools.path().display().to_string();
    // ip6tables-restore refuses; iptables-restore works.
    tools.script(
        "ip6tables-restore",
        "#!/bin/sh\necho 'injected failure' >&2\nexit 1\n",
    );
    let c = conf(
        "halfnet",
        "nfhalf0",
        json!({"ipMasq": true, "ipMasqBackend": "iptables",
               "ipam": host_local_ipam(&env.data, &["10.240.73.0/24", "fd00:cafe:49::/64"])}),
    );
    let ctr = TestNetns::new("nf-half-c");
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    let out = run_with_env(&env, "ADD", Some(&ctr), "c1", &c, &[("PATH", &path)]);
    assert_eq!(out.status, 1, "{}", out.stdout);
    assert!(out.stdout.contains("injected failure"), "{}", out.stdout);
    let v4 = nat(&env, false);
    assert!(!v4.contains("CNI-"), "IPv4 rules undone: {v4}");
    assert_eq!(env.data.reservations("halfnet"), Vec::<String>::new());
}
