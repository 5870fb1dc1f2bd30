//! Public objects served by the http front (`/blob/<bucket>/<key>`, the CDN's origin), driven
//! with reqwest against a server on port 0: objects held in core and objects in files alike.

use reqwest::StatusCode;
use std::sync::Arc;
use strata_blob::{Blob, CannedAcl, Limits, NewObject};
use strata_core::{Store, SystemClock};
use strata_http::{AppState, BlobApi};
use strata_kv::Kv;

mod common;

struct Server {
    base: String,
    blob: Blob,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { inline_max_bytes: 16, ..Limits::default() };
    let blob =
        Blob::open(Store::memory(), dir.path(), Arc::new(SystemClock), limits, ("root".into(), "s".into()));
    let blob = blob.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let kv = Kv::open(Store::memory(), Arc::new(SystemClock), strata_kv::Limits::default()).unwrap();
    let api =
        BlobApi { blob: blob.clone(), endpoint: "http://127.0.0.1:9".into(), region: "us-east-1".into() };
    let base = common::serve(AppState { blob: Some(api), ..common::state(kv, rx) }).await;
    Server { base, blob, _dir: dir, _shutdown: tx }
}

fn put(blob: &Blob, key: &str, data: &[u8], acl: CannedAcl) -> String {
    let mut writer = blob.object_writer(&[]);
    writer.write(data).unwrap();
    let new = NewObject { acl, ..NewObject::default() };
    blob.put_object("site", key, new, writer.finish().unwrap(), &[]).unwrap().quoted_etag()
}

/// Whole objects, ranges, conditional GETs and refusals answer the same whether the bytes
/// are held in core (read on the request's thread) or in a file (read on a blocking one).
#[tokio::test]
async fn public_objects_in_core_and_in_files() {
    let server = start().await;
    server.blob.create_bucket("site", "root").unwrap();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let small_etag = put(&server.blob, "small.txt", b"hello world", CannedAcl::PublicRead);
    let big_etag = put(&server.blob, "big.bin", &big, CannedAcl::PublicRead);
    put(&server.blob, "secret.txt", b"psst", CannedAcl::Private);
    let client = reqwest::Client::new();
    let get = |key: &str, header: Option<(&'static str, String)>| {
        let mut request = client.get(format!("{}/blob/site/{key}", server.base));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let (status, headers) = (response.status(), response.headers().clone());
            (status, headers, response.bytes().await.unwrap().to_vec())
        }
    };
    for (key, bytes, etag) in
        [("small.txt", &b"hello world"[..], &small_etag), ("big.bin", &big[..], &big_etag)]
    {
        let (status, headers, body) = get(key, None).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, bytes), "{key}");
        assert_eq!(headers["etag"], etag.as_str(), "{key}");
        let (status, headers, body) = get(key, Some(("range", "bytes=2-4".into()))).await;
        assert_eq!((status, body.as_slice()), (StatusCode::PARTIAL_CONTENT, &bytes[2..5]), "{key}");
        assert_eq!(headers["content-range"], format!("bytes 2-4/{}", bytes.len()).as_str(), "{key}");
        let (status, _, _) = get(key, Some(("if-none-match", etag.clone()))).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{key}");
        let (status, _, _) = get(key, Some(("range", format!("bytes={}-", bytes.len())))).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{key}");
    }
    assert_eq!(get("secret.txt", None).await.0, StatusCode::FORBIDDEN, "private by default");
    assert_eq!(get("missing.txt", None).await.0, StatusCode::FORBIDDEN, "strangers learn nothing");
}
