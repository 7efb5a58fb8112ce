//! The bandwidth plugin: limits a container's traffic with token bucket
//! filters, chained after a plugin that gives it a veth (bridge, ptp).
//!
//! Ingress (towards the container): a `tbf` qdisc at the root of the
//! host-side veth, whose egress is the container's ingress. Egress (from
//! the container): a link cannot shape what it receives, so the host
//! veth's ingress is redirected (`u32` filter, `mirred` action) to an IFB
//! device, whose root `tbf` shapes it before the IFB hands it back. The IFB
//! is named as the reference names it (`bwp` + a hash of network name and
//! container ID), is added to the result's interfaces, and carries an alias
//! naming its network and container so GC knows whose it is.
//!
//! ADD: no limits, nothing is created and `prevResult` passes through.
//! CHECK: the qdiscs, their parameters and the redirect are there.
//! DEL: the IFB and the qdiscs go; succeeds when they are gone, also
//! without `CNI_NETNS` or `prevResult` (then only the IFB is looked for:
//! the veth's qdiscs go with the veth). GC: IFBs of this network whose
//! container is not in `cni.dev/valid-attachments`.

use cni::rollback::Rollback;
use cni::{CniResult, Error, Interface, Plugin, Request, Result, Version};
use cni_kernel::tc::{self, Tbf, INGRESS_HANDLE, TBF_HANDLE};
use cni_kernel::{Link, Netlink, Netns};
use serde_json::Value;

pub struct Bandwidth;

/// The latency bound the reference gives its token bucket filters: how
/// long a packet may wait for tokens, which sizes the queue (`limit`).
pub const LATENCY_MS: u32 = 25;

/// IFB names: this prefix and hex digits of a hash, 15 bytes in all.
const IFB_PREFIX: &str = "bwp";
const IFB_NAME_LEN: usize = 15;

/// The IFB's transmit queue is never shorter than this (the reference's
/// floor; an IFB is created with 32 otherwise).
const MIN_IFB_TXQLEN: u32 = 1000;

/// The alias of an IFB this plugin made: `cni-bandwidth:<network>:<id>`.
/// Network names and container IDs never contain `:`.
const ALIAS_PREFIX: &str = "cni-bandwidth:";

/// The longest alias the kernel keeps (`IFALIASZ` - 1).
const MAX_ALIAS: usize = 255;

/// The configuration keys, also accepted under `runtimeConfig.bandwidth`.
const KEYS: [&str; 4] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

/// The limits asked for, in bits per second and bits; 0 is "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

impl Limits {
    /// The limits of a configuration: its top-level keys, or, when it sets
    /// none, `runtimeConfig.bandwidth` (capability `bandwidth`), as the
    /// reference ranks them. Keys match in any letter case, as Go's decoder
    /// matches them (containerd's CRI sends `IngressRate`, ...).
    pub fn from_config(config: &[u8]) -> Result<Limits> {
        let mut v: Value = serde_json::from_slice(config)
            .map_err(|e| Error::decode(format!("failed to parse network configuration: {e}")))?;
        let mut top_keys = KEYS.to_vec();
        top_keys.push("runtimeConfig");
        cni::types::fold_keys(&mut v, &top_keys);
        let set = |obj: &Value| {
            KEYS.iter()
                .any(|k| obj.get(k).is_some_and(|x| !x.is_null()))
        };
        let (from, mut obj) = if set(&v) {
            ("", v)
        } else {
            let mut rc = v.get("runtimeConfig").cloned().unwrap_or(Value::Null);
            cni::types::fold_keys(&mut rc, &["bandwidth"]);
            let mut bw = rc.get("bandwidth").cloned().unwrap_or(Value::Null);
            if !bw.is_object() && !bw.is_null() {
                return Err(Error::decode(format!(
                    "runtimeConfig.bandwidth: want an object, got {bw}"
                )));
            }
            cni::types::fold_keys(&mut bw, &KEYS);
            ("runtimeConfig.bandwidth.", bw)
        };
        let mut get = |key: &str| -> Result<u64> {
            match obj.get_mut(key).map(Value::take) {
                None | Some(Value::Null) => Ok(0),
                Some(n) => n.as_u64().ok_or_else(|| {
                    Error::decode(format!(
                        "{from}{key}: want a whole number from 0 to {}, got {n}",
                        u64::MAX
                    ))
                }),
            }
        };
        let l = Limits {
            ingress_rate: get("ingressRate")?,
            ingress_burst: get("ingressBurst")?,
            egress_rate: get("egressRate")?,
            egress_burst: get("egressBurst")?,
        };
        validate(from, "ingress", l.ingress_rate, l.ingress_burst)?;
        validate(from, "egress", l.egress_rate, l.egress_burst)?;
        Ok(l)
    }

