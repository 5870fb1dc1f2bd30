//! Object bytes on disk: `<data-dir>/blob/tmp/` for uploads in flight and
//! `<data-dir>/blob/data/<xx>/<id>` for segments that a committed record may name.
//!
//! A segment is written to `tmp/`, fsynced, renamed into `data/` and its directory fsynced
//! before the core commit that references it, so a crash leaves either no visible object or a
//! whole one. Files no record names (an upload cut short, a commit that failed, a delete
//! whose unlink did not happen) are collected by [`Files::collect_garbage`] at start.
//!
//! Small segments (up to `inline_max_bytes`) never touch a file: their bytes go into core in
//! the same commit as the record, so a small PUT costs one group-committed fsync.
//!
//! With a remote backend (`remote.rs`) finished segments leave `tmp/` for the external
//! object store instead of `data/`, under the same rules.
//!
//! A segment written [`SegmentWriter::encrypted`] is stored sealed (`sse.rs`), in `data/`,
//! in core and remotely alike; [`ObjectReader`] opens it at any offset.

use crate::checksum::{ChecksumAlgorithm, Checksums, Hasher};
use crate::md5_lanes::LaneStream;
use crate::meta::Segment;
use crate::remote::{Remote, RemoteReader};
use crate::sse::{MasterKey, SegmentCipher};
use crate::{BlobError, BlobResult};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the blob block keeps segment bytes.
pub(crate) struct Files {
    tmp: PathBuf,
    place: Place,
    /// The master key of encrypted segments.
    pub(crate) sse: MasterKey,
}

#[derive(Debug)]
enum Place {
    /// `data/<xx>/<id>` under the block's directory.
    Local(PathBuf),
    Remote(Remote),
}

impl Files {
    /// Segments in files under `dir`, or in `remote` when given (with `dir/tmp` for uploads).
    pub(crate) fn open(dir: &Path, remote: Option<Remote>) -> BlobResult<Arc<Files>> {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let place = match remote {
            Some(remote) => Place::Remote(remote),
            None => {
                let data = dir.join("data");
                std::fs::create_dir_all(&data)?;
                Place::Local(data)
            }
        };
        let sse = MasterKey::load_or_create(dir)?;
        Ok(Arc::new(Files { tmp, place, sse }))
    }

    /// Where local segment `id` lives.
    fn local_path(data: &Path, id: &str) -> PathBuf {
        data.join(&id[..2]).join(id)
    }

