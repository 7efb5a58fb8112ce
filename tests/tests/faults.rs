//! Faults (issue #13): a plugin SIGKILLed at every named step of ADD,
//! host-local killed in the middle of writing its files (in-process and
//! exec'd), libcni killed while writing its cache; then the container
//! namespace deleted before DEL, the host veth deleted behind the plugin's
//! back, a read-only and a full data directory, and the netfilter tools
//! missing. After each, a DEL with the same arguments must leave the host
//! exactly as before (links, addresses, routes, rules, files) and an ADD
//! with the same container ID must succeed.
//!
//! The steps are the test builds' `CNI_TEST_STOP_AT` points
//! (`cni::fault`); a step that is never reached fails its test. Needs root
//! and the suite built (`cargo build --workspace --bins`).
//!
//! Addresses: 10.238.1-15.0/24 and fd00:cafe:a001-a00f::/64.

mod state;

use cni_tests::{
    host_local_ipam, our_plugin, result_ip, with_prev, Output, PluginEnv, TempDir, TestNetns,
};
use serde_json::{json, Value};
use state::{assert_same, env_snapshot, kill_at, snapshot, Tmpfs};

const BRIDGE_STEPS: &[&str] = &[
    "bridge:ipam-started",
    "bridge:veth-created",
    "bridge:port-up",
    "bridge:ipam-done",
    "bridge:addresses-set",
    "bridge:gateway-set",
    "bridge:masquerade-added",
    "bridge:spoofcheck-added",
    "bridge:done",
];

const PTP_STEPS: &[&str] = &[
    "ptp:ipam-started",
    "ptp:veth-created",
    "ptp:ipam-done",
    "ptp:addresses-set",
    "ptp:host-routes-set",
    "ptp:masquerade-added",
    "ptp:done",
];

const HOST_LOCAL_STEPS: &[&str] = &[
    "host-local:staging-created",
    "host-local:reserved",
    "host-local:file-overwritten",
    "host-local:cursors-written",
];

/// `plugin` and host-local (linked, so it runs in-process) on `CNI_PATH`.
fn env(tag: &str, plugin: &str) -> PluginEnv {
    PluginEnv::new(
        tag,
        &[
            (plugin, &our_plugin(plugin)),
            ("host-local", &our_plugin("host-local")),
        ],
    )
}

/// A dual-stack config of `plugin` on subnet `n` with `ipMasq` through
/// `backend`; bridge also with `macspoofchk` and `isGateway`.
fn conf(env: &PluginEnv, plugin: &str, n: u8, backend: &str) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0",
        "name": format!("fault{n}"),
        "type": plugin,
        "ipMasq": true,
        "ipMasqBackend": backend,
        "ipam": host_local_ipam(
            &env.data,
            &[&format!("10.238.{n}.0/24"), &format!("fd00:cafe:a0{n:02x}::/64")],
        ),
    });
    if plugin == "bridge" {
        c["bridge"] = json!(format!("fltbr{n}"));
        c["isGateway"] = json!(true);
        c["macspoofchk"] = json!(true);
    }
    c
}

/// One attachment added and deleted, so what outlives attachments (the
/// bridge and its gateway addresses, the masquerade table, host-local's
/// lock and cursors) exists before the snapshot is taken.
/// A bridge also gets a port of the host's own ([`state::keep_carrier`]).
fn warm_up(env: &PluginEnv, c: &Value) {
    let ctr = TestNetns::new("flt-warm");
    let r = env.add(&ctr, "warm", c).ok().json();
    env.verb("DEL", Some(&ctr), "warm", &with_prev(c, &r)).ok();
    if let Some(br) = c["bridge"].as_str() {
        if env.host.link("fltkeep").is_none() {
            state::keep_carrier(&env.host, br, "fltkeep");
        }
    }
}

/// The ADD call of `c`'s plugin for `id` in `ctr`.
fn add_cmd(env: &PluginEnv, ctr: &TestNetns, id: &str, c: &Value) -> std::process::Command {
    let ty = c["type"].as_str().expect("type");
    env.call(ty, "ADD", c)
        .container(id)
        .netns(&ctr.path_str())
        .command()
}

