//! The I/O threads of the resp front: each runs a single-threaded tokio runtime of its own
//! and serves the connections handed to it, start to end.
//!
//! A request's read, its execution and its reply then stay on one thread, woken by its own
//! epoll, as on a Redis I/O thread: no task hops between workers and no worker waking
//! another, which on two cores shared with the clients cost more than the commands
//! themselves (`perf`: `try_to_wake_up`, futex). How many threads is the config's choice
//! (`auto_io_threads` by default); a new connection goes to the thread with the fewest open
//! ones.
//!
//! Work that may block for long does not run here: Lua scripts go to tokio's blocking pool
//! (`strata_cache::Session`), core commits to core's commit thread.

use std::cell::OnceCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

thread_local! {
    /// On an I/O thread, its count of open connections ([`Thread::open`]).
    static OPEN_HERE: OnceCell<Arc<AtomicUsize>> = const { OnceCell::new() };
}

/// Whether the calling I/O thread has other connections open besides the caller's.
pub fn has_neighbours() -> bool {
    OPEN_HERE.with(|open| open.get().is_some_and(|n| n.load(Ordering::Relaxed) > 1))
}

/// Serves one connection on the thread it was handed to.
pub type Serve =
    Arc<dyn Fn(tokio::net::TcpStream, SocketAddr) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Thread {
    queue: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
}

/// The threads; dropping this stops them, and with them their connections.
pub struct IoThreads {
    threads: Vec<Thread>,
}

impl IoThreads {
    /// Starts `count` threads (at least one) that run `serve` for each connection.
    pub fn start(count: usize, serve: Serve) -> std::io::Result<IoThreads> {
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let (queue, mut sockets) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (serve, counter) = (serve.clone(), open.clone());
            std::thread::Builder::new().name(format!("resp-io-{i}")).spawn(move || {
                OPEN_HERE.with(|open| open.set(counter.clone()).expect("set once per thread"));
                runtime.block_on(async move {
                    while let Some((socket, peer)) = sockets.recv().await {
                        let socket = match tokio::net::TcpStream::from_std(socket) {
                            Ok(socket) => socket,
                            Err(err) => {
                                tracing::debug!(%err, "could not register a resp connection");
                                counter.fetch_sub(1, Ordering::AcqRel);
                                continue;
                            }
                        };
                        let (serve, counter) = (serve.clone(), counter.clone());
                        tokio::spawn(async move {
                            serve(socket, peer).await;
                            counter.fetch_sub(1, Ordering::AcqRel);
                        });
                    }
                });
            })?;
            threads.push(Thread { queue, open });
        }
        Ok(IoThreads { threads })
    }

    /// Connections open on all threads (handed over and not yet ended).
    pub fn open(&self) -> usize {
        self.threads.iter().map(|t| t.open.load(Ordering::Acquire)).sum()
    }

    /// Hands `socket` to the thread with the fewest open connections.
    pub fn hand_over(&self, socket: tokio::net::TcpStream, peer: SocketAddr) -> std::io::Result<()> {
        let thread =
            self.threads.iter().min_by_key(|t| t.open.load(Ordering::Acquire)).expect("at least one thread");
        let socket = socket.into_std()?;
        thread.open.fetch_add(1, Ordering::AcqRel);
        if thread.queue.send((socket, peer)).is_err() {
            thread.open.fetch_sub(1, Ordering::AcqRel);
            return Err(std::io::Error::other("a resp I/O thread has stopped"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_knows_whether_its_thread_serves_others() {
        // Each connection reports has_neighbours() when it starts and once more when told
        // to, then ends when told to.
        let (seen_tx, seen_rx) = std::sync::mpsc::channel::<bool>();
        let (go_tx, go_rx) = tokio::sync::watch::channel(0usize);
        let serve: Serve = Arc::new(move |_socket, _peer| {
            let (seen, mut go) = (seen_tx.clone(), go_rx.clone());
            Box::pin(async move {
                seen.send(has_neighbours()).unwrap();
                let _ = go.wait_for(|n| *n >= 1).await;
                seen.send(has_neighbours()).unwrap();
                let _ = go.wait_for(|n| *n >= 2).await;
            })
        });
        let threads = IoThreads::start(1, serve).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = Vec::new();
            let mut connect = async || {
                clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
                let (socket, peer) = listener.accept().await.unwrap();
                threads.hand_over(socket, peer).unwrap();
            };
            let seen = || seen_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            connect().await;
            assert!(!seen(), "the first connection is alone on its thread");
            connect().await;
            assert!(seen(), "the second one is not");
            go_tx.send(1).unwrap();
            assert_eq!([seen(), seen()], [true, true], "while both are open, neither is alone");
            // Both end; a connection after them is alone again.
            go_tx.send(2).unwrap();
            while threads.open() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            go_tx.send(0).unwrap();
            connect().await;
            assert!(!seen(), "the ended connections no longer count");
        });
    }
}
