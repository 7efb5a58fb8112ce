//! The subset of Go's `encoding/gob` stream format that the reference
//! dhcp plugin and daemon exchange over `net/rpc`.
//!
//! The reference dials its daemon with `rpc.DialHTTP`, so the socket
//! carries gob (not JSON): a stream of length-prefixed messages, each a
//! type definition (negative type id) or a value (positive id). Values are
//! self-describing only through those definitions, so decoding is generic
//! ([`Decoder`] keeps the definitions the peer sent and turns values into
//! [`Value`] trees); encoding follows a schema ([`Type`]) and sends each
//! type's definition once per stream, before its first value, as Go does.
//!
//! Format facts (from the `encoding/gob` package documentation):
//! - unsigned integers below 128 are one byte; larger ones are the
//!   negated byte count followed by the big-endian bytes;
//! - signed integers are unsigned with the sign in bit 0
//!   (`i >= 0 ? i << 1 : (!i << 1) | 1`);
//! - strings and byte slices are a length and the bytes;
//! - a struct is a sequence of (field-number delta, value) ending in a 0
//!   delta; fields holding zero values (and nil pointers) are left out;
//! - slices are a count and the elements; pointers are sent flat;
//! - types implementing `GobEncoder` or `BinaryMarshaler` travel as byte
//!   strings (not `TextMarshaler`: `net.IP` is a plain byte slice);
//! - a top-level value that is not a struct is prefixed by a 0 byte.

use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Ids of Go's predeclared gob types.
const T_BOOL: i64 = 1;
const T_INT: i64 = 2;
const T_UINT: i64 = 3;
const T_FLOAT: i64 = 4;
const T_BYTES: i64 = 5;
const T_STRING: i64 = 6;
/// The first id a stream may give its own types.
const FIRST_USER_ID: i64 = 65;
/// No message of this protocol comes near this; a larger length prefix is
/// a broken or hostile peer.
const MAX_MESSAGE: u64 = 1 << 24;

/// A decoded gob value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    /// The fields that were sent (zero-valued ones are not), by name.
    Struct(Vec<(String, Value)>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// The payload of a `GobEncoder`/`BinaryMarshaler`/`TextMarshaler`.
    Opaque(Vec<u8>),
}

impl Value {
    /// A struct field by name; `None` when it was not sent (Go's zero value).
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string field, "" when absent.
    pub fn str_field(&self, name: &str) -> String {
        match self.field(name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// A byte-string field (bytes or opaque), empty when absent.
    pub fn bytes_field(&self, name: &str) -> Vec<u8> {
        match self.field(name) {
            Some(Value::Bytes(b) | Value::Opaque(b)) => b.clone(),
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        }
    }

    /// A list field, empty when absent.
    pub fn list_field(&self, name: &str) -> &[Value] {
        match self.field(name) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// An integer field, 0 when absent.
    pub fn int_field(&self, name: &str) -> i64 {
        match self.field(name) {
            Some(Value::Int(i)) => *i,
            Some(Value::Uint(u)) => i64::try_from(*u).unwrap_or(i64::MAX),
            _ => 0,
        }
    }

    /// Whether Go would leave this value out of a struct.
    fn is_zero(&self) -> bool {
        match self {
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::Float(f) => *f == 0.0,
            Value::Bytes(b) | Value::Opaque(b) => b.is_empty(),
            Value::String(s) => s.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Struct(_) => false,
        }
    }
}

/// The schema of a value we send.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Bool,
    Int,
    Uint,
    Bytes,
    String,
    /// A Go struct: its name (for the definition) and exported fields in
    /// declaration order.
    Struct(&'static str, Vec<(&'static str, Type)>),
    /// A slice (pointer elements are sent flat, as Go does).
    Slice(Box<Type>),
}

impl Type {
    fn builtin_id(&self) -> Option<i64> {
        Some(match self {
            Type::Bool => T_BOOL,
            Type::Int => T_INT,
            Type::Uint => T_UINT,
            Type::Bytes => T_BYTES,
            Type::String => T_STRING,
            _ => return None,
        })
    }

    /// What identifies the type within one stream.
    fn key(&self) -> String {
        match self {
            Type::Struct(name, _) => format!("struct {name}"),
            Type::Slice(elem) => format!("[]{}", elem.key()),
            other => format!("{other:?}"),
        }
    }