/// After a killed ADD: DEL with the same arguments (no prevResult: the
/// runtime never got a result) leaves everything as `before` and the
/// container with only `lo`; then a full ADD, CHECK, DEL of the same
/// container ID works and leaves everything as `before` too.
fn del_then_readd(
    env: &PluginEnv,
    ctr: &TestNetns,
    id: &str,
    c: &Value,
    before: &state::Snapshot,
    what: &str,
) {
    let del = env.verb("DEL", Some(ctr), id, c);
    assert_eq!(
        del.status, 0,
        "{what}: DEL after the kill failed: {}",
        del.stdout
    );
    assert_same(
        before,
        &env_snapshot(env),
        &format!("{what}, DEL after the kill"),
    );
    assert_eq!(state::container_links(ctr), vec!["lo"], "{what}");
    let add = env.add(ctr, id, c);
    assert_eq!(
        add.status, 0,
        "{what}: ADD after the DEL failed: {}",
        add.stdout
    );
    let prev = with_prev(c, &add.json());
    env.verb("CHECK", Some(ctr), id, &prev).ok();
    env.verb("DEL", Some(ctr), id, &prev).ok();
    assert_same(before, &env_snapshot(env), &format!("{what}, second DEL"));
}

/// SIGKILL `plugin` at each of `steps` of its ADD, with each masquerade
/// backend.
fn killed_at_every_step(plugin: &str, steps: &[&str], n: u8) {
    for (b, backend) in ["nftables", "iptables"].into_iter().enumerate() {
        let env = env(&format!("flt-{plugin}"), plugin);
        let c = conf(&env, plugin, n + b as u8, backend);
        warm_up(&env, &c);
        let before = env_snapshot(&env);
        for (i, step) in steps.iter().enumerate() {
            let ctr = TestNetns::new("flt-c");
            let id = format!("killed{i}");
            let k = kill_at(
                &env.host,
                add_cmd(&env, &ctr, &id, &c),
                c.to_string().as_bytes(),
                step,
            );
            assert_eq!(
                k.stopped, k.pid,
                "{step}: in-process IPAM stops the plugin itself"
            );
            del_then_readd(
                &env,
                &ctr,
                &id,
                &c,
                &before,
                &format!("{backend}, killed at {step}"),
            );
        }
    }
}

#[test]
fn bridge_killed_at_every_step_of_add() {
    killed_at_every_step("bridge", BRIDGE_STEPS, 1);
}

#[test]
fn ptp_killed_at_every_step_of_add() {
    killed_at_every_step("ptp", PTP_STEPS, 3);
}

/// host-local killed in the middle of writing: the staging file created
/// but empty, a reservation linked but the cursor not written, any other
/// file rewritten but its old tail not cut, the cursors written but the staging
/// file and the index not yet tidied. Once running in-process (a link to
/// the suite's executable) and once exec'd (a copy): the step must be
/// announced by the plugin's own process and by a child respectively.
fn host_local_killed_mid_write(exec: bool, n: u8) {
    let tag = if exec { "flt-hl-exec" } else { "flt-hl-inproc" };
    let env = PluginEnv::new(tag, &[("bridge", &our_plugin("bridge"))]);
    let hl = env.bin.path().join("host-local");
    if exec {
        std::fs::copy(our_plugin("host-local"), &hl).expect("copy host-local");
    } else {
        env.bin.add_plugin("host-local", &our_plugin("host-local"));
    }
    let c = conf(&env, "bridge", n, "nftables");
    warm_up(&env, &c);
    let before = env_snapshot(&env);
    for (i, step) in HOST_LOCAL_STEPS.iter().enumerate() {
        let ctr = TestNetns::new("flt-hl-c");
        let id = format!("hl{i}");
        let k = kill_at(
            &env.host,
            add_cmd(&env, &ctr, &id, &c),
            c.to_string().as_bytes(),
            step,
        );
        assert_eq!(k.stopped != k.pid, exec, "{step}: stopped by {k:?}");
        del_then_readd(
            &env,
            &ctr,
            &id,
            &c,
            &before,
            &format!("exec={exec}, killed at {step}"),
        );
    }
}

