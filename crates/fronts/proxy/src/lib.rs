//! # strata-proxy: the proxy front (port 8000)
//!
//! An HTTP/1.1 and HTTP/2 server (hyper) that runs each request through the edge's
//! pipeline and forwards it with a pooled hyper client, bodies streamed both ways:
//!
//! ```text
//!   request ─► X-Request-Id ─► route ─► static / redirect
//!           ─► auth (401/403) ─► rate limit (429) ─► body limit (413)
//!           ─► backend (balance, health, ejection, max in flight) ─► upstream
//!           ─► retries (idempotent, bodiless, within budget) ─► response headers ─► access log
//! ```
//!
//! WebSocket upgrades pass through (`pipeline.rs`); active health checks run in
//! `health.rs`; JWKS URLs are fetched in `jwks.rs`; plain TCP balancing (L4) in `tcp.rs`;
//! rate limits shared between edge processes through a Redis-protocol store in
//! `shared_limits.rs`. Errors are JSON:
//! `{"error": {"code": "...", "message": "..."}, "request_id": "..."}`.

mod access_log;
mod health;
mod jwks;
mod pipeline;
mod shared_limits;
mod tcp;

pub use access_log::AccessLog;
pub use tcp::serve_tcp;

use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use strata_edge::Edge;
use tokio::net::TcpListener;

/// Settings of the proxy front.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Largest request head (HTTP/1.1); bigger is a 431.
    pub max_header_bytes: usize,
    /// Connect timeout when a route sets none.
    pub connect_timeout: Duration,
    /// Time to the upstream's response head when a route sets none.
    pub timeout: Duration,
    /// Body limit when a route sets none.
    pub max_body_bytes: u64,
    /// Idle keep-alive connections kept per upstream.
    pub pool_idle_per_host: usize,
    /// A Redis-protocol store (`redis://host:port/`) where rate limits are kept, shared
    /// with every edge process that names it; `None` keeps them in this process.
    pub rate_limit_store: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_header_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
            max_body_bytes: 100 * 1024 * 1024,
            pool_idle_per_host: 256,
            rate_limit_store: None,
        }
    }
}

/// Serves the proxy on `listener` until `shutdown` resolves; health checks and JWKS fetches
/// run meanwhile.
pub async fn serve(
    listener: TcpListener,
    edge: Edge,
    config: ProxyConfig,
    log: AccessLog,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pipeline = Arc::new(pipeline::Pipeline::new(edge.clone(), config.clone(), log));
    let checks = tokio::spawn(health::run(edge.clone(), pipeline.clone()));
    let keys = tokio::spawn(jwks::run(edge));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    tracing::warn!(%err, "proxy accept failed");
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let pipeline = pipeline.clone();
        let max_header = config.max_header_bytes;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let pipeline = pipeline.clone();
                async move { Ok::<_, std::convert::Infallible>(pipeline.handle(req, peer).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().max_buf_size(max_header.max(8192));
            if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(socket), service).await {
                tracing::debug!(%err, "proxy connection ended with an error");
            }
        });
    }
    checks.abort();
    keys.abort();
    Ok(())
}