    pub fn is_zero(&self) -> bool {
        *self == Limits::default()
    }

    /// The filter shaping traffic towards the container, if limited.
    pub fn ingress(&self) -> Option<Tbf> {
        (self.ingress_rate > 0 && self.ingress_burst > 0)
            .then(|| Tbf::new(self.ingress_rate, self.ingress_burst, LATENCY_MS))
    }

    /// The filter shaping traffic from the container, if limited.
    pub fn egress(&self) -> Option<Tbf> {
        (self.egress_rate > 0 && self.egress_burst > 0)
            .then(|| Tbf::new(self.egress_rate, self.egress_burst, LATENCY_MS))
    }
}

/// The reference's rules for one direction (its messages, prefixed with
/// the keys they are about), and a rate of at least one byte a second,
/// below which the token bucket's arithmetic divides by zero.
fn validate(from: &str, dir: &str, rate: u64, burst: u64) -> Result<()> {
    let keys = format!("{from}{dir}Rate {rate}, {from}{dir}Burst {burst}");
    let why = if burst == 0 && rate != 0 {
        "if rate is set, burst must also be set"
    } else if rate == 0 && burst != 0 {
        "if burst is set, rate must also be set"
    } else if burst / 8 >= u64::from(u32::MAX) {
        "burst cannot be more than 4GB"
    } else if rate != 0 && rate < 8 {
        "rate must be at least 8 bits per second"
    } else {
        return Ok(());
    };
    Err(Error::config(format!("{keys}: {why}")))
}

/// The IFB of a container in a network: `bwp` and the first 12 hex digits
/// of SHA-512(network name + container ID), as the reference names it.
pub fn ifb_name(network: &str, container_id: &str) -> String {
    let hash = cni_kernel::nft::hash_hex(
        &format!("{network}{container_id}"),
        IFB_NAME_LEN - IFB_PREFIX.len(),
    );
    format!("{IFB_PREFIX}{hash}")
}

/// The alias that marks an IFB as this plugin's, for this attachment.
pub fn ifb_alias(network: &str, container_id: &str) -> String {
    format!("{ALIAS_PREFIX}{network}:{container_id}")
}

/// The (network, container ID) an IFB alias names, if it is ours.
fn parse_alias(alias: &str) -> Option<(&str, &str)> {
    alias.strip_prefix(ALIAS_PREFIX)?.rsplit_once(':')
}

fn is_veth(l: &Link) -> bool {
    l.kind.as_deref() == Some("veth")
}

/// The host end of the container interface `ifname`: its veth peer, which
/// must be a host-side interface of `prev` (as the reference requires).
fn host_veth(nl: &mut Netlink, ns: &Netns, ifname: &str, prev: &CniResult) -> Result<Link> {
    let host = peer_of(nl, ns, ifname)?;
    let listed = prev
        .interfaces
        .iter()
        .any(|i| i.sandbox.as_deref().unwrap_or_default().is_empty() && i.name == host.name);
    if !listed {
        return Err(Error::plugin(format!(
            "no veth peer of container interface {ifname} found in host ns: its peer {} is not \
             a host interface of prevResult",
            host.name
        )));
    }
    Ok(host)
}

