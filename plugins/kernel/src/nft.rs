//! nftables through `nft -j`. Rules are built with the typed schema of the
//! `nftables` crate (the one netavark uses) and applied as one JSON
//! document, which the kernel commits as one transaction: a half-applied
//! rule set never exists. Listings are read from nft's JSON, and whether a
//! table exists is decided from the JSON list of tables, never from the
//! wording of an error message.

use crate::error::{Error, Result};
use crate::exec;
use netlink_packet_netfilter::NetfilterMessage;
pub use nftables::batch::Batch;
use nftables::schema::{NfCmd, NfListObject};
pub use nftables::types::NfFamily;
use serde_json::Value;
use std::borrow::Cow;

/// The `nft` binary; `CNI_NFT` overrides it (tests, unusual installs).
fn nft_bin() -> String {
    std::env::var("CNI_NFT").unwrap_or_else(|_| "nft".to_string())
}

fn run(args: &[&str], stdin: Option<&[u8]>, what: &dyn Fn() -> String) -> Result<String> {
    let out = exec::run(&nft_bin(), args, stdin, exec::TOOL_TIMEOUT, what)?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(Error::protocol(
            what(),
            format!("nft failed: {}", out.stderr),
        ))
    }
}

/// Apply a batch as one transaction.
pub fn apply(batch: Batch, what: &dyn Fn() -> String) -> Result<()> {
    let doc = batch.to_nftables();
    if doc.objects.is_empty() {
        return Ok(());
    }
    let text = serde_json::to_string(&doc)
        .map_err(|e| Error::protocol(what(), format!("encode nftables JSON: {e}")))?;
    run(&["-j", "-f", "-"], Some(text.as_bytes()), what).map(|_| ())
}

/// The name nft uses for a family on its command line and in its JSON.
pub fn family_name(f: NfFamily) -> &'static str {
    match f {
        NfFamily::IP => "ip",
        NfFamily::IP6 => "ip6",
        NfFamily::INet => "inet",
        NfFamily::ARP => "arp",
        NfFamily::Bridge => "bridge",
        NfFamily::NetDev => "netdev",
    }
}

/// A rule as nft lists it: where it is, its handle, its comment, and its
/// expressions as nft printed them (for CHECK's look at what it matches).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub family: NfFamily,
    pub table: String,
    pub chain: String,
    pub handle: u32,
    pub comment: Option<String>,
    pub expr: Value,
}

impl Listed {
    /// The command deleting this rule (by its handle).
    pub fn delete(&self) -> NfCmd<'static> {
        delete_rule(self.family, &self.table, &self.chain, self.handle)
    }
}

/// The command deleting rule `handle` of `family table chain`.
fn delete_rule(family: NfFamily, table: &str, chain: &str, handle: u32) -> NfCmd<'static> {
    NfCmd::Delete(NfListObject::Rule(nftables::schema::Rule {
        family,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(Vec::new()),
        handle: Some(handle),
        index: None,
        comment: None,
    }))
}

/// A table's chains and rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub chains: Vec<String>,
    pub rules: Vec<Listed>,
}

impl Table {
    pub fn has_chain(&self, name: &str) -> bool {
        self.chains.iter().any(|c| c == name)
    }

    /// The rules of one chain, in order.
    pub fn chain_rules<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a Listed> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

fn items(out: &str, what: &dyn Fn() -> String) -> Result<Vec<Value>> {
    let mut doc: Value = serde_json::from_str(out)
        .map_err(|e| Error::protocol(what(), format!("bad JSON from nft: {e}")))?;
    match doc.get_mut("nftables").map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        _ => Err(Error::protocol(
            what(),
            "nft's JSON has no \"nftables\" list",
        )),
    }
}

