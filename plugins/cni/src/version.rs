//! Spec versions and version negotiation.

use crate::error::{Error, Result, INCOMPATIBLE_VERSION};
use std::fmt;

/// A CNI spec version this library can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: &'static [Version] = &[
        Version::V0_1_0,
        Version::V0_2_0,
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// The newest version; what VERSION reports as its own.
    pub const CURRENT: Version = Version::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Parse a version string. An empty string is 0.1.0, as the spec's
    /// earliest configs carried no `cniVersion`.
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return Some(Version::V0_1_0);
        }
        Version::ALL.iter().copied().find(|v| v.as_str() == s)
    }

    /// Like [`Version::parse`], but an unknown version is a code-1 error.
    pub fn require(s: &str, supported: &[Version]) -> Result<Version> {
        match Version::parse(s) {
            Some(v) if supported.contains(&v) => Ok(v),
            _ => Err(
                Error::new(INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
                    format!(
                        "config is {s:?}, plugin supports [{}]",
                        supported
                            .iter()
                            .map(|v| format!("{:?}", v.as_str()))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                ),
            ),
        }
    }

    /// Results of 0.1.0 and 0.2.0 use `ip4`/`ip6` instead of `ips`.
    pub fn is_legacy(self) -> bool {
        self <= Version::V0_2_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse `MAJOR.MINOR.PATCH` into numbers for comparing versions this library
/// may not know (a config's `cniVersions` can name future versions).
pub fn semver(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// The VERSION answer: `{"cniVersion", "supportedVersions"}`.
pub fn version_info(supported: &[Version]) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": Version::CURRENT.as_str(),
        "supportedVersions": supported.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        assert_eq!(Version::parse(""), Some(Version::V0_1_0));
        assert_eq!(Version::parse("0.3.1"), Some(Version::V0_3_1));
        assert_eq!(Version::parse("0.5.0"), None);
        assert_eq!(Version::parse("1.1"), None);
        assert!(Version::V0_4_0 < Version::V1_0_0);
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(*v));
        }
    }

    #[test]
    fn require_gives_code_1_with_details() {
        let e = Version::require("0.9.0", Version::ALL).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("\"0.9.0\""), "{}", e.details);
        assert!(e.details.contains("\"1.1.0\""));
        let e = Version::require("0.2.0", &[Version::V1_0_0]).unwrap_err();
        assert_eq!(e.code, 1);
        assert_eq!(
            Version::require("1.0.0", Version::ALL).unwrap(),
            Version::V1_0_0
        );
    }

    #[test]
    fn semver_parses_three_numbers() {
        assert_eq!(semver("1.10.3"), Some((1, 10, 3)));
        assert_eq!(semver("1.0"), None);
        assert_eq!(semver("1.0.0.0"), None);
        assert_eq!(semver("a.b.c"), None);
    }

    #[test]
    fn version_info_shape() {
        let v = version_info(&[Version::V0_4_0, Version::V1_0_0]);
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0"]})
        );
    }
}
