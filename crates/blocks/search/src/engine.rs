//! One index's tantivy side: its files, its writer and the reader searches use.
//!
//! Writes go to core first (the document and an entry in the index's operation log, one
//! commit per request, fsynced), then to the tantivy writer. A *refresh* commits the tantivy
//! writer with the last applied sequence number as the commit's payload and reloads the
//! reader: the documents become searchable. On open, the operations after that payload are
//! replayed from core, so an acknowledged document is searchable after `kill -9` even if no
//! refresh reached disk. When a mapping gains fields, a new *generation* (a new directory)
//! is built from the documents in core, and the manifest switches to it.

use crate::error::{SearchError, SearchResult};
use crate::keys;
use crate::schema::Compiled;
use crate::store::{self, DocRecord, IndexMeta};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};
use strata_core::keycode::Decoder;
use strata_core::{Keyspace, Store};
use tantivy::store::Compressor;
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// How the block sizes its tantivy writers.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub threads: usize,
    pub memory_bytes: usize,
}

/// Where an index's data lives: core for documents and the manifest, a directory (or
/// memory) for tantivy's files.
pub struct Storage<'a> {
    pub store: &'a Store,
    pub ks: &'a Keyspace,
    pub root: Option<&'a Path>,
    pub config: &'a WriterConfig,
}

/// What searches use: a compiled mapping and a reader of the same generation; pinned, one
/// searcher that keeps seeing the index as it was (a point in time).
pub struct View {
    pub compiled: Arc<Compiled>,
    pub reader: IndexReader,
    pinned: Option<tantivy::Searcher>,
}

impl View {
    /// The searcher to use: the pinned one, or the reader's newest.
    pub fn searcher(&self) -> tantivy::Searcher {
        match &self.pinned {
            Some(s) => s.clone(),
            None => self.reader.searcher(),
        }
    }

    /// This view frozen at the reader's current searcher.
    pub fn pinned(&self) -> View {
        View { compiled: self.compiled.clone(), reader: self.reader.clone(), pinned: Some(self.searcher()) }
    }
}

/// The writing side, behind the index's write lock.
pub struct Writer {
    pub compiled: Arc<Compiled>,
    writer: IndexWriter,
    /// The next sequence number to hand out.
    pub next_seq: u64,
    /// The last sequence number given to the tantivy writer.
    pub applied_seq: u64,
    /// Since when the writer holds changes no reader sees.
    pub dirty_since: Option<Instant>,
}

/// One open index.
pub struct IndexHandle {
    pub meta: RwLock<IndexMeta>,
    pub view: RwLock<Arc<View>>,
    pub writer: Mutex<Writer>,
    /// The last sequence number searches see, for `refresh=wait_for`.
    refreshed: Mutex<u64>,
    refreshed_cv: Condvar,
    /// `None` when `refresh_interval` is `-1`.
    pub refresh_interval: Option<Duration>,
}

/// One change for the tantivy writer, once its core commit is done.
pub enum Change {
    /// `replaces` is false for a document core did not have: no earlier version can be in
    /// the index then, and tantivy's delete, which builds a term query, is skipped.
    Upsert {
        id: String,
        doc: TantivyDocument,
        replaces: bool,
    },
    Delete {
        id: String,
    },
}

fn generation_dir(root: &Path, uuid: u64, generation: u64) -> PathBuf {
    root.join(uuid.to_string()).join(generation.to_string())
}

/// Parses `1s`, `500ms`, `2m`, `-1`.
pub fn parse_interval(v: &Value) -> SearchResult<Option<Duration>> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("{n}ms"),
        _ => return Err(SearchError::illegal_argument(format!("failed to parse time value [{v}]"))),
    };
    if s == "-1" {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let n: f64 = s[..split].parse().map_err(|_| {
        SearchError::illegal_argument(format!("failed to parse setting [refresh_interval] with value [{s}]"))
    })?;
    let ms = match &s[split..] {
        "ms" => n,
        "s" | "" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => {
            return Err(SearchError::illegal_argument(format!(
                "failed to parse setting [refresh_interval] with value [{s}]"
            )));
        }
    };
    Ok(Some(Duration::from_millis(ms as u64)))
}

