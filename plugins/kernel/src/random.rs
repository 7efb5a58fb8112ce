//! Random bytes from the kernel, for generated names (`veth1a2b3c4d`).

use crate::error::{Error, Result};

/// `n` random bytes from the kernel's generator (`/dev/urandom`, which
/// never blocks once the system has booted).
pub fn bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("read /dev/urandom", &e))?;
    Ok(buf)
}

/// A host-side veth name like the reference's: `veth` and 8 hex digits.
pub fn veth_name() -> Result<String> {
    Ok(format!(
        "veth{}",
        bytes(4)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_random_and_fit_ifnamsiz() {
        let a = super::veth_name().unwrap();
        let b = super::veth_name().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
