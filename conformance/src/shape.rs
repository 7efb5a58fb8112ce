//! Judging what a plugin printed: ADD results against the requested
//! version's wire shape, error objects against the spec's error shape, the
//! VERSION answer.

use cni::{CniResult, Version};
use serde_json::Value;

/// Check that `stdout` is an ADD result of `version`: a JSON object whose
/// `cniVersion` is the requested one, shaped as that version writes results,
/// and parseable by our spec library. Returns the parsed JSON.
pub fn add_result(stdout: &str, version: Version) -> Result<Value, String> {
    let v: Value = serde_json::from_str(stdout)
        .map_err(|e| format!("result is not JSON ({e}): {}", crate::exec::snippet(stdout)))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("result is not an object: {}", crate::exec::snippet(stdout)))?;
    match obj.get("cniVersion") {
        Some(Value::String(s)) if s == version.as_str() => {}
        Some(Value::String(s)) => {
            return Err(format!("result cniVersion is {s:?}, requested {version}"))
        }
        Some(other) => return Err(format!("result cniVersion is not a string: {other}")),
        None => return Err("result has no cniVersion".into()),
    }
    if version.is_legacy() {
        for key in ["ips", "interfaces"] {
            if obj.contains_key(key) {
                return Err(format!(
                    "{version} result carries {key:?} (a 0.3.0+ key); {version} results use ip4/ip6"
                ));
            }
        }
    } else {
        for key in ["ip4", "ip6"] {
            if obj.contains_key(key) {
                return Err(format!(
                    "{version} result carries {key:?} (a 0.1.0/0.2.0 key); {version} results use ips"
                ));
            }
        }
        let ips = match obj.get("ips") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(other) => return Err(format!("\"ips\" is not an array: {other}")),
        };
        let n_ifaces = match obj.get("interfaces") {
            None => 0,
            Some(Value::Array(a)) => a.len(),
            Some(other) => return Err(format!("\"interfaces\" is not an array: {other}")),
        };
        for (i, ip) in ips.iter().enumerate() {
            let addr = ip.get("address").and_then(Value::as_str).unwrap_or("");
            if version < Version::V1_0_0 {
                let want = if addr.contains(':') { "6" } else { "4" };
                match ip.get("version").and_then(Value::as_str) {
                    Some(got) if got == want => {}
                    Some(got) => {
                        return Err(format!(
                            "ips[{i}] ({addr}) has version {got:?}, expected {want:?}"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "ips[{i}] ({addr}) lacks \"version\", which {version} results carry"
                        ))
                    }
                }
            }
            if let Some(idx) = ip.get("interface") {
                match idx.as_u64() {
                    Some(n) if (n as usize) < n_ifaces => {}
                    _ => {
                        return Err(format!(
                            "ips[{i}].interface {idx} does not index the {n_ifaces} interface(s)"
                        ))
                    }
                }
            }
        }
    }
    CniResult::from_value(&v, version)
        .map_err(|e| format!("result does not parse as {version}: {}", e.msg))?;
    Ok(v)
}

/// A CNI error object: `{"code": <number>, "msg": <string>, ...}`.
pub struct CniError {
    pub code: u64,
    pub msg: String,
    pub details: String,
}

/// Parse stdout as a CNI error object, or say why it is not one.
pub fn error_object(stdout: &str) -> Result<CniError, String> {
    if stdout.trim().is_empty() {
        return Err("stdout is empty, expected a CNI error object".into());
    }
    let v: Value = serde_json::from_str(stdout).map_err(|_| {
        format!(
            "stdout is not a JSON error object: {}",
            crate::exec::snippet(stdout)
        )
    })?;
    let code = v.get("code").and_then(Value::as_u64).ok_or_else(|| {
        format!(
            "error object lacks a numeric \"code\": {}",
            crate::exec::snippet(stdout)
        )
    })?;
    let msg = v
        .get("msg")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "error object lacks a string \"msg\": {}",
                crate::exec::snippet(stdout)
            )
        })?
        .to_string();
    let details = v
        .get("details")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(CniError { code, msg, details })
}

