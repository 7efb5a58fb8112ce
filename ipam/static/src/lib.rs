//! static IPAM: returns the addresses, routes and DNS it is configured with.
//! Nothing is reserved, so DEL, GC and STATUS have nothing to do.
//!
//! Addresses come from `ipam.addresses`, plus `CNI_ARGS` `IP` (comma-separated
//! CIDRs) with `GATEWAY` (comma-separated; each applies to those `IP`
//! addresses whose subnet holds it). `args.cni.ips`, and after it `runtimeConfig.ips`, replace
//! the whole list when present, as in the reference. Address parsing is
//! host-local's ([`cni::ip`]).

use cni::ip;
use cni::ipam::{routes, RouteConf};
use cni::{CniResult, Dns, Error, IpConfig, Plugin, Request, Result, Version};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Debug, Default, Deserialize)]
struct AddressConf {
    #[serde(default)]
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StaticConf {
    #[serde(default)]
    addresses: Vec<AddressConf>,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Debug, Default, Deserialize)]
struct IpsConf {
    /// `null` is an empty list, as Go decodes it.
    #[serde(default, deserialize_with = "null_as_empty")]
    ips: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One address to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub addresses: Vec<Address>,
    pub routes: Vec<cni::Route>,
    pub dns: Dns,
}

fn cidr(text: &str, key: &str) -> Result<IpNet> {
    ip::parse_cidr(text).map_err(|e| Error::config(format!("{key}: {e}")))
}

impl Config {
    pub fn from_request(req: &Request) -> Result<Config> {
        let ipam = req.net.ipam.as_ref().ok_or_else(|| {
            Error::config("missing \"ipam\" object (static reads its settings from it)")
        })?;
        let conf: StaticConf = serde_json::from_value(serde_json::Value::Object(ipam.rest.clone()))
            .map_err(|e| Error::config(format!("invalid ipam config: {e}")))?;

        let mut addresses = Vec::new();
        for (i, a) in conf.addresses.iter().enumerate() {
            let key = format!("ipam.addresses[{i}]");
            let address = cidr(&a.address, &format!("{key}.address"))?;
            let gateway = match a.gateway.as_deref().filter(|g| !g.is_empty()) {
                Some(g) => {
                    let gw = ip::parse_ip(g)
                        .map_err(|e| Error::config(format!("{key}.gateway: {e}")))?;
                    if !ip::same_family(gw, address.addr()) {
                        return Err(Error::config(format!(
                            "{key}.gateway: {gw} is not of the same family as {address}"
                        )));
                    }
                    Some(gw)
                }
                None => None,
            };
            addresses.push(Address { address, gateway });
        }

        let args = req.cni_args(&["IP", "GATEWAY"])?;
        // CNI_ARGS GATEWAY applies to the addresses CNI_ARGS IP adds, not to
        // configured ones (the reference parses those only afterwards).
        let from_cni_args = addresses.len();
        if let Some(list) = args.get("IP").filter(|v| !v.is_empty()) {
            for item in list.split(',') {
                let address =
                    ip::parse_cidr(item).map_err(|e| Error::env(format!("CNI_ARGS IP: {e}")))?;
                addresses.push(Address {
                    address,
                    gateway: None,
                });
            }
        }
        if let Some(list) = args.get("GATEWAY").filter(|v| !v.is_empty()) {
            for item in list.split(',') {
                let gw =
                    ip::parse_ip(item).map_err(|e| Error::env(format!("CNI_ARGS GATEWAY: {e}")))?;
                for a in addresses.iter_mut().skip(from_cni_args) {
                    if ip::contains(&a.address, gw) {
                        a.gateway = Some(gw);
                    }
                }
            }
        }

        // Like the reference: each of these replaces every address above.
        let from_args: IpsConf = req.net.args_cni()?;
        let from_runtime: IpsConf = req.net.runtime_config()?;
        for (list, key) in [
            (&from_args.ips, "args.cni.ips"),
            (&from_runtime.ips, "runtimeConfig.ips"),
        ] {
            if !list.is_empty() {
                addresses = list
                    .iter()
                    .map(|s| {
                        cidr(s, key).map(|address| Address {
                            address,
                            gateway: None,
                        })
                    })
                    .collect::<Result<_>>()?;
            }
        }

        let v4 = addresses
            .iter()
            .filter(|a| a.address.addr().is_ipv4())
            .count();
        if (v4 > 1 || addresses.len() - v4 > 1) && req.version < Version::V0_3_0 {
            return Err(Error::config(format!(
                "cniVersion {} does not support more than 1 address per family (use 0.3.0 or later)",
                req.version
            )));
        }
        Ok(Config {
            addresses,
            routes: routes(&conf.routes, "ipam.routes")?,
            dns: conf.dns.unwrap_or_default(),
        })
    }
}

/// The plugin, for `cni::skel::run`.
pub struct Static;

impl Plugin for Static {
    fn name(&self) -> &str {
        "static"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let cfg = Config::from_request(req)?;
        Ok(CniResult {
            interfaces: Vec::new(),
            ips: cfg
                .addresses
                .iter()
                .map(|a| IpConfig {
                    interface: None,
                    address: a.address,
                    gateway: a.gateway,
                })
                .collect(),
            routes: cfg.routes,
            dns: cfg.dns,
        })
    }

    /// Every configured address is in `prevResult`, with its gateway when one is configured.
    fn check(&self, req: &Request) -> Result<()> {
        let cfg = Config::from_request(req)?;
        let prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("static: CHECK requires prevResult"))?;
        for a in &cfg.addresses {
            let found = prev
                .ips
                .iter()
                .find(|p| p.address.addr() == a.address.addr());
            match found {
                None => {
                    return Err(Error::plugin(format!(
                        "static: address {} is missing from prevResult on interface {}",
                        a.address, req.ifname
                    )))
                }
                Some(p) if a.gateway.is_some() && p.gateway != a.gateway => {
                    return Err(Error::plugin(format!(
                        "static: address {} has gateway {:?} in prevResult, configured {:?}",
                        a.address, p.gateway, a.gateway
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Nothing was reserved, so nothing to release.
    fn del(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}
