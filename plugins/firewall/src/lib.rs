//! The firewall meta plugin, chained after an interface plugin (bridge,
//! ptp): forwarded traffic from the container's addresses, and replies to
//! it, is accepted ahead of the host's own forwarding rules; with
//! `ingressPolicy`, traffic between bridges (and, `isolated`, within one)
//! is dropped.
//!
//! ADD reads the addresses from `prevResult` and passes it on unchanged.
//! DEL needs neither `prevResult` nor the namespace: nftables rules carry
//! the attachment in their comment, and the iptables backend, whose rules
//! (the reference's) carry no owner, keeps a record of each attachment's
//! addresses (see [`state`]). DEL always cleans both backends, so a config
//! that switched backends still removes what the other one added. GC
//! removes what belongs to attachments of this network that are not in
//! `cni.dev/valid-attachments`; STATUS checks the configured backend's tool.

mod ipt;
mod nftb;
pub mod state;

use cni::error::{PLUGIN_NOT_AVAILABLE, UNSUPPORTED_FIELD};
use cni::{CniResult, Error, Plugin, Request, Result, Version};
use cni_kernel::netfilter::{tolerate_missing_other, Backend};
use cni_support::attachment;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct Firewall;

const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    iptables_admin_chain_name: Option<String>,
    /// Only meaningful for the firewalld backend, which we do not have.
    #[serde(default)]
    #[allow(dead_code)]
    firewalld_zone: Option<String>,
    #[serde(default)]
    ingress_policy: Option<String>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Open,
    SameBridge,
    Isolated,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Open => "open",
            Policy::SameBridge => "same-bridge",
            Policy::Isolated => "isolated",
        }
    }
}

/// The config, checked.
#[derive(Debug)]
struct Settings {
    backend: Backend,
    admin: String,
    policy: Policy,
    data_dir: PathBuf,
}

/// Whether `name` is an executable file on `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// No `backend`: iptables, as the reference without firewalld, when its
/// tools are installed, else nftables. Not nftables first: an accept in
/// our nftables table cannot override a `FORWARD` policy `DROP` set with
/// iptables (see [`nftb`]), which is the very setup this plugin is for.
fn default_backend() -> Backend {
    if !on_path("iptables-restore") && (on_path("nft") || std::env::var_os("CNI_NFT").is_some()) {
        Backend::Nftables
    } else {
        Backend::Iptables
    }
}

fn parse_backend(b: Option<&str>) -> Result<Backend> {
    match b {
        None | Some("") => Ok(default_backend()),
        Some("nftables") => Ok(Backend::Nftables),
        Some("iptables") => Ok(Backend::Iptables),
        Some("firewalld") => Err(Error::new(
            UNSUPPORTED_FIELD,
            "backend \"firewalld\" is not supported by this firewall plugin: set \"backend\" to \"nftables\" or \"iptables\"",
        )),
        Some(other) => Err(Error::config(format!(
            "backend: {other:?} is not \"nftables\" or \"iptables\""
        ))),
    }
}

fn parse_policy(p: Option<&str>) -> Result<Policy> {
    match p {
        None | Some("") | Some("open") => Ok(Policy::Open),
        Some("same-bridge") => Ok(Policy::SameBridge),
        Some("isolated") => Ok(Policy::Isolated),
        Some(other) => Err(Error::config(format!("unknown ingress policy: {other:?}"))),
    }
}

/// An iptables chain name we can put in a restore line: at most 28
/// characters (the kernel's limit), no blanks or quotes, not an option.
fn check_chain_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 28
        || name.starts_with(['-', '!'])
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
    if bad {
        return Err(Error::config(format!(
            "iptablesAdminChainName: {name:?} is not a valid iptables chain name (1 to 28 characters, no blanks or quotes, not starting with - or !)"
        )));
    }
    Ok(())
}

impl Settings {
    fn load(req: &Request) -> Result<Settings> {
        let c: Conf = req.parse_config()?;
        let admin = c
            .iptables_admin_chain_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN_CHAIN.to_string());
        check_chain_name(&admin)?;
        Ok(Settings {
            backend: parse_backend(c.backend.as_deref())?,
            admin,
            policy: parse_policy(c.ingress_policy.as_deref())?,
            data_dir: c
                .data_dir
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from(state::DEFAULT_DIR)),
        })
    }

    fn store(&self, req: &Request) -> state::Store {
        state::Store::new(Path::new(&self.data_dir), &req.net.name)
    }
}

