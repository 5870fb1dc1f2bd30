//! The MD5s of large uploads, hashed side by side in SIMD lanes on a few shared threads.
//!
//! MD5 cannot be split within one stream (each 64-byte block needs the state left by the
//! one before), and one core hashes about 0.6–0.8 GB/s of it: less than a disk writes. But
//! the streams of concurrent uploads (clients in parallel, or the parts aws-cli and boto3
//! send ten at a time) are independent, and `md5_many` hashes up to 16 of them at once in
//! the lanes of AVX-512 (8 in AVX2) registers, about 4 GB/s on one core. No crate gathers
//! the chunks of concurrent streams into those lanes, so this module does, as MinIO's
//! `md5-simd` server does in Go:
//!
//! ```text
//!   upload ─► LaneStream::update (256 KiB chunks) ─► board: queue per stream, ready FIFO
//!   hasher threads: ≥ 4 streams with a whole chunk ready ─► 16, 8 or 4 of them, side by
//!                                                          side (update_many)
//!                   fewer ─► one stream's chunk alone (each thread its own)
//!                   (with 8 or more uploads open, a thread first waits up to 2 ms for 8)
//!   LaneStream::finish ─► waits for its queue to drain ─► digest
//! ```
//!
//! A stream has at most [`MAX_QUEUED`] chunks waiting: a writer faster than the hashers
//! blocks in `update`, so memory stays bounded.

use md5_many::{Md5Many, Md5State};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Bytes gathered per stream before they go to the hashers: big enough that a round's
/// bookkeeping is small next to its hashing, and lanes of one round finish together.
const CHUNK: usize = 256 * 1024;

/// Chunks a stream may have waiting before its writer blocks.
const MAX_QUEUED: usize = 8;

/// How many streams a round hashes side by side, widest first: the widths `md5_many` runs at
/// full speed, and only with chunks of equal length. Every other round is far slower than
/// hashing its streams one by one (`md5_many` 0.1.0-alpha.4 on AVX-512, one core, 256 KiB
/// chunks, GB/s in total: one stream alone 0.77; 4 lanes 1.2, 8 lanes 4.9, 16 lanes 7.3;
/// but 5-7 lanes 0.17-0.24, 9-15 lanes 1.9-2.7, and 8 lanes of which 3 chunks are shorter
/// 0.26). A 1 MiB upload was hashed in such rounds most of the time, and MD5 took about
/// half the CPU of 16 clients' PUTs.
const WIDTHS: [usize; 3] = [16, 8, 4];

/// Ready streams that fill a round well.
const FULL_ROUND: usize = 8;

/// How long a hasher waits for a fuller round while enough streams are open to fill one.
const GATHER: Duration = Duration::from_millis(2);

/// Most streams hashed in one round.
const MAX_LANES: usize = WIDTHS[0];

/// A stream's MD5 and its chunks not yet hashed.
struct Stream {
    md5: Md5State,
    queue: VecDeque<Vec<u8>>,
    /// A hasher holds its state (and one chunk) right now.
    busy: bool,
}

#[derive(Default)]
struct Board {
    streams: HashMap<u64, Stream>,
    /// Streams with a chunk waiting and not busy, oldest first.
    ready: VecDeque<u64>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    board: Mutex<Board>,
    /// Rung when a stream becomes ready.
    work: Condvar,
    /// Rung when a hasher hands states back (a writer may wait for room or for its end).
    done: Condvar,
}

impl Shared {
    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().expect("md5 board lock poisoned")
    }
}

/// The process's hasher threads, one per core, started on first use.
fn shared() -> &'static Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let shared = Arc::new(Shared::default());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("blob-md5-{i}"))
                .spawn(move || hash_forever(&shared))
                .expect("spawning an md5 hasher thread");
        }
        shared
    })
}

