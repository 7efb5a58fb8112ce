//! ADD results: one internal model ([`CniResult`], shaped like spec 1.1.0)
//! converted to and from the wire format of every spec version.
//!
//! | versions        | shape                                                     |
//! |-----------------|-----------------------------------------------------------|
//! | 0.1.0, 0.2.0    | `ip4` / `ip6` objects, each with `ip`, `gateway`, `routes` |
//! | 0.3.0 – 0.4.0   | `interfaces`, `ips` (with `version`), `routes`, `dns`      |
//! | 1.0.0           | as 0.4.0 without `ips[].version`                            |
//! | 1.1.0           | adds interface `mtu`/`socketPath`/`pciID`, route `mtu`/`advmss`/`priority`/`table`/`scope` |
//!
//! Converting down drops what the older version cannot express: 0.2.0 keeps
//! the first address of each family and routes of the families it kept;
//! 1.0.0 and older drop the 1.1.0 fields.

use crate::error::{Error, Result};
use crate::types::Dns;
use crate::version::Version;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// An interface in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// 1.1.0
    pub mtu: Option<u32>,
    /// The container's netns path for interfaces inside it.
    pub sandbox: Option<String>,
    /// 1.1.0
    pub socket_path: Option<String>,
    /// 1.1.0
    pub pci_id: Option<String>,
}

/// An address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// Index into `interfaces`; IPAM results carry none.
    pub interface: Option<usize>,
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    /// 1.1.0
    pub mtu: Option<u32>,
    /// 1.1.0
    pub advmss: Option<u32>,
    /// 1.1.0
    pub priority: Option<u32>,
    /// 1.1.0
    pub table: Option<u32>,
    /// 1.1.0
    pub scope: Option<u8>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// The result of ADD, independent of spec version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---- wire formats ----

fn is_zero_opt<T: Default + PartialEq>(v: &Option<T>) -> bool {
    v.as_ref().is_none_or(|x| *x == T::default())
}

/// An IP that may be written as `""` (Go writes nothing, but older tools wrote empty strings).
fn opt_ip<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IpAddr>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

fn opt_str<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.filter(|s| !s.is_empty()))
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireInterface {
    name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_str"
    )]
    mac: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero_opt")]
    mtu: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_str"
    )]
    sandbox: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_str"
    )]
    socket_path: Option<String>,
    #[serde(
        default,
        rename = "pciID",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_str"
    )]
    pci_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_ip"
    )]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct WireRoute {
    dst: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_ip"
    )]
    gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_zero_opt")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero_opt")]
    advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero_opt")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

/// 0.3.0 and later.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCurrent {
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<WireInterface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    // The reference always prints `dns`, `{}` when empty; so do we.
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireLegacyRoute {
    dst: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_ip"
    )]
    gw: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct WireLegacyIp {
    ip: IpNet,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_ip"
    )]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireLegacyRoute>,
}