#[test]
fn host_local_in_process_killed_mid_write() {
    host_local_killed_mid_write(false, 5);
}

#[test]
fn host_local_execd_killed_mid_write() {
    host_local_killed_mid_write(true, 6);
}

/// cnitool (libcni) killed after the plugins' ADD, with its cache entry
/// written to the temporary file but not renamed into place: `cnitool
/// del` and a new `cnitool add` of the same container work, and the cache
/// directory ends as it began.
#[test]
fn libcni_killed_while_writing_its_cache() {
    let env = env("flt-libcni", "bridge");
    let conf_dir = TempDir::new("flt-libcni-conf");
    let cache = TempDir::new("flt-libcni-cache");
    let mut c = conf(&env, "bridge", 7, "nftables");
    c["name"] = json!("faultcache");
    std::fs::write(conf_dir.path().join("10-fault.conf"), c.to_string()).expect("write conf");
    let ctr = TestNetns::new("flt-libcni-c");
    let cnitool = |args: &[&str]| -> std::process::Command {
        let mut cmd = std::process::Command::new(our_plugin("cnitool"));
        cmd.args(["--cache-dir", &cache.path_str()])
            .args(args)
            .env("NETCONFPATH", conf_dir.path())
            .env("CNI_PATH", env.bin.path());
        cmd
    };
    let run = |args: &[&str]| -> Output { env.host.run(cnitool(args), None) };
    let ns = ctr.path_str();
    run(&["add", "faultcache", &ns]).ok();
    run(&["del", "faultcache", &ns]).ok();
    state::keep_carrier(&env.host, "fltbr7", "fltkeep");
    let before = env_snapshot(&env);
    let cache_before = state::files(cache.path());

    let k = kill_at(
        &env.host,
        cnitool(&["add", "faultcache", &ns]),
        b"",
        "libcni:cache-written",
    );
    assert_eq!(k.stopped, k.pid);
    run(&["del", "faultcache", &ns]).ok();
    assert_same(&before, &env_snapshot(&env), "DEL after cnitool was killed");
    assert_eq!(state::container_links(&ctr), vec!["lo"]);
    let r = run(&["add", "faultcache", &ns]).ok().json();
    assert!(!result_ip(&r, false).is_empty());
    run(&["check", "faultcache", &ns]).ok();
    run(&["del", "faultcache", &ns]).ok();
    assert_same(&before, &env_snapshot(&env), "second DEL");
    assert_eq!(
        state::files(cache.path()),
        cache_before,
        "the killed cnitool's temporary cache file is cleaned up"
    );
}

/// The container namespace deleted before DEL, with masquerade rules of
/// both backends and spoof-check rules: DEL releases everything else, and
/// a repeated DEL succeeds too.
#[test]
fn namespace_deleted_before_del() {
    for (plugin, n) in [("bridge", 8u8), ("ptp", 9)] {
        for backend in ["nftables", "iptables"] {
            let env = env("flt-nsgone", plugin);
            let c = conf(&env, plugin, n, backend);
            warm_up(&env, &c);
            let before = env_snapshot(&env);
            let ctr = TestNetns::new("flt-nsgone-c");
            let path = ctr.path_str();
            let r = env.add(&ctr, "gone", &c).ok().json();
            drop(ctr);
            let del = env
                .call(plugin, "DEL", &with_prev(&c, &r))
                .container("gone")
                .netns(&path);
            use cni_tests::RunCall;
            del.run_in(&env.host).ok();
            // The host end goes with the namespace, which the kernel tears
            // down asynchronously.
            state::assert_same_within(
                &before,
                || env_snapshot(&env),
                std::time::Duration::from_secs(10),
                &format!("{plugin}/{backend}"),
            );
            del.run_in(&env.host).ok();
        }
    }
}

