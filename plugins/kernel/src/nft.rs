//! nftables through `nft -j`: a JSON document applied as one transaction
//! (`nft -j -f -`), and JSON listings. The kernel applies a document
//! atomically, so a half-applied rule set never exists.

use crate::error::{Error, Kind, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// The `nft` binary; `CNI_NFT` overrides it (tests, unusual installs).
fn nft_bin() -> String {
    std::env::var("CNI_NFT").unwrap_or_else(|_| "nft".to_string())
}

fn run(args: &[&str], stdin: Option<&[u8]>, what: &dyn Fn() -> String) -> Result<String> {
    let mut child = Command::new(nft_bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error {
            what: what(),
            kind: Kind::NoTool(format!("cannot run nft (is nftables installed?): {e}")),
        })?;
    if let (Some(data), Some(mut input)) = (stdin, child.stdin.take()) {
        input
            .write_all(data)
            .map_err(|e| Error::io(format!("{}: write to nft", what()), &e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("{}: wait for nft", what()), &e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if err.contains("No such file or directory") {
        return Err(Error {
            what: what(),
            kind: Kind::NotFound,
        });
    }
    Err(Error::protocol(what(), format!("nft failed: {err}")))
}

/// Apply `commands` (each `{"add": {...}}`, `{"delete": {...}}`, ...) as
/// one transaction.
pub fn apply(commands: Vec<Value>, what: &dyn Fn() -> String) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let doc = json!({ "nftables": commands }).to_string();
    run(&["-j", "-f", "-"], Some(doc.as_bytes()), what).map(|_| ())
}

/// The rules of one chain; an empty list when the table or chain does not exist.
pub fn list_rules(family: &str, table: &str, chain: &str) -> Result<Vec<Value>> {
    let what = || format!("list nftables chain {family} {table} {chain}");
    let out = match run(&["-j", "list", "chain", family, table, chain], None, &what) {
        Ok(out) => out,
        Err(e) if matches!(e.kind, Kind::NotFound) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let doc: Value = serde_json::from_str(&out)
        .map_err(|e| Error::protocol(what(), format!("bad JSON from nft: {e}")))?;
    Ok(doc["nftables"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get("rule").cloned())
                .collect()
        })
        .unwrap_or_default())
}

/// Whether a chain exists.
pub fn chain_exists(family: &str, table: &str, chain: &str) -> Result<bool> {
    let what = || format!("list nftables chain {family} {table} {chain}");
    match run(&["list", "chain", family, table, chain], None, &what) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.kind, Kind::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A rule's comment, if any.
pub fn comment(rule: &Value) -> Option<&str> {
    rule.get("comment").and_then(Value::as_str)
}

/// `{"delete": {"rule": ...}}` for a listed rule (by handle).
pub fn delete_rule(rule: &Value) -> Value {
    json!({"delete": {"rule": {
        "family": rule["family"],
        "table": rule["table"],
        "chain": rule["chain"],
        "handle": rule["handle"],
    }}})
}

/// nftables limits comments to 128 bytes; cut at a character boundary.
pub fn truncate_comment(mut s: String) -> String {
    const MAX: usize = 128;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Hex of SHA-512 of `s`, cut to `len` characters: the reference plugins'
/// way of naming chains and tagging rules, so ours and theirs agree.
pub fn hash_hex(s: &str, len: usize) -> String {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(s.as_bytes());
    let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_reference() {
        // utils.FormatChainName("test", "1234") == "CNI-2bbe0c48b91a7d1b8a6753a8" in the Go suite.
        assert_eq!(hash_hex("test1234", 24), "2bbe0c48b91a7d1b8a6753a8");
    }

    #[test]
    fn comments_are_cut_to_128_bytes() {
        assert_eq!(truncate_comment("é".repeat(100)).len(), 128);
        assert_eq!(truncate_comment(format!("a{}", "é".repeat(100))).len(), 127);
        assert_eq!(truncate_comment("short".into()), "short");
    }

    #[test]
    fn delete_uses_the_handle() {
        let rule = json!({"family":"inet","table":"t","chain":"c","handle":7,"expr":[]});
        assert_eq!(
            delete_rule(&rule),
            json!({"delete":{"rule":{"family":"inet","table":"t","chain":"c","handle":7}}})
        );
    }
}
