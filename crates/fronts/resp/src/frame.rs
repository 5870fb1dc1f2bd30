//! Incremental RESP request parsing: multibulk arrays (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and
//! inline commands (`PING\r\n`), with bounded argument counts and sizes.
//!
//! An oversize bulk string is not buffered: its bytes are skipped as they arrive and the
//! command it belongs to is answered with an error, so the connection goes on. Malformed
//! framing is a protocol error after which, as in Redis, the connection is closed.

use bytes::{Buf, Bytes, BytesMut};

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bulk: usize,
    pub max_args: usize,
    pub max_inline: usize,
}

#[derive(Debug, PartialEq)]
pub enum Frame {
    Command(Vec<Bytes>),
    /// The request was framed correctly but cannot run (an argument over the limit).
    Rejected(String),
}

/// Framing is broken; the text is the error to send before closing.
#[derive(Debug, PartialEq)]
pub struct ProtocolError(pub String);

#[derive(Default)]
struct Partial {
    remaining: usize,
    args: Vec<Bytes>,
    rejected: Option<String>,
}

pub struct Parser {
    limits: Limits,
    partial: Option<Partial>,
    /// Bytes of an oversize argument still to discard.
    skip: usize,
    /// Bytes missing from the argument being read, once it is known to be incomplete.
    short: usize,
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    memchr(b'\r', buf).filter(|&i| buf.get(i + 1) == Some(&b'\n'))
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// A length as RESP writes it: decimal digits, perhaps after a '-'.
fn parse_len(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if negative { -n } else { n })
}

/// What [`Parser::multibulk`] found.
enum Parsed {
    Frame(Frame),
    /// An inline command starts here.
    Inline,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, partial: None, skip: 0, short: 0 }
    }

    /// The next complete request in `buf`, consuming its bytes; `Ok(None)` when more bytes
    /// are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        // Parsed with a cursor and consumed once at the end: advancing a BytesMut per token
        // cost more than reading the token.
        let mut pos = 0;
        let frame = self.multibulk(buf, &mut pos);
        buf.advance(pos);
        if self.short > 0 {
            // Room for the rest of a long argument, so that it arrives in few reads.
            buf.reserve(std::mem::take(&mut self.short));
        }
        match frame {
            Ok(Some(Parsed::Inline)) => self.inline(buf),
            Ok(Some(Parsed::Frame(frame))) => Ok(Some(frame)),
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads from `buf[*pos..]`, moving `pos` past what it consumed: a multibulk request, or
    /// the news that an inline one starts at `pos`.
    fn multibulk(&mut self, buf: &[u8], pos: &mut usize) -> Result<Option<Parsed>, ProtocolError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() - *pos);
                *pos += n;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            let rest = &buf[*pos..];
            let Some(partial) = &mut self.partial else {
                if rest.is_empty() {
                    return Ok(None);
                }
                if rest[0] != b'*' {
                    return Ok(Some(Parsed::Inline));
                }
                let Some(end) = find_crlf(rest) else {
                    if rest.len() > 64 {
                        return Err(ProtocolError("ERR Protocol error: too big mbulk count string".into()));
                    }
                    return Ok(None);
                };
                let n = parse_len(&rest[1..end])
                    .filter(|n| *n <= self.limits.max_args as i64)
                    .ok_or_else(|| ProtocolError("ERR Protocol error: invalid multibulk length".into()))?;
                *pos += end + 2;
                if n > 0 {
                    self.partial = Some(Partial {
                        remaining: n as usize,
                        args: Vec::with_capacity((n as usize).min(1024)),
                        rejected: None,
                    });
                }
                continue;
            };
            if partial.remaining == 0 {
                let done = self.partial.take().expect("checked above");
                return Ok(Some(Parsed::Frame(match done.rejected {
                    Some(err) => Frame::Rejected(err),
                    None => Frame::Command(done.args),
                })));
            }
            if rest.is_empty() {
                return Ok(None);
            }
            if rest[0] != b'$' {
                return Err(ProtocolError(format!(
                    "ERR Protocol error: expected '$', got '{}'",
                    char::from(rest[0]).escape_default()
                )));
            }
            let Some(end) = find_crlf(rest) else {
                if rest.len() > 64 {
                    return Err(ProtocolError("ERR Protocol error: too big bulk count string".into()));
                }
                return Ok(None);
            };
            let len = parse_len(&rest[1..end])
                .filter(|n| *n >= 0)
                .ok_or_else(|| ProtocolError("ERR Protocol error: invalid bulk length".into()))?
                as usize;
            if len > self.limits.max_bulk {
                *pos += end + 2;
                self.skip = len + 2;
                partial.remaining -= 1;
                partial.args.clear();
                partial.rejected = Some(format!(
                    "ERR Protocol error: bulk string of {len} bytes exceeds the limit of {} bytes (resp.max_bulk_bytes)",
                    self.limits.max_bulk
                ));
                continue;
            }
            let total = end + 2 + len + 2;
            if rest.len() < total {
                self.short = total - rest.len();
                return Ok(None);
            }
            if &rest[total - 2..total] != b"\r\n" {
                return Err(ProtocolError("ERR Protocol error: bulk string not terminated by CRLF".into()));
            }
            if partial.rejected.is_none() {
                // Copied out, not sliced: a stored value must not pin the whole read buffer.
                partial.args.push(Bytes::copy_from_slice(&rest[end + 2..end + 2 + len]));
            }
            *pos += total;
            partial.remaining -= 1;
        }
    }

    /// An inline command: one line of space-separated words, with "double" and 'single'
    /// quotes as redis-cli and telnet users write them.
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let Some(nl) = memchr(b'\n', buf) else {
            if buf.len() > self.limits.max_inline {
                return Err(ProtocolError("ERR Protocol error: too big inline request".into()));
            }
            return Ok(None);
        };
        let line = buf.split_to(nl + 1);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let args = split_inline(line)
            .ok_or_else(|| ProtocolError("ERR Protocol error: unbalanced quotes in request".into()))?;
        if args.is_empty() {
            return self.next(buf);
        }
        Ok(Some(Frame::Command(args)))
    }
}

