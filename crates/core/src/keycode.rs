//! Keycode: an order-preserving binary encoding for keys.
//!
//! Every block lays out its keys as tuples (`(table, index, value, pk)`, `(namespace, key)`),
//! encoded so that comparing the encoded bytes lexicographically gives the same order as
//! comparing the tuples element by element. Range and prefix scans over the store then walk
//! tuples in their natural order.
//!
//! # Format
//!
//! All integers are big-endian, so that byte order is numeric order.
//!
//! | type   | bytes                                                                          |
//! |--------|--------------------------------------------------------------------------------|
//! | bool   | `00` false, `01` true                                                          |
//! | u64    | 8 bytes big-endian                                                             |
//! | i64    | 8 bytes big-endian of the value with its sign bit flipped                      |
//! | f64    | IEEE bits; negative: all bits flipped, else sign bit flipped; 8 bytes BE       |
//! | bytes  | each `00` escaped as `00 FF`, then the terminator `00 00`                      |
//! | string | its UTF-8 bytes, encoded as bytes                                              |
//!
//! The escape makes a byte string's encoding never a prefix of a longer string's encoding
//! followed by more tuple elements, so `("a", 2)` sorts before `("ab", 1)`.
//!
//! A dynamically typed [`Value`] (used where the type of a tuple element is data, as in SQL
//! index keys) is one tag byte followed by the element's encoding above:
//! `00` NULL, `01` bool, `02` i64, `03` u64, `04` f64, `05` string, `06` bytes. Values of
//! different types sort by tag, so NULL sorts first. f64 order is [`f64::total_cmp`]:
//! `-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN`.

use crate::{Result, errcorrupt};
use std::cmp::Ordering;

/// Builds an encoded key element by element.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    /// An empty key.
    pub fn new() -> Self {
        Self(Vec::with_capacity(32))
    }

    /// Appends one raw byte (used for keyspace prefixes: an enum's discriminant).
    pub fn tag(mut self, tag: u8) -> Self {
        self.0.push(tag);
        self
    }

    /// Appends a bool.
    pub fn bool(mut self, v: bool) -> Self {
        encode_bool(&mut self.0, v);
        self
    }

    /// Appends an unsigned integer.
    pub fn u64(mut self, v: u64) -> Self {
        encode_u64(&mut self.0, v);
        self
    }

    /// Appends a signed integer.
    pub fn i64(mut self, v: i64) -> Self {
        encode_i64(&mut self.0, v);
        self
    }

    /// Appends a float.
    pub fn f64(mut self, v: f64) -> Self {
        encode_f64(&mut self.0, v);
        self
    }

    /// Appends a byte string.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        encode_bytes(&mut self.0, v);
        self
    }

    /// Appends a string.
    pub fn str(self, v: &str) -> Self {
        self.bytes(v.as_bytes())
    }

    /// Appends a dynamically typed value with its tag.
    pub fn value(mut self, v: &Value) -> Self {
        v.encode_into(&mut self.0);
        self
    }

    /// Appends raw, already encoded bytes.
    pub fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }

    /// The encoded key.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Appends an encoded bool.
pub fn encode_bool(out: &mut Vec<u8>, v: bool) {
    out.push(v as u8);
}

/// Appends an encoded u64.
pub fn encode_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends an encoded i64.
pub fn encode_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends an encoded f64.
pub fn encode_f64(out: &mut Vec<u8>, v: f64) {
    let bits = v.to_bits();
    let bits = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
    out.extend_from_slice(&bits.to_be_bytes());
}

/// Appends an encoded byte string (escaped and terminated).
pub fn encode_bytes(out: &mut Vec<u8>, v: &[u8]) {
    out.reserve(v.len() + 2);
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The smallest key greater than every key starting with `prefix`, or `None` when there is
/// none (the prefix is empty or all `FF`). Used as the exclusive end of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads encoded elements back, in the order they were written.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Starts decoding `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(errcorrupt!("key ends after {} bytes, {n} needed", self.rest.len()));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn take8(&mut self) -> Result<u64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
        Ok(u64::from_be_bytes(bytes))
    }

    /// Reads one raw byte.
    pub fn tag(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// Reads a bool.
    pub fn bool(&mut self) -> Result<bool> {
        match self.tag()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(errcorrupt!("invalid bool byte {b:#04x}")),
        }
    }

    /// Reads a u64.
    pub fn u64(&mut self) -> Result<u64> {
        self.take8()
    }

    /// Reads an i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok((self.take8()? ^ (1 << 63)) as i64)
    }

    /// Reads an f64.
    pub fn f64(&mut self) -> Result<f64> {
        let bits = self.take8()?;
        let bits = if bits >> 63 == 1 { bits ^ (1 << 63) } else { !bits };
        Ok(f64::from_bits(bits))
    }

    /// Reads a byte string.
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match (self.rest.get(i), self.rest.get(i + 1)) {
                (Some(0), Some(0)) => break,
                (Some(0), Some(0xff)) => {
                    out.push(0);
                    i += 2;
                }
                (Some(0), other) => {
                    return Err(errcorrupt!("invalid escape in key bytes: 00 {other:?}"));
                }
                (Some(&b), _) => {
                    out.push(b);
                    i += 1;
                }
                (None, _) => return Err(errcorrupt!("unterminated byte string in key")),
            }
        }
        self.rest = &self.rest[i + 2..];
        Ok(out)
    }

    /// Reads a string.
    pub fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?).map_err(|e| errcorrupt!("key string not UTF-8: {e}"))
    }

    /// Reads a tagged dynamic value.
    pub fn value(&mut self) -> Result<Value> {
        Ok(match self.tag()? {
            TAG_NULL => Value::Null,
            TAG_BOOL => Value::Bool(self.bool()?),
            TAG_INT => Value::Int(self.i64()?),
            TAG_UINT => Value::UInt(self.u64()?),
            TAG_FLOAT => Value::Float(self.f64()?),
            TAG_STR => Value::Str(self.string()?),
            TAG_BYTES => Value::Bytes(self.bytes()?),
            tag => return Err(errcorrupt!("unknown keycode tag {tag:#04x}")),
        })
    }
}