fn prev_required(req: &Request) -> Result<CniResult> {
    req.net
        .prev_result()?
        .ok_or_else(|| Error::config("missing prevResult from earlier plugin"))
}

fn addresses(prev: &CniResult) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for ip in &prev.ips {
        if !ips.contains(&ip.address.addr()) {
            ips.push(ip.address.addr());
        }
    }
    ips
}

/// The bridge of an `ingressPolicy`: the first interface of the result.
fn policy_bridge(policy: Policy, prev: &CniResult) -> Result<Option<String>> {
    if policy == Policy::Open {
        return Ok(None);
    }
    match prev.interfaces.first().map(|i| i.name.as_str()) {
        Some(name) if !name.is_empty() => Ok(Some(name.to_string())),
        _ => Err(Error::config(format!(
            "interface needs to be set for ingress policy {:?}, make sure to chain \"firewall\" plugin with \"bridge\"",
            policy.name()
        ))),
    }
}

/// Collected teardown failures: every step runs, all are reported.
#[derive(Default)]
struct Errors(Vec<String>);

impl Errors {
    fn note(&mut self, r: cni_kernel::Result<()>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.0.push(e.to_string());
                false
            }
        }
    }

    fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(self.0.join("; ")))
        }
    }
}

impl Plugin for Firewall {
    fn name(&self) -> &str {
        "firewall"
    }

