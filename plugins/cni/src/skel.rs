//! The plugin skeleton: read the environment and stdin, validate them as the
//! spec asks, call the plugin's verb, print its result or error.
//!
//! A plugin implements [`Plugin`]; the multi-call binary runs it with
//! [`run`] under its name.
//! [`dispatch`] takes the environment and the streams as arguments, so every
//! path through it is unit-tested without touching the process.

use crate::args::CniArgs;
use crate::error::{Error, Result, INVALID_ENV, INVALID_NETNS, IO_FAILURE};
use crate::result::CniResult;
use crate::types::{parse_config, NetConf};
use crate::validate;
use crate::version::{version_info, Version};
use serde::Deserialize;
use std::io::{Read, Write};
use std::path::PathBuf;

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// The variables the spec makes required for this verb (besides `CNI_COMMAND`).
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc => &["CNI_PATH"],
            Command::Status | Command::Version => &[],
        }
    }
}

/// One attachment in a GC request's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// Everything a plugin verb is given.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    /// `CNI_NETNS`; `None` when unset or empty (allowed for DEL, GC, STATUS).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// Raw `CNI_ARGS`; see [`Request::cni_args`].
    pub args: String,
    pub path: Vec<PathBuf>,
    /// The configuration exactly as read from stdin.
    pub config: Vec<u8>,
    /// Its common keys.
    pub net: NetConf,
    /// Its `cniVersion`, already checked to be supported.
    pub version: Version,
}

impl Request {
    /// `CNI_ARGS` parsed against the keys this plugin understands.
    pub fn cni_args(&self, known: &[&str]) -> Result<CniArgs> {
        CniArgs::parse(&self.args, known)
    }

    /// The whole configuration decoded as the plugin's own type.
    pub fn parse_config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        parse_config(&self.config)
    }

    /// The `CNI_*` environment of this request, for running a delegate.
    pub fn env(&self, command: Command) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", command.as_str().to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            (
                "CNI_NETNS",
                self.netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("CNI_IFNAME", self.ifname.clone()),
            ("CNI_ARGS", self.args.clone()),
            (
                "CNI_PATH",
                self.path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
        ]
    }

    /// The MAC a runtime asks for: `runtimeConfig.mac` (capability `mac`),
    /// else `args.cni.mac`, else `CNI_ARGS` `MAC`, as the reference ranks them.
    /// `known_args` are the `CNI_ARGS` keys the plugin accepts.
    pub fn requested_mac(&self, known_args: &[&str]) -> Result<Option<String>> {
        #[derive(Deserialize, Default)]
        struct Mac {
            #[serde(default)]
            mac: Option<String>,
        }
        if let Some(m) = self.net.runtime_config::<Mac>()?.mac {
            return Ok(Some(m));
        }
        if let Some(m) = self.net.args_cni::<Mac>()?.mac {
            return Ok(Some(m));
        }
        Ok(self.cni_args(known_args)?.get("MAC").map(str::to_string))
    }

    /// GC's list of attachments to keep: `cni.dev/valid-attachments`, or the
    /// older spec text's `cni.dev/attachments`. `None` when neither is present.
    pub fn valid_attachments(&self) -> Result<Option<Vec<Attachment>>> {
        let v: serde_json::Value = serde_json::from_slice(&self.config)
            .map_err(|e| Error::decode(format!("failed to decode network config: {e}")))?;
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            if let Some(list) = v.get(key) {
                if list.is_null() {
                    continue;
                }
                let list = serde_json::from_value(list.clone())
                    .map_err(|e| Error::decode(format!("invalid {key}: {e}")))?;
                return Ok(Some(list));
            }
        }
        Ok(None)
    }
}

/// A CNI plugin: its verbs and the versions it speaks.
pub trait Plugin {
    /// The binary's name, for the about text ("CNI loopback plugin v0.1.0").
    fn name(&self) -> &str;

    fn supported_versions(&self) -> &[Version] {
        Version::ALL
    }

