//! The checks themselves, and the context they share: the host namespace,
//! the configuration template, the versions the plugin claims, and a record
//! of every failing invocation (for `no-garbage`).

use crate::call::Call;
use crate::exec::{run_in_netns, Ran};
use crate::ns::{unique, ScratchNetns};
use crate::{shape, CheckResult, Options, Outcome, Report, CHECKS};
use cni::Version;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A check's verdict before it is named.
type Verdict = (Outcome, String);

fn pass(detail: impl Into<String>) -> Verdict {
    (Outcome::Pass, detail.into())
}

fn fail(detail: impl Into<String>) -> Verdict {
    (Outcome::Fail, detail.into())
}

/// How many problems one FAIL line lists before it only counts the rest.
const MAX_LISTED: usize = 8;

/// PASS with `ok` when `problems` is empty, else FAIL listing them.
fn verdict(mut problems: Vec<String>, ok: impl Into<String>) -> Verdict {
    if problems.is_empty() {
        return pass(ok);
    }
    if problems.len() > MAX_LISTED {
        let more = problems.len() - MAX_LISTED;
        problems.truncate(MAX_LISTED);
        problems.push(format!("… and {more} more"));
    }
    fail(problems.join("; "))
}

/// A version the harness substitutes for `cniVersion` that no spec has.
const BOGUS_VERSIONS: &[&str] = &["0.9.9", "0.8.8", "9.9.9"];

struct Ctx<'o> {
    opts: &'o Options,
    host: ScratchNetns,
    cni_path: String,
    template: Map<String, Value>,
    /// `supportedVersions` as the plugin printed it.
    supported: Vec<String>,
    /// The supported versions this harness knows how to judge, oldest first.
    tested: Vec<Version>,
    /// The version for checks that run once: the newest tested one.
    primary: Version,
    /// Every invocation that exited non-zero (or abnormally), with a label.
    failures: RefCell<Vec<(String, Ran)>>,
}

/// Runs the DEL a runtime owes every ADD when dropped, unless disarmed.
/// Declare it after the container namespace it uses, so it runs first.
struct Cleanup<'c, 'o> {
    ctx: &'c Ctx<'o>,
    del: Option<Call>,
}

impl Cleanup<'_, '_> {
    fn disarm(&mut self) {
        self.del = None;
    }
}

impl Drop for Cleanup<'_, '_> {
    fn drop(&mut self) {
        if let Some(del) = self.del.take() {
            // Best effort: the verdict was already taken from the real calls.
            let _ = self.ctx.run_quiet(&del);
        }
    }
}

impl<'o> Ctx<'o> {
    /// The config template with `cniVersion` set to `version` (any string).
    fn config(&self, version: &str) -> Map<String, Value> {
        let mut m = self.template.clone();
        m.insert("cniVersion".into(), Value::from(version));
        m
    }

    fn text(m: &Map<String, Value>) -> String {
        Value::Object(m.clone()).to_string()
    }

    /// A call as a runtime would make it, with a fresh container ID.
    fn call(&self, command: &str, config: &Map<String, Value>) -> Call {
        Call::new(&self.opts.plugin, command, &Ctx::text(config))
            .cni_path(&self.cni_path)
            .ifname(&self.opts.ifname)
            .container(&unique("conformance"))
    }

    /// A throwaway container namespace.
    fn container(&self) -> ScratchNetns {
        let ns = ScratchNetns::new("conf");
        if let Some(prepare) = self.opts.prepare_container {
            prepare(ns.ns());
        }
        ns
    }

    /// Run `call` in the host namespace; a failing run is recorded for
    /// `no-garbage` under `label`.
    fn run(&self, label: &str, call: &Call) -> Ran {
        let ran = self.run_quiet(call);
        if !ran.succeeded() {
            self.failures
                .borrow_mut()
                .push((label.to_string(), ran.clone()));
        }
        ran
    }

    fn run_quiet(&self, call: &Call) -> Ran {
        run_in_netns(
            self.host.ns(),
            call.command(),
            call.config.as_bytes(),
            self.opts.timeout,
        )
    }

