//! The `ipam` keys of a dhcp network, read by the plugin (socket path,
//! timeout) and by the daemon (options, priority) from the same stdin.

use crate::client::Options;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Where the daemon listens unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";
/// How long the plugin waits for the daemon's answer by default: longer
/// than the daemon's default acquisition time, so its error comes through.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The options asked for unless a `request` entry sets `skipDefault`:
/// subnet mask and routers, as the reference.
const DEFAULT_REQUEST: [u8; 2] = [1, 3];

/// dhcp-options(5) names the reference accepts besides numbers.
const OPTION_NAMES: &[(&str, u8)] = &[
    ("dhcp-client-identifier", 61),
    ("subnet-mask", 1),
    ("routers", 3),
    ("host-name", 12),
    ("user-class", 77),
    ("vendor-class-identifier", 60),
];

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct RequestOption {
    #[serde(default, rename = "skipDefault")]
    skip_default: bool,
    #[serde(default)]
    option: String,
}

#[derive(Debug, Default, Deserialize)]
struct ProvideOption {
    #[serde(default)]
    option: String,
    #[serde(default)]
    value: String,
    #[serde(default, rename = "fromArg")]
    from_arg: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawIpam {
    #[serde(default, rename = "daemonSocketPath")]
    daemon_socket_path: String,
    #[serde(default)]
    request: Vec<RequestOption>,
    #[serde(default)]
    provide: Vec<ProvideOption>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    timeout: Option<Value>,
}

/// A dhcp network's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Conf {
    /// The network's `name` (part of the client id).
    pub network: String,
    pub socket: String,
    /// Metric of the routes in the result; 0 leaves it unset.
    pub priority: u32,
    /// How long the plugin waits for the daemon (`timeout`, ours).
    pub call_timeout: Duration,
    request: Vec<RequestOption>,
    /// (option, value, fromArg)
    provide: Vec<(String, String, String)>,
}

/// A dhcp-options(5) name from the table above, or a number 0-255.
pub fn option_code(name: &str) -> Result<u8, String> {
    if let Some((_, code)) = OPTION_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*code);
    }
    name.parse::<u8>()
        .map_err(|e| format!("Can not parse option {name:?}: {e}"))
}

/// A Go duration (`90s`, `1m30s`, `500ms`, `2h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

impl Conf {
    /// Read the network config a plugin got on stdin.
    pub fn parse(stdin: &[u8]) -> Result<Conf, String> {
        let v: Value =
            serde_json::from_slice(stdin).map_err(|e| format!("error parsing netconf: {e}"))?;
        let network = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut ipam = v.get("ipam").cloned().unwrap_or(Value::Null);
        if ipam.is_null() {
            return Err("error parsing netconf: missing \"ipam\" object".into());
        }
        // Go's encoding/json matches keys without regard to case.
        cni::types::fold_keys(
            &mut ipam,
            &[
                "daemonSocketPath",
                "request",
                "provide",
                "priority",
                "timeout",
            ],
        );
        for list in ["request", "provide"] {
            if let Some(items) = ipam.get_mut(list).and_then(Value::as_array_mut) {
                for item in items {
                    cni::types::fold_keys(item, &["option", "skipDefault", "value", "fromArg"]);
                }
            }
        }
        let raw: RawIpam =
            serde_json::from_value(ipam).map_err(|e| format!("invalid ipam config: {e}"))?;
        let call_timeout = match raw.timeout {
            None | Some(Value::Null) => DEFAULT_CALL_TIMEOUT,
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| *f > 0.0 && f.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("ipam.timeout: {n} is not a positive number of seconds"))?,
            Some(Value::String(s)) => {
                parse_duration(&s).map_err(|e| format!("ipam.timeout: {e}"))?
            }
            Some(other) => {
                return Err(format!(
                    "ipam.timeout: {other} is neither seconds nor a duration like \"45s\""
                ))
            }
        };
        let priority = u32::try_from(raw.priority)
            .map_err(|_| format!("ipam.priority: {} is not a route metric", raw.priority))?;
        Ok(Conf {
            network,
            socket: if raw.daemon_socket_path.is_empty() {
                DEFAULT_SOCKET.to_string()
            } else {
                raw.daemon_socket_path
            },
            priority,
            call_timeout,
            request: raw.request,
            provide: raw
                .provide
                .into_iter()
                .map(|p| (p.option, p.value, p.from_arg))
                .collect(),
        })
    }

    /// The options to request and provide, with `fromArg` values looked up
    /// in `CNI_ARGS` (`cni_args`, `K=V;K=V`).
    pub fn options(&self, cni_args: &str) -> Result<Options, String> {
        let args: Vec<(&str, &str)> = cni_args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let mut out = Options::default();
        for (name, value, from_arg) in &self.provide {
            let code = option_code(name)?;
            let mut chosen = None;
            if !value.is_empty() {
                chosen = Some(value.as_str());
            }
            if let Some((_, v)) = args.iter().rev().find(|(k, _)| k == from_arg) {
                chosen = Some(v);
            }
            if let Some(v) = chosen {
                if v.len() > 255 {
                    return Err(format!("value too long for option {name:?}: {v:?}"));
                }
                out.provide.retain(|(c, _)| *c != code);
                out.provide.push((code, v.as_bytes().to_vec()));
            }
        }
        let mut skip_default = false;
        for r in &self.request {
            skip_default |= r.skip_default;
            let code = option_code(&r.option)?;
            if !out.request.contains(&code) {
                out.request.push(code);
            }
        }
        if !skip_default {
            for code in DEFAULT_REQUEST {
                if !out.request.contains(&code) {
                    out.request.push(code);
                }
            }
        }
        Ok(out)
    }
}