/// One hasher thread: takes ready streams from the board, hashes a chunk of each, hands
/// their states back.
fn hash_forever(shared: &Shared) {
    let many = Md5Many::new();
    let mut ids = Vec::with_capacity(MAX_LANES);
    let mut states = Vec::with_capacity(MAX_LANES);
    let mut chunks = Vec::with_capacity(MAX_LANES);
    loop {
        {
            let mut board = shared.board();
            let mut deadline = None;
            loop {
                let ready = board.ready.len();
                if ready >= FULL_ROUND || (ready > 0 && board.streams.len() < FULL_ROUND) {
                    break;
                }
                if ready == 0 {
                    board = shared.work.wait(board).expect("md5 board lock poisoned");
                    continue;
                }
                // Enough uploads are open to fill a round: give their next chunks a moment.
                let until = *deadline.get_or_insert_with(|| Instant::now() + GATHER);
                let Some(left) = until.checked_duration_since(Instant::now()) else { break };
                board = shared.work.wait_timeout(board, left).expect("md5 board lock poisoned").0;
            }
            round(&mut board, &mut ids);
            for &id in &ids {
                let stream = board.streams.get_mut(&id).expect("a ready stream is on the board");
                stream.busy = true;
                states.push(stream.md5);
                chunks.push(stream.queue.pop_front().expect("a ready stream has a chunk"));
            }
        }
        if states.len() > 1 {
            let inputs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            many.update_many(&mut states, &inputs);
        } else {
            for (state, chunk) in states.iter_mut().zip(&chunks) {
                state.update(chunk);
            }
        }
        let mut board = shared.board();
        for (id, state) in ids.drain(..).zip(states.drain(..)) {
            let stream = board.streams.get_mut(&id).expect("a busy stream stays on the board");
            stream.md5 = state;
            stream.busy = false;
            if !stream.queue.is_empty() {
                board.ready.push_back(id);
                shared.work.notify_one();
            }
        }
        chunks.clear();
        shared.done.notify_all();
    }
}

/// Moves the streams of the next round from the ready list to `ids`: the oldest 16, 8 or 4
/// whose next chunk is whole ([`WIDTHS`]), else the oldest one. The oldest goes alone, too,
/// when its next chunk is an upload's shorter last one: that upload is finishing, and it
/// must not wait while lane rounds of other uploads keep coming.
fn round(board: &mut Board, ids: &mut Vec<u64>) {
    let Board { streams, ready, .. } = board;
    let whole = |id: &u64| streams[id].queue.front().is_some_and(|c| c.len() == CHUNK);
    let count = ready.iter().filter(|id| whole(id)).count();
    let oldest_whole = ready.front().is_some_and(whole);
    let Some(&width) = WIDTHS.iter().find(|&&w| count >= w).filter(|_| oldest_whole) else {
        ids.extend(ready.pop_front());
        return;
    };
    ready.retain(|id| {
        let take = ids.len() < width && whole(id);
        if take {
            ids.push(*id);
        }
        !take
    });
}

/// The MD5 of one stream, hashed on the shared hasher threads.
pub struct LaneStream {
    shared: &'static Arc<Shared>,
    id: u64,
    /// Bytes not yet sent as a chunk.
    pending: Vec<u8>,
}

impl LaneStream {
    /// A stream that goes on from `md5` (the bytes hashed so far).
    pub fn new(md5: Md5State) -> LaneStream {
        let shared = shared();
        let mut board = shared.board();
        let id = board.next_id;
        board.next_id += 1;
        board.streams.insert(id, Stream { md5, queue: VecDeque::new(), busy: false });
        LaneStream { shared, id, pending: Vec::with_capacity(CHUNK) }
    }

    /// Adds bytes; blocks while the stream has [`MAX_QUEUED`] chunks waiting.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        let mut board = self.shared.board();
        while board.streams[&self.id].queue.len() >= MAX_QUEUED {
            board = self.shared.done.wait(board).expect("md5 board lock poisoned");
        }
        let stream = board.streams.get_mut(&self.id).expect("a live stream is on the board");
        let was_idle = stream.queue.is_empty() && !stream.busy;
        stream.queue.push_back(chunk);
        if was_idle {
            board.ready.push_back(self.id);
            self.shared.work.notify_one();
        }
    }

    /// The digest, once every byte is hashed.
    pub fn finish(mut self) -> [u8; 16] {
        if !self.pending.is_empty() {
            self.send();
        }
        let mut board = self.shared.board();
        loop {
            let stream = &board.streams[&self.id];
            if stream.queue.is_empty() && !stream.busy {
                break;
            }
            board = self.shared.done.wait(board).expect("md5 board lock poisoned");
        }
        let stream = board.streams.remove(&self.id).expect("checked above");
        stream.md5.finalize()
    }
}

