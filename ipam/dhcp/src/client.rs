//! The DHCPv4 client side of the daemon: DISCOVER/OFFER/REQUEST/ACK,
//! renewal, rebinding and release, on a UDP socket opened inside the
//! container's namespace and bound to its interface. Messages are built and
//! parsed with `dhcproto`; building is apart from I/O so it is unit-tested.

use cni_kernel::{Netlink, Netns};
use dhcproto::v4::{DhcpOption, DhcpOptions, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;
/// The first retransmission comes after this; each one doubles it (RFC
/// 2131 4.1 suggests 4 s; a container's link often comes up a moment after
/// the first DISCOVER, so we start lower).
const FIRST_RESEND: Duration = Duration::from_secs(1);

/// How the daemon talks DHCP, from its flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long one exchange (DISCOVER to OFFER, REQUEST to ACK) waits.
    pub timeout: Duration,
    /// The longest gap between retransmissions.
    pub resend_max: Duration,
    /// Ask servers to broadcast their answers.
    pub broadcast: bool,
}

/// The options a lease asks for and provides, from the IPAM config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Option codes for the parameter request list.
    pub request: Vec<u8>,
    /// Options sent with every DISCOVER and REQUEST.
    pub provide: Vec<(u8, Vec<u8>)>,
}

/// What an ACK granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub address: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    pub renew_secs: u32,
    pub rebind_secs: u32,
    /// Option 121, as (destination, gateway).
    #[serde(default)]
    pub classless_routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Option 33, as (classful destination, gateway).
    #[serde(default)]
    pub static_routes: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// When the ACK came, in seconds since the epoch.
    pub bound_at: u64,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Binding {
    pub fn renew_at(&self) -> u64 {
        self.bound_at + u64::from(self.renew_secs)
    }
    pub fn rebind_at(&self) -> u64 {
        self.bound_at + u64::from(self.rebind_secs)
    }
    pub fn expires_at(&self) -> u64 {
        self.bound_at + u64::from(self.lease_secs)
    }

    /// Routes as the reference derives them: option 121 alone when
    /// present (RFC 3442), else option 33 and a default route via the router.
    pub fn routes(&self) -> Vec<(Ipv4Net, Option<Ipv4Addr>)> {
        if !self.classless_routes.is_empty() {
            return self
                .classless_routes
                .iter()
                .map(|(dst, gw)| (*dst, (!gw.is_unspecified()).then_some(*gw)))
                .collect();
        }
        let mut out: Vec<(Ipv4Net, Option<Ipv4Addr>)> = self
            .static_routes
            .iter()
            .map(|(dst, gw)| (classful(*dst), Some(*gw)))
            .collect();
        if let Some(gw) = self.router {
            out.push((Ipv4Net::default(), Some(gw)));
        }
        out
    }
}

/// A destination of option 33 with its class's mask.
fn classful(dst: Ipv4Addr) -> Ipv4Net {
    let prefix = match dst.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    };
    Ipv4Net::new(dst, prefix).unwrap_or_default().trunc()
}

/// The client identifier option the reference sends: type 0 and the id.
fn client_identifier(client_id: &str) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(client_id.as_bytes());
    v
}

fn option_from_raw(code: u8, data: &[u8]) -> Option<DhcpOption> {
    let len = u8::try_from(data.len()).ok()?;
    let mut raw = vec![code, len];
    raw.extend_from_slice(data);
    DhcpOption::decode(&mut Decoder::new(&raw)).ok()
}

/// A BOOTREQUEST of `kind` with the client id, requested and provided options.
pub fn build(
    kind: MessageType,
    xid: u32,
    mac: &[u8],
    client_id: &str,
    opts: &Options,
    broadcast: bool,
) -> Message {
    let mut m = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac[..mac.len().min(16)],
    );
    m.set_opcode(Opcode::BootRequest);
    if broadcast {
        m.set_flags(Flags::default().set_broadcast());
    }
    let o: &mut DhcpOptions = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    for (code, data) in &opts.provide {
        if let Some(opt) = option_from_raw(*code, data) {
            o.insert(opt);
        }
    }
    o.insert(DhcpOption::ClientIdentifier(client_identifier(client_id)));
    if kind != MessageType::Release && !opts.request.is_empty() {
        o.insert(DhcpOption::ParameterRequestList(
            opts.request.iter().map(|c| OptionCode::from(*c)).collect(),
        ));
    }
    m
}

