//! The portmap plugin: forwards host ports to a container (chained after
//! bridge or ptp), from `runtimeConfig.portMappings`.
//!
//! ADD: for each family the container has an address of (first IPv4 and
//! first IPv6 of `prevResult` on `CNI_IFNAME`), DNAT from the host port to
//! the container port for traffic addressed to a local address, and with
//! `snat` masquerade of hairpin and localhost traffic; `prevResult` passes
//! through. No mappings: nothing is touched. Then, as the reference does,
//! conntrack entries of UDP flows to the mapped host ports are deleted, so
//! a flow that began before the mapping (and was tracked to the old
//! destination) reaches the container with its next packet.
//! DEL: the container's rules go from both backends, found by container ID
//! alone (no namespace or `prevResult` needed). CHECK: the rules are there.
//! GC: rules of containers this plugin recorded for the network and the
//! list no longer names, and iptables rules whose comment names the network.

mod ipt;
mod nft;

use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::conntrack::IPPROTO_UDP;
use cni_kernel::netfilter::{tolerate_missing_other, Backend};
use cni_kernel::records::Records;
use cni_kernel::{sysctl, Family, Netlink};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

pub struct Portmap;

/// Where ADD records the containers it mapped ports for, per network, so
/// GC knows which rules belong to which network (the nftables rules carry
/// only the container ID, as the reference writes them).
const DEFAULT_DATA_DIR: &str = "/run/cni/portmap";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    snat: Option<bool>,
    #[serde(default)]
    masq_all: bool,
    #[serde(default)]
    mark_masq_bit: Option<i64>,
    #[serde(default)]
    external_set_mark_chain: Option<String>,
    #[serde(default, rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(default, rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    #[serde(default)]
    data_dir: Option<String>,
}

/// One `runtimeConfig.portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// `None`: any local address (also for `0.0.0.0` and `::`).
    pub host_ip: Option<IpAddr>,
    /// `hostIP` was `::`: any local address, but of IPv6 only (as the
    /// reference applies an unspecified address of one family).
    host_ip_v6_only: bool,
}

impl PortMapping {
    /// Whether this mapping applies to a container address of family `v6`.
    pub fn applies_to(&self, v6: bool) -> bool {
        match self.host_ip {
            Some(ip) => ip.is_ipv6() == v6,
            None => !self.host_ip_v6_only || v6,
        }
    }
}

/// Everything ADD, CHECK and DEL need, resolved from the request.
#[derive(Clone)]
pub struct Setup {
    pub network: String,
    pub container_id: String,
    pub backend: Backend,
    pub snat: bool,
    pub masq_all: bool,
    /// `0x2000/0x2000` for bit 13.
    pub mark: String,
    pub external_set_mark_chain: Option<String>,
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
    pub mappings: Vec<PortMapping>,
    data_dir: PathBuf,
}

/// The container addresses ports are forwarded to: the first of each
/// family on `ifname` in the sandbox (or on no named interface).
pub fn container_ips(prev: &CniResult, ifname: &str) -> (Option<IpNet>, Option<IpNet>) {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &prev.ips {
        if let Some(i) = ip.interface.and_then(|i| prev.interfaces.get(i)) {
            if i.name != ifname || i.sandbox.as_deref().unwrap_or_default().is_empty() {
                continue;
            }
        }
        let slot = if ip.address.addr().is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        slot.get_or_insert(ip.address);
    }
    (v4, v6)
}

/// iptables syntax when the first word starts with `-` or `!`.
fn conditions_are_iptables(c: &[String]) -> Option<bool> {
    let first = c.first().filter(|f| !f.is_empty())?;
    Some(first.starts_with('-') || first.starts_with('!'))
}

fn parse_mappings(req: &Request) -> Result<Vec<PortMapping>> {
    let Some(mut rc) = req.net.runtime_config.clone() else {
        return Ok(Vec::new());
    };
    cni::types::fold_keys(&mut rc, &["portMappings"]);
    let list = match rc.get("portMappings") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list.clone(),
        Some(other) => {
            return Err(Error::decode(format!(
                "runtimeConfig.portMappings: want a list, got {other}"
            )))
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, mut m)| parse_mapping(i, &mut m))
        .collect()
}

