//! The result cache, in the reference libcni's format, so containerd,
//! CRI-O, the reference `cnitool` and we can read each other's files.
//!
//! One file per attachment: `<cacheDir>/results/<network>-<containerID>-<ifname>`,
//! directory mode 0700, file mode 0600, one line of JSON:
//!
//! ```json
//! {"kind":"cniCacheV1","containerId":"c1","config":"<base64 of the config list>",
//!  "ifName":"eth0","networkName":"net1","netns":"/run/netns/x",
//!  "cniArgs":[["K","V"]],"capabilityArgs":{"portMappings":[]},"result":{...}}
//! ```
//!
//! `netns`, `cniArgs`, `capabilityArgs` and `result` are left out when
//! empty, as Go's `omitempty` does. A file without `"kind":"cniCacheV1"` is
//! the legacy format: the result itself.
//!
//! We write to a temporary file in the same directory, sync it and rename
//! it over the target, so a crash leaves the old file or the new one, never
//! half of one (the reference writes in place; its half-written files are
//! what `cni#1055` was about).

use crate::error::{Error, Result};
use crate::RuntimeConf;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The reference's cache root.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// The `kind` of a current cache file.
pub const CACHE_KIND: &str = "cniCacheV1";

/// One cached attachment: what ADD was run with, and its result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedAttachment {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    /// The config list the attachment was made with, as bytes.
    pub config: Vec<u8>,
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The final ADD result, as the last plugin printed it (in the list's version).
    pub result: Option<Value>,
}

impl CachedAttachment {
    /// The entry for an ADD of `rt` on network `network` with `config`.
    pub fn new(network: &str, config: &[u8], rt: &RuntimeConf, result: Option<Value>) -> Self {
        CachedAttachment {
            container_id: rt.container_id.clone(),
            network: network.to_string(),
            ifname: rt.ifname.clone(),
            config: config.to_vec(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result,
        }
    }

    /// The runtime configuration this attachment was made with (for a DEL
    /// synthesised by GC).
    pub fn runtime_conf(&self) -> RuntimeConf {
        RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.cni_args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }

    /// The file's bytes, in the reference's field order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let wire = Wire {
            kind: CACHE_KIND.to_string(),
            container_id: self.container_id.clone(),
            config: Some(base64::engine::general_purpose::STANDARD.encode(&self.config)),
            ifname: self.ifname.clone(),
            network_name: self.network.clone(),
            netns: self.netns.clone(),
            cni_args: self.cni_args.clone(),
            capability_args: sort_keys(&self.capability_args),
            // The reference holds the result as a Go map too: sorted keys.
            result: self
                .result
                .as_ref()
                .filter(|r| !is_empty_object(r))
                .map(sorted_value),
        };
        // Plain strings, lists and JSON values always serialise.
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// Go writes a `map[string]interface{}` (the capability args, the result)
/// with its keys sorted, at every depth; do the same so our files match its
/// byte for byte.
fn sort_keys(
    map: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), sorted_value(&map[k])))
        .collect()
}

fn sorted_value(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(sort_keys(m)),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(sorted_value).collect())
        }
        other => other.clone(),
    }
}

/// What a cache file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheEntry {
    /// A `cniCacheV1` file (boxed: it is much larger than a bare result).
    V1(Box<CachedAttachment>),
    /// An older file: the raw result only.
    Legacy(Value),
}

impl CacheEntry {
    /// Parse a cache file's bytes. Anything that is neither a `cniCacheV1`
    /// object nor a JSON object (an empty file, a torn write) is an error.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<CacheEntry, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("empty file".into());
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
        if v.get("kind").and_then(Value::as_str) != Some(CACHE_KIND) {
            return if v.is_object() {
                Ok(CacheEntry::Legacy(v))
            } else {
                Err("neither a cniCacheV1 entry nor a result".into())
            };
        }
        let w: Wire =
            serde_json::from_value(v).map_err(|e| format!("invalid {CACHE_KIND}: {e}"))?;
        let config = match w.config.as_deref() {
            None | Some("") => Vec::new(),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("invalid base64 in \"config\": {e}"))?,
        };
        Ok(CacheEntry::V1(Box::new(CachedAttachment {
            container_id: w.container_id,
            network: w.network_name,
            ifname: w.ifname,
            config,
            netns: w.netns,
            cni_args: w.cni_args,
            capability_args: w.capability_args,
            result: w.result.filter(|r| !r.is_null()),
        })))
    }

    /// The cached result, whichever the format.
    pub fn result(&self) -> Option<&Value> {
        match self {
            CacheEntry::V1(a) => a.result.as_ref(),
            CacheEntry::Legacy(r) => Some(r),
        }
    }
}

