//! dhcp IPAM: addresses from a DHCP server, through a daemon that holds
//! the leases (`dhcp daemon`, [`daemon_main`]), as the reference's two
//! halves. The plugin ([`Dhcp`]) asks the daemon over its unix socket with
//! the reference's protocol (Go `net/rpc`, gob-encoded: [`rpc`], [`gob`]),
//! so either half can be ours or the reference's.
//!
//! ADD is `DHCP.Allocate`; CHECK asks again (the daemon answers with the
//! lease it holds) and compares with `prevResult`; DEL is `DHCP.Release`;
//! GC asks our daemon to release leases of attachments it does not list
//! (the reference daemon has no such method: then nothing happens);
//! STATUS says whether the daemon answers on its socket.

pub mod client;
pub mod config;
pub mod daemon;
pub mod gob;
pub mod rpc;

pub use daemon::daemon_main;

use cni::error::{PLUGIN_NOT_AVAILABLE, TRY_AGAIN_LATER};
use cni::{CniResult, Error, Plugin, Request, Result};
use config::Conf;
use rpc::{CallError, CmdArgs};
use std::path::Path;

/// The plugin, for `cni::skel::run`.
pub struct Dhcp;

fn conf(req: &Request) -> Result<Conf> {
    Conf::parse(&req.config).map_err(Error::config)
}

fn cmd_args(req: &Request) -> Result<CmdArgs> {
    // The daemon may run in another working directory.
    let netns = match &req.netns {
        Some(p) => std::path::absolute(p)
            .map_err(|e| Error::env(format!("failed to make {p:?} an absolute path: {e}")))?
            .display()
            .to_string(),
        None => String::new(),
    };
    Ok(CmdArgs {
        container_id: req.container_id.clone(),
        netns,
        ifname: req.ifname.clone(),
        args: req.args.clone(),
        path: req
            .path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
        stdin_data: req.config.clone(),
    })
}

fn call(req: &Request, method: &str) -> Result<gob::Value> {
    let c = conf(req)?;
    rpc::call(
        Path::new(&c.socket),
        method,
        &cmd_args(req)?,
        c.call_timeout,
    )
    .map_err(|e| match e {
        CallError::Unreachable(e) => Error::new(
            TRY_AGAIN_LATER,
            format!(
                "error dialing DHCP daemon at {}: {e} (is `dhcp daemon` running?)",
                c.socket
            ),
        ),
        other => Error::plugin(format!("error calling {method}: {other}")),
    })
}

fn allocate(req: &Request) -> Result<CniResult> {
    let v = call(req, rpc::ALLOCATE)?;
    let result = rpc::result_from_value(&v)
        .map_err(|e| Error::plugin(format!("DHCP daemon's answer: {e}")))?;
    if result.ips.is_empty() {
        return Err(Error::plugin("DHCP daemon returned no address"));
    }
    Ok(result)
}

impl Plugin for Dhcp {
    fn name(&self) -> &str {
        "dhcp"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        allocate(req)
    }

    /// The daemon still holds the lease, and its address is in `prevResult`.
    fn check(&self, req: &Request) -> Result<()> {
        let held = allocate(req)?;
        if let Some(prev) = req.net.prev_result()? {
            for ip in &held.ips {
                if !prev
                    .ips
                    .iter()
                    .any(|p| p.address.addr() == ip.address.addr())
                {
                    return Err(Error::plugin(format!(
                        "dhcp: leased address {} is missing from prevResult",
                        ip.address
                    )));
                }
            }
        }
        Ok(())
    }

    fn del(&self, req: &Request) -> Result<()> {
        call(req, rpc::RELEASE).map(drop)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        match call(req, rpc::GC) {
            // The reference daemon does not know the method: nothing to collect there.
            Err(e) if e.msg.contains("can't find method") => Ok(()),
            other => other.map(drop),
        }
    }

    fn status(&self, req: &Request) -> Result<()> {
        let c = conf(req)?;
        rpc::connect(Path::new(&c.socket), c.call_timeout)
            .map(drop)
            .map_err(|e| {
                Error::new(
                    PLUGIN_NOT_AVAILABLE,
                    format!("DHCP daemon not reachable at {}: {e}", c.socket),
                )
            })
    }
}
