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

use crate::checksum::{ChecksumAlgorithm, Checksums, Hasher};
use crate::meta::Segment;
use crate::{BlobError, BlobResult};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directories of the blob block's files.
#[derive(Debug)]
pub(crate) struct Files {
    tmp: PathBuf,
    data: PathBuf,
}

impl Files {
    pub(crate) fn open(dir: &Path) -> BlobResult<Arc<Files>> {
        let files = Files { tmp: dir.join("tmp"), data: dir.join("data") };
        std::fs::create_dir_all(&files.tmp)?;
        std::fs::create_dir_all(&files.data)?;
        Ok(Arc::new(files))
    }

    /// Where segment `id` lives.
    pub(crate) fn path(&self, id: &str) -> PathBuf {
        self.data.join(&id[..2]).join(id)
    }

    /// Removes the files of segments no longer referenced. Errors are logged: a file left
    /// behind is collected at the next start.
    pub(crate) fn remove(&self, segments: &[Segment]) {
        for segment in segments.iter().filter(|s| !s.inline) {
            if let Err(err) = std::fs::remove_file(self.path(&segment.id))
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(id = %segment.id, %err, "removing a blob segment failed");
            }
        }
    }

    /// A new hard link to segment `id`'s file, under a new id: copies share their bytes.
    pub(crate) fn link(&self, id: &str) -> BlobResult<String> {
        let new_id = new_id();
        let target = self.path(&new_id);
        std::fs::create_dir_all(target.parent().expect("segment paths have a directory"))?;
        std::fs::hard_link(self.path(id), &target)?;
        sync_dir(target.parent().expect("segment paths have a directory"))?;
        Ok(new_id)
    }

    /// Deletes everything in `tmp/`, and every file in `data/` not in `referenced`.
    /// Returns how many files were removed.
    pub(crate) fn collect_garbage(&self, referenced: &HashSet<String>) -> BlobResult<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.tmp)? {
            std::fs::remove_file(entry?.path())?;
            removed += 1;
        }
        for shard in std::fs::read_dir(&self.data)? {
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

/// A fresh random segment id: 32 hex digits.
pub(crate) fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes one segment: an object's bytes or a part's. Buffered in memory while small, then
/// streamed to a temporary file. Dropping it unfinished removes the file.
pub struct SegmentWriter {
    files: Arc<Files>,
    id: String,
    buf: Vec<u8>,
    file: Option<(File, PathBuf)>,
    size: u64,
    max_bytes: u64,
    inline_max: usize,
    hasher: Hasher,
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
            buf: Vec::new(),
            file: None,
            size: 0,
            max_bytes,
            inline_max,
            hasher: Hasher::new(algorithms),
        }
    }

    /// Appends bytes. Fails with [`BlobError::TooLarge`] past the size limit.
    pub fn write(&mut self, data: &[u8]) -> BlobResult<()> {
        self.size += data.len() as u64;
        if self.size > self.max_bytes {
            return Err(BlobError::TooLarge { limit: self.max_bytes });
        }
        self.hasher.update(data);
        match &mut self.file {
            Some((file, _)) => file.write_all(data)?,
            None if self.buf.len() + data.len() <= self.inline_max => self.buf.extend_from_slice(data),
            None => {
                let path = self.files.tmp.join(&self.id);
                let mut file = File::create(&path)?;
                file.write_all(&self.buf)?;
                file.write_all(data)?;
                self.buf = Vec::new();
                self.file = Some((file, path));
            }
        }
        Ok(())
    }

    /// Makes the bytes durable (fsync, rename into `data/`, fsync of the directory) and
    /// returns the segment with its digests.
    pub fn finish(mut self) -> BlobResult<Written> {
        let (md5, checksums) = std::mem::replace(&mut self.hasher, Hasher::new(&[])).finish();
        let segment = Segment { id: self.id.clone(), size: self.size, inline: self.file.is_none() };
        let inline = match self.file.take() {
            None => Some(std::mem::take(&mut self.buf)),
            Some((file, tmp_path)) => {
                file.sync_data()?;
                drop(file);
                let path = self.files.path(&self.id);
                let dir = path.parent().expect("segment paths have a directory");
                std::fs::create_dir_all(dir)?;
                if let Err(err) = std::fs::rename(&tmp_path, &path) {
                    let _ = std::fs::remove_file(&tmp_path);
                    return Err(err.into());
                }
                sync_dir(dir)?;
                None
            }
        };
        Ok(Written { segment, inline, md5, checksums, files: Some(self.files.clone()) })
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where a segment's bytes come from while reading.
pub(crate) enum Source {
    Inline(Vec<u8>),
    File { files: Arc<Files>, id: String, file: Option<File> },
}

/// Reads a byte range of an object across its segments.
pub struct ObjectReader {
    /// (source, segment size) in order.
    segments: Vec<(Source, u64)>,
    index: usize,
    /// Offset inside the current segment.
    offset: u64,
    /// Bytes left to read.
    remaining: u64,
}

impl ObjectReader {
    /// A reader of `len` bytes starting at `start`; the first file segment is opened now, so
    /// a reader that exists keeps its bytes even if the object is replaced meanwhile.
    pub(crate) fn new(mut segments: Vec<(Source, u64)>, start: u64, len: u64) -> BlobResult<ObjectReader> {
        let mut index = 0;
        let mut offset = start;
        while index < segments.len() && offset >= segments[index].1 && segments[index].1 > 0 {
            offset -= segments[index].1;
            index += 1;
        }
        while index < segments.len() && segments[index].1 == 0 {
            index += 1;
        }
        if let Some((source, _)) = segments.get_mut(index) {
            source.open()?;
        }
        Ok(ObjectReader { segments, index, offset, remaining: len })
    }

    /// Bytes still to read.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Source {
    fn open(&mut self) -> std::io::Result<()> {
        if let Source::File { files, id, file: file @ None } = self {
            *file = Some(File::open(files.path(id))?);
        }
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.remaining > 0 {
            let Some((source, size)) = self.segments.get_mut(self.index) else {
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
                    source.open()?;
                    let Source::File { file: Some(file), .. } = source else { unreachable!("opened above") };
                    if self.offset > 0 && file.stream_position()? != self.offset {
                        file.seek(SeekFrom::Start(self.offset))?;
                    }
                    let n = file.read(&mut out[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "segment file truncated",
                        ));
                    }
                    n
                }
            };
            self.offset += n as u64;
            self.remaining -= n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}
