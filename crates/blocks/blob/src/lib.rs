//! # strata-blob: buckets and objects
//!
//! What users get, over the s3 front (any S3 client) and the admin API:
//!
//! - **Buckets** with versioning (off, enabled, suspended), a bucket policy, CORS rules,
//!   tags and lifecycle rules ([`lifecycle`]); **objects** with their HTTP headers, user
//!   metadata, tags, an MD5 ETag (S3's `md5-of-md5s-N` form for multipart uploads) and S3's
//!   flexible checksums.
//! - **Streaming writes that survive a crash**: bytes go through a [`SegmentWriter`] into a
//!   temporary file that is fsynced and renamed before the core commit that makes the
//!   object visible (small objects go into core itself, in that commit). A crash leaves
//!   either the old object or the whole new one; files of uploads cut short are collected
//!   when the block opens. Async callers may commit small writes on their own thread and
//!   await the fsync afterwards ([`Unsynced`]).
//! - **Reads of any byte range** through an [`ObjectReader`] that never holds more than
//!   its caller's buffer.
//! - **Multipart uploads**: parts are segments of their own; completing an upload only
//!   writes a record naming them in order, so it copies no data. Copies hard-link segments.
//! - **Access**: access keys with secrets (admins, and users who own the buckets they
//!   create), bucket policies ([`policy`]), and presigned links ([`links`]).
//! - **Encryption at rest** for objects written with SSE-S3 (`sse.rs`): sealed segments,
//!   read back at any offset.
//!
//! ```text
//!   keyspace `blob` (core)                          <data-dir>/blob/
//!   01 bucket            -> BucketMeta               tmp/<id>        uploads in flight
//!   02 bucket key !ord   -> ObjectMeta (versions)    data/<xx>/<id>  segments named by
//!   03 bucket key upload -> UploadMeta                               ObjectMeta/PartMeta
//!   04 upload part       -> PartMeta
//!   05 segment           -> bytes of a small segment
//!   06 access key        -> UserMeta
//! ```
//!
//! Every object is a list of versions, newest first; an unversioned bucket keeps one, whose
//! id is `null`. The current version is the first; a delete marker there hides the object.
//! Layout details: `docs/format/blob.md`. Each operation is one core transaction, retried on
//! a conflict up to [`MAX_RETRIES`] times.
//!
//! ## Limitations
//!
//! - Garbage collection of unreferenced files walks every record at start: start-up time
//!   grows with the number of objects.
//! - A reader opens a multipart object's later segments as it reaches them; if the object
//!   is deleted or replaced meanwhile, the read fails part way (single-segment objects are
//!   opened up front and always read whole).
//! - With a remote backend, each read of a segment is one ranged GET to the remote store,
//!   and deletes there happen in the background (an orphan left by a crash is collected at
//!   the next open).
//! - Listing a versioned bucket walks every version of each key it lists.

mod checksum;
mod files;
mod glob;
mod keys;
pub mod lifecycle;
pub mod links;
mod md5_lanes;
mod meta;
pub mod policy;
mod remote;
mod sse;

pub use checksum::{ChecksumAlgorithm, Checksums};
pub use files::{ObjectReader, SegmentWriter, Written};
pub use links::Link;
pub use meta::{
    BucketMeta, CannedAcl, CorsRule, Grant, Headers, NULL_VERSION, ObjectMeta, PartMeta, Permission, Segment,
    UploadMeta, UserMeta, Versioning,
};
pub use policy::{Decision, Policy, Principal};
pub use remote::RemoteStore;

use files::{Files, Source};
use keys::{Key, KeyPrefix, decode_name_key, decode_part_key, decode_upload_key, decode_version_key};
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_core::keycode::prefix_end;
use strata_core::{Clock, Keyspace, Store, Txn};

/// How many times an operation is retried after losing a race with a concurrent writer.
pub const MAX_RETRIES: usize = 32;

/// Most explicit grants an object's ACL holds (S3 allows 100).
pub const MAX_GRANTS: usize = 100;

/// Everything that can go wrong in the blob block, in S3's terms.
#[derive(Debug)]
pub enum BlobError {
    NoSuchBucket(String),
    NoSuchKey(String),
    NoSuchVersion(String),
    NoSuchUpload(String),
    NoSuchBucketPolicy(String),
    NoSuchLifecycleConfiguration(String),
    NoSuchAccessKey(String),
    /// Someone else owns a bucket of that name.
    BucketAlreadyExists(String),
    BucketAlreadyOwnedByYou(String),
    BucketNotEmpty(String),
    InvalidBucketName(String),
    InvalidKey(String),
    InvalidArgument(String),
    /// The requested range starts beyond the object's size.
    InvalidRange {
        size: u64,
    },
    /// A part number the object does not have (it has `count`; a single PUT is one part).
    InvalidPartNumber {
        part: u64,
        count: u64,
    },
    TooLarge {
        limit: u64,
    },
    /// A part other than the last is under the minimum part size.
    TooSmall(String),
    /// The bytes do not match a digest the client sent.
    BadDigest(String),
    InvalidPart(String),
    InvalidPartOrder,
    PreconditionFailed,
    /// A conditional read whose condition says the client's copy is current.
    NotModified {
        etag: String,
        last_modified_ms: u64,
    },
    /// A version that is a delete marker was asked for its bytes.
    MethodNotAllowed(String),
    MalformedPolicy(String),
    AccessDenied(String),
    TooManyBuckets(u64),
    Core(strata_core::Error),
}

pub type BlobResult<T> = Result<T, BlobError>;

impl std::fmt::Display for BlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobError::NoSuchBucket(b) => write!(f, "the bucket {b} does not exist"),
            BlobError::NoSuchKey(k) => write!(f, "the key {k} does not exist"),
            BlobError::NoSuchVersion(v) => write!(f, "the version {v} does not exist"),
            BlobError::NoSuchUpload(u) => write!(f, "the upload {u} does not exist (completed or aborted?)"),
            BlobError::NoSuchBucketPolicy(b) => write!(f, "the bucket {b} has no policy"),
            BlobError::NoSuchLifecycleConfiguration(b) => {
                write!(f, "the bucket {b} has no lifecycle configuration")
            }
            BlobError::NoSuchAccessKey(k) => write!(f, "the access key {k} does not exist"),
            BlobError::BucketAlreadyExists(b) => {
                write!(f, "the bucket {b} exists and belongs to someone else")
            }
            BlobError::BucketAlreadyOwnedByYou(b) => write!(f, "you already own the bucket {b}"),
            BlobError::BucketNotEmpty(b) => write!(f, "the bucket {b} is not empty"),
            BlobError::InvalidBucketName(msg) => write!(f, "invalid bucket name: {msg}"),
            BlobError::InvalidKey(msg) => write!(f, "invalid key: {msg}"),
            BlobError::InvalidArgument(msg) => write!(f, "{msg}"),
            BlobError::InvalidRange { size } => {
                write!(f, "the range is not satisfiable for an object of {size} bytes")
            }
            BlobError::InvalidPartNumber { part, count } => {
                write!(
                    f,
                    "the requested partnumber {part} is not satisfiable: the object has {count} part(s)"
                )
            }
            BlobError::TooLarge { limit } => write!(f, "the upload exceeds the limit of {limit} bytes"),
            BlobError::TooSmall(msg) => write!(f, "{msg}"),
            BlobError::BadDigest(msg) => write!(f, "{msg}"),
            BlobError::InvalidPart(msg) => write!(f, "{msg}"),
            BlobError::InvalidPartOrder => write!(f, "the parts must be listed in ascending order"),
            BlobError::PreconditionFailed => write!(f, "at least one precondition did not hold"),
            BlobError::NotModified { .. } => write!(f, "not modified"),
            BlobError::MethodNotAllowed(msg) => write!(f, "{msg}"),
            BlobError::MalformedPolicy(msg) => write!(f, "malformed policy: {msg}"),
            BlobError::AccessDenied(msg) => write!(f, "access denied: {msg}"),
            BlobError::TooManyBuckets(n) => write!(f, "at most {n} buckets may exist"),
            BlobError::Core(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for BlobError {}

impl From<strata_core::Error> for BlobError {
    fn from(err: strata_core::Error) -> Self {
        BlobError::Core(err)
    }
}

impl From<std::io::Error> for BlobError {
    fn from(err: std::io::Error) -> Self {
        BlobError::Core(strata_core::Error::Io(err))
    }
}

/// Size limits, all configurable (`[blob]` in strata.toml).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest object written in one PUT (S3: 5 GiB).
    pub max_object_bytes: u64,
    /// Largest part of a multipart upload (S3: 5 GiB).
    pub max_part_bytes: u64,
    /// Smallest part other than the last (S3: 5 MiB).
    pub min_part_bytes: u64,
    /// Most parts of one upload (S3: 10,000).
    pub max_parts: u64,
    /// Segments up to this size are kept in core instead of a file.
    pub inline_max_bytes: usize,
    /// Most entries one listing page returns (S3: 1000).
    pub max_list: usize,
    pub max_buckets: u64,
    /// Bytes of user metadata (names and values) per object (S3: 2 KiB).
    pub max_user_metadata_bytes: usize,
    /// Tags per object (S3: 10).
    pub max_tags: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_bytes: 5 << 30,
            max_part_bytes: 5 << 30,
            min_part_bytes: 5 << 20,
            max_parts: 10_000,
            inline_max_bytes: 64 * 1024,
            max_list: 1000,
            max_buckets: 10_000,
            max_user_metadata_bytes: 2048,
            max_tags: 10,
        }
    }
}

