//! Writes a [`Reply`] as RESP2 or RESP3.

use bytes::{BufMut, BytesMut};
use strata_cache::Reply;
use strata_cache::reply::format_double;

pub fn encode(reply: &Reply, resp3: bool, out: &mut BytesMut) {
    match reply {
        Reply::Status(s) => line(out, b'+', s.as_bytes()),
        Reply::Error(e) => {
            // An error line cannot carry newlines.
            let clean: String = e.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
            line(out, b'-', clean.as_bytes());
        }
        Reply::Int(n) => int_line(out, b':', *n),
        Reply::Bulk(b) => bulk(out, b),
        Reply::Nil => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NilArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            int_line(out, b'*', items.len() as i64);
            items.iter().for_each(|i| encode(i, resp3, out));
        }
        Reply::Set(items) => {
            int_line(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|i| encode(i, resp3, out));
        }
        Reply::Push(items) => {
            int_line(out, if resp3 { b'>' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|i| encode(i, resp3, out));
        }
        Reply::Map(pairs) => {
            if resp3 {
                int_line(out, b'%', pairs.len() as i64);
            } else {
                int_line(out, b'*', pairs.len() as i64 * 2);
            }
            for (k, v) in pairs {
                encode(k, resp3, out);
                encode(v, resp3, out);
            }
        }
        Reply::Pairs(pairs) => {
            int_line(out, b'*', pairs.len() as i64 * if resp3 { 1 } else { 2 });
            for (k, v) in pairs {
                if resp3 {
                    out.put_slice(b"*2\r\n");
                }
                encode(k, resp3, out);
                encode(v, resp3, out);
            }
        }
        Reply::Keyed(pairs) => {
            int_line(out, if resp3 { b'%' } else { b'*' }, pairs.len() as i64);
            for (k, v) in pairs {
                if !resp3 {
                    out.put_slice(b"*2\r\n");
                }
                encode(k, resp3, out);
                encode(v, resp3, out);
            }
        }
        Reply::Double(d) => {
            let text = format_double(*d);
            if resp3 { line(out, b',', text.as_bytes()) } else { bulk(out, text.as_bytes()) }
        }
        Reply::Bool(b) => {
            if resp3 {
                out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                int_line(out, b':', *b as i64);
            }
        }
        Reply::Verbatim(text) => {
            if resp3 {
                int_line(out, b'=', text.len() as i64 + 4);
                out.put_slice(b"txt:");
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            } else {
                bulk(out, text.as_bytes());
            }
        }
        Reply::Many(replies) => replies.iter().for_each(|r| encode(r, resp3, out)),
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// `kind`, the decimal `n` and CRLF, assembled on the stack and appended in one copy: most
/// replies of the common commands are such a line (an integer, or a bulk string's length).
fn int_line(out: &mut BytesMut, kind: u8, n: i64) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    let mut text = [0u8; 24]; // the kind, at most 20 characters of i64, CRLF
    text[0] = kind;
    text[1..=digits.len()].copy_from_slice(digits);
    text[digits.len() + 1..digits.len() + 3].copy_from_slice(b"\r\n");
    out.extend_from_slice(&text[..digits.len() + 3]);
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    int_line(out, b'$', data.len() as i64);
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn wire(r: &Reply, resp3: bool) -> String {
        let mut out = BytesMut::new();
        encode(r, resp3, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn resp2_and_resp3_forms() {
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(wire(&map, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&map, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(wire(&Reply::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(wire(&Reply::Double(1.5), true), ",1.5\r\n");
        assert_eq!(wire(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(wire(&Reply::Nil, true), "_\r\n");
        assert_eq!(wire(&Reply::Bulk(Bytes::from_static(b"hi")), true), "$2\r\nhi\r\n");
        assert_eq!(wire(&Reply::err("ERR a\r\nb"), false), "-ERR a  b\r\n");
        assert_eq!(wire(&Reply::Int(i64::MIN), false), ":-9223372036854775808\r\n");
        assert_eq!(wire(&Reply::Int(7), false), ":7\r\n");
    }
}
