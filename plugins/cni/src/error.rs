//! CNI errors: the `{"cniVersion","code","msg","details"}` object a plugin
//! prints on stdout when it fails, and the codes the spec reserves.
//!
//! Every failure inside a plugin is an [`Error`] value carrying its spec code;
//! the code is chosen where the failure is understood and mapped to JSON once,
//! in the skeleton.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Unsupported field in the network configuration (message names key and value).
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Container unknown or does not exist.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Invalid necessary environment variables (message names them).
pub const INVALID_ENV: u32 = 4;
/// I/O failure, e.g. reading stdin.
pub const IO_FAILURE: u32 = 5;
/// Failed to decode content.
pub const DECODING_FAILURE: u32 = 6;
/// Invalid network configuration.
pub const INVALID_CONFIG: u32 = 7;
/// `CNI_NETNS` is the plugin's own namespace (not in the spec; the Go skeleton's code).
pub const INVALID_NETNS: u32 = 8;
/// Try again later.
pub const TRY_AGAIN_LATER: u32 = 11;
/// STATUS: the plugin cannot service ADD requests.
pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
/// STATUS: not available, and existing containers may have limited connectivity.
pub const LIMITED_CONNECTIVITY: u32 = 51;
/// Plugin-specific failures: kernel, netlink, IPAM store.
pub const PLUGIN_FAILURE: u32 = 100;
/// Internal error; the Go skeleton's code for any error that carried no code.
pub const INTERNAL: u32 = 999;

/// A CNI error: a spec code, a message and optional details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: u32, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    /// Code 7: the network configuration is invalid.
    pub fn config(msg: impl Into<String>) -> Error {
        Error::new(INVALID_CONFIG, msg)
    }

    /// Code 2: a key the plugin does not support here; `msg` names key and value.
    pub fn unsupported(msg: impl Into<String>) -> Error {
        Error::new(UNSUPPORTED_FIELD, msg)
    }

    /// Code 4: an invalid or missing environment variable.
    pub fn env(msg: impl Into<String>) -> Error {
        Error::new(INVALID_ENV, msg)
    }

    /// Code 6: content that could not be decoded.
    pub fn decode(msg: impl Into<String>) -> Error {
        Error::new(DECODING_FAILURE, msg)
    }

    /// Code 100: a plugin-level failure (kernel, netlink, storage).
    pub fn plugin(msg: impl Into<String>) -> Error {
        Error::new(PLUGIN_FAILURE, msg)
    }

    /// Prefix the message with what was being done: `"add address 10.1.0.2/24 to eth0: ..."`.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The JSON object printed on stdout, tagged with the config's version.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut obj = serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            obj["details"] = serde_json::Value::String(self.details.clone());
        }
        obj
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Attach context to any error on its way to becoming a CNI error.
pub trait Context<T> {
    /// Turn the error into a CNI error with `code`, prefixed by `what`.
    fn context_code(self, code: u32, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context_code(self, code: u32, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(code, format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_version_and_omits_empty_details() {
        let e = Error::config("bad subnet");
        let v = e.to_json("1.0.0");
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"bad subnet"})
        );
        let v = e.with_details("x").to_json("0.4.0");
        assert_eq!(v["details"], "x");
    }

    #[test]
    fn context_prefixes_message() {
        let e = Error::plugin("file exists").context("add address 10.0.0.1/24 to eth0");
        assert_eq!(e.msg, "add address 10.0.0.1/24 to eth0: file exists");
        let r: std::result::Result<(), String> = Err("boom".into());
        let e = r.context_code(IO_FAILURE, "read stdin").unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (5, "read stdin: boom"));
    }

    #[test]
    fn parses_error_from_json() {
        let e: Error = serde_json::from_str(r#"{"code":11,"msg":"busy"}"#).unwrap();
        assert_eq!(e, Error::new(TRY_AGAIN_LATER, "busy"));
    }
}