/// A new object's description, besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct NewObject {
    pub headers: Headers,
    pub user_metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// Digests the client sent; a mismatch is [`BlobError::BadDigest`].
    pub expected: Expected,
    /// `If-None-Match: *`: only create.
    pub if_none_match_star: bool,
    /// `If-Match: etag`: only replace this version.
    pub if_match: Option<String>,
    pub acl: CannedAcl,
    pub grants: Vec<Grant>,
}

/// Digests a client sent with its bytes.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// `Content-MD5`, base64.
    pub content_md5: Option<String>,
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

/// The conditions of a conditional GET or HEAD.
#[derive(Clone, Debug, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since_ms: Option<u64>,
    pub if_unmodified_since_ms: Option<u64>,
}

/// A byte range as HTTP asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-` or `bytes=first-last` (inclusive).
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// What a listing asks for.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys after this one (a start-after, marker or decoded continuation token).
    pub after: Option<String>,
    pub max: usize,
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix of this page: the next page's `after`.
    pub next_after: Option<String>,
}

/// What a version listing asks for.
#[derive(Clone, Debug, Default)]
pub struct VersionQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub version_id_marker: Option<String>,
    pub max: usize,
}

/// One page of a version listing: versions (with whether each is the latest) newest first
/// per key.
#[derive(Clone, Debug, Default)]
pub struct VersionPage {
    pub versions: Vec<(ObjectMeta, bool)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// What a copy changes from its source.
#[derive(Clone, Debug, Default)]
pub struct CopyAs {
    /// New headers and metadata instead of the source's.
    pub replace: Option<(Headers, BTreeMap<String, String>)>,
    /// New tags instead of the source's.
    pub tags: Option<BTreeMap<String, String>>,
    /// The copy's ACL and grants (never its source's, as in S3).
    pub acl: CannedAcl,
    pub grants: Vec<Grant>,
    /// Encrypt at rest: bytes in the clear are written again, sealed, instead of shared.
    pub encrypt: bool,
}

/// What a delete did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed, or the delete marker added.
    pub version_id: Option<String>,
    /// Whether that version is a delete marker.
    pub delete_marker: bool,
}

/// An in-progress multipart upload, as listed.
#[derive(Clone, Debug)]
pub struct UploadSummary {
    pub key: String,
    pub upload_id: String,
    pub meta: UploadMeta,
}

/// What a read takes from an object.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    /// A byte range, or all of it.
    Range(Option<ByteRange>),
    /// Part `n` (from 1) as its multipart upload carried it; part 1 of an object written by
    /// a single PUT is all of it.
    Part(u64),
}

/// An opened object: its record, a reader of the bytes picked, and the `(start, len)` of
/// them it reads.
pub type Opened = (ObjectMeta, ObjectReader, (u64, u64));

/// The blob block. Cheap to clone.
#[derive(Clone)]
pub struct Blob {
    inner: Arc<Inner>,
}

/// A write committed and visible but maybe not yet fsynced (as [`Blob::put_object_unsynced`]
/// and [`Blob::delete_object_unsynced`] make): the caller awaits [`Unsynced::durable`] before
/// acknowledging it. Dropped unawaited (a client that went away), the write stays committed,
/// and the files it would have removed are collected when the block next opens.
#[must_use = "a write is acknowledged only once it is durable"]
pub struct Unsynced<T> {
    value: T,
    seq: u64,
    /// File segments of a version the write replaced or deleted, removed once it is durable.
    replaced: Vec<Segment>,
    blob: Blob,
}

impl<T> Unsynced<T> {
    /// Resolves once the write is as durable as the synced call would have made it.
    pub async fn durable(self) -> BlobResult<T> {
        self.blob.inner.store.durable(self.seq).await?;
        if self.replaced.iter().any(|s| !s.inline) {
            let (files, replaced) = (self.blob.inner.files.clone(), self.replaced);
            let _ = tokio::task::spawn_blocking(move || files.remove(&replaced)).await;
        }
        Ok(self.value)
    }
}

struct Inner {
    store: Store,
    ks: Keyspace,
    files: Arc<Files>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// The configured admin key, which is not stored.
    root: (String, String),
    /// The last version order number handed out.
    last_ord: AtomicU64,
}

/// Checks S3's bucket naming rules (3-63 of `a-z0-9.-`, starting and ending with a letter
/// or digit, not an IP address).
pub fn check_bucket_name(name: &str) -> BlobResult<()> {
    let bad = |why: &str| Err(BlobError::InvalidBucketName(format!("{name:?}: {why}")));
    if !(3..=63).contains(&name.len()) {
        return bad("must be 3 to 63 characters long");
    }
    if !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-') {
        return bad("may contain only lower-case letters, digits, dots and hyphens");
    }
    let ends_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !ends_ok(name.as_bytes()[0]) || !ends_ok(name.as_bytes()[name.len() - 1]) {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("must not contain two dots in a row or be an IP address");
    }
    Ok(())
}

fn check_key(key: &str) -> BlobResult<()> {
    if key.is_empty() || key.len() > 1024 {
        return Err(BlobError::InvalidKey("a key must be 1 to 1024 bytes long".into()));
    }
    Ok(())
}

/// Whether `etag` (quoted or not, or `*`) names `meta`'s ETag.
fn etag_matches(condition: &str, meta: &ObjectMeta) -> bool {
    condition
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == meta.etag)
}

/// Evaluates a conditional read, in the order of RFC 9110 section 13.2.2.
pub fn check_read_conditions(meta: &ObjectMeta, cond: &ReadConditions) -> BlobResult<()> {
    let seconds = meta.last_modified_ms / 1000;
    match &cond.if_match {
        Some(tag) if !etag_matches(tag, meta) => return Err(BlobError::PreconditionFailed),
        None if cond.if_unmodified_since_ms.is_some_and(|t| seconds > t / 1000) => {
            return Err(BlobError::PreconditionFailed);
        }
        _ => {}
    }
    let not_modified = match &cond.if_none_match {
        Some(tag) => etag_matches(tag, meta),
        None => cond.if_modified_since_ms.is_some_and(|t| seconds <= t / 1000),
    };
    if not_modified {
        return Err(BlobError::NotModified {
            etag: meta.quoted_etag(),
            last_modified_ms: meta.last_modified_ms,
        });
    }
    Ok(())
}

/// The bytes of part `part` (from 1) of an object: `None` (all of it) for part 1 of an
/// object written by a single PUT.
pub fn part_range(meta: &ObjectMeta, part: u64) -> BlobResult<Option<ByteRange>> {
    let count = meta.part_sizes.len().max(1) as u64;
    if part == 0 || part > count {
        return Err(BlobError::InvalidPartNumber { part, count });
    }
    if meta.part_sizes.is_empty() {
        return Ok(None);
    }
    let index = (part - 1) as usize;
    let first: u64 = meta.part_sizes[..index].iter().sum();
    let last = (first + meta.part_sizes[index]).saturating_sub(1);
    Ok(Some(ByteRange::From { first, last: Some(last) }))
}

/// Resolves a range against an object's size into `(start, len)`.
pub fn resolve_range(range: Option<ByteRange>, size: u64) -> BlobResult<(u64, u64)> {
    match range {
        None => Ok((0, size)),
        Some(ByteRange::From { first, last }) => {
            if first >= size {
                return Err(BlobError::InvalidRange { size });
            }
            let last = last.unwrap_or(u64::MAX).min(size - 1);
            if last < first {
                return Err(BlobError::InvalidRange { size });
            }
            Ok((first, last - first + 1))
        }
        Some(ByteRange::Suffix(n)) => {
            if n == 0 {
                return Err(BlobError::InvalidRange { size });
            }
            let n = n.min(size);
            Ok((size - n, n))
        }
    }
}

impl Written {
    /// Checks the digests a client sent against the bytes received.
    pub fn verify(&self, expected: &Expected) -> BlobResult<()> {
        use base64::Engine as _;
        if let Some(md5) = &expected.content_md5 {
            let sent = base64::engine::general_purpose::STANDARD
                .decode(md5.trim())
                .map_err(|_| BlobError::InvalidArgument("Content-MD5 is not base64".into()))?;
            if sent != self.md5 {
                return Err(BlobError::BadDigest(
                    "the Content-MD5 you specified did not match what we received".into(),
                ));
            }
        }
        for (algorithm, value) in &expected.checksums {
            if self.checksums.get(*algorithm) != Some(value.trim()) {
                return Err(BlobError::BadDigest(format!(
                    "the {} you specified did not match the calculated checksum",
                    algorithm.name()
                )));
            }
        }
        Ok(())
    }