impl IndexHandle {
    /// Opens an index's current generation, or builds one from core when its files are
    /// missing or unreadable, then replays the operations its last commit does not hold.
    pub fn open(storage: &Storage, meta: IndexMeta, compiled: Compiled) -> SearchResult<IndexHandle> {
        let Storage { store, ks, root, config } = *storage;
        let compiled = Arc::new(compiled);
        let refresh_interval = match meta.setting("refresh_interval") {
            Some(v) => parse_interval(v)?,
            None => Some(Duration::from_secs(1)),
        };
        let last_seq = {
            let txn = store.begin_read_only();
            txn.get(ks, &keys::seq(meta.uuid))?.map_or(0, |b| store::u64_value(&b))
        };
        let opened = root.and_then(|root| {
            let dir = generation_dir(root, meta.uuid, meta.generation);
            let mut index = Index::open_in_dir(&dir).ok()?;
            (index.schema() == compiled.schema).then_some(())?;
            index.set_tokenizers(compiled.tokenizers.clone());
            index.set_fast_field_tokenizers(compiled.tokenizers.clone());
            let committed = index.load_metas().ok()?.payload.and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
            Some((index, committed))
        });
        let (index, writer, applied) = match opened {
            Some((index, committed)) => {
                let writer = index.writer_with_num_threads(config.threads, config.memory_bytes)?;
                (index, writer, committed)
            }
            None => {
                let (index, writer) = build(store, ks, root, &meta, &compiled, config)?;
                (index, writer, last_seq)
            }
        };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let mut writer = Writer {
            compiled: compiled.clone(),
            writer,
            next_seq: last_seq + 1,
            applied_seq: applied,
            dirty_since: None,
        };
        if applied < last_seq {
            catch_up(store, ks, meta.uuid, &mut writer, applied)?;
            commit(&mut writer)?;
            reader.reload()?;
        }
        if let Some(root) = root {
            remove_other_generations(root, meta.uuid, meta.generation);
        }
        Ok(IndexHandle {
            view: RwLock::new(Arc::new(View { compiled, reader, pinned: None })),
            refreshed: Mutex::new(last_seq),
            writer: Mutex::new(writer),
            meta: RwLock::new(meta),
            refreshed_cv: Condvar::new(),
            refresh_interval,
        })
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().expect("view lock").clone()
    }

    /// Builds a new generation for a changed mapping from the documents in core and
    /// switches to it. The caller holds the writer lock and writes the new manifest.
    pub fn rebuild(
        &self,
        writer: &mut Writer,
        storage: &Storage,
        meta: &IndexMeta,
        compiled: Compiled,
    ) -> SearchResult<()> {
        let Storage { store, ks, root, config } = *storage;
        let compiled = Arc::new(compiled);
        let (index, new_writer) = build(store, ks, root, meta, &compiled, config)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        writer.writer = new_writer;
        writer.compiled = compiled.clone();
        writer.applied_seq = writer.next_seq - 1;
        writer.dirty_since = None;
        *self.view.write().expect("view lock") = Arc::new(View { compiled, reader, pinned: None });
        self.mark_refreshed(writer.applied_seq);
        Ok(())
    }

    /// Hands committed changes to the tantivy writer.
    pub fn apply(&self, writer: &mut Writer, changes: Vec<Change>, last_seq: u64) -> SearchResult<()> {
        for change in changes {
            match change {
                Change::Upsert { id, doc, replaces } => {
                    if replaces {
                        writer.writer.delete_term(Term::from_field_text(writer.compiled.id, &id));
                    }
                    writer.writer.add_document(doc)?;
                }
                Change::Delete { id } => {
                    writer.writer.delete_term(Term::from_field_text(writer.compiled.id, &id));
                }
            }
        }
        writer.applied_seq = writer.applied_seq.max(last_seq);
        writer.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Makes everything applied so far searchable.
    pub fn refresh(&self, writer: &mut Writer) -> SearchResult<()> {
        if writer.dirty_since.is_none() {
            return Ok(());
        }
        commit(writer)?;
        self.view().reader.reload()?;
        writer.dirty_since = None;
        self.mark_refreshed(writer.applied_seq);
        Ok(())
    }

    fn mark_refreshed(&self, seq: u64) {
        let mut refreshed = self.refreshed.lock().expect("refreshed lock");
        *refreshed = (*refreshed).max(seq);
        self.refreshed_cv.notify_all();
    }

    /// Waits until searches see `seq` (`refresh=wait_for`), at most `timeout`.
    pub fn wait_refreshed(&self, seq: u64, timeout: Duration) {
        let guard = self.refreshed.lock().expect("refreshed lock");
        let _ = self.refreshed_cv.wait_timeout_while(guard, timeout, |r| *r < seq);
    }

    /// Whether the periodic refresher should refresh now.
    pub fn refresh_due(&self, writer: &Writer) -> bool {
        match (writer.dirty_since, self.refresh_interval) {
            (Some(since), Some(interval)) => since.elapsed() >= interval,
            _ => false,
        }
    }
}

fn commit(writer: &mut Writer) -> SearchResult<()> {
    let mut prepared = writer.writer.prepare_commit()?;
    prepared.set_payload(&writer.applied_seq.to_string());
    prepared.commit()?;
    Ok(())
}

/// A hit's `_id` is read by copying its doc-store block: small blocks keep that copy short
/// (tantivy's default, 16 KiB, suits compressed stores).
const DOCSTORE_BLOCK_BYTES: usize = 4096;

fn create_index(root: Option<&Path>, meta: &IndexMeta, compiled: &Compiled) -> SearchResult<Index> {
    // The doc store is not compressed: core already keeps every `_source`, and lz4 took a
    // twentieth of bulk indexing's CPU under perf (its own thread). Each search hit reads
    // one block for its `_id`, which is now a copy rather than a decompression. Segments
    // written compressed by earlier versions still read.
    let settings = IndexSettings {
        docstore_compression: Compressor::None,
        docstore_compress_dedicated_thread: false,
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..IndexSettings::default()
    };
    let builder = Index::builder()
        .settings(settings)
        .schema(compiled.schema.clone())
        .tokenizers(compiled.tokenizers.clone())
        .fast_field_tokenizers(compiled.tokenizers.clone());
    Ok(match root {
        Some(root) => {
            let dir = generation_dir(root, meta.uuid, meta.generation);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(SearchError::internal)?;
            }
            std::fs::create_dir_all(&dir).map_err(SearchError::internal)?;
            builder.create_in_dir(&dir)?
        }
        None => builder.create_in_ram()?,
    })
}