/// Whether `family table` exists, asked of the kernel over nfnetlink:
/// `NFT_MSG_GETTABLE` of that one table, answered by the table or ENOENT.
/// No process and no listing of anything else (`nft list tables` reads
/// every rule of every table first, iptables-nft's included, and takes
/// tens of milliseconds on a node with many).
pub fn table_exists(family: NfFamily, table: &str) -> Result<bool> {
    use netlink_packet_netfilter::nftables::{NfTablesMessage, TableAttribute, TableMessage};
    let fam = family_name(family);
    let what = || format!("look up nftables table {fam} {table}");
    let msg = nf_message(
        family,
        NfTablesMessage::GetTable(TableMessage {
            attributes: vec![TableAttribute::Name(table.to_string())],
        }),
    );
    answers(&mut crate::netlink::Netlink::open_netfilter()?, msg, &what)
}

/// Whether chain `chain` exists in `family`'s nf_tables table `table`
/// (false when the table does not), asked of the kernel over nfnetlink.
pub fn chain_exists(family: NfFamily, table: &str, chain: &str) -> Result<bool> {
    let fam = family_name(family);
    let what = || format!("look up nftables chain {fam} {table} {chain}");
    let msg = get_chain_msg(family, table, chain);
    answers(&mut crate::netlink::Netlink::open_netfilter()?, msg, &what)
}

/// `NFT_MSG_GETCHAIN` of one named chain.
fn get_chain_msg(family: NfFamily, table: &str, chain: &str) -> NetfilterMessage {
    use netlink_packet_netfilter::nftables::{ChainAttribute, ChainMessage, NfTablesMessage};
    nf_message(
        family,
        NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.to_string()),
                ChainAttribute::Name(chain.to_string()),
            ],
        }),
    )
}

/// The answers to a `NFT_MSG_GETRULE` dump of one chain, read as `M`
/// (typed, or raw bytes); `None` when the table or chain does not exist.
fn dump_rules<M>(family: NfFamily, table: &str, chain: &str) -> Result<Option<Vec<M>>>
where
    M: From<NetfilterMessage>
        + netlink_packet_core::NetlinkSerializable
        + netlink_packet_core::NetlinkDeserializable
        + Clone
        + std::fmt::Debug,
{
    use netlink_packet_core::NLM_F_DUMP;
    use netlink_packet_netfilter::nftables::{NfTablesMessage, RuleAttribute, RuleMessage};
    let fam = family_name(family);
    let what = || format!("list the rules of nftables chain {fam} {table} {chain}");
    let mut nl = crate::netlink::Netlink::<M>::open_netfilter_as()?;
    // A dump filtered by table and chain names answers nothing, not
    // ENOENT, for one that does not exist: ask for the chain first.
    if !answers(&mut nl, M::from(get_chain_msg(family, table, chain)), &what)? {
        return Ok(None);
    }
    let get_rules = nf_message(
        family,
        NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.to_string()),
                RuleAttribute::Chain(chain.to_string()),
            ],
        }),
    );
    Ok(Some(nl.request(M::from(get_rules), NLM_F_DUMP, &what)?))
}