    fn add(&self, req: &Request) -> Result<CniResult>;
    fn check(&self, req: &Request) -> Result<()>;
    fn del(&self, req: &Request) -> Result<()>;

    /// GC; a plugin with nothing to collect succeeds.
    fn gc(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    /// STATUS; a plugin with no dependencies is always ready.
    fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}

/// Run a plugin as a process: the one line of a plugin's `main`.
pub fn run<P: Plugin + ?Sized>(plugin: &P) -> ! {
    install_panic_hook();
    crate::logger::init();
    let env = |k: &str| std::env::var(k).ok();
    // Unlocked handles: a delegate's stderr is copied to ours from another
    // thread while the plugin runs, so nothing may hold the stderr lock
    // for the whole call. A panic unwinds through dispatch, so the plugin's
    // rollback guards still undo a half-done ADD; the hook has already
    // printed the error.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch(
            plugin,
            &env,
            &mut std::io::stdin(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )
    }))
    .unwrap_or(1);
    crate::fault::report(plugin.name(), &env("CNI_COMMAND").unwrap_or_default());
    #[allow(clippy::disallowed_methods)] // the one place a plugin process ends
    std::process::exit(code);
}

std::thread_local! {
    /// Set on a thread running a plugin in-process ([`dispatch_in_process`]):
    /// where the panic hook puts the CNI error that a plugin process would
    /// have printed on its stdout.
    static CAPTURED_PANIC: std::cell::RefCell<Option<Vec<u8>>> =
        const { std::cell::RefCell::new(None) };
}

/// A panic is a bug; still answer the runtime with a CNI error it can read.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let e = Error::new(
            crate::error::INTERNAL,
            format!("internal error (please report): {info}"),
        );
        let line = format!("{}\n", e.to_json(Version::CURRENT.as_str()));
        let captured = CAPTURED_PANIC.with(|c| match c.borrow_mut().as_mut() {
            Some(buf) => {
                buf.extend_from_slice(line.as_bytes());
                true
            }
            None => false,
        });
        if !captured {
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
        eprintln!("{info}");
    }));
}

/// Run `plugin` on this thread exactly as its process would run: `env` is
/// its environment, `stdin` its input; returns its exit code and what it
/// printed on stdout (a panic gives the same CNI error and exit code 1 that
/// the process would give). Its stderr goes to `stderr`. For delegation
/// inside the multi-call binary (see [`crate::multicall`]).
pub fn dispatch_in_process<P: Plugin + ?Sized>(
    plugin: &P,
    env: Env,
    stdin: &[u8],
    stderr: &mut dyn Write,
) -> (i32, Vec<u8>) {
    CAPTURED_PANIC.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let mut stdout = Vec::new();
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dispatch(plugin, env, &mut &stdin[..], &mut stdout, stderr)
    }))
    .unwrap_or(1);
    if let Some(printed) = CAPTURED_PANIC.with(|c| c.borrow_mut().take()) {
        stdout.extend_from_slice(&printed);
    }
    (code, stdout)
}

/// The most stdin a plugin reads. Real configs, `prevResult` included, are
/// a few KiB; every plugin decodes its config several times and hands it
/// to its IPAM plugin, so a runaway (or hostile) writer is stopped here
/// rather than multiplied.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Environment lookup, injectable for tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The whole skeleton: returns the process exit code.
pub fn dispatch<P: Plugin + ?Sized>(
    plugin: &P,
    env: Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    if get("CNI_COMMAND").is_none() {
        let _ = writeln!(
            stderr,
            "CNI {} plugin v{}\nCNI protocol versions supported: {}",
            plugin.name(),
            env!("CARGO_PKG_VERSION"),
            plugin
                .supported_versions()
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 0;
    }
    // Until the config is read, errors are reported in the newest version.
    let mut reply_version = Version::CURRENT.as_str().to_string();
    let outcome = serve(plugin, &get, stdin, stdout, &mut reply_version);
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stdout, "{}", e.to_json(&reply_version));
            let _ = writeln!(stderr, "{}: {}", plugin.name(), e);
            1
        }
    }
}

