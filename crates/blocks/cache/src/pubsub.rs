//! Pub/sub: who listens to which channel or pattern, and delivery of PUBLISHed messages to
//! each subscriber's bounded queue. A subscriber whose queue is full is disconnected, as
//! Redis disconnects one past its `client-output-buffer-limit pubsub`: it never silently
//! misses a message and stays connected.

use crate::Disconnect;
use crate::glob;
use crate::reply::Reply;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many undelivered messages a subscriber may hold; one more disconnects it.
pub const QUEUE_LIMIT: usize = 65_536;

/// Where a subscriber's messages go.
#[derive(Clone)]
pub struct Subscriber {
    pub tx: mpsc::Sender<Reply>,
    pub disconnect: Arc<Disconnect>,
}

impl Subscriber {
    /// Queues `msg`; returns whether it was queued. A full queue disconnects the subscriber.
    fn deliver(&self, msg: Reply) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.disconnect.is_set() {
                    tracing::warn!("disconnecting a pub/sub subscriber {QUEUE_LIMIT} messages behind");
                }
                self.disconnect.set();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Bytes, HashMap<u64, Subscriber>>,
    patterns: HashMap<Bytes, HashMap<u64, Subscriber>>,
}

impl PubSub {
    /// Returns whether `client` was not yet subscribed.
    pub fn subscribe(&mut self, client: u64, channel: Bytes, subscriber: &Subscriber, pattern: bool) -> bool {
        let map = if pattern { &mut self.patterns } else { &mut self.channels };
        map.entry(channel).or_default().insert(client, subscriber.clone()).is_none()
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
        if let Some(subs) = self.channels.get(channel) {
            for tx in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::text("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                if tx.deliver(msg) {
                    receivers += 1;
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
                if tx.deliver(msg) {
                    receivers += 1;
                }
            }
        }
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