    /// Removes the bytes of segments no longer referenced. Errors are logged: a file left
    /// behind is collected at the next start.
    pub(crate) fn remove(&self, segments: &[Segment]) {
        let ids = segments.iter().filter(|s| !s.inline).map(|s| s.id.clone());
        match &self.place {
            Place::Remote(remote) => remote.delete(ids.collect()),
            Place::Local(data) => {
                for id in ids {
                    if let Err(err) = std::fs::remove_file(Self::local_path(data, &id))
                        && err.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(%id, %err, "removing a blob segment failed");
                    }
                }
            }
        }
    }

    /// A new segment with segment `id`'s bytes: a hard link locally, a server-side copy
    /// remotely.
    pub(crate) fn link(&self, id: &str) -> BlobResult<String> {
        let new_id = new_id();
        match &self.place {
            Place::Remote(remote) => remote.copy(id, &new_id)?,
            Place::Local(data) => {
                let target = Self::local_path(data, &new_id);
                let dir = target.parent().expect("segment paths have a directory");
                std::fs::create_dir_all(dir)?;
                std::fs::hard_link(Self::local_path(data, id), &target)?;
                sync_dir(dir)?;
            }
        }
        Ok(new_id)
    }

    /// Deletes everything in `tmp/`, and every segment not in `referenced`. Returns how many
    /// files or remote objects were removed.
    pub(crate) fn collect_garbage(&self, referenced: &HashSet<String>) -> BlobResult<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)? {
            std::fs::remove_file(entry?.path())?;
            removed += 1;
        }
        let data = match &self.place {
            Place::Remote(remote) => return Ok(removed + remote.collect_garbage(referenced)?),
            Place::Local(data) => data,
        };
        for shard in std::fs::read_dir(data)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(shard.path())? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !referenced.contains(&name) {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

impl Files {
    /// Moves a finished, fsynced temporary file to where segment `id` lives.
    fn persist(&self, id: &str, tmp_path: &Path, size: u64) -> BlobResult<()> {
        match &self.place {
            Place::Remote(remote) => {
                remote.upload(id, tmp_path, size)?;
                std::fs::remove_file(tmp_path)?;
            }
            Place::Local(data) => {
                let path = Self::local_path(data, id);
                let dir = path.parent().expect("segment paths have a directory");
                std::fs::create_dir_all(dir)?;
                std::fs::rename(tmp_path, &path)?;
                sync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Opens segment `id` (of `size` bytes) for reading from `offset`.
    fn open_segment(&self, id: &str, offset: u64, size: u64) -> std::io::Result<Handle> {
        match &self.place {
            Place::Remote(remote) => Ok(Handle::Remote(remote.open(id, offset, size)?)),
            Place::Local(data) => {
                let mut file = File::open(Self::local_path(data, id))?;
                if offset > 0 {
                    file.seek(SeekFrom::Start(offset))?;
                }
                Ok(Handle::Local(file))
            }
        }
    }
}

/// An open segment.
pub(crate) enum Handle {
    Local(File),
    Remote(RemoteReader),
}

impl Handle {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Handle::Local(file) => file.read(out),
            Handle::Remote(reader) => reader.read(out),
        }
    }
}

/// A fresh random segment id: 32 hex digits.
pub(crate) fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes written between background flushes of a large segment: the disk writes them back
/// while the next bytes arrive and are hashed, so the final fsync has only the tail left.
const FLUSH_EVERY: u64 = 16 << 20;

/// A segment spilled to its temporary file.
struct Spill {
    file: File,
    path: PathBuf,
    /// Bytes written since the last background flush started.
    unflushed: u64,
    flusher: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Spill {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.file.write_all(data)?;
        self.unflushed += data.len() as u64;
        if self.unflushed >= FLUSH_EVERY && self.flusher.as_ref().is_none_or(|f| f.is_finished()) {
            self.join_flusher()?;
            let file = self.file.try_clone()?;
            self.flusher = Some(std::thread::spawn(move || file.sync_data()));
            self.unflushed = 0;
        }
        Ok(())
    }

    fn join_flusher(&mut self) -> std::io::Result<()> {
        match self.flusher.take() {
            Some(flusher) => {
                flusher.join().unwrap_or_else(|_| Err(std::io::Error::other("the flusher panicked")))
            }
            None => Ok(()),
        }
    }
}

/// Writes one segment: an object's bytes or a part's. Buffered in memory while small, then
/// streamed to a temporary file. Dropping it unfinished removes the file.
pub struct SegmentWriter {
    files: Arc<Files>,
    id: String,
    /// Set when the segment is encrypted at rest.
    cipher: Option<SegmentCipher>,
    buf: Vec<u8>,
    file: Option<Spill>,
    size: u64,
    max_bytes: u64,
    inline_max: usize,
    hashing: Hashing,
}

/// Hashes on the writer's thread while a segment is small; once it spills to a file, the
/// MD5 goes to the shared hasher threads (`md5_lanes`: it overlaps the writes, and runs side
/// by side with other uploads' MD5s), while the flexible checksums (CRCs at memory speed)
/// stay on the writer's thread.
enum Hashing {
    Inline(Hasher),
    Lanes { checksums: Hasher, md5: LaneStream },
    Moving,
}

impl Hashing {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hashing::Inline(hasher) => hasher.update(data),
            Hashing::Lanes { checksums, md5 } => {
                md5.update(data);
                checksums.update(data);
            }
            Hashing::Moving => unreachable!("hashing is never left moving"),
        }
    }

    fn move_to_lanes(&mut self) {
        if let Hashing::Inline(hasher) = std::mem::replace(self, Hashing::Moving) {
            let (checksums, md5) = hasher.split_md5();
            *self = Hashing::Lanes { checksums, md5: LaneStream::new(md5) };
        }
    }

    fn finish(self) -> ([u8; 16], Checksums) {
        match self {
            Hashing::Inline(hasher) => hasher.finish(),
            Hashing::Lanes { checksums, md5 } => (md5.finish(), checksums.finish_checksums()),
            Hashing::Moving => unreachable!("hashing is never left moving"),
        }
    }
}