/// The wire shape, fields in the order Go's `cachedInfo` declares them.
#[derive(Serialize, Deserialize)]
struct Wire {
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    /// Go's `[]byte`: base64 (standard alphabet, padded); `null` when nil.
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    ifname: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(
        rename = "cniArgs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "null_as_default"
    )]
    capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// `<cache_dir>/results/<network>-<containerID>-<ifname>`. Each part must
/// be non-empty (as in the reference) and must not leave the directory.
pub fn cache_file(cache_dir: &Path, network: &str, rt: &RuntimeConf) -> Result<PathBuf> {
    let parts = [
        ("network name", network),
        ("container ID", rt.container_id.as_str()),
        ("interface name", rt.ifname.as_str()),
    ];
    for (what, part) in parts {
        if part.is_empty() || part.contains('/') || part == "." || part == ".." {
            return Err(Error::cache(
                cache_dir.join("results"),
                format!(
                    "cache file path needs a non-empty {what} without '/' \
                     (network {network:?}, container ID {:?}, interface {:?})",
                    rt.container_id, rt.ifname
                ),
            ));
        }
    }
    Ok(cache_dir
        .join("results")
        .join(format!("{network}-{}-{}", rt.container_id, rt.ifname)))
}

/// Read a cache file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<CacheEntry>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::cache(path, format!("cannot read: {e}"))),
    };
    CacheEntry::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| Error::cache(path, e))
}

/// Write `bytes` to `path` atomically: a temporary file (mode 0600) in the
/// cache directory above `results/` (same filesystem), synced, then renamed
/// over `path` (whose directory is created 0700 if missing).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::cache(path, "no parent directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::cache(dir, format!("cannot create directory: {e}")))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::cache(path, "no file name"))?
        .to_string_lossy();
    // The temporary file lives beside `results/`, not in it: a crash before
    // the rename must not leave a complete-looking entry there, which the
    // reference's attachment scan (which does not skip dot-files) would
    // then GC forever.
    let tmp_dir = dir.parent().unwrap_or(dir);
    remove_stale_tmp(tmp_dir, &name);
    let tmp = tmp_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        cni::fault::point("libcni:cache-written");
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        if let Err(rm) = std::fs::remove_file(&tmp) {
            if rm.kind() != std::io::ErrorKind::NotFound {
                log::warn!("remove {}: {rm}", tmp.display());
            }
        }
        return Err(Error::cache(path, format!("cannot write: {e}")));
    }
    // Make the rename itself durable; a failure here loses nothing written.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!("sync {}: {e}", dir.display());
    }
    Ok(())
}

/// Remove the temporary files a writer of entry `name` left in `tmp_dir`
/// when it was killed before its rename: `.<name>.tmp-<pid>` whose process
/// is gone. Each would otherwise stay for ever (its name carries the dead
/// writer's pid, so no later write replaces it). A live writer's file is
/// left alone.
fn remove_stale_tmp(tmp_dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let file = e.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Err(rm) = std::fs::remove_file(e.path()) {
            log::warn!("remove {}: {rm}", e.path().display());
        }
    }
}

/// Remove a cache file, and what a writer of it killed half-way left;
/// one that is already gone is fine.
pub fn remove(path: &Path) -> Result<()> {
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        remove_stale_tmp(dir.parent().unwrap_or(dir), &name.to_string_lossy());
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::cache(path, format!("cannot remove: {e}"))),
    }
}