/// Whether the kernel answers `msg`, a GET of one named object, with the
/// object (true) or with ENOENT (false).
fn answers<M>(
    nl: &mut crate::netlink::Netlink<M>,
    msg: M,
    what: &dyn Fn() -> String,
) -> Result<bool>
where
    M: netlink_packet_core::NetlinkSerializable
        + netlink_packet_core::NetlinkDeserializable
        + Clone
        + std::fmt::Debug,
{
    match nl.request(msg, 0, what) {
        Ok(_) => Ok(true),
        Err(e) if e.is(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An nf_tables request of `family`.
fn nf_message(
    family: NfFamily,
    inner: netlink_packet_netfilter::nftables::NfTablesMessage,
) -> NetfilterMessage {
    use netlink_packet_netfilter::{NetfilterHeader, NetfilterProtoFamily};
    let proto = match family {
        NfFamily::INet => 1,
        NfFamily::IP => 2,
        NfFamily::ARP => 3,
        NfFamily::NetDev => 5,
        NfFamily::Bridge => 7,
        NfFamily::IP6 => 10,
    };
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::from(proto), 0, 0),
        inner,
    )
}

/// The rules of `family table chain` as the kernel holds them, each given
/// as the chains it jumps or goes to: one nfnetlink dump of that chain
/// alone, no process. `None` when the table or the chain is not in
/// nf_tables (for an iptables table: iptables-legacy, or not made yet).
/// What iptables-nft writes reads the same way: its `-j CHAIN` is an
/// nf_tables jump verdict.
pub fn chain_jumps(family: NfFamily, table: &str, chain: &str) -> Result<Option<Vec<Vec<String>>>> {
    use netlink_packet_netfilter::nftables::{
        DataAttribute, ExpressionAttribute, Expressions, Immediate, ListAttribute, RuleAttribute,
        VerdictAttribute,
    };
    let Some(rules) = dump_chain(family, table, chain)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for attrs in rules {
        let mut jumps = Vec::new();
        for attr in attrs {
            let RuleAttribute::Expressions(list) = attr else {
                continue;
            };
            for item in list {
                let ListAttribute::Element(expr) = item else {
                    continue;
                };
                for e in expr {
                    let ExpressionAttribute::Data(Expressions::Immediate(imm)) = e else {
                        continue;
                    };
                    for i in imm {
                        let Immediate::Data(DataAttribute::Verdict(v)) = i else {
                            continue;
                        };
                        jumps.extend(v.into_iter().filter_map(|a| match a {
                            VerdictAttribute::Chain(c) => Some(c),
                            _ => None,
                        }));
                    }
                }
            }
        }
        out.push(jumps);
    }
    Ok(Some(out))
}

/// A rule's handle and its comment, if it has one.
pub type RuleTag = (u64, Option<String>);

/// The handle and comment of every rule of chain `chain` of `family`'s
/// `table`, in order, read from the kernel: one nfnetlink dump of that
/// chain, no process, whatever the size of the rest of the table. `None`
/// when the table or chain does not exist. The answers are read as bytes
/// for just those two attributes: netlink-packet-netfilter's parse of a
/// rule's expressions formats every buffer it meets (for error context)
/// before it knows of any error, which made a dump of a few hundred rules
/// take half a second.
pub fn chain_rules(family: NfFamily, table: &str, chain: &str) -> Result<Option<Vec<RuleTag>>> {
    let Some(answers) = dump_rules::<RawNf>(family, table, chain)? else {
        return Ok(None);
    };
    Ok(Some(
        answers
            .iter()
            .filter(|m| m.message_type == NFT_NEWRULE)
            .filter_map(|m| rule_handle_and_comment(&m.payload))
            .collect(),
    ))
}

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWRULE`: a rule in a dump.
const NFT_NEWRULE: u16 = (10 << 8) | 6;

/// An nfnetlink message as bytes (its payload after the netlink header):
/// for answers read for a few attributes only.
#[derive(Debug, Clone)]
struct RawNf {
    message_type: u16,
    payload: Vec<u8>,
}

impl From<NetfilterMessage> for RawNf {
    fn from(m: NetfilterMessage) -> RawNf {
        use netlink_packet_core::NetlinkSerializable;
        let mut payload = vec![0u8; m.buffer_len()];
        m.serialize(&mut payload);
        RawNf {
            message_type: m.message_type(),
            payload,
        }
    }
}

impl netlink_packet_core::NetlinkSerializable for RawNf {
    fn message_type(&self) -> u16 {
        self.message_type
    }
    fn buffer_len(&self) -> usize {
        self.payload.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.payload);
    }
}

impl netlink_packet_core::NetlinkDeserializable for RawNf {
    type Error = std::convert::Infallible;
    fn deserialize(
        header: &netlink_packet_core::NetlinkHeader,
        payload: &[u8],
    ) -> std::result::Result<RawNf, Self::Error> {
        Ok(RawNf {
            message_type: header.message_type,
            payload: payload.to_vec(),
        })
    }
}

/// `NFTA_RULE_HANDLE` (a big-endian u64) and the comment in
/// `NFTA_RULE_USERDATA` of a rule message's payload: the 4-byte nfgenmsg,
/// then attributes, walked with netlink-packet-core's `NlasIterator`
/// (which decodes none of them). A malformed attribute: `None`.
fn rule_handle_and_comment(payload: &[u8]) -> Option<RuleTag> {
    use netlink_packet_core::NlasIterator;
    const NFTA_RULE_HANDLE: u16 = 3;
    const NFTA_RULE_USERDATA: u16 = 7;
    let (mut handle, mut comment) = (None, None);
    for nla in NlasIterator::new(payload.get(4..)?) {
        let nla = nla.ok()?;
        match nla.kind() {
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(nla.value().try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = udata_comment(nla.value()),
            _ => {}
        }
    }
    Some((handle?, comment))
}

/// The comment in a rule's user data, as nft stores it: type-length-value
/// items (one byte each for type and length), the comment being type 0
/// (`NFTNL_UDATA_RULE_COMMENT`), a string ended by a NUL.
fn udata_comment(data: &[u8]) -> Option<String> {
    const COMMENT: u8 = 0;
    let mut rest = data;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let value = tail.get(..len)?;
        if *kind == COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return String::from_utf8(text.to_vec()).ok();
        }
        rest = &tail[len..];
    }
    None
}

/// The attributes of every rule of one chain (typed: for small chains, see
/// [`chain_rules`]). `None` when the table or chain does not exist.
fn dump_chain(
    family: NfFamily,
    table: &str,
    chain: &str,
) -> Result<Option<Vec<Vec<netlink_packet_netfilter::nftables::RuleAttribute>>>> {
    use netlink_packet_netfilter::nftables::NfTablesMessage;
    use netlink_packet_netfilter::NetfilterMessageInner;
    Ok(
        dump_rules::<NetfilterMessage>(family, table, chain)?.map(|answers| {
            answers
                .into_iter()
                .filter_map(|m| match m.inner {
                    NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(rule)) => {
                        Some(rule.attributes)
                    }
                    _ => None,
                })
                .collect()
        }),
    )
}

/// Delete, in one transaction, every rule of `chains` (of `family`'s
/// `table`) whose comment is `comment`; how many. The rules are found by
/// [`chain_rules`], so the cost follows those chains, not the table, and
/// no `nft` process runs when there is nothing to delete. A transaction
/// refused because the chains changed in between (a handle gone) is
/// retried from a fresh read, as [`remove`] does.
pub fn remove_commented(
    family: NfFamily,
    table: &str,
    chains: &[&str],
    comment: &str,
    what: &dyn Fn() -> String,
) -> Result<usize> {
    apply_from_fresh_read(what, &|| {
        let mut batch = Batch::new();
        let mut picked = 0;
        for chain in chains {
            for (handle, c) in chain_rules(family, table, chain)?.unwrap_or_default() {
                if c.as_deref() != Some(comment) {
                    continue;
                }
                let handle = u32::try_from(handle).map_err(|_| {
                    Error::protocol(what(), format!("rule handle {handle} out of nft's range"))
                })?;
                batch.add_cmd(delete_rule(family, table, chain, handle));
                picked += 1;
            }
        }
        Ok((picked > 0).then_some((batch, picked)))
    })
}

/// Whether `nft` runs and lists `family`'s tables (`nft -j list tables
/// FAMILY`): a cheap proof that the tool works, for STATUS.
pub fn probe(family: NfFamily) -> Result<()> {
    let fam = family_name(family);
    let what = || format!("list nftables tables of family {fam}");
    let out = run(&["-j", "list", "tables", fam], None, &what)?;
    items(&out, &what).map(|_| ())
}

/// A table's chains and rules; `None` when the table does not exist.
pub fn list_table(family: NfFamily, table: &str) -> Result<Option<Table>> {
    let fam = family_name(family);
    let what = || format!("list nftables table {fam} {table}");
    let mut attempt = 0;
    let out = loop {
        match run(&["-j", "list", "table", fam, table], None, &what) {
            Ok(out) => break out,
            Err(e) if e.is_no_tool() => return Err(e),
            // Listing failed: absent, or something else went wrong. Ask
            // the kernel rather than read the message. A table another
            // process created in between is listed again.
            Err(e) => match table_exists(family, table) {
                Ok(false) => return Ok(None),
                Ok(true) if attempt < 3 => attempt += 1,
                Ok(true) => return Err(e),
                Err(e2) if e2.is_no_tool() => return Err(e2),
                Err(_) => return Err(e),
            },
        }
    };
    let mut t = Table::default();
    for item in items(&out, &what)? {
        if let Some(c) = item.get("chain") {
            if let Some(name) = c["name"].as_str() {
                t.chains.push(name.to_string());
            }
        } else if let Some(r) = item.get("rule") {
            let handle = r["handle"]
                .as_u64()
                .and_then(|h| u32::try_from(h).ok())
                .ok_or_else(|| Error::protocol(what(), format!("rule without handle: {r}")))?;
            t.rules.push(Listed {
                family,
                table: table.to_string(),
                chain: r["chain"].as_str().unwrap_or_default().to_string(),
                handle,
                comment: r["comment"].as_str().map(str::to_string),
                expr: r["expr"].clone(),
            });
        }
    }
    Ok(Some(t))
}

/// Delete every rule of `family table` that `pick` selects, and then the
/// chains `drop_chains` names (those that exist), in one transaction.
/// Rules are deleted by handle, which never shifts; should another
/// process change the table between the listing and the transaction, the
/// whole transaction fails and is retried on a fresh listing. Returns how
/// many rules went.
pub fn remove(
    family: NfFamily,
    table: &str,
    pick: &dyn Fn(&Listed) -> bool,
    drop_chains: &dyn Fn(&str) -> bool,
    what: &dyn Fn() -> String,
) -> Result<usize> {
    apply_from_fresh_read(what, &|| {
        let Some(t) = list_table(family, table)? else {
            return Ok(None);
        };
        let mut batch = Batch::new();
        let picked: Vec<&Listed> = t.rules.iter().filter(|r| pick(r)).collect();
        for r in &picked {
            batch.add_cmd(r.delete());
        }
        let chains: Vec<&String> = t.chains.iter().filter(|c| drop_chains(c)).collect();
        for c in &chains {
            // A chain still jumped to cannot go: its jumps are among the
            // picked rules, deleted first in the same transaction.
            batch.add_cmd(NfCmd::Flush(nftables::schema::FlushObject::Chain(chain(
                family, table, c,
            ))));
            batch.delete(NfListObject::Chain(chain(family, table, c)));
        }
        if picked.is_empty() && chains.is_empty() {
            return Ok(None);
        }
        Ok(Some((batch, picked.len())))
    })
}

/// Plan a transaction from a fresh read of the kernel's state (`plan`:
/// the batch and how many rules it deletes, or `None` for nothing to do)
/// and apply it; a transaction refused because the state changed between
/// read and apply (a handle gone) is planned again, up to 5 times. A
/// missing `nft` is not retried.
fn apply_from_fresh_read(
    what: &dyn Fn() -> String,
    plan: &dyn Fn() -> Result<Option<(Batch<'static>, usize)>>,
) -> Result<usize> {
    let mut last = None;
    for _ in 0..5 {
        let Some((batch, n)) = plan()? else {
            return Ok(0);
        };
        match apply(batch, what) {
            Ok(()) => return Ok(n),
            Err(e) if e.is_no_tool() => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::protocol(what(), "gave up after 5 attempts")))
}

/// A regular chain (no hook) of a table.
pub fn chain(family: NfFamily, table: &str, name: &str) -> nftables::schema::Chain<'static> {
    nftables::schema::Chain {
        family,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(name.to_string()),
        ..Default::default()
    }
}

/// A base chain hooked at `hook` with priority `prio`, policy accept.
pub fn base_chain(
    family: NfFamily,
    table: &str,
    name: &str,
    kind: nftables::types::NfChainType,
    hook: nftables::types::NfHook,
    prio: i32,
) -> nftables::schema::Chain<'static> {
    nftables::schema::Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(nftables::types::NfChainPolicy::Accept),
        ..chain(family, table, name)
    }
}

