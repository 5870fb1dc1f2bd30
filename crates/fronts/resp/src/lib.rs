//! strata-resp: the Redis protocol front. It frames requests (RESP2 multibulk and inline),
//! hands each argument vector to a [`strata_cache::Session`] — or, for `LOCK.*`, to the lock
//! block (`lock.rs`) — and writes the replies as RESP2 or RESP3. Pipelined requests are answered in one write per batch read; pub/sub messages
//! are written as they arrive.

mod encode;
mod frame;
mod io_threads;
mod lock;

pub use encode::encode;
pub use frame::{Frame, Limits, Parser, ProtocolError};

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use strata_cache::{Cache, Reply, Session};
use strata_lock::Locks;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct RespConfig {
    pub limits: Limits,
    pub max_connections: usize,
    /// Threads serving connections (`io_threads.rs`); 0 picks [`auto_io_threads`].
    pub io_threads: usize,
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            limits: Limits { max_bulk: 512 * 1024 * 1024, max_args: 1024 * 1024, max_inline: 64 * 1024 },
            max_connections: 10_000,
            io_threads: 0,
        }
    }
}

/// The I/O threads used when none are configured: one per core but one, and at least one.
///
/// The spare core serves the clients and the other blocks. Commands run one at a time under
/// the keyspace lock, so a second I/O thread adds parsing and syscall capacity but no command
/// capacity; on two cores shared with the load (redis-benchmark) it made no request faster
/// and the pipelined p99 four times worse (3-4 ms against 0.8 ms with one thread), because
/// three busy threads on two cores get descheduled, at times while holding the lock. Redis
/// gives the same advice for its io-threads: leave a core spare, none below four cores.
pub fn auto_io_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1)
}

/// Replies are flushed once this many bytes are pending, even mid-pipeline.
const FLUSH_BYTES: usize = 64 * 1024;

/// Most pipelined requests run as one batch.
const MAX_BATCH: usize = 256;

