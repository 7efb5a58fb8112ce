//! `dhcp daemon`: holds DHCP leases for containers. The plugin asks it over
//! a unix socket (`DHCP.Allocate`, `DHCP.Release`, see [`crate::rpc`]); it
//! acquires each lease from inside the container's namespace, renews it
//! before it runs out, stops when the interface is gone, and releases it on
//! DEL. Each lease is also a small JSON file in the state directory, so a
//! restarted daemon goes on maintaining the leases it held.
//!
//! One thread per lease sleeps until its renewal time (or until DEL wakes
//! it); one thread per connection answers the plugin. Namespaces are never
//! entered by these threads: sockets are opened inside through
//! [`cni_kernel::Netns::run`] and used from outside.

use crate::client::{now_secs, Binding, Conn, Options, Settings, Unusable};
use crate::config::{client_id, parse_duration, Conf, DEFAULT_SOCKET};
use crate::rpc::{self, CmdArgs, Reply};
use cni::{CniResult, IpConfig, Route};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where leases are kept unless `-statedir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/dhcp";

/// The daemon's flags, Go `flag` style (`-name value` or `-name=value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Flags {
    pub pidfile: Option<PathBuf>,
    pub host_prefix: String,
    pub socket_path: String,
    pub broadcast: bool,
    pub timeout: Duration,
    pub resend_max: Duration,
    pub resend_timeout: Duration,
    pub state_dir: PathBuf,
    /// Renew this long after each ACK instead of at T1 (for tests).
    pub renew_interval: Option<Duration>,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            pidfile: None,
            host_prefix: String::new(),
            socket_path: DEFAULT_SOCKET.to_string(),
            broadcast: false,
            timeout: Duration::from_secs(10),
            resend_max: Duration::from_secs(62),
            resend_timeout: Duration::from_secs(28),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            renew_interval: None,
        }
    }
}

const USAGE: &str = "usage: dhcp daemon [-socketpath PATH] [-pidfile PATH] [-hostprefix PREFIX] \
[-broadcast] [-timeout DURATION] [-resendmax DURATION] [-resendtimeout DURATION] \
[-statedir DIR] [-renewinterval DURATION]";

impl Flags {
    pub fn parse(args: &[OsString]) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
        while let Some(arg) = it.next() {
            let body = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .ok_or_else(|| format!("unexpected argument {arg:?}\n{USAGE}"))?;
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if name == "broadcast" {
                f.broadcast = match inline.as_deref() {
                    None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                    Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                    Some(v) => return Err(format!("invalid boolean value {v:?} for -broadcast")),
                };
                continue;
            }
            if name == "h" || name == "help" {
                return Err(USAGE.to_string());
            }
            const VALUED: [&str; 8] = [
                "pidfile",
                "hostprefix",
                "socketpath",
                "timeout",
                "resendmax",
                "resendtimeout",
                "statedir",
                "renewinterval",
            ];
            if !VALUED.contains(&name.as_str()) {
                return Err(format!("flag provided but not defined: -{name}\n{USAGE}"));
            }
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: -{name}\n{USAGE}"))?,
            };
            let dur = |v: &str| parse_duration(v).map_err(|e| format!("-{name}: {e}"));
            match name.as_str() {
                "pidfile" => f.pidfile = (!value.is_empty()).then(|| PathBuf::from(&value)),
                "hostprefix" => f.host_prefix = value,
                "socketpath" => {
                    f.socket_path = if value.is_empty() {
                        DEFAULT_SOCKET.to_string()
                    } else {
                        value
                    }
                }
                "timeout" => f.timeout = dur(&value)?,
                "resendmax" => f.resend_max = dur(&value)?,
                "resendtimeout" => f.resend_timeout = dur(&value)?,
                "statedir" => f.state_dir = PathBuf::from(value),
                "renewinterval" => f.renew_interval = Some(dur(&value)?).filter(|d| !d.is_zero()),
                _ => return Err(format!("flag provided but not defined: -{name}\n{USAGE}")),
            }
        }
        if let Some(p) = &f.pidfile {
            if !p.is_absolute() {
                return Err(format!(
                    "Error writing pidfile {:?}: path not absolute",
                    p.display()
                ));
            }
        }
        Ok(f)
    }
}

