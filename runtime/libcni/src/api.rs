//! The list operations: ADD, DEL, CHECK, GC, STATUS and validation of a
//! network config list, as the spec's section 3 and the reference libcni
//! run them.

use crate::cache::{self, CacheEntry, CachedAttachment};
use crate::conf::{NetworkConfigList, PluginConfig};
use crate::error::{Error, Result};
use crate::invoke::{self, build_gc_request, build_request, build_status_request, environment};
use crate::RuntimeConf;
use cni::error::INCOMPATIBLE_VERSION;
use cni::skel::{Attachment, Command};
use cni::{CniResult, Version};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// How to run plugins: where to find them and where to cache results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// Directories searched for plugin binaries, in order (`CNI_PATH`).
    pub path: Vec<PathBuf>,
    /// The cache root; results go to `<cache_dir>/results`.
    pub cache_dir: PathBuf,
}

impl CniConfig {
    /// Plugins from `path`, results cached under `/var/lib/cni`.
    pub fn new(path: Vec<PathBuf>) -> CniConfig {
        CniConfig {
            path,
            cache_dir: PathBuf::from(cache::DEFAULT_CACHE_DIR),
        }
    }

    /// The same with another cache root.
    pub fn with_cache_dir(mut self, cache_dir: impl Into<PathBuf>) -> CniConfig {
        self.cache_dir = cache_dir.into();
        self
    }

    /// ADD: validate the container ID, network and interface names; VERSION
    /// every plugin and refuse the list if one does not speak its version
    /// (before anything is created); then ADD each plugin in order, each
    /// given the previous one's result, stopping at the first error. On
    /// success the final result is cached and returned.
    ///
    /// A failed ADD is not rolled back: as the spec says, the runtime must
    /// DEL it (every ADD is eventually followed by a DEL).
    pub fn add_network_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<CniResult> {
        cni::validate::container_id(&rt.container_id).map_err(Error::Invalid)?;
        cni::validate::network_name(&list.name).map_err(Error::Invalid)?;
        cni::validate::interface_name(&rt.ifname).map_err(Error::Invalid)?;
        let cache_path = cache::cache_file(&self.cache_dir, &list.name, rt)?;
        let binaries = self.negotiate(list)?;
        let env = environment(Command::Add, Some(rt), &self.path);
        let mut prev: Option<Value> = None;
        let mut result = CniResult::default();
        for (plugin, binary) in list.plugins.iter().zip(&binaries) {
            let request = build_request(list, plugin, prev.as_ref(), &rt.capability_args);
            let out = invoke::exec(binary, &env, &request)
                .map_err(|e| plugin_error(list, plugin, "add", e))?;
            result = CniResult::from_slice(&out, list.cni_version)
                .map_err(|e| plugin_error(list, plugin, "add", e.context("invalid result")))?;
            prev = Some(result.to_value(list.cni_version));
        }
        let entry = CachedAttachment::new(&list.name, &list.bytes, rt, prev);
        cache::write(&cache_path, &entry.to_bytes())
            .map_err(|e| e.context(format!("cache the result of network {:?}", list.name)))?;
        Ok(result)
    }

