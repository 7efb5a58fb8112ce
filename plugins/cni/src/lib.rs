//! The CNI protocol for plugins, written once: configuration and result
//! types for every spec version (0.1.0 to 1.1.0), errors and their codes,
//! `CNI_ARGS`, identifier validation, the skeleton that turns a process's
//! environment and stdin into a call of a plugin's verb, and delegation to
//! IPAM plugins.
//!
//! Nothing here touches the kernel; that is `cni-kernel`'s job.

pub mod args;
// A delegate gets PR_SET_PDEATHSIG between fork and exec (pre_exec).
#[allow(unsafe_code)]
pub mod delegate;
pub mod error;
pub mod fault;
pub mod ip;
pub mod ipam;
pub mod logger;
pub mod multicall;
pub mod result;
pub mod rollback;
pub mod skel;
pub mod types;
pub mod validate;
pub mod version;

pub use error::{Error, Result};
pub use result::{CniResult, Interface, IpConfig, Route};
pub use skel::{Command, Plugin, Request};
pub use types::{Dns, NetConf};
pub use version::Version;