/// What is kept on disk for each lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub client_id: String,
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    /// The namespace path, host prefix included.
    pub netns: String,
    pub options: Options,
    pub binding: Binding,
}

impl Record {
    fn result(&self, priority: u32) -> CniResult {
        let b = &self.binding;
        CniResult {
            ips: vec![IpConfig {
                interface: None,
                address: b.address.into(),
                gateway: b.router.map(Into::into),
            }],
            routes: b
                .routes()
                .into_iter()
                .map(|(dst, gw)| {
                    let mut r = Route::new(dst.into(), gw.map(Into::into));
                    r.priority = (priority != 0).then_some(priority);
                    r
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// A lease being maintained by its thread.
struct Lease {
    record: Mutex<Record>,
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// Sleep until `at` (seconds since the epoch); true when told to stop.
    fn sleep_until(&self, at: u64) -> bool {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *stop {
                return true;
            }
            let now = now_secs();
            if now >= at {
                return false;
            }
            stop = self
                .wake
                .wait_timeout(stop, Duration::from_secs(at - now))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Daemon {
    leases: Mutex<HashMap<String, Arc<Lease>>>,
    flags: Flags,
    settings: Settings,
}

fn file_name(client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(client_id.as_bytes());
    format!(
        "{}.json",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl Daemon {
    fn path_of(&self, client_id: &str) -> PathBuf {
        self.flags.state_dir.join(file_name(client_id))
    }

    /// Write `r` atomically (a temporary file renamed into place).
    fn save(&self, r: &Record) -> Result<(), String> {
        let path = self.path_of(&r.client_id);
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(r).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("save lease {}: {e}", path.display()))
    }

    fn forget(&self, client_id: &str) {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id);
        let path = self.path_of(client_id);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("remove {}: {e}", path.display());
            }
        }
    }

    fn get(&self, client_id: &str) -> Option<Arc<Lease>> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(client_id)
            .cloned()
    }

    /// Get a lease, retrying with growing gaps for up to `-resendtimeout`.
    fn acquire(
        &self,
        netns: &str,
        ifname: &str,
        id: &str,
        opts: &Options,
    ) -> Result<Binding, String> {
        let deadline = Instant::now() + self.flags.resend_timeout;
        let mut gap = Duration::from_secs(1);
        loop {
            let attempt = Conn::open(netns, ifname, id, &self.settings, self.settings.timeout)
                .map_err(|e| (matches!(e, Unusable::Gone(_)), e.to_string()))
                .and_then(|c| c.acquire(opts).map_err(|e| (false, e)));
            match attempt {
                Ok(b) => return Ok(b),
                Err((gone, e)) if gone || Instant::now() + gap > deadline => {
                    return Err(format!("{id}: {e}"))
                }
                Err((_, e)) => {
                    log::warn!("{id}: {e}; retrying in {gap:?}");
                    std::thread::sleep(gap);
                    gap = (gap * 2).min(self.flags.resend_max);
                }
            }
        }
    }

    fn allocate(self: &Arc<Self>, args: CmdArgs) -> Result<CniResult, String> {
        let conf = Conf::parse(&args.stdin_data)?;
        let opts = conf.options(&args.args)?;
        let id = client_id(&args.container_id, &conf.network, &args.ifname);
        if let Some(lease) = self.get(&id) {
            // Already held (a repeated ADD, or CHECK): the lease as it is.
            log::info!("{id}: checking lease");
            return Ok(lease.record().result(conf.priority));
        }
        log::info!("{id}: acquiring lease");
        let netns = format!("{}{}", self.flags.host_prefix, args.netns);
        let binding = self.acquire(&netns, &args.ifname, &id, &opts)?;
        log::info!(
            "{id}: lease acquired: {}, expires in {} s",
            binding.address,
            binding.lease_secs
        );
        let record = Record {
            client_id: id.clone(),
            container_id: args.container_id,
            network: conf.network.clone(),
            ifname: args.ifname,
            netns,
            options: opts,
            binding,
        };
        self.save(&record)?;
        let result = record.result(conf.priority);
        self.start(record);
        Ok(result)
    }

    fn release(&self, args: CmdArgs) -> Result<(), String> {
        let conf = Conf::parse(&args.stdin_data)?;
        let id = client_id(&args.container_id, &conf.network, &args.ifname);
        self.stop(&id);
        Ok(())
    }

    /// Stop maintaining `id`: its thread sends DHCPRELEASE and ends.
    fn stop(&self, id: &str) {
        if let Some(lease) = self.get(id) {
            *lease.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
            lease.wake.notify_all();
            let handle = lease
                .thread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = handle {
                if h.join().is_err() {
                    log::error!("{id}: lease thread panicked");
                }
            }
        }
        self.forget(id);
    }

    /// GC (ours; the reference daemon has no such method): release every
    /// lease of the network whose attachment is not in the valid list.
    fn gc(&self, args: CmdArgs) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Att {
            #[serde(rename = "containerID")]
            container_id: String,
            ifname: String,
        }
        let conf = Conf::parse(&args.stdin_data)?;
        let v: serde_json::Value =
            serde_json::from_slice(&args.stdin_data).map_err(|e| e.to_string())?;
        let valid: Vec<Att> = ["cni.dev/valid-attachments", "cni.dev/attachments"]
            .iter()
            .find_map(|k| v.get(*k).filter(|l| !l.is_null()))
            .map(|l| serde_json::from_value(l.clone()).map_err(|e| e.to_string()))
            .transpose()?
            .unwrap_or_default();
        let stale: Vec<String> = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|l| l.record())
            .filter(|r| {
                r.network == conf.network
                    && !valid
                        .iter()
                        .any(|a| a.container_id == r.container_id && a.ifname == r.ifname)
            })
            .map(|r| r.client_id)
            .collect();
        for id in stale {
            log::info!("{id}: not a valid attachment, releasing");
            self.stop(&id);
        }
        Ok(())
    }

    fn start(self: &Arc<Self>, record: Record) {
        let id = record.client_id.clone();
        let lease = Arc::new(Lease {
            record: Mutex::new(record),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let me = Arc::clone(self);
        let l = Arc::clone(&lease);
        let handle = std::thread::spawn(move || me.maintain(&l));
        *lease.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, lease);
    }

    /// The lease's life: renew at T1 (unicast), rebind at T2 (broadcast),
    /// give up at expiry; stop when the interface is gone; release on stop.
    fn maintain(&self, lease: &Lease) {
        let mut next = {
            let r = lease.record();
            self.renew_time(&r.binding)
        };
        loop {
            if lease.sleep_until(next) {
                let r = lease.record();
                log::info!("{}: releasing lease", r.client_id);
                match Conn::open(
                    &r.netns,
                    &r.ifname,
                    &r.client_id,
                    &self.settings,
                    Duration::ZERO,
                ) {
                    Ok(c) => {
                        if let Err(e) = c.release(&r.binding) {
                            log::warn!("{}: failed to release DHCP lease: {e}", r.client_id);
                        }
                    }
                    Err(e) => log::info!("{}: not released: {e}", r.client_id),
                }
                return;
            }
            let r = lease.record();
            let now = now_secs();
            let rebinding = now >= r.binding.rebind_at();
            let outcome = match Conn::open(
                &r.netns,
                &r.ifname,
                &r.client_id,
                &self.settings,
                Duration::ZERO,
            ) {
                Err(Unusable::Gone(e)) => {
                    log::info!(
                        "{}: interface gone, no longer maintaining the lease: {e}",
                        r.client_id
                    );
                    self.forget(&r.client_id);
                    return;
                }
                Err(Unusable::Other(e)) => Err(e),
                Ok(c) => {
                    log::info!(
                        "{}: {} lease",
                        r.client_id,
                        if rebinding { "rebinding" } else { "renewing" }
                    );
                    c.renew(&r.binding, &r.options, rebinding)
                }
            };
            match outcome {
                Ok(b) => {
                    log::info!(
                        "{}: lease renewed, expires in {} s",
                        r.client_id,
                        b.lease_secs
                    );
                    next = self.renew_time(&b);
                    let mut rec = lease.record.lock().unwrap_or_else(|e| e.into_inner());
                    rec.binding = b;
                    if let Err(e) = self.save(&rec) {
                        log::warn!("{e}");
                    }
                }
                Err(e) if now_secs() >= r.binding.expires_at() => {
                    log::warn!(
                        "{}: {e}; lease expired, setting the interface down",
                        r.client_id
                    );
                    down(&r);
                    self.forget(&r.client_id);
                    return;
                }
                Err(e) => {
                    let until = if rebinding {
                        r.binding.expires_at()
                    } else {
                        r.binding.rebind_at()
                    };
                    let wait = (until.saturating_sub(now_secs()) / 2)
                        .clamp(1, self.flags.resend_max.as_secs().max(1));
                    log::warn!("{}: {e}; retrying in {wait} s", r.client_id);
                    next = now_secs() + wait;
                }
            }
        }
    }

    fn renew_time(&self, b: &Binding) -> u64 {
        match self.flags.renew_interval {
            Some(d) => b.bound_at + d.as_secs().max(1),
            None => b.renew_at(),
        }
    }
}

/// Set the interface down once its lease has expired, as the reference does.
fn down(r: &Record) {
    let result = cni_kernel::Netns::open(&r.netns)
        .and_then(|ns| cni_kernel::Netlink::open_in(&ns))
        .and_then(|mut nl| {
            let link = nl.link_by_name(&r.ifname)?;
            nl.set_down(link.index)
        });
    if let Err(e) = result {
        log::warn!("{}: failed to set {} down: {e}", r.client_id, r.ifname);
    }
}

/// Bind the socket; a leftover file nobody listens on is replaced.
fn listen(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use: is another dhcp daemon running?",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("remove stale {}: {e}", path.display()))?;
    }
    UnixListener::bind(path).map_err(|e| format!("Error getting listener: {}: {e}", path.display()))
}

/// Load the leases kept on disk and resume maintaining those whose
/// namespace is still there.
fn resume(d: &Arc<Daemon>) -> Result<(), String> {
    let dir = &d.flags.state_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let record: Record = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(r) => r,
            Err(e) => {
                log::warn!("skipping lease file {}: {e}", path.display());
                continue;
            }
        };
        if !Path::new(&record.netns).exists() || now_secs() >= record.binding.expires_at() {
            log::info!(
                "{}: namespace gone or lease expired, dropping it",
                record.client_id
            );
            d.forget(&record.client_id);
            continue;
        }
        log::info!(
            "{}: resuming lease {}",
            record.client_id,
            record.binding.address
        );
        d.start(record);
    }
    Ok(())
}

