//! Kernel plumbing for CNI plugins, written once and called by every plugin:
//! network namespaces (entered only for the length of a closure), a synchronous
//! rtnetlink socket with `ip`-like verbs for links, addresses and routes,
//! and sysctls. Errors name the operation and keep the errno as data.

pub mod addr;
pub mod bridge_vlan;
pub mod conntrack;
pub mod dummy;
pub mod error;
pub mod exec;
pub mod iptables;
pub mod link;
pub mod macvlan;
pub mod netfilter;
pub mod netlink;
// The owner of namespace entry: setns(2) (for the length of a closure,
// returning on drop, or between fork and exec), flock(2) on the namespace file and the nsfs
// ioctl that tells a network namespace from other kinds need libc calls.
#[allow(unsafe_code, clippy::disallowed_methods)]
pub mod netns;
pub mod nft;
pub mod random;
pub mod records;
pub mod route;
pub mod rule;
pub mod sysctl;
pub mod tc;
// Tap devices are made only by ioctl(2) on /dev/net/tun (the kernel
// refuses tun/tap creation over rtnetlink): TUNSETIFF, TUNSETOWNER,
// TUNSETGROUP and TUNSETPERSIST need libc calls.
#[allow(unsafe_code)]
pub mod tuntap;
pub mod vlan;
pub mod vrf;

pub use addr::{Addr, Family};
pub use error::{Error, Kind, Result};
pub use link::{Link, VethSpec};
pub use netlink::Netlink;
pub use netns::Netns;
pub use route::Route;