/// A finished segment, durable on disk (or held for core) but not yet referenced by any
/// record. Dropping it without committing removes its file.
pub struct Written {
    pub(crate) segment: Segment,
    /// The bytes of an inline segment, to be committed with the record.
    pub(crate) inline: Option<Vec<u8>>,
    pub md5: [u8; 16],
    pub checksums: Checksums,
    files: Option<Arc<Files>>,
}

impl Written {
    pub fn size(&self) -> u64 {
        self.segment.size
    }

    /// Whether the bytes are held in memory, to be committed with the record.
    pub fn in_memory(&self) -> bool {
        self.inline.is_some()
    }

    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// The record that names the segment was committed: keep the file.
    pub(crate) fn keep(mut self) -> (Segment, Option<Vec<u8>>) {
        self.files = None;
        (self.segment.clone(), self.inline.take())
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if let Some(files) = &self.files {
            files.remove(std::slice::from_ref(&self.segment));
        }
    }
}

impl SegmentWriter {
    pub(crate) fn new(
        files: Arc<Files>,
        algorithms: &[ChecksumAlgorithm],
        max_bytes: u64,
        inline_max: usize,
    ) -> SegmentWriter {
        SegmentWriter {
            files,
            id: new_id(),
            cipher: None,
            buf: Vec::new(),
            file: None,
            size: 0,
            max_bytes,
            inline_max,
            hashing: Hashing::Inline(Hasher::new(algorithms)),
        }
    }

    /// Encrypts the segment at rest (`sse.rs`); before the first write.
    pub fn encrypted(mut self) -> SegmentWriter {
        assert_eq!(self.size, 0, "encryption is chosen before the first byte");
        self.cipher = Some(self.files.sse.segment(&self.id));
        self
    }

    /// Appends bytes. Fails with [`BlobError::TooLarge`] past the size limit.
    pub fn write(&mut self, data: &[u8]) -> BlobResult<()> {
        let offset = self.size;
        self.size += data.len() as u64;
        if self.size > self.max_bytes {
            return Err(BlobError::TooLarge { limit: self.max_bytes });
        }
        let spill_now = self.file.is_none() && self.buf.len() + data.len() > self.inline_max;
        if spill_now {
            self.hashing.move_to_lanes();
        }
        // Digests are of the plaintext; what is stored may be sealed.
        self.hashing.update(data);
        let sealed;
        let data = match &self.cipher {
            Some(cipher) => {
                let mut copy = data.to_vec();
                cipher.apply(offset, &mut copy);
                sealed = copy;
                &sealed[..]
            }
            None => data,
        };
        match &mut self.file {
            Some(spill) => spill.write(data)?,
            None if !spill_now => self.buf.extend_from_slice(data),
            None => {
                let path = self.files.tmp.join(&self.id);
                let mut spill = Spill { file: File::create(&path)?, path, unflushed: 0, flusher: None };
                spill.write(&std::mem::take(&mut self.buf))?;
                spill.write(data)?;
                self.file = Some(spill);
            }
        }
        Ok(())
    }

    /// Whether the bytes so far are held in memory, so [`SegmentWriter::finish`] does no I/O.
    pub fn in_memory(&self) -> bool {
        self.file.is_none()
    }