/// The veth peer, in our namespace, of `ifname` in `ns`.
fn peer_of(nl: &mut Netlink, ns: &Netns, ifname: &str) -> Result<Link> {
    let ctr = Netlink::open_in(ns)?
        .link_by_name(ifname)
        .map_err(|e| e.context("find the container interface"))?;
    let peer = match (is_veth(&ctr), ctr.peer_index) {
        (true, Some(p)) if p > 0 => p,
        _ => {
            return Err(Error::plugin(format!(
                "container interface {ifname} has no veth peer (it is {})",
                ctr.kind.as_deref().unwrap_or("not a veth")
            )))
        }
    };
    let host = nl.link_by_index(peer).map_err(|e| {
        if e.is_not_found() {
            Error::plugin(format!(
                "veth peer with index {peer} of container interface {ifname} is not in host ns"
            ))
        } else {
            e.context(format!("find the veth peer of {ifname}")).into()
        }
    })?;
    // An index in our namespace that is not the peer (the peer lives in a
    // third namespace) must not be taken for it.
    if !is_veth(&host) || host.peer_index != Some(ctr.index) {
        return Err(Error::plugin(format!(
            "veth peer with index {peer} of container interface {ifname} is not in host ns \
             (link #{peer} here is {}, not its peer)",
            host.name
        )));
    }
    Ok(host)
}

/// Why the root qdisc of `link` is not the token bucket filter `want`.
fn expect_tbf(nl: &mut Netlink, link: &Link, want: &Tbf, what: &str) -> Result<()> {
    let qdiscs = nl.qdiscs(link.index)?;
    let Some(root) = qdiscs.iter().find(|q| q.is_root()) else {
        return Err(Error::plugin(format!(
            "{what} shaping: no qdisc at the root of {}",
            link.name
        )));
    };
    let Some(got) = root.tbf() else {
        return Err(Error::plugin(format!(
            "{what} shaping: the root qdisc of {} is {}, not tbf",
            link.name, root.kind
        )));
    };
    for (field, g, w) in [
        ("rate (bytes/s)", got.rate, want.rate),
        ("buffer (ticks)", got.buffer.into(), want.buffer.into()),
        ("limit (bytes)", got.limit.into(), want.limit.into()),
    ] {
        if g != w {
            return Err(Error::plugin(format!(
                "{what} shaping: tbf {field} on {} is {g}, the config asks for {w}",
                link.name
            )));
        }
    }
    Ok(())
}

/// Remove what ADD put on the host veth: the root tbf `1:`, and the ingress
/// qdisc when its filters redirect to our IFB (`ifb`, or, when that is
/// gone, to a link that no longer exists) and nowhere else. Without the
/// IFB's index, a redirect to any deleted link counts as ours: the
/// reference's DEL removes only the IFB, and a redirect to nothing drops
/// everything the container sends.
fn remove_shaping(nl: &mut Netlink, host: &Link, ifb: Option<u32>) -> cni_kernel::Result<()> {
    for q in nl.qdiscs(host.index)? {
        if q.is_root() && q.kind == "tbf" && q.handle == TBF_HANDLE {
            tc::tolerate_gone(nl.del_qdisc(host.index, TBF_HANDLE, q.parent))?;
        } else if q.is_ingress() {
            let mut ours = 0;
            let mut others = 0;
            for f in nl.filters(host.index, INGRESS_HANDLE)? {
                let Some(to) = f.redirect else { continue };
                // The kernel reports a redirect whose device was deleted
                // with ifindex 0.
                let mine = match ifb {
                    Some(i) => to == i,
                    None if to == 0 => true,
                    None => match nl.link_by_index(to) {
                        Ok(_) => false,
                        Err(e) if e.is_not_found() => true,
                        Err(e) => return Err(e),
                    },
                };
                if mine {
                    ours += 1;
                } else {
                    others += 1;
                }
            }
            if ours > 0 && others == 0 {
                tc::tolerate_gone(nl.del_qdisc(host.index, INGRESS_HANDLE, q.parent))?;
            }
        }
    }
    Ok(())
}

