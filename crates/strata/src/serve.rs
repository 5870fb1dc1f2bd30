//! `strata serve`: open the store, bind every enabled front, run until a signal.
//!
//! Start-up fails fast and says why: a data directory held by another process, a port in use
//! (naming the setting that moves it). On SIGINT or SIGTERM the fronts stop accepting,
//! in-flight requests finish, and the store is closed with a final fsync.

use crate::config::{Config, LogConfig};
use anyhow::{Context, anyhow};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use strata_core::{Store, SystemClock};
use strata_kv::Kv;
use tokio::net::TcpListener;

pub fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(256)
        .thread_name("strata")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

/// Binds `addr` for the front whose listen setting is `setting`, with an error that names
/// both when the port is taken.
async fn bind(addr: &str, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|err| {
        let env = format!("STRATA_{}", setting.to_uppercase().replace('.', "_"));
        if err.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("port of {addr} is already in use; set {setting} (or {env}) to another address")
        } else {
            anyhow!("cannot listen on {addr} ({setting}): {err}")
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let core_dir = config.data_dir.join("core");
    let store = tokio::task::spawn_blocking({
        let options = config.store_options();
        move || Store::open(&core_dir, options)
    })
    .await?
    .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
    let kv = Kv::open(store.clone(), Arc::new(SystemClock), config.kv_limits())?;
    let blob = tokio::task::spawn_blocking({
        let (store, dir, limits) = (store.clone(), config.data_dir.join("blob"), config.blob_limits());
        let root = (config.s3.access_key.clone(), config.s3.secret_key.clone());
        let remote = config.blob_remote();
        move || match remote {
            Some(remote) => {
                strata_blob::Blob::open_remote(store, &dir, Arc::new(SystemClock), limits, root, &remote)
            }
            None => strata_blob::Blob::open(store, &dir, Arc::new(SystemClock), limits, root),
        }
    })
    .await?
    .map_err(|e| anyhow!("opening the blob block: {e}"))?;
    let queues = strata_queue::Queues::open(store.clone(), Arc::new(SystemClock), config.queue_limits())
        .map_err(|e| anyhow!("opening the queue block: {e}"))?;
    let streams = {
        let (store, options) = (store.clone(), config.stream_options());
        tokio::task::spawn_blocking(move || {
            strata_stream::Streams::open(store, Arc::new(SystemClock), options)
        })
        .await?
        .map_err(|e| anyhow!("opening the stream block: {e}"))?
    };
    let sql = strata_sql::Sql::open_with(store.clone(), config.sql_options())
        .map_err(|e| anyhow!("opening the sql block: {e}"))?;
    let search = {
        let (store, dir, search_config) =
            (store.clone(), config.data_dir.join("search"), config.search_config());
        tokio::task::spawn_blocking(move || strata_search::Search::open(store, Some(dir), search_config))
            .await?
            .map_err(|e| anyhow!("opening the search block: {e}"))?
    };
    search.attach(Arc::new(crate::search_sources::SqlTables(sql.clone())));
    let locks = {
        let (store, lock_config) = (store.clone(), config.lock_config());
        tokio::task::spawn_blocking(move || strata_lock::Locks::open(store, lock_config))
            .await?
            .map_err(|e| anyhow!("opening the lock block: {e}"))?
    };
    let edge = {
        let journal = crate::edge_journal::CoreJournal::open(store.clone())?;
        let routes = config.edge.routes.clone();
        tokio::task::spawn_blocking(move || {
            strata_edge::Edge::with_journal(routes, std::sync::Arc::new(journal))
        })
        .await?
        .map_err(|e| anyhow!("edge.routes: {e}"))?
    };
    let views = strata_stream::views::Views::new(streams.clone());
    views.set_sink(Arc::new(crate::view_sink::SqlSink::new(&sql)));
    // Bound before the http front starts, so that presigned links name the real address.
    let s3_listener = match config.s3.enabled {
        true => Some(bind(&config.s3.listen, "s3.listen").await?),
        false => None,
    };
    let s3_endpoint = match &s3_listener {
        Some(listener) if config.s3.public_endpoint.is_empty() => {
            format!("http://{}", listener.local_addr()?)
        }
        _ => config.s3_endpoint(),
    };
    let metrics = strata_http::metrics_handle();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    let mut fronts = tokio::task::JoinSet::new();
    if config.http.enabled {
        let listener = bind(&config.http.listen, "http.listen").await?;
        let addr = listener.local_addr()?;
        let state = strata_http::AppState {
            kv: kv.clone(),
            views: Some(views.clone()),
            locks: Some(locks.clone()),
            edge: Some(edge.clone()),
            blob: Some(strata_http::BlobApi {
                blob: blob.clone(),
                endpoint: s3_endpoint.clone(),
                region: config.s3.region.clone(),
            }),
            metrics,
            max_body_bytes: config.http.max_body_bytes,
            api_key: (!config.http.api_key.is_empty()).then(|| config.http.api_key.clone()),
            shutdown: shutdown_rx.clone(),
        };
        start_front(
            &mut fronts,
            "http",
            addr,
            strata_http::serve(listener, state, until_shutdown(&shutdown_rx)),
        );
    }
    if config.proxy.enabled {
        let listener = bind(&config.proxy.listen, "proxy.listen").await?;
        let addr = listener.local_addr()?;
        let log = strata_proxy::AccessLog::open(&config.edge.access_log)
            .with_context(|| format!("opening edge.access_log {:?}", config.edge.access_log))?;
        start_front(
            &mut fronts,
            "proxy",
            addr,
            strata_proxy::serve(
                listener,
                edge.clone(),
                config.proxy_config(),
                log,
                until_shutdown(&shutdown_rx),
            ),
        );
    }
    for tcp in &config.edge.tcp {
        let listener = bind(&tcp.listen, "edge.tcp listen").await?;
        let addr = listener.local_addr()?;
        let pool =
            Arc::new(strata_edge::balance::Pool::new(&tcp.upstreams, tcp.balance, None, Default::default()));
        let timeout = Duration::from_millis(config.proxy.connect_timeout_ms);
        fronts.spawn({
            let check = tcp.health_check.clone();
            let server =
                strata_proxy::serve_tcp(listener, pool, timeout, check, until_shutdown(&shutdown_rx));
            let name = tcp.name.clone();
            async move { server.await.with_context(|| format!("edge.tcp {name}")) }
        });
        tracing::info!(%addr, name = %tcp.name, "tcp balancer listening");
        println!("strata: tcp {} listening on {addr}", tcp.name);
    }
    if config.pg.enabled {
        let listener = bind(&config.pg.listen, "pg.listen").await?;
        let addr = listener.local_addr()?;
        let pg = strata_pg::PgConfig {
            user: config.pg.user.clone(),
            password: (!config.pg.password.is_empty()).then(|| config.pg.password.clone()),
            max_connections: config.pg.max_connections,
        };
        start_front(
            &mut fronts,
            "pg",
            addr,
            strata_pg::serve(listener, sql.clone(), pg, until_shutdown(&shutdown_rx)),
        );
    }
    if config.resp.enabled {
        let listener = bind(&config.resp.listen, "resp.listen").await?;
        let addr = listener.local_addr()?;
        let mut options = config.cache_options();
        options.tcp_port = addr.port();
        let cache = if config.cache.persistence == "log" {
            let store = store.clone();
            tokio::task::spawn_blocking(move || {
                strata_cache::Cache::open_persistent(options, Arc::new(SystemClock), store)
            })
            .await?
            .map_err(|e| anyhow!("loading the cache from its log: {e}"))?
        } else {
            strata_cache::Cache::new(options, Arc::new(SystemClock))
        };
        tokio::spawn(expire_cache(
            cache.clone(),
            Duration::from_millis(1000 / config.cache.hz),
            shutdown_rx.clone(),
        ));
        let resp = config.resp_config();
        start_front(
            &mut fronts,
            "resp",
            addr,
            strata_resp::serve(listener, cache, Some(locks.clone()), resp, until_shutdown(&shutdown_rx)),
        );
    }
    if let Some(listener) = s3_listener {
        let addr = listener.local_addr()?;
        let (blob, s3) = (blob.clone(), config.s3_config());
        start_front(
            &mut fronts,
            "s3",
            addr,
            strata_s3::serve(listener, blob, s3, until_shutdown(&shutdown_rx)),
        );
    }
    if config.sqs.enabled {
        let listener = bind(&config.sqs.listen, "sqs.listen").await?;
        let addr = listener.local_addr()?;
        let (queues, sqs) = (queues.clone(), config.sqs_config());
        start_front(
            &mut fronts,
            "sqs",
            addr,
            strata_sqs::serve(listener, queues, sqs, until_shutdown(&shutdown_rx)),
        );
    }
    if config.kafka.enabled {
        let listener = bind(&config.kafka.listen, "kafka.listen").await?;
        let addr = listener.local_addr()?;
        let (streams, kafka) = (streams.clone(), config.kafka_config()?);
        start_front(
            &mut fronts,
            "kafka",
            addr,
            strata_kafka::serve(listener, streams, kafka, until_shutdown(&shutdown_rx)),
        );
    }
    if config.es.enabled {
        let listener = bind(&config.es.listen, "es.listen").await?;
        let addr = listener.local_addr()?;
        let (search, es) = (search.clone(), config.es_config());
        start_front(
            &mut fronts,
            "es",
            addr,
            strata_es::serve(listener, search, es, until_shutdown(&shutdown_rx)),
        );
    }
    tokio::spawn(every(
        "publishing search metrics",
        Duration::from_millis(config.search.metrics_interval_ms),
        shutdown_rx.clone(),
        {
            let search = search.clone();
            move || {
                search.publish_metrics();
                Ok::<(), std::convert::Infallible>(())
            }
        },
    ));
    tokio::spawn(every("publishing lock metrics", Duration::from_secs(1), shutdown_rx.clone(), {
        let locks = locks.clone();
        move || {
            locks.publish_metrics();
            Ok::<(), std::convert::Infallible>(())
        }
    }));
    // Retention and compaction of stream segments, and partition offsets and group lag.
    tokio::spawn(every(
        "stream retention and compaction",
        Duration::from_millis(config.stream.maintenance_interval_ms),
        shutdown_rx.clone(),
        {
            let streams = streams.clone();
            move || {
                let done = streams.maintain();
                streams.publish_metrics()?;
                done
            }
        },
    ));
    tokio::spawn(run_views(
        views,
        Duration::from_millis(config.stream.views_interval_ms),
        shutdown_rx.clone(),
    ));
    // Deletes queue messages past their retention, and publishes queue depths.
    tokio::spawn(every(
        "expiring queue messages",
        Duration::from_millis(config.queue.sweep_interval_ms),
        shutdown_rx.clone(),
        {
            let queues = queues.clone();
            move || {
                let expired = queues.expire(1000);
                queues.publish_metrics();
                expired
            }
        },
    ));
    tokio::spawn(every(
        "applying blob lifecycle rules",
        Duration::from_secs(config.blob.lifecycle_interval_secs.max(1)),
        shutdown_rx.clone(),
        {
            let blob = blob.clone();
            move || blob.sweep_lifecycle()
        },
    ));
    tokio::spawn(every(
        "expiring keys",
        Duration::from_millis(config.kv.sweep_interval_ms),
        shutdown_rx.clone(),
        {
            let kv = kv.clone();
            move || kv.sweep_expired(1000)
        },
    ));
    tracing::info!(data_dir = %config.data_dir.display(), sync = %config.core.sync, "strata is up");

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down: finishing in-flight requests"),
        Some(result) = fronts.join_next() => {
            result??;
            return Err(anyhow!("a front stopped unexpectedly"));
        }
    }
    let _ = shutdown_tx.send(true);
    while let Some(result) = fronts.join_next().await {
        result??;
    }
    drop(kv);
    drop(blob);
    drop(queues);
    drop(streams);
    tokio::task::spawn_blocking(move || store.sync()).await??;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Advances the stream block's windowed views every `interval` until shutdown.
async fn run_views(
    views: strata_stream::views::Views,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if let Err(err) = views.step().await {
            tracing::warn!(%err, "advancing stream views failed");
        }
    }
}

/// Runs one front's server among `fronts` and announces where it listens.
fn start_front(
    fronts: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    name: &'static str,
    addr: std::net::SocketAddr,
    server: impl Future<Output = std::io::Result<()>> + Send + 'static,
) {
    fronts.spawn(async move { server.await.with_context(|| format!("{name} front")) });
    tracing::info!(%addr, "{name} front listening");
    println!("strata: {name} listening on {addr}");
}

/// Completes when the server starts shutting down.
fn until_shutdown(
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let mut stop = shutdown.clone();
    async move {
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// Runs `work` on a blocking thread every `interval` until shutdown; `what` names it in logs.
async fn every<T, E>(
    what: &'static str,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    work: impl Fn() -> Result<T, E> + Clone + Send + 'static,
) where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        match tokio::task::spawn_blocking(work.clone()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(%err, "{what} failed"),
            Err(err) => tracing::error!(%err, "{what} panicked"),
        }
    }
}

/// Redis's active expiry: a sampling round `hz` times a second; metrics are published with it.
async fn expire_cache(
    cache: strata_cache::Cache,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        cache.active_expire();
        cache.publish_metrics();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