    /// The checksums to store: those computed, narrowed to the ones the client asked for
    /// plus CRC64NVME.
    fn stored_checksums(&self, expected: &Expected, asked: &[ChecksumAlgorithm]) -> Checksums {
        let keep = |a: ChecksumAlgorithm| {
            a == ChecksumAlgorithm::Crc64Nvme
                || asked.contains(&a)
                || expected.checksums.iter().any(|(e, _)| *e == a)
        };
        Checksums {
            values: self.checksums.values.iter().filter(|(a, _)| keep(*a)).cloned().collect(),
            composite: false,
        }
    }
}

impl Blob {
    /// Opens the block over `store`, keeping files under `dir` (`<data-dir>/blob`), and
    /// collects the files no record names. `root` is the configured admin access key and
    /// secret.
    pub fn open(
        store: Store,
        dir: &Path,
        clock: Arc<dyn Clock>,
        limits: Limits,
        root: (String, String),
    ) -> BlobResult<Blob> {
        Self::open_with(store, Files::open(dir, None)?, clock, limits, root)
    }

    /// Opens the block with object bytes in an external S3-compatible service (records,
    /// policies and keys stay in `store`; `dir` holds uploads in flight). Call it from a
    /// blocking thread: it lists the remote prefix to collect orphans.
    pub fn open_remote(
        store: Store,
        dir: &Path,
        clock: Arc<dyn Clock>,
        limits: Limits,
        root: (String, String),
        remote: &RemoteStore,
    ) -> BlobResult<Blob> {
        let files = Files::open(dir, Some(remote::Remote::connect(remote)?))?;
        Self::open_with(store, files, clock, limits, root)
    }

    fn open_with(
        store: Store,
        files: Arc<Files>,
        clock: Arc<dyn Clock>,
        limits: Limits,
        root: (String, String),
    ) -> BlobResult<Blob> {
        let ks = store.keyspace("blob")?;
        let blob = Blob {
            inner: Arc::new(Inner {
                store,
                ks,
                files,
                last_ord: AtomicU64::new(clock.now_ms() * 1000),
                clock,
                limits,
                root,
            }),
        };
        let removed = blob.collect_garbage()?;
        if removed > 0 {
            tracing::info!(removed, "removed blob files no object refers to");
        }
        metrics::counter!("strata_blob_orphans_removed_total").increment(removed as u64);
        Ok(blob)
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// A version order number: increasing, and near the clock in microseconds.
    fn next_ord(&self) -> u64 {
        let now = self.now_ms() * 1000;
        let mut last = self.inner.last_ord.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.inner.last_ord.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    fn collect_garbage(&self) -> BlobResult<usize> {
        let txn = self.inner.store.begin_read_only();
        let mut referenced = HashSet::new();
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::AllVersions.encode()) {
            let meta: ObjectMeta = meta::decode(&item?.1)?;
            referenced.extend(meta.segments.into_iter().map(|s| s.id));
        }
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::AllParts.encode()) {
            let part: PartMeta = meta::decode(&item?.1)?;
            referenced.extend(part.segment.map(|s| s.id));
        }
        self.inner.files.collect_garbage(&referenced)
    }

    /// Runs `f` in a transaction, again on a conflict.
    fn transact<T>(&self, f: impl FnMut(&mut Txn) -> BlobResult<T>) -> BlobResult<T> {
        self.transact_as(true, f).map(|(value, _)| value)
    }

