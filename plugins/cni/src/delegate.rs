//! Delegation: running another plugin (an IPAM plugin, usually) found on
//! `CNI_PATH`, with the same environment and the full configuration on
//! stdin, and reading its result or CNI error.
//!
//! A delegate never outlives its plugin: it is started with a parent-death
//! signal (SIGKILL), so a plugin killed by its runtime (a timeout, a
//! restart) takes its IPAM process with it, which could otherwise reserve
//! addresses after the runtime's DEL already ran. And a delegate that does
//! not answer within [`DELEGATE_TIMEOUT`] is killed, and the verb fails
//! with an error naming it and the timeout.

use crate::error::{Error, Result, INVALID_CONFIG, INVALID_ENV, PLUGIN_FAILURE};
use crate::result::CniResult;
use crate::skel::{Command, Request};
use crate::version::Version;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long a delegate (an IPAM plugin) may run before it is killed and
/// the verb fails. Generous: host-local answers in milliseconds, but a DHCP
/// exchange or a remote IPAM may take seconds, and the runtime has its own,
/// usually shorter, timeout on the whole plugin anyway. The variable
/// `CNI_DELEGATE_TIMEOUT_MS` (milliseconds, > 0) overrides it; it is read
/// only when a delegate starts and exists for tests.
pub const DELEGATE_TIMEOUT: Duration = Duration::from_secs(120);

/// [`DELEGATE_TIMEOUT`], or `CNI_DELEGATE_TIMEOUT_MS` when set and valid.
fn delegate_timeout() -> Duration {
    match std::env::var("CNI_DELEGATE_TIMEOUT_MS") {
        Err(_) => DELEGATE_TIMEOUT,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                log::warn!(
                    "CNI_DELEGATE_TIMEOUT_MS={v:?} is not a positive number of milliseconds; using {} s",
                    DELEGATE_TIMEOUT.as_secs()
                );
                DELEGATE_TIMEOUT
            }
        },
    }
}

/// How [`start`] runs a plugin.
#[derive(Debug, Clone, Copy, Default)]
struct Opts {
    /// SIGKILL the plugin when the thread that started it ends (see
    /// [`die_with_parent`]).
    die_with_parent: bool,
    /// Kill the plugin and fail if it has not finished by then.
    timeout: Option<Duration>,
}

