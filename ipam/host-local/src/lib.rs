//! host-local IPAM: hands out addresses from configured ranges and records
//! each reservation as a file, in exactly the reference plugin's format, so
//! this binary and the reference can replace each other on a live node.
//!
//! * [`ip`]: address maths (the only place it lives);
//! * [`range`]: ranges, range sets, defaults, the round-robin order;
//! * [`config`]: the configuration, validated;
//! * [`store`]: the reference-compatible files and the lock;
//! * [`index`]: a rebuildable cache that keeps ADD and DEL cheap at scale;
//! * this module: the verbs.
//!
//! Error codes: 7 invalid configuration (also a requested address outside
//! every range, or the gateway), 4 bad `CNI_ARGS` (a conflicting repeated
//! `IP` included), 100 the data directory (I/O, or a network directory that
//! is a symbolic link), and the plugin-specific codes below. The reference
//! reports all of these as 999.

pub mod config;
pub mod index;
pub mod range;
pub mod store;

use cni::ip;
use cni::skel::Attachment;
use cni::{CniResult, Error, IpConfig, Plugin, Request, Result};
use config::Config;
use index::Index;
use std::collections::BTreeSet;
use std::net::IpAddr;
use store::{Owner, Store};

/// The data directory could not be read or written.
pub const ERR_STORE: u32 = cni::error::PLUGIN_FAILURE;
/// A range set has no free address left.
pub const ERR_EXHAUSTED: u32 = 101;
/// A requested address is held by someone else.
pub const ERR_UNAVAILABLE: u32 = 102;
/// The container already holds an address on this interface (a second ADD).
pub const ERR_DUPLICATE: u32 = 103;
/// CHECK: the container's reservation is missing or differs from `prevResult`.
pub const ERR_NOT_FOUND: u32 = 104;

/// The plugin, for `cni::skel::run`.
pub struct HostLocal;

impl Plugin for HostLocal {
    fn name(&self) -> &str {
        "host-local"
    }

    fn add(&self, req: &Request) -> Result<CniResult> {
        let cfg = Config::from_request(req, true)?;
        allocate(&cfg, &req.container_id, &req.ifname)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let cfg = Config::from_request(req, false)?;
        // The runtime's record of what ADD returned: a hint only, checked
        // against the files; a malformed one must not make DEL fail.
        let hints: Vec<IpAddr> = match req.net.prev_result() {
            Ok(Some(r)) => r
                .ips
                .iter()
                .map(|c| ip::canonical(c.address.addr()))
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                log::warn!("ignoring unreadable prevResult on DEL: {e}");
                Vec::new()
            }
        };
        release(&cfg, &req.container_id, &req.ifname, &hints).map(|_| ())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let cfg = Config::from_request(req, false)?;
        let prev = req.net.prev_result()?.map(|r| {
            r.ips
                .iter()
                .map(|c| ip::canonical(c.address.addr()))
                .collect::<Vec<_>>()
        });
        check(&cfg, &req.container_id, &req.ifname, prev.as_deref())
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let cfg = Config::from_request(req, false)?;
        // Without a list (neither `cni.dev/valid-attachments` nor the older
        // `cni.dev/attachments`, or `null`) nothing is known to be stale:
        // release nothing. Only an explicit list, empty included, says which
        // attachments are still valid. Guessing "all stale" here would free
        // the addresses of running containers.
        match req.valid_attachments()? {
            Some(keep) => gc(&cfg, &keep).map(|_| ()),
            None => {
                log::info!("gc: no cni.dev/valid-attachments list: nothing released");
                Ok(())
            }
        }
    }

    fn status(&self, req: &Request) -> Result<()> {
        let cfg = Config::from_request(req, false)?;
        status(&cfg)
    }
}

