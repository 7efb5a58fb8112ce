//! A minimal `log` backend for plugins: lines on stderr, which runtimes
//! collect, never stdout, which carries the result. The level comes from
//! `CNI_LOG_LEVEL` (`error`, `warn` (default), `info`, `debug`, `trace`).
//! At `debug` and `trace` each line starts with the milliseconds since the
//! plugin started (its logger, the first thing it sets up), so the steps of
//! a verb can be timed from its log.

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if log::max_level() >= LevelFilter::Debug {
            let ms = START.get().map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
            eprintln!("[{} {ms:8.3} ms] {}", r.level(), r.args());
        } else {
            eprintln!("[{}] {}", r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Install the logger; called by `skel::run`, once per process.
pub fn init() {
    START.get_or_init(std::time::Instant::now);
    let level = std::env::var("CNI_LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Warn);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
