//! # strata-s3: the S3 front
//!
//! Serves the S3 REST API over the blob block, so aws-cli, boto3, s3cmd and every S3 SDK
//! work unchanged. [s3s](https://docs.rs/s3s) does the protocol: routing of path-style and
//! virtual-host-style requests, SigV4 (headers, `UNSIGNED-PAYLOAD`, aws-chunked streaming
//! bodies with trailers, presigned URLs, POST policies), XML bodies and S3 errors. This
//! crate adds what is Strata's:
//!
//! ```text
//!   socket ─► hyper ─► cors (preflight, Access-Control-* headers)
//!                        └─► s3s: route, verify SigV4 against `access::Keys`,
//!                                 authorize with `access::Policies` (blob::authorize)
//!                                 └─► `ops::Strata` (one method per S3 operation)
//!                                        └─► blob block, on blocking threads;
//!                                            bodies through `body`'s bounded channels
//! ```
//!
//! Errors are mapped to S3 codes in one function, `convert::s3_error`.
//!
//! ## Limitations
//!
//! - Browser form uploads (POST policies) are buffered, up to `max_post_bytes`, before they
//!   reach the block (`form.rs` reads their `acl` field, s3s the rest).
//! - Explicit ACL grants, lifecycle transitions, object lock, SSE and website hosting are
//!   not implemented (`NotImplemented`).

mod access;
mod body;
mod convert;
mod cors;
mod form;
mod lifecycle;
mod ops;

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_blob::Blob;
use tokio::net::TcpListener;

/// Settings of the s3 front.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The region clients sign for and buckets report (`us-east-1` by default).
    pub region: String,
    /// The base domain of virtual-host-style addressing: `<bucket>.<domain>`.
    pub domain: String,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Largest XML request body (CompleteMultipartUpload, DeleteObjects, policies).
    pub max_xml_bytes: usize,
    /// Largest browser form upload, which s3s buffers.
    pub max_post_bytes: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            domain: "localhost".into(),
            max_connections: 4096,
            max_xml_bytes: 4 * 1024 * 1024,
            max_post_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Path style unless the host is `<bucket>.<domain>`.
#[derive(Clone)]
pub(crate) struct Domain(Arc<str>);

impl Domain {
    /// The bucket a `Host` header names, for virtual-host-style requests.
    pub(crate) fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host });
        name.strip_suffix(&*self.0).and_then(|b| b.strip_suffix('.')).filter(|b| !b.is_empty())
    }
}

impl S3Host for Domain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

fn build_service(blob: Blob, config: &S3Config) -> s3s::service::S3Service {
    let mut builder =
        S3ServiceBuilder::new(ops::Strata { blob: blob.clone(), region: config.region.clone() });
    builder.set_auth(access::Keys(blob.clone()));
    builder.set_access(access::Policies(blob));
    builder.set_host(Domain(config.domain.as_str().into()));
    let mut s3s_config = s3s::config::S3Config::default();
    s3s_config.xml_max_body_size = config.max_xml_bytes;
    s3s_config.post_object_max_file_size = config.max_post_bytes;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(s3s_config))));
    builder.build()
}

/// Serves S3 on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (for up to 30 seconds).
pub async fn serve(
    listener: TcpListener,
    blob: Blob,
    config: S3Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let service = build_service(blob.clone(), &config);
    let domain = Domain(config.domain.as_str().into());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accepting an s3 connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!("s3 connection limit reached; refusing a connection");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (service, blob, domain) = (service.clone(), blob.clone(), domain.clone());
        let max_post = config.max_post_bytes;
        let handler = hyper::service::service_fn(move |req| {
            handle(service.clone(), blob.clone(), domain.clone(), max_post, req)
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), handler).into_owned());
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "s3 connection ended with an error");
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("s3 connections still open after 30 s; closing them");
    }
    Ok(())
}

/// One request: a form upload's ACL, CORS around s3s, and request metrics.
async fn handle(
    service: s3s::service::S3Service,
    blob: Blob,
    domain: Domain,
    max_post: u64,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    let started = Instant::now();
    let method = req.method().to_string();
    let response = match form::read_acl(req, max_post).await {
        Ok(req) => cors::around(service, blob, &domain, req).await,
        Err(refused) => Ok(refused),
    };
    if let Ok(response) = &response {
        metrics::counter!("strata_s3_requests_total", "method" => method.clone(), "status" => response.status().as_u16().to_string())
            .increment(1);
    }
    metrics::histogram!("strata_s3_request_seconds", "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