/// ADD: one address per range set for `(id, ifname)`, all under one lock;
/// on any failure nothing taken by this call is left reserved.
pub fn allocate(cfg: &Config, id: &str, ifname: &str) -> Result<CniResult> {
    let store = Store::open(&cfg.data_dir, &cfg.name)?;
    log::debug!("host-local ADD: store locked");
    let mut idx = Index::load(&store, &cfg.range_sets)?;
    let held = holdings(&store, &mut idx, id, ifname)?;
    if let Some(a) = held
        .iter()
        .find(|a| cfg.range_sets.iter().any(|s| s.contains(**a)))
    {
        return Err(Error::new(
            ERR_DUPLICATE,
            format!(
                "{a} has been allocated to {id} (interface {ifname}), duplicate allocation is not allowed"
            ),
        ));
    }

    idx.begin()?;
    let mut taken = Vec::new();
    // The round-robin cursors move only once every range set has its
    // address: a failed ADD leaves none of them written.
    // Nothing is fsynced: a host crash ends every container whose
    // reservation it could lose, and what it can leave behind is caught by
    // the files themselves (a reservation linked with no content yet is an
    // unknown owner that GC releases; the index's stamp carries the boot
    // ID). An fsync costs a journal commit, milliseconds on every ADD of a
    // busy node (bench/bridge.py: bridge ADD 3.6 ms without, 6.9 ms with).
    let result = take_all(cfg, &store, &mut idx, id, ifname, &mut taken).and_then(|ips| {
        log::debug!("host-local ADD: addresses reserved");
        set_cursors(&store, &taken).map(|()| ips)
    });
    cni::fault::point("host-local:cursors-written");
    store.unstage();
    match result {
        Ok(ips) => {
            // The addresses are ours and on disk; the index is only a cache.
            // If it cannot be sealed it stays unsealed, and the next run
            // rebuilds it from the files: not a reason to fail the ADD and
            // leave the reservations behind.
            if let Err(e) = idx.seal() {
                log::warn!("index update after ADD: {e}; it will be rebuilt");
            }
            log::debug!("host-local ADD: done");
            Ok(CniResult {
                interfaces: Vec::new(),
                ips,
                routes: cfg.routes.clone(),
                dns: cfg.dns.clone(),
            })
        }
        Err(e) => {
            for a in &taken {
                if let Err(re) = store.release(*a) {
                    log::error!("undo reservation of {a}: {re}");
                }
            }
            // Leave the index unsealed if the undo fails: the next run rebuilds it.
            if let Err(ie) = idx.remove(id, &taken) {
                idx.poison(&ie);
            }
            if let Err(ie) = idx.seal() {
                log::warn!("index update after failed ADD: {ie}");
            }
            Err(e)
        }
    }
}

fn take_all(
    cfg: &Config,
    store: &Store,
    idx: &mut Index,
    id: &str,
    ifname: &str,
    taken: &mut Vec<IpAddr>,
) -> Result<Vec<IpConfig>> {
    let owner = Owner {
        id: id.to_string(),
        ifname: Some(ifname.to_string()),
    };
    let mut ips = Vec::with_capacity(cfg.range_sets.len());
    for (si, set) in cfg.range_sets.iter().enumerate() {
        let a = match &cfg.requested[si] {
            Some(r) => {
                if !store.reserve(r.ip, id, ifname)? {
                    return Err(Error::new(
                        ERR_UNAVAILABLE,
                        format!(
                            "failed to allocate for range {si}: requested IP address {} ({}) is not available in range set {set}",
                            r.ip, r.source
                        ),
                    ));
                }
                r.ip
            }
            None => find_free(store, idx, set, si, id, ifname)?.ok_or_else(|| {
                Error::new(
                    ERR_EXHAUSTED,
                    format!(
                        "failed to allocate for range {si}: no IP addresses available in range set: {set}"
                    ),
                )
            })?,
        };
        taken.push(a);
        // The index is a cache: failing to record the address must neither
        // fail the ADD nor keep the address (it is in `taken` already).
        if let Err(e) = idx.add(a, &owner) {
            idx.poison(&e);
        }
        // Every address handed out lies in one range of this set.
        let range = set
            .range_for(a)
            .map(|(_, r)| r)
            .ok_or_else(|| Error::plugin(format!("internal: {a} outside range set {set}")))?;
        ips.push(IpConfig {
            interface: None,
            address: range.with_prefix(a),
            gateway: Some(range.gateway),
        });
    }
    Ok(ips)
}

