//! iptables through `iptables-save` and `iptables-restore --noflush`
//! (`ip6tables-*` for IPv6), whichever variant (legacy or nft) the host
//! has on its PATH.
//!
//! One listing, then one batch applied by one process: a rule is removed
//! by its full spec as the listing printed it (`-D CHAIN <spec>`), never by
//! line number, so two DELs at once, or kube-proxy editing the same
//! chain, cannot make us delete someone else's rule. If the table changed
//! between listing and batch, the batch fails as a whole (restore commits
//! a table atomically) and is retried on a fresh listing. Absence is read
//! from the listing, never from an error message.

use crate::error::{Error, Result};
use crate::exec;
use std::fs::File;

/// One rule as `iptables-save` prints it, after `-A CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRule {
    pub chain: String,
    pub args: Vec<String>,
}

impl SavedRule {
    /// The chain it jumps to (`-j X` or `-g X`).
    pub fn target(&self) -> Option<&str> {
        self.args
            .windows(2)
            .find(|w| w[0] == "-j" || w[0] == "-g")
            .map(|w| w[1].as_str())
    }

    /// The value following `flag` (`-s`, `-d`, `--comment`, ...).
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].as_str())
    }

    /// The batch line deleting exactly this rule.
    pub fn delete_line(&self) -> String {
        line("-D", &self.chain, &self.args)
    }
}

/// A table as `iptables-save -t TABLE` printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    pub chains: Vec<String>,
    pub rules: Vec<SavedRule>,
}

impl Saved {
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }

    pub fn chain_rules<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }

    /// Batch lines removing the chain `chain` and every rule of `from`
    /// jumping to it, by the specs the listing printed.
    pub fn teardown_lines(&self, from: &str, chain: &str) -> Vec<String> {
        let mut lines: Vec<String> = self
            .chain_rules(from)
            .filter(|r| r.target() == Some(chain))
            .map(|r| r.delete_line())
            .collect();
        if self.has_chain(chain) {
            lines.push(format!("-F {chain}"));
            lines.push(format!("-X {chain}"));
        }
        lines
    }

    /// Parse `iptables-save` output for one table.
    pub fn parse(text: &str, table: &str) -> std::result::Result<Saved, String> {
        let mut saved = Saved::default();
        let mut in_table = false;
        for l in text.lines() {
            let l = l.trim_end();
            if let Some(t) = l.strip_prefix('*') {
                in_table = t == table;
            } else if !in_table || l.starts_with('#') || l.is_empty() || l == "COMMIT" {
                continue;
            } else if let Some(decl) = l.strip_prefix(':') {
                if let Some(name) = decl.split_whitespace().next() {
                    saved.chains.push(name.to_string());
                }
            } else if l.starts_with("-A ") {
                let mut words = split_words(l)?;
                if words.len() < 2 {
                    return Err(format!("rule line without chain: {l:?}"));
                }
                let args = words.split_off(2);
                saved.rules.push(SavedRule {
                    chain: words.pop().unwrap_or_default(),
                    args,
                });
            }
        }
        Ok(saved)
    }
}

/// Split a restore/save line into words as `iptables-restore` does:
/// whitespace separates, double quotes group, and inside quotes a
/// backslash takes the next character literally.
pub fn split_words(l: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for c in l.chars() {
        if quoted {
            if escaped {
                cur.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            } else {
                cur.push(c);
            }
        } else if c == '"' {
            quoted = true;
            any = true;
        } else if c.is_whitespace() {
            if any || !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
                any = false;
            }
        } else {
            cur.push(c);
        }
    }
    if quoted {
        return Err(format!("unterminated quote in {l:?}"));
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    Ok(words)
}

/// Quote a word for a restore line, the inverse of [`split_words`].
pub fn quote(w: &str) -> String {
    if !w.is_empty()
        && !w
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        return w.to_string();
    }
    let mut q = String::from("\"");
    for c in w.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// `OP CHAIN ARGS...` as a restore line.
pub fn line(op: &str, chain: &str, args: &[String]) -> String {
    let mut l = format!("{op} {}", quote(chain));
    for a in args {
        l.push(' ');
        l.push_str(&quote(a));
    }
    l
}