/// The host end of the veth deleted behind the plugin's back (which
/// takes the container end with it): CHECK says what is missing, DEL
/// releases the rest, and the same container ID can be added again.
#[test]
fn host_veth_deleted_behind_the_plugins_back() {
    for (plugin, n) in [("bridge", 10u8), ("ptp", 11)] {
        let env = env("flt-vethgone", plugin);
        let c = conf(&env, plugin, n, "nftables");
        warm_up(&env, &c);
        let before = env_snapshot(&env);
        let ctr = TestNetns::new("flt-vethgone-c");
        let r = env.add(&ctr, "vg", &c).ok().json();
        let host_veth = r["interfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .find(|i| {
                i["sandbox"].is_null() && i["name"].as_str().is_some_and(|n| n.starts_with("veth"))
            })
            .and_then(|i| i["name"].as_str())
            .expect("host veth in the result")
            .to_string();
        env.host.exec(&["ip", "link", "del", &host_veth]).ok();
        let prev = with_prev(&c, &r);
        let msg = env.verb("CHECK", Some(&ctr), "vg", &prev).cni_error().1;
        assert!(
            msg.contains("eth0"),
            "{plugin}: CHECK says what is missing: {msg}"
        );
        env.verb("DEL", Some(&ctr), "vg", &prev).ok();
        assert_same(&before, &env_snapshot(&env), plugin);
        let r = env.add(&ctr, "vg", &c).ok().json();
        env.verb("DEL", Some(&ctr), "vg", &with_prev(&c, &r)).ok();
        assert_same(&before, &env_snapshot(&env), plugin);
    }
}

/// An env whose host-local `dataDir` is the tmpfs `fs`.
fn tmpfs_conf(env: &PluginEnv, fs: &Tmpfs, n: u8) -> Value {
    let mut c = conf(env, "bridge", n, "nftables");
    c["ipam"]["dataDir"] = json!(fs.path_str());
    c
}

/// The IPAM data directory read-only: ADD fails saying so and leaves
/// nothing (the bridge it made included); a DEL of an attachment made
/// before fails saying so but removes the interface and the rules, and
/// the DEL the runtime retries once the directory is writable again
/// releases the address.
#[test]
fn read_only_data_directory() {
    let env = env("flt-ro", "bridge");
    let fs = Tmpfs::new("flt-ro-data", 1024);
    let c = tmpfs_conf(&env, &fs, 12);
    let pristine = snapshot(&env.host, fs.path());
    let ctr = TestNetns::new("flt-ro-c");

    fs.set_read_only(true);
    let msg = env.add(&ctr, "ro", &c).error_with(100);
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_same(&pristine, &snapshot(&env.host, fs.path()), "failed ADD");
    env.verb("DEL", Some(&ctr), "ro", &c).ok();

    fs.set_read_only(false);
    warm_up(&env, &c);
    let before = snapshot(&env.host, fs.path());
    let r = env.add(&ctr, "ro", &c).ok().json();
    let ip = result_ip(&r, false);
    let prev = with_prev(&c, &r);
    fs.set_read_only(true);
    let del = env.verb("DEL", Some(&ctr), "ro", &prev);
    let (_, msg) = del.cni_error();
    assert!(msg.contains("Read-only file system"), "{msg}");
    assert_eq!(
        state::container_links(&ctr),
        vec!["lo"],
        "interface removed"
    );
    assert!(!env.host.masq_rules().contains(&ip), "rules removed");
    fs.set_read_only(false);
    env.verb("DEL", Some(&ctr), "ro", &prev).ok();
    assert_same(&before, &snapshot(&env.host, fs.path()), "retried DEL");
}

