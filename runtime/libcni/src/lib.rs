//! The runtime side of CNI, compatible with the reference Go libcni: load
//! network config lists, run their plugins for ADD, DEL, CHECK, GC and
//! STATUS, and keep the result cache that containerd, CRI-O and the
//! reference `cnitool` read and write.
//!
//! ```no_run
//! use libcni::{CniConfig, NetworkConfigList, RuntimeConf};
//!
//! let list = NetworkConfigList::load("/etc/cni/net.d", "pods")?;
//! let cni = CniConfig::new(vec!["/opt/cni/bin".into()]);
//! let rt = RuntimeConf {
//!     container_id: "c1".into(),
//!     netns: "/run/netns/c1".into(),
//!     ifname: "eth0".into(),
//!     ..Default::default()
//! };
//! let result = cni.add_network_list(&list, &rt)?;
//! println!("{}", result.to_value(list.cni_version));
//! cni.del_network_list(&list, &rt)?;
//! # Ok::<(), libcni::Error>(())
//! ```
//!
//! Plugins run as child processes with the six `CNI_*` variables set (empty
//! where a verb has no value for one) on top of our own environment, the
//! request on stdin; their stderr is ours. See `cni::delegate::exec` for
//! the retry on "text file busy".

pub mod api;
pub mod cache;
pub mod conf;
pub mod error;
pub mod invoke;

pub use api::CniConfig;
pub use cache::{CachedAttachment, DEFAULT_CACHE_DIR};
pub use cni::skel::Attachment;
pub use cni::{CniResult, Version};
pub use conf::{NetworkConfigList, PluginConfig, DEFAULT_CONF_DIR};
pub use error::{Error, Result};

use serde_json::{Map, Value};

/// One attachment's runtime parameters: everything a plugin is told
/// besides its config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the namespace path; empty for none.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` as pairs, joined `K=V;K=V`.
    pub args: Vec<(String, String)>,
    /// Capability args (`portMappings`, `mac`, `ips`, ...): each plugin gets
    /// those its `capabilities` enable, in `runtimeConfig`.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// `CNI_ARGS` as the plugin sees it.
    pub fn cni_args_string(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// This attachment as GC's `cni.dev/valid-attachments` names it.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }
}

/// A temporary directory for unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct TestDir(pub(crate) std::path::PathBuf);

#[cfg(test)]
impl TestDir {
    pub(crate) fn new(tag: &str) -> TestDir {
        let p = std::env::temp_dir().join(format!(
            "libcni-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        // A leftover of an earlier, killed run of the same test.
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create test dir");
        TestDir(p)
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