/// Write `last_reserved_ip.N` for every address of `taken` (one per range
/// set, in order), as the reference does after each reservation. If one
/// write fails, the cursors already written get their old content back (or
/// are removed if they did not exist), so the failed ADD changes nothing.
fn set_cursors(store: &Store, taken: &[IpAddr]) -> Result<()> {
    let mut before = Vec::with_capacity(taken.len());
    for (si, a) in taken.iter().enumerate() {
        let written = store.read_cursor(si).and_then(|old| {
            // Noted before the write: a failed write may be half done too.
            before.push((si, old));
            store.set_last_reserved(si, *a)
        });
        if let Err(e) = written {
            restore_cursors(store, before);
            return Err(e);
        }
    }
    Ok(())
}

fn restore_cursors(store: &Store, before: Vec<(usize, Option<Vec<u8>>)>) {
    for (si, old) in before.into_iter().rev() {
        if let Err(re) = store.restore_cursor(si, old.as_deref()) {
            log::error!("restore last_reserved_ip.{si}: {re}");
        }
    }
}

/// The first free address of range set `si`, in the reference's order.
///
/// Once `store.reserve` has succeeded nothing here can fail: the index
/// only advises, and an index that cannot be read or updated is poisoned
/// (rebuilt by the next run), never a reason to return an error while
/// holding an address the caller does not know about.
fn find_free(
    store: &Store,
    idx: &mut Index,
    set: &range::RangeSet,
    si: usize,
    id: &str,
    ifname: &str,
) -> Result<Option<IpAddr>> {
    let last = store.last_reserved(si);
    let mut skipped = false;
    for (_, a) in set.candidates(last) {
        if maybe_held(idx, a) {
            skipped = true;
            continue;
        }
        if store.reserve(a, id, ifname)? {
            return Ok(Some(a));
        }
        // A file the index did not know: the index is incomplete.
        idx.surprise(a);
    }
    // The index only lets us skip addresses; before calling the set
    // exhausted, try the skipped ones for real.
    if skipped {
        for (_, a) in set.candidates(last) {
            if maybe_held(idx, a) && store.reserve(a, id, ifname)? {
                // Its bit was set although the address was free.
                idx.surprise(a);
                return Ok(Some(a));
            }
        }
    }
    Ok(None)
}

/// The index's advice on `a`; an index that cannot answer says "try it"
/// and is poisoned.
fn maybe_held(idx: &mut Index, a: IpAddr) -> bool {
    match idx.maybe_held(a) {
        Ok(held) => held,
        Err(e) => {
            idx.poison(&e);
            false
        }
    }
}

/// The addresses `(id, ifname)` holds, each confirmed by its file. As in the
/// reference, files holding only the container ID count when no file holds
/// the full `id\r\nifname`.
fn holdings(store: &Store, idx: &mut Index, id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
    for attempt in 0..2 {
        let entries = idx.entries(id)?;
        let full: Vec<_> = entries
            .iter()
            .filter(|e| e.owner.is(id, ifname, false))
            .collect();
        let chosen = if full.is_empty() {
            entries
                .iter()
                .filter(|e| e.owner.is(id, ifname, true))
                .collect()
        } else {
            full
        };
        let mut confirmed = Vec::new();
        let mut consistent = true;
        for e in chosen {
            match store.owner(e.ip)? {
                Some(o) if o == e.owner => confirmed.push(e.ip),
                _ => consistent = false,
            }
        }
        if consistent || attempt == 1 {
            return Ok(confirmed);
        }
        log::warn!("index disagrees with the address files; rebuilding it");
        idx.rebuild(None)?;
    }
    Ok(Vec::new())
}

