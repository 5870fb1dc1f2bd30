//! Segment bytes in an external S3-compatible service (`blob.backend = "s3"`), through the
//! `object_store` crate; Strata keeps the records, policies and links.
//!
//! Segment `id` is the object `<prefix><id>` of the remote bucket. A segment is uploaded
//! (multipart past 8 MiB, from its temporary file, so memory stays bounded) before the core
//! commit that names it, as a local segment is fsynced first: a crash leaves no visible half
//! object, and remote objects no record names are deleted when the block opens.
//!
//! The block's API is synchronous and called from blocking threads; the async client runs
//! on a small runtime of its own and callers wait on it (`Runtime::block_on`).

use crate::{BlobError, BlobResult};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as RemotePath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Where object bytes go when they leave this machine.
#[derive(Clone, Debug, Default)]
pub struct RemoteStore {
    /// `http://host:port` of the service; empty for AWS itself.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// Prepended to segment ids, so that several Stratas can share a bucket.
    pub prefix: String,
}

/// Uploads larger than this go up in parts of this size.
const PART_BYTES: usize = 8 << 20;
/// Parts in flight per multipart upload.
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Taken on drop: a runtime is shut down in the background, never waited on, so the
    /// block may be dropped from async code.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn remote_error(err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { path, .. } => {
            BlobError::Core(strata_core::Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, path)))
        }
        other => BlobError::Core(strata_core::Error::Unavailable(format!(
            "the remote object store failed: {other}"
        ))),
    }
}

fn io_error(err: object_store::Error) -> std::io::Error {
    match err {
        object_store::Error::NotFound { path, .. } => std::io::Error::new(std::io::ErrorKind::NotFound, path),
        other => std::io::Error::other(other.to_string()),
    }
}

impl Remote {
    pub(crate) fn connect(config: &RemoteStore) -> BlobResult<Remote> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key);
        if !config.endpoint.is_empty() {
            builder = builder
                .with_endpoint(&config.endpoint)
                .with_allow_http(config.endpoint.starts_with("http://"));
        }
        let store =
            builder.build().map_err(|e| BlobError::InvalidArgument(format!("the remote store: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-blob-remote")
            .enable_all()
            .build()?;
        Ok(Remote { store: Arc::new(store), prefix: config.prefix.clone(), runtime: Some(runtime) })
    }

    fn run<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.as_ref().expect("the runtime lives until drop").block_on(future)
    }

    fn path(&self, id: &str) -> RemotePath {
        RemotePath::from(format!("{}{id}", self.prefix))
    }

    /// Uploads the file at `local` (of `size` bytes) as segment `id`.
    pub(crate) fn upload(&self, id: &str, local: &Path, size: u64) -> BlobResult<()> {
        let path = self.path(id);
        let mut file = std::fs::File::open(local)?;
        self.run(async {
            if size as usize <= PART_BYTES {
                let mut bytes = Vec::with_capacity(size as usize);
                file.read_to_end(&mut bytes)?;
                self.store.put(&path, PutPayload::from(bytes)).await.map_err(remote_error)?;
                return Ok(());
            }
            let upload = self.store.put_multipart(&path).await.map_err(remote_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(remote_error)?;
                writer.write(&buf[..n]);
            }
            writer.finish().await.map_err(remote_error)?;
            Ok(())
        })
    }

    /// Deletes segments in the background; one left behind is collected at the next open.
    pub(crate) fn delete(&self, ids: Vec<String>) {
        let (store, paths): (_, Vec<_>) = (self.store.clone(), ids.iter().map(|id| self.path(id)).collect());
        self.runtime.as_ref().expect("the runtime lives until drop").spawn(async move {
            for path in paths {
                if let Err(err) = store.delete(&path).await
                    && !matches!(err, object_store::Error::NotFound { .. })
                {
                    tracing::warn!(%path, %err, "deleting a remote blob segment failed");
                }
            }
        });
    }

    /// Copies segment `from` to `to` inside the remote store.
    pub(crate) fn copy(&self, from: &str, to: &str) -> BlobResult<()> {
        self.run(self.store.copy(&self.path(from), &self.path(to))).map_err(remote_error)
    }

    /// Deletes every segment under the prefix that is not in `referenced`; returns how many.
    pub(crate) fn collect_garbage(&self, referenced: &HashSet<String>) -> BlobResult<usize> {
        let prefix = (!self.prefix.is_empty()).then(|| RemotePath::from(self.prefix.trim_end_matches('/')));
        let names: Vec<RemotePath> = self.run(async {
            let mut out = Vec::new();
            let mut listing = self.store.list(prefix.as_ref());
            while let Some(meta) = listing.next().await {
                out.push(meta.map_err(remote_error)?.location);
            }
            Ok::<_, BlobError>(out)
        })?;
        let orphans: Vec<String> = names
            .iter()
            .filter_map(|p| p.as_ref().strip_prefix(self.prefix.as_str()).map(str::to_owned))
            .filter(|id| id.len() == 32 && !referenced.contains(id))
            .collect();
        let count = orphans.len();
        for id in &orphans {
            self.run(self.store.delete(&self.path(id))).map_err(remote_error)?;
        }
        Ok(count)
    }

    /// A reader of segment `id` from `offset` to its end (`size`).
    pub(crate) fn open(&self, id: &str, offset: u64, size: u64) -> std::io::Result<RemoteReader> {
        let options = GetOptions { range: Some(GetRange::Bounded(offset..size)), ..GetOptions::default() };
        let result = self.run(self.store.get_opts(&self.path(id), options)).map_err(io_error)?;
        let handle = self.runtime.as_ref().expect("the runtime lives until drop").handle().clone();
        Ok(RemoteReader { handle, stream: result.into_stream(), pending: Bytes::new() })
    }
}

/// Streams one remote segment, a chunk at a time.
pub(crate) struct RemoteReader {
    handle: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    pending: Bytes,
}

impl RemoteReader {
    pub(crate) fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(chunk) => self.pending = chunk.map_err(io_error)?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}
