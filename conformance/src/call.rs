//! One invocation of a plugin as a runtime makes it: the `CNI_*`
//! environment, the config for stdin, built up field by field. Shared by
//! the conformance harness and the test suites, which run it their own way.

use std::path::PathBuf;
use std::process::Command;

/// One invocation of a plugin, built up field by field.
#[derive(Debug, Clone)]
pub struct Call {
    pub binary: PathBuf,
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub cni_path: String,
    pub config: String,
    /// Variables to leave out entirely (to test their absence).
    pub unset: Vec<String>,
}

impl Call {
    pub fn new(binary: impl Into<PathBuf>, command: &str, config: &str) -> Call {
        let binary = binary.into();
        let dir = binary
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        Call {
            binary,
            command: command.into(),
            container_id: "test-container".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            args: String::new(),
            cni_path: dir,
            config: config.into(),
            unset: Vec::new(),
        }
    }

    pub fn container(mut self, id: &str) -> Call {
        self.container_id = id.into();
        self
    }

    pub fn netns(mut self, path: &str) -> Call {
        self.netns = path.into();
        self
    }

    pub fn ifname(mut self, name: &str) -> Call {
        self.ifname = name.into();
        self
    }

    pub fn args(mut self, args: &str) -> Call {
        self.args = args.into();
        self
    }

    pub fn cni_path(mut self, path: &str) -> Call {
        self.cni_path = path.into();
        self
    }

    pub fn without(mut self, var: &str) -> Call {
        self.unset.push(var.into());
        self
    }

    /// The command as a runtime would start it.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (k, v) in [
            ("CNI_COMMAND", &self.command),
            ("CNI_CONTAINERID", &self.container_id),
            ("CNI_NETNS", &self.netns),
            ("CNI_IFNAME", &self.ifname),
            ("CNI_ARGS", &self.args),
            ("CNI_PATH", &self.cni_path),
        ] {
            if self.unset.iter().any(|u| u == k) {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        cmd
    }
}
