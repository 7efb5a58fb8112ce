//! `cni-plugins`: the whole suite in one executable. Installed once, with
//! each plugin's name in the plugin directory a hard link to it; the name
//! it is started under picks the role, as busybox does. Started under its
//! own name it takes the role from its first argument
//! (`cni-plugins bridge`), or lists the roles (`cni-plugins --list`).

use cni::multicall::{self, Role};
use std::ffi::OsString;
use std::process::ExitCode;

/// Every plugin this executable can be, by the file name runtimes run.
static ROLES: &[Role] = &[
    Role {
        name: "bridge",
        plugin: &bridge::Bridge,
    },
    Role {
        name: "ptp",
        plugin: &ptp::Ptp,
    },
    Role {
        name: "loopback",
        plugin: &loopback::Loopback,
    },
    Role {
        name: "portmap",
        plugin: &portmap::Portmap,
    },
    Role {
        name: "firewall",
        plugin: &firewall::Firewall,
    },
    Role {
        name: "bandwidth",
        plugin: &bandwidth::Bandwidth,
    },
    Role {
        name: "tuning",
        plugin: &tuning::Tuning,
    },
    Role {
        name: "sbr",
        plugin: &sbr::Sbr,
    },
    Role {
        name: "macvlan",
        plugin: &macvlan::Macvlan,
    },
    Role {
        name: "host-device",
        plugin: &host_device::HostDevice,
    },
    Role {
        name: "tap",
        plugin: &tap::Tap,
    },
    Role {
        name: "dummy",
        plugin: &dummy::Dummy,
    },
    Role {
        name: "vrf",
        plugin: &vrf::Vrf,
    },
    Role {
        name: "vlan",
        plugin: &vlan::Vlan,
    },
    Role {
        name: "ipvlan",
        plugin: &ipvlan::Ipvlan,
    },
    Role {
        name: "host-local",
        plugin: &host_local::HostLocal,
    },
    Role {
        name: "static",
        plugin: &static_ipam::Static,
    },
    Role {
        name: "dhcp",
        plugin: &dhcp::Dhcp,
    },
];

/// On musl, dlmalloc instead of musl's own allocator, which spent a sixth
/// of an ADD's time in malloc and free (perf, bridge + host-local).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Roles that are not plugins.
const TOOLS: &[&str] = &["cnitool"];

/// This executable's own name, under which it is not a plugin.
const SELF: &str = "cni-plugins";

fn main() -> ExitCode {
    multicall::register(ROLES);
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let mut role = args
        .first()
        .map(|a| multicall::role_name(a))
        .unwrap_or_default();
    if role == SELF {
        match args.get(1).map(|a| a.to_string_lossy().into_owned()) {
            Some(a) if a == "--list" => {
                for r in ROLES {
                    println!("{}", r.name);
                }
                for t in TOOLS {
                    println!("{t}");
                }
                return ExitCode::SUCCESS;
            }
            Some(a) if !a.starts_with('-') => {
                args.remove(0);
                role = a;
            }
            _ => {
                eprintln!(
                    "usage: {SELF} ROLE [ARGS...] | {SELF} --list\n\
                     Runs as the plugin ROLE; installed plugin names are links to this file."
                );
                return ExitCode::from(2);
            }
        }
    }
    if role == "cnitool" {
        let code = cnitool::main(args.into_iter().skip(1).collect());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // `dhcp daemon [flags]`: the lease daemon, as the reference runs it.
    if role == "dhcp" && args.get(1).is_some_and(|a| a == "daemon") {
        let code = dhcp::daemon_main(args.into_iter().skip(2).collect());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    multicall::run(&role, TOOLS)
}
