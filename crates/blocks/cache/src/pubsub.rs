//! Pub/sub: who listens to which channel or pattern, and delivery of PUBLISHed messages to
//! each subscriber's bounded queue.

use crate::glob;
use crate::reply::Reply;
use bytes::Bytes;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// How many undelivered messages a subscriber may hold before new ones are dropped for it
/// (Redis disconnects such clients; we keep them and count the loss).
pub const QUEUE_LIMIT: usize = 65_536;

#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Bytes, HashMap<u64, mpsc::Sender<Reply>>>,
    patterns: HashMap<Bytes, HashMap<u64, mpsc::Sender<Reply>>>,
    pub dropped: u64,
}

impl PubSub {
    /// Returns whether `client` was not yet subscribed.
    pub fn subscribe(
        &mut self,
        client: u64,
        channel: Bytes,
        tx: &mpsc::Sender<Reply>,
        pattern: bool,
    ) -> bool {
        let map = if pattern { &mut self.patterns } else { &mut self.channels };
        map.entry(channel).or_default().insert(client, tx.clone()).is_none()
    }

    pub fn unsubscribe(&mut self, client: u64, channel: &[u8], pattern: bool) -> bool {
        let map = if pattern { &mut self.patterns } else { &mut self.channels };
        let Some(subs) = map.get_mut(channel) else { return false };
        let gone = subs.remove(&client).is_some();
        if subs.is_empty() {
            map.remove(channel);
        }
        gone
    }

    /// Delivers `message` to every subscriber of `channel` and of each matching pattern;
    /// returns how many received it.
    pub fn publish(&mut self, channel: &Bytes, message: &Bytes) -> i64 {
        let mut receivers = 0;
        let mut dropped = 0;
        if let Some(subs) = self.channels.get(channel) {
            for tx in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::text("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                match tx.try_send(msg) {
                    Ok(()) => receivers += 1,
                    Err(_) => dropped += 1,
                }
            }
        }
        for (pattern, subs) in &self.patterns {
            if !glob::matches(pattern, channel) {
                continue;
            }
            for tx in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::text("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                match tx.try_send(msg) {
                    Ok(()) => receivers += 1,
                    Err(_) => dropped += 1,
                }
            }
        }
        self.dropped += dropped;
        receivers
    }

    /// Active channels, optionally filtered by a glob pattern.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels.keys().filter(|c| pattern.is_none_or(|p| glob::matches(p, c))).cloned().collect()
    }

    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, |s| s.len())
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}
