//! `cnitool`: run a network config list against a network namespace by
//! hand, as the reference `cnitool` does, on top of `libcni`.

use libcni::{Attachment, CniConfig, NetworkConfigList, RuntimeConf};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const USAGE: &str = "\
cnitool: run a CNI network configuration against a network namespace

Usage:
  cnitool [options] add    <network> <netns-path>
  cnitool [options] check  <network> <netns-path>
  cnitool [options] del    <network> <netns-path>
  cnitool [options] gc     <network> [<netns-path>] {--valid NETNS|--valid-id ID[:IFNAME]...|--all}
  cnitool [options] status <network> [<netns-path>]

Commands:
  add     ADD each plugin of the network's config list in order, each given the
          previous one's result; cache the final result and print it (JSON).
  check   CHECK each plugin in order against the cached result.
  del     DEL each plugin in reverse order with the cached result; remove the
          cache entry. Repeating it is harmless.
  gc      DEL every cached attachment of the network that is not declared valid
          with --valid/--valid-id, using the netns, CNI_ARGS and CAP_ARGS it
          was added with; then, for 1.1.0 configs, send GC to each plugin with
          the valid attachments. --all instead declares nothing valid: every
          cached attachment of the network is released (the reference
          cnitool's plain `gc`), and each one is listed on stderr first. One
          of --valid, --valid-id or --all is required. Keeps going after
          errors and reports them all. The netns path is accepted and ignored.
  status  STATUS each plugin in order (1.1.0 configs; older ones have no
          STATUS and report ready). The netns path is accepted and ignored.

Options:
  -i, --ifname NAME         interface name inside the namespace
                            (default: $CNI_IFNAME, else eth0)
      --cache-dir DIR       result cache root (default /var/lib/cni; entries
                            are DIR/results/<network>-<containerID>-<ifname>)
      --valid NETNS         gc: the attachment cnitool made in NETNS (with the
                            interface name above) is in use; repeatable
      --valid-id ID[:IFNAME]
                            gc: the attachment of container ID (interface name
                            as above unless given) is in use; repeatable
      --all                 gc: nothing is in use; release every cached
                            attachment of the network (not with --valid*)
  -h, --help                print this text

Environment:
  NETCONFPATH   directory of network configs (default /etc/cni/net.d): the first
                *.conflist (by file name) with the network's name, else the
                first single-plugin *.conf or *.json with it
  CNI_PATH      ':'-separated directories holding the plugin binaries
  CNI_ARGS      'K=V;K=V', given to every plugin as CNI_ARGS
  CAP_ARGS      capability args as a JSON object, e.g.
                '{\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]}';
                each plugin gets those its \"capabilities\" enable
  CNI_IFNAME    interface name when -i is not given
  CNI_LOG_LEVEL error, warn (default), info, debug: messages on stderr

The container ID is \"cnitool-\" followed by the first 10 bytes of the SHA-512
of the absolute netns path, in hex: the reference cnitool's ID, so either tool
can check or delete what the other added (they share the cache format too).
Plugins' messages go to stderr. Errors go to stderr with exit status 1.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Check,
    Del,
    Gc,
    Status,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "add" => Verb::Add,
            "check" => Verb::Check,
            "del" => Verb::Del,
            "gc" => Verb::Gc,
            "status" => Verb::Status,
            _ => return None,
        })
    }

    fn needs_netns(self) -> bool {
        matches!(self, Verb::Add | Verb::Check | Verb::Del)
    }
}

/// One run of the tool, everything resolved.
#[derive(Debug, PartialEq)]
struct Invocation {
    verb: Verb,
    network: String,
    conf_dir: PathBuf,
    cni: CniConfig,
    rt: RuntimeConf,
    /// gc: what is in use; `None` for the other verbs.
    gc: Option<GcScope>,
}

/// What `gc` keeps.
#[derive(Debug, PartialEq)]
enum GcScope {
    /// `--all`: nothing; every cached attachment of the network is stale.
    All,
    /// `--valid`/`--valid-id`: these attachments, and only these.
    Keep(Vec<Attachment>),
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Help,
    Run(Box<Invocation>),
}

