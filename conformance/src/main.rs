//! `cni-conformance`: drive a CNI plugin binary through the spec's contract.
//! One line per check, a summary, exit 1 on any failure (2 on bad usage).

use cni_conformance::{Options, CHECKS};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: cni-conformance [--config FILE | --config-json JSON] [--cni-path DIR[:DIR]]
                       [--ifname NAME] [--skip-check NAME]... [--timeout SECS] PLUGIN_BINARY

Runs PLUGIN_BINARY through the CNI spec's contract inside throwaway network
namespaces (needs root) and prints one PASS/FAIL/SKIP/INFO line per check.

  --config FILE        network config (a single plugin's object); its cniVersion
                       is replaced by each version under test
  --config-json JSON   the same, inline
                       default: {\"cniVersion\":V,\"name\":\"conformance\",\"type\":<binary name>}
  --cni-path DIRS      CNI_PATH for the plugin (default: the binary's directory)
  --ifname NAME        CNI_IFNAME for valid calls (default: eth0)
  --skip-check NAME    report NAME as SKIP without running it (repeatable)
  --timeout SECS       kill a plugin invocation after SECS seconds (default: 30)
";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut plugin = None;
    let mut config: Option<String> = None;
    let mut opts = Options::new("");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--config" => {
                let path = value("--config")?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("read config {path}: {e}"))?;
                config = Some(text);
            }
            "--config-json" => config = Some(value("--config-json")?),
            "--cni-path" => opts.cni_path = Some(value("--cni-path")?),
            "--ifname" => opts.ifname = value("--ifname")?,
            "--skip-check" => {
                let name = value("--skip-check")?;
                if !CHECKS.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown check {name:?}; checks: {}",
                        CHECKS.join(" ")
                    ));
                }
                opts.skip.push(name);
            }
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                opts.timeout = Duration::from_secs(secs.max(1));
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if plugin.is_none() => plugin = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    let plugin = plugin.ok_or("no PLUGIN_BINARY given")?;
    if !plugin.is_file() {
        return Err(format!("{} is not a file", plugin.display()));
    }
    // Absolute, so CNI_PATH defaults to a real directory.
    opts.plugin =
        std::fs::canonicalize(&plugin).map_err(|e| format!("{}: {e}", plugin.display()))?;
    if let Some(text) = config {
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => opts.config = Some(m),
            Ok(_) => return Err("the config must be a JSON object".into()),
            Err(e) => return Err(format!("the config is not JSON: {e}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cni-conformance: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!("cni-conformance: {}", opts.plugin.display());
    let report = cni_conformance::run_streaming(&opts, |c| println!("{c}"));
    println!("{}", report.summary());
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