    fn name(&self) -> String {
        match self {
            Type::Struct(name, _) => name.to_string(),
            Type::Slice(elem) => format!("[]{}", elem.name()),
            other => format!("{other:?}").to_lowercase(),
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gob: {}", msg.into()))
}

// ---- primitives -----------------------------------------------------------

fn put_uint(buf: &mut Vec<u8>, v: u64) {
    if v < 128 {
        buf.push(v as u8);
        return;
    }
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let n = bytes.len() - skip;
    // The negated byte count, as one byte.
    buf.push((256 - n) as u8);
    buf.extend_from_slice(&bytes[skip..]);
}

fn put_int(buf: &mut Vec<u8>, v: i64) {
    let u = if v < 0 {
        ((!v as u64) << 1) | 1
    } else {
        (v as u64) << 1
    };
    put_uint(buf, u);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over one message's bytes.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> io::Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| invalid("message ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| invalid("length runs past the message"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self) -> io::Result<u64> {
        let b = self.byte()?;
        if b < 128 {
            return Ok(u64::from(b));
        }
        let n = 256 - usize::from(b);
        if n > 8 {
            return Err(invalid("integer longer than 8 bytes"));
        }
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn int(&mut self) -> io::Result<i64> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = usize::try_from(self.uint()?).map_err(|_| invalid("length too large"))?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| invalid("string is not UTF-8"))
    }

    /// Walk a struct: `f(field_number, self)` for each field sent.
    fn each_field(
        &mut self,
        mut f: impl FnMut(usize, &mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut field: i64 = -1;
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            field = field
                .checked_add(i64::try_from(delta).map_err(|_| invalid("field delta too large"))?)
                .ok_or_else(|| invalid("field number overflow"))?;
            f(
                usize::try_from(field).map_err(|_| invalid("bad field number"))?,
                self,
            )?;
        }
    }
}

/// Read one length-prefixed message from `r`.
fn read_message(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut first = [0u8; 1];
    r.read_exact(&mut first)?;
    let len = if first[0] < 128 {
        u64::from(first[0])
    } else {
        let n = 256 - usize::from(first[0]);
        if n > 8 {
            return Err(invalid("message length longer than 8 bytes"));
        }
        let mut b = [0u8; 8];
        r.read_exact(&mut b[8 - n..])?;
        u64::from_be_bytes(b)
    };
    if len > MAX_MESSAGE {
        return Err(invalid(format!("message of {len} bytes")));
    }
    let mut msg = vec![0u8; len as usize];
    r.read_exact(&mut msg)?;
    Ok(msg)
}

// ---- decoding ---------------------------------------------------------------

/// A type the peer defined.
#[derive(Debug, Clone)]
enum Wire {
    Array(i64),
    Slice(i64),
    Struct(Vec<(String, i64)>),
    Map(i64, i64),
    Opaque,
}

/// Reads values from one gob stream, keeping the peer's type definitions.
#[derive(Debug, Default)]
pub struct Decoder {
    types: HashMap<i64, Wire>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The next value on the stream, after any type definitions before it.
    pub fn decode(&mut self, r: &mut impl Read) -> io::Result<Value> {
        loop {
            let msg = read_message(r)?;
            let mut c = Cursor { data: &msg, pos: 0 };
            let id = c.int()?;
            if id < 0 {
                let wire = read_wire_type(&mut c)?;
                self.types.insert(-id, wire);
                continue;
            }
            let is_struct = matches!(self.types.get(&id), Some(Wire::Struct(_)));
            if !is_struct {
                // A singleton: a 0 delta precedes the value.
                if c.uint()? != 0 {
                    return Err(invalid("top-level value without its 0 prefix"));
                }
            }
            return self.value(id, &mut c, 0);
        }
    }

