//! Network configurations: loading `.conflist` files (and single-plugin
//! `.conf`/`.json` files, converted to one-plugin lists) the way the
//! reference libcni does, with errors that name the file and the key.
//!
//! | Key | Rule |
//! |---|---|
//! | `name` | required string, the spec's identifier syntax (it becomes part of file paths) |
//! | `cniVersion` | string; empty or absent means 0.1.0 |
//! | `cniVersions` | strings; the highest of these and `cniVersion` that we support (≤ 1.1.0) is used |
//! | `disableCheck`, `disableGC`, `loadOnlyInlinedPlugins` | JSON bool, or the strings `"true"`/`"false"` in any case |
//! | `plugins` | non-empty list of objects, each with a string `type`; `capabilities` an object of bools |
//!
//! Unless `loadOnlyInlinedPlugins` is true, plugin objects in
//! `<dir>/<name>/*.conf` are appended to the file's `plugins`.

use crate::error::{Error, Result};
use cni::version::{semver, Version};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where runtimes look for network configs unless told otherwise.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// One plugin of a list: the object as the admin wrote it, every key kept
/// (unknown keys are passed to the plugin unchanged), with the keys the
/// runtime itself reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// `type`: the binary's file name.
    pub plugin_type: String,
    /// `capabilities`: which runtime capability args the plugin wants.
    pub capabilities: BTreeMap<String, bool>,
    /// The whole object.
    pub conf: Map<String, Value>,
}

impl PluginConfig {
    /// Parse one plugin object. Errors name the key at fault, relative to
    /// the object.
    pub fn from_value(v: Value) -> Result<PluginConfig> {
        let conf = match v {
            Value::Object(m) => m,
            other => {
                return Err(Error::config(
                    None,
                    None,
                    format!("a plugin config must be an object, not {}", kind(&other)),
                ))
            }
        };
        let plugin_type = match conf.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::String(_)) | None => {
                return Err(Error::config(None, Some("type"), "missing plugin type"))
            }
            Some(other) => {
                return Err(Error::config(
                    None,
                    Some("type"),
                    format!("must be a string, not {}", kind(other)),
                ))
            }
        };
        let capabilities = match conf.get("capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(caps)) => caps
                .iter()
                .map(|(k, v)| match v {
                    Value::Bool(b) => Ok((k.clone(), *b)),
                    other => Err(Error::config(
                        None,
                        Some(&format!("capabilities.{k}")),
                        format!("must be a bool, not {}", kind(other)),
                    )),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::config(
                    None,
                    Some("capabilities"),
                    format!("must be an object of bools, not {}", kind(other)),
                ))
            }
        };
        Ok(PluginConfig {
            plugin_type,
            capabilities,
            conf,
        })
    }

    /// Parse a plugin object from JSON bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PluginConfig> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::config(None, None, format!("invalid JSON: {e}")))?;
        PluginConfig::from_value(v)
    }

    /// The capabilities this plugin enables (`true` in `capabilities`).
    pub fn enabled_capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| k.as_str())
    }
}

/// A network configuration list: what a runtime runs for one network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    /// The version negotiated from `cniVersion` and `cniVersions`; every
    /// plugin request carries it.
    pub cni_version: Version,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<PluginConfig>,
    /// The bytes the list was parsed from: what the result cache stores
    /// as `config`.
    pub bytes: Vec<u8>,
}