/// The first regular file named `plugin` in the directories of `path`.
pub fn find_in_path(plugin: &str, path: &[PathBuf]) -> Result<PathBuf> {
    if plugin.is_empty() || plugin.contains('/') || plugin == "." || plugin == ".." {
        return Err(Error::new(
            INVALID_CONFIG,
            format!("invalid plugin type {plugin:?}: must be a file name"),
        ));
    }
    if path.is_empty() {
        return Err(Error::new(
            INVALID_ENV,
            format!("CNI_PATH is empty: cannot find plugin {plugin:?}"),
        ));
    }
    path.iter()
        .map(|dir| dir.join(plugin))
        .find(|p| p.metadata().map(|m| m.is_file()).unwrap_or(false))
        .ok_or_else(|| {
            Error::new(
                INVALID_CONFIG,
                format!(
                    "failed to find plugin {plugin:?} in CNI_PATH [{}]",
                    path.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            )
        })
}

/// A plugin process started by [`spawn_plugin`], its config already written.
pub struct Running {
    /// `None` once waited for.
    child: Option<Proc>,
    name: String,
    /// The plugin's whole stdout, once it closes it (when it exits).
    stdout: Option<std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>>,
    /// Copies the plugin's stderr to ours as it comes, keeping the tail
    /// for the error message should the plugin fail without a CNI error.
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    /// When [`Running::wait`] gives up and kills the plugin.
    deadline: Option<(Instant, Duration)>,
}

/// What runs a delegate: a process, or a thread of ours when the delegate
/// is a role of this very executable (see [`crate::multicall`]). The
/// thread sends what it leaves as its last act, and is not joined: once
/// it has sent, it has nothing left to do but end, and waiting for that
/// would put the waiting thread to sleep a second time.
enum Proc {
    Child(std::process::Child),
    Thread(std::sync::mpsc::Receiver<Exited>),
    /// A role run on the waiting thread when it is waited for: its exit
    /// code, stdout and stderr. For a caller that waits at once, where a
    /// thread's start would cost more than the work.
    Deferred(Box<dyn FnOnce() -> Exited + Send>),
}

/// What a role run in-process leaves: exit code, stdout, stderr.
type Exited = (i32, Vec<u8>, Vec<u8>);

/// How much of a failed plugin's stderr goes into the error message.
const STDERR_TAIL: usize = 2048;

/// Copies a plugin's stderr to ours as it comes, keeping its tail.
#[derive(Default)]
struct StderrTail(Vec<u8>);

impl Write for StderrTail {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Our own stderr going away must not stop the plugin.
        let _ = std::io::stderr().write_all(buf);
        self.0.extend_from_slice(buf);
        if self.0.len() > STDERR_TAIL {
            self.0.drain(..self.0.len() - STDERR_TAIL);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn forward_stderr(mut from: std::process::ChildStderr) -> Vec<u8> {
    use std::io::Read;
    let mut tail = StderrTail::default();
    let mut buf = [0u8; 4096];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = tail.write_all(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    tail.0
}

/// Start a plugin binary with `env` added to ours and `stdin` as its input,
/// without waiting for it. Its stderr goes straight to ours, as the spec asks.
/// (For a runtime: no timeout, and the plugin outlives the caller. Plugins
/// delegating to another plugin use [`spawn`].)
pub fn spawn_plugin(binary: &Path, env: &[(&str, String)], stdin: &[u8]) -> Result<Running> {
    start(binary, env, stdin, Opts::default())
}

/// Make `cmd`'s process get SIGKILL when the thread that spawns it ends:
/// `PR_SET_PDEATHSIG`, set between fork and exec. If we are already gone
/// by then (the signal would never come), the child does not exec at all.
///
/// The signal follows the *thread* that forked, not the process: a
/// delegate must be spawned from a thread that lives as long as the plugin
/// needs it. Every plugin here starts its delegates from the thread running
/// the verb (the main thread, in the skeleton) and waits for them before
/// that returns, so the plugin process and that thread end together.
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it makes two system calls,
    // prctl(2) and getppid(2), and builds an io::Error from an errno, which
    // does not allocate. It captures only a pid, by value, and touches no
    // lock or other state shared with the parent's threads.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: we were already
            // reparented, and no signal will come. Do not run.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn start(binary: &Path, env: &[(&str, String)], stdin: &[u8], opts: Opts) -> Result<Running> {
    let name = binary.display().to_string();
    let mut tries = 0;
    let mut child = loop {
        let mut cmd = std::process::Command::new(binary);
        cmd.envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if opts.die_with_parent {
            die_with_parent(&mut cmd);
        }
        match cmd.spawn() {
            Ok(c) => break c,
            // A binary being replaced on disk (an upgrade in progress) is
            // "text file busy" for a moment; libcni retries too.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(200 * tries));
            }
            Err(e) => {
                return Err(Error::new(
                    PLUGIN_FAILURE,
                    format!("failed to run {name}: {e}"),
                ))
            }
        }
    };
    let deadline = opts.timeout.map(|t| (Instant::now() + t, t));
    let stderr = child
        .stderr
        .take()
        .map(|e| std::thread::spawn(move || forward_stderr(e)));
    let stdout = child.stdout.take().map(|mut out| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = Vec::new();
            let read = out.read_to_end(&mut buf).map(|_| buf);
            // The receiver is gone only when the wait gave up already.
            let _ = tx.send(read);
        });
        rx
    });
    let input = child.stdin.take();
    let running = Running {
        child: Some(Proc::Child(child)),
        name,
        stdout,
        stderr,
        deadline,
    };
    if let Some(mut input) = input {
        // A plugin may exit without reading stdin (VERSION does): a broken
        // pipe here is not an error of ours. Dropping `input` closes it.
        if let Err(e) = input.write_all(stdin) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                // Dropping `running` stops the half-fed plugin.
                return Err(Error::new(
                    PLUGIN_FAILURE,
                    format!("failed to write config to {}: {e}", running.name),
                ));
            }
        }
    }
    Ok(running)
}

