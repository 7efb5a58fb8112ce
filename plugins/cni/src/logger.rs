//! A minimal `log` backend for plugins: lines on stderr, which runtimes
//! collect, never stdout, which carries the result. The level comes from
//! `CNI_LOG_LEVEL` (`error`, `warn` (default), `info`, `debug`, `trace`).

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Install the logger; called by `skel::run`, once per process.
pub fn init() {
    let level = std::env::var("CNI_LOG_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(LevelFilter::Warn);
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
