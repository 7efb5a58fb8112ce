//! The plugin-to-daemon protocol of the reference: Go's `net/rpc` over an
//! HTTP `CONNECT` on a unix socket, with gob-encoded messages.
//!
//! A call is `CONNECT /_goRPC_ HTTP/1.0`, the answer
//! `HTTP/1.0 200 Connected to Go RPC`, then per call a request header
//! (`rpc.Request{ServiceMethod, Seq}`) and body (the skeleton's
//! `skel.CmdArgs`), answered by a response header
//! (`rpc.Response{ServiceMethod, Seq, Error}`) and body (a
//! `current.Result` for `DHCP.Allocate`, an empty struct for
//! `DHCP.Release` and for every error). Gob matches struct fields by name,
//! so fields one side has and the other lacks (`NetnsOverride` in newer
//! releases, `MTU` on routes) are skipped on both sides.

use crate::gob::{record, Decoder, Encoder, Type, Value};
use cni::{CniResult, IpConfig, Route};
use ipnet::IpNet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub const ALLOCATE: &str = "DHCP.Allocate";
pub const RELEASE: &str = "DHCP.Release";
/// Ours: release the leases of attachments a GC call does not list.
pub const GC: &str = "DHCP.GC";
const RPC_PATH: &str = "/_goRPC_";
const CONNECTED: &str = "200 Connected to Go RPC";

/// `skel.CmdArgs`: what a plugin call sends the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdArgs {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: String,
    pub stdin_data: Vec<u8>,
}

impl CmdArgs {
    fn gob_type() -> Type {
        Type::Struct(
            "CmdArgs",
            vec![
                ("ContainerID", Type::String),
                ("Netns", Type::String),
                ("IfName", Type::String),
                ("Args", Type::String),
                ("Path", Type::String),
                ("StdinData", Type::Bytes),
            ],
        )
    }

    fn to_value(&self) -> Value {
        record(vec![
            ("ContainerID", Value::String(self.container_id.clone())),
            ("Netns", Value::String(self.netns.clone())),
            ("IfName", Value::String(self.ifname.clone())),
            ("Args", Value::String(self.args.clone())),
            ("Path", Value::String(self.path.clone())),
            ("StdinData", Value::Bytes(self.stdin_data.clone())),
        ])
    }

    fn from_value(v: &Value) -> CmdArgs {
        CmdArgs {
            container_id: v.str_field("ContainerID"),
            netns: v.str_field("Netns"),
            ifname: v.str_field("IfName"),
            args: v.str_field("Args"),
            path: v.str_field("Path"),
            stdin_data: v.bytes_field("StdinData"),
        }
    }
}

fn header_type(response: bool) -> Type {
    let mut fields = vec![("ServiceMethod", Type::String), ("Seq", Type::Uint)];
    if response {
        fields.push(("Error", Type::String));
        Type::Struct("Response", fields)
    } else {
        Type::Struct("Request", fields)
    }
}

fn empty_type() -> Type {
    Type::Struct("", Vec::new())
}

/// `net.IPNet` as gob sends it. `net.IP` is a plain byte slice on the
/// wire: gob deliberately ignores its `MarshalText` (golang.org/issue/6760).
fn ipnet_type() -> Type {
    Type::Struct("IPNet", vec![("IP", Type::Bytes), ("Mask", Type::Bytes)])
}

/// The parts of `current.Result` the daemon fills.
fn result_type() -> Type {
    Type::Struct(
        "Result",
        vec![
            ("CNIVersion", Type::String),
            (
                "IPs",
                Type::Slice(Box::new(Type::Struct(
                    "IPConfig",
                    vec![("Address", ipnet_type()), ("Gateway", Type::Bytes)],
                ))),
            ),
            (
                "Routes",
                Type::Slice(Box::new(Type::Struct(
                    "Route",
                    vec![
                        ("Dst", ipnet_type()),
                        ("GW", Type::Bytes),
                        ("Priority", Type::Int),
                    ],
                ))),
            ),
        ],
    )
}

/// `net.IP`: 4 bytes for IPv4 (as Go's DHCP code holds them), 16 for IPv6.
fn ip_value(ip: Option<IpAddr>) -> Value {
    Value::Bytes(match ip {
        None => Vec::new(),
        Some(IpAddr::V4(a)) => a.octets().to_vec(),
        Some(IpAddr::V6(a)) => a.octets().to_vec(),
    })
}

