//! `CNI_ARGS`: `K1=V1;K2=V2`, deprecated by the spec in favour of `args` but
//! still sent by runtimes (Kubernetes sends `K8S_POD_NAME=...` and friends
//! together with `IgnoreUnknown=1`).

use crate::error::{Error, Result};

/// Parsed `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parse `CNI_ARGS`, accepting only the keys a plugin understands.
    /// Keys outside `known` are an error naming them, unless the args carry
    /// `IgnoreUnknown=1` (or `true`), as in the reference.
    pub fn parse(raw: &str, known: &[&str]) -> Result<CniArgs> {
        let mut pairs = Vec::new();
        for item in raw.split(';').filter(|s| !s.is_empty()) {
            let mut kv = item.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() => {
                    pairs.push((k.to_string(), v.to_string()))
                }
                _ => {
                    return Err(Error::env(format!(
                        "CNI_ARGS: invalid pair {item:?}: want KEY=VALUE"
                    )))
                }
            }
        }
        let args = CniArgs { pairs };
        let ignore_unknown = match args.get("IgnoreUnknown") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                Error::env(format!("CNI_ARGS: IgnoreUnknown={v:?} is not a boolean"))
            })?,
        };
        if !ignore_unknown {
            let unknown: Vec<&str> = args
                .pairs
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k != "IgnoreUnknown" && !known.contains(k))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::env(format!(
                    "CNI_ARGS: unknown args [{}] (this plugin understands [{}]; add IgnoreUnknown=1 to skip unknown keys)",
                    unknown.join(" "),
                    known.join(" ")
                )));
            }
        }
        Ok(args)
    }

    /// The value of `key`; the last one wins if it repeats.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Booleans as the Go reference reads them in CNI_ARGS: `1`/`true`, `0`/`false`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_pairs() {
        let a = CniArgs::parse("IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff", &["IP", "MAC"]).unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5"));
        assert_eq!(a.get("MAC"), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(a.get("X"), None);
        assert_eq!(CniArgs::parse("", &[]).unwrap(), CniArgs::default());
        // A trailing separator is tolerated.
        assert!(CniArgs::parse("IP=1.2.3.4;", &["IP"]).is_ok());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let e = CniArgs::parse("K8S_POD_NAME=p;IP=1.2.3.4", &["IP"]).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("K8S_POD_NAME"), "{}", e.msg);
        for on in ["1", "true", "TRUE"] {
            let a = CniArgs::parse(&format!("IgnoreUnknown={on};K8S_POD_NAME=p"), &["IP"]).unwrap();
            assert_eq!(a.get("K8S_POD_NAME"), Some("p"));
        }
        assert!(CniArgs::parse("IgnoreUnknown=0;X=1", &[]).is_err());
        let e = CniArgs::parse("IgnoreUnknown=maybe", &[]).unwrap_err();
        assert!(e.msg.contains("IgnoreUnknown"));
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        for bad in ["IP", "IP=1=2", "=x", "A=1;;B"] {
            let r = CniArgs::parse(bad, &["IP", "A", "B"]);
            if bad == "A=1;;B" {
                assert!(r.is_err(), "{bad}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.code, 4, "{bad}");
                assert!(e.msg.contains("CNI_ARGS"));
            }
        }
    }
}