    fn value(&self, id: i64, c: &mut Cursor, depth: usize) -> io::Result<Value> {
        if depth > 32 {
            return Err(invalid("values nested too deep"));
        }
        Ok(match id {
            T_BOOL => Value::Bool(c.uint()? != 0),
            T_INT => Value::Int(c.int()?),
            T_UINT => Value::Uint(c.uint()?),
            T_FLOAT => Value::Float(f64::from_bits(c.uint()?.swap_bytes())),
            T_BYTES => Value::Bytes(c.bytes()?),
            T_STRING => Value::String(c.string()?),
            _ => match self.types.get(&id) {
                None => return Err(invalid(format!("value of undefined type {id}"))),
                Some(Wire::Opaque) => Value::Opaque(c.bytes()?),
                Some(Wire::Array(elem) | Wire::Slice(elem)) => {
                    let n = c.uint()?;
                    let mut items = Vec::new();
                    for _ in 0..n {
                        items.push(self.value(*elem, c, depth + 1)?);
                    }
                    Value::List(items)
                }
                Some(Wire::Map(k, v)) => {
                    let n = c.uint()?;
                    let mut items = Vec::new();
                    for _ in 0..n {
                        let key = self.value(*k, c, depth + 1)?;
                        items.push((key, self.value(*v, c, depth + 1)?));
                    }
                    Value::Map(items)
                }
                Some(Wire::Struct(fields)) => {
                    let mut out = Vec::new();
                    c.each_field(|n, c| {
                        let (name, fid) = fields
                            .get(n)
                            .ok_or_else(|| invalid(format!("field {n} past the struct's end")))?;
                        out.push((name.clone(), self.value(*fid, c, depth + 1)?));
                        Ok(())
                    })?;
                    Value::Struct(out)
                }
            },
        })
    }
}

/// `CommonType{Name string; Id typeId}`: the id only.
fn read_common(c: &mut Cursor) -> io::Result<()> {
    c.each_field(|n, c| match n {
        0 => c.string().map(drop),
        1 => c.int().map(drop),
        _ => Err(invalid("unknown CommonType field")),
    })
}

/// A `wireType`: exactly one of its fields is set.
fn read_wire_type(c: &mut Cursor) -> io::Result<Wire> {
    let mut wire = None;
    c.each_field(|n, c| {
        let mut elem = 0;
        let mut key = 0;
        let mut fields = Vec::new();
        match n {
            // ArrayT {CommonType, Elem, Len}
            0 => c.each_field(|f, c| match f {
                0 => read_common(c),
                1 => c.int().map(|v| elem = v),
                2 => c.int().map(drop),
                _ => Err(invalid("unknown arrayType field")),
            })?,
            // SliceT {CommonType, Elem}
            1 => c.each_field(|f, c| match f {
                0 => read_common(c),
                1 => c.int().map(|v| elem = v),
                _ => Err(invalid("unknown sliceType field")),
            })?,
            // StructT {CommonType, Field []fieldType{Name, Id}}
            2 => c.each_field(|f, c| match f {
                0 => read_common(c),
                1 => {
                    for _ in 0..c.uint()? {
                        let mut name = String::new();
                        let mut id = 0;
                        c.each_field(|g, c| match g {
                            0 => c.string().map(|s| name = s),
                            1 => c.int().map(|v| id = v),
                            _ => Err(invalid("unknown fieldType field")),
                        })?;
                        fields.push((name, id));
                    }
                    Ok(())
                }
                _ => Err(invalid("unknown structType field")),
            })?,
            // MapT {CommonType, Key, Elem}
            3 => c.each_field(|f, c| match f {
                0 => read_common(c),
                1 => c.int().map(|v| key = v),
                2 => c.int().map(|v| elem = v),
                _ => Err(invalid("unknown mapType field")),
            })?,
            // GobEncoderT, BinaryMarshalerT, TextMarshalerT {CommonType}
            4..=6 => c.each_field(|f, c| match f {
                0 => read_common(c),
                _ => Err(invalid("unknown gobEncoderType field")),
            })?,
            _ => return Err(invalid(format!("unknown wireType field {n}"))),
        }
        wire = Some(match n {
            0 => Wire::Array(elem),
            1 => Wire::Slice(elem),
            2 => Wire::Struct(fields),
            3 => Wire::Map(key, elem),
            _ => Wire::Opaque,
        });
        Ok(())
    })?;
    wire.ok_or_else(|| invalid("empty type definition"))
}

// ---- encoding ---------------------------------------------------------------

/// Writes values to one gob stream, defining each type once.
#[derive(Debug, Default)]
pub struct Encoder {
    ids: HashMap<String, i64>,
    next: i64,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            ids: HashMap::new(),
            next: FIRST_USER_ID,
        }
    }

    /// Send `value` (of type `ty`, a struct) with any definitions it needs.
    pub fn encode(&mut self, w: &mut impl Write, ty: &Type, value: &Value) -> io::Result<()> {
        let mut out = Vec::new();
        let id = self.define(ty, &mut out);
        let mut msg = Vec::new();
        put_int(&mut msg, id);
        if !matches!(ty, Type::Struct(..)) {
            put_uint(&mut msg, 0);
        }
        encode_value(&mut msg, ty, value)?;
        frame(&mut out, &msg);
        w.write_all(&out)?;
        w.flush()
    }

    /// The id of `ty` in this stream, appending its definition (and those
    /// of the types inside it) to `out` the first time.
    fn define(&mut self, ty: &Type, out: &mut Vec<u8>) -> i64 {
        if let Some(id) = ty.builtin_id() {
            return id;
        }
        let key = ty.key();
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.ids.insert(key, id);
        // Inner types first, so the definition can name their ids.
        let mut body = Vec::new();
        match ty {
            Type::Struct(name, fields) => {
                let ids: Vec<i64> = fields.iter().map(|(_, t)| self.define(t, out)).collect();
                put_uint(&mut body, 3); // field 2: StructT
                put_uint(&mut body, 1); //   field 0: CommonType
                common(&mut body, name, id);
                put_uint(&mut body, 1); //   field 1: Field
                put_uint(&mut body, fields.len() as u64);
                for ((fname, _), fid) in fields.iter().zip(ids) {
                    put_uint(&mut body, 1);
                    put_bytes(&mut body, fname.as_bytes());
                    put_uint(&mut body, 1);
                    put_int(&mut body, fid);
                    put_uint(&mut body, 0);
                }
                put_uint(&mut body, 0);
            }
            Type::Slice(elem) => {
                let eid = self.define(elem, out);
                put_uint(&mut body, 2); // field 1: SliceT
                put_uint(&mut body, 1);
                common(&mut body, &ty.name(), id);
                put_uint(&mut body, 1);
                put_int(&mut body, eid);
                put_uint(&mut body, 0);
            }
            _ => unreachable!("builtin types have ids"),
        }
        put_uint(&mut body, 0); // end of wireType
        let mut msg = Vec::new();
        put_int(&mut msg, -id);
        msg.extend_from_slice(&body);
        frame(out, &msg);
        id
    }
}