/// 0.1.0 and 0.2.0.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLegacy {
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<WireLegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<WireLegacyIp>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// Parse a result of any version. Its own `cniVersion` decides the shape;
    /// `default` is used when it names none (libcni does the same).
    pub fn from_value(v: &Value, default: Version) -> Result<CniResult> {
        let named = v.get("cniVersion").and_then(Value::as_str).unwrap_or("");
        let version = if named.is_empty() {
            default
        } else {
            Version::parse(named).ok_or_else(|| {
                Error::new(
                    crate::error::INCOMPATIBLE_VERSION,
                    format!("result has unsupported cniVersion {named:?}"),
                )
            })?
        };
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("cniVersion".into(), Value::from(version.as_str()));
        }
        let bad = |e: serde_json::Error| Error::decode(format!("invalid {version} result: {e}"));
        if version.is_legacy() {
            let w: WireLegacy = serde_json::from_value(v).map_err(bad)?;
            Ok(CniResult::from_legacy(w))
        } else {
            let w: WireCurrent = serde_json::from_value(v).map_err(bad)?;
            Ok(CniResult::from_current(w))
        }
    }

    /// Parse result bytes, e.g. a delegate's stdout.
    pub fn from_slice(bytes: &[u8], default: Version) -> Result<CniResult> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("failed to decode result: {e}")))?;
        CniResult::from_value(&v, default)
    }

    /// The result as `version` writes it.
    pub fn to_value(&self, version: Version) -> Value {
        let v = if version.is_legacy() {
            serde_json::to_value(self.to_legacy(version))
        } else {
            serde_json::to_value(self.to_current(version))
        };
        // Serialising these plain structs into a Value cannot fail.
        v.unwrap_or(Value::Null)
    }

    fn from_current(w: WireCurrent) -> CniResult {
        CniResult {
            interfaces: w
                .interfaces
                .into_iter()
                .map(|i| Interface {
                    name: i.name,
                    mac: i.mac,
                    mtu: i.mtu.filter(|m| *m != 0),
                    sandbox: i.sandbox,
                    socket_path: i.socket_path,
                    pci_id: i.pci_id,
                })
                .collect(),
            ips: w
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: w
                .routes
                .into_iter()
                .map(|r| Route {
                    dst: r.dst,
                    gw: r.gw,
                    mtu: r.mtu.filter(|m| *m != 0),
                    advmss: r.advmss.filter(|m| *m != 0),
                    priority: r.priority.filter(|m| *m != 0),
                    table: r.table,
                    scope: r.scope,
                })
                .collect(),
            dns: w.dns,
        }
    }

    fn to_current(&self, version: Version) -> WireCurrent {
        let v11 = version >= Version::V1_1_0;
        let with_ip_version = version < Version::V1_0_0;
        WireCurrent {
            cni_version: version.as_str().into(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| WireInterface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    mtu: i.mtu.filter(|_| v11),
                    sandbox: i.sandbox.clone(),
                    socket_path: i.socket_path.clone().filter(|_| v11),
                    pci_id: i.pci_id.clone().filter(|_| v11),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: with_ip_version.then(|| {
                        if ip.address.addr().is_ipv4() {
                            "4"
                        } else {
                            "6"
                        }
                        .to_string()
                    }),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|r| WireRoute {
                    dst: r.dst,
                    gw: r.gw,
                    mtu: r.mtu.filter(|_| v11),
                    advmss: r.advmss.filter(|_| v11),
                    priority: r.priority.filter(|_| v11),
                    table: r.table.filter(|_| v11),
                    scope: r.scope.filter(|_| v11),
                })
                .collect(),
            dns: self.dns.clone(),
        }
    }

    fn from_legacy(w: WireLegacy) -> CniResult {
        let mut r = CniResult {
            dns: w.dns,
            ..CniResult::default()
        };
        for ip in [w.ip4, w.ip6].into_iter().flatten() {
            r.ips.push(IpConfig {
                interface: None,
                address: ip.ip,
                gateway: ip.gateway,
            });
            r.routes
                .extend(ip.routes.into_iter().map(|rt| Route::new(rt.dst, rt.gw)));
        }
        r
    }

    fn to_legacy(&self, version: Version) -> WireLegacy {
        let pick = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.address.addr().is_ipv4() == v4)
                .map(|ip| WireLegacyIp {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.addr().is_ipv4() == v4)
                        .map(|r| WireLegacyRoute {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        WireLegacy {
            cni_version: version.as_str().into(),
            ip4: pick(true),
            ip6: pick(false),
            dns: self.dns.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: Some("0a:58:0a:01:00:01".into()),
                    mtu: Some(1400),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:58:0a:01:00:02".into()),
                    mtu: Some(1400),
                    sandbox: Some("/run/netns/c1".into()),
                    socket_path: Some("/run/x.sock".into()),
                    pci_id: Some("0000:00:1f.0".into()),
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.2/24".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.3/24".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00::2/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                },
            ],
            routes: vec![
                Route {
                    mtu: Some(1300),
                    advmss: Some(1200),
                    priority: Some(10),
                    table: Some(100),
                    scope: Some(253),
                    ..Route::new(
                        "0.0.0.0/0".parse().unwrap(),
                        Some("10.1.0.1".parse().unwrap()),
                    )
                },
                Route::new("::/0".parse().unwrap(), None),
            ],
            dns: Dns {
                nameservers: vec!["10.1.0.1".into()],
                domain: Some("example.org".into()),
                search: vec!["a.example.org".into()],
                options: vec!["ndots:2".into()],
            },
        }
    }

    /// What survives conversion to `v` of `full()`.
    fn expected_at(v: Version) -> CniResult {
        let mut r = full();
        if v < Version::V1_1_0 {
            for i in &mut r.interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
            for rt in &mut r.routes {
                *rt = Route::new(rt.dst, rt.gw);
            }
        }
        if v.is_legacy() {
            r.interfaces.clear();
            r.ips.remove(1); // only the first address of each family
            for ip in &mut r.ips {
                ip.interface = None;
            }
        }
        r
    }

    #[test]
    fn every_version_round_trips_what_it_can_express() {
        for &v in Version::ALL {
            let wire = full().to_value(v);
            assert_eq!(wire["cniVersion"], v.as_str());
            let back = CniResult::from_value(&wire, Version::V0_1_0).unwrap();
            assert_eq!(back, expected_at(v), "version {v}");
        }
    }

    #[test]
    fn every_pair_of_versions_converts_both_ways() {
        for &a in Version::ALL {
            for &b in Version::ALL {
                // a -> b -> parsed: what survives is what the older of the two holds.
                let at_a = CniResult::from_value(&full().to_value(a), a).unwrap();
                let at_b = CniResult::from_value(&at_a.to_value(b), b).unwrap();
                assert_eq!(at_b, expected_at(a.min(b)), "{a} -> {b}");
                // and converting it on again from b to a loses nothing more.
                let again = CniResult::from_value(&at_b.to_value(a), a).unwrap();
                assert_eq!(again, at_b, "{a} -> {b} -> {a}");
            }
        }
    }

    #[test]
    fn wire_shapes() {
        let r = full();
        let v110 = r.to_value(Version::V1_1_0);
        assert_eq!(v110["interfaces"][1]["pciID"], "0000:00:1f.0");
        assert_eq!(v110["interfaces"][1]["socketPath"], "/run/x.sock");
        assert_eq!(v110["routes"][0]["table"], 100);
        assert_eq!(v110["routes"][0]["scope"], 253);
        assert!(v110["ips"][0].get("version").is_none());

        let v100 = r.to_value(Version::V1_0_0);
        assert!(v100["interfaces"][1].get("mtu").is_none());
        assert!(v100["routes"][0].get("table").is_none());

        let v040 = r.to_value(Version::V0_4_0);
        assert_eq!(v040["ips"][0]["version"], "4");
        assert_eq!(v040["ips"][2]["version"], "6");
        assert_eq!(v040["ips"][0]["interface"], 1);

        let v020 = r.to_value(Version::V0_2_0);
        assert_eq!(
            v020,
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
                "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
                "dns": {"nameservers": ["10.1.0.1"], "domain": "example.org",
                        "search": ["a.example.org"], "options": ["ndots:2"]}
            })
        );
    }

    #[test]
    fn empty_result_prints_empty_dns_like_the_reference() {
        let v = CniResult::default().to_value(Version::V1_0_0);
        assert_eq!(v, json!({"cniVersion": "1.0.0", "dns": {}}));
    }

    #[test]
    fn parses_reference_ipam_output() {
        // As Debian's host-local 1.1.1 prints it.
        let out = br#"{
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.9.0.2/29", "gateway": "10.9.0.1"}],
            "dns": {}
        }"#;
        let r = CniResult::from_slice(out, Version::V1_0_0).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].interface, None);
        assert_eq!(r.ips[0].gateway, Some("10.9.0.1".parse().unwrap()));
    }

    #[test]
    fn missing_version_uses_default_and_bad_input_is_code_6() {
        let r =
            CniResult::from_value(&json!({"ip4": {"ip": "10.0.0.2/24"}}), Version::V0_2_0).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        let e = CniResult::from_value(
            &json!({"cniVersion":"1.0.0","ips":[{"address":"nope"}]}),
            Version::V1_0_0,
        )
        .unwrap_err();
        assert_eq!(e.code, 6);
        let e = CniResult::from_value(&json!({"cniVersion":"9.9.9"}), Version::V1_0_0).unwrap_err();
        assert_eq!(e.code, 1);
        let e = CniResult::from_slice(b"not json", Version::V1_0_0).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn empty_gateway_string_is_none() {
        let r = CniResult::from_value(
            &json!({"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.2/24","gateway":""}]}),
            Version::V0_3_1,
        )
        .unwrap();
        assert_eq!(r.ips[0].gateway, None);
    }
}
