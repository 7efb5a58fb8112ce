//! Kernel-layer errors: what was being done, and the errno as data so
//! callers can ask `is(EEXIST)` instead of matching strings.

use std::fmt;

/// An error from the kernel layer.
#[derive(Debug)]
pub struct Error {
    /// What was being done: "create veth eth0 (peer veth1a2b3c4d)".
    pub what: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    /// A system call or netlink request failed with this errno.
    Errno(i32),
    /// The namespace path does not exist (any more).
    NetnsGone,
    /// The path exists but is not a network namespace.
    NotNetns,
    /// The kernel answered something we did not expect.
    Protocol(String),
    /// The thing looked for is not there ("link eth0").
    NotFound,
    /// A tool the operation needs (`nft`, `iptables`) could not be run.
    NoTool(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn errno(what: impl Into<String>, errno: i32) -> Error {
        Error {
            what: what.into(),
            kind: Kind::Errno(errno),
        }
    }

    pub fn io(what: impl Into<String>, e: &std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(n) => Error::errno(what, n),
            None => Error::protocol(what, e.to_string()),
        }
    }

    pub fn protocol(what: impl Into<String>, msg: impl Into<String>) -> Error {
        Error {
            what: what.into(),
            kind: Kind::Protocol(msg.into()),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Error {
        Error {
            what: what.into(),
            kind: Kind::NotFound,
        }
    }

    /// Whether the failure was this errno.
    pub fn is(&self, errno: i32) -> bool {
        matches!(self.kind, Kind::Errno(n) if n == errno)
    }

    /// Whether the object was missing: `NotFound`, `ENODEV`, `ENOENT`, `ESRCH`,
    /// `EADDRNOTAVAIL` (an address that is not there).
    pub fn is_not_found(&self) -> bool {
        match self.kind {
            Kind::NotFound | Kind::NetnsGone => true,
            Kind::Errno(n) => {
                n == libc::ENODEV
                    || n == libc::ENOENT
                    || n == libc::ESRCH
                    || n == libc::EADDRNOTAVAIL
            }
            _ => false,
        }
    }

    /// Whether a needed tool could not be run at all (not installed).
    pub fn is_no_tool(&self) -> bool {
        matches!(self.kind, Kind::NoTool(_))
    }

    /// Prefix the description with an outer step.
    pub fn context(mut self, outer: impl fmt::Display) -> Error {
        self.what = format!("{outer}: {}", self.what);
        self
    }
}

/// A short name and meaning for the errnos a plugin meets.
fn errno_text(n: i32) -> String {
    let name = match n {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENOBUFS => "ENOBUFS",
        libc::EACCES => "EACCES",
        _ => "",
    };
    let text = std::io::Error::from_raw_os_error(n).to_string();
    // std appends " (os error N)"; keep the words only.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    if name.is_empty() {
        format!("{text} (errno {n})")
    } else {
        format!("{text} ({name})")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Errno(n) => write!(f, "{}: {}", self.what, errno_text(*n)),
            Kind::NetnsGone => write!(f, "{}: network namespace does not exist", self.what),
            Kind::NotNetns => write!(f, "{}: not a network namespace", self.what),
            Kind::Protocol(m) => write!(f, "{}: {m}", self.what),
            Kind::NotFound => write!(f, "{}: not found", self.what),
            Kind::NoTool(m) => write!(f, "{}: {m}", self.what),
        }
    }
}

impl std::error::Error for Error {}

/// The one mapping from kernel errors to CNI errors: plugin-specific code 100,
/// except a namespace that is not one, which is the runtime's mistake (code 4:
/// `CNI_NETNS` is invalid).
impl From<Error> for cni::Error {
    fn from(e: Error) -> cni::Error {
        let code = match e.kind {
            Kind::NotNetns | Kind::NetnsGone => cni::error::INVALID_ENV,
            _ => cni::error::PLUGIN_FAILURE,
        };
        cni::Error::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_errno() {
        let e = Error::errno("create veth eth0", libc::EEXIST);
        assert_eq!(e.to_string(), "create veth eth0: File exists (EEXIST)");
        assert!(e.is(libc::EEXIST));
        assert!(!e.is_not_found());
        let e = Error::errno("delete link x", libc::ENODEV).context("DEL");
        assert!(e.is_not_found());
        assert!(e
            .to_string()
            .starts_with("DEL: delete link x: No such device"));
    }

    #[test]
    fn maps_to_cni_codes() {
        let c: cni::Error = Error::errno("x", libc::EPERM).into();
        assert_eq!(c.code, 100);
        let c: cni::Error = Error {
            what: "open /run/netns/a".into(),
            kind: Kind::NotNetns,
        }
        .into();
        assert_eq!(c.code, 4);
        assert!(c.msg.contains("not a network namespace"));
    }
}