    /// [`Blob::transact`], committing without waiting for the fsync unless `synced`; returns
    /// the commit's sequence number too.
    fn transact_as<T>(
        &self,
        synced: bool,
        mut f: impl FnMut(&mut Txn) -> BlobResult<T>,
    ) -> BlobResult<(T, u64)> {
        let mut attempt = 0;
        loop {
            let mut txn = self.inner.store.begin();
            let result = f(&mut txn).and_then(|value| {
                let seq = if synced { txn.commit()? } else { txn.commit_unsynced()? };
                Ok((value, seq))
            });
            match result {
                Err(BlobError::Core(err)) if err.is_retryable() && attempt < MAX_RETRIES => attempt += 1,
                other => return other,
            }
        }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, txn: &Txn, key: Key<'_>) -> BlobResult<Option<T>> {
        match txn.get(&self.inner.ks, &key.encode())? {
            Some(bytes) => Ok(Some(meta::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn must_bucket(&self, txn: &Txn, bucket: &str) -> BlobResult<BucketMeta> {
        self.get(txn, Key::Bucket(bucket))?.ok_or_else(|| BlobError::NoSuchBucket(bucket.to_owned()))
    }

    // ---- buckets ----

    /// Creates a bucket owned by `owner` (an access key).
    pub fn create_bucket(&self, name: &str, owner: &str) -> BlobResult<()> {
        check_bucket_name(name)?;
        self.transact(|txn| {
            if let Some(existing) = self.get::<BucketMeta>(txn, Key::Bucket(name))? {
                return Err(if existing.owner == owner {
                    BlobError::BucketAlreadyOwnedByYou(name.to_owned())
                } else {
                    BlobError::BucketAlreadyExists(name.to_owned())
                });
            }
            let count = txn.scan_prefix(&self.inner.ks, &KeyPrefix::Buckets.encode()).count() as u64;
            if count >= self.inner.limits.max_buckets {
                return Err(BlobError::TooManyBuckets(self.inner.limits.max_buckets));
            }
            let meta =
                BucketMeta { created_ms: self.now_ms(), owner: owner.to_owned(), ..BucketMeta::default() };
            txn.set(&self.inner.ks, Key::Bucket(name).encode(), meta::encode(&meta))?;
            Ok(())
        })
    }

    /// Deletes an empty bucket (no versions, no uploads in progress).
    pub fn delete_bucket(&self, name: &str) -> BlobResult<()> {
        self.transact(|txn| {
            self.must_bucket(txn, name)?;
            let versions = KeyPrefix::Versions { bucket: name, prefix: "" }.encode();
            let uploads = KeyPrefix::Uploads { bucket: name }.encode();
            if txn.scan_prefix(&self.inner.ks, &versions).next().is_some()
                || txn.scan_prefix(&self.inner.ks, &uploads).next().is_some()
            {
                return Err(BlobError::BucketNotEmpty(name.to_owned()));
            }
            txn.delete(&self.inner.ks, Key::Bucket(name).encode())?;
            Ok(())
        })
    }

    pub fn bucket(&self, name: &str) -> BlobResult<BucketMeta> {
        self.must_bucket(&self.inner.store.begin_read_only(), name)
    }

    /// Every bucket, by name.
    pub fn list_buckets(&self) -> BlobResult<Vec<(String, BucketMeta)>> {
        let txn = self.inner.store.begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::Buckets.encode()) {
            let (key, value) = item?;
            out.push((decode_name_key(&key)?, meta::decode(&value)?));
        }
        Ok(out)
    }

    /// Changes a bucket's settings (versioning, CORS, tags) with `f`.
    pub fn update_bucket(
        &self,
        name: &str,
        mut f: impl FnMut(&mut BucketMeta) -> BlobResult<()>,
    ) -> BlobResult<()> {
        self.transact(|txn| {
            let mut meta = self.must_bucket(txn, name)?;
            f(&mut meta)?;
            txn.set(&self.inner.ks, Key::Bucket(name).encode(), meta::encode(&meta))?;
            Ok(())
        })
    }

    /// Sets (after checking it) or removes a bucket's policy.
    pub fn set_policy(&self, name: &str, policy: Option<&str>) -> BlobResult<()> {
        if let Some(text) = policy {
            Policy::parse(text, name)?;
        }
        self.update_bucket(name, |meta| {
            meta.policy = policy.map(str::to_owned);
            Ok(())
        })
    }

    /// Turns versioning on or suspends it. A bucket cannot go back to unversioned.
    pub fn set_versioning(&self, name: &str, enabled: bool) -> BlobResult<()> {
        self.update_bucket(name, |meta| {
            meta.versioning = if enabled { Versioning::Enabled } else { Versioning::Suspended };
            Ok(())
        })
    }

    // ---- writing objects ----

    /// A writer for a new object's bytes, computing `algorithms` besides MD5 and CRC64NVME.
    pub fn object_writer(&self, algorithms: &[ChecksumAlgorithm]) -> SegmentWriter {
        let limits = &self.inner.limits;
        SegmentWriter::new(
            self.inner.files.clone(),
            algorithms,
            limits.max_object_bytes,
            limits.inline_max_bytes,
        )
    }

    /// A writer for a part of a multipart upload.
    pub fn part_writer(&self, algorithms: &[ChecksumAlgorithm]) -> SegmentWriter {
        let limits = &self.inner.limits;
        SegmentWriter::new(
            self.inner.files.clone(),
            algorithms,
            limits.max_part_bytes,
            limits.inline_max_bytes,
        )
    }

    fn check_object_description(&self, new: &NewObject) -> BlobResult<()> {
        let meta_bytes: usize = new.user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta_bytes > self.inner.limits.max_user_metadata_bytes {
            return Err(BlobError::InvalidArgument(format!(
                "user metadata is limited to {} bytes",
                self.inner.limits.max_user_metadata_bytes
            )));
        }
        self.check_tags(&new.tags)
    }

    fn check_tags(&self, tags: &BTreeMap<String, String>) -> BlobResult<()> {
        if tags.len() > self.inner.limits.max_tags {
            return Err(BlobError::InvalidArgument(format!(
                "an object may have at most {} tags",
                self.inner.limits.max_tags
            )));
        }
        if tags.iter().any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256) {
            return Err(BlobError::InvalidArgument("tag keys are 1-128 characters, values up to 256".into()));
        }
        Ok(())
    }

    /// Stores an object whose bytes `written` holds, after checking the client's digests
    /// and conditions. Returns the new version.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        new: NewObject,
        written: Written,
        asked: &[ChecksumAlgorithm],
    ) -> BlobResult<ObjectMeta> {
        let (meta, replaced, _) = self.put_object_as(true, bucket, key, new, written, asked)?;
        self.inner.files.remove(&replaced);
        Ok(meta)
    }

    /// [`Blob::put_object`] without waiting for the fsync: the version is committed, visible
    /// and written to the OS (so it survives `kill -9`) when this returns, and the caller
    /// acknowledges it only once [`Unsynced::durable`] resolves. The s3 front stores small
    /// objects this way, on the request's own thread: with `written` held in memory the call
    /// is CPU work, and a blocking thread's round trip per PUT is spared. Until the fsync a
    /// reader may already see the version; a power loss before it could take the version
    /// back, its writer never having been told it was stored.
    pub fn put_object_unsynced(
        &self,
        bucket: &str,
        key: &str,
        new: NewObject,
        written: Written,
        asked: &[ChecksumAlgorithm],
    ) -> BlobResult<Unsynced<ObjectMeta>> {
        let (value, replaced, seq) = self.put_object_as(false, bucket, key, new, written, asked)?;
        Ok(Unsynced { value, seq, replaced, blob: self.clone() })
    }

    fn put_object_as(
        &self,
        synced: bool,
        bucket: &str,
        key: &str,
        new: NewObject,
        written: Written,
        asked: &[ChecksumAlgorithm],
    ) -> BlobResult<(ObjectMeta, Vec<Segment>, u64)> {
        check_key(key)?;
        self.check_object_description(&new)?;
        self.check_grants(&new.grants)?;
        written.verify(&new.expected)?;
        let meta = ObjectMeta {
            key: key.to_owned(),
            version_id: String::new(),
            delete_marker: false,
            size: written.size(),
            etag: written.md5_hex(),
            last_modified_ms: self.now_ms(),
            headers: new.headers.clone(),
            user_metadata: new.user_metadata.clone(),
            checksums: written.stored_checksums(&new.expected, asked),
            tags: new.tags.clone(),
            segments: vec![written.segment.clone()],
            part_sizes: Vec::new(),
            acl: new.acl,
            grants: new.grants.clone(),
        };
        let ((meta, replaced), seq) = self.transact_as(synced, |txn| {
            let bucket_meta = self.must_bucket(txn, bucket)?;
            if new.if_none_match_star || new.if_match.is_some() {
                let current = self.current_version(txn, bucket, key)?.filter(|m| !m.delete_marker);
                match (&current, &new.if_match) {
                    (Some(_), _) if new.if_none_match_star => return Err(BlobError::PreconditionFailed),
                    (None, Some(_)) => return Err(BlobError::NoSuchKey(key.to_owned())),
                    (Some(cur), Some(tag)) if !etag_matches(tag, cur) => {
                        return Err(BlobError::PreconditionFailed);
                    }
                    _ => {}
                }
            }
            if let Some(bytes) = &written.inline {
                txn.set(&self.inner.ks, Key::Data(&written.segment.id).encode(), bytes.clone())?;
            }
            self.add_version(txn, &bucket_meta, bucket, key, meta.clone())
        })?;
        written.keep();
        metrics::counter!("strata_blob_objects_written_total").increment(1);
        metrics::counter!("strata_blob_bytes_written_total").increment(meta.size);
        Ok((meta, replaced, seq))
    }

    /// Adds `meta` as the newest version of `key` as the bucket's versioning says, returning
    /// it and the file segments of the version it replaced (to remove after the commit).
    fn add_version(
        &self,
        txn: &mut Txn,
        bucket_meta: &BucketMeta,
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
    ) -> BlobResult<(ObjectMeta, Vec<Segment>)> {
        let ord = self.next_ord();
        let mut replaced = Vec::new();
        if bucket_meta.versioning == Versioning::Enabled {
            meta.version_id = format!("{ord:016x}");
        } else {
            meta.version_id = NULL_VERSION.to_owned();
            if let Some((old_ord, old)) = self.find_version(txn, bucket, key, NULL_VERSION)? {
                replaced = self.remove_version(txn, bucket, key, old_ord, &old)?;
            }
        }
        txn.set(&self.inner.ks, Key::Version { bucket, key, ord }.encode(), meta::encode(&meta))?;
        meta.key = key.to_owned();
        Ok((meta, replaced))
    }

    /// Deletes a version's record and the core-held bytes of its segments; returns its file
    /// segments, to remove once committed.
    fn remove_version(
        &self,
        txn: &mut Txn,
        bucket: &str,
        key: &str,
        ord: u64,
        meta: &ObjectMeta,
    ) -> BlobResult<Vec<Segment>> {
        txn.delete(&self.inner.ks, Key::Version { bucket, key, ord }.encode())?;
        let mut files = Vec::new();
        for segment in &meta.segments {
            if segment.inline {
                txn.delete(&self.inner.ks, Key::Data(&segment.id).encode())?;
            } else {
                files.push(segment.clone());
            }
        }
        Ok(files)
    }

    /// The newest version of `key` (maybe a delete marker).
    fn current_version(&self, txn: &Txn, bucket: &str, key: &str) -> BlobResult<Option<ObjectMeta>> {
        Ok(self.current_version_ord(txn, bucket, key)?.map(|(_, meta)| meta))
    }

    /// The newest version of `key` with its order number.
    fn current_version_ord(
        &self,
        txn: &Txn,
        bucket: &str,
        key: &str,
    ) -> BlobResult<Option<(u64, ObjectMeta)>> {
        let prefix = KeyPrefix::ObjectVersions { bucket, key }.encode();
        match txn.scan_prefix(&self.inner.ks, &prefix).next() {
            Some(item) => {
                let (k, value) = item?;
                let mut meta: ObjectMeta = meta::decode(&value)?;
                meta.key = key.to_owned();
                Ok(Some((decode_version_key(&k)?.2, meta)))
            }
            None => Ok(None),
        }
    }

    /// The version `version_id` of `key`, with its order number.
    fn find_version(
        &self,
        txn: &Txn,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> BlobResult<Option<(u64, ObjectMeta)>> {
        if version_id != NULL_VERSION {
            let Ok(ord) = u64::from_str_radix(version_id, 16) else { return Ok(None) };
            return Ok(self.get::<ObjectMeta>(txn, Key::Version { bucket, key, ord })?.map(|mut m| {
                m.key = key.to_owned();
                (ord, m)
            }));
        }
        let prefix = KeyPrefix::ObjectVersions { bucket, key }.encode();
        for item in txn.scan_prefix(&self.inner.ks, &prefix) {
            let (k, value) = item?;
            let mut meta: ObjectMeta = meta::decode(&value)?;
            if meta.is_null_version() {
                meta.key = key.to_owned();
                return Ok(Some((decode_version_key(&k)?.2, meta)));
            }
        }
        Ok(None)
    }

    /// An object's current version, or the version asked for.
    fn lookup(&self, txn: &Txn, bucket: &str, key: &str, version: Option<&str>) -> BlobResult<ObjectMeta> {
        self.must_bucket(txn, bucket)?;
        match version {
            None => match self.current_version(txn, bucket, key)? {
                Some(meta) if !meta.delete_marker => Ok(meta),
                _ => Err(BlobError::NoSuchKey(key.to_owned())),
            },
            Some(v) => match self.find_version(txn, bucket, key, v)? {
                Some((_, meta)) if meta.delete_marker => {
                    Err(BlobError::MethodNotAllowed("the specified version is a delete marker".into()))
                }
                Some((_, meta)) => Ok(meta),
                None => Err(BlobError::NoSuchVersion(v.to_owned())),
            },
        }
    }

    // ---- reading objects ----

    pub fn head_object(&self, bucket: &str, key: &str, version: Option<&str>) -> BlobResult<ObjectMeta> {
        self.lookup(&self.inner.store.begin_read_only(), bucket, key, version)
    }

    /// Opens an object for reading `range`; returns its record, the reader, and the
    /// `(start, len)` it reads.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        range: Option<ByteRange>,
        conditions: &ReadConditions,
    ) -> BlobResult<Opened> {
        self.open_object_part(bucket, key, version, Pick::Range(range), conditions)
    }

    /// [`Blob::open_object`] for what `pick` picks: a range, or a part as S3's
    /// `GetObject?partNumber=` does.
    pub fn open_object_part(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        pick: Pick,
        conditions: &ReadConditions,
    ) -> BlobResult<Opened> {
        let opened = self.open_reading(false, (bucket, key, version), pick, conditions)?;
        Ok(opened.expect("opened wherever the bytes are"))
    }

    /// [`Blob::open_object_part`] for an object whose bytes are all held in core: the call
    /// then reads core and nothing else, so an async caller can make it on its own thread.
    /// `None` when some bytes are in files (or a remote store), to be opened where blocking
    /// I/O may run.
    pub fn open_object_in_core(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        pick: Pick,
        conditions: &ReadConditions,
    ) -> BlobResult<Option<Opened>> {
        self.open_reading(true, (bucket, key, version), pick, conditions)
    }

    /// Opens the bytes `pick` picks from the object's record, in one snapshot; `None` if
    /// `in_core_only` and some of them are in files.
    fn open_reading(
        &self,
        in_core_only: bool,
        (bucket, key, version): (&str, &str, Option<&str>),
        pick: Pick,
        conditions: &ReadConditions,
    ) -> BlobResult<Option<Opened>> {
        let txn = self.inner.store.begin_read_only();
        let meta = self.lookup(&txn, bucket, key, version)?;
        if in_core_only && meta.segments.iter().any(|s| !s.inline) {
            return Ok(None);
        }
        check_read_conditions(&meta, conditions)?;
        let range = match pick {
            Pick::Range(range) => range,
            Pick::Part(part) => part_range(&meta, part)?,
        };
        let (start, len) = resolve_range(range, meta.size)?;
        let reader = self.reader(&txn, &meta.segments, start, len)?;
        Ok(Some((meta, reader, (start, len))))
    }

    fn reader(&self, txn: &Txn, segments: &[Segment], start: u64, len: u64) -> BlobResult<ObjectReader> {
        let mut sources = Vec::with_capacity(segments.len());
        let mut offset = 0;
        for segment in segments {
            let wanted = offset + segment.size > start && offset < start + len;
            let source = if segment.inline && wanted {
                let bytes = txn
                    .get(&self.inner.ks, &Key::Data(&segment.id).encode())?
                    .ok_or_else(|| strata_core::errcorrupt!("blob segment {} is missing", segment.id))?;
                Source::Inline(bytes)
            } else if segment.inline {
                Source::Inline(Vec::new())
            } else {
                Source::File { files: self.inner.files.clone(), id: segment.id.clone(), handle: None }
            };
            let cipher = segment.key_id.as_deref().map(|id| self.inner.files.sse.segment(id));
            sources.push((source, segment.size, cipher));
            offset += segment.size;
        }
        ObjectReader::new(sources, start, len).map_err(|err| match err {
            BlobError::Core(strata_core::Error::Io(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                BlobError::Core(strata_core::Error::Unavailable(
                    "the object was replaced while opening it; retry".into(),
                ))
            }
            other => other,
        })
    }

    // ---- deleting, copying, tagging ----

    /// Deletes an object (a delete marker in a versioned bucket) or one version of it.
    pub fn delete_object(&self, bucket: &str, key: &str, version: Option<&str>) -> BlobResult<Deleted> {
        let (deleted, files, _) = self.delete_object_as(true, bucket, key, version)?;
        self.inner.files.remove(&files);
        Ok(deleted)
    }

    /// [`Blob::delete_object`] without waiting for the fsync, as [`Blob::put_object_unsynced`]:
    /// the version's files are removed once [`Unsynced::durable`] resolves.
    pub fn delete_object_unsynced(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> BlobResult<Unsynced<Deleted>> {
        let (value, replaced, seq) = self.delete_object_as(false, bucket, key, version)?;
        Ok(Unsynced { value, seq, replaced, blob: self.clone() })
    }

    fn delete_object_as(
        &self,
        synced: bool,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> BlobResult<(Deleted, Vec<Segment>, u64)> {
        let ((deleted, files), seq) = self.transact_as(synced, |txn| {
            let bucket_meta = self.must_bucket(txn, bucket)?;
            if let Some(v) = version {
                return match self.find_version(txn, bucket, key, v)? {
                    Some((ord, meta)) => {
                        let files = self.remove_version(txn, bucket, key, ord, &meta)?;
                        Ok((
                            Deleted { version_id: Some(v.to_owned()), delete_marker: meta.delete_marker },
                            files,
                        ))
                    }
                    // S3 answers a delete of a missing version like a delete of a missing key.
                    None => {
                        Ok((Deleted { version_id: Some(v.to_owned()), delete_marker: false }, Vec::new()))
                    }
                };
            }
            self.delete_current(txn, &bucket_meta, bucket, key)
        })?;
        metrics::counter!("strata_blob_deletes_total").increment(1);
        Ok((deleted, files, seq))
    }

    /// A delete without a version id: the object goes in an unversioned bucket, and a delete
    /// marker hides it in a versioned one. Returns the file segments to remove once committed.
    fn delete_current(
        &self,
        txn: &mut Txn,
        bucket_meta: &BucketMeta,
        bucket: &str,
        key: &str,
    ) -> BlobResult<(Deleted, Vec<Segment>)> {
        if bucket_meta.versioning == Versioning::Unversioned {
            return match self.find_version(txn, bucket, key, NULL_VERSION)? {
                Some((ord, meta)) => {
                    Ok((Deleted::default(), self.remove_version(txn, bucket, key, ord, &meta)?))
                }
                None => Ok((Deleted::default(), Vec::new())),
            };
        }
        let marker = ObjectMeta {
            key: key.to_owned(),
            delete_marker: true,
            last_modified_ms: self.now_ms(),
            ..ObjectMeta::default()
        };
        let (marker, files) = self.add_version(txn, bucket_meta, bucket, key, marker)?;
        Ok((Deleted { version_id: Some(marker.version_id), delete_marker: true }, files))
    }

    /// A copy of `segment`'s bytes, encrypted, as a new segment (with its bytes if they go
    /// into core).
    fn seal_copy(&self, txn: &Txn, segment: &Segment) -> BlobResult<(Segment, Option<Vec<u8>>)> {
        let mut reader = self.reader(txn, std::slice::from_ref(segment), 0, segment.size)?;
        let mut writer = self.object_writer(&[]).encrypted();
        writer.write_all_from(&mut reader)?;
        Ok(writer.finish()?.keep())
    }

    /// Copies an object (or one version) to `dst` as `copy` says, sharing its bytes.
    pub fn copy_object(
        &self,
        src: (&str, &str, Option<&str>),
        dst: (&str, &str),
        copy: CopyAs,
        conditions: &ReadConditions,
    ) -> BlobResult<ObjectMeta> {
        let CopyAs { replace, tags, acl, grants, encrypt } = copy;
        check_key(dst.1)?;
        self.check_grants(&grants)?;
        let (src_bucket, src_key, src_version) = src;
        let txn = self.inner.store.begin_read_only();
        let source = self.lookup(&txn, src_bucket, src_key, src_version)?;
        check_read_conditions(&source, conditions).map_err(|e| match e {
            BlobError::NotModified { .. } => BlobError::PreconditionFailed,
            other => other,
        })?;
        let mut segments = Vec::with_capacity(source.segments.len());
        let mut inline = Vec::new();
        for segment in &source.segments {
            if encrypt && segment.key_id.is_none() {
                // Sharing would leave the copy in the clear: its bytes are written again, sealed.
                let (sealed, bytes) = self.seal_copy(&txn, segment)?;
                if let Some(bytes) = bytes {
                    inline.push((sealed.id.clone(), bytes));
                }
                segments.push(sealed);
            } else if segment.inline {
                let bytes = txn
                    .get(&self.inner.ks, &Key::Data(&segment.id).encode())?
                    .ok_or_else(|| strata_core::errcorrupt!("blob segment {} is missing", segment.id))?;
                let id = files::new_id();
                inline.push((id.clone(), bytes));
                segments.push(Segment { id, ..segment.clone() });
            } else {
                segments.push(Segment { id: self.inner.files.link(&segment.id)?, ..segment.clone() });
            }
        }
        drop(txn);
        // As in S3, a copy has the ACL the copy request gives it, not its source's.
        let mut meta = ObjectMeta {
            segments: segments.clone(),
            last_modified_ms: self.now_ms(),
            version_id: String::new(),
            acl,
            grants,
            ..source
        };
        if let Some((headers, user_metadata)) = replace {
            meta.headers = headers;
            meta.user_metadata = user_metadata;
        }
        if let Some(tags) = tags {
            self.check_tags(&tags)?;
            meta.tags = tags;
        }
        let result = self.transact(|txn| {
            let bucket_meta = self.must_bucket(txn, dst.0)?;
            for (id, bytes) in &inline {
                txn.set(&self.inner.ks, Key::Data(id).encode(), bytes.clone())?;
            }
            self.add_version(txn, &bucket_meta, dst.0, dst.1, meta.clone())
        });
        match result {
            Ok((meta, replaced)) => {
                self.inner.files.remove(&replaced);
                Ok(meta)
            }
            Err(err) => {
                self.inner.files.remove(&segments);
                Err(err)
            }
        }
    }

    /// Replaces the tags of an object's current version (or of `version`); returns the
    /// version id tagged.
    pub fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> BlobResult<String> {
        self.check_tags(&tags)?;
        self.update_version(bucket, key, version, |meta| meta.tags = tags.clone())
    }

    /// Changes an object's current version (or `version`) in place; returns its version id.
    fn update_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        change: impl Fn(&mut ObjectMeta),
    ) -> BlobResult<String> {
        self.transact(|txn| {
            let meta = self.lookup(txn, bucket, key, version)?;
            let (ord, mut meta) =
                self.find_version(txn, bucket, key, &meta.version_id)?.expect("the version was just found");
            change(&mut meta);
            txn.set(&self.inner.ks, Key::Version { bucket, key, ord }.encode(), meta::encode(&meta))?;
            Ok(meta.version_id)
        })
    }

    // ---- listing ----

    /// Walks the version records of `bucket` under `prefix` from `start`, calling `visit`
    /// with each record's key, order number and value. `visit` returns whether to go on, or
    /// a key prefix to jump past (a common prefix just rolled up).
    fn walk_versions(
        &self,
        txn: &Txn,
        bucket: &str,
        prefix: &str,
        mut start: Bound<Vec<u8>>,
        mut visit: impl FnMut(String, u64, &[u8]) -> BlobResult<Walk>,
    ) -> BlobResult<()> {
        let scope = KeyPrefix::Versions { bucket, prefix }.encode();
        let end = prefix_end(&scope).map_or(Bound::Unbounded, Bound::Excluded);
        'restart: loop {
            for item in txn.scan(&self.inner.ks, (start.clone(), end.clone())) {
                let (k, value) = item?;
                let (_, key, ord) = decode_version_key(&k)?;
                match visit(key, ord, &value)? {
                    Walk::Next => {}
                    Walk::Stop => return Ok(()),
                    Walk::Skip(past) => {
                        let skip = KeyPrefix::Versions { bucket, prefix: &past }.encode();
                        match prefix_end(&skip) {
                            Some(next) => start = Bound::Included(next),
                            None => return Ok(()),
                        }
                        continue 'restart;
                    }
                }
            }
            return Ok(());
        }
    }

    /// Where a listing resumes after `after`: past every version of that key, or past the
    /// whole common prefix if `after` is one.
    fn start_after(
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        delimiter: Option<&str>,
    ) -> Bound<Vec<u8>> {
        let scope = KeyPrefix::Versions { bucket, prefix }.encode();
        let Some(after) = after else { return Bound::Included(scope) };
        let is_common_prefix = delimiter.is_some_and(|d| {
            after.starts_with(prefix) && after[prefix.len()..].contains(d) && after.ends_with(d)
        });
        let past = if is_common_prefix {
            KeyPrefix::Versions { bucket, prefix: after }.encode()
        } else {
            KeyPrefix::ObjectVersions { bucket, key: after }.encode()
        };
        let past = prefix_end(&past).unwrap_or(past);
        Bound::Included(past.max(scope))
    }

    /// The common prefix `key` rolls up into, if a delimiter follows the prefix in it.
    fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
        let d = delimiter.filter(|d| !d.is_empty())?;
        let rest = key.strip_prefix(prefix)?;
        rest.find(d).map(|i| key[..prefix.len() + i + d.len()].to_owned())
    }

    /// Lists the current objects of a bucket (ListObjects and ListObjectsV2).
    pub fn list_objects(&self, bucket: &str, query: &ListQuery) -> BlobResult<ListPage> {
        let txn = self.inner.store.begin_read_only();
        self.must_bucket(&txn, bucket)?;
        let max = query.max.min(self.inner.limits.max_list);
        let mut page = ListPage::default();
        let delimiter = query.delimiter.as_deref();
        let start = Self::start_after(bucket, &query.prefix, query.after.as_deref(), delimiter);
        let mut last_key: Option<String> = None;
        let mut count = 0;
        self.walk_versions(&txn, bucket, &query.prefix, start, |key, _, value| {
            if last_key.as_deref() == Some(key.as_str()) {
                return Ok(Walk::Next); // an older version
            }
            last_key = Some(key.clone());
            let common = Self::common_prefix(&key, &query.prefix, delimiter);
            let mut meta: Option<ObjectMeta> = None;
            if common.is_none() {
                let m: ObjectMeta = meta::decode(value)?;
                if m.delete_marker {
                    return Ok(Walk::Next);
                }
                meta = Some(m);
            }
            if count == max {
                page.truncated = true;
                return Ok(Walk::Stop);
            }
            count += 1;
            match (common, meta) {
                (Some(cp), _) => {
                    page.next_after = Some(cp.clone());
                    page.common_prefixes.push(cp.clone());
                    Ok(Walk::Skip(cp))
                }
                (None, Some(mut m)) => {
                    page.next_after = Some(key.clone());
                    m.key = key;
                    page.objects.push(m);
                    Ok(Walk::Next)
                }
                (None, None) => unreachable!("an object without a common prefix was decoded"),
            }
        })?;
        // A common prefix holding only delete markers is still listed, as S3 does not
        // check; keys under it that are all deleted is a rare case we accept.
        if !page.truncated {
            page.next_after = None;
        }
        Ok(page)
    }

    /// Lists versions and delete markers (ListObjectVersions); an unversioned bucket lists
    /// each object once, as version `null`.
    pub fn list_versions(&self, bucket: &str, query: &VersionQuery) -> BlobResult<VersionPage> {
        let txn = self.inner.store.begin_read_only();
        self.must_bucket(&txn, bucket)?;
        let max = query.max.min(self.inner.limits.max_list);
        let delimiter = query.delimiter.as_deref();
        let mut start = Self::start_after(bucket, &query.prefix, query.key_marker.as_deref(), delimiter);
        if let (Some(key), Some(version)) = (&query.key_marker, &query.version_id_marker)
            && let Some((ord, _)) = self.find_version(&txn, bucket, key, version)?
        {
            start = Bound::Excluded(Key::Version { bucket, key, ord }.encode());
        }
        let mut page = VersionPage::default();
        let mut last_key: Option<String> = None;
        let mut count = 0;
        self.walk_versions(&txn, bucket, &query.prefix, start, |key, _, value| {
            // Resuming inside the marker's key: its first versions here are not its latest.
            let resumed_inside = last_key.is_none()
                && query.version_id_marker.is_some()
                && query.key_marker.as_deref() == Some(key.as_str());
            let is_latest = last_key.as_deref() != Some(key.as_str()) && !resumed_inside;
            last_key = Some(key.clone());
            if let Some(cp) = Self::common_prefix(&key, &query.prefix, delimiter) {
                if count == max {
                    page.truncated = true;
                    return Ok(Walk::Stop);
                }
                count += 1;
                page.next_key_marker = Some(cp.clone());
                page.next_version_id_marker = None;
                page.common_prefixes.push(cp.clone());
                return Ok(Walk::Skip(cp));
            }
            if count == max {
                page.truncated = true;
                return Ok(Walk::Stop);
            }
            count += 1;
            let mut meta: ObjectMeta = meta::decode(value)?;
            meta.key = key.clone();
            page.next_key_marker = Some(key);
            page.next_version_id_marker = Some(meta.version_id.clone());
            page.versions.push((meta, is_latest));
            Ok(Walk::Next)
        })?;
        if !page.truncated {
            page.next_key_marker = None;
            page.next_version_id_marker = None;
        }
        Ok(page)
    }

    // ---- multipart uploads ----

    /// Starts a multipart upload; returns its id.
    pub fn create_upload(&self, bucket: &str, key: &str, mut upload: UploadMeta) -> BlobResult<String> {
        check_key(key)?;
        self.check_tags(&upload.tags)?;
        self.check_grants(&upload.grants)?;
        let upload_id = files::new_id();
        upload.initiated_ms = self.now_ms();
        self.transact(|txn| {
            self.must_bucket(txn, bucket)?;
            txn.set(
                &self.inner.ks,
                Key::Upload { bucket, key, upload_id: &upload_id }.encode(),
                meta::encode(&upload),
            )?;
            Ok(())
        })?;
        Ok(upload_id)
    }

    fn must_upload(&self, txn: &Txn, bucket: &str, key: &str, upload_id: &str) -> BlobResult<UploadMeta> {
        self.must_bucket(txn, bucket)?;
        self.get(txn, Key::Upload { bucket, key, upload_id })?
            .ok_or_else(|| BlobError::NoSuchUpload(upload_id.to_owned()))
    }

    /// The upload's record (ListParts and UploadPart need its checksum algorithm).
    pub fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> BlobResult<UploadMeta> {
        self.must_upload(&self.inner.store.begin_read_only(), bucket, key, upload_id)
    }

    /// Stores part `number` (1..=max_parts) of an upload, replacing an earlier one.
    pub fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u64,
        written: Written,
        expected: &Expected,
    ) -> BlobResult<PartMeta> {
        if !(1..=self.inner.limits.max_parts).contains(&number) {
            return Err(BlobError::InvalidArgument(format!(
                "part numbers must be between 1 and {}",
                self.inner.limits.max_parts
            )));
        }
        written.verify(expected)?;
        let part = PartMeta {
            size: written.size(),
            etag: written.md5_hex(),
            last_modified_ms: self.now_ms(),
            checksums: written.stored_checksums(expected, &[]),
            segment: Some(written.segment.clone()),
        };
        let replaced = self.transact(|txn| {
            let upload = self.must_upload(txn, bucket, key, upload_id)?;
            if let Some(algorithm) = upload.checksum_algorithm
                && !expected.checksums.iter().any(|(a, _)| *a == algorithm)
                && written.checksums.get(algorithm).is_none()
            {
                return Err(BlobError::InvalidArgument(format!(
                    "the upload was created with checksum algorithm {}; send its checksum with each part",
                    algorithm.name()
                )));
            }
            let part_key = Key::Part { upload_id, number }.encode();
            let old: Option<PartMeta> = self.get(txn, Key::Part { upload_id, number })?;
            let mut replaced = Vec::new();
            if let Some(old) = old.and_then(|p| p.segment) {
                if old.inline {
                    txn.delete(&self.inner.ks, Key::Data(&old.id).encode())?;
                } else {
                    replaced.push(old);
                }
            }
            if let Some(bytes) = &written.inline {
                txn.set(&self.inner.ks, Key::Data(&written.segment.id).encode(), bytes.clone())?;
            }
            let mut stored = part.clone();
            if let Some(algorithm) = upload.checksum_algorithm
                && stored.checksums.get(algorithm).is_none()
                && let Some(v) = written.checksums.get(algorithm)
            {
                stored.checksums.values.push((algorithm, v.to_owned()));
            }
            txn.set(&self.inner.ks, part_key, meta::encode(&stored))?;
            Ok(replaced)
        })?;
        written.keep();
        self.inner.files.remove(&replaced);
        metrics::counter!("strata_blob_bytes_written_total").increment(part.size);
        Ok(part)
    }