/// An attachment named on the command line, resolved once the interface
/// name is known.
enum ValidSpec {
    Netns(OsString),
    Id(String, Option<String>),
}

/// Parse the command line (without the program name) and the environment.
fn parse(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> Result<Parsed, String> {
    let mut positional: Vec<OsString> = Vec::new();
    let mut ifname: Option<String> = None;
    let mut cache_dir: Option<PathBuf> = None;
    let mut valid: Vec<ValidSpec> = Vec::new();
    let mut all = false;
    let mut it = args.iter();
    let mut options_done = false;
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy();
        if options_done || !s.starts_with('-') || s == "-" {
            positional.push(arg.clone());
            continue;
        }
        let (flag, inline) = match s.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (s.to_string(), None),
        };
        let mut value = |name: &str| -> Result<OsString, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("option {name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--" => options_done = true,
            "-i" | "--ifname" => ifname = Some(utf8(value(&flag)?, &flag)?),
            "--cache-dir" => cache_dir = Some(PathBuf::from(value(&flag)?)),
            "--all" if inline.is_some() => {
                return Err(format!("option --all takes no value\n\n{}", short_usage()))
            }
            "--all" => all = true,
            "--valid" => valid.push(ValidSpec::Netns(value(&flag)?)),
            "--valid-id" => {
                let v = utf8(value(&flag)?, &flag)?;
                let (id, ifname) = match v.split_once(':') {
                    Some((id, ifname)) => (id.to_string(), Some(ifname.to_string())),
                    None => (v, None),
                };
                if id.is_empty() || ifname.as_deref() == Some("") {
                    return Err(format!("--valid-id wants ID or ID:IFNAME, not {id:?}"));
                }
                valid.push(ValidSpec::Id(id, ifname));
            }
            _ => return Err(format!("unknown option {flag}\n\n{}", short_usage())),
        }
    }
    if positional.first().is_some_and(|p| p == "help") {
        return Ok(Parsed::Help);
    }
    let Some(verb_arg) = positional.first() else {
        return Err(short_usage());
    };
    let verb_str = verb_arg.to_string_lossy();
    let verb = Verb::parse(&verb_str)
        .ok_or_else(|| format!("unknown command {verb_str:?}\n\n{}", short_usage()))?;
    let network = match positional.get(1) {
        Some(n) => utf8(n.clone(), "network name")?,
        None => {
            return Err(format!(
                "{verb_str}: missing network name\n\n{}",
                short_usage()
            ))
        }
    };
    let netns = positional.get(2);
    if verb.needs_netns() && netns.is_none() {
        return Err(format!(
            "{verb_str}: missing netns path\n\n{}",
            short_usage()
        ));
    }
    if positional.len() > 3 {
        return Err(format!(
            "{verb_str}: unexpected argument {:?}\n\n{}",
            positional[3],
            short_usage()
        ));
    }
    if !valid.is_empty() && verb != Verb::Gc {
        return Err("--valid and --valid-id belong to gc".into());
    }
    if all && verb != Verb::Gc {
        return Err("--all belongs to gc".into());
    }
    if verb == Verb::Gc {
        if all && !valid.is_empty() {
            return Err(format!(
                "gc: --all cannot be combined with --valid or --valid-id: either list the \
                 attachments in use, or release them all\n\n{}",
                short_usage()
            ));
        }
        if !all && valid.is_empty() {
            return Err(format!(
                "gc: say which attachments are in use with --valid NETNS or --valid-id \
                 ID[:IFNAME] (repeatable), or pass --all to release every cached attachment \
                 of network {network:?}\n\n{}",
                short_usage()
            ));
        }
    }

    let ifname = ifname
        .or_else(|| env("CNI_IFNAME").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "eth0".into());
    let conf_dir = env("NETCONFPATH")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| libcni::DEFAULT_CONF_DIR.into());
    let cni_path: Vec<PathBuf> = env("CNI_PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    let args = match env("CNI_ARGS").filter(|s| !s.is_empty()) {
        Some(s) => parse_cni_args(&s)?,
        None => Vec::new(),
    };
    let capability_args = match env("CAP_ARGS").filter(|s| !s.is_empty()) {
        Some(s) => parse_cap_args(&s)?,
        None => Map::new(),
    };
    let (netns, container_id) = match netns {
        Some(p) => {
            let abs = absolute(p, cwd);
            let id = derive_container_id(&abs);
            (utf8(abs, "netns path")?, id)
        }
        None => (String::new(), String::new()),
    };
    let gc = match verb {
        Verb::Gc if all => Some(GcScope::All),
        Verb::Gc => Some(GcScope::Keep(
            valid
                .into_iter()
                .map(|v| match v {
                    ValidSpec::Netns(p) => Attachment {
                        container_id: derive_container_id(&absolute(&p, cwd)),
                        ifname: ifname.clone(),
                    },
                    ValidSpec::Id(id, i) => Attachment {
                        container_id: id,
                        ifname: i.unwrap_or_else(|| ifname.clone()),
                    },
                })
                .collect(),
        )),
        _ => None,
    };
    let mut cni = CniConfig::new(cni_path);
    if let Some(dir) = cache_dir {
        cni = cni.with_cache_dir(dir);
    }
    Ok(Parsed::Run(Box::new(Invocation {
        verb,
        network,
        conf_dir: conf_dir.into(),
        cni,
        rt: RuntimeConf {
            container_id,
            netns,
            ifname,
            args,
            capability_args,
        },
        gc,
    })))
}