    /// DEL: each plugin in reverse order, given the cached ADD result as
    /// `prevResult` (lists of 0.4.0 and later), stopping at the first
    /// error; the cache file is removed once every plugin succeeded. An
    /// unreadable (empty, torn, corrupt) cache file does not block DEL: it
    /// is removed and DEL runs without `prevResult`.
    pub fn del_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        let cache_path = cache::cache_file(&self.cache_dir, &list.name, rt);
        let prev = match &cache_path {
            Ok(path) if list.cni_version >= Version::V0_4_0 => {
                match self.cached_result(path, list.cni_version) {
                    Ok(r) => r,
                    Err(e) => {
                        log::warn!("{e}; removing it and deleting without prevResult");
                        if let Err(e) = cache::remove(path) {
                            log::warn!("{e}");
                        }
                        None
                    }
                }
            }
            _ => None,
        };
        let env = environment(Command::Del, Some(rt), &self.path);
        for plugin in list.plugins.iter().rev() {
            let request = build_request(list, plugin, prev.as_ref(), &rt.capability_args);
            self.run(list, plugin, "delete", &env, &request)?;
        }
        // Every plugin has released the attachment: a cache file that
        // cannot be removed (a read-only /var/lib/cni) must not turn that
        // into a failure the runtime retries forever. The reference
        // ignores this error too.
        if let Ok(path) = cache_path {
            if let Err(e) = cache::remove(&path) {
                log::warn!("DEL succeeded but the cache entry stays: {e}");
            }
        }
        Ok(())
    }

    /// CHECK: refused for lists older than 0.4.0; nothing when
    /// `disableCheck`; else each plugin in order with the cached result as
    /// `prevResult`, stopping at the first error. An unreadable cache file
    /// is an error here.
    pub fn check_network_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<()> {
        if list.cni_version < Version::V0_4_0 {
            return Err(Error::CheckNotSupported {
                version: list.cni_version.to_string(),
            });
        }
        if list.disable_check {
            log::info!("network {:?}: disableCheck is set, not checking", list.name);
            return Ok(());
        }
        let path = cache::cache_file(&self.cache_dir, &list.name, rt)?;
        let prev = self
            .cached_result(&path, list.cni_version)
            .map_err(|e| e.context(format!("network {:?}", list.name)))?;
        let env = environment(Command::Check, Some(rt), &self.path);
        for plugin in &list.plugins {
            let request = build_request(list, plugin, prev.as_ref(), &rt.capability_args);
            self.run(list, plugin, "check", &env, &request)?;
        }
        Ok(())
    }

    /// GC (nothing when `disableGC`):
    ///
    /// 1. every cached attachment of this network that is not in `valid`
    ///    gets a full DEL, with the netns, `CNI_ARGS` and capability args
    ///    it was added with; an empty `valid` makes every one of them stale;
    /// 2. for lists of 1.1.0, every plugin gets GC with `valid` as
    ///    `cni.dev/valid-attachments`, sent even when empty: plugins read a
    ///    GC without the list as "nothing known stale".
    ///
    /// Keeps going after errors and returns them all.
    pub fn gc_network_list(&self, list: &NetworkConfigList, valid: &[Attachment]) -> Result<()> {
        if list.disable_gc {
            log::info!("network {:?}: disableGC is set, not collecting", list.name);
            return Ok(());
        }
        let mut errors = Vec::new();
        let stale = match self.gc_candidates(list, valid) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                Vec::new()
            }
        };
        for a in stale {
            let rt = a.runtime_conf();
            if let Err(e) = self.del_network_list(list, &rt) {
                errors.push(e.context(format!(
                    "delete stale attachment {} {}",
                    rt.container_id, rt.ifname
                )));
            }
        }
        if list.cni_version >= Version::V1_1_0 {
            let env = environment(Command::Gc, None, &self.path);
            for plugin in &list.plugins {
                let request = build_gc_request(list, plugin, valid);
                if let Err(e) = self.run(list, plugin, "gc", &env, &request) {
                    errors.push(e);
                }
            }
        }
        Error::join(errors)
    }

    /// The cached attachments GC would DEL: those of `list`'s network whose
    /// (container ID, interface) is not in `valid`.
    pub fn gc_candidates(
        &self,
        list: &NetworkConfigList,
        valid: &[Attachment],
    ) -> Result<Vec<CachedAttachment>> {
        let keep: HashSet<(&str, &str)> = valid
            .iter()
            .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
            .collect();
        Ok(self
            .get_cached_attachments(None)?
            .into_iter()
            .filter(|a| a.network == list.name)
            .filter(|a| !keep.contains(&(a.container_id.as_str(), a.ifname.as_str())))
            .collect())
    }

    /// STATUS: each plugin in order (lists of 1.1.0; older lists have no
    /// STATUS and are reported ready, as the reference does); the first
    /// error is returned as is, so its code (50, 51) reaches the caller.
    pub fn status_network_list(&self, list: &NetworkConfigList) -> Result<()> {
        if list.cni_version < Version::V1_1_0 {
            log::info!(
                "network {:?}: version {} has no STATUS",
                list.name,
                list.cni_version
            );
            return Ok(());
        }
        let env = environment(Command::Status, None, &self.path);
        for plugin in &list.plugins {
            self.run(
                list,
                plugin,
                "status",
                &env,
                &build_status_request(list, plugin),
            )?;
        }
        Ok(())
    }

    /// Every plugin exists and speaks the list's version. Returns the
    /// capabilities the list's plugins enable, sorted; errors of all
    /// plugins are reported together.
    pub fn validate_network_list(&self, list: &NetworkConfigList) -> Result<Vec<String>> {
        let mut errors = Vec::new();
        for plugin in &list.plugins {
            let checked = cni::delegate::find_in_path(&plugin.plugin_type, &self.path)
                .and_then(|b| invoke::version_info(&b))
                .map_err(|e| plugin_error(list, plugin, "version", e))
                .and_then(|supported| require_version(list, plugin, &supported));
            if let Err(e) = checked {
                errors.push(e);
            }
        }
        Error::join(errors)?;
        let caps: BTreeSet<&str> = list
            .plugins
            .iter()
            .flat_map(PluginConfig::enabled_capabilities)
            .collect();
        Ok(caps.into_iter().map(str::to_string).collect())
    }

    /// The versions plugin `plugin_type` supports (its VERSION answer).
    pub fn version_info(&self, plugin_type: &str) -> cni::Result<Vec<String>> {
        let binary = cni::delegate::find_in_path(plugin_type, &self.path)?;
        invoke::version_info(&binary)
    }

    /// The cached attachments, optionally of one container only.
    pub fn get_cached_attachments(
        &self,
        container_id: Option<&str>,
    ) -> Result<Vec<CachedAttachment>> {
        cache::attachments(&self.cache_dir, container_id)
    }

    /// The cached ADD result of `rt` on `list`, converted to the list's
    /// version; `None` when nothing is cached.
    pub fn get_network_list_cached_result(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<CniResult>> {
        let path = cache::cache_file(&self.cache_dir, &list.name, rt)?;
        let Some(entry) = cache::read(&path)? else {
            return Ok(None);
        };
        entry
            .result()
            .map(|r| CniResult::from_value(r, list.cni_version).map_err(|e| Error::cache(&path, e)))
            .transpose()
    }

    /// The config bytes and runtime configuration cached for `rt` on
    /// `list` (`CNI_ARGS` and capability args as they were at ADD).
    pub fn get_network_list_cached_config(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<Option<(Vec<u8>, RuntimeConf)>> {
        let path = cache::cache_file(&self.cache_dir, &list.name, rt)?;
        match cache::read(&path)? {
            Some(CacheEntry::V1(a)) => {
                let mut cached = rt.clone();
                cached.args = a.cni_args.clone();
                cached.capability_args = a.capability_args.clone();
                Ok(Some((a.config, cached)))
            }
            Some(CacheEntry::Legacy(_)) => Err(Error::cache(&path, "not a cniCacheV1 entry")),
            None => Ok(None),
        }
    }

    /// The cached result at `path` in `version`'s wire format.
    fn cached_result(&self, path: &std::path::Path, version: Version) -> Result<Option<Value>> {
        let Some(entry) = cache::read(path)? else {
            return Ok(None);
        };
        let Some(raw) = entry.result() else {
            return Ok(None);
        };
        let r = CniResult::from_value(raw, version)
            .map_err(|e| Error::cache(path, format!("cached result: {e}")))?;
        Ok(Some(r.to_value(version)))
    }

    /// Find `plugin`'s binary and run one verb that returns no result.
    fn run(
        &self,
        list: &NetworkConfigList,
        plugin: &PluginConfig,
        step: &'static str,
        env: &[(&'static str, String)],
        request: &Value,
    ) -> Result<()> {
        let binary = cni::delegate::find_in_path(&plugin.plugin_type, &self.path)
            .map_err(|e| plugin_error(list, plugin, step, e))?;
        invoke::exec(&binary, env, request)
            .map(|_| ())
            .map_err(|e| plugin_error(list, plugin, step, e))
    }

    /// Every plugin's binary, each checked (once per type) to support the
    /// list's version. The VERSION calls run side by side: this happens on
    /// every ADD, and waiting for them one after another would add a
    /// process start per plugin to it.
    fn negotiate(&self, list: &NetworkConfigList) -> Result<Vec<PathBuf>> {
        let mut started: Vec<(&PluginConfig, PathBuf, invoke::Running)> = Vec::new();
        for plugin in &list.plugins {
            if started
                .iter()
                .any(|(p, _, _)| p.plugin_type == plugin.plugin_type)
            {
                continue;
            }
            let binary = cni::delegate::find_in_path(&plugin.plugin_type, &self.path)
                .map_err(|e| plugin_error(list, plugin, "version", e))?;
            let running = invoke::spawn_version(&binary)
                .map_err(|e| plugin_error(list, plugin, "version", e))?;
            started.push((plugin, binary, running));
        }
        let mut binaries: HashMap<String, PathBuf> = HashMap::new();
        for (plugin, binary, running) in started {
            let supported = invoke::version_answer(running)
                .map_err(|e| plugin_error(list, plugin, "version", e))?;
            require_version(list, plugin, &supported)?;
            binaries.insert(plugin.plugin_type.clone(), binary);
        }
        list.plugins
            .iter()
            .map(|p| {
                binaries.get(&p.plugin_type).cloned().ok_or_else(|| {
                    plugin_error(
                        list,
                        p,
                        "version",
                        cni::Error::plugin("internal: plugin binary not negotiated"),
                    )
                })
            })
            .collect()
    }
}

/// The plugin's VERSION answer must list the list's version.
fn require_version(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    supported: &[String],
) -> Result<()> {
    let want = list.cni_version.as_str();
    if supported.iter().any(|v| v == want) {
        return Ok(());
    }
    Err(plugin_error(
        list,
        plugin,
        "version",
        cni::Error::new(
            INCOMPATIBLE_VERSION,
            format!("plugin does not support config version {want:?}"),
        )
        .with_details(format!("plugin supports [{}]", supported.join(", "))),
    ))
}

fn plugin_error(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    step: &'static str,
    error: cni::Error,
) -> Error {
    Error::Plugin {
        plugin_type: plugin.plugin_type.clone(),
        network: list.name.clone(),
        step,
        error,
    }
}