fn common(buf: &mut Vec<u8>, name: &str, id: i64) {
    if !name.is_empty() {
        put_uint(buf, 1);
        put_bytes(buf, name.as_bytes());
        put_uint(buf, 1);
    } else {
        put_uint(buf, 2);
    }
    put_int(buf, id);
    put_uint(buf, 0);
}

fn frame(out: &mut Vec<u8>, msg: &[u8]) {
    put_uint(out, msg.len() as u64);
    out.extend_from_slice(msg);
}

fn mismatch(ty: &Type, v: &Value) -> io::Error {
    invalid(format!("value {v:?} does not fit type {}", ty.name()))
}

fn encode_value(buf: &mut Vec<u8>, ty: &Type, v: &Value) -> io::Result<()> {
    match (ty, v) {
        (Type::Bool, Value::Bool(b)) => put_uint(buf, u64::from(*b)),
        (Type::Int, Value::Int(i)) => put_int(buf, *i),
        (Type::Uint, Value::Uint(u)) => put_uint(buf, *u),
        (Type::Bytes, Value::Bytes(b)) => put_bytes(buf, b),
        (Type::String, Value::String(s)) => put_bytes(buf, s.as_bytes()),
        (Type::Slice(elem), Value::List(items)) => {
            put_uint(buf, items.len() as u64);
            for item in items {
                encode_value(buf, elem, item)?;
            }
        }
        (Type::Struct(_, fields), Value::Struct(values)) => {
            let mut last: i64 = -1;
            for (n, (fname, fty)) in fields.iter().enumerate() {
                let Some((_, fv)) = values.iter().find(|(name, _)| name == fname) else {
                    continue;
                };
                if fv.is_zero() {
                    continue;
                }
                put_uint(buf, (n as i64 - last) as u64);
                last = n as i64;
                encode_value(buf, fty, fv)?;
            }
            put_uint(buf, 0);
        }
        _ => return Err(mismatch(ty, v)),
    }
    Ok(())
}