/// A full data directory. An ADD there either succeeds whole (removing
/// the index's stamp frees a page or two, enough for a reservation) or
/// fails saying so and leaves nothing; ADDs of new containers are made
/// until one fails. DEL of every attachment, old or new, releases it on
/// the full disk (removing files needs no space); once there is room, ADD
/// works again.
#[test]
fn full_data_directory() {
    let env = env("flt-full", "bridge");
    let fs = Tmpfs::new("flt-full-data", 256);
    let c = tmpfs_conf(&env, &fs, 13);
    warm_up(&env, &c);
    let before = snapshot(&env.host, fs.path());
    let old = TestNetns::new("flt-full-old");
    let r = env.add(&old, "old", &c).ok().json();
    let mut made = vec![(old, "old".to_string(), with_prev(&c, &r))];
    fs.fill();
    let mut refused = false;
    for i in 0..10 {
        let ctr = TestNetns::new("flt-full-c");
        let id = format!("full{i}");
        let at = snapshot(&env.host, fs.path());
        let out = env.add(&ctr, &id, &c);
        if out.status == 0 {
            let prev = with_prev(&c, &out.json());
            made.push((ctr, id, prev));
            continue;
        }
        let msg = out.error_with(100);
        assert!(msg.contains("No space left on device"), "{msg}");
        assert_same(
            &at,
            &snapshot(&env.host, fs.path()),
            "failed ADD on a full disk",
        );
        assert_eq!(state::container_links(&ctr), vec!["lo"]);
        env.verb("DEL", Some(&ctr), &id, &c).ok();
        refused = true;
        break;
    }
    assert!(
        refused,
        "ten ADDs on a full disk all succeeded: is it full?"
    );
    for (ctr, id, prev) in &made {
        env.verb("DEL", Some(ctr), id, prev).ok();
        assert_eq!(state::container_links(ctr), vec!["lo"]);
    }
    let mut after = snapshot(&env.host, fs.path());
    after
        .get_mut("files")
        .expect("files")
        .retain(|f| f != "filler");
    assert_same(&before, &after, "DELs on a full disk");
    fs.unfill();
    let (ctr, id, _) = &made[0];
    let r = env.add(ctr, id, &c).ok().json();
    env.verb("DEL", Some(ctr), id, &with_prev(&c, &r)).ok();
}

/// `nft` or the iptables tools missing with `ipMasq`: ADD fails naming
/// the tool and leaves nothing; DEL fails (the rules may be there) but
/// releases what it can, the address and the interface; the retried DEL
/// with the tools back removes the rules.
#[test]
fn netfilter_tool_missing() {
    for (b, backend) in ["nftables", "iptables"].into_iter().enumerate() {
        let env = env("flt-notool", "bridge");
        let mut c = conf(&env, "bridge", 14 + b as u8, backend);
        c["macspoofchk"] = json!(false);
        let net = c["name"].as_str().expect("name").to_string();
        warm_up(&env, &c);
        let before = env_snapshot(&env);
        let ctr = TestNetns::new("flt-notool-c");
        let no_tools = |verb: &str, c: &Value| {
            let mut cmd = env
                .call("bridge", verb, c)
                .container("nt")
                .netns(&ctr.path_str())
                .command();
            cmd.env("PATH", "/nonexistent")
                .env("CNI_NFT", "/nonexistent/nft");
            env.host.run(cmd, Some(c.to_string().as_bytes()))
        };
        let msg = no_tools("ADD", &c).cni_error().1;
        let tool = if backend == "nftables" {
            "nft"
        } else {
            "iptables"
        };
        assert!(msg.contains(tool), "{backend}: {msg}");
        assert_same(
            &before,
            &env_snapshot(&env),
            &format!("{backend}: failed ADD"),
        );
        assert_eq!(state::container_links(&ctr), vec!["lo"]);

        let r = env.add(&ctr, "nt", &c).ok().json();
        let prev = with_prev(&c, &r);
        let del = no_tools("DEL", &prev);
        assert_ne!(del.status, 0, "{backend}: DEL without the tool must fail");
        assert_eq!(
            env.data.reservations(&net),
            Vec::<String>::new(),
            "{backend}: address released"
        );
        assert_eq!(
            state::container_links(&ctr),
            vec!["lo"],
            "{backend}: interface removed"
        );
        env.verb("DEL", Some(&ctr), "nt", &prev).ok();
        assert_same(
            &before,
            &env_snapshot(&env),
            &format!("{backend}: retried DEL"),
        );
    }
}
