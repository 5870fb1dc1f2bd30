//! The proxy's worker threads. Each runs a current-thread tokio runtime with a pipeline of
//! its own (`Pipeline::for_thread`, so its pooled upstream connections are its own too) and
//! serves the connections handed to it start to end.
//!
//! A request then stays on one thread from the client's socket to the upstream's and back:
//! on the shared multi-thread runtime, the server task, the pooled client's connection task
//! and the I/O driver sat on different workers and woke each other through futexes, which
//! on two cores shared with the clients and the upstreams cost more than the pipeline's own
//! work (`perf`: `try_to_wake_up`, `futex_wake`). A new connection goes to the thread with
//! the fewest open ones. The resp front does the same for the same reason
//! (`strata-resp`'s `io_threads.rs`).

use crate::pipeline::Pipeline;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Serves one accepted connection with the pipeline of the thread it runs on.
pub type Serve = Arc<
    dyn Fn(tokio::net::TcpStream, SocketAddr, Arc<Pipeline>) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

struct Worker {
    sockets: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
}

/// The threads; dropping this stops them, and with them their connections.
pub struct Workers {
    workers: Vec<Worker>,
}

impl Workers {
    /// Starts `count` threads (at least one), each with a pipeline made from `pipeline`,
    /// that run `serve` for each connection handed to them.
    pub fn start(count: usize, pipeline: &Pipeline, serve: Serve) -> std::io::Result<Workers> {
        let mut workers = Vec::new();
        for i in 0..count.max(1) {
            let (sockets, mut incoming) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (serve, counter, pipeline) = (serve.clone(), open.clone(), Arc::new(pipeline.for_thread()));
            std::thread::Builder::new().name(format!("proxy-{i}")).spawn(move || {
                runtime.block_on(async move {
                    while let Some((socket, peer)) = incoming.recv().await {
                        let socket = match tokio::net::TcpStream::from_std(socket) {
                            Ok(socket) => socket,
                            Err(err) => {
                                tracing::debug!(%err, "could not register a proxy connection");
                                counter.fetch_sub(1, Ordering::AcqRel);
                                continue;
                            }
                        };
                        let connection = serve(socket, peer, pipeline.clone());
                        let counter = counter.clone();
                        tokio::spawn(async move {
                            connection.await;
                            counter.fetch_sub(1, Ordering::AcqRel);
                        });
                    }
                });
            })?;
            workers.push(Worker { sockets, open });
        }
        Ok(Workers { workers })
    }

    /// Hands `socket` to the thread with the fewest open connections.
    pub fn hand_over(&self, socket: tokio::net::TcpStream, peer: SocketAddr) -> std::io::Result<()> {
        let worker =
            self.workers.iter().min_by_key(|w| w.open.load(Ordering::Acquire)).expect("at least one worker");
        let socket = socket.into_std()?;
        worker.open.fetch_add(1, Ordering::AcqRel);
        if worker.sockets.send((socket, peer)).is_err() {
            worker.open.fetch_sub(1, Ordering::AcqRel);
            return Err(std::io::Error::other("a proxy worker thread has stopped"));
        }
        Ok(())
    }
}