impl NetworkConfigList {
    /// The list named `name` in `dir`, as the reference's `LoadNetworkConf`
    /// finds it: `*.conflist` files sorted by file name, first match wins;
    /// else `*.conf` and `*.json` files holding a single plugin, sorted,
    /// converted to a one-plugin list. A file that fails to parse is an
    /// error (naming it) even if another file has the name asked for, as in
    /// the reference: a broken config must not go unnoticed.
    pub fn load(dir: impl AsRef<Path>, name: &str) -> Result<NetworkConfigList> {
        let dir = dir.as_ref();
        let lists = conf_files(dir, &[".conflist"])?;
        for file in &lists {
            let list = NetworkConfigList::from_file(file)?;
            if list.name == name {
                return Ok(list);
            }
        }
        let singles = conf_files(dir, &[".conf", ".json"])?;
        if singles.is_empty() {
            return Err(if lists.is_empty() {
                Error::NoConfigs {
                    dir: dir.to_path_buf(),
                }
            } else {
                Error::NotFound {
                    dir: dir.to_path_buf(),
                    name: name.to_string(),
                }
            });
        }
        for file in &singles {
            let bytes = read(file)?;
            let plugin = PluginConfig::from_bytes(&bytes).map_err(|e| e.in_file(file))?;
            if plugin.conf.get("name").and_then(Value::as_str) == Some(name) {
                return NetworkConfigList::from_single_conf(&bytes).map_err(|e| e.in_file(file));
            }
        }
        Err(Error::NotFound {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// Every network config in `dir`: the lists of all `*.conflist` files,
    /// then the single-plugin `*.conf`/`*.json` files, each in file name
    /// order, with the file each came from. Files that fail to parse are
    /// returned as errors in place, so one broken file hides nothing.
    pub fn load_all(dir: impl AsRef<Path>) -> Result<Vec<(PathBuf, Result<NetworkConfigList>)>> {
        let dir = dir.as_ref();
        let mut out = Vec::new();
        for file in conf_files(dir, &[".conflist"])? {
            let list = NetworkConfigList::from_file(&file);
            out.push((file, list));
        }
        for file in conf_files(dir, &[".conf", ".json"])? {
            let list = read(&file).and_then(|b| {
                NetworkConfigList::from_single_conf(&b).map_err(|e| e.in_file(&file))
            });
            out.push((file, list));
        }
        Ok(out)
    }

    /// A `.conflist` file, with the plugin objects of `<dir>/<name>/*.conf`
    /// appended unless `loadOnlyInlinedPlugins` is set.
    pub fn from_file(path: impl AsRef<Path>) -> Result<NetworkConfigList> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let mut list = NetworkConfigList::parse(bytes).map_err(|e| e.in_file(path))?;
        if !list.load_only_inlined_plugins {
            let dir = path.parent().unwrap_or(Path::new("."));
            list.plugins.extend(sibling_plugins(dir, &list.name)?);
        }
        if list.plugins.is_empty() {
            return Err(Error::config(
                Some(path.to_path_buf()),
                Some("plugins"),
                format!(
                    "no plugin configs found (none inline, none in {})",
                    path.parent()
                        .unwrap_or(Path::new("."))
                        .join(&list.name)
                        .display()
                ),
            ));
        }
        Ok(list)
    }

    /// A list from JSON bytes. Only inline `plugins` count: there is no
    /// directory to look for more in.
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkConfigList> {
        let list = NetworkConfigList::parse(bytes.to_vec())?;
        if list.plugins.is_empty() {
            return Err(Error::config(None, Some("plugins"), "missing"));
        }
        Ok(list)
    }

    /// A single-plugin config (a `.conf` file's contents) as a one-plugin
    /// list, like the reference's `ConfListFromConf`: `{name, cniVersion,
    /// plugins: [the object]}`.
    pub fn from_single_conf(bytes: &[u8]) -> Result<NetworkConfigList> {
        let plugin = PluginConfig::from_bytes(bytes)?;
        let name = plugin.conf.get("name").cloned().unwrap_or(Value::Null);
        let mut list = Map::new();
        list.insert("name".into(), name);
        if let Some(v) = plugin.conf.get("cniVersion") {
            list.insert("cniVersion".into(), v.clone());
        }
        list.insert(
            "plugins".into(),
            Value::Array(vec![Value::Object(plugin.conf)]),
        );
        let bytes = serde_json::to_vec(&list)
            .map_err(|e| Error::config(None, None, format!("re-encode config: {e}")))?;
        NetworkConfigList::from_bytes(&bytes)
    }

    fn parse(bytes: Vec<u8>) -> Result<NetworkConfigList> {
        let raw: Map<String, Value> = match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(Error::config(
                    None,
                    None,
                    format!(
                        "a network config list must be an object, not {}",
                        kind(&other)
                    ),
                ))
            }
            Err(e) => return Err(Error::config(None, None, format!("invalid JSON: {e}"))),
        };
        let name = match raw.get("name") {
            Some(Value::String(n)) => n.clone(),
            None => return Err(Error::config(None, Some("name"), "missing")),
            Some(other) => {
                return Err(Error::config(
                    None,
                    Some("name"),
                    format!("must be a string, not {}", kind(other)),
                ))
            }
        };
        cni::validate::network_name(&name)
            .map_err(|e| Error::config(None, Some("name"), format!("{e}")))?;
        let cni_version = negotiate_version(&raw)?;
        let disable_check = read_bool(&raw, "disableCheck")?;
        let disable_gc = read_bool(&raw, "disableGC")?;
        let load_only_inlined_plugins = read_bool(&raw, "loadOnlyInlinedPlugins")?;
        let plugins = match raw.get("plugins") {
            None if load_only_inlined_plugins => {
                return Err(Error::config(
                    None,
                    Some("plugins"),
                    "missing, and loadOnlyInlinedPlugins is true",
                ))
            }
            None => Vec::new(),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(Error::config(None, Some("plugins"), "empty list"))
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    PluginConfig::from_value(p.clone())
                        .map_err(|e| prefix_key(e, &format!("plugins[{i}]")))
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::config(
                    None,
                    Some("plugins"),
                    format!("must be a list, not {}", kind(other)),
                ))
            }
        };
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            disable_gc,
            load_only_inlined_plugins,
            plugins,
            bytes,
        })
    }
}

