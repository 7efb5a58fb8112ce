//! A small synchronous netlink socket: send one request, collect its
//! answer (an ACK, a reply, or a multi-part dump), with errors that name the
//! operation. Operations named like `ip` verbs live in `link.rs`, `addr.rs`
//! and `route.rs`; message building is kept apart from I/O so it can be
//! unit-tested without a socket. The same socket speaks nfnetlink
//! (`Netlink<NetfilterMessage>`, for conntrack in `conntrack.rs`).

use crate::error::{Error, Result};
use crate::netns::Netns;
use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_netfilter::NetfilterMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{
    protocols::{NETLINK_NETFILTER, NETLINK_ROUTE},
    Socket, SocketAddr,
};
use std::fmt::Debug;
use std::marker::PhantomData;

/// How often a dump the kernel marks as interrupted (`NLM_F_DUMP_INTR`: the
/// table changed while it was being read) is retried before giving up.
const DUMP_RETRIES: usize = 10;

/// A netlink socket bound to one network namespace, speaking messages of
/// type `M`: rtnetlink by default, nfnetlink as `Netlink<NetfilterMessage>`.
pub struct Netlink<M = RouteNetlinkMessage> {
    socket: Socket,
    seq: u32,
    messages: PhantomData<M>,
}

/// A bound, connected socket of netlink `protocol` in the caller's namespace.
fn open_socket(protocol: isize) -> Result<Socket> {
    #[allow(clippy::disallowed_methods)] // the owner of netlink sockets
    let mut socket = Socket::new(protocol).map_err(|e| Error::io("open netlink socket", &e))?;
    socket
        .bind_auto()
        .map_err(|e| Error::io("bind netlink socket", &e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| Error::io("connect netlink socket", &e))?;
    Ok(socket)
}

impl Netlink {
    /// A socket in the caller's namespace.
    pub fn open() -> Result<Netlink> {
        Ok(Netlink {
            socket: open_socket(NETLINK_ROUTE)?,
            seq: 0,
            messages: PhantomData,
        })
    }

    /// A socket inside `ns`. It stays bound to that namespace for its life,
    /// so it is opened there ([`Netns::run`]) and then used from ours.
    pub fn open_in(ns: &Netns) -> Result<Netlink> {
        ns.run(Netlink::open)?
            .map_err(|e| e.context(format!("in network namespace {}", ns.path().display())))
    }
}

impl Netlink<NetfilterMessage> {
    /// An nfnetlink (`NETLINK_NETFILTER`) socket in the caller's namespace,
    /// for conntrack (`conntrack.rs`).
    pub fn open_netfilter() -> Result<Netlink<NetfilterMessage>> {
        Netlink::open_netfilter_as()
    }

    /// An nfnetlink socket inside `ns` (see [`Netlink::open_in`]).
    pub fn open_netfilter_in(ns: &Netns) -> Result<Netlink<NetfilterMessage>> {
        ns.run(Netlink::open_netfilter)?
            .map_err(|e| e.context(format!("in network namespace {}", ns.path().display())))
    }
}

impl<M> Netlink<M> {
    /// An nfnetlink socket in the caller's namespace whose messages are
    /// read as `M` (`nft.rs` reads big rule dumps as raw bytes).
    pub(crate) fn open_netfilter_as() -> Result<Netlink<M>> {
        Ok(Netlink {
            socket: open_socket(NETLINK_NETFILTER)?,
            seq: 0,
            messages: PhantomData,
        })
    }
}

impl<M> Netlink<M>
where
    M: NetlinkSerializable + NetlinkDeserializable + Clone + Debug,
{
    /// Send `msg` and wait for the answer. `flags` adds to `NLM_F_REQUEST`
    /// (`NLM_F_DUMP` for a dump, `NLM_F_CREATE | NLM_F_EXCL` to create, ...).
    /// Non-dump requests are acknowledged; an error ACK becomes an errno error
    /// described by `what`. Returns the messages the kernel sent back.
    pub fn request(&mut self, msg: M, flags: u16, what: &dyn Fn() -> String) -> Result<Vec<M>> {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        for _ in 0..DUMP_RETRIES {
            self.seq = self.seq.wrapping_add(1);
            let seq = self.seq;
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
            header.sequence_number = seq;
            let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg.clone()));
            packet.finalize();
            let mut buf = vec![0u8; packet.buffer_len()];
            packet.serialize(&mut buf);
            self.socket
                .send(&buf, 0)
                .map_err(|e| Error::io(format!("{}: send", what()), &e))?;
            match self.collect(seq, dump, what)? {
                Some(out) => return Ok(out),
                None => continue, // interrupted dump: read it again
            }
        }
        Err(Error::protocol(
            what(),
            format!("dump interrupted {DUMP_RETRIES} times in a row"),
        ))
    }

    /// Read until the answer to `seq` is complete. `None` means the dump was
    /// interrupted and should be retried.
    fn collect(
        &mut self,
        seq: u32,
        dump: bool,
        what: &dyn Fn() -> String,
    ) -> Result<Option<Vec<M>>> {
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|e| Error::io(format!("{}: receive", what()), &e))?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<M>::deserialize(&data[offset..])
                    .map_err(|e| Error::protocol(what(), format!("bad netlink message: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(Error::protocol(what(), "netlink message of length 0"));
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    // An answer to an earlier request we gave up on.
                    continue;
                }
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(out)),
                    NetlinkPayload::Error(e) => match e.code {
                        None if !dump => return Ok(Some(out)),
                        None => {}
                        Some(code) => return Err(Error::errno(what(), code.get().abs())),
                    },
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Noop => {
                        return Err(Error::protocol(what(), "unexpected NLMSG_NOOP"))
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(Error::protocol(what(), "netlink buffer overrun"))
                    }
                    other => {
                        return Err(Error::protocol(
                            what(),
                            format!("unexpected netlink payload {other:?}"),
                        ))
                    }
                }
            }
        }
    }

    /// A request that expects one reply message (e.g. a get by name).
    pub(crate) fn request_one(&mut self, msg: M, what: &dyn Fn() -> String) -> Result<M> {
        self.request(msg, 0, what)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol(what(), "no reply from the kernel"))
    }
}
