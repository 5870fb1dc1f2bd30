//! The answer to one command, independent of the wire: the resp front encodes it as RESP2 or
//! RESP3 (maps, sets, doubles and booleans fall back to their RESP2 forms).

use bytes::Bytes;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK` and other status lines.
    Status(Cow<'static, str>),
    /// An error line; the text starts with its code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing array: `*-1` in RESP2, `_` in RESP3.
    NilArray,
    Array(Vec<Reply>),
    /// A flat array of pairs in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// Pairs with an order (a sorted set's members WITHSCORES, HRANDFIELD WITHVALUES): a flat
    /// array in RESP2, an array of two-element arrays in RESP3, as Redis answers them.
    Pairs(Vec<(Reply, Reply)>),
    /// A map in RESP3; in RESP2 an array of `[key, value]` arrays (XREAD's streams).
    Keyed(Vec<(Reply, Reply)>),
    /// An array in RESP2.
    Set(Vec<Reply>),
    /// A bulk string in RESP2.
    Double(f64),
    /// `:1` / `:0` in RESP2.
    Bool(bool),
    /// Out-of-band data (pub/sub messages): an array in RESP2.
    Push(Vec<Reply>),
    /// Text meant for humans (INFO): a bulk string in RESP2.
    Verbatim(String),
    /// Several replies in a row for one command (SUBSCRIBE answers once per channel).
    Many(Vec<Reply>),
}

impl Reply {
    pub const OK: Reply = Reply::Status(Cow::Borrowed("OK"));

    pub fn status(text: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(text))
    }

    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn opt_bulk(data: Option<Bytes>) -> Reply {
        data.map_or(Reply::Nil, Reply::Bulk)
    }

    /// A HELP subcommand's answer: its lines as status replies, as Redis sends them.
    pub fn help(lines: &[&'static str]) -> Reply {
        Reply::Array(lines.iter().map(|l| Reply::status(l)).collect())
    }

    pub fn bulks(items: impl IntoIterator<Item = Bytes>) -> Reply {
        Reply::Array(items.into_iter().map(Reply::Bulk).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A float as Redis prints it: integral values without a fraction, `inf`/`-inf`, otherwise
/// the shortest text that reads back as the same number.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    format!("{v}")
}

/// Redis's error texts, word for word: clients and tests match on them.
pub mod errors {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INT: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const NO_KEY: &str = "ERR no such key";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const INDEX_RANGE: &str = "ERR index out of range";
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
    pub const DB_INDEX: &str = "ERR DB index is out of range";
    pub const NAN: &str = "ERR resulting score is not a number (NaN)";
    pub const MIN_MAX_FLOAT: &str = "ERR min or max is not a float";
    pub const MIN_MAX_LEX: &str = "ERR min or max not valid string range item";
    pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
    pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
    pub const TIMEOUT: &str = "ERR timeout is not a float or out of range";
    pub const NEGATIVE_TIMEOUT: &str = "ERR timeout is negative";
    pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

    pub fn arity(cmd: &str) -> String {
        format!("ERR wrong number of arguments for '{}' command", cmd.to_lowercase())
    }

    /// A subcommand the command does not have: `ERR unknown subcommand 'X'. Try CMD HELP.`
    pub fn unknown_subcommand(command: &str, sub: &[u8]) -> String {
        format!("ERR unknown subcommand '{}'. Try {command} HELP.", String::from_utf8_lossy(sub))
    }

    /// A known subcommand with the wrong argument count, in Redis 7's `cmd|sub` form.
    pub fn subcommand_arity(command: &str, sub: &str) -> String {
        format!(
            "ERR wrong number of arguments for '{}|{}' command",
            command.to_lowercase(),
            sub.to_lowercase()
        )
    }

    pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> String {
        let mut text = String::from("ERR unknown command '");
        text.push_str(&String::from_utf8_lossy(name));
        text.push_str("', with args beginning with: ");
        for arg in args.iter().take(8) {
            text.push('\'');
            text.push_str(&String::from_utf8_lossy(arg));
            text.push_str("' ");
        }
        text
    }

    pub fn invalid_expire(cmd: &str) -> String {
        format!("ERR invalid expire time in '{}' command", cmd.to_lowercase())
    }
}