fn serve<P: Plugin + ?Sized>(
    plugin: &P,
    get: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    reply_version: &mut String,
) -> Result<()> {
    let cmd_name = get("CNI_COMMAND").unwrap_or_default();
    let command = Command::parse(&cmd_name)
        .ok_or_else(|| Error::env(format!("unknown CNI_COMMAND: {cmd_name}")))?;
    let missing: Vec<&str> = command
        .required()
        .iter()
        .copied()
        .filter(|k| get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }

    if command == Command::Version {
        let info = version_info(plugin.supported_versions());
        return write_json(stdout, &info);
    }

    let mut config = Vec::new();
    stdin
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut config)
        .map_err(|e| Error::new(IO_FAILURE, format!("error reading from stdin: {e}")))?;
    if config.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::config(format!(
            "the network config on stdin is larger than {} MiB; refusing to read it",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    let net: NetConf = parse_config(&config)?;
    if !net.cni_version.is_empty() {
        reply_version.clone_from(&net.cni_version);
    }
    validate::network_name(&net.name)?;

    let container_id = get("CNI_CONTAINERID").unwrap_or_default();
    let ifname = get("CNI_IFNAME").unwrap_or_default();
    if matches!(command, Command::Add | Command::Check | Command::Del) {
        validate::container_id(&container_id)?;
        validate::interface_name(&ifname)?;
    }

    let version = Version::require(&net.cni_version, plugin.supported_versions())?;
    let floor = match command {
        Command::Check => Some(Version::V0_4_0),
        Command::Gc | Command::Status => Some(Version::V1_1_0),
        _ => None,
    };
    if let Some(floor) = floor {
        if version < floor {
            return Err(Error::new(
                crate::error::INCOMPATIBLE_VERSION,
                format!(
                    "config version {version} does not allow {} (needs {floor} or later)",
                    command.as_str()
                ),
            ));
        }
    }

    let netns = get("CNI_NETNS").map(PathBuf::from);
    if matches!(command, Command::Add | Command::Check | Command::Del) {
        let overridden = get("CNI_NETNS_OVERRIDE")
            .and_then(|v| crate::args::parse_bool(&v))
            .unwrap_or(false);
        if let (Some(ns), false) = (&netns, overridden) {
            if is_own_netns(ns) {
                return Err(Error::new(
                    INVALID_NETNS,
                    format!(
                        "CNI_NETNS {} is the plugin's own network namespace; refusing to change it",
                        ns.display()
                    ),
                ));
            }
        }
    }

    let req = Request {
        command,
        container_id,
        netns,
        ifname,
        args: get("CNI_ARGS").unwrap_or_default(),
        path: get("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default(),
        config,
        net,
        version,
    };
    match command {
        Command::Add => {
            let result = plugin.add(&req)?;
            write_json(stdout, &result.to_value(version))
        }
        Command::Check => plugin.check(&req),
        Command::Del => plugin.del(&req),
        Command::Gc => plugin.gc(&req),
        Command::Status => plugin.status(&req),
        // Answered before stdin was read.
        Command::Version => Ok(()),
    }
}

fn write_json(out: &mut dyn Write, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(IO_FAILURE, format!("encode result: {e}")))?;
    writeln!(out, "{text}").map_err(|e| Error::new(IO_FAILURE, format!("write result: {e}")))
}

/// Whether `path` is the namespace this plugin runs in (same device and
/// inode): the calling thread's, not `/proc/self`'s (the main thread's),
/// because an in-process IPAM plugin runs on its own thread while the main
/// one may be inside the container's namespace for a moment.
fn is_own_netns(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        std::fs::metadata("/proc/thread-self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A required variable that is present but unusable, named in the message.
pub fn env_error(var: &str, why: impl std::fmt::Display) -> Error {
    Error::new(INVALID_ENV, format!("{var}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::IpConfig;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        seen: RefCell<Vec<(Command, String)>>,
        fail: Option<Error>,
    }

    impl Plugin for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn add(&self, req: &Request) -> Result<CniResult> {
            self.seen
                .borrow_mut()
                .push((req.command, req.container_id.clone()));
            if let Some(e) = &self.fail {
                return Err(e.clone());
            }
            Ok(CniResult {
                ips: vec![IpConfig {
                    interface: None,
                    address: "10.0.0.2/24".parse().unwrap(),
                    gateway: None,
                }],
                ..Default::default()
            })
        }
        fn check(&self, req: &Request) -> Result<()> {
            self.seen
                .borrow_mut()
                .push((req.command, req.container_id.clone()));
            Ok(())
        }
        fn del(&self, req: &Request) -> Result<()> {
            self.seen
                .borrow_mut()
                .push((req.command, req.container_id.clone()));
            Ok(())
        }
        fn gc(&self, req: &Request) -> Result<()> {
            let keep = req.valid_attachments()?.unwrap_or_default();
            self.seen
                .borrow_mut()
                .push((req.command, format!("{}", keep.len())));
            Ok(())
        }
    }

    struct Out {
        code: i32,
        stdout: String,
        stderr: String,
    }

    impl Out {
        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.stdout).expect("stdout is JSON")
        }
    }

    fn call(p: &Fake, vars: &[(&str, &str)], stdin: &str) -> Out {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| map.get(k).cloned();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = dispatch(p, &env, &mut stdin.as_bytes(), &mut o, &mut e);
        Out {
            code,
            stdout: String::from_utf8(o).unwrap(),
            stderr: String::from_utf8(e).unwrap(),
        }
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"net1","type":"fake"}"#;

    fn add_env(cmd: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/does-not-exist-here"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
    }

    #[test]
    fn no_command_prints_about_to_stderr() {
        let o = call(&Fake::default(), &[], "");
        assert_eq!(o.code, 0);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.starts_with("CNI fake plugin v"), "{}", o.stderr);
        assert!(o
            .stderr
            .contains("0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"));
    }

    #[test]
    fn version_ignores_stdin_and_other_vars() {
        let o = call(&Fake::default(), &[("CNI_COMMAND", "VERSION")], "garbage");
        assert_eq!(o.code, 0);
        assert_eq!(o.json()["cniVersion"], "1.1.0");
        assert_eq!(o.json()["supportedVersions"].as_array().unwrap().len(), 7);
    }

    #[test]
    fn add_prints_result_in_config_version() {
        let p = Fake::default();
        let o = call(&p, &add_env("ADD"), CONF);
        assert_eq!(o.code, 0, "{}", o.stdout);
        assert_eq!(o.json()["cniVersion"], "1.0.0");
        assert_eq!(o.json()["ips"][0]["address"], "10.0.0.2/24");
        let conf = CONF.replace("1.0.0", "0.2.0");
        let o = call(&p, &add_env("ADD"), &conf);
        assert_eq!(o.json()["ip4"]["ip"], "10.0.0.2/24");
        assert_eq!(p.seen.borrow().len(), 2);
    }

    #[test]
    fn missing_variables_are_all_named() {
        let o = call(&Fake::default(), &[("CNI_COMMAND", "ADD")], CONF);
        assert_eq!(o.code, 1);
        let j = o.json();
        assert_eq!(j["code"], 4);
        assert_eq!(
            j["msg"],
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"
        );
        // DEL needs no netns.
        let mut env = add_env("DEL");
        env.retain(|(k, _)| *k != "CNI_NETNS");
        assert_eq!(call(&Fake::default(), &env, CONF).code, 0);
        // An empty value counts as missing.
        let mut env = add_env("ADD");
        env[1] = ("CNI_CONTAINERID", "");
        assert!(call(&Fake::default(), &env, CONF).json()["msg"]
            .as_str()
            .unwrap()
            .contains("CNI_CONTAINERID"));
    }

    #[test]
    fn unknown_command_is_code_4() {
        let o = call(&Fake::default(), &[("CNI_COMMAND", "FROB")], CONF);
        assert_eq!(o.json()["code"], 4);
        assert!(o.json()["msg"].as_str().unwrap().contains("FROB"));
    }

    #[test]
    fn bad_json_is_code_6_and_bad_name_code_7() {
        let o = call(&Fake::default(), &add_env("ADD"), "{not json");
        assert_eq!(o.json()["code"], 6);
        let o = call(
            &Fake::default(),
            &add_env("ADD"),
            r#"{"cniVersion":"1.0.0","name":"../x"}"#,
        );
        assert_eq!(o.json()["code"], 7);
        // The error carries the config's version once it is known.
        assert_eq!(o.json()["cniVersion"], "1.0.0");
        let o = call(
            &Fake::default(),
            &add_env("ADD"),
            r#"{"cniVersion":"1.0.0"}"#,
        );
        assert_eq!(o.json()["code"], 7);
        assert_eq!(o.json()["msg"], "missing network name");
    }

    #[test]
    fn bad_container_id_and_ifname() {
        let mut env = add_env("ADD");
        env[1] = ("CNI_CONTAINERID", "bad/id");
        assert_eq!(call(&Fake::default(), &env, CONF).json()["code"], 4);
        let mut env = add_env("CHECK");
        env[3] = ("CNI_IFNAME", "this-name-is-too-long");
        assert_eq!(call(&Fake::default(), &env, CONF).json()["code"], 4);
    }

    #[test]
    fn unsupported_versions_are_code_1() {
        let p = Fake::default();
        for v in ["0.5.0", "2.0.0", "1.0"] {
            let o = call(&p, &add_env("ADD"), &CONF.replace("1.0.0", v));
            assert_eq!(o.json()["code"], 1, "{v}");
        }
        let o = call(&p, &add_env("CHECK"), &CONF.replace("1.0.0", "0.3.1"));
        assert_eq!(o.json()["code"], 1);
        let mut env = add_env("GC");
        env.truncate(1);
        env.push(("CNI_PATH", "/x"));
        let o = call(&p, &env, CONF);
        assert_eq!(o.json()["code"], 1);
        assert!(p.seen.borrow().is_empty());
    }

    #[test]
    fn gc_and_status_need_only_their_variables() {
        let p = Fake::default();
        let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"fake",
            "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#;
        let o = call(&p, &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")], conf);
        assert_eq!(o.code, 0, "{}", o.stdout);
        assert_eq!(p.seen.borrow()[0], (Command::Gc, "1".to_string()));
        let o = call(&p, &[("CNI_COMMAND", "GC")], conf);
        assert_eq!(o.json()["msg"], "required env variables [CNI_PATH] missing");
        let o = call(&p, &[("CNI_COMMAND", "STATUS")], conf);
        assert_eq!(o.code, 0);
    }

    #[test]
    fn plugin_errors_are_printed_with_their_code() {
        let p = Fake {
            fail: Some(Error::new(11, "busy").with_details("try later")),
            ..Default::default()
        };
        let o = call(&p, &add_env("ADD"), CONF);
        assert_eq!(o.code, 1);
        assert_eq!(
            o.json(),
            serde_json::json!({"cniVersion":"1.0.0","code":11,"msg":"busy","details":"try later"})
        );
        assert!(o.stderr.contains("busy"));
    }

    #[test]
    fn oversized_and_deep_input_is_refused() {
        let pad = " ".repeat(MAX_CONFIG_BYTES as usize);
        let o = call(&Fake::default(), &add_env("ADD"), &format!("{CONF}{pad}"));
        assert_eq!(o.json()["code"], 7, "{}", o.stdout);
        assert!(o.stdout.contains("larger than 16 MiB"), "{}", o.stdout);
        // Just under the limit is read.
        let pad = " ".repeat(MAX_CONFIG_BYTES as usize - CONF.len());
        assert_eq!(
            call(&Fake::default(), &add_env("ADD"), &format!("{CONF}{pad}")).code,
            0
        );
        // 100,000 levels: skipped without recursion under a key nobody
        // reads, refused by serde_json's depth limit (128) under one that
        // is decoded; never a stack overflow.
        let deep = |key: &str| {
            format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"fake","{key}":{}{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
        };
        assert_eq!(call(&Fake::default(), &add_env("ADD"), &deep("x")).code, 0);
        let o = call(&Fake::default(), &add_env("ADD"), &deep("runtimeConfig"));
        assert_eq!(o.json()["code"], 6, "{}", o.stdout);
        assert!(o.stdout.contains("recursion limit"), "{}", o.stdout);
    }

    #[test]
    fn own_netns_is_refused_unless_overridden() {
        let mut env = add_env("ADD");
        env[2] = ("CNI_NETNS", "/proc/self/ns/net");
        let o = call(&Fake::default(), &env, CONF);
        assert_eq!(o.json()["code"], 8);
        env.push(("CNI_NETNS_OVERRIDE", "true"));
        assert_eq!(call(&Fake::default(), &env, CONF).code, 0);
    }

    /// Every prefix of a valid config, and every one-byte corruption of it,
    /// gets a JSON answer: success or a CNI error, never a panic.
    #[test]
    fn mangled_configs_never_panic() {
        let conf = r#"{"cniVersion":"1.0.0","name":"net1","type":"fake","ipam":{"type":"x"},
            "prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]},
            "runtimeConfig":{"mac":"aa:bb:cc:dd:ee:ff"},"args":{"cni":{"ips":["10.0.0.9"]}}}"#;
        let p = Fake::default();
        let check = |input: &str| {
            for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
                let mut env = add_env(cmd);
                env.push(("CNI_ARGS", "IgnoreUnknown=1;IP=10.0.0.9"));
                let o = call(&p, &env, input);
                let j: serde_json::Value = if o.stdout.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::from_str(&o.stdout)
                        .unwrap_or_else(|e| panic!("{cmd} {input:?}: {e}: {}", o.stdout))
                };
                if o.code != 0 {
                    assert!(
                        j["code"].is_u64() && j["msg"].is_string(),
                        "{cmd} {input:?}: {j}"
                    );
                }
            }
        };
        for end in 0..conf.len() {
            if conf.is_char_boundary(end) {
                check(&conf[..end]);
            }
        }
        for (i, _) in conf.char_indices() {
            for b in ["\"", "{", "]", "0", "-", "\\", "\u{0}"] {
                let mut m = conf.to_string();
                m.replace_range(i..i + 1, b);
                check(&m);
            }
        }
        // Deep nesting stops at serde's recursion limit with an error.
        check(&format!(
            r#"{{"name":"n","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        ));
    }

    #[test]
    fn request_env_for_delegates() {
        let p = Fake::default();
        let o = call(&p, &add_env("ADD"), CONF);
        assert_eq!(o.code, 0);
        let req = Request {
            command: Command::Add,
            container_id: "c".into(),
            netns: None,
            ifname: "eth0".into(),
            args: "IP=1.2.3.4".into(),
            path: vec!["/a".into(), "/b".into()],
            config: CONF.as_bytes().to_vec(),
            net: parse_config(CONF.as_bytes()).unwrap(),
            version: Version::V1_0_0,
        };
        let env = req.env(Command::Del);
        assert!(env.contains(&("CNI_COMMAND", "DEL".into())));
        assert!(env.contains(&("CNI_PATH", "/a:/b".into())));
        assert!(env.contains(&("CNI_NETNS", String::new())));
        assert_eq!(req.valid_attachments().unwrap(), None);
    }
}