/// [`holdings`] read from the address files alone, without the index.
fn holdings_in_files(store: &Store, id: &str, ifname: &str) -> Result<Vec<IpAddr>> {
    let all = store.scan()?;
    let pick = |legacy: bool| -> Vec<IpAddr> {
        all.iter()
            .filter(|(_, o)| o.is(id, ifname, legacy))
            .map(|(a, _)| *a)
            .collect()
    };
    let full = pick(false);
    Ok(if full.is_empty() { pick(true) } else { full })
}

/// DEL: release every address of `(id, ifname)`. Nothing held is success.
/// `hints` (from `prevResult`) let DEL skip a full scan when someone else
/// changed the directory since our index was last right.
pub fn release(cfg: &Config, id: &str, ifname: &str, hints: &[IpAddr]) -> Result<Vec<IpAddr>> {
    let Some(store) = Store::open_existing(&cfg.data_dir, &cfg.name)? else {
        return Ok(Vec::new());
    };
    let mut idx = Index::open(&store, &cfg.range_sets)?;
    let mut released = Vec::new();

    if !idx.is_fresh() && !hints.is_empty() {
        idx.begin()?;
        for a in hints {
            let mine = store.owner(*a)?.is_some_and(|o| o.is(id, ifname, false));
            if mine && store.release(*a)? {
                released.push(*a);
            }
        }
        // Each ADD takes one address per range set. If the hints gave one in
        // every set, nothing else can be ours: skip the scan. The index stays
        // unsealed, so the next run rebuilds it.
        let covered = cfg
            .range_sets
            .iter()
            .all(|s| released.iter().any(|a| s.contains(*a)));
        if covered {
            return Ok(released);
        }
    }

    let held = match idx
        .ensure_fresh()
        .and_then(|()| holdings(&store, &mut idx, id, ifname))
    {
        Ok(held) => held,
        // The index is a cache: one that cannot be rebuilt (a full disk:
        // its files need space, removing reservations does not) must not
        // keep DEL from releasing. The files say what is held.
        Err(e) => {
            idx.poison(&e);
            holdings_in_files(&store, id, ifname)?
        }
    };
    if held.is_empty() {
        // The index knows nothing of it. A reservation another host-local
        // made within the same clock tick as our last index update does not
        // change the stamp; prevResult's addresses are checked against their
        // files directly, so such a reservation is still released.
        for a in hints {
            let mine = store.owner(*a)?.is_some_and(|o| o.is(id, ifname, false));
            if mine && store.release(*a)? {
                released.push(*a);
            }
        }
        return Ok(released);
    }
    idx.begin()?;
    let mut errors = Vec::new();
    let mut done = Vec::new();
    for a in held {
        match store.release(a) {
            Ok(_) => done.push(a),
            Err(e) => errors.push(e.msg),
        }
    }
    // The files are gone; the index only has to catch up, or be rebuilt.
    if let Err(e) = idx.remove(id, &done) {
        idx.poison(&e);
    }
    if let Err(e) = idx.seal() {
        log::warn!("index update after DEL: {e}; it will be rebuilt");
    }
    released.append(&mut done);
    if errors.is_empty() {
        Ok(released)
    } else {
        Err(Error::new(ERR_STORE, errors.join("; ")))
    }
}

/// CHECK: `(id, ifname)` holds an address, and (with a `prevResult`) holds
/// exactly the addresses of our range sets that `prevResult` lists.
pub fn check(cfg: &Config, id: &str, ifname: &str, prev: Option<&[IpAddr]>) -> Result<()> {
    let not_found = || {
        Error::new(
            ERR_NOT_FOUND,
            format!("host-local: Failed to find address added by container {id}"),
        )
    };
    let store = Store::open_existing(&cfg.data_dir, &cfg.name)?.ok_or_else(not_found)?;
    let mut idx = Index::load(&store, &cfg.range_sets)?;
    let held = holdings(&store, &mut idx, id, ifname)?;
    if held.is_empty() {
        return Err(not_found());
    }
    let Some(prev) = prev else {
        return Ok(());
    };
    let ours = |a: &IpAddr| cfg.range_sets.iter().any(|s| s.contains(*a));
    let want: BTreeSet<IpAddr> = prev.iter().copied().filter(ours).collect();
    let have: BTreeSet<IpAddr> = held.iter().copied().filter(ours).collect();
    if let Some(a) = want.difference(&have).next() {
        return Err(Error::new(
            ERR_NOT_FOUND,
            format!(
                "host-local: {a} from prevResult is not reserved for container {id} interface {ifname}"
            ),
        ));
    }
    if let Some(a) = have.difference(&want).next() {
        return Err(Error::new(
            ERR_NOT_FOUND,
            format!(
                "host-local: container {id} interface {ifname} holds {a}, which prevResult does not list"
            ),
        ));
    }
    Ok(())
}