    /// Copies `range` of an object into part `number` of an upload (UploadPartCopy).
    #[allow(clippy::too_many_arguments)]
    pub fn copy_part(
        &self,
        src: (&str, &str, Option<&str>),
        range: Option<ByteRange>,
        conditions: &ReadConditions,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u64,
    ) -> BlobResult<PartMeta> {
        let upload = self.upload(bucket, key, upload_id)?;
        let (_, mut reader, _) = self.open_object(src.0, src.1, src.2, range, conditions).map_err(|e| {
            if let BlobError::NotModified { .. } = e { BlobError::PreconditionFailed } else { e }
        })?;
        let mut writer = self.part_writer(&upload.checksum_algorithm.into_iter().collect::<Vec<_>>());
        if upload.encrypted {
            writer = writer.encrypted();
        }
        writer.write_all_from(&mut reader)?;
        self.put_part(bucket, key, upload_id, number, writer.finish()?, &Expected::default())
    }

    /// The parts of an upload after `marker`, at most `max`, and whether more follow.
    pub fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u64,
        max: usize,
    ) -> BlobResult<(Vec<(u64, PartMeta)>, bool)> {
        let txn = self.inner.store.begin_read_only();
        self.must_upload(&txn, bucket, key, upload_id)?;
        let start = Key::Part { upload_id, number: marker }.encode();
        let end = prefix_end(&KeyPrefix::Parts { upload_id }.encode()).expect("part prefixes have an end");
        let max = max.min(self.inner.limits.max_list);
        let mut parts = Vec::new();
        for item in txn.scan(&self.inner.ks, (Bound::Excluded(start), Bound::Excluded(end))) {
            let (k, value) = item?;
            if parts.len() == max {
                return Ok((parts, true));
            }
            parts.push((decode_part_key(&k)?, meta::decode(&value)?));
        }
        Ok((parts, false))
    }

    /// Assembles the object from `parts` (number and ETag, ascending) and ends the upload.
    /// `full_object` asks for a full-object checksum instead of a composite one.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u64, Option<String>)],
        full_object: bool,
    ) -> BlobResult<ObjectMeta> {
        if parts.is_empty() {
            return Err(BlobError::InvalidArgument("you must specify at least one part".into()));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(BlobError::InvalidPartOrder);
        }
        let (meta, unused) = self.transact(|txn| {
            let upload = self.must_upload(txn, bucket, key, upload_id)?;
            let bucket_meta = self.must_bucket(txn, bucket)?;
            let mut stored: BTreeMap<u64, PartMeta> = BTreeMap::new();
            for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::Parts { upload_id }.encode()) {
                let (k, value) = item?;
                stored.insert(decode_part_key(&k)?, meta::decode(&value)?);
            }
            let mut chosen = Vec::with_capacity(parts.len());
            for (i, (number, etag)) in parts.iter().enumerate() {
                let part = stored
                    .remove(number)
                    .ok_or_else(|| BlobError::InvalidPart(format!("part {number} was not uploaded")))?;
                if let Some(etag) = etag
                    && etag.trim().trim_matches('"') != part.etag
                {
                    return Err(BlobError::InvalidPart(format!("part {number}'s ETag does not match")));
                }
                if i + 1 < parts.len() && part.size < self.inner.limits.min_part_bytes {
                    return Err(BlobError::TooSmall(format!(
                        "part {number} is {} bytes; every part but the last must be at least {}",
                        part.size, self.inner.limits.min_part_bytes
                    )));
                }
                chosen.push(part);
            }
            let size: u64 = chosen.iter().map(|p| p.size).sum();
            if size > self.inner.limits.max_object_bytes {
                return Err(BlobError::TooLarge { limit: self.inner.limits.max_object_bytes });
            }
            let md5s: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
            let sums: Vec<(u64, &Checksums)> = chosen.iter().map(|p| (p.size, &p.checksums)).collect();
            let meta = ObjectMeta {
                key: key.to_owned(),
                size,
                etag: checksum::multipart_etag(&md5s),
                last_modified_ms: self.now_ms(),
                headers: upload.headers.clone(),
                user_metadata: upload.user_metadata.clone(),
                checksums: checksum::combine_parts(&sums, upload.checksum_algorithm, full_object),
                tags: upload.tags.clone(),
                segments: chosen.iter().filter_map(|p| p.segment.clone()).collect(),
                part_sizes: chosen.iter().map(|p| p.size).collect(),
                acl: upload.acl,
                grants: upload.grants.clone(),
                ..ObjectMeta::default()
            };
            // Parts uploaded but left out are deleted with the upload.
            let mut unused = Vec::new();
            for (number, part) in stored {
                txn.delete(&self.inner.ks, Key::Part { upload_id, number }.encode())?;
                if let Some(segment) = part.segment {
                    if segment.inline {
                        txn.delete(&self.inner.ks, Key::Data(&segment.id).encode())?;
                    } else {
                        unused.push(segment);
                    }
                }
            }
            for (number, _) in parts {
                txn.delete(&self.inner.ks, Key::Part { upload_id, number: *number }.encode())?;
            }
            txn.delete(&self.inner.ks, Key::Upload { bucket, key, upload_id }.encode())?;
            let (meta, replaced) = self.add_version(txn, &bucket_meta, bucket, key, meta)?;
            unused.extend(replaced);
            Ok((meta, unused))
        })?;
        self.inner.files.remove(&unused);
        metrics::counter!("strata_blob_objects_written_total").increment(1);
        Ok(meta)
    }

    /// Abandons an upload and deletes its parts.
    pub fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> BlobResult<()> {
        let files = self.transact(|txn| {
            self.must_upload(txn, bucket, key, upload_id)?;
            let mut files = Vec::new();
            let parts: Vec<_> =
                txn.scan_prefix(&self.inner.ks, &KeyPrefix::Parts { upload_id }.encode()).collect();
            for item in parts {
                let (k, value) = item?;
                let part: PartMeta = meta::decode(&value)?;
                txn.delete(&self.inner.ks, k)?;
                if let Some(segment) = part.segment {
                    if segment.inline {
                        txn.delete(&self.inner.ks, Key::Data(&segment.id).encode())?;
                    } else {
                        files.push(segment);
                    }
                }
            }
            txn.delete(&self.inner.ks, Key::Upload { bucket, key, upload_id }.encode())?;
            Ok(files)
        })?;
        self.inner.files.remove(&files);
        Ok(())
    }

    /// Uploads in progress in a bucket whose key starts with `prefix`, after
    /// (`key_marker`, `upload_id_marker`), at most `max`, and whether more follow.
    pub fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> BlobResult<(Vec<UploadSummary>, bool)> {
        let txn = self.inner.store.begin_read_only();
        self.must_bucket(&txn, bucket)?;
        let max = max.min(self.inner.limits.max_list);
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::Uploads { bucket }.encode()) {
            let (k, value) = item?;
            let (_, key, upload_id) = decode_upload_key(&k)?;
            if !key.starts_with(prefix) {
                continue;
            }
            if let Some(marker) = key_marker {
                let after = match upload_id_marker {
                    Some(id) => (key.as_str(), upload_id.as_str()) > (marker, id),
                    None => key.as_str() > marker,
                };
                if !after {
                    continue;
                }
            }
            if out.len() == max {
                return Ok((out, true));
            }
            out.push(UploadSummary { key, upload_id, meta: meta::decode(&value)? });
        }
        Ok((out, false))
    }

    // ---- access keys and authorization ----

    /// Creates an access key with a random secret; returns (access key, secret).
    pub fn create_user(&self, admin: bool) -> BlobResult<(String, String)> {
        let access_key = format!("SK{}", &files::new_id()[..18].to_uppercase());
        let secret_key = format!("{:032x}{:08x}", rand::random::<u128>(), rand::random::<u32>());
        let user = UserMeta { secret_key: secret_key.clone(), admin, created_ms: self.now_ms() };
        self.transact(|txn| {
            txn.set(&self.inner.ks, Key::User(&access_key).encode(), meta::encode(&user))?;
            Ok(())
        })?;
        Ok((access_key, secret_key))
    }

    /// Revokes an access key: requests it signs fail from now on.
    pub fn revoke_user(&self, access_key: &str) -> BlobResult<()> {
        self.transact(|txn| {
            if txn.get(&self.inner.ks, &Key::User(access_key).encode())?.is_none() {
                return Err(BlobError::NoSuchAccessKey(access_key.to_owned()));
            }
            txn.delete(&self.inner.ks, Key::User(access_key).encode())?;
            Ok(())
        })
    }

    /// Every stored access key (the configured admin key is not listed).
    pub fn list_users(&self) -> BlobResult<Vec<(String, UserMeta)>> {
        let txn = self.inner.store.begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::Users.encode()) {
            let (k, value) = item?;
            out.push((decode_name_key(&k)?, meta::decode(&value)?));
        }
        Ok(out)
    }

    /// The secret of an access key and whether it is an admin, if the key exists.
    pub fn user(&self, access_key: &str) -> BlobResult<Option<(String, bool)>> {
        if access_key == self.inner.root.0 {
            return Ok(Some((self.inner.root.1.clone(), true)));
        }
        let txn = self.inner.store.begin_read_only();
        Ok(self.get::<UserMeta>(&txn, Key::User(access_key))?.map(|u| (u.secret_key, u.admin)))
    }

    /// Whether `principal` may do `action` (`s3:GetObject`, ...) on `bucket` (and `key`).
    /// Admins may do anything; a bucket's owner anything its policy does not deny; anyone
    /// else what the policy allows. Actions without a bucket (ListBuckets, CreateBucket)
    /// need a key.
    pub fn authorize(
        &self,
        principal: Principal<'_>,
        action: &str,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> BlobResult<()> {
        let admin = match principal {
            Principal::Key(ak) => match self.user(ak)? {
                Some((_, admin)) => admin,
                None => return Err(BlobError::AccessDenied("unknown access key".into())),
            },
            Principal::Anonymous => false,
        };
        if admin {
            return Ok(());
        }
        let Some(bucket) = bucket else {
            return match principal {
                Principal::Key(_) => Ok(()),
                Principal::Anonymous => Err(BlobError::AccessDenied("this request must be signed".into())),
            };
        };
        let meta = match self.bucket(bucket) {
            Ok(meta) => meta,
            // Creating a bucket needs only a key; for anything else an unknown bucket is
            // answered as denied to strangers, so bucket names do not leak.
            Err(BlobError::NoSuchBucket(_)) if matches!(principal, Principal::Key(_)) => return Ok(()),
            Err(BlobError::NoSuchBucket(_)) => return Err(BlobError::AccessDenied("access denied".into())),
            Err(err) => return Err(err),
        };
        let resource = match key {
            Some(key) => format!("{bucket}/{key}"),
            None => bucket.to_owned(),
        };
        let decision = match &meta.policy {
            Some(text) => Policy::parse(text, bucket)?.evaluate(principal, action, &resource),
            None => Decision::Silent,
        };
        let owner = matches!(principal, Principal::Key(ak) if ak == meta.owner);
        match decision {
            Decision::Deny => Err(BlobError::AccessDenied("denied by the bucket policy".into())),
            Decision::Allow => Ok(()),
            Decision::Silent if owner => Ok(()),
            Decision::Silent if self.acl_allows(principal, action, bucket, key)? => Ok(()),
            Decision::Silent => Err(BlobError::AccessDenied("access denied".into())),
        }
    }

    /// Whether the current version of `key` has an ACL that lets `principal` read it.
    fn acl_allows(
        &self,
        principal: Principal<'_>,
        action: &str,
        bucket: &str,
        key: Option<&str>,
    ) -> BlobResult<bool> {
        let Some(key) = key else { return Ok(false) };
        if !Permission::FullControl.allows(action) {
            return Ok(false); // no object ACL speaks of it: no read of the record needed
        }
        let txn = self.inner.store.begin_read_only();
        let Some(meta) = self.current_version(&txn, bucket, key)? else { return Ok(false) };
        let canned = action == "s3:GetObject"
            && match meta.acl {
                CannedAcl::PublicRead => true,
                CannedAcl::AuthenticatedRead => matches!(principal, Principal::Key(_)),
                CannedAcl::Private => false,
            };
        let granted = match principal {
            Principal::Key(ak) => meta.grants.iter().any(|g| g.key == ak && g.permission.allows(action)),
            Principal::Anonymous => false,
        };
        Ok(canned || granted)
    }

    /// PutObjectAcl: gives an object's current version (or `version`) a canned ACL and
    /// explicit grants, replacing its old ones; returns the version id.
    pub fn set_object_acl(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        acl: CannedAcl,
        grants: Vec<Grant>,
    ) -> BlobResult<String> {
        self.check_grants(&grants)?;
        self.update_version(bucket, key, version, |meta| {
            meta.acl = acl;
            meta.grants = grants.clone();
        })
    }

    /// Grants name known access keys, at most [`MAX_GRANTS`] of them.
    fn check_grants(&self, grants: &[Grant]) -> BlobResult<()> {
        if grants.len() > MAX_GRANTS {
            return Err(BlobError::InvalidArgument(format!(
                "an object may have at most {MAX_GRANTS} grants"
            )));
        }
        for grant in grants {
            if self.user(&grant.key)?.is_none() {
                return Err(BlobError::InvalidArgument(format!("invalid id: no access key {}", grant.key)));
            }
        }
        Ok(())
    }

    /// A presigned URL for `link.method` on an object, signed with `link.access_key` (the
    /// admin key when `None`), valid for `link.expires_secs` (at most seven days).
    pub fn presign(&self, link: &Link<'_>) -> BlobResult<String> {
        let Link { method, key, expires_secs, access_key, .. } = *link;
        check_key(key)?;
        if !matches!(method, "GET" | "PUT" | "HEAD" | "DELETE") {
            return Err(BlobError::InvalidArgument(format!("cannot presign {method}")));
        }
        if expires_secs == 0 || expires_secs > links::MAX_EXPIRES_SECS {
            return Err(BlobError::InvalidArgument(format!(
                "expiry must be 1 to {} seconds",
                links::MAX_EXPIRES_SECS
            )));
        }
        let access_key = access_key.unwrap_or(&self.inner.root.0);
        let (secret_key, _) =
            self.user(access_key)?.ok_or_else(|| BlobError::NoSuchAccessKey(access_key.to_owned()))?;
        Ok(links::presign(link, access_key, &secret_key, self.now_ms() / 1000))
    }
}

/// What [`Blob::walk_versions`]'s visitor wants next.
enum Walk {
    Next,
    Stop,
    /// Jump past every key with this prefix.
    Skip(String),
}

#[cfg(test)]
mod tests;