/// The binding an ACK grants, or why it grants none.
pub fn binding_from_ack(ack: &Message) -> Result<Binding, String> {
    let o = ack.opts();
    let mask = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(m)) => *m,
        _ => return Err("DHCP option Subnet Mask not found in DHCPACK".into()),
    };
    let prefix = u8::try_from(u32::from(mask).leading_ones()).unwrap_or(32);
    let address = Ipv4Net::new(ack.yiaddr(), prefix).map_err(|e| e.to_string())?;
    let server = match o.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => ack.siaddr(),
    };
    let lease_secs = match o.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => return Err("DHCP option IP Address Lease Time not found in DHCPACK".into()),
    };
    // RFC 2131 4.4.5: T2 defaults to 87.5 % (the reference: 85 %), T1 to 50 %.
    let rebind_secs = match o.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) if *t <= lease_secs => *t,
        _ => lease_secs / 100 * 85 + lease_secs % 100 * 85 / 100,
    };
    let renew_secs = match o.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) if *t <= rebind_secs => *t,
        _ => lease_secs / 2,
    };
    let router = match o.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.first().copied(),
        _ => None,
    };
    let classless_routes = match o.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(r)) => r.clone(),
        _ => Vec::new(),
    };
    let static_routes = match o.get(OptionCode::StaticRoutingTable) {
        Some(DhcpOption::StaticRoutingTable(r)) => r.clone(),
        _ => Vec::new(),
    };
    Ok(Binding {
        address,
        router,
        server,
        lease_secs,
        renew_secs,
        rebind_secs,
        classless_routes,
        static_routes,
        bound_at: now_secs(),
    })
}

/// A DHCP socket inside a container's namespace, bound to its interface.
pub struct Conn {
    sock: UdpSocket,
    mac: Vec<u8>,
    client_id: String,
    settings: Settings,
}

/// Why the interface cannot be used.
#[derive(Debug)]
pub enum Unusable {
    /// The namespace or the interface is gone: stop maintaining the lease.
    Gone(String),
    Other(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Gone(s) | Unusable::Other(s) => f.write_str(s),
        }
    }
}

fn open_socket(ifname: &str) -> std::io::Result<UdpSocket> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(
        &fd,
        sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )?;
    bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, CLIENT_PORT))?;
    Ok(UdpSocket::from(fd))
}

