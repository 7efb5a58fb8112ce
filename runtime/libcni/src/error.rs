//! libcni's error: what failed (loading a config, a plugin's verb, the
//! result cache) and where (file and key, plugin and step), with the
//! plugin's CNI error and code kept as data.

use std::fmt;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong on the runtime side.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A network configuration is invalid: `file` (when it came from one),
    /// `key` (when one key is at fault) and what is wrong.
    Config {
        file: Option<PathBuf>,
        key: Option<String>,
        msg: String,
    },
    /// A config directory holds no `.conflist`, `.conf` or `.json` file.
    NoConfigs { dir: PathBuf },
    /// No config in `dir` has this network name.
    NotFound { dir: PathBuf, name: String },
    /// What the runtime was asked to do is invalid (a container ID, an
    /// interface or network name): the CNI error a plugin would give.
    Invalid(cni::Error),
    /// A plugin failed one step (`add`, `delete`, `check`, `gc`, `status`,
    /// `version`), or could not be found or run.
    Plugin {
        plugin_type: String,
        network: String,
        step: &'static str,
        error: cni::Error,
    },
    /// CHECK of a list whose version predates CHECK (0.4.0).
    CheckNotSupported { version: String },
    /// Reading or writing a result cache file.
    Cache { path: PathBuf, msg: String },
    /// An error, with what was being done when it happened.
    Context { what: String, source: Box<Error> },
    /// Several independent failures (GC keeps going and reports them all).
    Multiple(Vec<Error>),
}

impl Error {
    pub(crate) fn config(
        file: Option<PathBuf>,
        key: Option<&str>,
        msg: impl Into<String>,
    ) -> Error {
        Error::Config {
            file,
            key: key.map(str::to_string),
            msg: msg.into(),
        }
    }

    pub(crate) fn cache(path: impl Into<PathBuf>, msg: impl fmt::Display) -> Error {
        Error::Cache {
            path: path.into(),
            msg: msg.to_string(),
        }
    }

    pub(crate) fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }

    /// Set the file a config error came from, if it names none yet.
    pub(crate) fn in_file(self, path: &std::path::Path) -> Error {
        match self {
            Error::Config {
                file: None,
                key,
                msg,
            } => Error::Config {
                file: Some(path.to_path_buf()),
                key,
                msg,
            },
            e => e,
        }
    }

    /// The CNI error code behind this error, when a plugin (or the spec's
    /// validation rules) gave one. For [`Error::Multiple`], the first.
    pub fn code(&self) -> Option<u32> {
        match self {
            Error::Invalid(e) | Error::Plugin { error: e, .. } => Some(e.code),
            Error::Context { source, .. } => source.code(),
            Error::Multiple(errs) => errs.iter().find_map(Error::code),
            _ => None,
        }
    }

    /// The CNI error a plugin returned, if this is (or wraps) one.
    pub fn cni_error(&self) -> Option<&cni::Error> {
        match self {
            Error::Invalid(e) | Error::Plugin { error: e, .. } => Some(e),
            Error::Context { source, .. } => source.cni_error(),
            Error::Multiple(errs) => errs.iter().find_map(Error::cni_error),
            _ => None,
        }
    }

    /// Collapse a list of errors: none is `Ok`, one is itself.
    pub(crate) fn join(mut errs: Vec<Error>) -> Result<()> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::Multiple(errs)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { file, key, msg } => {
                if let Some(file) = file {
                    write!(f, "{}: ", file.display())?;
                }
                if let Some(key) = key {
                    write!(f, "key {key:?}: ")?;
                }
                f.write_str(msg)
            }
            Error::NoConfigs { dir } => {
                write!(f, "no net configurations found in {}", dir.display())
            }
            Error::NotFound { dir, name } => write!(
                f,
                "no net configuration with name {name:?} in {}",
                dir.display()
            ),
            Error::Invalid(e) => write!(f, "{e} (code {})", e.code),
            Error::Plugin {
                plugin_type,
                network,
                step,
                error,
            } => write!(
                f,
                "plugin type={plugin_type:?} name={network:?} failed ({step}): {error} (code {})",
                error.code
            ),
            Error::CheckNotSupported { version } => {
                write!(
                    f,
                    "configuration version {version:?} does not support the CHECK command"
                )
            }
            Error::Cache { path, msg } => write!(f, "result cache {}: {msg}", path.display()),
            Error::Context { what, source } => write!(f, "{what}: {source}"),
            Error::Multiple(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_names_plugin_step_and_code() {
        let e = Error::Plugin {
            plugin_type: "bridge".into(),
            network: "net1".into(),
            step: "add",
            error: cni::Error::new(11, "busy").with_details("try later"),
        };
        assert_eq!(
            e.to_string(),
            "plugin type=\"bridge\" name=\"net1\" failed (add): busy; try later (code 11)"
        );
        assert_eq!(e.code(), Some(11));
        let wrapped = e.clone().context("delete stale attachment c1 eth0");
        assert_eq!(wrapped.code(), Some(11));
        assert!(wrapped
            .to_string()
            .starts_with("delete stale attachment c1 eth0: plugin"));
    }

    #[test]
    fn config_error_names_file_and_key() {
        let e = Error::config(None, Some("disableCheck"), "invalid value \"yes\"")
            .in_file(std::path::Path::new("/etc/cni/net.d/10-a.conflist"));
        assert_eq!(
            e.to_string(),
            "/etc/cni/net.d/10-a.conflist: key \"disableCheck\": invalid value \"yes\""
        );
        assert_eq!(e.code(), None);
    }

    #[test]
    fn join_collapses() {
        assert!(Error::join(vec![]).is_ok());
        let one = Error::NoConfigs { dir: "/x".into() };
        assert_eq!(Error::join(vec![one.clone()]).unwrap_err(), one);
        let two = Error::join(vec![one.clone(), one.clone()]).unwrap_err();
        assert_eq!(two.to_string().lines().count(), 2);
    }
}