/// GC: release every reservation not held by one of `keep` (an explicit
/// list, possibly empty; without a list the verb releases nothing and this
/// is not called). Files holding only a container ID stay if any kept
/// attachment has that ID; files whose owner is unknown (empty, or a
/// symbolic link) are stale. `lock`, `last_reserved_ip.*`, the staging file
/// and anything not named like an address are never touched. Returns what
/// was released.
pub fn gc(cfg: &Config, keep: &[Attachment]) -> Result<Vec<IpAddr>> {
    let Some(store) = Store::open_existing(&cfg.data_dir, &cfg.name)? else {
        return Ok(Vec::new());
    };
    let mut idx = Index::open(&store, &cfg.range_sets)?;
    idx.begin()?;
    // An owner nothing names (an empty file, a link) is held by no valid
    // attachment: with a list, it is stale.
    let valid = |o: &Owner| {
        !o.is_unknown()
            && keep.iter().any(|k| {
                k.container_id.trim() == o.id && o.ifname.as_deref().is_none_or(|i| i == k.ifname)
            })
    };
    let mut kept = Vec::new();
    let mut released = Vec::new();
    let mut errors = Vec::new();
    for (a, o) in store.scan()? {
        if valid(&o) {
            kept.push((a, o));
            continue;
        }
        match store.release(a) {
            Ok(_) => {
                log::info!("gc: released {a} held by {:?}/{:?}", o.id, o.ifname);
                released.push(a);
            }
            Err(e) => {
                errors.push(e.msg);
                kept.push((a, o));
            }
        }
    }
    if let Err(e) = idx.rebuild(Some(kept)) {
        idx.poison(&e);
    }
    if errors.is_empty() {
        Ok(released)
    } else {
        Err(Error::new(ERR_STORE, format!("gc: {}", errors.join("; "))))
    }
}

/// STATUS: ready when the network's data directory is writable and every
/// range set has a free address; otherwise code 50 with the reason.
pub fn status(cfg: &Config) -> Result<()> {
    let unavailable = |why: String| Error::new(cni::error::PLUGIN_NOT_AVAILABLE, why);
    let store = Store::open(&cfg.data_dir, &cfg.name)
        .map_err(|e| unavailable(format!("data directory not usable: {}", e.msg)))?;
    nix::unistd::access(store.dir(), nix::unistd::AccessFlags::W_OK).map_err(|e| {
        unavailable(format!(
            "data directory {} is not writable: {e}",
            store.dir().display()
        ))
    })?;
    let mut idx = Index::load(&store, &cfg.range_sets)
        .map_err(|e| unavailable(format!("cannot read the reservations: {}", e.msg)))?;
    // Per the files: the bits only order the search. Addresses the index
    // calls free are checked first (one stat each, usually the first one
    // answers); only if none is, the ones it calls held are checked too, so
    // a stale bit can never make a set look full.
    for (si, set) in cfg.range_sets.iter().enumerate() {
        let last = store.last_reserved(si);
        let mut free = false;
        for pass_held in [false, true] {
            for (_, a) in set.candidates(last) {
                if maybe_held(&mut idx, a) == pass_held && !store.is_held(a)? {
                    free = true;
                    break;
                }
            }
            if free {
                break;
            }
        }
        if !free {
            return Err(unavailable(format!(
                "no IP addresses available in range set {si}: {set}"
            )));
        }
    }
    Ok(())
}