impl Conn {
    /// Open a socket on `ifname` in the namespace at `netns`, waiting up to
    /// `wait` for the interface to appear (a main plugin may start IPAM
    /// before it has created the interface) and setting it up when it is
    /// down, as the reference does.
    pub fn open(
        netns: &str,
        ifname: &str,
        client_id: &str,
        settings: &Settings,
        wait: Duration,
    ) -> Result<Conn, Unusable> {
        let ns = Netns::open(netns).map_err(|e| {
            if e.is_not_found() {
                Unusable::Gone(e.to_string())
            } else {
                Unusable::Other(e.to_string())
            }
        })?;
        let mut nl = Netlink::open_in(&ns).map_err(|e| Unusable::Other(e.to_string()))?;
        let deadline = Instant::now() + wait;
        let link = loop {
            match nl.link_by_name(ifname) {
                Ok(l) => break l,
                Err(e) if e.is_not_found() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if e.is_not_found() => {
                    return Err(Unusable::Gone(format!("error looking up {ifname:?}: {e}")))
                }
                Err(e) => return Err(Unusable::Other(e.to_string())),
            }
        };
        if !link.is_up() {
            log::info!("link {ifname:?} down, setting it up");
            nl.set_up(link.index)
                .map_err(|e| Unusable::Other(e.to_string()))?;
        }
        let mac = link
            .mac
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| Unusable::Other(format!("{ifname} has no hardware address")))?;
        let name = ifname.to_string();
        let sock = ns
            .run(move || open_socket(&name))
            .map_err(|e| Unusable::Other(e.to_string()))?
            .map_err(|e| Unusable::Other(format!("DHCP socket on {ifname}: {e}")))?;
        Ok(Conn {
            sock,
            mac,
            client_id: client_id.to_string(),
            settings: settings.clone(),
        })
    }

    fn xid() -> u32 {
        cni_kernel::random::bytes(4)
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .unwrap_or_else(|| now_secs() as u32)
    }

    fn send(&self, m: &Message, to: Ipv4Addr) -> Result<(), String> {
        let bytes = m
            .to_vec()
            .map_err(|e| format!("encode DHCP message: {e}"))?;
        self.sock
            .send_to(&bytes, SocketAddrV4::new(to, SERVER_PORT))
            .map(drop)
            .map_err(|e| format!("send DHCP message to {to}: {e}"))
    }

    /// Send `m` to `to`, retransmitting with doubling gaps, until a reply
    /// with its xid of one of the `want` types comes or the timeout passes.
    fn exchange(&self, m: &Message, to: Ipv4Addr, want: &[MessageType]) -> Result<Message, String> {
        let deadline = Instant::now() + self.settings.timeout;
        let mut gap = FIRST_RESEND.min(self.settings.resend_max);
        let mut buf = [0u8; 1500];
        loop {
            self.send(m, to)?;
            let resend_at = (Instant::now() + gap).min(deadline);
            loop {
                let now = Instant::now();
                if now >= resend_at {
                    break;
                }
                self.sock
                    .set_read_timeout(Some(resend_at - now))
                    .map_err(|e| e.to_string())?;
                let n = match self.sock.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(format!("receive DHCP reply: {e}")),
                };
                let Ok(reply) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                let kind = reply.opts().msg_type();
                if reply.opcode() == Opcode::BootReply
                    && reply.xid() == m.xid()
                    && reply.chaddr().get(..self.mac.len()) == Some(&self.mac[..])
                    && kind.is_some_and(|k| want.contains(&k))
                {
                    return Ok(reply);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no DHCP reply within {:?}", self.settings.timeout));
            }
            gap = (gap * 2).min(self.settings.resend_max);
        }
    }

    /// DISCOVER, OFFER, REQUEST, ACK.
    pub fn acquire(&self, opts: &Options) -> Result<Binding, String> {
        let xid = Conn::xid();
        // Broadcast answers while the interface has no address: a UDP
        // socket (unlike the reference's packet socket) only receives
        // unicast for an address the interface holds.
        let discover = build(
            MessageType::Discover,
            xid,
            &self.mac,
            &self.client_id,
            opts,
            true,
        );
        let offer = self.exchange(&discover, Ipv4Addr::BROADCAST, &[MessageType::Offer])?;
        let server = match offer.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(s)) => *s,
            _ => offer.siaddr(),
        };
        let mut request = build(
            MessageType::Request,
            xid,
            &self.mac,
            &self.client_id,
            opts,
            true,
        );
        request
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr()));
        request
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server));
        self.finish(&request, Ipv4Addr::BROADCAST)
    }

    /// A REQUEST for the bound address: unicast to the server while
    /// renewing, broadcast once rebinding.
    pub fn renew(&self, b: &Binding, opts: &Options, rebinding: bool) -> Result<Binding, String> {
        let mut request = build(
            MessageType::Request,
            Conn::xid(),
            &self.mac,
            &self.client_id,
            opts,
            rebinding && self.settings.broadcast,
        );
        request.set_ciaddr(b.address.addr());
        let to = if rebinding {
            Ipv4Addr::BROADCAST
        } else {
            b.server
        };
        self.finish(&request, to)
    }

    fn finish(&self, request: &Message, to: Ipv4Addr) -> Result<Binding, String> {
        let reply = self.exchange(request, to, &[MessageType::Ack, MessageType::Nak])?;
        if reply.opts().msg_type() == Some(MessageType::Nak) {
            return Err("DHCP server NAK'd the request".into());
        }
        binding_from_ack(&reply)
    }

    /// DHCPRELEASE to the server (no answer comes).
    pub fn release(&self, b: &Binding) -> Result<(), String> {
        let mut m = build(
            MessageType::Release,
            Conn::xid(),
            &self.mac,
            &self.client_id,
            &Options::default(),
            false,
        );
        m.set_ciaddr(b.address.addr());
        m.opts_mut().insert(DhcpOption::ServerIdentifier(b.server));
        self.send(&m, b.server)
            .or_else(|_| self.send(&m, Ipv4Addr::BROADCAST))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discover_carries_client_id_requests_and_provided_options() {
        let opts = Options {
            request: vec![1, 3, 121],
            provide: vec![(12, b"web-1".to_vec())],
        };
        let m = build(
            MessageType::Discover,
            7,
            &[2, 0, 0, 0, 0, 1],
            "c1/net/eth0",
            &opts,
            true,
        );
        assert!(m.flags().broadcast());
        let back = Message::decode(&mut Decoder::new(&m.to_vec().unwrap())).unwrap();
        assert_eq!(back.xid(), 7);
        assert_eq!(back.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(
            back.opts().get(OptionCode::ClientIdentifier),
            Some(&DhcpOption::ClientIdentifier(b"\0c1/net/eth0".to_vec()))
        );
        assert_eq!(
            back.opts().get(OptionCode::Hostname),
            Some(&DhcpOption::Hostname("web-1".into()))
        );
        match back.opts().get(OptionCode::ParameterRequestList) {
            Some(DhcpOption::ParameterRequestList(l)) => assert_eq!(l.len(), 3),
            other => panic!("{other:?}"),
        }
    }

    fn ack(extra: Vec<DhcpOption>) -> Message {
        let mut m = Message::new_with_id(
            1,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 249, 0, 20),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[2, 0, 0, 0, 0, 1],
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 249, 0, 1)));
        o.insert(DhcpOption::AddressLeaseTime(120));
        for x in extra {
            o.insert(x);
        }
        m
    }

    #[test]
    fn an_ack_gives_address_timers_and_routes() {
        let b = binding_from_ack(&ack(vec![DhcpOption::Router(vec![Ipv4Addr::new(
            10, 249, 0, 1,
        )])]))
        .unwrap();
        assert_eq!(b.address.to_string(), "10.249.0.20/16");
        assert_eq!((b.renew_secs, b.rebind_secs), (60, 102));
        assert_eq!(b.server, Ipv4Addr::new(10, 249, 0, 1));
        assert_eq!(
            b.routes(),
            vec![(
                "0.0.0.0/0".parse().unwrap(),
                Some(Ipv4Addr::new(10, 249, 0, 1))
            )]
        );
        // Option 121 replaces the router and option 33 (RFC 3442).
        let b = binding_from_ack(&ack(vec![
            DhcpOption::Router(vec![Ipv4Addr::new(10, 249, 0, 1)]),
            DhcpOption::ClasslessStaticRoute(vec![(
                "10.250.0.0/16".parse().unwrap(),
                Ipv4Addr::new(10, 249, 0, 2),
            )]),
        ]))
        .unwrap();
        assert_eq!(
            b.routes(),
            vec![(
                "10.250.0.0/16".parse().unwrap(),
                Some(Ipv4Addr::new(10, 249, 0, 2))
            )]
        );
        let e = binding_from_ack(&{
            let mut m = ack(vec![]);
            m.opts_mut().remove(OptionCode::SubnetMask);
            m
        })
        .unwrap_err();
        assert!(e.contains("Subnet Mask"), "{e}");
    }
}
