//! The layer between the kernel plumbing (`cni-kernel`: namespaces,
//! rtnetlink, sysctl, netfilter backends) and the plugins: the policy that
//! combines them the way the main plugins need it. A container's veth
//! pair, an IPAM result applied to an interface, the attachment steps an
//! ADD takes and undoes, and the masquerade and spoof-check rule sets.
//! It speaks the CNI protocol (results, requests, IPAM delegation); the
//! kernel crate below it does not.

pub mod attachment;
pub mod container;
pub mod iface;
pub mod ipmasq;
pub mod lower;
pub mod spoofcheck;