static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// `dhcp daemon [flags]`: the whole daemon process; returns its exit code.
pub fn daemon_main(args: Vec<OsString>) -> i32 {
    cni::logger::init();
    if std::env::var_os("CNI_LOG_LEVEL").is_none() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let flags = match Flags::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match run(flags) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn run(flags: Flags) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    // Block the stop signals in every thread (threads inherit the mask);
    // one thread waits for them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals
        .thread_block()
        .map_err(|e| format!("block signals: {e}"))?;

    if let Some(p) = &flags.pidfile {
        std::fs::write(p, std::process::id().to_string())
            .map_err(|e| format!("Error writing pidfile {:?}: {e}", p.display()))?;
    }
    let socket = PathBuf::from(format!("{}{}", flags.host_prefix, flags.socket_path));
    let listener = listen(&socket)?;
    let daemon = Arc::new(Daemon {
        leases: Mutex::new(HashMap::new()),
        settings: Settings {
            timeout: flags.timeout,
            resend_max: flags.resend_max,
            broadcast: flags.broadcast,
        },
        flags: flags.clone(),
    });
    resume(&daemon)?;
    log::info!("listening on {}", socket.display());

    let wake_path = socket.clone();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            log::info!("{sig}: shutting down; leases stay on disk");
        }
        SHUTDOWN.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&wake_path);
    });

    for conn in listener.incoming() {
        if SHUTDOWN.load(Ordering::SeqCst) {
            break;
        }
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                log::warn!("accept: {e}");
                continue;
            }
        };
        let d = Arc::clone(&daemon);
        std::thread::spawn(move || {
            let handle = |method: &str, args: CmdArgs| -> Result<Reply, String> {
                match method {
                    rpc::ALLOCATE => d.allocate(args).map(Reply::Result),
                    rpc::RELEASE => d.release(args).map(|()| Reply::Empty),
                    rpc::GC => d.gc(args).map(|()| Reply::Empty),
                    other => Err(format!("rpc: can't find method {other}")),
                }
            };
            if let Err(e) = rpc::serve(conn, &handle) {
                log::debug!("connection: {e}");
            }
        });
    }
    for path in [Some(&socket), flags.pidfile.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("remove {}: {e}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, String> {
        Flags::parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn flags_as_gos_flag_package_reads_them() {
        assert_eq!(parse(&[]).unwrap(), Flags::default());
        let f = parse(&[
            "-socketpath",
            "/tmp/d.sock",
            "--timeout=3s",
            "-broadcast",
            "-resendmax",
            "5s",
            "-resendtimeout=1m",
            "-hostprefix",
            "/host",
            "-pidfile=/run/d.pid",
            "-statedir",
            "/tmp/s",
            "-renewinterval",
            "2s",
        ])
        .unwrap();
        assert_eq!(f.socket_path, "/tmp/d.sock");
        assert_eq!(f.timeout, Duration::from_secs(3));
        assert!(f.broadcast);
        assert_eq!(f.resend_max, Duration::from_secs(5));
        assert_eq!(f.resend_timeout, Duration::from_secs(60));
        assert_eq!(f.host_prefix, "/host");
        assert_eq!(f.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(f.renew_interval, Some(Duration::from_secs(2)));
        assert!(parse(&["-pidfile", "rel.pid"])
            .unwrap_err()
            .contains("not absolute"));
        assert!(parse(&["-nosuch"]).unwrap_err().contains("not defined"));
        assert!(parse(&["-timeout"])
            .unwrap_err()
            .contains("needs an argument"));
        assert!(!parse(&["-broadcast=false"]).unwrap().broadcast);
    }

    #[test]
    fn results_carry_priority_on_every_route() {
        let r = Record {
            client_id: "c/n/eth0".into(),
            container_id: "c".into(),
            network: "n".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            options: Options::default(),
            binding: Binding {
                address: "10.249.0.9/16".parse().unwrap(),
                router: Some("10.249.0.1".parse().unwrap()),
                server: "10.249.0.1".parse().unwrap(),
                lease_secs: 120,
                renew_secs: 60,
                rebind_secs: 102,
                classless_routes: Vec::new(),
                static_routes: vec![("10.0.0.0".parse().unwrap(), "10.249.0.2".parse().unwrap())],
                bound_at: 1000,
            },
        };
        let res = r.result(30);
        assert_eq!(res.ips[0].address.to_string(), "10.249.0.9/16");
        assert_eq!(res.routes.len(), 2);
        assert_eq!(res.routes[0].dst.to_string(), "10.0.0.0/8");
        assert!(res.routes.iter().all(|rt| rt.priority == Some(30)));
        assert_eq!(r.result(0).routes[1].priority, None);
        // The record survives a trip through its file format.
        let back: Record = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
