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
mod workers;

pub use access_log::AccessLog;
pub use tcp::serve_tcp;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
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
    /// Threads serving connections (`workers.rs`); 0 is one per core.
    pub workers: usize,
    /// An HTTP/1.1 client connection that sends no request head for this long (idle
    /// between requests, or slow to send one) is closed; zero never closes it.
    pub idle_timeout: Duration,
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
            workers: 0,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves the proxy on `listener` until `shutdown` resolves: connections are served on the
/// worker threads (`workers.rs`) and close when it resolves; health checks and JWKS fetches
/// run meanwhile on the caller's runtime.
pub async fn serve(
    listener: TcpListener,
    edge: Edge,
    config: ProxyConfig,
    log: AccessLog,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let pipeline = Arc::new(pipeline::Pipeline::new(edge.clone(), config.clone(), log));
    let (max_header, idle_timeout) = (config.max_header_bytes, config.idle_timeout);
    let serve_one: workers::Serve = Arc::new(move |socket, peer, pipeline| {
        Box::pin(async move {
            let service = hyper::service::service_fn(move |req| {
                let pipeline = pipeline.clone();
                async move { Ok::<_, std::convert::Infallible>(pipeline.handle(req, peer).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .max_buf_size(max_header.max(8192))
                .timer(TokioTimer::new())
                .header_read_timeout((!idle_timeout.is_zero()).then_some(idle_timeout));
            if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(socket), service).await {
                tracing::debug!(%err, "proxy connection ended with an error");
            }
        })
    });
    let count = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers = workers::Workers::start(count, &pipeline, serve_one)?;
    let checks = tokio::spawn(health::run(edge.clone(), pipeline));
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
        if let Err(err) = workers.hand_over(socket, peer) {
            tracing::warn!(%err, "could not hand a proxy connection to a worker thread");
        }
    }
    checks.abort();
    keys.abort();
    drop(workers);
    Ok(())
}