/// Run the role `plugin` of this executable as if it had been executed:
/// `env` over our environment, `stdin` as its input, its stdout and exit
/// code collected as a process's would be, its stderr copied to ours. On a
/// new thread, which starts in the calling thread's network namespace as a
/// child process would; or, `deferred`, on the thread that waits for it,
/// when it waits.
fn start_in_process(
    plugin: &'static (dyn crate::skel::Plugin + Sync),
    name: String,
    env: &[(&str, String)],
    stdin: &[u8],
    opts: Opts,
    deferred: bool,
) -> Result<Running> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let stdin = stdin.to_vec();
    let job = move || {
        log::debug!("in-process delegate: starting");
        // As `Command::envs`: the last value given wins over ours.
        let lookup = |k: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(k).ok())
        };
        let mut stderr = StderrTail::default();
        let (code, stdout) = crate::skel::dispatch_in_process(plugin, &lookup, &stdin, &mut stderr);
        (code, stdout, stderr.0)
    };
    if deferred {
        return Ok(Running {
            child: Some(Proc::Deferred(Box::new(job))),
            name,
            stdout: None,
            stderr: None,
            deadline: None,
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // The receiver is gone only when the wait gave up already.
            let _ = tx.send(job());
        })
        .map_err(|e| Error::new(PLUGIN_FAILURE, format!("failed to run {name}: {e}")))?;
    Ok(Running {
        child: Some(Proc::Thread(rx)),
        name,
        stdout: None,
        stderr: None,
        deadline: opts.timeout.map(|t| (Instant::now() + t, t)),
    })
}

impl Drop for Running {
    /// A plugin never waited for (the caller failed first) is stopped and
    /// reaped, so none keeps running or lingers as a zombie. A thread cannot
    /// be stopped: it is let finish (within its timeout), so it never
    /// stops half-way through its files when the process exits.
    fn drop(&mut self) {
        match self.child.take() {
            Some(Proc::Child(mut child)) => {
                if let Ok(None) = child.try_wait() {
                    if let Err(e) = child.kill() {
                        log::debug!("stop {}: {e}", self.name);
                    }
                }
                if let Err(e) = child.wait() {
                    log::debug!("reap {}: {e}", self.name);
                }
            }
            Some(Proc::Thread(rx)) => {
                let limit = self.deadline.map_or(DELEGATE_TIMEOUT, |(at, _)| {
                    at.saturating_duration_since(Instant::now())
                });
                let _ = rx.recv_timeout(limit);
            }
            // Never waited for, never run, as a process never started.
            Some(Proc::Deferred(_)) | None => {}
        }
    }
}

impl Running {
    /// Wait for the plugin: its stdout on success, its CNI error on failure.
    /// With a timeout (delegates), a plugin still running when it expires is
    /// killed, and that is the error.
    pub fn wait(mut self) -> Result<Vec<u8>> {
        let name = std::mem::take(&mut self.name);
        let mut child = match self.child.take() {
            Some(Proc::Child(child)) => child,
            Some(Proc::Thread(rx)) => return self.wait_thread(rx, name),
            Some(Proc::Deferred(job)) => {
                let (code, stdout, stderr) = job();
                let status = format!("exit status: {code}");
                return outcome(&name, code == 0, &status, stdout, &stderr);
            }
            None => {
                return Err(Error::new(
                    PLUGIN_FAILURE,
                    format!("{name} was already waited for"),
                ))
            }
        };
        let failed_wait = |e: std::io::Error| {
            Error::new(PLUGIN_FAILURE, format!("failed to wait for {name}: {e}"))
        };
        // Its stdout first, to the end: it closes when the plugin exits.
        let stdout = match (self.stdout.take(), self.deadline) {
            (None, _) => Ok(Vec::new()),
            (Some(rx), None) => rx.recv().unwrap_or_else(|_| Ok(Vec::new())),
            (Some(rx), Some((at, limit))) => {
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(read) => read,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Ok(Vec::new()),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        return Err(timed_out(&mut child, &name, limit))
                    }
                }
            }
        };
        let status = match self.deadline {
            None => child.wait().map_err(failed_wait)?,
            Some((at, limit)) => match wait_until(&mut child, at).map_err(failed_wait)? {
                Some(status) => status,
                None => return Err(timed_out(&mut child, &name, limit)),
            },
        };
        let stdout = stdout.map_err(|e| {
            Error::new(
                PLUGIN_FAILURE,
                format!("failed to read the output of {name}: {e}"),
            )
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        outcome(
            &name,
            status.success(),
            &status.to_string(),
            stdout,
            &stderr,
        )
    }

    /// [`Running::wait`] for a role run on a thread of ours.
    fn wait_thread(
        &mut self,
        rx: std::sync::mpsc::Receiver<Exited>,
        name: String,
    ) -> Result<Vec<u8>> {
        let exited = match self.deadline {
            None => rx.recv().ok(),
            Some((at, limit)) => {
                match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(exited) => Some(exited),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
                    // A thread cannot be killed: it is left to finish on its own.
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        return Err(Error::new(
                            PLUGIN_FAILURE,
                            format!(
                                "{name} did not finish within {} s (the delegate timeout)",
                                limit.as_secs_f64()
                            ),
                        ))
                    }
                }
            }
        };
        // Gone without a word: it panicked past the skeleton's catch.
        let (code, stdout, stderr) = exited.unwrap_or((1, Vec::new(), Vec::new()));
        let status = format!("exit status: {code}");
        outcome(&name, code == 0, &status, stdout, &stderr)
    }
}

