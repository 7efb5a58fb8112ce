//! Running a plugin inside the throwaway host namespace without ever
//! panicking on what the plugin does: a plugin that hangs, dies on a signal
//! or cannot be started is an [`Ran`] the checks judge, not a harness crash.
//!
//! `cni_tests::run_with_timeout` panics on a timeout or a failed spawn, which
//! is right for a test and wrong for a conformance report; this is the
//! non-panicking variant (candidate to move into `tests/src/lib.rs`).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one plugin invocation did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// Exit status; -1 when killed by a signal, the timeout, or not started.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    /// Why the plugin did not run to completion, if it did not.
    pub abnormal: Option<String>,
}

impl Ran {
    pub fn succeeded(&self) -> bool {
        self.status == 0 && self.abnormal.is_none()
    }

    /// Stdout as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.stdout).ok()
    }

    /// A one-line summary of the outcome for FAIL lines.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.abnormal {
            return why.clone();
        }
        let out = snippet(&self.stdout);
        if self.status == 0 {
            if out.is_empty() {
                "exit 0".into()
            } else {
                format!("exit 0, stdout {out}")
            }
        } else if out.is_empty() {
            format!(
                "exit {}, empty stdout, stderr {}",
                self.status,
                snippet(&self.stderr)
            )
        } else {
            format!("exit {}, stdout {out}", self.status)
        }
    }
}

/// Text squeezed onto one line and cut to a readable length.
pub fn snippet(s: &str) -> String {
    const MAX: usize = 160;
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX {
        let cut: String = one_line.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// How often a spawn is retried when the binary is still open for writing
/// somewhere (ETXTBSY; libcni retries the same way).
const SPAWN_ATTEMPTS: u32 = 10;

/// Start `cmd` inside the network namespace `netns_fd`, in its own process
/// group, feed it `stdin`, and collect its output; after `timeout` the whole
/// group is killed.
pub fn run_in_netns(
    netns: &cni_kernel::Netns,
    mut cmd: Command,
    stdin: &[u8],
    timeout: Duration,
) -> Ran {
    netns.enter_on_exec(&mut cmd);
    // Its own group, so a timeout also kills what the plugin started (an
    // IPAM delegate) and nothing keeps the output pipes open.
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let mut attempt = 0;
    let mut child = loop {
        attempt += 1;
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < SPAWN_ATTEMPTS => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Ran {
                    status: -1,
                    stdout: String::new(),
                    stderr: String::new(),
                    abnormal: Some(format!("could not start {:?}: {e}", cmd.get_program())),
                }
            }
        }
    };

    let (tx_out, rx_out) = mpsc::channel();
    let (tx_err, rx_err) = mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            let _ = tx_out.send(String::from_utf8_lossy(&buf).into_owned());
        });
    }
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = tx_err.send(String::from_utf8_lossy(&buf).into_owned());
        });
    }
    if let Some(mut input) = child.stdin.take() {
        let data = stdin.to_vec();
        // A plugin may exit before reading its input; that is its answer.
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
    }

    let deadline = Instant::now() + timeout;
    let mut abnormal = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&st) {
                    abnormal = Some(format!("killed by signal {sig}"));
                }
                break st.code().unwrap_or(-1);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let pid = child.id() as libc::pid_t;
                let _ = killpg(pid);
                let _ = child.wait();
                abnormal = Some(format!("did not finish within {timeout:?}, killed"));
                break -1;
            }
            Err(e) => {
                abnormal = Some(format!("wait failed: {e}"));
                break -1;
            }
        }
    };
    // Whatever the plugin left running in its group (a helper that kept
    // the output pipes open) goes with it; ESRCH when nothing is left.
    let _ = killpg(child.id() as libc::pid_t);
    // A grandchild that left the group could still hold the pipes open:
    // never wait for it forever, and say so rather than report empty output.
    let grace = Duration::from_secs(2);
    let mut collect = |rx: mpsc::Receiver<String>, which: &str| {
        rx.recv_timeout(grace).unwrap_or_else(|_| {
            abnormal.get_or_insert_with(|| {
                format!("{which} held open by a process the plugin left behind")
            });
            String::new()
        })
    };
    let stdout = collect(rx_out, "stdout");
    let stderr = collect(rx_err, "stderr");
    Ran {
        status,
        stdout,
        stderr,
        abnormal,
    }
}

/// SIGKILL to the process group `pgid` (the one a plugin was started in).
fn killpg(pgid: libc::pid_t) -> nix::Result<()> {
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid),
        nix::sys::signal::Signal::SIGKILL,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns::{unique, ScratchNetns};
    use std::os::unix::fs::PermissionsExt;

    /// A plugin that exits at once but leaves a helper holding its stdout:
    /// the run ends within the grace period, says why, and the helper is
    /// gone with the plugin's process group.
    #[test]
    fn a_helper_left_behind_is_killed_and_reported() {
        let host = ScratchNetns::new("exec-helper");
        let dir = std::env::temp_dir().join(unique("cnic-exec-helper"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let marker = dir.join("helper-ran-to-the-end");
        let script = dir.join("plugin");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n(sleep 3; touch {}) &\necho '{{}}'\nexit 0\n",
                marker.display()
            ),
        )
        .expect("write script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let start = Instant::now();
        let ran = run_in_netns(
            host.ns(),
            Command::new(&script),
            b"",
            Duration::from_secs(10),
        );
        assert_eq!(ran.status, 0);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(3500));
        let outlived = marker.exists();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!outlived, "the helper outlived the run");
    }
}