/// The client id the reference derives: `<container>/<network>/<ifname>`,
/// at most 254 bytes (the option's length limit, less its type byte).
pub fn client_id(container_id: &str, network: &str, ifname: &str) -> String {
    let mut id = format!("{container_id}/{network}/{ifname}");
    if id.len() > 254 {
        let mut cut = 254;
        while !id.is_char_boundary(cut) {
            cut -= 1;
        }
        id.truncate(cut);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(ipam: &str) -> Result<Conf, String> {
        Conf::parse(format!(r#"{{"name":"n","ipam":{ipam}}}"#).as_bytes())
    }

    #[test]
    fn defaults_and_keys() {
        let c = conf(r#"{"type":"dhcp"}"#).unwrap();
        assert_eq!(c.socket, DEFAULT_SOCKET);
        assert_eq!(c.call_timeout, DEFAULT_CALL_TIMEOUT);
        assert_eq!(c.options("").unwrap().request, vec![1, 3]);
        let c =
            conf(r#"{"DaemonSocketPath":"/tmp/x.sock","priority":7,"timeout":"1m30s"}"#).unwrap();
        assert_eq!((c.socket.as_str(), c.priority), ("/tmp/x.sock", 7));
        assert_eq!(c.call_timeout, Duration::from_secs(90));
        assert!(conf(r#"{"priority":-1}"#).is_err());
        assert!(conf(r#"{"timeout":true}"#).is_err());
        assert!(Conf::parse(br#"{"name":"n"}"#).is_err());
    }

    #[test]
    fn request_and_provide_as_the_reference() {
        let c = conf(
            r#"{"request":[{"option":"121"},{"option":"host-name","skipDefault":true}],
                "provide":[{"option":"host-name","value":"a","fromArg":"K8S_POD_NAME"},
                           {"option":"60","value":"vendor"}]}"#,
        )
        .unwrap();
        let o = c.options("IgnoreUnknown=1;K8S_POD_NAME=web-0").unwrap();
        assert_eq!(o.request, vec![121, 12]);
        assert_eq!(
            o.provide,
            vec![(12, b"web-0".to_vec()), (60, b"vendor".to_vec())]
        );
        let o = c.options("").unwrap();
        assert_eq!(o.provide[0], (12, b"a".to_vec()));
        assert!(conf(r#"{"request":[{"option":"no-such"}]}"#)
            .unwrap()
            .options("")
            .unwrap_err()
            .contains("no-such"));
    }

    #[test]
    fn durations_as_go_writes_them() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn client_ids_fit_the_option() {
        assert_eq!(client_id("c", "n", "eth0"), "c/n/eth0");
        assert_eq!(client_id(&"x".repeat(300), "n", "eth0").len(), 254);
    }
}