/// A finished plugin's answer: its stdout on success, else its CNI error,
/// else an error saying what it did print.
fn outcome(
    name: &str,
    success: bool,
    status: &str,
    stdout: Vec<u8>,
    stderr: &[u8],
) -> Result<Vec<u8>> {
    if success {
        return Ok(stdout);
    }
    if let Ok(e) = serde_json::from_slice::<Error>(&stdout) {
        return Err(e);
    }
    // No CNI error: say what the plugin did say, as libcni does.
    let said = if stdout.iter().any(|b| !b.is_ascii_whitespace()) {
        format!("; stdout: {}", String::from_utf8_lossy(&stdout).trim())
    } else {
        String::new()
    };
    let stderr = String::from_utf8_lossy(stderr);
    let stderr = if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("; stderr: {}", stderr.trim())
    };
    Err(Error::new(
        PLUGIN_FAILURE,
        format!("{name} failed ({status}) without a CNI error{said}{stderr}"),
    ))
}

/// The exit status of `child`, or `None` if it is still running at `at`.
/// Called once its stdout has closed, when it is exiting anyway: polled,
/// starting at 50 µs, so a normal exit costs no noticeable wait.
fn wait_until(
    child: &mut std::process::Child,
    at: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= at {
            return Ok(None);
        }
        std::thread::sleep(pause.min(at - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Kill and reap a plugin that ran past its timeout; the error saying so.
fn timed_out(child: &mut std::process::Child, name: &str, limit: Duration) -> Error {
    if let Err(e) = child.kill() {
        log::debug!("stop {name}: {e}");
    }
    if let Err(e) = child.wait() {
        log::debug!("reap {name}: {e}");
    }
    Error::new(
        PLUGIN_FAILURE,
        format!(
            "{name} did not finish within {} s (the delegate timeout): killed it",
            limit.as_secs_f64()
        ),
    )
}

/// Run a plugin binary with `env` added to ours and `stdin` as its input.
/// Returns its stdout on success; on failure its CNI error as it printed it.
pub fn exec(binary: &Path, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>> {
    spawn_plugin(binary, env, stdin)?.wait()
}

/// A delegate started by [`spawn`]; the caller does other work meanwhile.
pub struct Pending {
    running: Running,
    plugin_type: String,
    command: Command,
    version: Version,
}

impl Pending {
    /// Wait for the delegate; ADD returns its result.
    pub fn wait(self) -> Result<Option<CniResult>> {
        let out = self.running.wait()?;
        if self.command != Command::Add {
            return Ok(None);
        }
        CniResult::from_slice(&out, self.version)
            .map(Some)
            .map_err(|e| e.context(format!("result of {}", self.plugin_type)))
    }
}

/// Start the delegate `plugin_type` for `command` with the request's
/// environment and configuration, without waiting for it: a plugin can set
/// up its links while the IPAM process runs on another core. The delegate
/// dies with the calling thread (spawn from the thread running the verb)
/// and is killed after [`DELEGATE_TIMEOUT`].
pub fn spawn(req: &Request, plugin_type: &str, command: Command) -> Result<Pending> {
    let binary = find_in_path(plugin_type, &req.path)?;
    let opts = Opts {
        die_with_parent: true,
        timeout: Some(delegate_timeout()),
    };
    let env = req.env(command);
    let running = match crate::multicall::in_process(&binary, plugin_type) {
        Some(role) => {
            let name = binary.display().to_string();
            log::debug!("{plugin_type}: {name} is this executable: running it in-process");
            // CHECK waits for its IPAM almost at once: run it then, on
            // this thread, rather than pay for a thread's start.
            let deferred = command == Command::Check;
            start_in_process(role.plugin, name, &env, &req.config, opts, deferred)?
        }
        None => start(&binary, &env, &req.config, opts)?,
    };
    Ok(Pending {
        running,
        plugin_type: plugin_type.to_string(),
        command,
        version: Version::parse(&req.net.cni_version).unwrap_or(req.version),
    })
}

/// Run the delegate `plugin_type` for `command` with the request's
/// environment and configuration. ADD returns its result.
pub fn delegate(req: &Request, plugin_type: &str, command: Command) -> Result<Option<CniResult>> {
    spawn(req, plugin_type, command)?.wait()
}

/// ADD through the config's IPAM plugin.
pub fn ipam_add(req: &Request) -> Result<CniResult> {
    let t = ipam_type(req)?;
    delegate(req, t, Command::Add)?
        .ok_or_else(|| Error::new(PLUGIN_FAILURE, format!("{t} returned no result")))
}

/// DEL, CHECK, GC or STATUS through the config's IPAM plugin.
pub fn ipam_exec(req: &Request, command: Command) -> Result<()> {
    delegate(req, ipam_type(req)?, command).map(|_| ())
}

/// Start the config's IPAM plugin for `command` without waiting.
pub fn ipam_spawn(req: &Request, command: Command) -> Result<Pending> {
    spawn(req, ipam_type(req)?, command)
}

/// An IPAM ADD started early, so the interface work of a plugin runs while
/// the IPAM process does. [`IpamAdd::finish`] waits for its result and
/// registers its release with the ADD's rollback; if the ADD fails before
/// that, dropping it waits for the IPAM process and releases whatever it
/// reserved, so a failed ADD leaves no reservation behind.
pub struct IpamAdd {
    pending: Option<Pending>,
    req: Request,
}

/// IPAM plugins that never look at the container's interface (they hand
/// out addresses from files or config): these start before the interface
/// exists, in parallel with building it. Any other (dhcp asks for a lease
/// through the interface, and so may a third-party IPAM) starts only when
/// the plugin asks for the result, once the interface is there, as the
/// reference plugins order it.
const IPAM_WITHOUT_INTERFACE: &[&str] = &["host-local", "static"];

impl IpamAdd {
    /// Start the config's IPAM plugin, at once when it does not need the
    /// container's interface, else at [`IpamAdd::finish`]; `None` when the
    /// config has no IPAM.
    pub fn start(req: &Request) -> Result<Option<IpamAdd>> {
        let Some(ty) = req.net.ipam_type() else {
            return Ok(None);
        };
        let pending = if IPAM_WITHOUT_INTERFACE.contains(&ty) {
            Some(ipam_spawn(req, Command::Add)?)
        } else {
            None
        };
        Ok(Some(IpamAdd {
            pending,
            req: req.clone(),
        }))
    }

    /// Wait for the result (starting the IPAM plugin now if it was left to
    /// this point); from here on `undo` owns its release. The release is
    /// registered as soon as the IPAM process has succeeded, before its
    /// output is parsed: an unparsable result still reserved addresses.
    pub fn finish(mut self, undo: &mut crate::rollback::Rollback) -> Result<CniResult> {
        let pending = match self.pending.take() {
            Some(p) => p,
            None => ipam_spawn(&self.req, Command::Add)?,
        };
        let out = pending.running.wait()?;
        let req = self.req.clone();
        undo.push("release IPAM addresses", move || {
            ipam_exec(&req, Command::Del).map_err(|e| e.to_string())
        });
        CniResult::from_slice(&out, pending.version)
            .map_err(|e| e.context(format!("result of {}", pending.plugin_type)))
    }
}

impl Drop for IpamAdd {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            // The ADD failed elsewhere while IPAM ran: let it finish, then
            // give back what it took (whatever its output looks like).
            if pending.running.wait().is_ok() {
                if let Err(e) = ipam_exec(&self.req, Command::Del) {
                    log::warn!("rollback: release IPAM addresses: {e}");
                }
            }
        }
    }
}

fn ipam_type(req: &Request) -> Result<&str> {
    req.net
        .ipam_type()
        .ok_or_else(|| Error::config("ipam: missing \"type\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::parse_config;
    use std::os::unix::fs::PermissionsExt;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "cni-delegate-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fake IPAM plugin: a shell script recording its env and stdin, then
    /// printing `reply` and exiting with `rc`.
    fn fake(dir: &Path, name: &str, reply: &str, rc: i32) {
        script(
            dir,
            name,
            &format!(
                "env | grep ^CNI_ | sort > \"{d}/{name}.env\"\ncat > \"{d}/{name}.stdin\"\nprintf '%s' '{reply}'\nexit {rc}\n",
                d = dir.display()
            ),
        );
    }

    /// An executable shell script `dir/name` running `body`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn request(dir: &Path, conf: &str) -> Request {
        Request {
            command: Command::Add,
            container_id: "ctr1".into(),
            netns: Some("/run/netns/x".into()),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1".into(),
            path: vec!["/nonexistent".into(), dir.to_path_buf()],
            config: conf.as_bytes().to_vec(),
            net: parse_config(conf.as_bytes()).unwrap(),
            version: Version::V1_0_0,
        }
    }

    const CONF: &str =
        r#"{"cniVersion":"0.4.0","name":"n","type":"bridge","ipam":{"type":"fake-ipam","x":1}}"#;

    #[test]
    fn ipam_add_runs_delegate_with_same_env_and_config() {
        let t = TempDir::new("add");
        fake(
            &t.0,
            "fake-ipam",
            r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1"}]}"#,
            0,
        );
        let req = request(&t.0, CONF);
        let r = ipam_add(&req).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/24");
        let env = std::fs::read_to_string(t.0.join("fake-ipam.env")).unwrap();
        for line in [
            "CNI_COMMAND=ADD",
            "CNI_CONTAINERID=ctr1",
            "CNI_NETNS=/run/netns/x",
            "CNI_IFNAME=eth0",
            "CNI_ARGS=IgnoreUnknown=1",
        ] {
            assert!(env.lines().any(|l| l == line), "{line} in {env}");
        }
        assert_eq!(
            std::fs::read_to_string(t.0.join("fake-ipam.stdin")).unwrap(),
            CONF
        );
    }

    #[test]
    fn delegate_errors_pass_through_with_code() {
        let t = TempDir::new("err");
        fake(
            &t.0,
            "fake-ipam",
            r#"{"code":11,"msg":"no addresses","details":"range full"}"#,
            1,
        );
        let e = ipam_add(&request(&t.0, CONF)).unwrap_err();
        assert_eq!(e, Error::new(11, "no addresses").with_details("range full"));
        fake(&t.0, "fake-ipam", "garbage", 3);
        let e = ipam_exec(&request(&t.0, CONF), Command::Del).unwrap_err();
        assert_eq!(e.code, PLUGIN_FAILURE);
        assert!(e.msg.contains("garbage"), "{}", e.msg);
        let env = std::fs::read_to_string(t.0.join("fake-ipam.env")).unwrap();
        assert!(env.contains("CNI_COMMAND=DEL"));
    }

    #[test]
    fn bad_result_and_missing_plugin() {
        let t = TempDir::new("bad");
        fake(&t.0, "fake-ipam", "{\"ips\":[{\"address\":\"x\"}]}", 0);
        let e = ipam_add(&request(&t.0, CONF)).unwrap_err();
        assert_eq!(e.code, 6);
        let conf = CONF.replace("fake-ipam", "nope");
        let e = ipam_add(&request(&t.0, &conf)).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("\"nope\""));
        let e = find_in_path("../x", std::slice::from_ref(&t.0)).unwrap_err();
        assert_eq!(e.code, 7);
        let e = find_in_path("x", &[]).unwrap_err();
        assert_eq!(e.code, 4);
        let conf = r#"{"cniVersion":"1.0.0","name":"n","ipam":{}}"#;
        assert_eq!(ipam_add(&request(&t.0, conf)).unwrap_err().code, 7);
    }

    #[test]
    fn a_plugin_failing_without_a_cni_error_is_described_by_its_stderr() {
        let t = TempDir::new("stderr");
        script(
            &t.0,
            "fake-ipam",
            "cat >/dev/null\necho 'panic: runtime error' >&2\nexit 2\n",
        );
        let e = ipam_add(&request(&t.0, CONF)).unwrap_err();
        assert_eq!(e.code, PLUGIN_FAILURE);
        assert!(e.msg.contains("exit status: 2"), "{}", e.msg);
        assert!(e.msg.contains("stderr: panic: runtime error"), "{}", e.msg);
    }

    /// An IPAM plugin that succeeds with output we cannot parse has still
    /// reserved something: the rollback must send it DEL.
    #[test]
    fn an_unparsable_ipam_result_is_released() {
        let t = TempDir::new("unparsable");
        script(
            &t.0,
            "fake-ipam",
            &format!(
                "cat >/dev/null\necho \"$CNI_COMMAND\" >> \"{}/calls\"\n[ \"$CNI_COMMAND\" = ADD ] && printf '%s' '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"bad\"}}]}}'\nexit 0\n",
                t.0.display()
            ),
        );
        let req = request(&t.0, CONF);
        {
            let mut undo = crate::rollback::Rollback::new();
            let e = IpamAdd::start(&req)
                .unwrap()
                .unwrap()
                .finish(&mut undo)
                .unwrap_err();
            assert_eq!(e.code, 6, "{e}");
        } // the ADD fails: undo runs
        let calls = std::fs::read_to_string(t.0.join("calls")).unwrap();
        assert_eq!(calls, "ADD\nDEL\n");

        // Dropped before finish (the ADD failed elsewhere): an IPAM that
        // may need the interface was never started, so there is nothing to
        // give back and nothing runs.
        std::fs::remove_file(t.0.join("calls")).unwrap();
        drop(IpamAdd::start(&req).unwrap().unwrap());
        assert!(!t.0.join("calls").exists());

        // One that starts early (host-local) is waited for and released.
        std::fs::copy(t.0.join("fake-ipam"), t.0.join("host-local")).unwrap();
        let early = request(&t.0, &CONF.replace("fake-ipam", "host-local"));
        drop(IpamAdd::start(&early).unwrap().unwrap());
        let calls = std::fs::read_to_string(t.0.join("calls")).unwrap();
        assert_eq!(calls, "ADD\nDEL\n");
    }

    /// A delegate that does not answer in time is killed, and the error
    /// names it and the timeout; one that answers in time is unaffected.
    #[test]
    fn a_delegate_past_its_timeout_is_killed() {
        let t = TempDir::new("timeout");
        let pidfile = t.0.join("pid");
        let p = script(
            &t.0,
            "slow",
            &format!(
                "cat >/dev/null\necho $$ > \"{}\"\nexec sleep 30\n",
                pidfile.display()
            ),
        );
        let opts = Opts {
            die_with_parent: true,
            timeout: Some(Duration::from_millis(300)),
        };
        let started = Instant::now();
        let e = start(&p, &[], b"{}", opts).unwrap().wait().unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.code, PLUGIN_FAILURE);
        assert!(e.msg.contains(&p.display().to_string()), "{}", e.msg);
        assert!(
            e.msg
                .contains("did not finish within 0.3 s (the delegate timeout)"),
            "{}",
            e.msg
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
        // Killed and reaped: nothing of that pid runs any more.
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "{pid} still runs"
        );

        fake(&t.0, "fast", r#"{"cniVersion":"1.0.0"}"#, 0);
        let out = start(&t.0.join("fast"), &[], b"{}", opts)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(out, br#"{"cniVersion":"1.0.0"}"#);
    }

    #[test]
    fn directories_are_not_plugins() {
        let t = TempDir::new("dir");
        std::fs::create_dir(t.0.join("fake-ipam")).unwrap();
        assert!(find_in_path("fake-ipam", std::slice::from_ref(&t.0)).is_err());
    }
}
