//! Kernel plumbing for CNI plugins, written once and called by every plugin:
//! network namespaces (entered only on short-lived threads), a synchronous
//! rtnetlink socket with `ip`-like verbs for links, addresses and routes,
//! and sysctls. Errors name the operation and keep the errno as data.

pub mod addr;
pub mod attachment;
pub mod container;
pub mod error;
pub mod exec;
pub mod iface;
pub mod ipmasq;
pub mod iptables;
pub mod link;
pub mod netfilter;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod random;
pub mod records;
pub mod route;
pub mod rule;
pub mod spoofcheck;
pub mod sysctl;

pub use addr::{Addr, Family};
pub use error::{Error, Kind, Result};
pub use link::{Link, VethSpec};
pub use netlink::Netlink;
pub use netns::Netns;
pub use route::Route;