/// A struct value from (name, value) pairs.
pub fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Struct(
        fields
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_gobs_variable_length_forms() {
        let mut b = Vec::new();
        put_uint(&mut b, 7);
        put_uint(&mut b, 256);
        put_int(&mut b, -129);
        put_int(&mut b, 3);
        // 256 = FE 01 00; -129 -> (128<<1)|1 = 257 = FE 01 01; 3 -> 6.
        assert_eq!(b, vec![7, 0xFE, 1, 0, 0xFE, 1, 1, 6]);
        let mut c = Cursor { data: &b, pos: 0 };
        assert_eq!(c.uint().unwrap(), 7);
        assert_eq!(c.uint().unwrap(), 256);
        assert_eq!(c.int().unwrap(), -129);
        assert_eq!(c.int().unwrap(), 3);
    }

    /// `rpc.Request{ServiceMethod: "DHCP.Allocate", Seq: 0}` assembled by
    /// hand from the format description: the definition of `Request`
    /// (id 65) and then the value, whose zero `Seq` is left out. The
    /// end-to-end tests check the same against the reference binaries.
    #[test]
    fn decodes_what_go_writes_for_an_rpc_request() {
        let go: &[u8] = &[
            0x2f, 0xff, 0x81, 0x03, 0x01, 0x01, 0x07, 0x52, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74,
            0x01, 0xff, 0x82, 0x00, 0x01, 0x02, 0x01, 0x0d, 0x53, 0x65, 0x72, 0x76, 0x69, 0x63,
            0x65, 0x4d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x01, 0x0c, 0x00, 0x01, 0x03, 0x53, 0x65,
            0x71, 0x01, 0x06, 0x00, 0x00, 0x00, 0x12, 0xff, 0x82, 0x01, 0x0d, 0x44, 0x48, 0x43,
            0x50, 0x2e, 0x41, 0x6c, 0x6c, 0x6f, 0x63, 0x61, 0x74, 0x65, 0x00,
        ];
        let v = Decoder::new().decode(&mut &go[..]).unwrap();
        assert_eq!(v.str_field("ServiceMethod"), "DHCP.Allocate");
        assert_eq!(v.field("Seq"), None);
    }

    #[test]
    fn what_we_encode_decodes_back() {
        let ip = Type::Bytes;
        let ipnet = Type::Struct("IPNet", vec![("IP", ip.clone()), ("Mask", Type::Bytes)]);
        let ty = Type::Struct(
            "Result",
            vec![
                ("CNIVersion", Type::String),
                (
                    "IPs",
                    Type::Slice(Box::new(Type::Struct(
                        "IPConfig",
                        vec![("Address", ipnet.clone()), ("Gateway", ip.clone())],
                    ))),
                ),
                (
                    "Routes",
                    Type::Slice(Box::new(Type::Struct(
                        "Route",
                        vec![("Dst", ipnet), ("Priority", Type::Int)],
                    ))),
                ),
            ],
        );
        let addr = record(vec![
            ("IP", Value::Bytes(vec![10, 249, 0, 5])),
            ("Mask", Value::Bytes(vec![255, 255, 0, 0])),
        ]);
        let value = record(vec![
            (
                "IPs",
                Value::List(vec![record(vec![
                    ("Address", addr.clone()),
                    ("Gateway", Value::Bytes(vec![10, 249, 0, 1])),
                ])]),
            ),
            (
                "Routes",
                Value::List(vec![record(vec![
                    ("Dst", addr),
                    ("Priority", Value::Int(-5)),
                ])]),
            ),
        ]);
        let mut enc = Encoder::new();
        let mut wire = Vec::new();
        enc.encode(&mut wire, &ty, &value).unwrap();
        // A second value reuses the definitions.
        let first = wire.len();
        enc.encode(&mut wire, &ty, &value).unwrap();
        assert!(wire.len() - first < first / 2, "definitions sent twice");
        let mut r = &wire[..];
        let mut dec = Decoder::new();
        for _ in 0..2 {
            let back = dec.decode(&mut r).unwrap();
            assert_eq!(back, value);
        }
    }
}
