//! host-local's configuration: the `ipam` object, `runtimeConfig`, `args`
//! and `CNI_ARGS`, validated into range sets and requested addresses.
//!
//! Every error is code 7 (code 4 for `CNI_ARGS`) and names the key and the
//! value at fault.

use crate::range::{RangeConf, RangeSet};
use crate::store::DEFAULT_DATA_DIR;
use cni::ip;
use cni::ipam::{parse_resolv_conf, routes, RouteConf};
use cni::{Dns, Error, Request, Result, Route, Version};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// The `ipam` object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpamConf {
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    /// The legacy single range: top-level `subnet`, `rangeStart`, `rangeEnd`, `gateway`.
    #[serde(flatten)]
    legacy: RangeConf,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    resolv_conf: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConf {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    ip_ranges: Vec<Vec<RangeConf>>,
}

#[derive(Debug, Default, Deserialize)]
struct ArgsConf {
    #[serde(default)]
    ips: Vec<String>,
}

/// An address the runtime asked for, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub ip: IpAddr,
    pub source: &'static str,
}

/// A validated host-local configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    /// In the reference's order: `runtimeConfig.ipRanges`, the legacy range,
    /// then `ranges`. Index N here is `last_reserved_ip.N` on disk.
    pub range_sets: Vec<RangeSet>,
    /// For each range set, the address requested in it, if any.
    pub requested: Vec<Option<Requested>>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl Config {
    /// Read the whole configuration of a request. `with_requests` is false
    /// for verbs that allocate nothing (they must not fail on `CNI_ARGS`).
    pub fn from_request(req: &Request, with_requests: bool) -> Result<Config> {
        let ipam = req.net.ipam.as_ref().ok_or_else(|| {
            Error::config("missing \"ipam\" object (host-local reads its settings from it)")
        })?;
        let conf: IpamConf = serde_json::from_value(serde_json::Value::Object(ipam.rest.clone()))
            .map_err(|e| Error::config(format!("invalid ipam config: {e}")))?;
        let runtime: RuntimeConf = req.net.runtime_config()?;

        let mut sets_conf: Vec<(String, &Vec<RangeConf>)> = Vec::new();
        for (i, s) in runtime.ip_ranges.iter().enumerate() {
            sets_conf.push((format!("runtimeConfig.ipRanges[{i}]"), s));
        }
        let legacy = vec![conf.legacy.clone()];
        if conf.legacy.is_set() {
            sets_conf.push(("ipam".to_string(), &legacy));
        }
        for (i, s) in conf.ranges.iter().enumerate() {
            sets_conf.push((format!("ipam.ranges[{i}]"), s));
        }
        if sets_conf.is_empty() {
            return Err(Error::config(
                "no IP ranges specified: set ipam.ranges (or ipam.subnet)",
            ));
        }
        let mut range_sets = Vec::with_capacity(sets_conf.len());
        for (key, s) in &sets_conf {
            let set = if key == "ipam" {
                // The legacy keys sit directly in `ipam`: name them so.
                crate::range::Range::from_conf(&s[0], key).map(|r| RangeSet(vec![r]))?
            } else {
                RangeSet::from_conf(s, key)?
            };
            range_sets.push(set);
        }
        for i in 0..range_sets.len() {
            for j in i + 1..range_sets.len() {
                if range_sets[i].overlaps(&range_sets[j]) {
                    return Err(Error::config(format!(
                        "range set {i} ({}: {}) overlaps with range set {j} ({}: {})",
                        sets_conf[i].0, range_sets[i], sets_conf[j].0, range_sets[j]
                    )));
                }
            }
        }
        let v4 = range_sets.iter().filter(|s| s.is_ipv4()).count();
        if (v4 > 1 || range_sets.len() - v4 > 1) && req.version < Version::V0_3_0 {
            return Err(Error::config(format!(
                "cniVersion {} does not support more than 1 address per family (use 0.3.0 or later)",
                req.version
            )));
        }

        let requested = if with_requests {
            requested_ips(req, &runtime, &range_sets)?
        } else {
            vec![None; range_sets.len()]
        };

        // Only ADD returns DNS: DEL, CHECK, GC and STATUS must not depend on
        // a resolv.conf that may have gone since (a DEL failing on it would
        // leak the reservation while the runtime retries forever).
        let dns = match conf
            .resolv_conf
            .as_deref()
            .filter(|p| !p.is_empty() && with_requests)
        {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::config(format!("ipam.resolvConf: cannot read {p:?}: {e}"))
                })?;
                parse_resolv_conf(&text)
            }
            None => Dns::default(),
        };

        Ok(Config {
            name: req.net.name.clone(),
            data_dir: PathBuf::from(
                conf.data_dir
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .unwrap_or(DEFAULT_DATA_DIR),
            ),
            range_sets,
            requested,
            routes: routes(&conf.routes, "ipam.routes")?,
            dns,
        })
    }
}