    /// Appends everything `reader` has left (a copy's bytes).
    pub(crate) fn write_all_from(&mut self, reader: &mut ObjectReader) -> BlobResult<()> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buf[..n])?;
        }
    }

    /// Makes the bytes durable (fsync, rename into `data/`, fsync of the directory) and
    /// returns the segment with its digests.
    pub fn finish(mut self) -> BlobResult<Written> {
        let segment = Segment {
            id: self.id.clone(),
            size: self.size,
            inline: self.file.is_none(),
            key_id: self.cipher.is_some().then(|| self.id.clone()),
        };
        let inline = match self.file.take() {
            None => Some(std::mem::take(&mut self.buf)),
            Some(mut spill) => {
                // The fsync runs while the hasher threads finish the tail.
                let tmp_path = spill.path.clone();
                if let Err(err) = spill.join_flusher().and_then(|()| spill.file.sync_data()) {
                    let _ = std::fs::remove_file(&tmp_path);
                    return Err(err.into());
                }
                drop(spill);
                if let Err(err) = self.files.persist(&self.id, &tmp_path, self.size) {
                    let _ = std::fs::remove_file(&tmp_path);
                    return Err(err);
                }
                None
            }
        };
        let (md5, checksums) = std::mem::replace(&mut self.hashing, Hashing::Moving).finish();
        Ok(Written { segment, inline, md5, checksums, files: Some(self.files.clone()) })
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        if let Some(spill) = self.file.take() {
            let _ = std::fs::remove_file(spill.path);
        }
    }
}

/// Where a segment's bytes come from while reading.
pub(crate) enum Source {
    Inline(Vec<u8>),
    File { files: Arc<Files>, id: String, handle: Option<Handle> },
}

impl Source {
    /// Opens a file segment at `offset`, unless it is open already.
    fn open(&mut self, offset: u64, size: u64) -> std::io::Result<()> {
        if let Source::File { files, id, handle: handle @ None } = self {
            *handle = Some(files.open_segment(id, offset, size)?);
        }
        Ok(())
    }
}

/// A segment as a reader sees it: where its bytes are, its size, and its cipher if it is
/// encrypted.
pub(crate) type ReadSegment = (Source, u64, Option<SegmentCipher>);

/// Reads a byte range of an object across its segments.
pub struct ObjectReader {
    segments: Vec<ReadSegment>,
    index: usize,
    /// Offset inside the current segment.
    offset: u64,
    /// Bytes left to read.
    remaining: u64,
}

impl ObjectReader {
    /// A reader of `len` bytes starting at `start`; the first segment is opened now, so a
    /// reader that exists keeps its bytes even if the object is replaced meanwhile.
    pub(crate) fn new(mut segments: Vec<ReadSegment>, start: u64, len: u64) -> BlobResult<ObjectReader> {
        let mut index = 0;
        let mut offset = start;
        while index < segments.len() && offset >= segments[index].1 && segments[index].1 > 0 {
            offset -= segments[index].1;
            index += 1;
        }
        while index < segments.len() && segments[index].1 == 0 {
            index += 1;
        }
        if len > 0
            && let Some((source, size, _)) = segments.get_mut(index)
        {
            source.open(offset, *size)?;
        }
        Ok(ObjectReader { segments, index, offset, remaining: len })
    }

    /// Bytes still to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next chunk of at most `max` bytes, or `None` once the range is read. A response
    /// streams an object as these chunks.
    pub fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let want = (max as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; want];
        self.read_exact(&mut buf)?;
        Ok(Some(buf))
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.remaining > 0 {
            let Some((source, size, cipher)) = self.segments.get_mut(self.index) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "object shorter than its record",
                ));
            };
            if self.offset >= *size {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let want = out.len().min((*size - self.offset).min(self.remaining) as usize);
            let n = match source {
                Source::Inline(bytes) => {
                    let start = self.offset as usize;
                    out[..want].copy_from_slice(&bytes[start..start + want]);
                    want
                }
                Source::File { .. } => {
                    source.open(self.offset, *size)?;
                    let Source::File { handle: Some(handle), .. } = source else {
                        unreachable!("opened above")
                    };
                    let n = handle.read(&mut out[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "segment truncated",
                        ));
                    }
                    n
                }
            };
            if let Some(cipher) = cipher {
                cipher.apply(self.offset, &mut out[..n]);
            }
            self.offset += n as u64;
            self.remaining -= n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}