    /// Run an ADD and arm the DEL that undoes it (with the full environment,
    /// whatever the ADD left out) unless it failed cleanly.
    fn add<'c>(&'c self, label: &str, call: &Call) -> (Ran, Cleanup<'c, 'o>) {
        if let Some(prepare) = self.opts.prepare_host {
            prepare(self.host.ns());
        }
        let ran = self.run(label, call);
        let mut del = call.clone();
        del.command = "DEL".into();
        del.unset.clear();
        let armed = ran.status == 0 || ran.abnormal.is_some();
        (
            ran,
            Cleanup {
                ctx: self,
                del: armed.then_some(del),
            },
        )
    }
}

/// The config a runtime sends after an ADD at `version`: from 0.4.0 on it
/// carries the ADD's result as `prevResult` (when the ADD gave one).
fn with_prev(config: &Map<String, Value>, version: Version, add: &Ran) -> Map<String, Value> {
    let mut m = config.clone();
    if version >= Version::V0_4_0 && add.succeeded() {
        if let Some(prev) = add.json() {
            m.insert("prevResult".into(), prev);
        }
    }
    m
}

/// Expect a clean refusal with `code`; `Err` says what happened instead.
fn expect_code(ran: &Ran, code: u64) -> Result<shape::CniError, String> {
    if ran.abnormal.is_some() {
        return Err(format!("{}, expected code {code}", ran.describe()));
    }
    if ran.status == 0 {
        return Err(format!("exit 0, expected code {code}"));
    }
    let e = shape::error_object(&ran.stdout)
        .map_err(|why| format!("exit {}: {why}, expected code {code}", ran.status))?;
    if e.code != code {
        return Err(format!(
            "exit {}, code {} ({:?}), expected code {code}",
            ran.status, e.code, e.msg
        ));
    }
    Ok(e)
}

fn expect_success(ran: &Ran) -> Result<(), String> {
    if ran.succeeded() {
        Ok(())
    } else {
        Err(ran.describe())
    }
}

pub(crate) fn run_all(opts: &Options, mut each: impl FnMut(&CheckResult)) -> Report {
    let mut report = Report::default();
    let mut record = |name: &'static str, (outcome, detail): Verdict, report: &mut Report| {
        let c = CheckResult {
            name,
            outcome,
            detail,
        };
        each(&c);
        report.checks.push(c);
    };

    let host = match catch_unwind(|| ScratchNetns::new("conf-host")) {
        Ok(h) => h,
        Err(p) => {
            record(
                "setup",
                fail(format!(
                    "cannot create the host namespace (root needed): {}",
                    panic_text(&p)
                )),
                &mut report,
            );
            return report;
        }
    };
    let mut ctx = Ctx {
        opts,
        host,
        cni_path: opts.cni_path(),
        template: opts.config_template(),
        supported: Vec::new(),
        tested: Vec::new(),
        primary: Version::CURRENT,
        failures: RefCell::new(Vec::new()),
    };

    // VERSION first: the other checks need the list it gives.
    let v = guarded(|| version_shape(&mut ctx));
    ctx.tested = Version::ALL
        .iter()
        .copied()
        .filter(|v| ctx.supported.iter().any(|s| s == v.as_str()))
        .collect();
    ctx.primary = ctx.tested.last().copied().unwrap_or_else(|| {
        ctx.template
            .get("cniVersion")
            .and_then(Value::as_str)
            .and_then(Version::parse)
            .filter(|_| opts.config.is_some())
            .unwrap_or(Version::CURRENT)
    });
    let skipped = |name: &str| opts.skip.iter().any(|s| s == name);
    let skip_verdict = || (Outcome::Skip, "skipped by --skip-check".to_string());
    record(
        "version-shape",
        if skipped("version-shape") {
            skip_verdict()
        } else {
            v
        },
        &mut report,
    );

    type CheckFn = fn(&Ctx) -> Verdict;
    let rest: &[(&'static str, CheckFn)] = &[
        ("about", about),
        ("versions-accepted", versions_accepted),
        ("version-refused", version_refused),
        ("missing-env", missing_env),
        ("invalid-json", invalid_json),
        ("bad-container-id", bad_container_id),
        ("bad-ifname", bad_ifname),
        ("bad-network-name", bad_network_name),
        ("lifecycle", lifecycle),
        ("del-no-netns", del_no_netns),
        ("cni-path-optional", cni_path_optional),
        ("gc-status", gc_status),
        ("no-garbage", no_garbage),
    ];
    debug_assert_eq!(rest.len() + 1, CHECKS.len());
    for (name, check) in rest {
        let v = if skipped(name) {
            skip_verdict()
        } else {
            guarded(|| check(&ctx))
        };
        record(name, v, &mut report);
    }
    report
}