/// Accepts connections until `shutdown` resolves, and serves them on the I/O threads
/// (`io_threads.rs`); they close when it resolves.
pub async fn serve(
    listener: TcpListener,
    cache: Cache,
    locks: Option<Locks>,
    config: RespConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let threads = match config.io_threads {
        0 => auto_io_threads(),
        n => n,
    };
    let serve_one: io_threads::Serve = {
        let config = config.clone();
        Arc::new(move |socket, peer| {
            let (cache, locks, config) = (cache.clone(), locks.clone(), config.clone());
            Box::pin(async move {
                if let Err(err) = connection(socket, &peer.to_string(), cache, locks.as_ref(), &config).await
                {
                    tracing::debug!(%err, "resp connection ended with an error");
                }
            })
        })
    };
    let io = io_threads::IoThreads::start(threads, serve_one)?;
    tokio::pin!(shutdown);
    loop {
        let (mut socket, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        if io.open() >= config.max_connections {
            let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
            continue;
        }
        if let Err(err) = io.hand_over(socket, peer) {
            tracing::warn!(%err, "could not hand a resp connection to an I/O thread");
        }
    }
}

async fn connection(
    socket: TcpStream,
    peer: &str,
    cache: Cache,
    locks: Option<&Locks>,
    config: &RespConfig,
) -> std::io::Result<()> {
    let (mut reader, writer) = socket.into_split();
    let mut session = cache.session(peer);
    let mut pushes = session.take_pushes().expect("a new session has its push queue");
    let disconnect = session.disconnect();
    // Waited on across the whole loop: a fresh wait per request would register with (and
    // leave) the notifier's waiter list each time.
    let killed = disconnect.wait();
    tokio::pin!(killed);
    let mut parser = Parser::new(config.limits.clone());
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut batch = Vec::new();
    let mut io = Io {
        writer,
        output: BytesMut::with_capacity(16 * 1024),
        replies: Vec::new(),
        disconnect: &disconnect,
    };
    // Requests read since the last reply was sent.
    let mut pending = 0usize;
    loop {
        // Every complete request in the buffer (up to MAX_BATCH) is one pipelined batch.
        let mut broken = None;
        let mut drained = false;
        while batch.len() < MAX_BATCH {
            let next = parser.next(&mut input);
            pending += usize::from(matches!(next, Ok(Some(_))));
            match next {
                Ok(Some(Frame::Command(args))) if args.first().is_some_and(|a| lock::is_lock_command(a)) => {
                    // A lock may be waited for: what came before it is answered first.
                    if !run_batch(&mut io, &mut session, &mut batch).await? || !io.flush().await? {
                        return Ok(());
                    }
                    let reply = match locks {
                        _ if !session.authenticated() => Reply::err("NOAUTH Authentication required."),
                        Some(locks) => lock::execute(locks, &args).await,
                        None => Reply::err("ERR the lock block is not enabled on this server"),
                    };
                    encode(&reply, session.protocol() == 3, &mut io.output);
                }
                Ok(Some(Frame::Command(args))) => batch.push(args),
                Ok(Some(Frame::Rejected(err))) => {
                    if !run_batch(&mut io, &mut session, &mut batch).await? {
                        return Ok(());
                    }
                    encode(&Reply::Error(err), false, &mut io.output);
                }
                Ok(None) => {
                    drained = true;
                    break;
                }
                Err(ProtocolError(err)) => {
                    broken = Some(err);
                    break;
                }
            }
        }
        if !run_batch(&mut io, &mut session, &mut batch).await? {
            return Ok(());
        }
        if disconnect.is_set() {
            // Killed (CLIENT KILL) or too far behind its pub/sub messages: closed at once.
            return Ok(());
        }
        if session.closing() || broken.is_some() {
            if let Some(err) = broken {
                encode(&Reply::Error(err), false, &mut io.output);
            }
            io.flush().await?;
            return Ok(());
        }
        if io.output.len() >= FLUSH_BYTES && !io.flush().await? {
            return Ok(());
        }
        if !drained {
            continue;
        }
        if !io.output.is_empty() {
            if pending > 1 && io_threads::has_neighbours() {
                // Redis writes its replies after running every client the event loop found
                // ready. Yielding here does the same for pipelines: the connections woken in
                // this epoll round run first, and the replies go out back to back, so a
                // client that reads many connections (redis-benchmark, a pool) wakes once
                // for many of them instead of once per reply. redis-benchmark -P 16 -c 50
                // on 2 cores, medians of 6 alternated runs: SET 1.12M -> 1.32M/s, INCR
                // 1.11M -> 1.34M, LPUSH 1.15M -> 1.34M, GET 1.50M -> 1.55M, with lower
                // p99s. A single request, or a lone connection, does not wait: it would
                // pay a poll of the runtime's driver for little (3-5% of one client's
                // requests/s; higher p99s without pipelining).
                tokio::task::yield_now().await;
            }
            if !io.flush().await? {
                return Ok(());
            }
        }
        pending = 0;
        // In this order, so that the usual case (the next request has arrived) polls nothing
        // else; pub/sub messages that came meanwhile are taken after the read, so a client
        // that never stops sending still gets them.
        tokio::select! {
            biased;
            read = reader.read_buf(&mut input) => {
                if read? == 0 {
                    return Ok(());
                }
                if !pushes.is_empty() {
                    take_pushes(&mut pushes, session.protocol() == 3, &mut io.output);
                }
            }
            Some(message) = pushes.recv() => {
                let resp3 = session.protocol() == 3;
                encode(&message, resp3, &mut io.output);
                take_pushes(&mut pushes, resp3, &mut io.output);
            }
            () = &mut killed => return Ok(()),
        }
    }
}

/// Encodes the pub/sub messages waiting in `pushes`, until FLUSH_BYTES of output are pending.
fn take_pushes(pushes: &mut tokio::sync::mpsc::Receiver<Reply>, resp3: bool, output: &mut BytesMut) {
    while output.len() < FLUSH_BYTES {
        match pushes.try_recv() {
            Ok(m) => encode(&m, resp3, output),
            Err(_) => break,
        }
    }
}

/// Writes `output`, unless the connection is to close first (a client that stopped reading
/// would hold the write forever); returns whether it was written.
async fn send(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    output: &[u8],
    disconnect: &strata_cache::Disconnect,
) -> std::io::Result<bool> {
    // The write first: it usually completes at once, and the disconnect is then never polled.
    tokio::select! {
        biased;
        written = writer.write_all(output) => written.map(|()| true),
        () = disconnect.wait() => Ok(false),
    }
}

/// Runs the pending batch and encodes its replies, each in the RESP version in force when it
/// was produced.
///
/// Before a command that may wait (a blocking read, a held command under CLIENT PAUSE), the
/// replies of the commands before it are sent, as Redis writes them once the client blocks.
/// Returns whether the connection is still to be served.
async fn run_batch(
    io: &mut Io<'_>,
    session: &mut Session,
    batch: &mut Vec<Vec<Bytes>>,
) -> std::io::Result<bool> {
    while !batch.is_empty() {
        let stopped = session.execute_batch(batch, &mut io.replies).await;
        for (reply, protocol) in io.replies.drain(..) {
            encode(&reply, protocol == 3, &mut io.output);
        }
        if stopped && !io.flush().await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A connection's writing side: the socket, the replies of a batch being encoded, and the
/// output not yet sent.
struct Io<'a> {
    writer: tokio::net::tcp::OwnedWriteHalf,
    output: BytesMut,
    replies: Vec<(Reply, u8)>,
    disconnect: &'a strata_cache::Disconnect,
}

impl Io<'_> {
    /// Sends the pending output; returns whether it was sent.
    async fn flush(&mut self) -> std::io::Result<bool> {
        if self.output.is_empty() {
            return Ok(true);
        }
        let sent = send(&mut self.writer, &self.output, self.disconnect).await?;
        self.output.clear();
        Ok(sent)
    }
}