fn ipnet_value(net: &IpNet) -> Value {
    let mask = match net.netmask() {
        IpAddr::V4(m) => m.octets().to_vec(),
        IpAddr::V6(m) => m.octets().to_vec(),
    };
    record(vec![
        ("IP", ip_value(Some(net.addr()))),
        ("Mask", Value::Bytes(mask)),
    ])
}

/// The daemon's answer as the reference's client decodes it. `CNIVersion`
/// is left out so the client keeps the version it asked in.
pub fn result_to_value(r: &CniResult) -> Value {
    record(vec![
        (
            "IPs",
            Value::List(
                r.ips
                    .iter()
                    .map(|ip| {
                        record(vec![
                            ("Address", ipnet_value(&ip.address)),
                            ("Gateway", ip_value(ip.gateway)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "Routes",
            Value::List(
                r.routes
                    .iter()
                    .map(|rt| {
                        record(vec![
                            ("Dst", ipnet_value(&rt.dst)),
                            ("GW", ip_value(rt.gw)),
                            ("Priority", Value::Int(i64::from(rt.priority.unwrap_or(0)))),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}

/// A `net.IP`: 4 bytes, or 16 (IPv4 then in its IPv6-mapped form).
fn ip_from(bytes: &[u8]) -> Result<Option<IpAddr>, String> {
    match bytes.len() {
        4 => Ok(Some(IpAddr::from(
            <[u8; 4]>::try_from(bytes).unwrap_or_default(),
        ))),
        16 => Ok(Some(cni::ip::canonical(IpAddr::from(
            <[u8; 16]>::try_from(bytes).unwrap_or_default(),
        )))),
        0 => Ok(None),
        _ => Err(format!("{bytes:?} is not an IP address")),
    }
}

fn ipnet_from(v: &Value) -> Result<IpNet, String> {
    let ip = ip_from(&v.bytes_field("IP"))?.ok_or("address without an IP")?;
    let mask = v.bytes_field("Mask");
    let prefix: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let prefix = u8::try_from(prefix).map_err(|_| "bad mask")?;
    // A 4-byte mask on an IPv4 address, or a 16-byte one on either.
    let prefix = match ip {
        IpAddr::V4(_) if mask.len() == 16 => prefix.saturating_sub(96),
        _ => prefix,
    };
    IpNet::new(ip, prefix).map_err(|e| format!("{ip}/{prefix}: {e}"))
}

/// A `current.Result` from the daemon, as our result type.
pub fn result_from_value(v: &Value) -> Result<CniResult, String> {
    let mut out = CniResult::default();
    for ip in v.list_field("IPs") {
        out.ips.push(IpConfig {
            interface: None,
            address: ipnet_from(ip.field("Address").ok_or("IP config without an address")?)?,
            gateway: ip_from(&ip.bytes_field("Gateway"))?,
        });
    }
    for rt in v.list_field("Routes") {
        let mut route = Route::new(
            ipnet_from(rt.field("Dst").ok_or("route without a destination")?)?,
            ip_from(&rt.bytes_field("GW"))?,
        );
        route.priority = u32::try_from(rt.int_field("Priority"))
            .ok()
            .filter(|p| *p != 0);
        out.routes.push(route);
    }
    Ok(out)
}

/// Why a call failed: the daemon could not be reached, or it answered
/// with an error.
#[derive(Debug)]
pub enum CallError {
    Unreachable(io::Error),
    Remote(String),
    Protocol(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "{e}"),
            CallError::Remote(e) => write!(f, "{e}"),
            CallError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Connect to the daemon's socket and do the HTTP `CONNECT`.
pub fn connect(socket: &Path, timeout: Duration) -> Result<BufReader<UnixStream>, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(CallError::Unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(CallError::Unreachable)?;
    write!(stream, "CONNECT {RPC_PATH} HTTP/1.0\n\n").map_err(CallError::Unreachable)?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(CallError::Unreachable)?;
    if !status.contains(CONNECTED) {
        return Err(CallError::Protocol(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected HTTP response {:?}", status.trim_end()),
        )));
    }
    // Headers, up to the blank line.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(CallError::Protocol)? == 0
            || line.trim_end().is_empty()
        {
            return Ok(reader);
        }
    }
}

/// One call: `method` with `args`; the reply body on success.
pub fn call(
    socket: &Path,
    method: &str,
    args: &CmdArgs,
    timeout: Duration,
) -> Result<Value, CallError> {
    let mut conn = connect(socket, timeout)?;
    let mut enc = Encoder::new();
    let header = record(vec![
        ("ServiceMethod", Value::String(method.to_string())),
        ("Seq", Value::Uint(0)),
    ]);
    let send = |conn: &mut BufReader<UnixStream>, enc: &mut Encoder| -> io::Result<()> {
        let w = conn.get_mut();
        enc.encode(w, &header_type(false), &header)?;
        enc.encode(w, &CmdArgs::gob_type(), &args.to_value())
    };
    send(&mut conn, &mut enc).map_err(CallError::Protocol)?;
    let mut dec = Decoder::new();
    let response = dec.decode(&mut conn).map_err(CallError::Protocol)?;
    let body = dec.decode(&mut conn).map_err(CallError::Protocol)?;
    let error = response.str_field("Error");
    if !error.is_empty() {
        return Err(CallError::Remote(error));
    }
    Ok(body)
}

/// What a daemon method returns: a result, or nothing (Release).
pub enum Reply {
    Result(CniResult),
    Empty,
}

/// Serve one connection: answer each call with `handle` until the peer
/// hangs up.
pub fn serve(
    stream: UnixStream,
    handle: &dyn Fn(&str, CmdArgs) -> Result<Reply, String>,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    if parts.next() != Some("CONNECT") || parts.next() != Some(RPC_PATH) {
        reader.get_mut().write_all(
            b"HTTP/1.0 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n405 must CONNECT\n",
        )?;
        return Ok(());
    }
    write!(reader.get_mut(), "HTTP/1.0 {CONNECTED}\n\n")?;
    let mut dec = Decoder::new();
    let mut enc = Encoder::new();
    loop {
        let header = match dec.decode(&mut reader) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let body = dec.decode(&mut reader)?;
        let method = header.str_field("ServiceMethod");
        let seq = match header.field("Seq") {
            Some(Value::Uint(s)) => *s,
            _ => 0,
        };
        let answer = handle(&method, CmdArgs::from_value(&body));
        let (error, body_type, body) = match answer {
            Ok(Reply::Result(r)) => (String::new(), result_type(), result_to_value(&r)),
            Ok(Reply::Empty) => (String::new(), empty_type(), record(Vec::new())),
            Err(e) => (e, empty_type(), record(Vec::new())),
        };
        let w = reader.get_mut();
        let response = record(vec![
            ("ServiceMethod", Value::String(method)),
            ("Seq", Value::Uint(seq)),
            ("Error", Value::String(error)),
        ]);
        enc.encode(w, &header_type(true), &response)?;
        enc.encode(w, &body_type, &body)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_call_round_trips_through_our_server() {
        let dir = std::env::temp_dir().join(format!("dhcp-rpc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (conn, _) = listener.accept().unwrap();
                serve(conn, &|method, args| {
                    assert_eq!(args.ifname, "eth0");
                    match method {
                        ALLOCATE => {
                            let mut r = CniResult::default();
                            r.ips.push(IpConfig {
                                interface: None,
                                address: "10.249.3.7/16".parse().unwrap(),
                                gateway: Some("10.249.0.1".parse().unwrap()),
                            });
                            let mut rt = Route::new(
                                "0.0.0.0/0".parse().unwrap(),
                                Some("10.249.0.1".parse().unwrap()),
                            );
                            rt.priority = Some(50);
                            r.routes.push(rt);
                            Ok(Reply::Result(r))
                        }
                        _ => Err("no lease".into()),
                    }
                })
                .unwrap();
            }
        });
        let args = CmdArgs {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            stdin_data: b"{}".to_vec(),
            ..Default::default()
        };
        let v = call(&sock, ALLOCATE, &args, Duration::from_secs(5)).unwrap();
        let r = result_from_value(&v).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.249.3.7/16");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.249.0.1");
        assert_eq!(r.routes[0].priority, Some(50));
        match call(&sock, RELEASE, &args, Duration::from_secs(5)) {
            Err(CallError::Remote(e)) => assert_eq!(e, "no lease"),
            other => panic!("{other:?}"),
        }
        server.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