fn split_inline(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut word = Vec::new();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let c = *line.get(i)?;
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == b'\\' && quote == b'"' {
                        let e = *line.get(i)?;
                        i += 1;
                        word.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                    } else {
                        word.push(c);
                    }
                }
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return None;
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    word.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(word));
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        Parser::new(Limits { max_bulk: 16, max_args: 8, max_inline: 64 })
    }

    fn cmd(words: &[&str]) -> Frame {
        Frame::Command(words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect())
    }

    #[test]
    fn lengths_are_plain_decimal() {
        assert_eq!(parse_len(b"0"), Some(0));
        assert_eq!(parse_len(b"123"), Some(123));
        assert_eq!(parse_len(b"-1"), Some(-1));
        assert_eq!(parse_len(b"999999999999999999"), Some(999_999_999_999_999_999));
        for bad in [&b""[..], b"-", b"+5", b"12a", b" 1", b"1234567890123456789"] {
            assert_eq!(parse_len(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_byte_by_byte() {
        let wire = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let mut p = parser();
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = p.next(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some(cmd(&["GET", "k"])));
            }
        }
    }

    #[test]
    fn oversize_argument_is_skipped_and_rejected() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\n0123456789"[..]);
        assert_eq!(p.next(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"0123456789\r\n*1\r\n$4\r\nPING\r\n");
        assert!(matches!(p.next(&mut buf).unwrap(), Some(Frame::Rejected(_))));
        assert_eq!(p.next(&mut buf).unwrap(), Some(cmd(&["PING"])));
    }

    #[test]
    fn inline_commands_with_quotes() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"SET k \"a b\\n\" \r\nPING\n"[..]);
        assert_eq!(p.next(&mut buf).unwrap(), Some(cmd(&["SET", "k", "a b\n"])));
        assert_eq!(p.next(&mut buf).unwrap(), Some(cmd(&["PING"])));
    }

    #[test]
    fn malformed_framing_is_a_protocol_error() {
        for wire in [
            &b"*x\r\n"[..],
            b"*1\r\n+3\r\n",
            b"*1\r\n$-5\r\n",
            b"*100\r\n",
            b"*1\r\n$1\r\nab\r\n",
            b"\"open\r\n",
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(parser().next(&mut buf).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
    }
}
