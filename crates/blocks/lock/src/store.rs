//! The lock block's durable state, in the core keyspace `lock` (see `docs/format/lock.md`):
//!
//! | key | value |
//! | --- | --- |
//! | `01 resource token` | a hold: expiry (unix ms, u64 BE), mode (`00` shared, `01` exclusive), owner |
//! | `02` | the token ceiling (u64 BE): every token issued so far is below it |
//!
//! A hold is written before its grant is answered and deleted before its release is; one
//! whose expiry has passed is dropped on load. Tokens come from blocks below the ceiling,
//! which is raised (and fsynced) before a block is used, so tokens never repeat or go back
//! across restarts.

use crate::table::{Holder, Mode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Keyspace, Result, Store, errcorrupt};

const TAG_HOLD: u8 = 1;
const TAG_CEILING: u8 = 2;

pub fn hold_key(resource: &str, token: u64) -> Vec<u8> {
    KeyBuf::new().tag(TAG_HOLD).str(resource).u64(token).finish()
}

/// Key writes that delete these holds: `(resource, token)`.
pub fn deletions(holds: &[(String, u64)]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    holds.iter().map(|(r, t)| (hold_key(r, *t), None)).collect()
}

pub fn ceiling_key() -> Vec<u8> {
    vec![TAG_CEILING]
}

pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The wall-clock time (unix ms) of an `Instant` expiry.
pub fn wall_expiry(expires: Instant) -> u64 {
    unix_ms(SystemTime::now()) + expires.saturating_duration_since(Instant::now()).as_millis() as u64
}

pub fn encode_hold(owner: &str, mode: Mode, expires_unix_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + owner.len());
    out.extend_from_slice(&expires_unix_ms.to_be_bytes());
    out.push(match mode {
        Mode::Shared => 0,
        Mode::Exclusive => 1,
    });
    out.extend_from_slice(owner.as_bytes());
    out
}

/// What the store holds: live holds, keys of expired ones, and the token ceiling.
pub struct Loaded {
    pub holds: Vec<(String, Holder)>,
    pub expired: Vec<Vec<u8>>,
    pub ceiling: u64,
}

pub fn load(store: &Store, ks: &Keyspace) -> Result<Loaded> {
    let txn = store.begin_read_only();
    let (now_wall, now) = (unix_ms(SystemTime::now()), Instant::now());
    let mut loaded = Loaded { holds: Vec::new(), expired: Vec::new(), ceiling: 0 };
    for pair in txn.scan_prefix(ks, &[TAG_HOLD]) {
        let (key, value) = pair?;
        let mut dec = Decoder::new(&key[1..]);
        let (resource, token) = (dec.string()?, dec.u64()?);
        if value.len() < 9 {
            return Err(errcorrupt!("lock hold of {} bytes", value.len()));
        }
        let expires_ms = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
        let mode = if value[8] == 0 { Mode::Shared } else { Mode::Exclusive };
        let owner = String::from_utf8_lossy(&value[9..]).into_owned();
        if expires_ms <= now_wall {
            loaded.expired.push(key);
            continue;
        }
        let expires = now + Duration::from_millis(expires_ms - now_wall);
        loaded.holds.push((resource, Holder { owner, token, mode, expires }));
    }
    if let Some(bytes) = txn.get(ks, &ceiling_key())? {
        let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| errcorrupt!("lock token ceiling"))?;
        loaded.ceiling = u64::from_be_bytes(bytes);
    }
    Ok(loaded)
}
