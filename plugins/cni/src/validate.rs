//! Validation of the identifiers a runtime hands a plugin. A network name
//! becomes a directory name (host-local) and a container ID a file's
//! content, so nothing that could escape a directory may pass.

use crate::error::{Error, Result, INVALID_CONFIG, INVALID_ENV, UNKNOWN_CONTAINER};

/// The spec's `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Container ID: empty is code 3, bad characters code 4 (as the reference).
pub fn container_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::new(UNKNOWN_CONTAINER, "missing containerID"));
    }
    if !is_identifier(id) {
        return Err(Error::new(
            INVALID_ENV,
            "invalid characters in containerID (CNI_CONTAINERID must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$)",
        )
        .with_details(id));
    }
    Ok(())
}

/// Network name: code 7 when empty or with characters outside the spec's set.
pub fn network_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(INVALID_CONFIG, "missing network name"));
    }
    if !is_identifier(name) {
        return Err(Error::new(
            INVALID_CONFIG,
            "invalid characters found in network name (name must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$)",
        )
        .with_details(name));
    }
    Ok(())
}

/// Interface name: 1 to 15 bytes, not `.` or `..`, no `/`, `:`, whitespace
/// or NUL (code 4). The kernel ends a name at a NUL, so `eth0\0x` would
/// name `eth0` to it and something else to every file keyed by it; only
/// an in-process caller can pass one (an environment variable cannot).
pub fn interface_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(INVALID_ENV, format!("interface name {why}")).with_details(name))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > 15 {
        return bad("is too long (at most 15 bytes)");
    }
    if name == "." || name == ".." {
        return bad("is . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return bad("contains / or : or whitespace or NUL characters");
    }
    Ok(())
}

/// The MTUs an Ethernet-like link (veth, bridge) takes: 68 (IPv4's
/// minimum) to 65535 (the kernel's `ETH_MAX_MTU`). Checked before anything
/// is created, so the error names the key instead of a bare EINVAL.
pub fn mtu(m: u32) -> Result<()> {
    if !(68..=65535).contains(&m) {
        return Err(Error::new(
            INVALID_CONFIG,
            format!("mtu: {m} is out of range (68 to 65535)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtus() {
        for ok in [68, 1280, 1500, 9000, 65535] {
            mtu(ok).unwrap();
        }
        for bad in [1, 67, 65536, 70000, u32::MAX] {
            let e = mtu(bad).unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.contains(&bad.to_string()), "{}", e.msg);
        }
    }

    #[test]
    fn container_ids() {
        for ok in ["a", "0", "abc-DEF_1.2", "cnitool-77383ca0a0715733ca6f"] {
            container_id(ok).unwrap();
        }
        assert_eq!(container_id("").unwrap_err().code, 3);
        for bad in ["-a", ".a", "_a", "a/b", "a b", "a;b", "../x", "é", "a\n"] {
            let e = container_id(bad).unwrap_err();
            assert_eq!(e.code, 4, "{bad:?}");
            assert_eq!(e.details, bad);
        }
    }

    #[test]
    fn network_names() {
        network_name("mynet").unwrap();
        network_name("k8s-pod-network.v2_x").unwrap();
        assert_eq!(network_name("").unwrap_err().code, 7);
        for bad in [
            "..", ".", "../etc", "a/b", "/abs", "a b", "-x", "a\\b", "a\0b",
        ] {
            assert_eq!(network_name(bad).unwrap_err().code, 7, "{bad:?}");
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "a", "123456789012345", "net1.100", "eth-0_x"] {
            interface_name(ok).unwrap();
        }
        for bad in [
            "",
            "1234567890123456",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "eth0\0",
            "\0",
        ] {
            let e = interface_name(bad).unwrap_err();
            assert_eq!(e.code, 4, "{bad:?}");
        }
        // 15 bytes, counted in bytes, not characters.
        assert!(interface_name("ééééééééé").is_err());
    }
}