/// Run one check; a panic in the harness (e.g. a namespace it could not
/// make) is that check's FAIL, not the end of the run.
fn guarded(f: impl FnOnce() -> Verdict) -> Verdict {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => fail(format!("harness error: {}", panic_text(&p))),
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// 1. VERSION prints `{"cniVersion", "supportedVersions": [...]}`.
fn version_shape(ctx: &mut Ctx) -> Verdict {
    let call = ctx.call("VERSION", &ctx.config(Version::CURRENT.as_str()));
    // libcni sends exactly this on stdin.
    let call = Call {
        config: format!(r#"{{"cniVersion":"{}"}}"#, Version::CURRENT),
        ..call
    };
    let ran = ctx.run("VERSION", &call);
    if !ran.succeeded() {
        return fail(format!("VERSION: {}", ran.describe()));
    }
    match shape::version_answer(&ran.stdout) {
        Ok((own, list)) => {
            ctx.supported = list;
            let mut detail = format!(
                "cniVersion {own}, supportedVersions {}",
                ctx.supported.join(" ")
            );
            if !ctx.supported.contains(&own) {
                detail.push_str(" (its own cniVersion is not in the list)");
            }
            pass(detail)
        }
        Err((why, list)) => {
            ctx.supported = list;
            fail(format!("VERSION output: {why}"))
        }
    }
}

/// 2. No `CNI_COMMAND`: the "about" text, exit 0. The spec does not require
///    it, so anything else is informational.
fn about(ctx: &Ctx) -> Verdict {
    let call = ctx
        .call("", &ctx.config(ctx.primary.as_str()))
        .without("CNI_COMMAND");
    let ran = ctx.run_quiet(&call);
    let said = crate::exec::snippet(if ran.stderr.trim().is_empty() {
        &ran.stdout
    } else {
        &ran.stderr
    });
    if ran.succeeded() && said.is_empty() {
        pass("exit 0")
    } else if ran.succeeded() {
        pass(format!("exit 0: {said}"))
    } else {
        (
            Outcome::Info,
            format!(
                "without CNI_COMMAND: {} (the spec leaves this open)",
                ran.describe()
            ),
        )
    }
}

/// Versions listed but unknown to this harness: reported, not tested.
fn untested_note(ctx: &Ctx) -> String {
    let unknown: Vec<&str> = ctx
        .supported
        .iter()
        .filter(|s| Version::parse(s).is_none())
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        String::new()
    } else {
        format!(
            " (not tested, unknown to the harness: {})",
            unknown.join(" ")
        )
    }
}

fn versions_list(vs: &[Version]) -> String {
    vs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(" ")
}

/// 3. Every supported version: ADD succeeds, its result is that version's,
///    DEL succeeds.
fn versions_accepted(ctx: &Ctx) -> Verdict {
    if ctx.tested.is_empty() {
        return (
            Outcome::Skip,
            format!("no supported version known{}", untested_note(ctx)),
        );
    }
    let mut problems = Vec::new();
    for &v in &ctx.tested {
        let c = ctx.container();
        let config = ctx.config(v.as_str());
        let add = ctx.call("ADD", &config).netns(&c.path_str());
        let (ran, mut cleanup) = ctx.add(&format!("ADD {v}"), &add);
        if let Err(e) = expect_success(&ran) {
            problems.push(format!("{v}: ADD {e}"));
            continue;
        }
        if let Err(e) = shape::add_result(&ran.stdout, v) {
            problems.push(format!("{v}: {e}"));
        }
        let del = Call {
            command: "DEL".into(),
            config: Ctx::text(&with_prev(&config, v, &ran)),
            ..add
        };
        match expect_success(&ctx.run(&format!("DEL {v}"), &del)) {
            Ok(()) => cleanup.disarm(),
            Err(e) => problems.push(format!("{v}: DEL {e}")),
        }
    }
    verdict(
        problems,
        format!("{}{}", versions_list(&ctx.tested), untested_note(ctx)),
    )
}

/// 4. A version the plugin does not list is refused with code 1.
fn version_refused(ctx: &Ctx) -> Verdict {
    let bogus = BOGUS_VERSIONS
        .iter()
        .find(|b| !ctx.supported.iter().any(|s| s == *b))
        .copied()
        .unwrap_or("0.9.9");
    let mut versions = vec![bogus.to_string()];
    // Real versions it does not list must be refused the same way (when it
    // gave a list at all).
    if !ctx.supported.is_empty() {
        versions.extend(
            Version::ALL
                .iter()
                .filter(|v| !ctx.supported.iter().any(|s| s == v.as_str()))
                .map(|v| v.as_str().to_string()),
        );
    }
    let mut problems = Vec::new();
    for v in &versions {
        let c = ctx.container();
        let add = ctx.call("ADD", &ctx.config(v)).netns(&c.path_str());
        let (ran, mut cleanup) = ctx.add(&format!("ADD cniVersion {v}"), &add);
        // A plugin that wrongly accepted the version would refuse a DEL at
        // it too: undo with the version it does speak.
        if let Some(del) = cleanup.del.as_mut() {
            del.config = Ctx::text(&ctx.config(ctx.primary.as_str()));
        }
        if let Err(e) = expect_code(&ran, 1) {
            problems.push(format!("ADD with cniVersion {v}: {e}"));
        }
    }
    verdict(problems, format!("{} -> code 1", versions.join(" ")))
}

/// 5. Required variables missing: code 4 naming the variable; an unknown
///    verb: code 4.
fn missing_env(ctx: &Ctx) -> Verdict {
    let config = ctx.config(ctx.primary.as_str());
    let mut problems = Vec::new();
    let cases: &[(&str, &str)] = &[
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
    ];
    for (verb, var) in cases {
        let c = ctx.container();
        let call = ctx.call(verb, &config).netns(&c.path_str()).without(var);
        let label = format!("{verb} without {var}");
        let ran = if *verb == "ADD" {
            let (ran, cleanup) = ctx.add(&label, &call);
            drop(cleanup);
            ran
        } else {
            ctx.run(&label, &call)
        };
        match expect_code(&ran, 4) {
            Ok(e) if !e.msg.contains(var) => problems.push(format!(
                "{label}: code 4 but msg {:?} does not name {var}",
                e.msg
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{label}: {e}")),
        }
    }
    let c = ctx.container();
    let call = ctx.call("FROB", &config).netns(&c.path_str());
    let ran = ctx.run("CNI_COMMAND=FROB", &call);
    match expect_code(&ran, 4) {
        Ok(e) if !e.msg.contains("CNI_COMMAND") => problems.push(format!(
            "CNI_COMMAND=FROB: code 4 but msg {:?} does not name CNI_COMMAND",
            e.msg
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("CNI_COMMAND=FROB: {e}")),
    }
    verdict(
        problems,
        format!(
            "at {}: ADD w/o CNI_CONTAINERID/CNI_NETNS/CNI_IFNAME, DEL w/o CNI_CONTAINERID/CNI_IFNAME, CNI_COMMAND=FROB -> code 4 naming it",
            ctx.primary
        ),
    )
}

/// 6. Stdin that is not JSON: code 6.
fn invalid_json(ctx: &Ctx) -> Verdict {
    let mut problems = Vec::new();
    for verb in ["ADD", "DEL"] {
        let c = ctx.container();
        let mut call = ctx
            .call(verb, &ctx.config(ctx.primary.as_str()))
            .netns(&c.path_str());
        call.config = "this is { not JSON".into();
        let label = format!("{verb} with non-JSON stdin");
        let ran = ctx.run(&label, &call);
        if let Err(e) = expect_code(&ran, 6) {
            problems.push(format!("{label}: {e}"));
        }
    }
    verdict(problems, "ADD and DEL with non-JSON stdin -> code 6")
}

/// ADD with one thing wrong, for each bad value; every one must be refused
/// with `code`.
fn refuse_each(
    ctx: &Ctx,
    what: &str,
    values: &[&str],
    code: u64,
    apply: impl Fn(Call, &str) -> Call,
) -> Verdict {
    let mut problems = Vec::new();
    for bad in values {
        let c = ctx.container();
        let call = ctx
            .call("ADD", &ctx.config(ctx.primary.as_str()))
            .netns(&c.path_str());
        let call = apply(call, bad);
        let label = format!("ADD with {what} {bad:?}");
        let (ran, _cleanup) = ctx.add(&label, &call);
        if let Err(e) = expect_code(&ran, code) {
            problems.push(format!("{label}: {e}"));
        }
    }
    verdict(
        problems,
        format!(
            "{} -> code {code}",
            values
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
}

/// 7a. Container IDs outside `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: code 4 (as the
///     reference skeleton answers; libcni itself would never send them).
fn bad_container_id(ctx: &Ctx) -> Verdict {
    refuse_each(ctx, "container ID", &["bad/id", "bad id"], 4, |c, v| {
        c.container(v)
    })
}

/// 7b. Interface names the kernel or the spec forbids: code 4.
fn bad_ifname(ctx: &Ctx) -> Verdict {
    refuse_each(
        ctx,
        "CNI_IFNAME",
        &["this-is-way-too-long", "a/b", ".", "..", "a b"],
        4,
        |c, v| c.ifname(v),
    )
}

/// 7c. Network names outside the spec's pattern: code 7.
fn bad_network_name(ctx: &Ctx) -> Verdict {
    let mut problems = Vec::new();
    for bad in ["../etc", "a b"] {
        let c = ctx.container();
        let mut config = ctx.config(ctx.primary.as_str());
        config.insert("name".into(), Value::from(bad));
        let call = ctx.call("ADD", &config).netns(&c.path_str());
        let label = format!("ADD with network name {bad:?}");
        let (ran, _cleanup) = ctx.add(&label, &call);
        if let Err(e) = expect_code(&ran, 7) {
            problems.push(format!("{label}: {e}"));
        }
    }
    verdict(problems, "\"../etc\" \"a b\" -> code 7")
}

/// 8. ADD → CHECK (0.4.0+, with prevResult) → DEL → DEL again, per version.
fn lifecycle(ctx: &Ctx) -> Verdict {
    if ctx.tested.is_empty() {
        return (Outcome::Skip, "no supported version known".into());
    }
    let mut problems = Vec::new();
    for &v in &ctx.tested {
        let c = ctx.container();
        let config = ctx.config(v.as_str());
        let add = ctx.call("ADD", &config).netns(&c.path_str());
        let (ran, mut cleanup) = ctx.add(&format!("lifecycle ADD {v}"), &add);
        if let Err(e) = expect_success(&ran) {
            problems.push(format!("{v}: ADD {e}"));
            continue;
        }
        let after_add = with_prev(&config, v, &ran);
        let again = |command: &str| Call {
            command: command.into(),
            config: Ctx::text(&after_add),
            ..add.clone()
        };
        if v >= Version::V0_4_0 {
            if let Err(e) = expect_success(&ctx.run(&format!("CHECK {v}"), &again("CHECK"))) {
                problems.push(format!("{v}: CHECK after ADD {e}"));
            }
        }
        match expect_success(&ctx.run(&format!("DEL {v}"), &again("DEL"))) {
            Ok(()) => cleanup.disarm(),
            Err(e) => problems.push(format!("{v}: DEL {e}")),
        }
        if let Err(e) = expect_success(&ctx.run(&format!("second DEL {v}"), &again("DEL"))) {
            problems.push(format!("{v}: second DEL {e}"));
        }
    }
    let with_check: Vec<Version> = ctx
        .tested
        .iter()
        .copied()
        .filter(|v| *v >= Version::V0_4_0)
        .collect();
    verdict(
        problems,
        format!(
            "ADD, CHECK ({}), DEL, DEL at {}",
            if with_check.is_empty() {
                "none".to_string()
            } else {
                versions_list(&with_check)
            },
            versions_list(&ctx.tested)
        ),
    )
}

/// 9. DEL succeeds without CNI_NETNS, and with a CNI_NETNS that is gone.
fn del_no_netns(ctx: &Ctx) -> Verdict {
    let v = ctx.primary;
    let config = ctx.config(v.as_str());
    let mut problems = Vec::new();

    // The namespace is deleted between ADD and DEL, as when a container
    // died and the runtime cleans up after it.
    {
        let c = ctx.container();
        let path = c.path_str();
        let add = ctx.call("ADD", &config).netns(&path);
        let (ran, mut cleanup) = ctx.add("ADD (netns to be deleted)", &add);
        if let Err(e) = expect_success(&ran) {
            problems.push(format!("ADD before deleting the netns: {e}"));
        }
        drop(c);
        let del = Call {
            command: "DEL".into(),
            config: Ctx::text(&with_prev(&config, v, &ran)),
            ..add
        };
        match expect_success(&ctx.run("DEL with deleted netns", &del)) {
            Ok(()) => cleanup.disarm(),
            Err(e) => problems.push(format!("DEL with CNI_NETNS={path} deleted: {e}")),
        }
    }

    // No CNI_NETNS at all. The cleanup DEL (with the netns) still runs after.
    {
        let c = ctx.container();
        let add = ctx.call("ADD", &config).netns(&c.path_str());
        let (ran, _cleanup) = ctx.add("ADD (then DEL without netns)", &add);
        if let Err(e) = expect_success(&ran) {
            problems.push(format!("ADD before DEL without CNI_NETNS: {e}"));
        }
        let del = Call {
            command: "DEL".into(),
            config: Ctx::text(&with_prev(&config, v, &ran)),
            ..add
        }
        .without("CNI_NETNS");
        if let Err(e) = expect_success(&ctx.run("DEL without CNI_NETNS", &del)) {
            problems.push(format!("DEL without CNI_NETNS: {e}"));
        }
    }
    verdict(
        problems,
        format!("at {v}: DEL with CNI_NETNS unset and with a deleted netns -> exit 0"),
    )
}

/// The spec makes CNI_PATH optional for ADD; the reference skeleton
/// requires it. Reported, never judged.
fn cni_path_optional(ctx: &Ctx) -> Verdict {
    let c = ctx.container();
    let add = ctx
        .call("ADD", &ctx.config(ctx.primary.as_str()))
        .netns(&c.path_str())
        .without("CNI_PATH");
    let (ran, _cleanup) = ctx.add("ADD without CNI_PATH", &add);
    let what = if ran.succeeded() {
        "accepted (exit 0)".to_string()
    } else {
        match shape::error_object(&ran.stdout) {
            Ok(e) => format!(
                "refused with code {} ({:?}); the reference skeleton requires CNI_PATH, the spec does not",
                e.code, e.msg
            ),
            Err(_) => ran.describe(),
        }
    };
    (Outcome::Info, format!("ADD without CNI_PATH: {what}"))
}

/// 10. GC (empty valid-attachments) and STATUS, when 1.1.0 is listed.
fn gc_status(ctx: &Ctx) -> Verdict {
    if !ctx.supported.iter().any(|s| s == "1.1.0") {
        return (Outcome::Skip, "1.1.0 not in supportedVersions".into());
    }
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    // GC and STATUS take only CNI_COMMAND and CNI_PATH.
    let bare = |call: Call| {
        call.without("CNI_CONTAINERID")
            .without("CNI_NETNS")
            .without("CNI_IFNAME")
            .without("CNI_ARGS")
    };
    let mut gc_config = ctx.config("1.1.0");
    // libcni sends both names (the spec's was renamed after 1.1.0).
    gc_config.insert("cni.dev/valid-attachments".into(), Value::Array(Vec::new()));
    gc_config.insert("cni.dev/attachments".into(), Value::Array(Vec::new()));
    let ran = ctx.run("GC", &bare(ctx.call("GC", &gc_config)));
    match expect_success(&ran) {
        Ok(()) => notes.push("GC exit 0".to_string()),
        Err(e) => problems.push(format!("GC with no valid attachments: {e}")),
    }
    let ran = ctx.run("STATUS", &bare(ctx.call("STATUS", &ctx.config("1.1.0"))));
    if ran.succeeded() {
        notes.push("STATUS exit 0".into());
    } else {
        match shape::error_object(&ran.stdout) {
            Ok(e) if e.code == 50 || e.code == 51 => notes.push(format!(
                "STATUS code {} ({:?}): plugin reports itself unavailable, which is conformant",
                e.code, e.msg
            )),
            _ => problems.push(format!(
                "STATUS: {}, expected exit 0 or code 50/51",
                ran.describe()
            )),
        }
    }
    verdict(problems, notes.join(", "))
}

/// 11. Every failing invocation printed `{"code": number, "msg": string}`.
fn no_garbage(ctx: &Ctx) -> Verdict {
    let failures = ctx.failures.borrow();
    let mut problems = Vec::new();
    for (label, ran) in failures.iter() {
        if let Some(why) = &ran.abnormal {
            problems.push(format!("{label}: {why}"));
        } else if let Err(why) = shape::error_object(&ran.stdout) {
            problems.push(format!("{label}: exit {}, {why}", ran.status));
        }
    }
    verdict(
        problems,
        format!(
            "all {} failing invocations printed a JSON error with numeric code and string msg",
            failures.len()
        ),
    )
}