/// `cniVersion` plus `cniVersions`: the highest version named that is not
/// newer than ours; it must be one we know.
fn negotiate_version(raw: &Map<String, Value>) -> Result<Version> {
    let single = match raw.get("cniVersion") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(Error::config(
                None,
                Some("cniVersion"),
                format!("must be a string, not {}", kind(other)),
            ))
        }
    };
    let supported = || {
        Version::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(list) = raw.get("cniVersions") else {
        return Version::parse(&single).ok_or_else(|| {
            Error::config(
                None,
                Some("cniVersion"),
                format!(
                    "unsupported version {single:?} (supported: {})",
                    supported()
                ),
            )
        });
    };
    let Value::Array(items) = list else {
        return Err(Error::config(
            None,
            Some("cniVersions"),
            format!("must be a list of strings, not {}", kind(list)),
        ));
    };
    let current = semver(Version::CURRENT.as_str()).unwrap_or((1, 1, 0));
    let mut candidates = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("cniVersions[{i}]");
        let Value::String(s) = item else {
            return Err(Error::config(
                None,
                Some(&key),
                format!("must be a string, not {}", kind(item)),
            ));
        };
        let v = semver(s)
            .ok_or_else(|| Error::config(None, Some(&key), format!("invalid version {s:?}")))?;
        candidates.push((v, s.as_str()));
    }
    if !single.is_empty() {
        let v = semver(&single).ok_or_else(|| {
            Error::config(
                None,
                Some("cniVersion"),
                format!("invalid version {single:?}"),
            )
        })?;
        candidates.push((v, single.as_str()));
    }
    let best = candidates
        .into_iter()
        .filter(|(v, _)| *v <= current)
        .max_by_key(|(v, _)| *v)
        .ok_or_else(|| {
            Error::config(
                None,
                Some("cniVersions"),
                format!("no version we support (supported: {})", supported()),
            )
        })?;
    Version::parse(best.1).ok_or_else(|| {
        Error::config(
            None,
            Some("cniVersions"),
            format!(
                "highest usable version {:?} is not a CNI spec version (supported: {})",
                best.1,
                supported()
            ),
        )
    })
}

/// A list-level flag: a JSON bool, or "true"/"false" in any case (as the
/// reference accepts).
fn read_bool(raw: &Map<String, Value>, key: &str) -> Result<bool> {
    match raw.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Error::config(
                None,
                Some(key),
                format!("invalid value {s:?} (want true or false)"),
            )),
        },
        Some(other) => Err(Error::config(
            None,
            Some(key),
            format!("must be a bool, not {}", kind(other)),
        )),
    }
}

/// Plugin objects in `<dir>/<name>/*.conf`, in file name order; none when
/// that directory does not exist.
fn sibling_plugins(dir: &Path, name: &str) -> Result<Vec<PluginConfig>> {
    let sub = dir.join(name);
    conf_files(&sub, &[".conf"])?
        .into_iter()
        .map(|file| {
            let bytes = read(&file)?;
            PluginConfig::from_bytes(&bytes).map_err(|e| e.in_file(&file))
        })
        .collect()
}

/// Regular files (not directories) in `dir` whose name ends in one of
/// `exts`, sorted by name. A missing directory has none.
fn conf_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::config(
                Some(dir.to_path_buf()),
                None,
                format!("cannot list directory: {e}"),
            ))
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::config(
                Some(dir.to_path_buf()),
                None,
                format!("cannot list directory: {e}"),
            )
        })?;
        let path = entry.path();
        // Like Go's filepath.Ext: the suffix from the last dot, so a file
        // named just ".conflist" counts too.
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ext = name.rfind('.').map(|i| &name[i..]).unwrap_or("");
        if !exts.contains(&ext) || path.is_dir() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::config(Some(path.to_path_buf()), None, format!("cannot read: {e}")))
}