/// The VERSION answer, judged: `Ok((cniVersion, supportedVersions))`, or the
/// problems found plus whatever list could still be read.
pub fn version_answer(stdout: &str) -> Result<(String, Vec<String>), (String, Vec<String>)> {
    let v: Value = match serde_json::from_str(stdout) {
        Ok(v) => v,
        Err(e) => {
            return Err((
                format!("not JSON ({e}): {}", crate::exec::snippet(stdout)),
                Vec::new(),
            ))
        }
    };
    let mut problems = Vec::new();
    let own = match v.get("cniVersion") {
        Some(Value::String(s)) => {
            if cni::version::semver(s).is_none() {
                problems.push(format!("cniVersion {s:?} is not MAJOR.MINOR.PATCH"));
            }
            s.clone()
        }
        _ => {
            problems.push("no string \"cniVersion\"".into());
            String::new()
        }
    };
    let mut list = Vec::new();
    match v.get("supportedVersions") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items {
                match item.as_str() {
                    Some(s) if cni::version::semver(s).is_some() => list.push(s.to_string()),
                    Some(s) => {
                        problems.push(format!("supported version {s:?} is not MAJOR.MINOR.PATCH"))
                    }
                    None => problems.push(format!("supported version {item} is not a string")),
                }
            }
        }
        Some(Value::Array(_)) => problems.push("\"supportedVersions\" is empty".into()),
        _ => problems.push("no array \"supportedVersions\"".into()),
    }
    if problems.is_empty() {
        Ok((own, list))
    } else {
        Err((problems.join("; "), list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_result_must_not_be_current_shaped() {
        let ok = r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.250.0.2/24"},"dns":{}}"#;
        assert!(add_result(ok, Version::V0_2_0).is_ok());
        let bad = r#"{"cniVersion":"0.2.0","ips":[{"address":"10.250.0.2/24"}]}"#;
        assert!(add_result(bad, Version::V0_2_0)
            .unwrap_err()
            .contains("ip4/ip6"));
    }

    #[test]
    fn ips_version_required_before_1_0_0() {
        let without = r#"{"cniVersion":"0.3.1","ips":[{"address":"10.250.0.2/24"}]}"#;
        assert!(add_result(without, Version::V0_3_1)
            .unwrap_err()
            .contains("lacks \"version\""));
        let with = r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.250.0.2/24"}]}"#;
        assert!(add_result(with, Version::V0_3_1).is_ok());
        let wrong = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"2001:db8::1/64"}]}"#;
        assert!(add_result(wrong, Version::V0_4_0).is_err());
        let v1 = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.250.0.2/24"}]}"#;
        assert!(add_result(v1, Version::V1_0_0).is_ok());
    }

    #[test]
    fn wrong_version_and_bad_index_fail() {
        let r = r#"{"cniVersion":"1.0.0","interfaces":[],"ips":[]}"#;
        assert!(add_result(r, Version::V1_1_0)
            .unwrap_err()
            .contains("requested 1.1.0"));
        let r = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"lo"}],"ips":[{"interface":1,"address":"127.0.0.1/8"}]}"#;
        assert!(add_result(r, Version::V1_0_0)
            .unwrap_err()
            .contains("does not index"));
        assert!(add_result("garbage", Version::V1_0_0).is_err());
        assert!(add_result("[]", Version::V1_0_0).is_err());
    }

    #[test]
    fn error_objects() {
        let e = error_object(r#"{"code":4,"msg":"required env variables [CNI_NETNS] missing"}"#)
            .unwrap();
        assert_eq!(e.code, 4);
        assert!(error_object(r#"{"code":"4","msg":"x"}"#).is_err());
        assert!(error_object(r#"{"code":4}"#).is_err());
        assert!(error_object("panic: oh no").is_err());
        assert!(error_object("").is_err());
    }

    #[test]
    fn version_answers() {
        let (own, list) =
            version_answer(r#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#)
                .unwrap();
        assert_eq!(own, "1.0.0");
        assert_eq!(list, ["0.4.0", "1.0.0"]);
        let (why, list) =
            version_answer(r#"{"cniVersion":"1.0","supportedVersions":["0.4.0","x"]}"#)
                .unwrap_err();
        assert!(why.contains("\"1.0\"") && why.contains("\"x\""), "{why}");
        assert_eq!(list, ["0.4.0"]);
        assert!(version_answer("{}").is_err());
    }
}