/// The IFB named `name` if it exists (and is an IFB).
fn find_ifb(nl: &mut Netlink, name: &str) -> Result<Option<Link>> {
    match nl.link_by_name(name) {
        Ok(l) if l.kind.as_deref() == Some("ifb") => Ok(Some(l)),
        Ok(l) => Err(Error::plugin(format!(
            "{name} exists but is a {} link, not the IFB this plugin makes; leaving it",
            l.kind.as_deref().unwrap_or("plain")
        ))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The host veths DEL may have shaped: the container interface's peer
/// while the namespace and interface exist, else the host-side veths of
/// `prevResult`; none without either.
fn host_veths_for_del(nl: &mut Netlink, req: &Request) -> Result<Vec<Link>> {
    if let Some(path) = &req.netns {
        if let Some(ns) = Netns::open_if_present(path)? {
            match peer_of(nl, &ns, &req.ifname) {
                Ok(l) => return Ok(vec![l]),
                // Gone, or no longer a veth: look at prevResult.
                Err(e) => log::info!("DEL: {}; trying prevResult", e.msg),
            }
        }
    }
    let Some(prev) = req.net.prev_result()? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for i in &prev.interfaces {
        if !i.sandbox.as_deref().unwrap_or_default().is_empty() {
            continue;
        }
        match nl.link_by_name(&i.name) {
            Ok(l) if is_veth(&l) => out.push(l),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Delete an IFB; already gone is fine.
fn delete_ifb(nl: &mut Netlink, ifb: &Link) -> cni_kernel::Result<()> {
    tc::tolerate_gone(nl.del_link(ifb.index))
        .map_err(|e| e.context(format!("delete ifb {}", ifb.name)))
}

impl Plugin for Bandwidth {
    fn name(&self) -> &str {
        "bandwidth"
    }

    /// 0.3.0 and later, as the reference: results before 0.3.0 cannot
    /// list the IFB.
    fn supported_versions(&self) -> &[Version] {
        &Version::ALL[2..]
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let limits = Limits::from_config(&req.config)?;
        let mut result = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("must be called as chained plugin"))?;
        if limits.is_zero() {
            return Ok(result);
        }
        let path = req
            .netns
            .as_ref()
            .ok_or_else(|| cni::skel::env_error("CNI_NETNS", "required for ADD"))?;
        let ns = Netns::open(path)?;
        let mut nl = Netlink::open()?;
        let host = host_veth(&mut nl, &ns, &req.ifname, &result)?;
        let mut undo = Rollback::new();

        if let Some(tbf) = limits.ingress() {
            nl.add_qdisc(tc::tbf_qdisc_message(host.index, &tbf), &|| {
                format!("add tbf qdisc for ingress shaping on {}", host.name)
            })?;
            let index = host.index;
            undo.push(format!("delete tbf qdisc of {}", host.name), move || {
                Netlink::open()
                    .and_then(|mut nl| nl.del_qdisc(index, TBF_HANDLE, tc::ROOT))
                    .map_err(|e| e.to_string())
            });
        }

        if let Some(tbf) = limits.egress() {
            let name = ifb_name(&req.net.name, &req.container_id);
            let txqlen = tc::link_txqlen(&host).unwrap_or(0).max(MIN_IFB_TXQLEN);
            nl.create_ifb(&name, host.mtu, Some(txqlen)).map_err(|e| {
                let e = Error::from(e);
                if e.msg.contains("EEXIST") {
                    Error::plugin(format!(
                        "{}: the IFB of container {} in network {} is there already \
                         (not deleted after an earlier ADD?)",
                        e.msg, req.container_id, req.net.name
                    ))
                } else {
                    e
                }
            })?;
            let ifb = nl.link_by_name(&name)?;
            let index = ifb.index;
            undo.push(format!("delete ifb {name}"), move || {
                Netlink::open()
                    .and_then(|mut nl| nl.del_link(index))
                    .map_err(|e| e.to_string())
            });
            let alias = ifb_alias(&req.net.name, &req.container_id);
            if alias.len() <= MAX_ALIAS {
                nl.set_alias(ifb.index, &alias)?;
            } else {
                log::warn!("{name}: alias {alias:?} is too long to set; GC will not know this IFB");
            }
            // Shape on the IFB before any traffic is sent to it.
            nl.add_qdisc(tc::tbf_qdisc_message(ifb.index, &tbf), &|| {
                format!("add tbf qdisc for egress shaping on {name}")
            })?;
            nl.add_qdisc(tc::ingress_qdisc_message(host.index), &|| {
                format!("add ingress qdisc on {}", host.name)
            })?;
            let index = host.index;
            undo.push(
                format!("delete ingress qdisc of {}", host.name),
                move || {
                    Netlink::open()
                        .and_then(|mut nl| nl.del_qdisc(index, INGRESS_HANDLE, tc::INGRESS))
                        .map_err(|e| e.to_string())
                },
            );
            nl.add_filter(tc::redirect_filter_message(host.index, ifb.index), &|| {
                format!(
                    "add filter redirecting the ingress of {} to {name}",
                    host.name
                )
            })?;
            result.interfaces.push(Interface {
                name,
                mac: ifb.mac_string(),
                ..Default::default()
            });
        }
        undo.commit();
        Ok(result)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let limits = Limits::from_config(&req.config)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("must be called as a chained plugin"))?;
        if limits.is_zero() {
            return Ok(());
        }
        let path = req
            .netns
            .as_ref()
            .ok_or_else(|| cni::skel::env_error("CNI_NETNS", "required for CHECK"))?;
        let ns = Netns::open(path)?;
        let mut nl = Netlink::open()?;
        let host = host_veth(&mut nl, &ns, &req.ifname, &prev)?;
        if let Some(tbf) = limits.ingress() {
            expect_tbf(&mut nl, &host, &tbf, "ingress")?;
        }
        if let Some(tbf) = limits.egress() {
            let name = ifb_name(&req.net.name, &req.container_id);
            let ifb = find_ifb(&mut nl, &name)?.ok_or_else(|| {
                Error::plugin(format!("egress shaping: ifb {name} does not exist"))
            })?;
            expect_tbf(&mut nl, &ifb, &tbf, "egress")?;
            let redirected = nl
                .filters(host.index, INGRESS_HANDLE)?
                .iter()
                .any(|f| f.redirect == Some(ifb.index));
            if !redirected {
                return Err(Error::plugin(format!(
                    "egress shaping: the ingress of {} is not redirected to {name}",
                    host.name
                )));
            }
        }
        Ok(())
    }

    fn del(&self, req: &Request) -> Result<()> {
        let mut nl = Netlink::open()?;
        let name = ifb_name(&req.net.name, &req.container_id);
        let ifb = find_ifb(&mut nl, &name)?;
        // Everything is tried; the errors are reported together.
        let mut errors = Vec::new();
        match host_veths_for_del(&mut nl, req) {
            Ok(hosts) => {
                for h in hosts {
                    if let Err(e) = remove_shaping(&mut nl, &h, ifb.as_ref().map(|l| l.index)) {
                        errors.push(format!("remove the qdiscs of {}: {e}", h.name));
                    }
                }
            }
            Err(e) => errors.push(e.msg),
        }
        if let Some(ifb) = &ifb {
            if let Err(e) = delete_ifb(&mut nl, ifb) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(errors.join("; ")))
        }
    }

    fn gc(&self, req: &Request) -> Result<()> {
        // No list: nothing is known to be stale.
        let Some(valid) = req.valid_attachments()? else {
            return Ok(());
        };
        let network = &req.net.name;
        let mut nl = Netlink::open()?;
        let mut errors = Vec::new();
        for link in nl.links()? {
            if link.kind.as_deref() != Some("ifb") {
                continue;
            }
            let Some((net, id)) = tc::link_alias(&link).and_then(parse_alias) else {
                continue;
            };
            if net != network
                || link.name != ifb_name(net, id)
                || valid.iter().any(|a| a.container_id == id)
            {
                continue;
            }
            if let Err(e) = delete_ifb(&mut nl, &link) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(errors.join("; ")))
        }
    }
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    Limits::from_config(&req.config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(v: Value) -> Result<Limits> {
        Limits::from_config(v.to_string().as_bytes())
    }

    #[test]
    fn ifb_names_match_the_reference() {
        // sha512("mynetcontainer-1") starts with these hex digits.
        let name = ifb_name("mynet", "container-1");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with("bwp"));
        assert_eq!(
            &name[3..],
            &cni_kernel::nft::hash_hex("mynetcontainer-1", 12)
        );
        assert_ne!(name, ifb_name("mynet", "container-2"));
    }

    #[test]
    fn aliases_name_network_and_container() {
        let a = ifb_alias("net-1.x", "abc_123");
        assert_eq!(parse_alias(&a), Some(("net-1.x", "abc_123")));
        assert_eq!(parse_alias("something else"), None);
    }

    #[test]
    fn top_level_keys_win_over_runtime_config() {
        let l = limits(
            json!({"name": "n", "ingressRate": 8000, "ingressBurst": 800,
            "runtimeConfig": {"bandwidth": {"egressRate": 16000, "egressBurst": 1600}}}),
        )
        .unwrap();
        assert_eq!(
            l,
            Limits {
                ingress_rate: 8000,
                ingress_burst: 800,
                ..Default::default()
            }
        );
        let l = limits(json!({"runtimeConfig": {"bandwidth":
            {"egressRate": 16000, "egressBurst": 1600}}}))
        .unwrap();
        assert_eq!((l.egress_rate, l.egress_burst), (16000, 1600));
        assert!(l.ingress().is_none() && l.egress().is_some());
    }

    #[test]
    fn keys_match_in_any_letter_case() {
        // As containerd's CRI sends them.
        let l = limits(json!({"RuntimeConfig": {"Bandwidth": {"IngressRate": 8000,
            "IngressBurst": 800, "EgressRate": 16000, "EgressBurst": 1600}}}))
        .unwrap();
        assert_eq!(
            l,
            Limits {
                ingress_rate: 8000,
                ingress_burst: 800,
                egress_rate: 16000,
                egress_burst: 1600
            }
        );
        let l = limits(json!({"EGRESSRATE": 8, "egressburst": 8})).unwrap();
        assert_eq!((l.egress_rate, l.egress_burst), (8, 8));
    }

    #[test]
    fn nothing_set_is_zero() {
        assert!(limits(json!({"name": "n"})).unwrap().is_zero());
        assert!(limits(json!({"runtimeConfig": {}})).unwrap().is_zero());
        assert!(limits(json!({"ingressRate": 0, "ingressBurst": 0}))
            .unwrap()
            .is_zero());
    }

    #[test]
    fn bounds_and_messages_as_the_reference() {
        for (v, want) in [
            (
                json!({"ingressRate": 100}),
                "ingressRate 100, ingressBurst 0: if rate is set, burst must also be set",
            ),
            (
                json!({"egressBurst": 100}),
                "egressRate 0, egressBurst 100: if burst is set, rate must also be set",
            ),
            (
                json!({"runtimeConfig": {"bandwidth": {"ingressRate": 100,
                    "ingressBurst": 8u64 * u64::from(u32::MAX)}}}),
                "burst cannot be more than 4GB",
            ),
            (
                json!({"egressRate": 7, "egressBurst": 100}),
                "rate must be at least 8 bits per second",
            ),
        ] {
            let e = limits(v.clone()).unwrap_err();
            assert_eq!(e.code, cni::error::INVALID_CONFIG, "{v}");
            assert!(e.msg.contains(want), "{v}: {}", e.msg);
        }
        // Just below the bound.
        limits(json!({"ingressRate": 100, "ingressBurst": 8u64 * u64::from(u32::MAX) - 1}))
            .unwrap();
        for bad in [
            json!({"ingressRate": -1}),
            json!({"egressRate": "1M"}),
            json!({"ingressRate": 1.5}),
            json!({"runtimeConfig": {"bandwidth": 5}}),
        ] {
            let e = limits(bad.clone()).unwrap_err();
            assert_eq!(e.code, cni::error::DECODING_FAILURE, "{bad}: {}", e.msg);
        }
    }
}