/// The table itself (adding it is a no-op when it exists).
pub fn table(family: NfFamily, name: &str) -> nftables::schema::Table<'static> {
    nftables::schema::Table {
        family,
        name: Cow::Owned(name.to_string()),
        handle: None,
    }
}

/// A rule for `family table chain` with these statements and comment.
pub fn rule(
    family: NfFamily,
    table: &str,
    chain: &str,
    expr: Vec<nftables::stmt::Statement<'static>>,
    comment: Option<String>,
) -> nftables::schema::Rule<'static> {
    nftables::schema::Rule {
        family,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: comment.map(Cow::Owned),
    }
}

/// Statement and expression builders for the rules our plugins write.
pub mod x {
    use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField};
    use nftables::stmt::{JumpTarget, Match, Operator, Statement};
    use std::borrow::Cow;

    pub type Stmt = Statement<'static>;
    pub type Expr = Expression<'static>;

    pub fn s(v: impl Into<String>) -> Expr {
        Expression::String(Cow::Owned(v.into()))
    }

    pub fn n(v: u32) -> Expr {
        Expression::Number(v)
    }

    /// `PROTO FIELD`, e.g. `ip saddr`.
    pub fn payload(proto: &str, field: &str) -> Expr {
        Expression::Named(NamedExpression::Payload(Payload::PayloadField(
            PayloadField {
                protocol: Cow::Owned(proto.to_string()),
                field: Cow::Owned(field.to_string()),
            },
        )))
    }

    /// The payload protocol of an address: `ip` or `ip6`.
    pub fn proto(ip: std::net::IpAddr) -> &'static str {
        if ip.is_ipv4() {
            "ip"
        } else {
            "ip6"
        }
    }

    /// `ct KEY OP RIGHT`, e.g. `ct state { established, related }` (`IN`,
    /// a list) or `ct status dnat` (`IN`, a flag).
    pub fn ct(key: &str, op: Operator, right: Expr) -> Stmt {
        matches(
            Expression::Named(NamedExpression::CT(nftables::expr::CT {
                key: Cow::Owned(key.to_string()),
                family: None,
                dir: None,
            })),
            op,
            right,
        )
    }

    pub fn meta(key: MetaKey) -> Expr {
        Expression::Named(NamedExpression::Meta(Meta { key }))
    }

    /// `ADDR/LEN`.
    pub fn prefix(net: &ipnet::IpNet) -> Expr {
        Expression::Named(NamedExpression::Prefix(nftables::expr::Prefix {
            addr: Box::new(s(net.network().to_string())),
            len: u32::from(net.prefix_len()),
        }))
    }

    pub fn matches(left: Expr, op: Operator, right: Expr) -> Stmt {
        Statement::Match(Match { left, right, op })
    }

    pub fn eq(left: Expr, right: Expr) -> Stmt {
        matches(left, Operator::EQ, right)
    }

    pub fn ne(left: Expr, right: Expr) -> Stmt {
        matches(left, Operator::NEQ, right)
    }

    pub fn jump(target: &str) -> Stmt {
        Statement::Jump(JumpTarget {
            target: Cow::Owned(target.to_string()),
        })
    }

    pub fn goto(target: &str) -> Stmt {
        Statement::Goto(JumpTarget {
            target: Cow::Owned(target.to_string()),
        })
    }

    pub fn ret() -> Stmt {
        Statement::Return(None)
    }

    pub fn accept() -> Stmt {
        Statement::Accept(None)
    }

    pub fn drop() -> Stmt {
        Statement::Drop(None)
    }

    pub fn masquerade() -> Stmt {
        Statement::Masquerade(None)
    }
}