/// Put `outer` before the key of a config error: `plugins[1]` + `type` →
/// `plugins[1].type`.
fn prefix_key(e: Error, outer: &str) -> Error {
    match e {
        Error::Config { file, key, msg } => Error::Config {
            file,
            key: Some(match key {
                Some(k) => format!("{outer}.{k}"),
                None => outer.to_string(),
            }),
            msg,
        },
        e => e,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::TestDir as Dir;

    impl Dir {
        fn write(&self, name: &str, v: &Value) -> PathBuf {
            let p = self.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, v.to_string()).unwrap();
            p
        }
    }

    fn list(v: Value) -> Result<NetworkConfigList> {
        NetworkConfigList::from_bytes(v.to_string().as_bytes())
    }

    #[test]
    fn conflists_sorted_first_match_wins() {
        let d = Dir::new("sorted");
        d.write(
            "20-b.conflist",
            &json!({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}),
        );
        d.write(
            "10-a.conflist",
            &json!({"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}),
        );
        d.write(
            "05-other.conflist",
            &json!({"cniVersion":"1.0.0","name":"other","plugins":[{"type":"x"}]}),
        );
        let l = NetworkConfigList::load(&d.0, "net").unwrap();
        assert_eq!(l.plugins[0].plugin_type, "first");
        assert_eq!(l.cni_version, Version::V1_0_0);
        let all = NetworkConfigList::load_all(&d.0).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].0.ends_with("05-other.conflist"));
    }

    #[test]
    fn single_conf_fallback_is_a_one_plugin_list() {
        let d = Dir::new("single");
        d.write(
            "10-x.conflist",
            &json!({"cniVersion":"1.0.0","name":"other","plugins":[{"type":"x"}]}),
        );
        d.write(
            "20-a.json",
            &json!({"cniVersion":"0.4.0","name":"a","type":"bridge","bridge":"br9"}),
        );
        d.write(
            "30-a.conf",
            &json!({"cniVersion":"0.4.0","name":"a","type":"later"}),
        );
        let l = NetworkConfigList::load(&d.0, "a").unwrap();
        assert_eq!(l.name, "a");
        assert_eq!(l.cni_version, Version::V0_4_0);
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(l.plugins[0].plugin_type, "bridge");
        assert_eq!(l.plugins[0].conf["bridge"], "br9");
        // The cached config is the converted list.
        let v: Value = serde_json::from_slice(&l.bytes).unwrap();
        assert_eq!(v["plugins"][0]["bridge"], "br9");
        assert_eq!(v["name"], "a");
        match NetworkConfigList::load(&d.0, "missing").unwrap_err() {
            Error::NotFound { name, .. } => assert_eq!(name, "missing"),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn empty_or_missing_dir() {
        let d = Dir::new("empty");
        assert!(matches!(
            NetworkConfigList::load(&d.0, "x").unwrap_err(),
            Error::NoConfigs { .. }
        ));
        assert!(matches!(
            NetworkConfigList::load(d.0.join("nope"), "x").unwrap_err(),
            Error::NoConfigs { .. }
        ));
        d.write(
            "1.conflist",
            &json!({"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x"}]}),
        );
        assert!(matches!(
            NetworkConfigList::load(&d.0, "x").unwrap_err(),
            Error::NotFound { .. }
        ));
    }

    #[test]
    fn broken_file_is_named() {
        let d = Dir::new("broken");
        let f = d.write(
            "10-bad.conflist",
            &json!({"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x"},{"mtu":1}]}),
        );
        let e = NetworkConfigList::load(&d.0, "a").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: key \"plugins[1].type\": missing plugin type",
                f.display()
            )
        );
        std::fs::write(&f, "{\"name\": ").unwrap();
        let e = NetworkConfigList::load(&d.0, "a").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with(&f.display().to_string()), "{s}");
        assert!(s.contains("invalid JSON"), "{s}");
    }

    #[test]
    fn version_negotiation() {
        let l = list(json!({"cniVersion":"0.4.0","cniVersions":["1.0.0","2.5.0","0.3.1"],"name":"n","plugins":[{"type":"x"}]})).unwrap();
        assert_eq!(l.cni_version, Version::V1_0_0);
        let l = list(json!({"cniVersions":["1.1.0","1.0.0"],"name":"n","plugins":[{"type":"x"}]}))
            .unwrap();
        assert_eq!(l.cni_version, Version::V1_1_0);
        let l = list(json!({"name":"n","plugins":[{"type":"x"}]})).unwrap();
        assert_eq!(l.cni_version, Version::V0_1_0);
        let e =
            list(json!({"cniVersion":"9.0.0","name":"n","plugins":[{"type":"x"}]})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("key \"cniVersion\": unsupported version \"9.0.0\""),
            "{e}"
        );
        let e =
            list(json!({"cniVersions":["1.0"],"name":"n","plugins":[{"type":"x"}]})).unwrap_err();
        assert!(e.to_string().starts_with("key \"cniVersions[0]\""), "{e}");
        let e =
            list(json!({"cniVersions":["3.0.0"],"name":"n","plugins":[{"type":"x"}]})).unwrap_err();
        assert!(e.to_string().contains("no version we support"), "{e}");
        let e =
            list(json!({"cniVersions":"1.0.0","name":"n","plugins":[{"type":"x"}]})).unwrap_err();
        assert!(e.to_string().starts_with("key \"cniVersions\""), "{e}");
    }

    #[test]
    fn flags_as_bools_or_strings() {
        let l = list(
            json!({"cniVersion":"1.1.0","name":"n","disableCheck":"TRUE","disableGC":true,
            "loadOnlyInlinedPlugins":"false","plugins":[{"type":"x"}]}),
        )
        .unwrap();
        assert!(l.disable_check && l.disable_gc && !l.load_only_inlined_plugins);
        let e = list(
            json!({"cniVersion":"1.1.0","name":"n","disableGC":"yes","plugins":[{"type":"x"}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "key \"disableGC\": invalid value \"yes\" (want true or false)"
        );
        let e = list(
            json!({"cniVersion":"1.1.0","name":"n","disableCheck":1,"plugins":[{"type":"x"}]}),
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("key \"disableCheck\": must be a bool"));
    }

    #[test]
    fn name_and_plugins_rules() {
        for (v, key) in [
            (
                json!({"cniVersion":"1.0.0","plugins":[{"type":"x"}]}),
                "name",
            ),
            (
                json!({"cniVersion":"1.0.0","name":5,"plugins":[{"type":"x"}]}),
                "name",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"../x","plugins":[{"type":"x"}]}),
                "name",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[]}),
                "plugins",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":{}}),
                "plugins",
            ),
            (json!({"cniVersion":"1.0.0","name":"n"}), "plugins"),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[5]}),
                "plugins[0]",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":""}]}),
                "plugins[0].type",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"mac":"yes"}}]}),
                "plugins[0].capabilities.mac",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":[]}]}),
                "plugins[0].capabilities",
            ),
            (
                json!({"cniVersion":"1.0.0","name":"n","loadOnlyInlinedPlugins":true}),
                "plugins",
            ),
        ] {
            match list(v.clone()).unwrap_err() {
                Error::Config { key: Some(k), .. } => assert_eq!(k, key, "{v}"),
                e => panic!("{v}: {e:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys_kept_and_capabilities_read() {
        let l = list(json!({"cniVersion":"1.0.0","name":"n","plugins":[
            {"type":"x","capabilities":{"portMappings":true,"mac":false},"someKey":[1,2]}]}))
        .unwrap();
        let p = &l.plugins[0];
        assert_eq!(p.conf["someKey"], json!([1, 2]));
        assert_eq!(
            p.enabled_capabilities().collect::<Vec<_>>(),
            ["portMappings"]
        );
    }

    #[test]
    fn sibling_plugin_files() {
        let d = Dir::new("siblings");
        let f = d.write(
            "10-n.conflist",
            &json!({"cniVersion":"1.1.0","name":"n","plugins":[{"type":"a"}]}),
        );
        d.write("n/20-c.conf", &json!({"type":"c"}));
        d.write("n/10-b.conf", &json!({"type":"b"}));
        d.write("n/ignored.json", &json!({"type":"z"}));
        let types = |l: &NetworkConfigList| {
            l.plugins
                .iter()
                .map(|p| p.plugin_type.clone())
                .collect::<Vec<_>>()
        };
        let l = NetworkConfigList::from_file(&f).unwrap();
        assert_eq!(types(&l), ["a", "b", "c"]);
        // Only inline plugins when asked.
        d.write(
            "10-n.conflist",
            &json!({"cniVersion":"1.1.0","name":"n","loadOnlyInlinedPlugins":"true","plugins":[{"type":"a"}]}),
        );
        assert_eq!(types(&NetworkConfigList::from_file(&f).unwrap()), ["a"]);
        // A list made only of sibling files.
        d.write("10-n.conflist", &json!({"cniVersion":"1.1.0","name":"n"}));
        assert_eq!(
            types(&NetworkConfigList::from_file(&f).unwrap()),
            ["b", "c"]
        );
        // A bad sibling file is named.
        let bad = d.write("n/30-bad.conf", &json!({"notype":1}));
        let e = NetworkConfigList::from_file(&f).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: key \"type\": missing plugin type", bad.display())
        );
        // No plugins at all.
        std::fs::remove_dir_all(d.0.join("n")).unwrap();
        let e = NetworkConfigList::from_file(&f).unwrap_err();
        assert!(e.to_string().contains("no plugin configs found"), "{e}");
    }
}