/// `ARGS` as owned strings.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// True when the kernel holds none of `chains` in `table`, known without
/// running iptables: the table is not among the legacy (xtables) tables of
/// this namespace (`/proc/thread-self/net/ip_tables_names`, `ip6_tables_names`), and
/// in nf_tables (where iptables-nft keeps it) either the table or each of
/// the chains is missing. False whenever the legacy table exists: only
/// the tools can read that. For a DEL with nothing left to remove (a
/// repeated DEL, or the other backend's cleanup), this spares the
/// processes that would find nothing.
pub fn chains_absent(v6: bool, table: &str, chains: &[&str]) -> Result<bool> {
    // thread-self: the calling thread's namespace (it may have entered
    // another than the process's first thread, see `Netns::run`).
    let names = if v6 {
        "/proc/thread-self/net/ip6_tables_names"
    } else {
        "/proc/thread-self/net/ip_tables_names"
    };
    match std::fs::read_to_string(names) {
        Ok(t) if t.lines().any(|l| l.trim() == table) => return Ok(false),
        Ok(_) => {}
        // No legacy module loaded: no legacy tables.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("read {names}"), &e)),
    }
    let family = if v6 {
        crate::nft::NfFamily::IP6
    } else {
        crate::nft::NfFamily::IP
    };
    for chain in chains {
        if crate::nft::chain_exists(family, table, chain)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn tool(v6: bool, what: &str) -> String {
    let base = if v6 { "ip6tables" } else { "iptables" };
    format!("{base}-{what}")
}

/// `iptables-save -t TABLE` (`ip6tables-save` when `v6`).
pub fn save(v6: bool, table: &str) -> Result<Saved> {
    let bin = tool(v6, "save");
    let what = || format!("list iptables table {table} ({bin})");
    let out = exec::run(&bin, &["-t", table], None, exec::TOOL_TIMEOUT, &what)?;
    if !out.success {
        return Err(Error::protocol(
            what(),
            format!("{bin} failed: {}", out.stderr),
        ));
    }
    Saved::parse(&out.stdout, table).map_err(|e| Error::protocol(what(), e))
}

/// Apply `lines` to `table` as one `iptables-restore --noflush` batch.
pub fn restore(v6: bool, table: &str, lines: &[String], what: &dyn Fn() -> String) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let bin = tool(v6, "restore");
    let mut doc = format!("*{table}\n");
    for l in lines {
        doc.push_str(l);
        doc.push('\n');
    }
    doc.push_str("COMMIT\n");
    let out = exec::run(
        &bin,
        &["-w", "--noflush"],
        Some(doc.as_bytes()),
        exec::TOOL_TIMEOUT,
        what,
    )?;
    if out.success {
        Ok(())
    } else {
        Err(Error::protocol(
            what(),
            format!(
                "{bin} failed: {} (batch: {})",
                out.stderr,
                doc.replace('\n', "; ")
            ),
        ))
    }
}

/// Read `table`, let `plan` turn the listing into batch lines, apply them;
/// if the batch fails (the table changed meanwhile), read again and retry.
/// Runs under [`Lock`] so that our own processes never race each other on
/// shared chains (declaring an existing chain in a `--noflush` batch
/// flushes it, so a chain is declared only when the listing lacks it).
pub fn edit(
    v6: bool,
    table: &str,
    what: &dyn Fn() -> String,
    plan: &dyn Fn(&Saved) -> Vec<String>,
) -> Result<()> {
    let _lock = Lock::take()?;
    edit_locked(v6, table, what, plan)
}

/// As [`edit`], but first tries `optimistic`: a batch that needs no listing
/// because it asserts what it relies on (`-C` of each shared rule, `-N` of
/// a chain that must not exist yet), so it applies whole or fails changing
/// nothing. Only when it fails, whatever the reason, is the table listed
/// and `plan` applied. Listing the table is what grows with the number of
/// rules (every container's); the optimistic batch does not.
pub fn edit_optimistic(
    v6: bool,
    table: &str,
    what: &dyn Fn() -> String,
    optimistic: &[String],
    plan: &dyn Fn(&Saved) -> Vec<String>,
) -> Result<()> {
    let _lock = Lock::take()?;
    match restore(v6, table, optimistic, what) {
        Ok(()) => return Ok(()),
        Err(e) if e.is_no_tool() => return Err(e),
        Err(e) => log::debug!("optimistic batch refused, listing the table: {e}"),
    }
    edit_locked(v6, table, what, plan)
}

fn edit_locked(
    v6: bool,
    table: &str,
    what: &dyn Fn() -> String,
    plan: &dyn Fn(&Saved) -> Vec<String>,
) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        let saved = save(v6, table)?;
        let lines = plan(&saved);
        match restore(v6, table, &lines, what) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_no_tool() => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::protocol(what(), "gave up after 5 attempts")))
}

/// The lock our plugins hold while they read and rewrite an iptables
/// table (`/run/cni/iptables.lock`, flock). iptables' own xtables lock is
/// taken by `iptables-restore -w` for the write itself.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

impl Lock {
    pub fn take() -> Result<Lock> {
        let dir = std::path::Path::new("/run/cni");
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), &e))?;
        let path = dir.join("iptables.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), &e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::errno(format!("lock {}", path.display()), e as i32))
    }
}

use std::os::unix::fs::OpenOptionsExt;

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Wed Dec  2 05:00:00 2026
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-2bbe0c48b91a7d1b8a6753a8 - [0:0]
-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-2bbe0c48b91a7d1b8a6753a8
-A POSTROUTING -o eth0 -j MASQUERADE
-A CNI-2bbe0c48b91a7d1b8a6753a8 -d 10.1.0.0/24 -m comment --comment "name: \"n\" id: \"c\"" -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j DROP
COMMIT
"#;

    #[test]
    fn parses_one_table() {
        let s = Saved::parse(SAVE, "nat").unwrap();
        assert_eq!(
            s.chains,
            ["PREROUTING", "POSTROUTING", "CNI-2bbe0c48b91a7d1b8a6753a8"]
        );
        assert_eq!(s.rules.len(), 3);
        let r = &s.rules[0];
        assert_eq!(r.chain, "POSTROUTING");
        assert_eq!(r.target(), Some("CNI-2bbe0c48b91a7d1b8a6753a8"));
        assert_eq!(r.value("--comment"), Some(r#"name: "n" id: "c""#));
        assert_eq!(r.value("-s"), Some("10.1.0.2/32"));
        assert_eq!(
            r.delete_line(),
            r#"-D POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-2bbe0c48b91a7d1b8a6753a8"#
        );
        assert!(Saved::parse(SAVE, "filter").unwrap().rules[0].args == ["-j", "DROP"]);
        assert_eq!(Saved::parse(SAVE, "mangle").unwrap(), Saved::default());
    }

    #[test]
    fn quoting_round_trips() {
        for w in ["plain", "", "a b", r#"q"uo"te"#, r"back\slash", "tab\there"] {
            let l = format!("x {} y", quote(w));
            assert_eq!(split_words(&l).unwrap(), ["x", w, "y"], "{l}");
        }
        assert!(split_words("a \"b").is_err());
    }
}