/// nftables limits comments to 128 bytes; cut at a character boundary.
pub fn truncate_comment(mut s: String) -> String {
    const MAX: usize = 128;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Hex of SHA-512 of `s`, cut to `len` characters: the reference plugins'
/// way of naming chains and tagging rules, so ours and theirs agree.
pub fn hash_hex(s: &str, len: usize) -> String {
    use sha2::{Digest, Sha512};
    let digest = Sha512::digest(s.as_bytes());
    let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(len);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_handle_and_comment_are_read_from_the_raw_message() {
        let nla = |kind: u16, value: &[u8]| {
            let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
            v.extend(kind.to_ne_bytes());
            v.extend(value);
            v.resize((v.len() + 3) & !3, 0);
            v
        };
        let mut payload = vec![2, 0, 0, 0]; // nfgenmsg: AF_INET
        payload.extend(nla(1, b"cni_hostport\0"));
        payload.extend(nla(3, &42u64.to_be_bytes()));
        payload.extend(nla(0x8000 | 4, &[0; 8])); // nested expressions, skipped
        payload.extend(nla(7, &[0, 3, b'c', b'1', 0]));
        assert_eq!(
            rule_handle_and_comment(&payload),
            Some((42, Some("c1".to_string())))
        );
        // No user data: no comment; no handle: not a rule we can delete.
        let mut bare = vec![2, 0, 0, 0];
        bare.extend(nla(3, &7u64.to_be_bytes()));
        assert_eq!(rule_handle_and_comment(&bare), Some((7, None)));
        assert_eq!(rule_handle_and_comment(&[2, 0, 0, 0]), None);
        // A length running past the message: nothing, no panic.
        assert_eq!(rule_handle_and_comment(&[2, 0, 0, 0, 200, 0, 3, 0]), None);
    }

    #[test]
    fn rule_comment_is_read_from_nft_user_data() {
        // What nft 1.0 writes for `comment "c1"`: type 0, length 3, "c1\0".
        assert_eq!(udata_comment(&[0, 3, b'c', b'1', 0]).as_deref(), Some("c1"));
        // Another item first (type 1, two bytes), then the comment.
        assert_eq!(
            udata_comment(&[1, 2, 9, 9, 0, 4, b'a', b'b', b'c', 0]).as_deref(),
            Some("abc")
        );
        assert_eq!(udata_comment(&[1, 2, 9, 9]), None);
        assert_eq!(udata_comment(&[]), None);
        // A length running past the data: no comment, no panic.
        assert_eq!(udata_comment(&[0, 9, b'x']), None);
    }

    #[test]
    fn hashes_match_the_reference() {
        // utils.FormatChainName("test", "1234") == "CNI-2bbe0c48b91a7d1b8a6753a8" in the Go suite.
        assert_eq!(hash_hex("test1234", 24), "2bbe0c48b91a7d1b8a6753a8");
    }

    #[test]
    fn comments_are_cut_to_128_bytes() {
        assert_eq!(truncate_comment("é".repeat(100)).len(), 128);
        assert_eq!(truncate_comment(format!("a{}", "é".repeat(100))).len(), 127);
        assert_eq!(truncate_comment("short".into()), "short");
    }

    #[test]
    fn delete_uses_the_handle() {
        let r = Listed {
            family: NfFamily::INet,
            table: "t".into(),
            chain: "c".into(),
            handle: 7,
            comment: None,
            expr: Value::Null,
        };
        let mut b = Batch::new();
        b.add_cmd(r.delete());
        assert_eq!(
            serde_json::to_value(b.to_nftables()).unwrap(),
            serde_json::json!({"nftables": [{"delete": {"rule":
                {"family": "inet", "table": "t", "chain": "c", "expr": [], "handle": 7}}}]})
        );
    }

    #[test]
    fn builders_print_nft_json() {
        let r = rule(
            NfFamily::INet,
            "t",
            "c",
            vec![
                x::eq(x::payload("ip", "saddr"), x::s("10.1.0.2")),
                x::ne(
                    x::payload("ip", "daddr"),
                    x::prefix(&"10.1.0.2/24".parse().unwrap()),
                ),
                x::masquerade(),
            ],
            Some("hi".into()),
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap()["expr"],
            serde_json::json!([
                {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.1.0.2", "op": "=="}},
                {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": {"prefix": {"addr": "10.1.0.0", "len": 24}}, "op": "!="}},
                {"masquerade": null}
            ])
        );
    }
}
