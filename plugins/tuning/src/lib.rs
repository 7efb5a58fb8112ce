//! The tuning plugin: chained after an interface plugin, it sets network
//! sysctls inside the container's namespace and settings of the container
//! interface (`mac`, `promisc`, `mtu`, `allmulti`, `txQLen`).
//!
//! ADD: sysctls first (every key checked before any is written), then the
//! interface's original values of the settings about to change are saved
//! to `<dataDir>/<containerID>_<ifname>.json` (the reference's file and
//! format, so either suite's DEL restores what the other's ADD saved), then
//! the settings; `prevResult` passes through with the new MAC.
//! DEL: the saved values are put back and the file removed (sysctls are
//! not restored: they die with the namespace, as in the reference).
//! CHECK: the live sysctls and settings equal the configured ones.

use cni::{CniResult, Error, Plugin, Request, Result};
use cni_kernel::link::{format_mac, parse_mac};
use cni_kernel::{sysctl, Netlink, Netns};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Tuning;

const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
/// When this file exists, every sysctl key must match one of its lines
/// (regular expressions, searched for anywhere in the key as Go's
/// `regexp.MatchString` does).
pub const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// The sysctl map, in the config's order; a key given twice is refused
/// (as the reference refuses it), not silently resolved.
fn sysctl_pairs<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<(String, String)>>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Option<Vec<(String, String)>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of sysctl names to string values")
        }
        fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out: Vec<(String, String)> = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, String>()? {
                if out.iter().any(|(seen, _)| *seen == k) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicated sysctl keys are not allowed: {k:?}"
                    )));
                }
                out.push((k, v));
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(Pairs)
}

/// The plugin's keys, top level and (all optional) in `args.cni`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Keys {
    #[serde(default, deserialize_with = "sysctl_pairs")]
    sysctl: Option<Vec<(String, String)>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(default, rename = "txQLen")]
    tx_qlen: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Conf {
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(flatten)]
    keys: Keys,
}

/// What ADD and CHECK apply, resolved from config, `args.cni`,
/// `runtimeConfig` and `CNI_ARGS`.
#[derive(Debug, Default, PartialEq)]
pub struct Settings {
    /// (key as configured, path components under `/proc/sys/net`, value).
    pub sysctls: Vec<(String, Vec<String>, String)>,
    pub mac: Option<Vec<u8>>,
    /// `true`: turn promiscuous mode on; `false` leaves it (and CHECK
    /// wants it off), as in the reference.
    pub promisc: bool,
    pub mtu: Option<u32>,
    pub allmulti: Option<bool>,
    pub txqlen: Option<u32>,
}

impl Settings {
    fn touches_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

/// The path components under `/proc/sys/net` of a configured key:
/// dots separate components, and the first `IFNAME` is replaced by the
/// interface name afterwards, so a dotted name (`eth0.100`) stays one
/// component, as in the reference. Anything that could name a file
/// outside `/proc/sys/net` is refused: `/` (so no absolute path and no
/// `..` component can be spelled), NUL, empty components, keys outside
/// `net.`.
pub fn sysctl_components(key: &str, ifname: &str) -> Result<Vec<String>> {
    let refuse = |why: &str| {
        Err(Error::config(format!(
            "invalid net sysctl key {key:?}: {why}; nothing was written"
        )))
    };
    if key.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if key.contains('/') {
        return refuse("it contains '/' (write keys with dots: net.ipv4.ip_forward)");
    }
    let mut parts: Vec<String> = key.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return refuse("empty component (leading, trailing or doubled '.')");
    }
    if parts[0] != "net" || parts.len() < 2 {
        return refuse("only keys under net. (/proc/sys/net) may be set");
    }
    if let Some(p) = parts.iter_mut().find(|p| p.contains("IFNAME")) {
        *p = p.replacen("IFNAME", ifname, 1);
    }
    if parts
        .iter()
        .any(|p| p == "." || p == ".." || p.contains('/') || p.contains('\0'))
    {
        return refuse("the interface name makes it leave /proc/sys/net");
    }
    parts.remove(0);
    Ok(parts)
}

