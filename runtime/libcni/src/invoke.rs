//! Running one plugin: the request it gets on stdin (derived from its
//! object in the list as the spec's section 3 says), the environment, and
//! VERSION.

use crate::conf::{NetworkConfigList, PluginConfig};
use crate::RuntimeConf;
use cni::skel::{Attachment, Command};
use cni::version::Version;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The request for ADD, DEL or CHECK: the plugin's object with `name` and
/// `cniVersion` set to the list's, `prevResult` when there is one, and
/// `runtimeConfig` holding the capability args the plugin enables and the
/// runtime provides (left as written when there are none). Every other key,
/// `capabilities` included, is passed through, as the reference does.
pub fn build_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut conf = base_request(list, plugin);
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime_config: Map<String, Value> = plugin
        .enabled_capabilities()
        .filter_map(|cap| {
            capability_args
                .get(cap)
                .map(|v| (cap.to_string(), v.clone()))
        })
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(conf)
}

/// The request for GC: `name`, `cniVersion` and the attachments to keep
/// under both the current key (`cni.dev/valid-attachments`) and the one in
/// the 1.1.0 spec text (`cni.dev/attachments`). The list is always sent,
/// `[]` when nothing is valid: a plugin reads a GC without it as "nothing
/// is known to be stale" and keeps everything, so leaving it out would
/// turn "release all" into "release nothing".
pub fn build_gc_request(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    valid: &[Attachment],
) -> Value {
    let mut conf = base_request(list, plugin);
    let v = serde_json::json!(valid);
    conf.insert("cni.dev/valid-attachments".into(), v.clone());
    conf.insert("cni.dev/attachments".into(), v);
    Value::Object(conf)
}

/// The request for STATUS: `name` and `cniVersion` only.
pub fn build_status_request(list: &NetworkConfigList, plugin: &PluginConfig) -> Value {
    Value::Object(base_request(list, plugin))
}

fn base_request(list: &NetworkConfigList, plugin: &PluginConfig) -> Map<String, Value> {
    let mut conf = plugin.conf.clone();
    conf.insert("name".into(), Value::from(list.name.as_str()));
    conf.insert("cniVersion".into(), Value::from(list.cni_version.as_str()));
    conf
}

/// The `CNI_*` environment of a verb: all six variables, empty where they
/// do not apply (GC and STATUS have no container), as libcni sets them.
/// The plugin also inherits the rest of our environment.
pub fn environment(
    command: Command,
    rt: Option<&RuntimeConf>,
    path: &[PathBuf],
) -> Vec<(&'static str, String)> {
    let rt_default = RuntimeConf::default();
    let rt = rt.unwrap_or(&rt_default);
    vec![
        ("CNI_COMMAND", command.as_str().to_string()),
        ("CNI_CONTAINERID", rt.container_id.clone()),
        ("CNI_NETNS", rt.netns.clone()),
        ("CNI_IFNAME", rt.ifname.clone()),
        ("CNI_ARGS", rt.cni_args_string()),
        ("CNI_PATH", join_path(path)),
    ]
}

