//! Model-based test: random command sequences run against the cache and against a plain
//! in-memory model of a Redis keyspace; every reply must match.

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use strata_cache::{Cache, CacheOptions, Reply};
use strata_core::ManualClock;

#[derive(Debug, Clone, PartialEq)]
enum Model {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

#[derive(Debug, Clone)]
enum Op {
    Set(u8, u8),
    Get(u8),
    Del(u8),
    Incr(u8),
    Append(u8, u8),
    LPush(u8, u8),
    RPop(u8),
    LLen(u8),
    SAdd(u8, u8),
    SRem(u8, u8),
    SCard(u8),
    HSet(u8, u8, u8),
    HDel(u8, u8),
    HGet(u8, u8),
    Exists(u8),
    Type(u8),
    Rename(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..5;
    let v = 0u8..6;
    prop_oneof![
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        k.clone().prop_map(Op::Get),
        k.clone().prop_map(Op::Del),
        k.clone().prop_map(Op::Incr),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::LPush(k, v)),
        k.clone().prop_map(Op::RPop),
        k.clone().prop_map(Op::LLen),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::SAdd(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::SRem(k, v)),
        k.clone().prop_map(Op::SCard),
        (k.clone(), v.clone(), v.clone()).prop_map(|(k, f, v)| Op::HSet(k, f, v)),
        (k.clone(), v.clone()).prop_map(|(k, f)| Op::HDel(k, f)),
        (k.clone(), v.clone()).prop_map(|(k, f)| Op::HGet(k, f)),
        k.clone().prop_map(Op::Exists),
        k.clone().prop_map(Op::Type),
        (k.clone(), k).prop_map(|(a, b)| Op::Rename(a, b)),
    ]
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

fn val(v: u8) -> Vec<u8> {
    // Some values are integers so INCR sometimes works.
    if v.is_multiple_of(2) { v.to_string().into_bytes() } else { format!("v{v}").into_bytes() }
}

/// Redis's string2ll: no sign '+', no leading zeros, no spaces.
fn redis_int(v: &[u8]) -> Option<i64> {
    let digits = v.strip_prefix(b"-").unwrap_or(v);
    if digits.is_empty() || (digits[0] == b'0' && v.len() > 1) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn bulk(v: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(v))
}

fn wrongtype() -> Reply {
    Reply::Error(WRONGTYPE.into())
}

/// What Redis answers, computed on the model.
fn apply(m: &mut HashMap<Vec<u8>, Model>, op: &Op) -> (Vec<Vec<u8>>, Reply) {
    let s = |x: &str| x.as_bytes().to_vec();
    match op {
        Op::Set(k, v) => {
            m.insert(key(*k), Model::Str(val(*v)));
            (vec![s("SET"), key(*k), val(*v)], Reply::OK)
        }
        Op::Get(k) => {
            let r = match m.get(&key(*k)) {
                None => Reply::Nil,
                Some(Model::Str(v)) => bulk(v),
                Some(_) => wrongtype(),
            };
            (vec![s("GET"), key(*k)], r)
        }
        Op::Del(k) => (vec![s("DEL"), key(*k)], Reply::Int(m.remove(&key(*k)).is_some() as i64)),
        Op::Incr(k) => {
            let r = match m.get(&key(*k)) {
                None => {
                    m.insert(key(*k), Model::Str(s("1")));
                    Reply::Int(1)
                }
                Some(Model::Str(v)) => match redis_int(v) {
                    Some(n) => {
                        m.insert(key(*k), Model::Str((n + 1).to_string().into_bytes()));
                        Reply::Int(n + 1)
                    }
                    None => Reply::Error("ERR value is not an integer or out of range".into()),
                },
                Some(_) => wrongtype(),
            };
            (vec![s("INCR"), key(*k)], r)
        }
        Op::Append(k, v) => {
            let r = match m.entry(key(*k)).or_insert_with(|| Model::Str(Vec::new())) {
                Model::Str(cur) => {
                    cur.extend(val(*v));
                    Reply::Int(cur.len() as i64)
                }
                _ => wrongtype(),
            };
            (vec![s("APPEND"), key(*k), val(*v)], r)
        }
        Op::LPush(k, v) => {
            let r = match m.entry(key(*k)).or_insert_with(|| Model::List(VecDeque::new())) {
                Model::List(l) => {
                    l.push_front(val(*v));
                    Reply::Int(l.len() as i64)
                }
                _ => wrongtype(),
            };
            (vec![s("LPUSH"), key(*k), val(*v)], r)
        }
        Op::RPop(k) => {
            let r = match m.get_mut(&key(*k)) {
                None => Reply::Nil,
                Some(Model::List(l)) => {
                    let v = l.pop_back().expect("lists are never empty");
                    if l.is_empty() {
                        m.remove(&key(*k));
                    }
                    bulk(&v)
                }
                Some(_) => wrongtype(),
            };
            (vec![s("RPOP"), key(*k)], r)
        }
        Op::LLen(k) => {
            let r = match m.get(&key(*k)) {
                None => Reply::Int(0),
                Some(Model::List(l)) => Reply::Int(l.len() as i64),
                Some(_) => wrongtype(),
            };
            (vec![s("LLEN"), key(*k)], r)
        }
        Op::SAdd(k, v) => {
            let r = match m.entry(key(*k)).or_insert_with(|| Model::Set(BTreeSet::new())) {
                Model::Set(set) => Reply::Int(set.insert(val(*v)) as i64),
                _ => wrongtype(),
            };
            (vec![s("SADD"), key(*k), val(*v)], r)
        }
        Op::SRem(k, v) => {
            let r = match m.get_mut(&key(*k)) {
                None => Reply::Int(0),
                Some(Model::Set(set)) => {
                    let gone = set.remove(&val(*v));
                    if set.is_empty() {
                        m.remove(&key(*k));
                    }
                    Reply::Int(gone as i64)
                }
                Some(_) => wrongtype(),
            };
            (vec![s("SREM"), key(*k), val(*v)], r)
        }
        Op::SCard(k) => {
            let r = match m.get(&key(*k)) {
                None => Reply::Int(0),
                Some(Model::Set(set)) => Reply::Int(set.len() as i64),
                Some(_) => wrongtype(),
            };
            (vec![s("SCARD"), key(*k)], r)
        }
        Op::HSet(k, f, v) => {
            let r = match m.entry(key(*k)).or_insert_with(|| Model::Hash(BTreeMap::new())) {
                Model::Hash(h) => Reply::Int(h.insert(val(*f), val(*v)).is_none() as i64),
                _ => wrongtype(),
            };
            (vec![s("HSET"), key(*k), val(*f), val(*v)], r)
        }
        Op::HDel(k, f) => {
            let r = match m.get_mut(&key(*k)) {
                None => Reply::Int(0),
                Some(Model::Hash(h)) => {
                    let gone = h.remove(&val(*f)).is_some();
                    if h.is_empty() {
                        m.remove(&key(*k));
                    }
                    Reply::Int(gone as i64)
                }
                Some(_) => wrongtype(),
            };
            (vec![s("HDEL"), key(*k), val(*f)], r)
        }
        Op::HGet(k, f) => {
            let r = match m.get(&key(*k)) {
                None => Reply::Nil,
                Some(Model::Hash(h)) => h.get(&val(*f)).map_or(Reply::Nil, |v| bulk(v)),
                Some(_) => wrongtype(),
            };
            (vec![s("HGET"), key(*k), val(*f)], r)
        }
        Op::Exists(k) => (vec![s("EXISTS"), key(*k)], Reply::Int(m.contains_key(&key(*k)) as i64)),
        Op::Type(k) => {
            let t = match m.get(&key(*k)) {
                None => "none",
                Some(Model::Str(_)) => "string",
                Some(Model::List(_)) => "list",
                Some(Model::Set(_)) => "set",
                Some(Model::Hash(_)) => "hash",
            };
            (vec![s("TYPE"), key(*k)], Reply::status(t))
        }
        Op::Rename(a, b) => {
            let r = match m.remove(&key(*a)) {
                None => Reply::Error("ERR no such key".into()),
                Some(v) => {
                    m.insert(key(*b), v);
                    Reply::OK
                }
            };
            (vec![s("RENAME"), key(*a), key(*b)], r)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn cache_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cache = Cache::new(CacheOptions::default(), Arc::new(ManualClock::new(1_700_000_000_000)));
        let mut session = cache.session("model");
        let mut model = HashMap::new();
        for op in &ops {
            let (args, expected) = apply(&mut model, op);
            let got = runtime.block_on(session.execute(args.into_iter().map(Bytes::from).collect()));
            prop_assert_eq!(&got, &expected, "after {:?}", op);
        }
        let size = runtime.block_on(session.execute(vec![Bytes::from_static(b"DBSIZE")]));
        prop_assert_eq!(size, Reply::Int(model.len() as i64));
    }
}
