//! Plain TCP (L4) balancing: each accepted connection goes to a backend of the pool (by its
//! policy; consistent hashing hashes the client IP) and bytes are copied both ways. A
//! backend that refuses is reported to the pool and the next one is tried. With a health
//! check, every backend is connected to on an interval, and one that fails is left out
//! until it passes again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use strata_edge::balance::Pool;
use strata_edge::spec::TcpHealthCheckSpec;
use tokio::net::{TcpListener, TcpStream};

pub async fn serve_tcp(
    listener: TcpListener,
    pool: Arc<Pool>,
    connect_timeout: Duration,
    health_check: Option<TcpHealthCheckSpec>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let checks = health_check.map(|check| tokio::spawn(check_backends(pool.clone(), check)));
    let served = accept_loop(listener, pool, connect_timeout, shutdown).await;
    if let Some(checks) = checks {
        checks.abort();
    }
    served
}

/// Connects to every backend each `interval_ms` and records the outcome in the pool.
async fn check_backends(pool: Arc<Pool>, check: TcpHealthCheckSpec) {
    let mut tick = tokio::time::interval(Duration::from_millis(check.interval_ms.max(10)));
    let timeout = Duration::from_millis(check.timeout_ms);
    let thresholds = (check.unhealthy_threshold, check.healthy_threshold);
    loop {
        tick.tick().await;
        for (index, backend) in pool.backends.iter().enumerate() {
            let (pool, address) = (pool.clone(), backend.address.clone());
            tokio::spawn(async move {
                let ok =
                    matches!(tokio::time::timeout(timeout, TcpStream::connect(&address)).await, Ok(Ok(_)));
                pool.record_check(index, ok, thresholds);
            });
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    pool: Arc<Pool>,
    connect_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (mut client, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            let key = peer.ip().to_string();
            let mut tried = Vec::new();
            while let Some(lease) = pool.pick(Some(&key), &tried) {
                let index = lease.index;
                match tokio::time::timeout(connect_timeout, TcpStream::connect(lease.address())).await {
                    Ok(Ok(mut upstream)) => {
                        pool.report(index, false);
                        let _ = upstream.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        metrics::counter!("strata_proxy_tcp_connections_total", "upstream" => lease.address().to_string()).increment(1);
                        if let Ok((up, down)) = copied {
                            metrics::counter!("strata_proxy_tcp_bytes_total").increment(up + down);
                        }
                        return;
                    }
                    _ => {
                        pool.report(index, true);
                        tried.push(index);
                    }
                }
            }
            tracing::warn!(%peer, "no TCP backend accepted the connection");
        });
    }
}
