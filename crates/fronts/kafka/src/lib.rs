//! # strata-kafka: the Kafka wire protocol over the stream block
//!
//! A single broker (node 0) that leads every partition and coordinates every group. kcat,
//! librdkafka, kafka-python and rskafka connect unchanged. Frames are decoded and encoded
//! with the `kafka-protocol` crate; this crate only maps requests onto
//! [`strata_stream::Streams`] and answers in Kafka's terms — no business logic lives here.
//!
//! Per connection, requests are answered in order (as Kafka does), so a long-polling fetch
//! holds back only its own connection. A frame over `max_request_bytes`, an API or version
//! this broker does not serve, or a frame that does not decode closes that connection (what a
//! Kafka broker does); other connections are unaffected. ApiVersions with a version too new
//! gets `UNSUPPORTED_VERSION` and the version list, so clients can downgrade.

mod admin;
mod conn;
mod errors;
mod fetch;
mod groups;
mod metadata;
mod produce;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use strata_stream::Streams;
use tokio::net::TcpListener;

/// The front's settings (`[kafka]` in strata.toml).
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// The host and port clients are told to connect to; `None` uses the listening address.
    pub advertised: Option<(String, u16)>,
    /// The largest request frame accepted.
    pub max_request_bytes: usize,
    /// The longest a fetch may wait for data, whatever the client asks.
    pub max_wait_ms: u64,
    /// Create a topic the first time a client asks for it in Metadata.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics without a count.
    pub default_partitions: i32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            advertised: None,
            max_request_bytes: 64 << 20,
            max_wait_ms: 30_000,
            auto_create_topics: true,
            default_partitions: 1,
        }
    }
}

/// What every handler sees.
pub(crate) struct Ctx {
    pub streams: Streams,
    pub config: KafkaConfig,
    pub host: String,
    pub port: i32,
}

/// Serves Kafka clients on `listener` until `shutdown` completes, then closes their
/// connections; also drives the group coordinator's timers.
pub async fn serve(
    listener: TcpListener,
    streams: Streams,
    config: KafkaConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let (host, port) = config.advertised.clone().unwrap_or_else(|| (advertised_host(local), local.port()));
    let ctx = Arc::new(Ctx { streams: streams.clone(), config, host, port: i32::from(port) });
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(100));
        loop {
            interval.tick().await;
            streams.groups().tick(streams.now_ms());
        }
    });
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        tracing::warn!(%err, "kafka accept failed");
                        continue;
                    }
                };
                let ctx = ctx.clone();
                connections.spawn(async move {
                    if let Err(err) = conn::serve_connection(socket, peer, ctx).await {
                        tracing::debug!(%peer, %err, "kafka connection ended");
                    }
                });
            }
        }
    };
    // Close every connection, and wait until they are gone, so the block is released.
    ticker.abort();
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    result
}

fn advertised_host(local: SocketAddr) -> String {
    if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() }
}