/// Every valid `cniCacheV1` attachment under `<cache_dir>/results`, in file
/// name order, optionally only those of one container. Files that do not
/// parse, legacy files, entries without network or interface name and
/// dot-files (our temporary files) are skipped, as the reference skips
/// them. A missing directory holds none.
pub fn attachments(cache_dir: &Path, container_id: Option<&str>) -> Result<Vec<CachedAttachment>> {
    let dir = cache_dir.join("results");
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::cache(&dir, format!("cannot list: {e}"))),
    };
    let mut names: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let entry = match read(&path) {
            Ok(Some(CacheEntry::V1(a))) => a,
            Ok(_) => continue,
            Err(e) => {
                log::debug!("skipping {e}");
                continue;
            }
        };
        if entry.network.is_empty() || entry.ifname.is_empty() {
            continue;
        }
        if container_id.is_some_and(|id| entry.container_id != id) {
            continue;
        }
        out.push(*entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::TestDir as Dir;

    fn rt() -> RuntimeConf {
        RuntimeConf {
            container_id: "ctr1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K".into(), "V".into()),
            ],
            capability_args:
                json!({"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]})
                    .as_object()
                    .cloned()
                    .unwrap(),
        }
    }

    const CONFIG: &str = r#"{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"}]}"#;

    /// A file exactly as the reference writes it (Go's `json.Marshal` of
    /// `cachedInfo`: compact, struct field order, `[]byte` as base64).
    fn reference_fixture() -> String {
        // base64 of CONFIG, computed by hand with `base64 -w0`.
        let b64 = "eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoibmV0MSIsInBsdWdpbnMiOlt7InR5cGUiOiJicmlkZ2UifV19";
        format!(
            concat!(
                r#"{{"kind":"cniCacheV1","containerId":"ctr1","config":"{}","ifName":"eth0","#,
                r#""networkName":"net1","netns":"/run/netns/x","cniArgs":[["IgnoreUnknown","1"],["K","V"]],"#,
                r#""capabilityArgs":{{"portMappings":[{{"containerPort":8080,"hostPort":80,"protocol":"tcp"}}]}},"#,
                r#""result":{{"cniVersion":"1.0.0","dns":{{}},"ips":[{{"address":"10.230.0.2/24","gateway":"10.230.0.1"}}]}}}}"#
            ),
            b64
        )
    }

    #[test]
    fn reads_the_reference_format() {
        let fixture = reference_fixture();
        let CacheEntry::V1(a) = CacheEntry::from_bytes(fixture.as_bytes()).unwrap() else {
            panic!("not v1");
        };
        assert_eq!(a.container_id, "ctr1");
        assert_eq!(a.network, "net1");
        assert_eq!(a.ifname, "eth0");
        assert_eq!(a.netns, "/run/netns/x");
        assert_eq!(a.config, CONFIG.as_bytes());
        assert_eq!(a.cni_args, rt().args);
        assert_eq!(a.capability_args, rt().capability_args);
        assert_eq!(
            a.result.as_ref().unwrap()["ips"][0]["address"],
            "10.230.0.2/24"
        );
        assert_eq!(a.runtime_conf(), rt());
    }

    #[test]
    fn writes_the_reference_format_byte_for_byte() {
        let a = CachedAttachment::new(
            "net1",
            CONFIG.as_bytes(),
            &rt(),
            Some(
                json!({"cniVersion":"1.0.0","ips":[{"address":"10.230.0.2/24","gateway":"10.230.0.1"}],"dns":{}}),
            ),
        );
        assert_eq!(
            String::from_utf8(a.to_bytes()).unwrap(),
            reference_fixture()
        );
    }

    #[test]
    fn empty_fields_are_omitted_like_go() {
        let a = CachedAttachment {
            container_id: "c".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(a.to_bytes()).unwrap(),
            r#"{"kind":"cniCacheV1","containerId":"c","config":"","ifName":"eth0","networkName":"n"}"#
        );
        // Go's nil []byte and nil maps/slices come back as null.
        let e = CacheEntry::from_bytes(
            br#"{"kind":"cniCacheV1","containerId":"c","config":null,"ifName":"eth0","networkName":"n","cniArgs":null,"capabilityArgs":null,"result":null}"#,
        )
        .unwrap();
        assert_eq!(e, CacheEntry::V1(Box::new(a)));
    }

    #[test]
    fn legacy_and_corrupt_files() {
        let legacy = br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.230.0.2/24"}]}"#;
        match CacheEntry::from_bytes(legacy).unwrap() {
            CacheEntry::Legacy(v) => assert_eq!(v["cniVersion"], "0.4.0"),
            e => panic!("{e:?}"),
        }
        for bad in [
            &b""[..],
            b"  \n",
            b"{\"kind\":\"cniCacheV1\",\"containerId\":",
            b"[1]",
            b"null",
        ] {
            assert!(
                CacheEntry::from_bytes(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = CacheEntry::from_bytes(br#"{"kind":"cniCacheV1","config":"!!"}"#).unwrap_err();
        assert!(e.contains("base64"), "{e}");
    }

    #[test]
    fn path_rules() {
        let d = Path::new("/var/lib/cni");
        assert_eq!(
            cache_file(d, "net1", &rt()).unwrap(),
            Path::new("/var/lib/cni/results/net1-ctr1-eth0")
        );
        let mut r = rt();
        r.container_id = String::new();
        assert!(cache_file(d, "net1", &r).is_err());
        r.container_id = "../../etc".into();
        assert!(cache_file(d, "net1", &r).is_err());
        assert!(cache_file(d, "", &rt()).is_err());
    }

    #[test]
    fn write_is_atomic_with_modes_and_listing_skips_junk() {
        use std::os::unix::fs::PermissionsExt;
        let d = Dir::new("write");
        let a = CachedAttachment::new("net1", CONFIG.as_bytes(), &rt(), None);
        let path = cache_file(&d.0, "net1", &rt()).unwrap();
        write(&path, &a.to_bytes()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&d.0.join("results")), 0o700);
        assert_eq!(
            read(&path).unwrap(),
            Some(CacheEntry::V1(Box::new(a.clone())))
        );
        // Overwriting replaces the file, leaving no temporary behind.
        write(&path, &a.to_bytes()).unwrap();
        let names: Vec<_> = std::fs::read_dir(d.0.join("results"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["net1-ctr1-eth0"]);
        // Junk beside it: an empty file, a legacy file, a leftover temp
        // file, an entry of another container.
        let results = d.0.join("results");
        std::fs::write(results.join("net1-empty-eth0"), "").unwrap();
        std::fs::write(results.join("net1-old-eth0"), r#"{"cniVersion":"0.4.0"}"#).unwrap();
        std::fs::write(results.join(".net1-x-eth0.tmp-1"), a.to_bytes()).unwrap();
        let mut other = rt();
        other.container_id = "ctr2".into();
        let b = CachedAttachment::new("net2", CONFIG.as_bytes(), &other, None);
        write(&cache_file(&d.0, "net2", &other).unwrap(), &b.to_bytes()).unwrap();
        assert_eq!(attachments(&d.0, None).unwrap(), vec![a.clone(), b.clone()]);
        assert_eq!(attachments(&d.0, Some("ctr2")).unwrap(), vec![b]);
        assert!(attachments(&d.0.join("nope"), None).unwrap().is_empty());
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
    }

    #[test]
    fn a_killed_writers_temporary_file_goes_with_the_next_write_or_remove() {
        let d = Dir::new("stale");
        let a = CachedAttachment::new("net1", CONFIG.as_bytes(), &rt(), None);
        let path = cache_file(&d.0, "net1", &rt()).unwrap();
        // pid_max is at most 2^22: this pid is never alive. pid 1 is.
        let dead = d.0.join(".net1-ctr1-eth0.tmp-99999999");
        let live = d.0.join(".net1-ctr1-eth0.tmp-1");
        let other = d.0.join(".net1-ctr2-eth0.tmp-99999999");
        for p in [&dead, &live, &other] {
            std::fs::write(p, "{\"half").unwrap();
        }
        write(&path, &a.to_bytes()).unwrap();
        assert!(!dead.exists(), "a dead writer's file goes");
        assert!(
            live.exists() && other.exists(),
            "a live writer's, another entry's stay"
        );
        std::fs::write(&dead, "{\"half").unwrap();
        remove(&path).unwrap();
        assert!(!dead.exists(), "DEL removes it too");
        assert!(live.exists() && other.exists());
    }
}
