//! Plain TCP (L4) balancing: each accepted connection goes to a backend of the pool (by its
//! policy; consistent hashing hashes the client IP) and bytes are copied both ways. A
//! backend that refuses is reported to the pool and the next one is tried.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use strata_edge::balance::Pool;
use tokio::net::{TcpListener, TcpStream};

pub async fn serve_tcp(
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