/// The requested addresses, from `CNI_ARGS` `IP`, `args.cni.ips` and
/// `runtimeConfig.ips` (all of them count, as in the reference), each placed
/// in the range set that holds it.
fn requested_ips(
    req: &Request,
    runtime: &RuntimeConf,
    sets: &[RangeSet],
) -> Result<Vec<Option<Requested>>> {
    let mut all: Vec<Requested> = Vec::new();
    let cni_args = req.cni_args(&["IP"])?;
    refuse_conflicting_repeats(&cni_args, "IP")?;
    if let Some(v) = cni_args.get("IP").filter(|v| !v.is_empty()) {
        let a = ip::parse_requested(v).map_err(|e| Error::env(format!("CNI_ARGS IP: {e}")))?;
        all.push(Requested {
            ip: a,
            source: "CNI_ARGS IP",
        });
    }
    let args: ArgsConf = req.net.args_cni()?;
    for s in &args.ips {
        let a = ip::parse_requested(s).map_err(|e| Error::config(format!("args.cni.ips: {e}")))?;
        all.push(Requested {
            ip: a,
            source: "args.cni.ips",
        });
    }
    for s in &runtime.ips {
        let a =
            ip::parse_requested(s).map_err(|e| Error::config(format!("runtimeConfig.ips: {e}")))?;
        all.push(Requested {
            ip: a,
            source: "runtimeConfig.ips",
        });
    }

    let mut per_set: Vec<Option<Requested>> = vec![None; sets.len()];
    for r in all {
        let Some(si) = sets.iter().position(|s| s.contains(r.ip)) else {
            let list: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            return Err(Error::config(format!(
                "requested IP {} ({}) is not in any range set: {}",
                r.ip,
                r.source,
                list.join("; ")
            )));
        };
        if let Some((_, range)) = sets[si].range_for(r.ip) {
            if range.gateway == r.ip {
                return Err(Error::config(format!(
                    "requested IP {} ({}) is the gateway of subnet {}",
                    r.ip, r.source, range.subnet
                )));
            }
        }
        match &per_set[si] {
            Some(prev) if prev.ip == r.ip => {}
            Some(prev) => {
                return Err(Error::config(format!(
                    "requested IPs {} ({}) and {} ({}) are both in range set {si} ({}); one address is allocated per range set",
                    prev.ip, prev.source, r.ip, r.source, sets[si]
                )))
            }
            None => per_set[si] = Some(r),
        }
    }
    Ok(per_set)
}

/// `CNI_ARGS` with `key` given twice with different values, e.g.
/// `IP=10.0.0.5;IP=10.0.0.6`, is refused with code 4 naming the key and the
/// values.
///
/// The reference (Debian's 1.1.1, checked with its binary) does not refuse
/// it: `types.LoadArgs` assigns the field once per pair, so the last value
/// silently wins and the runtime gets an address it may not have meant. Two
/// different requests for one key are ambiguous; failing says so. The same
/// value repeated (a runtime joining args from two sources) means one thing
/// and is accepted. Only ADD reads `IP`, so a repeat never blocks a DEL.
fn refuse_conflicting_repeats(args: &cni::args::CniArgs, key: &str) -> Result<()> {
    let mut values = args
        .pairs()
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v);
    if let Some(first) = values.next() {
        if let Some(other) = values.find(|v| *v != first) {
            return Err(Error::env(format!(
                "CNI_ARGS: {key} is given more than once with different values ({key}={first} and \
                 {key}={other}); give it once"
            )));
        }
    }
    Ok(())
}
