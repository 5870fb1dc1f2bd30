//! Configuration: defaults, then `strata.toml`, then `STRATA_*` environment variables, then
//! command-line flags — each overriding the one before.
//!
//! Every key of [`Config`] can be set from the environment as `STRATA_` + its path in upper
//! case with `_` for `.`: `[http] listen` is `STRATA_HTTP_LISTEN`, `data_dir` is
//! `STRATA_DATA_DIR`. The variable names are derived from the defaults, so a new key gets one
//! without code. `strata.example.toml` documents every key; a test keeps it in step.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where every block keeps its data.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub core: CoreConfig,
    pub kv: KvConfig,
    pub http: HttpConfig,
    pub pg: PgConfig,
    pub sql: SqlConfig,
    pub cache: CacheConfig,
    pub resp: RespConfig,
    pub blob: BlobConfig,
    pub s3: S3Config,
    pub queue: QueueConfig,
    pub sqs: SqsConfig,
    pub stream: StreamConfig,
    pub kafka: KafkaConfig,
    pub search: SearchConfig,
    pub es: EsConfig,
    pub lock: LockConfig,
    pub proxy: ProxyConfig,
    pub edge: EdgeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./strata-data"),
            log: LogConfig::default(),
            core: CoreConfig::default(),
            kv: KvConfig::default(),
            http: HttpConfig::default(),
            pg: PgConfig::default(),
            sql: SqlConfig::default(),
            cache: CacheConfig::default(),
            resp: RespConfig::default(),
            blob: BlobConfig::default(),
            s3: S3Config::default(),
            queue: QueueConfig::default(),
            sqs: SqsConfig::default(),
            stream: StreamConfig::default(),
            kafka: KafkaConfig::default(),
            search: SearchConfig::default(),
            es: EsConfig::default(),
            lock: LockConfig::default(),
            proxy: ProxyConfig::default(),
            edge: EdgeConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `strata_core=debug,info`, ... (`RUST_LOG` wins).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info,fjall=warn,lsm_tree=warn".into(), format: "text".into() }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// `always`: a commit returns once fsynced (group commit). `periodic`: once written to
    /// the OS, fsynced every `sync_interval_ms`; a power loss can lose that interval.
    pub sync: String,
    pub sync_interval_ms: u64,
    pub cache_mb: u64,
    /// How many of the newest commits keep their change records (for watches and indexers).
    pub feed_retention: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_txn_bytes: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        let core = strata_core::Options::default();
        Self {
            sync: "always".into(),
            sync_interval_ms: 100,
            cache_mb: core.cache_bytes / (1024 * 1024),
            feed_retention: core.feed_retention,
            max_key_bytes: core.max_key_bytes,
            max_value_bytes: core.max_value_bytes,
            max_txn_bytes: core.max_txn_bytes,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    pub max_namespace_bytes: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_page: usize,
    pub max_batch_ops: usize,
    /// How often expired keys are deleted (and reported to watchers).
    pub sweep_interval_ms: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        let limits = strata_kv::Limits::default();
        Self {
            max_namespace_bytes: limits.max_namespace_bytes,
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_page: limits.max_page,
            max_batch_ops: limits.max_batch_ops,
            sweep_interval_ms: 1000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: String,
    /// Largest request body outside KV values (which `kv.max_value_bytes` bounds).
    pub max_body_bytes: usize,
    /// When set, `/v1/*` requires `Authorization: Bearer <api_key>`. Required to listen on a
    /// non-loopback address.
    pub api_key: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 8 * 1024 * 1024,
            api_key: String::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PgConfig {
    pub enabled: bool,
    pub listen: String,
    /// The user that logs in when a password is set.
    pub user: String,
    /// When set, clients authenticate with it (cleartext password). Required to listen on a
    /// non-loopback address; without it any user connects.
    pub password: String,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:5432".into(),
            user: "strata".into(),
            password: String::new(),
            max_connections: 256,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// "repeatable read" (snapshot isolation), "read committed" or "serializable".
    pub default_isolation: String,
    /// How long a READ COMMITTED writer waits for a row lock before reporting a deadlock.
    pub lock_timeout_ms: u64,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self { default_isolation: "repeatable read".into(), lock_timeout_ms: 2000 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory limit of the cache's data, like Redis's maxmemory: "0" (no limit), "100mb",
    /// "1gb" (k/m/g = 1000, kb/mb/gb = 1024).
    pub maxmemory: String,
    /// noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu,
    /// volatile-ttl, volatile-random or fifo.
    pub maxmemory_policy: String,
    /// Keys sampled per eviction (approximated LRU/LFU/TTL).
    pub maxmemory_samples: usize,
    pub databases: usize,
    /// "none" (memory only) or "log" (every write durable through core before it is
    /// acknowledged; the data set is reloaded on start).
    pub persistence: String,
    /// Active expiry rounds per second.
    pub hz: u64,
    /// After a script has run this long, other clients get -BUSY (and may SCRIPT KILL it).
    pub script_busy_ms: u64,
    /// Memory limit of the Lua heap that scripts share.
    pub script_memory_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            maxmemory: "0".into(),
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            databases: 16,
            persistence: "none".into(),
            hz: 10,
            script_busy_ms: 5000,
            script_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RespConfig {
    pub enabled: bool,
    pub listen: String,
    /// When set, clients must AUTH with it. Required to listen on a non-loopback address.
    pub password: String,
    /// Largest bulk string (argument or value), like Redis's proto-max-bulk-len.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
    pub max_connections: usize,
    /// Threads serving resp connections, each with its own event loop; 0 is one per core
    /// but one (at least one), leaving a core to the clients and the other blocks.
    pub io_threads: usize,
}

impl Default for RespConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:6379".into(),
            password: String::new(),
            max_bulk_bytes: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
            max_connections: 10_000,
            io_threads: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// Where object bytes live: "local" (files under `<data_dir>/blob`) or "s3" (an
    /// external S3-compatible service, `remote_*`).
    pub backend: String,
    /// The external service's `http(s)://host:port`; empty for AWS itself.
    pub remote_endpoint: String,
    pub remote_bucket: String,
    pub remote_region: String,
    pub remote_access_key: String,
    pub remote_secret_key: String,
    /// Prepended to the remote object names.
    pub remote_prefix: String,
    /// Largest object in one PUT, and largest multipart object.
    pub max_object_bytes: u64,
    pub max_part_bytes: u64,
    /// Smallest part of a multipart upload other than the last (S3: 5 MiB).
    pub min_part_bytes: u64,
    pub max_parts: u64,
    /// Objects and parts up to this size are stored in core (one group-committed write)
    /// instead of a file of their own.
    pub inline_max_bytes: usize,
    pub max_buckets: u64,
    /// Bytes of `x-amz-meta-*` per object.
    pub max_user_metadata_bytes: usize,
    /// How often buckets' lifecycle rules are applied (S3 applies them once a day).
    pub lifecycle_interval_secs: u64,
}

impl Default for BlobConfig {
    fn default() -> Self {
        let limits = strata_blob::Limits::default();
        Self {
            backend: "local".into(),
            remote_endpoint: String::new(),
            remote_bucket: String::new(),
            remote_region: "us-east-1".into(),
            remote_access_key: String::new(),
            remote_secret_key: String::new(),
            remote_prefix: "strata/".into(),
            max_object_bytes: limits.max_object_bytes,
            max_part_bytes: limits.max_part_bytes,
            min_part_bytes: limits.min_part_bytes,
            max_parts: limits.max_parts,
            inline_max_bytes: limits.inline_max_bytes,
            max_buckets: limits.max_buckets,
            max_user_metadata_bytes: limits.max_user_metadata_bytes,
            lifecycle_interval_secs: 3600,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub enabled: bool,
    pub listen: String,
    /// The admin access key. Keys for other users are made with `strata blob key create`.
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// Virtual-host-style requests address `<bucket>.<domain>`.
    pub domain: String,
    /// The address presigned links point at; empty means `http://<listen>`.
    pub public_endpoint: String,
    pub max_connections: usize,
    /// Largest XML request body (CompleteMultipartUpload, DeleteObjects, policies).
    pub max_xml_bytes: usize,
    /// Largest browser form (POST policy) upload.
    pub max_post_bytes: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        let s3 = strata_s3::S3Config::default();
        Self {
            enabled: true,
            listen: "127.0.0.1:9000".into(),
            access_key: DEFAULT_S3_ACCESS_KEY.into(),
            secret_key: DEFAULT_S3_SECRET_KEY.into(),
            region: s3.region,
            domain: s3.domain,
            public_endpoint: String::new(),
            max_connections: s3.max_connections,
            max_xml_bytes: s3.max_xml_bytes,
            max_post_bytes: s3.max_post_bytes,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Largest message a queue may allow.
    pub max_message_bytes: usize,
    /// Backpressure: most messages one queue holds; sends past it are throttled.
    pub max_depth: u64,
    /// Most messages in all queues together (the bound on the disk queues may fill).
    pub max_total_messages: u64,
    pub max_queues: usize,
    /// How often messages past their retention are deleted.
    pub sweep_interval_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let limits = strata_queue::Limits::default();
        Self {
            max_message_bytes: limits.max_message_bytes,
            max_depth: limits.max_depth,
            max_total_messages: limits.max_total_messages,
            max_queues: limits.max_queues,
            sweep_interval_ms: 1000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    pub enabled: bool,
    pub listen: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The account id in queue URLs and ARNs.
    pub account_id: String,
    pub max_body_bytes: usize,
    /// Most requests served at once (long polls included); more get ServiceUnavailable.
    pub max_in_flight: usize,
}

impl Default for SqsConfig {
    fn default() -> Self {
        let sqs = strata_sqs::SqsConfig::default();
        Self {
            enabled: true,
            listen: "127.0.0.1:9324".into(),
            access_key: DEFAULT_S3_ACCESS_KEY.into(),
            secret_key: DEFAULT_S3_SECRET_KEY.into(),
            region: sqs.region,
            account_id: sqs.account_id,
            max_body_bytes: sqs.max_body_bytes,
            max_in_flight: sqs.max_in_flight,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// What a new topic keeps: `-1` is forever (Kafka's `retention.ms`, `retention.bytes`).
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// Size at which a partition's active segment file is closed and a new one started.
    pub segment_bytes: u64,
    /// The largest record batch a producer may send (`max.message.bytes`).
    pub max_message_bytes: usize,
    pub max_partitions: i32,
    /// How long a consumer group that was empty waits for more members before assigning.
    pub group_initial_delay_ms: i64,
    /// How often retention and compaction run.
    pub maintenance_interval_ms: u64,
    /// How often windowed views fold in new records.
    pub views_interval_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        let topic = strata_stream::TopicConfig::default();
        let options = strata_stream::StreamOptions::new("");
        Self {
            retention_ms: topic.retention_ms,
            retention_bytes: topic.retention_bytes,
            segment_bytes: topic.segment_bytes,
            max_message_bytes: topic.max_message_bytes,
            max_partitions: options.max_partitions,
            group_initial_delay_ms: options.group_initial_delay_ms,
            maintenance_interval_ms: 10_000,
            views_interval_ms: 200,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub enabled: bool,
    pub listen: String,
    /// `host:port` clients are told to connect to; empty means the listening address.
    pub advertised: String,
    /// The front has no SASL yet: listening beyond loopback needs this set to `true`.
    pub allow_unauthenticated: bool,
    pub max_request_bytes: usize,
    /// The longest a fetch may wait for data, whatever the client asks.
    pub max_wait_ms: u64,
    /// Create a topic the first time a client names it in Metadata.
    pub auto_create_topics: bool,
    pub default_partitions: i32,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        let kafka = strata_kafka::KafkaConfig::default();
        Self {
            enabled: true,
            listen: "127.0.0.1:9092".into(),
            advertised: String::new(),
            allow_unauthenticated: false,
            max_request_bytes: kafka.max_request_bytes,
            max_wait_ms: kafka.max_wait_ms,
            auto_create_topics: kafka.auto_create_topics,
            default_partitions: kafka.default_partitions,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Indexing threads of each index's writer.
    pub writer_threads: usize,
    /// Memory each index's writer buffers before it writes a segment.
    pub writer_memory_bytes: usize,
    /// Largest `from + size` of a search (`index.max_result_window`).
    pub max_result_window: usize,
    pub max_indices: usize,
    /// Largest document source.
    pub max_doc_bytes: usize,
    /// Writing to a missing index creates it (`action.auto_create_index`).
    pub auto_create_index: bool,
    /// How often index metrics are published.
    pub metrics_interval_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        let search = strata_search::SearchConfig::default();
        Self {
            writer_threads: search.writer_threads,
            writer_memory_bytes: search.writer_memory_bytes,
            max_result_window: search.max_result_window,
            max_indices: search.max_indices,
            max_doc_bytes: search.max_doc_bytes,
            auto_create_index: search.auto_create_index,
            metrics_interval_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockConfig {
    /// Longest lease (TTL) a lock may ask.
    pub max_ttl_ms: u64,
    /// Longest blocking wait (`WAIT`, `wait_ms`).
    pub max_wait_ms: u64,
    /// Most lock requests waiting at once.
    pub max_waiters: usize,
    /// Most resources in one lock request.
    pub max_resources: usize,
    /// Longest resource or owner name, in bytes.
    pub max_name_bytes: usize,
}

impl Default for LockConfig {
    fn default() -> Self {
        let lock = strata_lock::LockConfig::default();
        Self {
            max_ttl_ms: lock.max_ttl.as_millis() as u64,
            max_wait_ms: lock.max_wait.as_millis() as u64,
            max_waiters: lock.max_waiters,
            max_resources: lock.max_resources,
            max_name_bytes: lock.max_name_bytes,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub enabled: bool,
    /// The gateway's address; it is meant to face clients, so any address is allowed (each
    /// route says what authentication it needs).
    pub listen: String,
    /// Largest request head; bigger is a 431.
    pub max_header_bytes: usize,
    /// Connect timeout to upstreams when a route sets none.
    pub connect_timeout_ms: u64,
    /// Time to an upstream's response head when a route sets none.
    pub timeout_ms: u64,
    /// Largest request body when a route sets none.
    pub max_body_bytes: u64,
    /// Threads serving connections; 0 is one per core.
    pub workers: usize,
    /// A client connection that sends no request for this long is closed (HTTP/1.1); 0 never.
    pub idle_timeout_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        let proxy = strata_proxy::ProxyConfig::default();
        Self {
            enabled: true,
            listen: "127.0.0.1:8000".into(),
            max_header_bytes: proxy.max_header_bytes,
            connect_timeout_ms: proxy.connect_timeout.as_millis() as u64,
            timeout_ms: proxy.timeout.as_millis() as u64,
            max_body_bytes: proxy.max_body_bytes,
            workers: proxy.workers,
            idle_timeout_ms: proxy.idle_timeout.as_millis() as u64,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// The access log: `""` (off), `"stdout"`, or a file path.
    pub access_log: String,
    /// A Redis-protocol store (`redis://host:port/`, e.g. one Strata's resp front) that
    /// keeps rate limits shared by every edge process naming it; `""`: per process.
    pub rate_limit_store: String,
    /// HTTP routes (`[[edge.routes]]`), in the admin API's document shape plus a `name`.
    pub routes: Vec<strata_edge::RouteSpec>,
    /// Plain TCP balancers (`[[edge.tcp]]`).
    pub tcp: Vec<TcpRouteConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRouteConfig {
    pub name: String,
    pub listen: String,
    pub upstreams: Vec<strata_edge::spec::UpstreamSpec>,
    #[serde(default)]
    pub balance: strata_edge::spec::Balance,
    /// Connect checks of the upstreams; none by default (a refused connection still moves
    /// on to the next upstream).
    #[serde(default)]
    pub health_check: Option<strata_edge::spec::TcpHealthCheckSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsConfig {
    pub enabled: bool,
    pub listen: String,
    /// Basic-auth user and password; an empty password turns authentication off.
    pub username: String,
    pub password: String,
    /// Largest request body, `_bulk` included (`http.max_content_length`).
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    /// The cluster name `GET /` reports.
    pub cluster_name: String,
}

impl Default for EsConfig {
    fn default() -> Self {
        let es = strata_es::EsConfig::default();
        Self {
            enabled: true,
            listen: "127.0.0.1:9200".into(),
            username: es.username,
            password: String::new(),
            max_body_bytes: es.max_body_bytes,
            max_in_flight: es.max_in_flight,
            cluster_name: es.cluster_name,
        }
    }
}

/// The loopback-only default credentials of the s3 and sqs fronts.
const DEFAULT_S3_ACCESS_KEY: &str = "strata";
const DEFAULT_S3_SECRET_KEY: &str = "strata-secret";

/// Checks that `listen` is an address and that a non-loopback one has credentials.
fn check_listen(
    setting: &str,
    listen: &str,
    has_credentials: bool,
    credential_setting: &str,
) -> anyhow::Result<()> {
    let addr: SocketAddr =
        listen.parse().with_context(|| format!("{setting} {listen:?} is not host:port"))?;
    if !addr.ip().is_loopback() && !has_credentials {
        let env = format!("STRATA_{}", credential_setting.to_uppercase().replace('.', "_"));
        bail!(
            "{setting} {listen} is not a loopback address and no credentials are configured: \
             set {credential_setting} ({env}) or listen on 127.0.0.1"
        );
    }
    Ok(())
}

impl Config {
    /// Loads the configuration: defaults, the file (if any), then the environment.
    pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> anyhow::Result<Config> {
        let mut value = toml::Value::try_from(Config::default()).expect("defaults serialize");
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading config file {}", file.display()))?;
            let from_file: toml::Value =
                toml::from_str(&text).with_context(|| format!("parsing config file {}", file.display()))?;
            merge(&mut value, from_file);
        }
        let env: Vec<(String, String)> = env.filter(|(k, _)| k.starts_with("STRATA_")).collect();
        apply_env(&mut value, "STRATA", &env)?;
        let config: Config = value.try_into().context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !matches!(self.core.sync.as_str(), "always" | "periodic") {
            bail!("core.sync must be \"always\" or \"periodic\", not {:?}", self.core.sync);
        }
        if strata_sql::IsolationLevel::parse(&self.sql.default_isolation).is_none() {
            bail!(
                "sql.default_isolation must be \"read committed\", \"repeatable read\" or \"serializable\", not {:?}",
                self.sql.default_isolation
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("log.format must be \"text\" or \"json\", not {:?}", self.log.format);
        }
        if self.http.enabled {
            check_listen("http.listen", &self.http.listen, !self.http.api_key.is_empty(), "http.api_key")?;
        }
        if self.pg.enabled {
            check_listen("pg.listen", &self.pg.listen, !self.pg.password.is_empty(), "pg.password")?;
        }
        if self.resp.enabled {
            check_listen("resp.listen", &self.resp.listen, !self.resp.password.is_empty(), "resp.password")?;
        }
        if self.s3.enabled {
            let custom =
                self.s3.access_key != DEFAULT_S3_ACCESS_KEY || self.s3.secret_key != DEFAULT_S3_SECRET_KEY;
            check_listen("s3.listen", &self.s3.listen, custom, "s3.secret_key")?;
            if self.s3.access_key.is_empty() || self.s3.secret_key.len() < 8 {
                bail!("s3.access_key must be set and s3.secret_key must be at least 8 characters");
            }
        }
        if self.sqs.enabled {
            let custom =
                self.sqs.access_key != DEFAULT_S3_ACCESS_KEY || self.sqs.secret_key != DEFAULT_S3_SECRET_KEY;
            check_listen("sqs.listen", &self.sqs.listen, custom, "sqs.secret_key")?;
        }
        if self.kafka.enabled {
            check_listen(
                "kafka.listen",
                &self.kafka.listen,
                self.kafka.allow_unauthenticated,
                "kafka.allow_unauthenticated",
            )?;
            if !self.kafka.advertised.is_empty() {
                self.kafka_advertised()?;
            }
        }
        if self.es.enabled {
            check_listen("es.listen", &self.es.listen, !self.es.password.is_empty(), "es.password")?;
        }
        if self.proxy.enabled {
            self.proxy
                .listen
                .parse::<SocketAddr>()
                .with_context(|| format!("proxy.listen {:?} is not host:port", self.proxy.listen))?;
        }
        for t in &self.edge.tcp {
            t.listen
                .parse::<SocketAddr>()
                .with_context(|| format!("edge.tcp {}: listen {:?} is not host:port", t.name, t.listen))?;
            if t.upstreams.is_empty() {
                bail!("edge.tcp {}: needs upstreams", t.name);
            }
        }
        match self.blob.backend.as_str() {
            "local" => {}
            "s3" if !self.blob.remote_bucket.is_empty() => {}
            "s3" => bail!("blob.backend = \"s3\" needs blob.remote_bucket (and remote_endpoint, keys)"),
            other => bail!("blob.backend must be \"local\" or \"s3\", not {other:?}"),
        }
        if strata_cache::parse_memory(&self.cache.maxmemory).is_none() {
            bail!(
                "cache.maxmemory must be a size like \"0\", \"100mb\" or \"1gb\", not {:?}",
                self.cache.maxmemory
            );
        }
        if strata_cache::Policy::parse(&self.cache.maxmemory_policy).is_none() {
            bail!(
                "cache.maxmemory_policy {:?} is not a policy Redis knows (or fifo)",
                self.cache.maxmemory_policy
            );
        }
        if !matches!(self.cache.persistence.as_str(), "none" | "log") {
            bail!("cache.persistence must be \"none\" or \"log\", not {:?}", self.cache.persistence);
        }
        if self.cache.databases == 0 || self.cache.hz == 0 {
            bail!("cache.databases and cache.hz must be at least 1");
        }
        Ok(())
    }

    pub fn store_options(&self) -> strata_core::Options {
        strata_core::Options {
            sync: match self.core.sync.as_str() {
                "periodic" => strata_core::SyncMode::Periodic(std::time::Duration::from_millis(
                    self.core.sync_interval_ms,
                )),
                _ => strata_core::SyncMode::Always,
            },
            max_key_bytes: self.core.max_key_bytes,
            max_value_bytes: self.core.max_value_bytes,
            max_txn_bytes: self.core.max_txn_bytes,
            cache_bytes: self.core.cache_mb * 1024 * 1024,
            feed_retention: self.core.feed_retention,
        }
    }

    pub fn sql_options(&self) -> strata_sql::SqlOptions {
        strata_sql::SqlOptions {
            default_isolation: strata_sql::IsolationLevel::parse(&self.sql.default_isolation)
                .expect("validated at load"),
            lock_timeout: std::time::Duration::from_millis(self.sql.lock_timeout_ms),
        }
    }

    pub fn cache_options(&self) -> strata_cache::CacheOptions {
        strata_cache::CacheOptions {
            databases: self.cache.databases,
            settings: strata_cache::Settings {
                maxmemory: strata_cache::parse_memory(&self.cache.maxmemory).expect("validated at load"),
                policy: strata_cache::Policy::parse(&self.cache.maxmemory_policy).expect("validated at load"),
                samples: self.cache.maxmemory_samples.max(1),
                ..strata_cache::Settings::default()
            },
            max_bulk_bytes: self.resp.max_bulk_bytes,
            password: (!self.resp.password.is_empty()).then(|| self.resp.password.clone()),
            tcp_port: self.resp.listen.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(6379),
            script_memory_bytes: self.cache.script_memory_bytes,
            script_busy_ms: self.cache.script_busy_ms,
        }
    }

    pub fn resp_config(&self) -> strata_resp::RespConfig {
        strata_resp::RespConfig {
            limits: strata_resp::Limits {
                max_bulk: self.resp.max_bulk_bytes,
                max_args: self.resp.max_args,
                max_inline: self.resp.max_inline_bytes,
            },
            max_connections: self.resp.max_connections,
            io_threads: self.resp.io_threads,
        }
    }

    pub fn blob_limits(&self) -> strata_blob::Limits {
        strata_blob::Limits {
            max_object_bytes: self.blob.max_object_bytes,
            max_part_bytes: self.blob.max_part_bytes,
            min_part_bytes: self.blob.min_part_bytes,
            max_parts: self.blob.max_parts,
            inline_max_bytes: self.blob.inline_max_bytes,
            max_buckets: self.blob.max_buckets,
            max_user_metadata_bytes: self.blob.max_user_metadata_bytes,
            ..strata_blob::Limits::default()
        }
    }

    /// The external store of `blob.backend = "s3"`, if that is the backend.
    pub fn blob_remote(&self) -> Option<strata_blob::RemoteStore> {
        (self.blob.backend == "s3").then(|| strata_blob::RemoteStore {
            endpoint: self.blob.remote_endpoint.clone(),
            bucket: self.blob.remote_bucket.clone(),
            region: self.blob.remote_region.clone(),
            access_key: self.blob.remote_access_key.clone(),
            secret_key: self.blob.remote_secret_key.clone(),
            prefix: self.blob.remote_prefix.clone(),
        })
    }

    pub fn stream_options(&self) -> strata_stream::StreamOptions {
        let mut options = strata_stream::StreamOptions::new(self.data_dir.join("stream"));
        let defaults = &mut options.defaults;
        defaults.retention_ms = self.stream.retention_ms;
        defaults.retention_bytes = self.stream.retention_bytes;
        defaults.segment_bytes = self.stream.segment_bytes;
        defaults.max_message_bytes = self.stream.max_message_bytes;
        options.max_partitions = self.stream.max_partitions;
        options.group_initial_delay_ms = self.stream.group_initial_delay_ms;
        options
    }

    fn kafka_advertised(&self) -> anyhow::Result<Option<(String, u16)>> {
        if self.kafka.advertised.is_empty() {
            return Ok(None);
        }
        let (host, port) = self
            .kafka
            .advertised
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("kafka.advertised {:?} is not host:port", self.kafka.advertised))?;
        Ok(Some((host, port)))
    }

    pub fn kafka_config(&self) -> anyhow::Result<strata_kafka::KafkaConfig> {
        Ok(strata_kafka::KafkaConfig {
            advertised: self.kafka_advertised()?,
            max_request_bytes: self.kafka.max_request_bytes,
            max_wait_ms: self.kafka.max_wait_ms,
            auto_create_topics: self.kafka.auto_create_topics,
            default_partitions: self.kafka.default_partitions,
        })
    }

    pub fn search_config(&self) -> strata_search::SearchConfig {
        strata_search::SearchConfig {
            writer_threads: self.search.writer_threads,
            writer_memory_bytes: self.search.writer_memory_bytes,
            max_result_window: self.search.max_result_window,
            max_indices: self.search.max_indices,
            max_doc_bytes: self.search.max_doc_bytes,
            auto_create_index: self.search.auto_create_index,
        }
    }

    pub fn lock_config(&self) -> strata_lock::LockConfig {
        strata_lock::LockConfig {
            max_ttl: std::time::Duration::from_millis(self.lock.max_ttl_ms),
            max_wait: std::time::Duration::from_millis(self.lock.max_wait_ms),
            max_waiters: self.lock.max_waiters,
            max_resources: self.lock.max_resources,
            max_name_bytes: self.lock.max_name_bytes,
        }
    }

    pub fn proxy_config(&self) -> strata_proxy::ProxyConfig {
        strata_proxy::ProxyConfig {
            max_header_bytes: self.proxy.max_header_bytes,
            connect_timeout: std::time::Duration::from_millis(self.proxy.connect_timeout_ms),
            timeout: std::time::Duration::from_millis(self.proxy.timeout_ms),
            max_body_bytes: self.proxy.max_body_bytes,
            workers: self.proxy.workers,
            idle_timeout: std::time::Duration::from_millis(self.proxy.idle_timeout_ms),
            rate_limit_store: (!self.edge.rate_limit_store.is_empty())
                .then(|| self.edge.rate_limit_store.clone()),
            ..strata_proxy::ProxyConfig::default()
        }
    }

    pub fn es_config(&self) -> strata_es::EsConfig {
        strata_es::EsConfig {
            username: self.es.username.clone(),
            password: (!self.es.password.is_empty()).then(|| self.es.password.clone()),
            max_body_bytes: self.es.max_body_bytes,
            max_in_flight: self.es.max_in_flight,
            cluster_name: self.es.cluster_name.clone(),
        }
    }

    pub fn queue_limits(&self) -> strata_queue::Limits {
        strata_queue::Limits {
            max_message_bytes: self.queue.max_message_bytes,
            max_depth: self.queue.max_depth,
            max_total_messages: self.queue.max_total_messages,
            max_queues: self.queue.max_queues,
        }
    }

    pub fn sqs_config(&self) -> strata_sqs::SqsConfig {
        strata_sqs::SqsConfig {
            access_key: self.sqs.access_key.clone(),
            secret_key: self.sqs.secret_key.clone(),
            region: self.sqs.region.clone(),
            account_id: self.sqs.account_id.clone(),
            max_body_bytes: self.sqs.max_body_bytes,
            max_in_flight: self.sqs.max_in_flight,
        }
    }

    pub fn s3_config(&self) -> strata_s3::S3Config {
        strata_s3::S3Config {
            region: self.s3.region.clone(),
            domain: self.s3.domain.clone(),
            max_connections: self.s3.max_connections,
            max_xml_bytes: self.s3.max_xml_bytes,
            max_post_bytes: self.s3.max_post_bytes,
        }
    }

    /// Where presigned links point: `s3.public_endpoint`, else the s3 listen address.
    pub fn s3_endpoint(&self) -> String {
        if self.s3.public_endpoint.is_empty() {
            format!("http://{}", self.s3.listen)
        } else {
            self.s3.public_endpoint.trim_end_matches('/').to_owned()
        }
    }

    pub fn kv_limits(&self) -> strata_kv::Limits {
        strata_kv::Limits {
            max_namespace_bytes: self.kv.max_namespace_bytes,
            max_key_bytes: self.kv.max_key_bytes,
            max_value_bytes: self.kv.max_value_bytes,
            max_page: self.kv.max_page,
            max_batch_ops: self.kv.max_batch_ops,
        }
    }
}

/// Overlays `from` on `into`, table by table.
fn merge(into: &mut toml::Value, from: toml::Value) {
    match (into, from) {
        (toml::Value::Table(into), toml::Value::Table(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// Sets each leaf of `value` whose environment variable is present, parsed as the leaf's type.
fn apply_env(value: &mut toml::Value, name: &str, env: &[(String, String)]) -> anyhow::Result<()> {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table.iter_mut() {
                apply_env(child, &format!("{name}_{}", key.to_uppercase()), env)?;
            }
        }
        leaf => {
            if let Some((_, raw)) = env.iter().find(|(k, _)| k == name) {
                let bad =
                    || format!("environment variable {name}={raw:?} is not a valid {}", leaf.type_str());
                *leaf = match leaf {
                    toml::Value::Integer(_) => toml::Value::Integer(raw.parse().with_context(bad)?),
                    toml::Value::Boolean(_) => toml::Value::Boolean(raw.parse().with_context(bad)?),
                    toml::Value::Float(_) => toml::Value::Float(raw.parse().with_context(bad)?),
                    _ => toml::Value::String(raw.clone()),
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn defaults_work_with_no_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./strata-data"));
    }

    #[test]
    fn file_then_environment_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(
            &file,
            "[http]\nlisten = \"127.0.0.1:9999\"\nmax_body_bytes = 10\n[core]\nsync = \"periodic\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[("STRATA_HTTP_MAX_BODY_BYTES", "20"), ("STRATA_HTTP_ENABLED", "false"), ("OTHER", "x")]),
        )
        .unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:9999");
        assert_eq!(config.http.max_body_bytes, 20);
        assert!(!config.http.enabled);
        assert_eq!(config.core.sync, "periodic");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::load(None, env(&[("STRATA_HTTP_MAX_BODY_BYTES", "lots")])).unwrap_err();
        assert!(format!("{err:#}").contains("STRATA_HTTP_MAX_BODY_BYTES"));
        let err = Config::load(None, env(&[("STRATA_CORE_SYNC", "never")])).unwrap_err();
        assert!(format!("{err:#}").contains("core.sync"));
        let err = Config::load(None, env(&[("STRATA_S3_LISTEN", "0.0.0.0:9000")])).unwrap_err();
        assert!(format!("{err:#}").contains("s3.secret_key"));
        let err = Config::load(None, env(&[("STRATA_BLOB_BACKEND", "s3")])).unwrap_err();
        assert!(format!("{err:#}").contains("blob.remote_bucket"));
        let err = Config::load(None, env(&[("STRATA_HTTP_LISTEN", "0.0.0.0:8080")])).unwrap_err();
        assert!(format!("{err:#}").contains("api_key"));
        let ok =
            Config::load(None, env(&[("STRATA_HTTP_LISTEN", "0.0.0.0:8080"), ("STRATA_HTTP_API_KEY", "k")]));
        assert!(ok.is_ok());
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(&file, "[http]\nlisten_addr = \"x\"\n").unwrap();
        assert!(Config::load(Some(&file), env(&[])).is_err());
    }

    /// `strata.example.toml` documents every key with its default.
    #[test]
    fn example_file_lists_every_key_with_its_default() {
        let example = include_str!("../../../strata.example.toml");
        let example: toml::Value = toml::from_str(example).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        assert_eq!(example, defaults, "strata.example.toml is out of step with the defaults");
    }
}