pub(crate) fn join_path(path: &[PathBuf]) -> String {
    path.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Run `binary` for `command` with `request` on stdin; its stdout, or its
/// CNI error. Its stderr goes to ours.
pub(crate) fn exec(
    binary: &Path,
    env: &[(&'static str, String)],
    request: &Value,
) -> cni::Result<Vec<u8>> {
    let stdin = serde_json::to_vec(request)
        .map_err(|e| cni::Error::plugin(format!("encode request: {e}")))?;
    cni::delegate::exec(binary, env, &stdin)
}

pub(crate) use cni::delegate::Running;

/// The versions a plugin binary supports, from its VERSION answer. Run as
/// libcni runs it: `CNI_NETNS`, `CNI_IFNAME` and `CNI_PATH` set to `dummy`
/// (old skeletons insisted on them), stdin naming our newest version.
pub fn version_info(binary: &Path) -> cni::Result<Vec<String>> {
    version_answer(spawn_version(binary)?)
}

/// Start a VERSION call without waiting, so several plugins answer at once.
pub(crate) fn spawn_version(binary: &Path) -> cni::Result<cni::delegate::Running> {
    let env = vec![
        ("CNI_COMMAND", "VERSION".to_string()),
        ("CNI_CONTAINERID", String::new()),
        ("CNI_NETNS", "dummy".to_string()),
        ("CNI_IFNAME", "dummy".to_string()),
        ("CNI_ARGS", String::new()),
        ("CNI_PATH", "dummy".to_string()),
    ];
    let request = serde_json::json!({ "cniVersion": Version::CURRENT.as_str() });
    let stdin = serde_json::to_vec(&request)
        .map_err(|e| cni::Error::plugin(format!("encode request: {e}")))?;
    cni::delegate::spawn_plugin(binary, &env, &stdin)
}

/// The supported versions from a VERSION call started by [`spawn_version`].
pub(crate) fn version_answer(running: cni::delegate::Running) -> cni::Result<Vec<String>> {
    match running.wait() {
        Ok(out) => parse_version_info(&out),
        // Plugins from before VERSION existed speak only 0.1.0.
        Err(e) if e.msg == "unknown CNI_COMMAND: VERSION" => Ok(vec!["0.1.0".into()]),
        Err(e) => Err(e),
    }
}

/// A VERSION answer, decoded as the reference decodes it: `cniVersion`
/// is required; `supportedVersions` too, except that an answer of 0.2.0
/// without a list means 0.1.0 and 0.2.0 (what 0.2.0 plugins printed).
pub(crate) fn parse_version_info(out: &[u8]) -> cni::Result<Vec<String>> {
    let v: Value = serde_json::from_slice(out)
        .map_err(|e| cni::Error::decode(format!("decoding version info: {e}")))?;
    let own = v.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    if own.is_empty() {
        return Err(cni::Error::decode(
            "decoding version info: missing field cniVersion",
        ));
    }
    match v.get("supportedVersions").and_then(Value::as_array) {
        Some(vs) if !vs.is_empty() => vs
            .iter()
            .map(|s| {
                s.as_str().map(str::to_string).ok_or_else(|| {
                    cni::Error::decode(format!("decoding version info: supportedVersions {s}"))
                })
            })
            .collect(),
        _ if own == "0.2.0" => Ok(vec!["0.1.0".into(), "0.2.0".into()]),
        _ => Err(cni::Error::decode(
            "decoding version info: missing field supportedVersions",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> NetworkConfigList {
        NetworkConfigList::from_bytes(
            json!({"cniVersion":"1.1.0","name":"net1","plugins":[
                {"type":"bridge","name":"ignored","cniVersion":"0.1.0","bridge":"br0",
                 "capabilities":{"mac":true,"ips":false,"portMappings":true}},
                {"type":"tuning","runtimeConfig":{"admin":"wrote this"}}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn caps() -> Map<String, Value> {
        json!({"mac":"c2:11:22:33:44:55","ips":["10.230.0.9/24"],"bandwidth":{"ingressRate":1}})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn first_add_has_name_version_and_enabled_capabilities_only() {
        let l = list();
        let req = build_request(&l, &l.plugins[0], None, &caps());
        assert_eq!(
            req,
            json!({"type":"bridge","name":"net1","cniVersion":"1.1.0","bridge":"br0",
                   "capabilities":{"mac":true,"ips":false,"portMappings":true},
                   "runtimeConfig":{"mac":"c2:11:22:33:44:55"}})
        );
    }

    #[test]
    fn chained_request_carries_prev_result_and_keeps_admin_runtime_config() {
        let l = list();
        let prev = json!({"cniVersion":"1.1.0","ips":[{"address":"10.230.0.2/24"}]});
        let req = build_request(&l, &l.plugins[1], Some(&prev), &caps());
        assert_eq!(req["prevResult"], prev);
        // No capability enabled: runtimeConfig left as written.
        assert_eq!(req["runtimeConfig"], json!({"admin":"wrote this"}));
        let req = build_request(&l, &l.plugins[0], None, &Map::new());
        assert!(req.get("runtimeConfig").is_none());
        assert!(req.get("prevResult").is_none());
    }

    #[test]
    fn gc_and_status_requests() {
        let l = list();
        let valid = [Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into(),
        }];
        let req = build_gc_request(&l, &l.plugins[0], &valid);
        let want = json!([{"containerID":"c1","ifname":"eth0"}]);
        assert_eq!(req["cni.dev/valid-attachments"], want);
        assert_eq!(req["cni.dev/attachments"], want);
        assert!(req.get("runtimeConfig").is_none());
        // Nothing valid: an explicit empty list, never a missing key.
        let req = build_gc_request(&l, &l.plugins[0], &[]);
        assert_eq!(req["cni.dev/valid-attachments"], json!([]));
        assert_eq!(req["cni.dev/attachments"], json!([]));
        let req = build_status_request(&l, &l.plugins[1]);
        assert_eq!(req["name"], "net1");
        assert_eq!(req["cniVersion"], "1.1.0");
    }

    #[test]
    fn environment_sets_all_six() {
        let rt = RuntimeConf {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            capability_args: Map::new(),
        };
        let env = environment(Command::Add, Some(&rt), &["/a".into(), "/b".into()]);
        assert_eq!(
            env,
            vec![
                ("CNI_COMMAND", "ADD".to_string()),
                ("CNI_CONTAINERID", "c1".into()),
                ("CNI_NETNS", "/run/netns/x".into()),
                ("CNI_IFNAME", "eth0".into()),
                ("CNI_ARGS", "A=1;B=2".into()),
                ("CNI_PATH", "/a:/b".into()),
            ]
        );
        let env = environment(Command::Gc, None, &["/a".into()]);
        assert!(env[1..5].iter().all(|(_, v)| v.is_empty()), "{env:?}");
        assert_eq!(env[0].1, "GC");
    }

    #[test]
    fn version_answers() {
        assert_eq!(
            parse_version_info(br#"{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0"]}"#)
                .unwrap(),
            ["0.4.0", "1.0.0"]
        );
        assert_eq!(
            parse_version_info(br#"{"cniVersion":"0.2.0"}"#).unwrap(),
            ["0.1.0", "0.2.0"]
        );
        assert!(parse_version_info(b"{}").is_err());
        assert!(parse_version_info(br#"{"cniVersion":"0.1.0"}"#).is_err());
        assert!(parse_version_info(br#"{"cniVersion":"1.0.0"}"#).is_err());
        assert!(parse_version_info(b"nope").is_err());
    }
}
