//! Running a helper tool (`nft`, `iptables-save`, `iptables-restore`):
//! the one place the kernel layer starts a process. Every run has a
//! timeout, and a tool that cannot be started at all is told apart from
//! one that ran and failed, so callers can decide what "not installed"
//! means for them.

use crate::error::{Error, Kind, Result};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a netfilter tool may take. `iptables -w` waits for the xtables
/// lock; on a busy node that can take seconds, never minutes.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a tool printed when it succeeded, or why it did not.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Run `program args`, feeding `stdin`, killing it after `timeout`.
/// `Kind::NoTool` when it cannot be started; an error when it is killed.
pub fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
    what: &dyn Fn() -> String,
) -> Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error {
            what: what(),
            kind: Kind::NoTool(format!("cannot run {program}: {e}")),
        })?;
    let pid = child.id() as libc::pid_t;
    let input = child.stdin.take();
    let data = stdin.map(<[u8]>::to_vec);
    // The waiter owns the child; this thread keeps only its pid, which
    // stays ours (no reuse) until the waiter has reaped it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let fed = match (data, input) {
            (Some(d), Some(mut i)) => i.write_all(&d),
            _ => Ok(()),
        };
        let _ = tx.send((fed, child.wait_with_output()));
    });
    let (fed, out) = match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => {
            // A child we have not reaped yet: the pid is still its own.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = rx.recv();
            return Err(Error::protocol(
                what(),
                format!("{program} did not finish within {} s", timeout.as_secs()),
            ));
        }
    };
    let out = out.map_err(|e| Error::io(format!("{}: wait for {program}", what()), &e))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if let Err(e) = fed {
        if out.status.success() {
            return Err(Error::io(format!("{}: write to {program}", what()), &e));
        }
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        success: out.status.success(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_is_no_tool() {
        let e = run("/nonexistent/tool", &[], None, TOOL_TIMEOUT, &|| "x".into())
            .err()
            .unwrap();
        assert!(e.is_no_tool(), "{e}");
    }

    #[test]
    fn output_and_failure_are_reported() {
        let o = run(
            "sh",
            &["-c", "cat; echo err >&2; exit 3"],
            Some(b"in"),
            TOOL_TIMEOUT,
            &|| "x".into(),
        )
        .unwrap();
        assert_eq!(o.stdout, "in");
        assert_eq!(o.stderr, "err");
        assert!(!o.success);
    }

    #[test]
    fn a_hung_tool_is_killed() {
        let e = run("sleep", &["30"], None, Duration::from_millis(100), &|| {
            "hang".into()
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("did not finish"), "{e}");
    }
}
