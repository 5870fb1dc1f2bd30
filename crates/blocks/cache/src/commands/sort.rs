//! SORT and SORT_RO: the elements of a list, set or sorted set, ordered by their own value
//! or by weights in other keys (`BY weight_*`, `BY obj_*->field`), optionally paged
//! (`LIMIT`), projected through other keys (`GET obj_*->name`, `GET #`), and stored as a
//! list (`STORE`). Numbers compare as doubles, `ALPHA` compares bytes, and equal weights
//! fall back to comparing the elements, so the order is deterministic, as in Redis.

use super::{CmdResult, Ctx, eq, int, parse_float};
use crate::reply::{Reply, errors};
use crate::value::{List, Value};
use bytes::Bytes;
use std::cmp::Ordering;

struct Options {
    by: Option<Bytes>,
    /// `BY` a pattern without `*`: keep the source's order.
    no_sort: bool,
    limit: Option<(i64, i64)>,
    gets: Vec<Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<Bytes>,
}

fn options(args: &[Bytes], read_only: bool) -> Result<Options, Reply> {
    let mut o = Options {
        by: None,
        no_sort: false,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let left = args.len() - i - 1;
        match () {
            _ if eq(a, "asc") => o.desc = false,
            _ if eq(a, "desc") => o.desc = true,
            _ if eq(a, "alpha") => o.alpha = true,
            _ if eq(a, "limit") && left >= 2 => {
                o.limit = Some((int(&args[i + 1])?, int(&args[i + 2])?));
                i += 2;
            }
            _ if eq(a, "by") && left >= 1 => {
                let pattern = args[i + 1].clone();
                o.no_sort = !pattern.contains(&b'*');
                o.by = Some(pattern);
                i += 1;
            }
            _ if eq(a, "get") && left >= 1 => {
                o.gets.push(args[i + 1].clone());
                i += 1;
            }
            _ if !read_only && eq(a, "store") && left >= 1 => {
                o.store = Some(args[i + 1].clone());
                i += 1;
            }
            _ => return Err(Reply::err(errors::SYNTAX)),
        }
        i += 1;
    }
    Ok(o)
}

/// The value `pattern` names for `element`: `#` is the element itself; otherwise the first
/// `*` becomes the element, and a `->field` after it reads that field of a hash.
fn lookup(ctx: &mut Ctx, pattern: &[u8], element: &Bytes) -> Option<Bytes> {
    if pattern == b"#" {
        return Some(element.clone());
    }
    let star = pattern.iter().position(|b| *b == b'*')?;
    let arrow = pattern[star + 1..].windows(2).position(|w| w == b"->").map(|p| star + 1 + p);
    let (key_pattern, field) = match arrow {
        Some(at) if at + 2 < pattern.len() => (&pattern[..at], Some(&pattern[at + 2..])),
        _ => (pattern, None),
    };
    let key = [&key_pattern[..star], element.as_ref(), &key_pattern[star + 1..]].concat();
    match (&ctx.ks.read(ctx.db, &key)?.value, field) {
        (Value::Str(s), None) => Some(s.clone()),
        (Value::Hash(h), Some(field)) => h.get(field).cloned(),
        _ => None,
    }
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination], and SORT_RO (no STORE).
pub fn sort(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let o = options(args, ctx.name == "sort_ro")?;
    let mut elements: Vec<Bytes> = match ctx.ks.read(ctx.db, &args[1]).map(|e| &e.value) {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(Bytes::copy_from_slice).collect(),
        Some(Value::Set(s)) => s.iter().cloned().collect(),
        Some(Value::ZSet(z)) => z.range(0, z.len()).into_iter().map(|(m, _)| m).collect(),
        Some(_) => return Err(Reply::err(errors::WRONGTYPE)),
    };
    if !o.no_sort {
        // Each element's weight: its own value, or what BY names.
        let mut weighted = Vec::with_capacity(elements.len());
        for element in elements {
            let weight = match &o.by {
                Some(pattern) => lookup(ctx, pattern, &element),
                None => Some(element.clone()),
            };
            let weight = if o.alpha {
                Weight::Text(weight)
            } else {
                match weight {
                    None => Weight::Number(0.0),
                    Some(w) => Weight::Number(parse_float(&w).ok_or_else(|| {
                        Reply::err("ERR One or more scores can't be converted into double")
                    })?),
                }
            };
            weighted.push((weight, element));
        }
        weighted.sort_by(|(wa, a), (wb, b)| {
            let order = wa.cmp(wb).then_with(|| a.cmp(b));
            if o.desc { order.reverse() } else { order }
        });
        elements = weighted.into_iter().map(|(_, e)| e).collect();
    } else if o.desc {
        elements.reverse();
    }
    if let Some((offset, count)) = o.limit {
        let start = (offset.max(0) as usize).min(elements.len());
        let end =
            if count < 0 { elements.len() } else { start.saturating_add(count as usize).min(elements.len()) };
        elements = elements.drain(start..end).collect();
    }
    let mut out: Vec<Option<Bytes>> = Vec::with_capacity(elements.len() * o.gets.len().max(1));
    for element in &elements {
        if o.gets.is_empty() {
            out.push(Some(element.clone()));
        }
        for pattern in &o.gets {
            out.push(lookup(ctx, pattern, element));
        }
    }
    let Some(dest) = o.store else {
        return Ok(Reply::Array(out.into_iter().map(Reply::opt_bulk).collect()));
    };
    // Stored as a list; a missing value becomes an empty string, as in Redis.
    let n = out.len() as i64;
    ctx.ks.remove(ctx.db, &dest);
    if n > 0 {
        let mut list = List::default();
        for v in out {
            list.push_back(&v.unwrap_or_default());
        }
        ctx.ks.set(ctx.db, dest, Value::List(list), false);
    }
    Ok(Reply::Int(n))
}

/// A sort weight: a number, or (ALPHA) bytes, a missing one first.
enum Weight {
    Number(f64),
    Text(Option<Bytes>),
}

impl Weight {
    fn cmp(&self, other: &Weight) -> Ordering {
        match (self, other) {
            (Weight::Number(a), Weight::Number(b)) => a.total_cmp(b),
            (Weight::Text(a), Weight::Text(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}
