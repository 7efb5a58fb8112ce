//! Network configuration as a plugin receives it on stdin.
//!
//! [`NetConf`] holds the keys every plugin shares. A plugin declares its own
//! struct with `#[serde(flatten)] net: NetConf` beside its own keys; unknown
//! keys are ignored, never rejected, as the spec asks.

use crate::error::{Error, Result};
use crate::result::CniResult;
use crate::version::Version;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// DNS settings, in configs and results alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The `ipam` object: its `type` names the IPAM binary; the rest belongs to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamConf {
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The keys every plugin's configuration shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<IpamConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
}

impl NetConf {
    /// The config's version; callers reach this only after the skeleton
    /// has checked it is one the plugin supports.
    pub fn version(&self) -> Result<Version> {
        Version::require(&self.cni_version, Version::ALL)
    }

    /// The IPAM plugin's type, if an `ipam` object with a non-empty `type` is present.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .map(|i| i.plugin_type.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The config's `dns`, when it should replace IPAM's in the result: set
    /// and not empty (an empty object overrides nothing, as in the
    /// reference).
    pub fn dns_override(&self) -> Option<&Dns> {
        self.dns.as_ref().filter(|d| !d.is_empty())
    }

    /// `runtimeConfig` decoded as the plugin's own type (its default when absent).
    pub fn runtime_config<T: DeserializeOwned + Default>(&self) -> Result<T> {
        match &self.runtime_config {
            None | Some(Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::decode(format!("invalid runtimeConfig: {e}"))),
        }
    }

    /// `args.cni` decoded as the plugin's own type (its default when absent).
    pub fn args_cni<T: DeserializeOwned + Default>(&self) -> Result<T> {
        match self.args.as_ref().and_then(|a| a.get("cni")) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::decode(format!("invalid args.cni: {e}"))),
        }
    }

    /// `prevResult`, parsed from whatever version it carries (the config's
    /// version when it names none).
    pub fn prev_result(&self) -> Result<Option<CniResult>> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let r = CniResult::from_value(v, self.version()?)
                    .map_err(|e| e.context("invalid prevResult"))?;
                Ok(Some(r))
            }
        }
    }
}

/// Decode a plugin's whole configuration from stdin bytes; a failure is code 6
/// with serde's line and column.
pub fn parse_config<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(format!("failed to decode network config: {e}")))
}

/// Rename the keys of the object `v` that match one of `names` without
/// regard to letter case to that name, as Go's encoding/json matches keys
/// to struct fields (an exact match wins). Runtimes are Go programs and
/// send capability arguments in their own spelling: containerd's CRI sends
/// `{"HostPort": 80, "ContainerPort": 8080, ...}` for `portMappings`.
/// Keys matching no name are left as they are.
pub fn fold_keys(v: &mut Value, names: &[&str]) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        if names.contains(&k.as_str()) {
            continue;
        }
        if let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(&k)) {
            if !obj.contains_key(*name) {
                if let Some(val) = obj.remove(&k) {
                    obj.insert((*name).to_string(), val);
                }
            }
        }
    }
}