/// A fresh generation holding every document in core, committed.
fn build(
    store: &Store,
    ks: &Keyspace,
    root: Option<&Path>,
    meta: &IndexMeta,
    compiled: &Arc<Compiled>,
    config: &WriterConfig,
) -> SearchResult<(Index, IndexWriter)> {
    let index = create_index(root, meta, compiled)?;
    let mut writer: IndexWriter = index.writer_with_num_threads(config.threads, config.memory_bytes)?;
    let txn = store.begin_read_only();
    let last_seq = txn.get(ks, &keys::seq(meta.uuid))?.map_or(0, |b| store::u64_value(&b));
    let prefix = keys::doc_prefix(meta.uuid);
    for pair in txn.scan_prefix(ks, &prefix) {
        let (key, value) = pair?;
        let mut dec = Decoder::new(&key[prefix.len()..]);
        let id = dec.string()?;
        let record = DocRecord::decode(&value)?;
        let source: Value = serde_json::from_slice(&record.source).map_err(SearchError::internal)?;
        // A document that no longer fits the mapping was accepted under it; skip rather
        // than lose the index.
        match compiled.document(&id, &source, &record.source) {
            Ok(doc) => {
                writer.add_document(doc)?;
            }
            Err(err) => tracing::warn!(index = %meta.name, %id, %err, "document skipped while rebuilding"),
        }
    }
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&last_seq.to_string());
    prepared.commit()?;
    Ok((index, writer))
}

/// Replays the operations after `from_seq` from core into the writer.
fn catch_up(store: &Store, ks: &Keyspace, uuid: u64, writer: &mut Writer, from_seq: u64) -> SearchResult<()> {
    let txn = store.begin_read_only();
    let mut replayed = 0u64;
    for pair in txn.scan(ks, keys::op(uuid, from_seq + 1)..keys::op(uuid, u64::MAX)) {
        let (key, value) = pair?;
        let mut dec = Decoder::new(&key);
        dec.tag()?;
        dec.u64()?;
        let seq = dec.u64()?;
        let Some((kind, id)) = store::decode_op(&value) else { continue };
        let term = Term::from_field_text(writer.compiled.id, &id);
        match kind {
            store::OP_DELETED => {
                writer.writer.delete_term(term);
            }
            _ => {
                // Only the document's latest operation counts.
                let Some(bytes) = txn.get(ks, &keys::doc(uuid, &id))? else { continue };
                let record = DocRecord::decode(&bytes)?;
                if record.seq != seq {
                    continue;
                }
                let source: Value = serde_json::from_slice(&record.source).map_err(SearchError::internal)?;
                if let Ok(doc) = writer.compiled.document(&id, &source, &record.source) {
                    writer.writer.delete_term(term);
                    writer.writer.add_document(doc)?;
                }
            }
        }
        writer.applied_seq = seq;
        replayed += 1;
    }
    if replayed > 0 {
        tracing::info!(uuid, replayed, "search index caught up from core");
        writer.dirty_since = Some(Instant::now());
    }
    Ok(())
}

fn remove_other_generations(root: &Path, uuid: u64, keep: u64) {
    let Ok(entries) = std::fs::read_dir(root.join(uuid.to_string())) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) != Some(keep) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Deletes the operation-log entries a tantivy commit has made unnecessary.
pub fn prune_ops(store: &Store, ks: &Keyspace, uuid: u64, through_seq: u64) -> SearchResult<()> {
    let mut txn = store.begin();
    let mut doomed = Vec::new();
    for pair in txn.scan(ks, keys::op(uuid, 0)..keys::op(uuid, through_seq + 1)) {
        doomed.push(pair?.0);
    }
    if doomed.is_empty() {
        return Ok(());
    }
    for key in doomed {
        txn.delete(ks, key)?;
    }
    txn.commit()?;
    Ok(())
}