    fn supported_versions(&self) -> &[Version] {
        &[Version::V0_4_0, Version::V1_0_0, Version::V1_1_0]
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let s = Settings::load(req)?;
        let prev = prev_required(req)?;
        let ips = addresses(&prev);
        let bridge = policy_bridge(s.policy, &prev)?;
        match s.backend {
            Backend::Nftables => {
                let iso = bridge.as_deref().map(|b| nftb::Isolation {
                    bridge: b,
                    isolated: s.policy == Policy::Isolated,
                });
                nftb::add(&ips, &attachment::owner(req), iso.as_ref())?;
            }
            Backend::Iptables => {
                let iso = bridge.map(|b| ipt::Isolation {
                    bridge: b,
                    isolated: s.policy == Policy::Isolated,
                });
                // Recorded first: should the rules half go in, DEL and GC
                // still know whose they are.
                let store = s.store(req);
                store.write(&state::Record {
                    container_id: req.container_id.clone(),
                    ifname: req.ifname.clone(),
                    ips: ips.clone(),
                })?;
                if let Err(e) = ipt::add(&s.admin, &ips, iso.as_ref()) {
                    if let Err(u) = ipt::del(&ips) {
                        log::warn!("undo firewall rules: {u}");
                    }
                    if let Err(u) = store.remove(&req.container_id, &req.ifname) {
                        log::warn!("undo firewall record: {u}");
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(prev)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let s = Settings::load(req)?;
        let prev = prev_required(req)?;
        let ips = addresses(&prev);
        let missing = match s.backend {
            Backend::Nftables => nftb::check(&ips, &attachment::owner(req))?,
            Backend::Iptables => ipt::check(&s.admin, &ips)?,
        };
        match missing {
            Some(m) => Err(Error::plugin(m)),
            None => Ok(()),
        }
    }

    fn del(&self, req: &Request) -> Result<()> {
        let s = Settings::load(req)?;
        let store = s.store(req);
        let mut ips = match req.net.prev_result() {
            Ok(Some(prev)) => addresses(&prev),
            Ok(None) => Vec::new(),
            // A runtime's cached result we cannot read must not make the
            // container undeletable: the record and the tags suffice.
            Err(e) => {
                log::warn!("DEL without a usable prevResult: {e}");
                Vec::new()
            }
        };
        if let Some(r) = store.read(&req.container_id, &req.ifname)? {
            for ip in r.ips {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        // An address another live attachment of this network was given
        // since (this one's DEL came late) keeps its rules.
        let others: Vec<IpAddr> = store
            .list()?
            .into_iter()
            .filter(|r| !(r.container_id == req.container_id && r.ifname == req.ifname))
            .flat_map(|r| r.ips)
            .collect();
        ips.retain(|ip| !others.contains(ip));

        let mut errors = Errors::default();
        errors.note(tolerate_missing_other(
            Backend::Nftables,
            s.backend,
            nftb::del(&attachment::owner(req)),
        ));
        if !ips.is_empty() {
            errors.note(tolerate_missing_other(
                Backend::Iptables,
                s.backend,
                ipt::del(&ips),
            ));
        }
        if errors.0.is_empty() {
            store.remove(&req.container_id, &req.ifname)?;
        }
        errors.into_result()
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let s = Settings::load(req)?;
        // No list: nothing is known to be stale.
        let Some(valid) = req.valid_attachments()? else {
            return Ok(());
        };
        let network = req.net.name.as_str();
        let is_valid = |id: &str, ifname: &str| {
            valid
                .iter()
                .any(|a| a.container_id == id && a.ifname == ifname)
        };
        let mut errors = Errors::default();
        let keep: Vec<nftb::Owner> = valid
            .iter()
            .map(|a| nftb::Owner {
                network,
                ifname: &a.ifname,
                container_id: &a.container_id,
            })
            .collect();
        errors.note(tolerate_missing_other(
            Backend::Nftables,
            s.backend,
            nftb::gc(network, &keep).map(|_| ()),
        ));
        let store = s.store(req);
        let records = store.list()?;
        let kept_ips: Vec<IpAddr> = records
            .iter()
            .filter(|r| is_valid(&r.container_id, &r.ifname))
            .flat_map(|r| r.ips.iter().copied())
            .collect();
        for r in records
            .iter()
            .filter(|r| !is_valid(&r.container_id, &r.ifname))
        {
            let ips: Vec<IpAddr> = r
                .ips
                .iter()
                .copied()
                .filter(|ip| !kept_ips.contains(ip))
                .collect();
            let ok = ips.is_empty()
                || errors.note(tolerate_missing_other(
                    Backend::Iptables,
                    s.backend,
                    ipt::del(&ips),
                ));
            if ok {
                if let Err(e) = store.remove(&r.container_id, &r.ifname) {
                    errors.0.push(e.to_string());
                }
            }
        }
        errors.into_result()
    }

    fn status(&self, req: &Request) -> Result<()> {
        let s = Settings::load(req)?;
        let (name, probe) = match s.backend {
            Backend::Nftables => ("nftables", nftb::probe()),
            Backend::Iptables => ("iptables", ipt::probe()),
        };
        probe.map_err(|e| {
            Error::new(
                PLUGIN_NOT_AVAILABLE,
                format!("firewall backend {name} is not available: {e}"),
            )
        })
    }
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    Settings::load(req)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values() {
        assert_eq!(parse_backend(Some("nftables")).unwrap(), Backend::Nftables);
        assert_eq!(parse_backend(Some("iptables")).unwrap(), Backend::Iptables);
        let e = parse_backend(Some("firewalld")).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.msg.contains("firewalld") && e.msg.contains("nftables"));
        assert_eq!(parse_backend(Some("pf")).unwrap_err().code, 7);
        assert_eq!(parse_policy(None).unwrap(), Policy::Open);
        assert_eq!(parse_policy(Some("open")).unwrap(), Policy::Open);
        assert_eq!(parse_policy(Some("isolated")).unwrap(), Policy::Isolated);
        let e = parse_policy(Some("closed")).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (7, "unknown ingress policy: \"closed\"")
        );
        assert!(check_chain_name("CNI-ADMIN").is_ok());
        for bad in ["", "-X", "a b", "q\"", &"A".repeat(29)] {
            assert!(check_chain_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ingress_policy_needs_an_interface() {
        let prev = CniResult::default();
        assert_eq!(policy_bridge(Policy::Open, &prev).unwrap(), None);
        let e = policy_bridge(Policy::SameBridge, &prev).unwrap_err();
        assert!(e.msg.contains("\"same-bridge\""), "{}", e.msg);
    }
}