impl Drop for LaneStream {
    /// A stream dropped unfinished (an upload cut short) leaves the board once no hasher
    /// holds it; its queued chunks are dropped unhashed.
    fn drop(&mut self) {
        let mut board = self.shared.board();
        let Some(stream) = board.streams.get_mut(&self.id) else { return };
        stream.queue.clear();
        if stream.busy {
            // The hasher hands the state back and finds no chunk left; remove it then.
            board = self
                .shared
                .done
                .wait_while(board, |b| b.streams[&self.id].busy)
                .expect("md5 board lock poisoned");
        }
        board.streams.remove(&self.id);
        board.ready.retain(|id| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(data: &[u8]) -> [u8; 16] {
        let mut state = Md5State::new();
        state.update(data);
        state.finalize()
    }

    #[test]
    fn concurrent_streams_get_each_its_own_digest() {
        // 20 streams at once (more than a round's lanes), of uneven lengths and write sizes.
        let handles: Vec<_> = (0..20usize)
            .map(|i| {
                std::thread::spawn(move || {
                    let data: Vec<u8> = (0..(CHUNK * 3 + i * 4099)).map(|j| (j * 7 + i) as u8).collect();
                    let mut stream = LaneStream::new(Md5State::new());
                    for piece in data.chunks(1000 + i * 100) {
                        stream.update(piece);
                    }
                    (stream.finish(), expected(&data))
                })
            })
            .collect();
        for handle in handles {
            let (got, want) = handle.join().unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn an_empty_stream_and_a_dropped_one() {
        assert_eq!(LaneStream::new(Md5State::new()).finish(), expected(b""));
        let mut cut = LaneStream::new(Md5State::new());
        cut.update(&vec![1u8; CHUNK * 5]);
        drop(cut);
        let mut next = LaneStream::new(Md5State::new());
        next.update(b"abc");
        assert_eq!(hex_of(next.finish()), "900150983cd24fb0d6963f7d28e17f72");
    }

    /// A round is 16, 8 or 4 streams with whole chunks, oldest first, or one stream: never a
    /// width or a mix of chunk lengths that `md5_many` runs slowly. An upload's last, shorter
    /// chunk at the head of the line goes first, alone.
    #[test]
    fn a_round_takes_a_fast_width_of_whole_chunks_or_one_stream() {
        let mut board = Board::default();
        // Streams 0-12 have a whole chunk next, except 2 and 5, which have a tail.
        let add = |board: &mut Board, id: u64, len: usize| {
            let queue = vec![vec![0; len]].into();
            board.streams.insert(id, Stream { md5: Md5State::new(), queue, busy: false });
            board.ready.push_back(id);
        };
        for id in 0..13u64 {
            add(&mut board, id, if id == 2 || id == 5 { 100 } else { CHUNK });
        }
        let next = |board: &mut Board| {
            let mut ids = Vec::new();
            round(board, &mut ids);
            ids
        };
        assert_eq!(next(&mut board), [0, 1, 3, 4, 6, 7, 8, 9], "11 whole chunks: 8 of them");
        assert_eq!(board.ready, [2, 5, 10, 11, 12], "the rest keep their order");
        assert_eq!(next(&mut board), [2], "the oldest stream's tail goes first, alone");
        assert_eq!(next(&mut board), [5]);
        assert_eq!(next(&mut board), [10], "3 whole chunks: the oldest stream alone");
        for id in 13..16 {
            add(&mut board, id, CHUNK);
        }
        assert_eq!(next(&mut board), [11, 12, 13, 14]);
        assert_eq!(board.ready, [15]);
    }

    fn hex_of(digest: [u8; 16]) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}