fn short_usage() -> String {
    "usage: cnitool [options] {add|check|del|status} <network> <netns-path>\n       \
     cnitool [options] gc <network> {--valid NETNS|--valid-id ID[:IFNAME]...|--all}\n\
     (cnitool --help for more)"
        .into()
}

fn utf8(s: OsString, what: &str) -> Result<String, String> {
    s.into_string()
        .map_err(|s| format!("{what}: not valid UTF-8: {:?}", s))
}

/// `CNI_ARGS` as the reference cnitool reads it: `K=V` pairs split on `;`,
/// each with exactly one `=` and both sides non-empty.
fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(';')
        .map(|pair| {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() && !v.is_empty() => {
                    Ok((k.to_string(), v.to_string()))
                }
                _ => Err(format!(
                    "CNI_ARGS: invalid pair {pair:?} (want K=V;K=V, both sides non-empty)"
                )),
            }
        })
        .collect()
}

fn parse_cap_args(s: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("CAP_ARGS: must be a JSON object".into()),
        Err(e) => Err(format!("CAP_ARGS: invalid JSON: {e}")),
    }
}

/// Go's `filepath.Abs`: joined to the working directory when relative,
/// then cleaned lexically (`.`, `..`, repeated and trailing slashes), so
/// the container ID matches the reference cnitool's for the same argument.
/// The working directory as Go's `os.Getwd` gives it (the reference
/// derives the container ID from the absolute netns path): `$PWD` when it is
/// absolute and names the same directory as `.`, else the physical path.
/// In a symlinked directory the two differ, and so would the IDs.
fn working_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) {
        if pwd.is_absolute() {
            if let (Ok(a), Ok(b)) = (std::fs::metadata(&pwd), std::fs::metadata(".")) {
                if a.dev() == b.dev() && a.ino() == b.ino() {
                    return Ok(pwd);
                }
            }
        }
    }
    std::env::current_dir()
}

