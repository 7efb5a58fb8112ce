//! Load (issue #13): 64 containers added at once to one dual-stack bridge
//! network with masquerading, then deleted at once, 20 rounds. Every
//! container gets distinct addresses, a sample of pairs ping each other
//! (each round four neighbouring pairs in both families; in the last round
//! every container pings its neighbour in both families: 128 pings), and
//! at the end the host namespace and the data directory are exactly as
//! before the first round (links, addresses, routes, rules, nftables and
//! iptables, files).
//!
//! The 64 container namespaces are made once and reused: each round's
//! DEL must leave them with only `lo`. A port of the host's own keeps the
//! bridge's carrier, so its routes do not come and go with the last
//! container. Takes 135 s on two cores shared with other builds (debug
//! build; 1,280 ADDs and 1,280 DELs, 64 at a time).
//!
//! Addresses: 10.238.100.0/24 and fd00:cafe:a064::/64.

mod state;

use cni_tests::{our_plugin, result_ip, with_prev, Output, PluginEnv, TestNetns};
use serde_json::{json, Value};
use state::{assert_same, env_snapshot};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const CONTAINERS: usize = 64;
const ROUNDS: usize = 20;
const NET: &str = "load";

/// Run `f(i)` for every container at once, each on its own thread.
fn all_at_once<T: Send>(f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..CONTAINERS)
            .map(|i| {
                let f = &f;
                s.spawn(move || f(i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

fn ping_pair(ctrs: &[TestNetns], results: &[Value], from: usize, v6: bool) {
    let to = (from + 1) % CONTAINERS;
    let ip = result_ip(&results[to], v6);
    assert!(
        ctrs[from].ping_within(&ip, Duration::from_secs(5)),
        "container {from} cannot ping container {to} at {ip}"
    );
}

#[test]
fn sixty_four_containers_in_parallel_twenty_rounds() {
    let started = Instant::now();
    let env = PluginEnv::new(
        "load",
        &[
            ("bridge", &our_plugin("bridge")),
            ("host-local", &our_plugin("host-local")),
        ],
    );
    let c = json!({
        "cniVersion": "1.1.0",
        "name": NET,
        "type": "bridge",
        "bridge": "loadbr0",
        "isGateway": true,
        "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.238.100.0/24"}], [{"subnet": "fd00:cafe:a064::/64"}]],
            "dataDir": env.data.path_str(),
        },
    });
    let ctrs: Vec<TestNetns> = (0..CONTAINERS).map(|_| TestNetns::new("load-c")).collect();
    // What outlives attachments (the bridge with its gateway addresses,
    // the masquerade table, host-local's lock and cursors) made first.
    let r = env.add(&ctrs[0], "warm", &c).ok().json();
    env.verb("DEL", Some(&ctrs[0]), "warm", &with_prev(&c, &r))
        .ok();
    state::keep_carrier(&env.host, "loadbr0", "loadkeep");
    let before = env_snapshot(&env);

    for round in 0..ROUNDS {
        let adds: Vec<Output> =
            all_at_once(|i| env.add(&ctrs[i], &format!("load-{round}-{i}"), &c));
        let results: Vec<Value> = adds
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                assert_eq!(o.status, 0, "round {round}: ADD {i}: {}", o.stdout);
                o.json()
            })
            .collect();
        for v6 in [false, true] {
            let ips: HashSet<String> = results.iter().map(|r| result_ip(r, v6)).collect();
            assert_eq!(ips.len(), CONTAINERS, "round {round}: duplicate addresses");
        }
        assert_eq!(env.data.reservations(NET).len(), 2 * CONTAINERS);
        if round + 1 < ROUNDS {
            for from in [0, 21, 42, 63] {
                ping_pair(&ctrs, &results, from, round % 2 == 1);
            }
        } else {
            all_at_once(|i| {
                ping_pair(&ctrs, &results, i, false);
                ping_pair(&ctrs, &results, i, true);
            });
        }
        let dels: Vec<Output> = all_at_once(|i| {
            env.verb(
                "DEL",
                Some(&ctrs[i]),
                &format!("load-{round}-{i}"),
                &with_prev(&c, &results[i]),
            )
        });
        for (i, o) in dels.iter().enumerate() {
            assert_eq!(o.status, 0, "round {round}: DEL {i}: {}", o.stdout);
        }
        assert_eq!(
            env.data.reservations(NET),
            Vec::<String>::new(),
            "round {round}"
        );
        for ctr in &ctrs {
            assert_eq!(ctr.link_names(), vec!["lo"], "round {round}");
        }
    }
    assert_same(&before, &env_snapshot(&env), "after 20 rounds");
    eprintln!(
        "{ROUNDS} rounds of {CONTAINERS} parallel ADDs and DELs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