/// For `#[serde(default, deserialize_with = "cni::types::zero_is_unset")]`
/// on an `Option<u32>` key such as `mtu`: `0` (and `null`) mean "not set",
/// as in the reference plugins, whose Go structs cannot tell 0 from absent.
pub fn zero_is_unset<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.filter(|v| *v != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fold_as_go_matches_them() {
        let mut v = serde_json::json!({"HostPort": 80, "containerport": 8080, "protocol": "tcp",
                                        "hostIP": "", "HOSTIP": "x", "other": 1});
        fold_keys(&mut v, &["hostPort", "containerPort", "protocol", "hostIP"]);
        assert_eq!(
            v,
            serde_json::json!({"hostPort": 80, "containerPort": 8080, "protocol": "tcp",
                               "hostIP": "", "HOSTIP": "x", "other": 1})
        );
    }

    #[test]
    fn zero_is_unset_for_marked_keys() {
        #[derive(Deserialize)]
        struct C {
            #[serde(default, deserialize_with = "zero_is_unset")]
            mtu: Option<u32>,
        }
        let mtu = |j: &str| parse_config::<C>(j.as_bytes()).map(|c| c.mtu);
        assert_eq!(mtu(r#"{"mtu":0}"#).unwrap(), None);
        assert_eq!(mtu(r#"{"mtu":null}"#).unwrap(), None);
        assert_eq!(mtu(r#"{}"#).unwrap(), None);
        assert_eq!(mtu(r#"{"mtu":1400}"#).unwrap(), Some(1400));
        assert_eq!(mtu(r#"{"mtu":-1}"#).unwrap_err().code, 6);
    }

    #[derive(Deserialize, Default)]
    struct MyConf {
        #[serde(flatten)]
        net: NetConf,
        bridge: Option<String>,
        #[serde(default)]
        mtu: u32,
    }

    #[test]
    fn plugin_keys_beside_common_keys() {
        let c: MyConf = parse_config(
            br#"{"cniVersion":"1.0.0","name":"n","type":"bridge","bridge":"br0","mtu":1400,
                "ipam":{"type":"host-local","subnet":"10.0.0.0/24"},"someFutureKey":[1]}"#,
        )
        .unwrap();
        assert_eq!(c.net.name, "n");
        assert_eq!(c.bridge.as_deref(), Some("br0"));
        assert_eq!(c.mtu, 1400);
        assert_eq!(c.net.ipam_type(), Some("host-local"));
        assert_eq!(
            c.net.ipam.unwrap().rest["subnet"],
            serde_json::json!("10.0.0.0/24")
        );
    }

    #[test]
    fn only_a_non_empty_dns_overrides() {
        let c: NetConf = parse_config(br#"{"name":"n","dns":{}}"#).unwrap();
        assert_eq!(c.dns_override(), None);
        let c: NetConf = parse_config(br#"{"name":"n","dns":{"search":["x"]}}"#).unwrap();
        assert_eq!(c.dns_override().unwrap().search, vec!["x".to_string()]);
        let c: NetConf = parse_config(br#"{"name":"n"}"#).unwrap();
        assert_eq!(c.dns_override(), None);
    }

    #[test]
    fn empty_ipam_has_no_type() {
        let c: NetConf = parse_config(br#"{"name":"n","ipam":{}}"#).unwrap();
        assert_eq!(c.ipam_type(), None);
        assert_eq!(c.version().unwrap(), Version::V0_1_0);
    }

    #[test]
    fn decode_error_is_code_6_with_position() {
        let e = parse_config::<NetConf>(b"{\"name\": ").unwrap_err();
        assert_eq!(e.code, 6);
        assert!(e.msg.contains("line 1"), "{}", e.msg);
        let e = parse_config::<NetConf>(br#"{"cniVersion": 1}"#).unwrap_err();
        assert_eq!(e.code, 6);
    }

    #[test]
    fn runtime_config_and_args() {
        #[derive(Deserialize, Default, Debug)]
        struct Rc {
            #[serde(default)]
            mac: Option<String>,
        }
        let c: NetConf = parse_config(
            br#"{"name":"n","runtimeConfig":{"mac":"aa:bb:cc:dd:ee:ff"},"args":{"cni":{"mac":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.runtime_config::<Rc>().unwrap().mac.as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(c.args_cni::<Rc>().unwrap().mac.as_deref(), Some("x"));
        let c: NetConf = parse_config(br#"{"name":"n","runtimeConfig":{"mac":5}}"#).unwrap();
        assert_eq!(c.runtime_config::<Rc>().unwrap_err().code, 6);
        let c: NetConf = parse_config(br#"{"name":"n"}"#).unwrap();
        assert!(c.runtime_config::<Rc>().unwrap().mac.is_none());
    }
}