fn absolute(p: &OsString, cwd: &Path) -> OsString {
    let bytes = p.as_bytes();
    let joined: Vec<u8> = if bytes.first() == Some(&b'/') {
        bytes.to_vec()
    } else {
        let mut j = cwd.as_os_str().as_bytes().to_vec();
        j.push(b'/');
        j.extend_from_slice(bytes);
        j
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in joined.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for part in &parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    OsString::from_vec(out)
}

/// `cnitool-` + hex of the first 10 bytes of SHA-512(netns path).
fn derive_container_id(abs_netns: &OsString) -> String {
    let digest = Sha512::digest(abs_netns.as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// The spec wants GC to run alone: an ADD in flight has no cache entry
/// yet, so a GC beside it would take it for stale and its IPAM plugin would
/// release the new container's addresses. cnitool runs hold a lock file in
/// the cache directory: shared for add/check/del/status, exclusive for gc.
fn lock(inv: &Invocation) -> std::result::Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = &inv.cni.cache_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create cache directory {}: {e}", dir.display()))?;
    let path = dir.join("cnitool.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let how = match inv.verb {
        Verb::Gc => nix::fcntl::FlockArg::LockExclusive,
        _ => nix::fcntl::FlockArg::LockShared,
    };
    nix::fcntl::Flock::lock(file, how)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// Run the verb; `add` returns the text to print.
fn run(inv: &Invocation) -> libcni::Result<Option<String>> {
    let list = NetworkConfigList::load(&inv.conf_dir, &inv.network)?;
    match inv.verb {
        Verb::Add => {
            let result = inv.cni.add_network_list(&list, &inv.rt)?;
            Ok(Some(pretty(&result.to_value(list.cni_version))))
        }
        Verb::Check => inv.cni.check_network_list(&list, &inv.rt).map(|_| None),
        Verb::Del => inv.cni.del_network_list(&list, &inv.rt).map(|_| None),
        Verb::Gc => {
            let keep: &[Attachment] = match &inv.gc {
                Some(GcScope::Keep(valid)) => valid,
                Some(GcScope::All) => {
                    announce_release_all(&inv.cni, &list)?;
                    &[]
                }
                None => &[],
            };
            inv.cni.gc_network_list(&list, keep).map(|_| None)
        }
        Verb::Status => inv.cni.status_network_list(&list).map(|_| None),
    }
}

/// `gc --all`: say on stderr what is about to be released, before any of it
/// is, so an operator sees what a mistaken `--all` took.
fn announce_release_all(cni: &CniConfig, list: &NetworkConfigList) -> libcni::Result<()> {
    if list.disable_gc {
        eprintln!(
            "gc --all: network {:?} has disableGC set: nothing is released",
            list.name
        );
        return Ok(());
    }
    let stale = cni.gc_candidates(list, &[])?;
    eprint!("{}", release_notice(&list.name, &stale));
    Ok(())
}

/// The text [`announce_release_all`] prints: one line per attachment.
fn release_notice(network: &str, stale: &[libcni::CachedAttachment]) -> String {
    let mut out = format!(
        "gc --all: releasing {} cached attachment{} of network {network:?}\n",
        stale.len(),
        if stale.len() == 1 { "" } else { "s" }
    );
    for a in stale {
        let netns = if a.netns.is_empty() { "-" } else { &a.netns };
        out.push_str(&format!(
            "  container {} interface {} netns {netns}\n",
            a.container_id, a.ifname
        ));
    }
    out
}

/// JSON indented by four spaces, as the reference prints results.
fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => v.to_string(),
    }
}

/// cnitool's whole run with `args` (without the program name); returns
/// the process exit code. The multi-call binary calls it as `cnitool`.
pub fn main(args: Vec<OsString>) -> i32 {
    cni::logger::init();
    let cwd = match working_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "cannot determine the working directory (needed for a relative netns path): {e}"
            );
            return 1;
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let inv = match parse(&args, &env, &cwd) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return 0;
        }
        Ok(Parsed::Run(inv)) => inv,
        Err(msg) => {
            eprintln!("{msg}");
            return 1;
        }
    };
    // Held until this returns, when the process ends.
    let _lock = match lock(&inv) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match run(&inv) {
        Ok(Some(out)) => {
            println!("{out}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(args: &[&str], env: &[(&str, &str)]) -> Result<Parsed, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args, &|k| env.get(k).cloned(), Path::new("/work/dir"))
    }

    fn inv(args: &[&str], env: &[(&str, &str)]) -> Invocation {
        match parse_with(args, env) {
            Ok(Parsed::Run(i)) => *i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn container_id_is_the_reference_hash_of_the_absolute_path() {
        // printf %s /run/netns/demo | sha512sum | cut -c1-20
        let want = "cnitool-78367785f8561ce49ede";
        assert_eq!(
            derive_container_id(&OsString::from("/run/netns/demo")),
            want
        );
        let i = inv(&["add", "net", "/run/netns/demo"], &[]);
        assert_eq!(i.rt.container_id, want);
        assert_eq!(i.rt.netns, "/run/netns/demo");
        // Relative and unclean paths are made absolute and cleaned first.
        let i = inv(&["add", "net", "../../run//netns/./demo/"], &[]);
        assert_eq!(i.rt.netns, "/run/netns/demo");
        assert_eq!(i.rt.container_id, want);
        let i = inv(&["add", "net", "ns"], &[]);
        assert_eq!(i.rt.netns, "/work/dir/ns");
    }

    #[test]
    fn defaults_and_environment() {
        let i = inv(&["add", "net", "/run/netns/x"], &[]);
        assert_eq!(i.verb, Verb::Add);
        assert_eq!(i.network, "net");
        assert_eq!(i.conf_dir, Path::new("/etc/cni/net.d"));
        assert_eq!(i.cni.cache_dir, Path::new("/var/lib/cni"));
        assert!(i.cni.path.is_empty());
        assert_eq!(i.rt.ifname, "eth0");
        assert!(i.rt.args.is_empty() && i.rt.capability_args.is_empty());
        assert_eq!(i.gc, None);
        let i = inv(
            &["del", "net", "/run/netns/x"],
            &[
                ("NETCONFPATH", "/tmp/conf"),
                ("CNI_PATH", "/a::/b"),
                ("CNI_ARGS", "IgnoreUnknown=1;IP=10.230.0.9"),
                ("CAP_ARGS", r#"{"mac":"c2:11:22:33:44:55"}"#),
                ("CNI_IFNAME", "net0"),
            ],
        );
        assert_eq!(i.conf_dir, Path::new("/tmp/conf"));
        assert_eq!(i.cni.path, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(
            i.rt.args,
            [
                ("IgnoreUnknown".to_string(), "1".to_string()),
                ("IP".to_string(), "10.230.0.9".to_string())
            ]
        );
        assert_eq!(i.rt.capability_args["mac"], "c2:11:22:33:44:55");
        assert_eq!(i.rt.ifname, "net0");
        // The flag beats the environment; an empty CNI_IFNAME is eth0.
        let i = inv(&["-i", "net1", "add", "n", "/x"], &[("CNI_IFNAME", "net0")]);
        assert_eq!(i.rt.ifname, "net1");
        let i = inv(&["add", "n", "/x", "--ifname=net2"], &[]);
        assert_eq!(i.rt.ifname, "net2");
        let i = inv(&["add", "n", "/x"], &[("CNI_IFNAME", "")]);
        assert_eq!(i.rt.ifname, "eth0");
        let i = inv(&["--cache-dir", "/tmp/c", "check", "n", "/x"], &[]);
        assert_eq!(i.cni.cache_dir, Path::new("/tmp/c"));
    }

    #[test]
    fn gc_and_status_need_no_netns_and_gc_takes_valid_attachments() {
        let i = inv(&["gc", "net", "--all"], &[]);
        assert_eq!(i.verb, Verb::Gc);
        assert_eq!(i.gc, Some(GcScope::All));
        let i = inv(&["status", "net", "/run/netns/x"], &[]);
        assert_eq!(i.verb, Verb::Status);
        assert_eq!(i.gc, None);
        let i = inv(
            &[
                "gc",
                "net",
                "--valid",
                "/run/netns/demo",
                "--valid-id",
                "c1",
                "--valid-id=c2:net1",
                "-i",
                "eth9",
            ],
            &[],
        );
        let Some(GcScope::Keep(v)) = i.gc else {
            panic!("{:?}", i.gc)
        };
        let pairs: Vec<(&str, &str)> = v
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("cnitool-78367785f8561ce49ede", "eth9"),
                ("c1", "eth9"),
                ("c2", "net1")
            ]
        );
    }

    /// A plain `gc NET` used to mean "everything is stale": one forgotten
    /// flag released every attachment of the network. It must now be said
    /// explicitly, and never together with a list of valid ones.
    #[test]
    fn gc_needs_valid_attachments_or_all() {
        let err = |args: &[&str]| parse_with(args, &[]).unwrap_err();
        for args in [&["gc", "net"][..], &["gc", "net", "/run/netns/x"]] {
            let e = err(args);
            assert!(e.starts_with("gc: say which attachments"), "{e}");
            for word in ["--valid", "--valid-id", "--all"] {
                assert!(e.contains(word), "{word}: {e}");
            }
        }
        for args in [
            &["gc", "net", "--all", "--valid", "/run/netns/x"][..],
            &["gc", "net", "--valid-id=c1", "--all"],
        ] {
            let e = err(args);
            assert!(e.starts_with("gc: --all cannot be combined"), "{e}");
        }
        let e = err(&["del", "net", "/x", "--all"]);
        assert_eq!(e, "--all belongs to gc");
        let e = err(&["gc", "net", "--all=yes"]);
        assert!(e.starts_with("option --all takes no value"), "{e}");
    }

    #[test]
    fn errors() {
        let err = |args: &[&str], env: &[(&str, &str)]| parse_with(args, env).unwrap_err();
        assert!(err(&[], &[]).starts_with("usage: cnitool"));
        assert!(err(&["add", "net"], &[]).starts_with("add: missing netns path"));
        assert!(err(&["check"], &[]).starts_with("check: missing network name"));
        assert!(err(&["frob", "n", "/x"], &[]).starts_with("unknown command \"frob\""));
        assert!(err(&["add", "n", "/x", "extra"], &[]).contains("unexpected argument"));
        assert!(err(&["--bogus", "add", "n", "/x"], &[]).starts_with("unknown option --bogus"));
        assert_eq!(
            err(&["add", "n", "/x", "-i"], &[]),
            "option -i needs a value"
        );
        assert!(err(&["add", "n", "/x", "--valid", "/y"], &[]).contains("belong to gc"));
        assert!(err(&["gc", "n", "--valid-id", "c1:"], &[]).contains("ID:IFNAME"));
        for bad in ["A", "A=1;", "=1", "A=", "A=1=2"] {
            let e = err(&["add", "n", "/x"], &[("CNI_ARGS", bad)]);
            assert!(e.starts_with("CNI_ARGS: invalid pair"), "{bad}: {e}");
        }
        assert!(err(&["add", "n", "/x"], &[("CAP_ARGS", "[1]")]).contains("JSON object"));
        assert!(err(&["add", "n", "/x"], &[("CAP_ARGS", "{")]).contains("invalid JSON"));
    }

    #[test]
    fn help() {
        assert_eq!(parse_with(&["--help"], &[]), Ok(Parsed::Help));
        assert_eq!(parse_with(&["add", "-h"], &[]), Ok(Parsed::Help));
        assert_eq!(parse_with(&["help"], &[]), Ok(Parsed::Help));
        for word in [
            "NETCONFPATH",
            "CNI_PATH",
            "CNI_ARGS",
            "CAP_ARGS",
            "CNI_IFNAME",
            "--ifname",
            "--cache-dir",
            "--valid",
            "--valid-id",
            "--all",
            "SHA-512",
            "/var/lib/cni",
            "exit status 1",
        ] {
            assert!(USAGE.contains(word), "{word}");
        }
    }

    #[test]
    fn release_notice_lists_every_attachment() {
        let rt = |id: &str, netns: &str| RuntimeConf {
            container_id: id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            ..Default::default()
        };
        let a = libcni::CachedAttachment::new("net", b"{}", &rt("c1", "/run/netns/a"), None);
        let b = libcni::CachedAttachment::new("net", b"{}", &rt("c2", ""), None);
        assert_eq!(
            release_notice("net", &[a, b]),
            "gc --all: releasing 2 cached attachments of network \"net\"\n  \
             container c1 interface eth0 netns /run/netns/a\n  \
             container c2 interface eth0 netns -\n"
        );
        assert_eq!(
            release_notice("net", &[]),
            "gc --all: releasing 0 cached attachments of network \"net\"\n"
        );
    }

    #[test]
    fn pretty_prints_with_four_spaces() {
        assert_eq!(
            pretty(&serde_json::json!({"a":[1]})),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