/// Check every key against the allowlist at `path`, when it exists.
pub fn check_allowlist(path: &Path, keys: &[&str]) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::plugin(format!(
                "read sysctl allowlist {}: {e}",
                path.display()
            )))
        }
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let patterns = lines
        .iter()
        .map(|l| {
            regex_lite::Regex::new(l).map_err(|e| {
                Error::config(format!(
                    "sysctl allowlist {}: bad pattern {l:?}: {e}",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for key in keys {
        if !patterns.iter().any(|p| p.is_match(key)) {
            return Err(Error::config(format!(
                "Sysctl {key} is not allowed. Only the following sysctls are allowed: [{}]",
                lines.join(" ")
            )));
        }
    }
    Ok(())
}

/// A non-negative integer key that fits the kernel's `u32`.
fn uint(key: &str, v: Option<i64>) -> Result<Option<u32>> {
    v.map(|n| {
        u32::try_from(n)
            .map_err(|_| Error::config(format!("{key}: {n} is out of range (0 to 4294967295)")))
    })
    .transpose()
}

fn mac(s: &str) -> Result<Vec<u8>> {
    parse_mac(&s.replace('-', ":")).ok_or_else(|| {
        Error::config(format!(
            "invalid args {s} for MAC addr: want six octets as aa:bb:cc:dd:ee:ff"
        ))
    })
}

impl Settings {
    /// Resolve, as the reference ranks them: `args.cni` over
    /// `runtimeConfig.mac` over `CNI_ARGS` `MAC` over the config.
    /// `cni_args`: whether to read `CNI_ARGS` (ADD and CHECK).
    fn load(req: &Request, cni_args: bool) -> Result<(Settings, PathBuf)> {
        let c: Conf = req.parse_config()?;
        let args: Keys = req.net.args_cni()?;
        let mut k = c.keys;
        if cni_args {
            if let Some(m) = req.cni_args(&["MAC"])?.get("MAC") {
                k.mac = Some(m.to_string());
            }
        }
        if let Some(mut rc) = req.net.runtime_config.clone() {
            cni::types::fold_keys(&mut rc, &["mac"]);
            match rc.get("mac") {
                Some(Value::String(m)) if !m.is_empty() => k.mac = Some(m.clone()),
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(other) => {
                    return Err(Error::decode(format!(
                        "runtimeConfig.mac: want a string, got {other}"
                    )))
                }
            }
        }
        if let Some(extra) = args.sysctl {
            let list = k.sysctl.get_or_insert_with(Vec::new);
            for (key, v) in extra {
                match list.iter_mut().find(|(seen, _)| *seen == key) {
                    Some(slot) => slot.1 = v,
                    None => list.push((key, v)),
                }
            }
        }
        k.mac = args.mac.or(k.mac);
        k.promisc = args.promisc.or(k.promisc);
        k.mtu = args.mtu.or(k.mtu);
        k.allmulti = args.allmulti.or(k.allmulti);
        k.tx_qlen = args.tx_qlen.or(k.tx_qlen);

        let mut s = Settings {
            promisc: k.promisc.unwrap_or(false),
            mtu: uint("mtu", k.mtu)?.filter(|m| *m != 0),
            allmulti: k.allmulti,
            txqlen: uint("txQLen", k.tx_qlen)?,
            mac: k
                .mac
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(mac)
                .transpose()?,
            sysctls: Vec::new(),
        };
        for (key, v) in k.sysctl.unwrap_or_default() {
            let parts = sysctl_components(&key, &req.ifname)?;
            s.sysctls.push((key, parts, v));
        }
        let dir = c
            .data_dir
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        Ok((s, PathBuf::from(dir)))
    }
}

/// What DEL puts back: the interface's values before ADD changed them.
/// Field names, order and omissions as the reference writes the file.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub tx_qlen: Option<u32>,
}

impl Saved {
    /// The current values of what `s` is about to change; values already
    /// in `prev` (a saved file from an earlier, retried ADD) win, so a
    /// retry never records values ADD itself set.
    fn capture(link: &cni_kernel::Link, s: &Settings, prev: Option<Saved>) -> Saved {
        let prev = prev.unwrap_or_default();
        Saved {
            mac: prev.mac.or_else(|| s.mac.as_ref().and(link.mac_string())),
            promisc: prev.promisc.or(s.promisc.then(|| link.is_promisc())),
            mtu: prev.mtu.or(s.mtu.and(link.mtu)).filter(|m| *m != 0),
            allmulti: prev.allmulti.or(s.allmulti.map(|_| link.is_allmulti())),
            tx_qlen: prev.tx_qlen.or(s.txqlen.and(link.txqlen())),
        }
    }

    /// The file's bytes: JSON indented by one space, as Go's
    /// `json.MarshalIndent(v, "", " ")` writes it.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serialising a struct of strings, numbers and booleans cannot fail.
        self.serialize(&mut ser)
            .expect("serialize saved link values");
        out
    }
}

/// `<dataDir>/<containerID>_<ifname>.json`; both parts are validated CNI
/// identifiers, safe as a file name.
fn saved_path(dir: &Path, req: &Request) -> PathBuf {
    dir.join(format!("{}_{}.json", req.container_id, req.ifname))
}

fn read_saved(path: &Path) -> Result<Option<Vec<u8>>> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match opened {
        Ok(mut f) => {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut b)
                .map_err(|e| Error::plugin(format!("read {}: {e}", path.display())))?;
            Ok(Some(b))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::plugin(format!("read {}: {e}", path.display()))),
    }
}

/// Write the file whole or not at all (a temporary file renamed into place).
fn write_saved(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| Error::plugin(format!("save {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

fn remove_saved(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::plugin(format!("remove {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn netns_of(req: &Request) -> Result<Netns> {
    let path = req
        .netns
        .as_ref()
        .ok_or_else(|| Error::env("CNI_NETNS is required"))?;
    Ok(Netns::open(path)?)
}

fn get_link(nl: &mut Netlink, ifname: &str) -> Result<cni_kernel::Link> {
    nl.link_by_name(ifname)
        .map_err(|e| Error::from(e).context(format!("failed to get {ifname:?}")))
}

/// Put the saved values back on link `index`; every step is tried, the
/// failures are reported together.
fn restore(nl: &mut Netlink, index: u32, saved: &Saved) -> std::result::Result<(), String> {
    let mut errors = Vec::new();
    if let Some(mtu) = saved.mtu {
        if let Err(e) = nl.set_mtu(index, mtu) {
            errors.push(format!("failed to restore MTU: {e}"));
        }
    }
    if let Some(m) = &saved.mac {
        match parse_mac(m) {
            Some(b) => {
                if let Err(e) = nl.set_mac(index, &b) {
                    errors.push(format!("failed to restore MAC address: {e}"));
                }
            }
            None => errors.push(format!("saved MAC address {m:?} is not one")),
        }
    }
    if let Some(on) = saved.promisc {
        if let Err(e) = nl.set_promisc(index, on) {
            errors.push(format!("failed to restore promiscuous mode: {e}"));
        }
    }
    if let Some(on) = saved.allmulti {
        if let Err(e) = nl.set_allmulti(index, on) {
            errors.push(format!("failed to restore all-multicast mode: {e}"));
        }
    }
    if let Some(q) = saved.tx_qlen {
        if let Err(e) = nl.set_txqlen(index, q) {
            errors.push(format!("failed to restore transmit queue length: {e}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Write the sysctls inside `ns`, in order; on a failure the ones already
/// written get their old values back. Returns the old values.
fn write_sysctls(ns: &Netns, s: &Settings) -> Result<()> {
    let list: Vec<(Vec<String>, String)> = s
        .sysctls
        .iter()
        .map(|(_, p, v)| (p.clone(), v.clone()))
        .collect();
    ns.run(move || -> Result<()> {
        let mut done: Vec<(Vec<String>, String)> = Vec::new();
        for (parts, value) in &list {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let step = sysctl::read_net(&refs).and_then(|old| {
                sysctl::write_net(&refs, value)?;
                Ok(old)
            });
            match step {
                Ok(old) => done.push((parts.clone(), old)),
                Err(e) => {
                    for (parts, old) in done.iter().rev() {
                        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                        if let Err(u) = sysctl::write_net(&refs, old) {
                            log::warn!("rollback: {u}");
                        }
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    })?
}

impl Plugin for Tuning {
    fn name(&self) -> &str {
        "tuning"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let (s, dir) = Settings::load(req, true)?;
        let keys: Vec<&str> = s.sysctls.iter().map(|(k, _, _)| k.as_str()).collect();
        check_allowlist(Path::new(ALLOWLIST), &keys)?;
        let mut prev = req
            .net
            .prev_result()?
            .ok_or_else(|| Error::config("Required prevResult missing"))?;
        let ns = netns_of(req)?;
        write_sysctls(&ns, &s)?;
        if !s.touches_link() {
            return Ok(prev);
        }
        let mut nl = Netlink::open_in(&ns)?;
        let link = get_link(&mut nl, &req.ifname)?;
        let path = saved_path(&dir, req);
        let earlier = match read_saved(&path)? {
            Some(b) => serde_json::from_slice::<Saved>(&b).ok(),
            None => None,
        };
        let saved = Saved::capture(&link, &s, earlier);
        write_saved(&path, &saved.to_bytes())?;

        let mut applied = || -> cni_kernel::Result<()> {
            if let Some(m) = &s.mac {
                nl.set_mac(link.index, m)?;
            }
            if s.promisc {
                nl.set_promisc(link.index, true)?;
            }
            if let Some(mtu) = s.mtu {
                nl.set_mtu(link.index, mtu)?;
            }
            if let Some(on) = s.allmulti {
                nl.set_allmulti(link.index, on)?;
            }
            if let Some(q) = s.txqlen {
                nl.set_txqlen(link.index, q)?;
            }
            Ok(())
        };
        if let Err(e) = applied() {
            // Undo what was applied, then forget the saved values.
            if let Err(u) = restore(&mut nl, link.index, &saved) {
                log::warn!("rollback: {u}");
            }
            if let Err(u) = remove_saved(&path) {
                log::warn!("rollback: {u}");
            }
            return Err(Error::from(e).context(format!("tune {}", req.ifname)));
        }
        if let Some(m) = &s.mac {
            for i in prev.interfaces.iter_mut().filter(|i| i.name == req.ifname) {
                i.mac = Some(format_mac(m));
            }
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        // CNI_ARGS are not needed to restore: a DEL never fails on them.
        let (_, dir) = Settings::load(req, false)?;
        let path = saved_path(&dir, req);
        let Some(bytes) = read_saved(&path)? else {
            return Ok(());
        };
        let Ok(saved) = serde_json::from_slice::<Saved>(&bytes) else {
            log::warn!("{} is not a saved link state; removing it", path.display());
            return remove_saved(&path);
        };
        // No namespace, or no interface: nothing is left to restore.
        let ns = match &req.netns {
            None => None,
            Some(p) => Netns::open_if_present(p)?,
        };
        let Some(ns) = ns else {
            return remove_saved(&path);
        };
        let mut nl = Netlink::open_in(&ns)?;
        let link = match nl.link_by_name(&req.ifname) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return remove_saved(&path),
            Err(e) => return Err(e.into()),
        };
        restore(&mut nl, link.index, &saved).map_err(|e| {
            Error::plugin(format!("restore {} of {}: {e}", path.display(), req.ifname))
        })?;
        remove_saved(&path)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let (s, _) = Settings::load(req, true)?;
        req.net
            .prev_result()?
            .ok_or_else(|| Error::config("Required prevResult missing"))?;
        let ns = netns_of(req)?;
        let sysctls: Vec<(Vec<String>, String)> = s
            .sysctls
            .iter()
            .map(|(_, p, v)| (p.clone(), v.clone()))
            .collect();
        ns.run(move || -> Result<()> {
            for (parts, want) in &sysctls {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                let got = sysctl::read_net(&refs)?;
                if got != *want {
                    return Err(Error::plugin(format!(
                        "Tuning configured value of /proc/sys/net/{} is {want}, current value is {got}",
                        parts.join("/")
                    )));
                }
            }
            Ok(())
        })??;
        if !s.touches_link() {
            return Ok(());
        }
        let mut nl = Netlink::open_in(&ns)?;
        let link = nl
            .link_by_name(&req.ifname)
            .map_err(|_| Error::plugin(format!("Cannot find container link {}", req.ifname)))?;
        let ifname = &req.ifname;
        let differs = |what: &str, want: String, got: String| {
            Err(Error::plugin(format!(
                "Tuning configured {what} of {ifname} is {want}, current value is {got}"
            )))
        };
        if let Some(m) = &s.mac {
            if link.mac.as_deref() != Some(m.as_slice()) {
                return differs(
                    "Ethernet",
                    format_mac(m),
                    link.mac_string().unwrap_or_default(),
                );
            }
        }
        if link.is_promisc() != s.promisc {
            return differs(
                "promisc",
                s.promisc.to_string(),
                link.is_promisc().to_string(),
            );
        }
        if let Some(mtu) = s.mtu {
            if link.mtu != Some(mtu) {
                return differs("MTU", mtu.to_string(), format!("{:?}", link.mtu));
            }
        }
        if let Some(on) = s.allmulti {
            if link.is_allmulti() != on {
                return differs(
                    "all-multicast mode",
                    on.to_string(),
                    link.is_allmulti().to_string(),
                );
            }
        }
        if let Some(q) = s.txqlen {
            if link.txqlen() != Some(q) {
                return differs(
                    "transmit queue length",
                    q.to_string(),
                    format!("{:?}", link.txqlen()),
                );
            }
        }
        Ok(())
    }
}

/// Everything ADD, CHECK and DEL read from the configuration (and
/// `CNI_ARGS`) before they touch the system, as one function that touches
/// nothing: the fuzz targets (`fuzz/`) drive it with arbitrary input.
pub fn load_config(req: &Request) -> Result<()> {
    Settings::load(req, true)?;
    Settings::load(req, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_components_under_net() {
        assert_eq!(
            sysctl_components("net.ipv4.conf.IFNAME.arp_filter", "eth0.100").unwrap(),
            ["ipv4", "conf", "eth0.100", "arp_filter"]
        );
        assert_eq!(
            sysctl_components("net.core.somaxconn", "eth0").unwrap(),
            ["core", "somaxconn"]
        );
        // Only the first IFNAME is replaced, as in the reference.
        assert_eq!(
            sysctl_components("net.IFNAME.IFNAME", "e1").unwrap(),
            ["e1", "IFNAME"]
        );
    }

    #[test]
    fn hostile_keys_are_refused() {
        for (key, why) in [
            ("net/../kernel/ostype", "'/'"),
            ("/proc/sys/kernel/ostype", "'/'"),
            ("net.ipv4.conf.IFNAME/../../../kernel", "'/'"),
            ("net..ipv4", "empty component"),
            (".net.ipv4", "empty component"),
            ("net.", "empty component"),
            ("kernel.ostype", "only keys under net."),
            ("net", "only keys under net."),
            ("netfoo.x", "only keys under net."),
            ("net.core\0.x", "NUL"),
            ("", "empty component"),
        ] {
            let e = sysctl_components(key, "eth0").unwrap_err();
            assert_eq!(e.code, cni::error::INVALID_CONFIG, "{key:?}");
            assert!(e.msg.contains(why), "{key:?}: {}", e.msg);
            assert!(e.msg.contains("nothing was written"), "{}", e.msg);
        }
        // An interface name of ".." cannot pass the skeleton; were it to,
        // it would still not escape.
        assert!(sysctl_components("net.IFNAME.x", "..").is_err());
    }

    #[test]
    fn allowlist_lines_are_patterns() {
        let dir = std::env::temp_dir().join(format!("tuning-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("allowlist.conf");
        check_allowlist(&file, &["net.anything"]).unwrap();
        std::fs::write(
            &file,
            "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  ^net\\.core\\.somaxconn$  \n",
        )
        .unwrap();
        check_allowlist(
            &file,
            &["net.ipv4.conf.IFNAME.arp_filter", "net.core.somaxconn"],
        )
        .unwrap();
        let e = check_allowlist(&file, &["net.core.somaxconn", "net.ipv4.ip_forward"]).unwrap_err();
        assert!(
            e.msg.contains("Sysctl net.ipv4.ip_forward is not allowed"),
            "{}",
            e.msg
        );
        std::fs::write(&file, "(unclosed\n").unwrap();
        assert!(check_allowlist(&file, &["net.x"])
            .unwrap_err()
            .msg
            .contains("bad pattern"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saved_file_is_what_the_reference_writes() {
        let s = Saved {
            mac: Some("0a:58:0a:f4:00:02".into()),
            promisc: Some(false),
            mtu: Some(1500),
            allmulti: None,
            tx_qlen: Some(1000),
        };
        assert_eq!(
            String::from_utf8(s.to_bytes()).unwrap(),
            "{\n \"mac\": \"0a:58:0a:f4:00:02\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"txQLen\": 1000\n}"
        );
        let back: Saved = serde_json::from_slice(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        assert_eq!(Saved::default().to_bytes(), b"{}");
    }

    #[test]
    fn duplicate_sysctl_keys_are_refused() {
        let c: std::result::Result<Conf, _> =
            serde_json::from_str(r#"{"sysctl": {"net.a": "1", "net.a": "2"}}"#);
        assert!(c
            .unwrap_err()
            .to_string()
            .contains("duplicated sysctl keys"));
        let c: Conf = serde_json::from_str(r#"{"sysctl": {"net.a": "1", "net.b": "2"}}"#).unwrap();
        assert_eq!(c.keys.sysctl.unwrap().len(), 2);
        let c: Conf = serde_json::from_str(r#"{"sysctl": null}"#).unwrap();
        assert!(c.keys.sysctl.is_none());
    }

    #[test]
    fn macs_and_numbers() {
        assert_eq!(
            mac("0A-58-0a-01-00-ff").unwrap(),
            vec![0x0a, 0x58, 0x0a, 1, 0, 0xff]
        );
        assert_eq!(mac("nope").unwrap_err().code, cni::error::INVALID_CONFIG);
        assert_eq!(
            uint("mtu", Some(-1)).unwrap_err().code,
            cni::error::INVALID_CONFIG
        );
        assert_eq!(uint("txQLen", Some(0)).unwrap(), Some(0));
    }
}