fn parse_mapping(i: usize, m: &mut Value) -> Result<PortMapping> {
    let at = |what: String| Error::config(format!("runtimeConfig.portMappings[{i}]: {what}"));
    if !m.is_object() {
        return Err(at(format!("want an object, got {m}")));
    }
    cni::types::fold_keys(m, &["hostPort", "containerPort", "protocol", "hostIP"]);
    let port = |key: &str| -> Result<u16> {
        let v = &m[key];
        let n = v
            .as_i64()
            .ok_or_else(|| at(format!("{key}: want a port number, got {v}")))?;
        match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(at(format!("Invalid {key} number: {n} (want 1-65535)"))),
        }
    };
    let host_port = port("hostPort")?;
    let container_port = port("containerPort")?;
    let protocol = match &m["protocol"] {
        Value::Null => "tcp".to_string(),
        Value::String(p) => p.to_ascii_lowercase(),
        other => return Err(at(format!("protocol: want a string, got {other}"))),
    };
    let protocol = match protocol.as_str() {
        "" => "tcp".to_string(),
        "tcp" | "udp" | "sctp" => protocol,
        other => {
            return Err(at(format!(
                "protocol {other:?} is not \"tcp\", \"udp\" or \"sctp\""
            )))
        }
    };
    let (host_ip, host_ip_v6_only) = match &m["hostIP"] {
        Value::Null => (None, false),
        Value::String(s) if s.is_empty() => (None, false),
        Value::String(s) => match s.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => (None, ip.is_ipv6()),
            Ok(ip) => (Some(ip), false),
            Err(_) => return Err(at(format!("hostIP {s:?} is not an IP address"))),
        },
        other => return Err(at(format!("hostIP: want a string, got {other}"))),
    };
    Ok(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
        host_ip_v6_only,
    })
}

impl Setup {
    fn load(req: &Request) -> Result<Setup> {
        let c: Conf = req.parse_config()?;
        if c.mark_masq_bit.is_some() && c.external_set_mark_chain.is_some() {
            return Err(Error::config(
                "Cannot specify externalSetMarkChain and markMasqBit",
            ));
        }
        let bit = c.mark_masq_bit.unwrap_or(13);
        if !(0..=31).contains(&bit) {
            return Err(Error::config(format!(
                "markMasqBit: MasqMarkBit must be between 0 and 31, got {bit}"
            )));
        }
        // Options only one backend understands decide it when `backend` is
        // not given, and contradict it when it is.
        let mut ipt_only = Vec::new();
        let mut nft_only = Vec::new();
        if c.external_set_mark_chain.is_some() {
            ipt_only.push("externalSetMarkChain");
        }
        for (key, conds) in [
            ("conditionsV4", &c.conditions_v4),
            ("conditionsV6", &c.conditions_v6),
        ] {
            match conds.as_deref().and_then(conditions_are_iptables) {
                Some(true) => ipt_only.push(key),
                Some(false) => nft_only.push(key),
                None => {}
            }
        }
        let backend = match c.backend.as_deref() {
            Some("iptables") => Backend::Iptables,
            Some("nftables") => Backend::Nftables,
            None | Some("") if !ipt_only.is_empty() => Backend::Iptables,
            None | Some("") => Backend::Nftables,
            Some(other) => {
                return Err(Error::config(format!(
                    "backend: unrecognized backend {other:?} (want \"nftables\" or \"iptables\")"
                )))
            }
        };
        let (name, wrong) = match backend {
            Backend::Iptables => ("iptables", &nft_only),
            Backend::Nftables => ("nftables", &ipt_only),
        };
        if !wrong.is_empty() {
            return Err(Error::config(format!(
                "{name} backend was requested but configuration contains {}-specific options {wrong:?}",
                if name == "iptables" { "nftables" } else { "iptables" }
            )));
        }
        if !nft_only.is_empty() {
            // Conditions in nft's text syntax cannot be placed into the
            // typed JSON transaction this backend applies.
            return Err(Error::new(
                cni::error::UNSUPPORTED_FIELD,
                format!(
                    "{nft_only:?} in nftables syntax are not supported; use the iptables backend \
                     with iptables-syntax conditions"
                ),
            ));
        }
        let mark = format!("{:#x}/{:#x}", 1u32 << bit, 1u32 << bit);
        Ok(Setup {
            network: req.net.name.clone(),
            container_id: req.container_id.clone(),
            backend,
            snat: c.snat.unwrap_or(true),
            masq_all: c.masq_all,
            mark,
            external_set_mark_chain: c.external_set_mark_chain.filter(|s| !s.is_empty()),
            conditions_v4: c.conditions_v4.unwrap_or_default(),
            conditions_v6: c.conditions_v6.unwrap_or_default(),
            mappings: parse_mappings(req)?,
            data_dir: PathBuf::from(c.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into())),
        })
    }

    pub fn conditions(&self, v6: bool) -> &[String] {
        if v6 {
            &self.conditions_v6
        } else {
            &self.conditions_v4
        }
    }

    /// The records of this network: one (empty) per container with
    /// mappings, keyed by container ID.
    fn records(&self) -> Records {
        Records::new(&self.data_dir, &self.network)
    }

    /// `replace`: rules of this container may exist already (see
    /// `nft::install`).
    fn install(&self, v4: Option<IpNet>, v6: Option<IpNet>, replace: bool) -> Result<()> {
        match self.backend {
            Backend::Nftables => {
                nft::install(self, v4.map(|n| n.addr()), v6.map(|n| n.addr()), replace)?
            }
            Backend::Iptables => {
                for net in [v4, v6].into_iter().flatten() {
                    ipt::install(self, net)?;
                }
            }
        }
        Ok(())
    }

    /// Remove this container's rules from both backends, the configured
    /// one's tool required.
    fn teardown(&self) -> Result<()> {
        let mut errors = Vec::new();
        let r = nft::remove(&self.container_id);
        if let Err(e) = tolerate_missing_other(Backend::Nftables, self.backend, r) {
            errors.push(e.to_string());
        }
        for v6 in [false, true] {
            let r = ipt::remove(v6, self);
            if let Err(e) = tolerate_missing_other(Backend::Iptables, self.backend, r) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(format!(
                "remove port mappings of container {}: {}",
                self.container_id,
                errors.join("; ")
            )))
        }
    }
}

