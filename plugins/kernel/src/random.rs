//! Random bytes from the kernel, for generated names (`veth1a2b3c4d`).

use crate::error::{Error, Result};

/// `n` random bytes from getrandom(2).
pub fn bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), n - filled, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::io("getrandom", &e));
        }
        filled += r as usize;
    }
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
