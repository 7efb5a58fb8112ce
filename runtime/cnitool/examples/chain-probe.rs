//! A minimal chained ("meta") plugin, used by cnitool's end-to-end tests
//! and as an example of `cni::skel`: ADD and CHECK require a `prevResult`
//! and ADD passes it on unchanged. With `"recordDir": "<dir>"` in its
//! config it writes each request it gets to `<dir>/<VERB>-<containerID>`
//! (`<VERB>` alone for GC and STATUS), so a test can see what the runtime
//! sent. It says what it does on stderr.

use cni::{CniResult, Error, Plugin, Request, Result};
use serde::Deserialize;

struct ChainProbe;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    record_dir: Option<String>,
}

fn record(req: &Request, verb: &str) -> Result<()> {
    let conf: Conf = req.parse_config()?;
    eprintln!("chain-probe: {verb} {}", req.container_id);
    let Some(dir) = conf.record_dir else {
        return Ok(());
    };
    let name = if req.container_id.is_empty() {
        verb.to_string()
    } else {
        format!("{verb}-{}", req.container_id)
    };
    std::fs::write(std::path::Path::new(&dir).join(name), &req.config)
        .map_err(|e| Error::plugin(format!("record to {dir}: {e}")))
}

fn require_prev(req: &Request) -> Result<CniResult> {
    req.net
        .prev_result()?
        .ok_or_else(|| Error::config("chain-probe must be chained: no prevResult"))
}

impl Plugin for ChainProbe {
    fn name(&self) -> &str {
        "chain-probe"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        record(req, "ADD")?;
        require_prev(req)
    }

    fn check(&self, req: &Request) -> Result<()> {
        record(req, "CHECK")?;
        require_prev(req).map(|_| ())
    }

    fn del(&self, req: &Request) -> Result<()> {
        record(req, "DEL")
    }

    fn gc(&self, req: &Request) -> Result<()> {
        record(req, "GC")
    }

    fn status(&self, req: &Request) -> Result<()> {
        record(req, "STATUS")
    }
}

fn main() {
    cni::skel::run(&ChainProbe)
}