/// Delete the conntrack entries of UDP flows to the host ports of this
/// family's UDP mappings (in the caller's namespace, over ctnetlink). A UDP
/// "connection" tracked before the DNAT rule existed keeps its old
/// destination for as long as packets keep coming (the reference's
/// "conntrack blackholing"); deleting it lets the next packet be NATed.
fn clear_stale_udp(s: &Setup, family: Family) -> cni_kernel::Result<usize> {
    let v6 = family == Family::V6;
    let mut ports: Vec<u16> = s
        .mappings
        .iter()
        .filter(|m| m.protocol == "udp" && m.applies_to(v6))
        .map(|m| m.host_port)
        .collect();
    if ports.is_empty() {
        return Ok(0);
    }
    ports.sort_unstable();
    ports.dedup();
    Netlink::open_netfilter()?.delete_conntrack_to_ports(family, IPPROTO_UDP, &ports)
}

/// `route_localnet` on the host interface in front of `ip`, so traffic to
/// 127.0.0.1:hostPort can be DNATed out of it.
fn enable_route_localnet(ip: IpAddr) -> Result<()> {
    let mut nl = Netlink::open()?;
    let Some(route) = nl.route_to(ip)? else {
        return Ok(());
    };
    let Some(oif) = route.oif else {
        return Ok(());
    };
    let link = nl.link_by_index(oif)?;
    sysctl::ensure(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1")
        .map_err(|e| Error::plugin(format!("unable to enable route_localnet: {e}")))
}

impl Plugin for Portmap {
    fn name(&self) -> &str {
        "portmap"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let s = Setup::load(req)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("must be called as chained plugin"))?;
        if s.mappings.is_empty() {
            return Ok(prev);
        }
        let (v4, v6) = container_ips(&prev, &req.ifname);
        let mut undo = cni::rollback::Rollback::new();
        // A container recorded already (an ADD repeated without DEL) gets
        // its old rules replaced; one never recorded has none of ours.
        let replace = s.records().exists(&s.container_id);
        s.records().write(&s.container_id, b"")?;
        let t = s.clone();
        undo.push("remove port-mapping rules and record", move || {
            t.teardown()
                .and_then(|_| Ok(t.records().remove(&t.container_id)?))
                .map_err(|e| e.to_string())
        });
        s.install(v4, v6, replace)?;
        if let (true, Some(net)) = (s.snat, v4) {
            enable_route_localnet(net.addr())?;
        }
        undo.commit();
        // After the rules are in place, so new packets meet them. As in the
        // reference, a failure here (ctnetlink unavailable, say) is reported
        // on stderr but does not fail the ADD: the mapping itself works.
        for (family, ip) in [(Family::V4, v4), (Family::V6, v6)] {
            if ip.is_none() {
                continue;
            }
            match clear_stale_udp(&s, family) {
                Ok(0) => {}
                Ok(n) => log::debug!("deleted {n} stale UDP conntrack entries ({family:?})"),
                Err(e) => log::warn!("failed to delete stale UDP conntrack entries: {e}"),
            }
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let s = Setup::load(req)?;
        // Rules are looked for when this plugin recorded the container, or
        // when the config still asks for mappings (rules the reference
        // plugin wrote, or a record lost with /run).
        if s.mappings.is_empty() && !s.records().exists(&s.container_id) {
            return Ok(());
        }
        s.teardown()?;
        Ok(s.records().remove(&s.container_id)?)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let s = Setup::load(req)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("Required prevResult missing"))?;
        if s.mappings.is_empty() {
            return Ok(());
        }
        let (v4, v6) = container_ips(&prev, &req.ifname);
        for ip in [v4, v6].into_iter().flatten().map(|n| n.addr()) {
            match s.backend {
                Backend::Nftables => nft::check(&s, ip)?,
                Backend::Iptables => ipt::check(&s, ip)?,
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let s = Setup::load(req)?;
        // No list: nothing is known to be stale.
        let Some(valid) = req.valid_attachments()? else {
            return Ok(());
        };
        let keep: Vec<String> = valid.into_iter().map(|a| a.container_id).collect();
        let mut stale: Vec<String> = s
            .records()
            .keys()?
            .into_iter()
            .filter(|id| !keep.contains(id))
            .collect();
        // iptables rules name their network: collect those the reference
        // (or a lost record) left too.
        for v6 in [false, true] {
            match ipt::containers_of(v6, &s.network) {
                Ok(ids) => stale.extend(ids.into_iter().filter(|id| !keep.contains(id))),
                Err(e) if e.is_no_tool() && s.backend != Backend::Iptables => {}
                Err(e) => return Err(e.into()),
            }
        }
        stale.sort();
        stale.dedup();
        let mut errors = Vec::new();
        for id in stale {
            // GC knows no stale container's mappings: rules are found by
            // listing.
            let one = Setup {
                container_id: id,
                mappings: Vec::new(),
                ..s.clone()
            };
            match one
                .teardown()
                .and_then(|_| Ok(one.records().remove(&one.container_id)?))
            {
                Ok(()) => {}
                Err(e) => errors.push(e.to_string()),
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
    Setup::load(req)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(v: Value) -> Result<PortMapping> {
        parse_mapping(0, &mut v.clone())
    }

    #[test]
    fn mappings_accept_any_letter_case() {
        let m = mapping(serde_json::json!({"HostPort": 8080, "ContainerPort": 80,
                                           "Protocol": "TCP", "HostIP": "127.0.0.1"}))
        .unwrap();
        assert_eq!(m.host_port, 8080);
        assert_eq!(m.container_port, 80);
        assert_eq!(m.protocol, "tcp");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert!(m.applies_to(false) && !m.applies_to(true));
        let any =
            mapping(serde_json::json!({"hostPort": 1, "containerPort": 2, "hostIP": ""})).unwrap();
        assert_eq!(any.protocol, "tcp");
        assert!(any.applies_to(false) && any.applies_to(true));
        let v6any = mapping(serde_json::json!({"hostPort": 1, "containerPort": 2, "hostIP": "::"}))
            .unwrap();
        assert!(!v6any.applies_to(false) && v6any.applies_to(true));
    }

    #[test]
    fn bad_mappings_name_the_entry_and_key() {
        for (m, want) in [
            (
                serde_json::json!({"hostPort": 0, "containerPort": 80}),
                "hostPort",
            ),
            (
                serde_json::json!({"hostPort": 70000, "containerPort": 80}),
                "70000",
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": -1}),
                "containerPort",
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}),
                "icmp",
            ),
            (
                serde_json::json!({"hostPort": 80, "containerPort": 80, "hostIP": "x"}),
                "hostIP",
            ),
            (serde_json::json!("80:80"), "object"),
        ] {
            let e = mapping(m.clone()).unwrap_err();
            assert_eq!(e.code, cni::error::INVALID_CONFIG, "{m}");
            assert!(
                e.msg.contains("portMappings[0]") && e.msg.contains(want),
                "{m}: {}",
                e.msg
            );
        }
    }

    #[test]
    fn conditions_syntax() {
        assert_eq!(conditions_are_iptables(&["-m".into()]), Some(true));
        assert_eq!(conditions_are_iptables(&["!".into()]), Some(true));
        assert_eq!(conditions_are_iptables(&["ip".into()]), Some(false));
        assert_eq!(conditions_are_iptables(&[]), None);
        assert_eq!(conditions_are_iptables(&["".into()]), None);
    }
}