const TAG_NULL: u8 = 0x00;
const TAG_BOOL: u8 = 0x01;
const TAG_INT: u8 = 0x02;
const TAG_UINT: u8 = 0x03;
const TAG_FLOAT: u8 = 0x04;
const TAG_STR: u8 = 0x05;
const TAG_BYTES: u8 = 0x06;

/// A dynamically typed tuple element. Its `Ord` is the order of its encoding.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
}

impl Value {
    fn tag(&self) -> u8 {
        match self {
            Value::Null => TAG_NULL,
            Value::Bool(_) => TAG_BOOL,
            Value::Int(_) => TAG_INT,
            Value::UInt(_) => TAG_UINT,
            Value::Float(_) => TAG_FLOAT,
            Value::Str(_) => TAG_STR,
            Value::Bytes(_) => TAG_BYTES,
        }
    }

    /// Appends the tag and the encoding of this value.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            Value::Null => {}
            Value::Bool(v) => encode_bool(out, *v),
            Value::Int(v) => encode_i64(out, *v),
            Value::UInt(v) => encode_u64(out, *v),
            Value::Float(v) => encode_f64(out, *v),
            Value::Str(v) => encode_bytes(out, v.as_bytes()),
            Value::Bytes(v) => encode_bytes(out, v),
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::UInt(a), Value::UInt(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (a, b) => a.tag().cmp(&b.tag()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

/// Encodes a tuple of dynamic values.
pub fn encode_tuple(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode_into(&mut out);
    }
    out
}

/// Decodes a whole tuple of dynamic values.
pub fn decode_tuple(bytes: &[u8]) -> Result<Vec<Value>> {
    let mut dec = Decoder::new(bytes);
    let mut out = Vec::new();
    while !dec.is_empty() {
        out.push(dec.value()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn byte_forms_are_pinned() {
        assert_eq!(hex(&KeyBuf::new().bool(true).finish()), "01");
        assert_eq!(hex(&KeyBuf::new().u64(1).finish()), "0000000000000001");
        assert_eq!(hex(&KeyBuf::new().i64(-1).finish()), "7fffffffffffffff");
        assert_eq!(hex(&KeyBuf::new().i64(0).finish()), "8000000000000000");
        assert_eq!(hex(&KeyBuf::new().f64(1.0).finish()), "bff0000000000000");
        assert_eq!(hex(&KeyBuf::new().f64(-1.0).finish()), "400fffffffffffff");
        assert_eq!(hex(&KeyBuf::new().bytes(&[1, 0, 2]).finish()), "0100ff020000");
        assert_eq!(hex(&KeyBuf::new().str("ab").finish()), "61620000");
        assert_eq!(hex(&encode_tuple(&[Value::Null, Value::Int(1)])), "00028000000000000001");
    }

    #[test]
    fn prefix_end_increments_last_non_ff_byte() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        assert!(Decoder::new(&[1, 2]).u64().is_err());
        assert!(Decoder::new(&[0x61, 0x00]).bytes().is_err());
        assert!(Decoder::new(&[0x00, 0x01]).bytes().is_err());
        assert!(decode_tuple(&[0x7f]).is_err());
        assert!(Decoder::new(&[7]).bool().is_err());
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(Value::UInt),
            any::<f64>().prop_map(Value::Float),
            ".{0,8}".prop_map(Value::Str),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..8)
                .prop_map(Value::Bytes),
        ]
    }

    fn tuple() -> impl Strategy<Value = Vec<Value>> {
        proptest::collection::vec(value(), 0..4)
    }

    proptest! {
        #[test]
        fn tuple_byte_order_is_value_order(a in tuple(), b in tuple()) {
            let (ea, eb) = (encode_tuple(&a), encode_tuple(&b));
            prop_assert_eq!(ea.cmp(&eb), a.cmp(&b));
        }

        #[test]
        fn tuple_decode_inverts_encode(a in tuple()) {
            let decoded = decode_tuple(&encode_tuple(&a)).unwrap();
            prop_assert_eq!(decoded.len(), a.len());
            for (x, y) in decoded.iter().zip(&a) {
                // total_cmp equality: NaN payloads and -0.0 survive bit for bit.
                prop_assert_eq!(x.cmp(y), Ordering::Equal);
            }
        }

        #[test]
        fn typed_elements_keep_order(a: (i64, String, u64), b: (i64, String, u64)) {
            let enc = |t: &(i64, String, u64)| KeyBuf::new().i64(t.0).str(&t.1).u64(t.2).finish();
            let key_order = a.0.cmp(&b.0)
                .then(a.1.as_bytes().cmp(b.1.as_bytes()))
                .then(a.2.cmp(&b.2));
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), key_order);
            let bytes = enc(&a);
            let mut dec = Decoder::new(&bytes);
            prop_assert_eq!((dec.i64().unwrap(), dec.string().unwrap(), dec.u64().unwrap()), a);
            prop_assert!(dec.is_empty());
        }

        #[test]
        fn floats_keep_total_order(a: f64, b: f64) {
            let (ea, eb) = (KeyBuf::new().f64(a).finish(), KeyBuf::new().f64(b).finish());
            prop_assert_eq!(ea.cmp(&eb), a.total_cmp(&b));
            prop_assert_eq!(Decoder::new(&ea).f64().unwrap().to_bits(), a.to_bits());
        }
    }
}
