//! Per-topic configuration under Kafka's names (`retention.ms`, `cleanup.policy`, ...), the
//! defaults a topic gets, and the parsing and listing DescribeConfigs and CreateTopics need.

use crate::StreamError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// How long records are kept; `-1` keeps them forever.
    pub retention_ms: i64,
    /// How large a partition may grow before its oldest segments go; `-1` is unlimited.
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// `delete` (retention), `compact` (latest value per key), or both.
    pub delete: bool,
    pub compact: bool,
    /// How long a tombstone (null value) outlives compaction.
    pub delete_retention_ms: i64,
    /// Batches carry the broker's clock rather than the producer's.
    pub log_append_time: bool,
    /// The largest record batch a producer may send.
    pub max_message_bytes: usize,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 128 << 20,
            segment_ms: 7 * 24 * 3600 * 1000,
            delete: true,
            compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            log_append_time: false,
            max_message_bytes: 1 << 20,
        }
    }
}

/// The names DescribeConfigs lists, in order.
pub const NAMES: [&str; 8] = [
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "delete.retention.ms",
    "message.timestamp.type",
    "max.message.bytes",
];

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, StreamError> {
    value.parse().map_err(|_| StreamError::InvalidConfig(format!("{name}={value} is not a number")))
}

impl TopicConfig {
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), StreamError> {
        match name {
            "cleanup.policy" => {
                let mut delete = false;
                let mut compact = false;
                for policy in value.split(',').map(str::trim) {
                    match policy {
                        "delete" => delete = true,
                        "compact" => compact = true,
                        other => {
                            return Err(StreamError::InvalidConfig(format!(
                                "unknown cleanup.policy {other}"
                            )));
                        }
                    }
                }
                self.delete = delete;
                self.compact = compact;
            }
            "retention.ms" => self.retention_ms = parse(name, value)?,
            "retention.bytes" => self.retention_bytes = parse(name, value)?,
            "segment.bytes" => {
                let bytes: u64 = parse(name, value)?;
                if bytes < 1024 {
                    return Err(StreamError::InvalidConfig("segment.bytes must be at least 1024".into()));
                }
                self.segment_bytes = bytes;
            }
            "segment.ms" => {
                let ms: i64 = parse(name, value)?;
                if ms < 1 {
                    return Err(StreamError::InvalidConfig("segment.ms must be positive".into()));
                }
                self.segment_ms = ms;
            }
            "delete.retention.ms" => self.delete_retention_ms = parse(name, value)?,
            "message.timestamp.type" => {
                self.log_append_time = match value {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    other => {
                        return Err(StreamError::InvalidConfig(format!(
                            "unknown message.timestamp.type {other}"
                        )));
                    }
                }
            }
            "max.message.bytes" => self.max_message_bytes = parse(name, value)?,
            other => return Err(StreamError::InvalidConfig(format!("unknown topic config {other}"))),
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => match (self.delete, self.compact) {
                (true, true) => "compact,delete".into(),
                (false, true) => "compact".into(),
                _ => "delete".into(),
            },
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "message.timestamp.type" => {
                if self.log_append_time { "LogAppendTime" } else { "CreateTime" }.into()
            }
            "max.message.bytes" => self.max_message_bytes.to_string(),
            _ => return None,
        })
    }

    pub fn retention_ms(&self) -> Option<i64> {
        (self.delete && self.retention_ms >= 0).then_some(self.retention_ms)
    }

    pub fn retention_bytes(&self) -> Option<u64> {
        (self.delete && self.retention_bytes >= 0).then_some(self.retention_bytes as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_name() {
        let mut config = TopicConfig::default();
        config.set("cleanup.policy", "compact").unwrap();
        config.set("retention.ms", "1000").unwrap();
        config.set("message.timestamp.type", "LogAppendTime").unwrap();
        for name in NAMES {
            let value = config.get(name).unwrap();
            let mut copy = TopicConfig::default();
            copy.set(name, &value).unwrap();
            assert_eq!(copy.get(name).unwrap(), value);
        }
        assert_eq!(config.retention_ms(), None, "compact-only topics keep everything");
        assert!(config.set("retention.ms", "soon").is_err());
        assert!(config.set("no.such", "1").is_err());
    }
}
