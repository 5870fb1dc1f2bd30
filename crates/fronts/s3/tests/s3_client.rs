//! The s3 front driven by independently written S3 clients: `object_store`'s AWS backend
//! for data operations and presigned URLs, and requests signed by AWS's own `aws-sigv4`
//! for bucket configuration, policies and bad input.

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use strata_blob::{Blob, Limits};
use strata_core::{Store, SystemClock};

const ROOT: (&str, &str) = ("strata", "strata-secret");

struct Server {
    addr: SocketAddr,
    blob: Blob,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core"), strata_core::Options::default()).unwrap();
    let blob = Blob::open(
        store,
        &dir.path().join("blob"),
        Arc::new(SystemClock),
        limits,
        (ROOT.0.into(), ROOT.1.into()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = blob.clone();
    tokio::spawn(async move {
        strata_s3::serve(listener, served, strata_s3::S3Config::default(), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server { addr, blob, _dir: dir, _stop: stop }
}

fn client(server: &Server, bucket: &str, key: (&str, &str)) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", server.addr))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .with_access_key_id(key.0)
        .with_secret_access_key(key.1)
        .build()
        .unwrap()
}

/// Sends a request signed with SigV4 by AWS's signer (payload hash in x-amz-content-sha256).
async fn signed(
    server: &Server,
    key: (&str, &str),
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> (u16, String, reqwest::header::HeaderMap) {
    signed_with(server, key, method, path_and_query, body, &[], None).await
}

/// As [`signed`], with extra signed headers and, when `payload_hash` is set, that value as
/// `x-amz-content-sha256` instead of the body's digest (for aws-chunked bodies).
async fn signed_with(
    server: &Server,
    key: (&str, &str),
    method: &str,
    path_and_query: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    payload_hash: Option<&str>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let payload = match payload_hash {
        Some(hash) => SignableBody::Precomputed(hash.to_owned()),
        None => SignableBody::Bytes(body),
    };
    let (headers, _) = sign_headers(server, key, method, path_and_query, extra, payload);
    send(server, method, path_and_query, body.to_vec(), &headers).await
}

/// The headers (extra ones included) that sign a request, and its signature.
fn sign_headers(
    server: &Server,
    key: (&str, &str),
    method: &str,
    path_and_query: &str,
    extra: &[(&str, &str)],
    payload: SignableBody<'_>,
) -> (Vec<(String, String)>, String) {
    let url = format!("http://{}{path_and_query}", server.addr);
    let identity = aws_credential_types::Credentials::new(key.0, key.1, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let host = server.addr.to_string();
    let mut headers = vec![("host", host.as_str())];
    if extra.iter().any(|(name, _)| *name == "host") {
        headers.clear(); // a virtual-host-style request signs the Host it names
    }
    headers.extend_from_slice(extra);
    let signable = SignableRequest::new(method, &url, headers.iter().copied(), payload).unwrap();
    let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method(method).uri(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut out: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (name, value) in request.headers() {
        if name != "host" {
            out.push((name.to_string(), value.to_str().unwrap().to_owned()));
        }
    }
    (out, signature)
}

async fn send(
    server: &Server,
    method: &str,
    path_and_query: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> (u16, String, reqwest::header::HeaderMap) {
    let url = format!("http://{}{path_and_query}", server.addr);
    let mut builder = reqwest::Client::new().request(method.parse().unwrap(), &url).body(body);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.unwrap(), headers)
}

async fn create_bucket(server: &Server, key: (&str, &str), bucket: &str) {
    let (status, body, _) = signed(server, key, "PUT", &format!("/{bucket}"), b"").await;
    assert_eq!(status, 200, "{body}");
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_client_puts_gets_lists_copies_and_deletes() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "data").await;
    let store = client(&server, "data", ROOT);

    let small = Path::from("notes/hello.txt");
    let put = store.put(&small, PutPayload::from_static(b"hello world")).await.unwrap();
    assert_eq!(put.e_tag.as_deref(), Some("\"5eb63bbbe01eeed093cb22bb8f5acdc3\""));
    let big = pattern(300_000, 1);
    let big_path = Path::from("blobs/big.bin");
    store.put(&big_path, PutPayload::from(big.clone())).await.unwrap();

    assert_eq!(store.get(&small).await.unwrap().bytes().await.unwrap().as_ref(), b"hello world");
    assert_eq!(store.get(&big_path).await.unwrap().bytes().await.unwrap().as_ref(), &big[..]);
    assert_eq!(store.get_range(&big_path, 1000..2000).await.unwrap().as_ref(), &big[1000..2000]);
    let head = store.head(&big_path).await.unwrap();
    assert_eq!(head.size, 300_000);

    // Multipart: two parts of 5 MiB and a short last one, through object_store's writer.
    let mp_path = Path::from("blobs/multipart.bin");
    let data = pattern(11 * 1024 * 1024 + 123, 7);
    let upload = store.put_multipart(&mp_path).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    writer.write(&data);
    writer.finish().await.unwrap();
    let meta = store.head(&mp_path).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert!(meta.e_tag.unwrap().ends_with("-3\""), "multipart ETag has the -N form");
    assert_eq!(store.get(&mp_path).await.unwrap().bytes().await.unwrap().as_ref(), &data[..]);
    let range = 5 * 1024 * 1024 - 10..5 * 1024 * 1024 + 10;
    assert_eq!(
        store.get_range(&mp_path, range.start as u64..range.end as u64).await.unwrap().as_ref(),
        &data[range]
    );

    // Listing: recursive with a prefix, and one level with the delimiter.
    let listed: Vec<_> = store.list(Some(&Path::from("blobs"))).try_collect().await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|m| m.location.to_string()).collect();
    names.sort();
    assert_eq!(names, ["blobs/big.bin", "blobs/multipart.bin"]);
    let top = store.list_with_delimiter(None).await.unwrap();
    let mut prefixes: Vec<_> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["blobs", "notes"]);

    // Keys that need escaping come back percent-encoded when the client asks for
    // `encoding-type=url`, as aws-cli does, and raw otherwise.
    store.put(&Path::from("odd/a b+c.txt"), PutPayload::from_static(b"odd")).await.unwrap();
    let (status, body, _) =
        signed(&server, ROOT, "GET", "/data?list-type=2&prefix=odd%2F&encoding-type=url", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Key>odd/a%20b%2Bc.txt</Key>"), "{body}");
    let (_, body, _) = signed(&server, ROOT, "GET", "/data?list-type=2&prefix=odd%2F", b"").await;
    assert!(body.contains("<Key>odd/a b+c.txt</Key>"), "{body}");
    store.delete(&Path::from("odd/a b+c.txt")).await.unwrap();

    // Copy, then delete the source: the copy keeps the bytes.
    let copy = Path::from("copies/big.bin");
    store.copy(&big_path, &copy).await.unwrap();
    store.delete(&big_path).await.unwrap();
    assert!(matches!(store.get(&big_path).await, Err(object_store::Error::NotFound { .. })));
    assert_eq!(store.get(&copy).await.unwrap().bytes().await.unwrap().as_ref(), &big[..]);
}

/// Canned ACLs: `x-amz-acl: public-read` on a write (or PutObjectAcl) lets unsigned requests
/// read that object, as `aws s3 cp --acl public-read` expects; a copy does not inherit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canned_acls_make_single_objects_public() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "site").await;
    let anonymous = |key: &str| {
        let url = format!("http://{}/site/{key}", server.addr);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    let public = [("x-amz-acl", "public-read")];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/site/index.html", b"<h1>hi</h1>", &public, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = signed(&server, ROOT, "PUT", "/site/secret.txt", b"psst").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anonymous("index.html").await, 200);
    assert_eq!(
        reqwest::get(format!("http://{}/site/index.html", server.addr)).await.unwrap().text().await.unwrap(),
        "<h1>hi</h1>"
    );
    assert_eq!(anonymous("secret.txt").await, 403, "private by default");

    let (status, acl, _) = signed(&server, ROOT, "GET", "/site/index.html?acl", b"").await;
    assert_eq!(status, 200, "{acl}");
    assert!(acl.contains("global/AllUsers") && acl.contains("<Permission>READ</Permission>"), "{acl}");
    assert!(acl.contains("<Permission>FULL_CONTROL</Permission>"), "{acl}");
    let (_, acl, _) = signed(&server, ROOT, "GET", "/site/secret.txt?acl", b"").await;
    assert!(!acl.contains("AllUsers"), "{acl}");

    // PutObjectAcl both ways.
    let private = [("x-amz-acl", "private")];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/site/index.html?acl", b"", &private, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anonymous("index.html").await, 403);
    let (status, _, _) = signed_with(&server, ROOT, "PUT", "/site/secret.txt?acl", b"", &public, None).await;
    assert_eq!(status, 200);
    assert_eq!(anonymous("secret.txt").await, 200);

    // A copy has the ACL its own request gives.
    let source = [("x-amz-copy-source", "/site/secret.txt")];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/site/copy.txt", b"", &source, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(anonymous("copy.txt").await, 403);
    let both = [("x-amz-copy-source", "/site/secret.txt"), ("x-amz-acl", "public-read")];
    signed_with(&server, ROOT, "PUT", "/site/copy2.txt", b"", &both, None).await;
    assert_eq!(anonymous("copy2.txt").await, 200);

    // What cannot be honoured is refused, not ignored.
    let bucket_only = [("x-amz-acl", "log-delivery-write")];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/site/x", b"x", &bucket_only, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidArgument</Code>"), "{body}");
    let grant = [("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")];
    let by_mail = [("x-amz-grant-read", "emailAddress=\"ann@example.com\"")];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/site/x", b"x", &by_mail, None).await;
    assert_eq!(status, 501, "{body}");
    let (status, _, _) = signed(&server, ROOT, "HEAD", "/site/x", b"").await;
    assert_eq!(status, 404, "nothing stored");
    let (status, acl, _) = signed(&server, ROOT, "GET", "/site?acl", b"").await;
    assert!(status == 200 && acl.contains("FULL_CONTROL") && !acl.contains("AllUsers"), "{acl}");
    let (status, _, _) = signed_with(&server, ROOT, "PUT", "/site?acl", b"", &private, None).await;
    assert_eq!(status, 200);
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/site?acl", b"", &public, None).await;
    assert_eq!(status, 501, "a public bucket ACL is refused: {body}");
    let (status, _, _) = signed_with(&server, ROOT, "PUT", "/open", b"", &public, None).await;
    assert_eq!(status, 501);
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/granted", b"", &grant, None).await;
    assert_eq!(status, 501, "a grant on CreateBucket is refused: {body}");
    let (status, _, _) = signed(&server, ROOT, "HEAD", "/granted", b"").await;
    assert_eq!(status, 404, "and the bucket is not created");
}

/// A browser form upload (POST policy signed with SigV4, as `generate_presigned_post` makes
/// it): its `acl` field makes the object public; a grant field is refused.
#[tokio::test]
async fn form_uploads_take_a_canned_acl_field() {
    use hmac::{KeyInit, Mac};
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "forms").await;
    let hmac = |key: &[u8], data: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let now = time::OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let credential = format!("{}/{date}/us-east-1/s3/aws4_request", ROOT.0);
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let post = |key: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let mut conditions = vec![
            serde_json::json!({"bucket": "forms"}),
            serde_json::json!({"key": key}),
            serde_json::json!({"x-amz-algorithm": "AWS4-HMAC-SHA256"}),
            serde_json::json!({"x-amz-credential": credential}),
            serde_json::json!({"x-amz-date": amz_date}),
        ];
        conditions.extend(extra.iter().map(|(k, v)| serde_json::json!({*k: *v})));
        let end = now + time::Duration::minutes(5);
        let expiration = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            end.year(),
            u8::from(end.month()),
            end.day(),
            end.hour(),
            end.minute(),
            end.second()
        );
        let policy = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            serde_json::json!({"expiration": expiration, "conditions": conditions}).to_string(),
        );
        let signing_key = ["us-east-1", "s3", "aws4_request"]
            .iter()
            .fold(hmac(format!("AWS4{}", ROOT.1).as_bytes(), &date), |key, part| hmac(&key, part));
        let signature = hex::encode(hmac(&signing_key, &policy));
        let mut form = reqwest::multipart::Form::new()
            .text("key", key)
            .text("x-amz-algorithm", "AWS4-HMAC-SHA256")
            .text("x-amz-credential", credential.clone())
            .text("x-amz-date", amz_date.clone());
        for (k, v) in extra {
            form = form.text(k, v);
        }
        let form = form
            .text("policy", policy)
            .text("x-amz-signature", signature)
            .part("file", reqwest::multipart::Part::bytes(b"from a form".to_vec()).file_name("f.txt"));
        let url = format!("http://{}/forms", server.addr);
        async move { reqwest::Client::new().post(url).multipart(form).send().await.unwrap().status().as_u16() }
    };
    let anonymous = |key: &str| {
        let url = format!("http://{}/forms/{key}", server.addr);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };

    assert_eq!(post("private.txt", vec![]).await, 204);
    assert_eq!(anonymous("private.txt").await, 403, "private by default");
    assert_eq!(post("public.txt", vec![("acl", "public-read")]).await, 204);
    assert_eq!(anonymous("public.txt").await, 200, "the form's acl field is honoured");
    let all_users = "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"";
    assert_eq!(post("granted.txt", vec![("x-amz-grant-read", all_users)]).await, 501);
    let (status, _, _) = signed(&server, ROOT, "HEAD", "/forms/granted.txt", b"").await;
    assert_eq!(status, 404, "a refused form stores nothing");
}

/// `?partNumber=` reads one part of a multipart object (as parallel downloaders do), with a
/// 206, its Content-Range and the part count; part 1 of a single PUT is the whole object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_by_part_number() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "parts").await;
    let store = client(&server, "parts", ROOT);
    const PART: usize = 5 * 1024 * 1024;
    let upload = store.put_multipart(&Path::from("three")).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    for (letter, len) in [(b'a', PART), (b'b', PART), (b'c', 100)] {
        writer.write(&vec![letter; len]);
    }
    writer.finish().await.unwrap();
    let size = 2 * PART + 100;

    let (status, body, headers) = signed(&server, ROOT, "GET", "/parts/three?partNumber=2", b"").await;
    assert_eq!(status, 206);
    assert!(body.len() == PART && body.bytes().all(|b| b == b'b'), "part 2 is the b's");
    assert_eq!(headers["content-range"], format!("bytes {PART}-{}/{size}", 2 * PART - 1).as_str());
    assert_eq!(headers["x-amz-mp-parts-count"], "3");
    assert!(headers["etag"].to_str().unwrap().ends_with("-3\""));
    let (status, _, headers) = signed(&server, ROOT, "HEAD", "/parts/three?partNumber=3", b"").await;
    assert_eq!((status, headers["content-length"].to_str().unwrap()), (200, "100"));
    assert_eq!(headers["content-range"], format!("bytes {}-{}/{size}", 2 * PART, size - 1).as_str());

    // A single PUT is one part.
    store.put(&Path::from("one"), PutPayload::from_static(b"whole")).await.unwrap();
    let (status, body, _) = signed(&server, ROOT, "GET", "/parts/one?partNumber=1", b"").await;
    assert_eq!((status, body.as_str()), (206, "whole"));

    // Parts it does not have, and a part number with a Range, are S3's errors.
    for (path, code, want) in [
        ("/parts/three?partNumber=4", "InvalidPartNumber", 416),
        ("/parts/one?partNumber=2", "InvalidPartNumber", 416),
        ("/parts/three?partNumber=0", "InvalidArgument", 400),
    ] {
        let (status, body, _) = signed(&server, ROOT, "GET", path, b"").await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{path}: {body}");
    }
    let (status, body, _) =
        signed_with(&server, ROOT, "GET", "/parts/three?partNumber=1", b"", &[("range", "bytes=0-9")], None)
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flexible_checksums_are_verified_and_returned() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "sums").await;
    let store = AmazonS3Builder::new()
        .with_endpoint(format!("http://{}", server.addr))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name("sums")
        .with_access_key_id(ROOT.0)
        .with_secret_access_key(ROOT.1)
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
        .build()
        .unwrap();
    store.put(&Path::from("k"), PutPayload::from_static(b"checked")).await.unwrap();
    let meta = server.blob.head_object("sums", "k", None).unwrap();
    assert_eq!(
        meta.checksums.get(strata_blob::ChecksumAlgorithm::Sha256),
        Some("5ho9eMZRM8cmDEPnGdl8RuFr1Qxk7ngAU2zxTGQHphc=")
    );
    // A wrong checksum header is BadDigest.
    let url = format!("http://{}/sums/bad", server.addr);
    let presigned =
        store.signed_url(http::Method::PUT, &Path::from("bad"), Duration::from_secs(60)).await.unwrap();
    assert!(presigned.as_str().starts_with(&url));
    let response = reqwest::Client::new()
        .put(presigned.as_str())
        .header("x-amz-checksum-crc32", "AAAAAA==")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("<Code>BadDigest</Code>"));
}

/// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: an aws-chunked body whose every chunk is signed,
/// each signature chained to the one before, starting from the request's (AWS's scheme,
/// "Signature Calculations for the Authorization Header: Transferring Payload in Multiple
/// Chunks"). The request is signed by `aws-sigv4`; the chunk chain is computed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_aws_chunked_bodies_are_verified_chunk_by_chunk() {
    use hmac::{KeyInit, Mac};
    use sha2::{Digest, Sha256};
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "signed").await;
    let data = pattern(200_000, 5);
    let chunks: Vec<&[u8]> = data.chunks(65_536).collect();
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    };
    let upload = |tamper: bool| {
        let decoded = data.len().to_string();
        let extra = [("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", decoded.as_str())];
        let payload = SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into());
        let (headers, seed) = sign_headers(&server, ROOT, "PUT", "/signed/chunked.bin", &extra, payload);
        let amz_date = headers.iter().find(|(k, _)| k == "x-amz-date").unwrap().1.clone();
        let scope = format!("{}/us-east-1/s3/aws4_request", &amz_date[..8]);
        let mut key = hmac(format!("AWS4{}", ROOT.1).as_bytes(), &amz_date.as_bytes()[..8]);
        for part in ["us-east-1", "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let empty = hex::encode(Sha256::digest(b""));
        let (mut body, mut previous) = (Vec::new(), seed);
        for chunk in chunks.iter().copied().chain(std::iter::once(&[][..])) {
            let to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}",
                hex::encode(Sha256::digest(chunk))
            );
            let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
            body.extend(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).into_bytes());
            body.extend_from_slice(chunk);
            body.extend(b"\r\n");
            previous = signature;
        }
        if tamper {
            let at = body.len() / 2;
            body[at] ^= 1;
        }
        (body, headers)
    };
    let (body, headers) = upload(false);
    let (status, text, _) = send(&server, "PUT", "/signed/chunked.bin", body, &headers).await;
    assert_eq!(status, 200, "{text}");
    let (_, _, got) = signed(&server, ROOT, "HEAD", "/signed/chunked.bin", b"").await;
    assert_eq!(got["content-length"], data.len().to_string().as_str());
    let store = client(&server, "signed", ROOT);
    assert_eq!(
        store.get(&Path::from("chunked.bin")).await.unwrap().bytes().await.unwrap().as_ref(),
        &data[..]
    );
    // One flipped byte breaks its chunk's signature: refused, and nothing is stored.
    let (body, headers) = upload(true);
    store.delete(&Path::from("chunked.bin")).await.unwrap();
    let (status, text, _) = send(&server, "PUT", "/signed/chunked.bin", body, &headers).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(store.head(&Path::from("chunked.bin")).await.is_err());
}

/// Virtual-host-style addressing: the bucket in the Host header (`<bucket>.localhost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_style_requests_name_the_bucket_in_the_host() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "vhost").await;
    let host = format!("vhost.localhost:{}", server.addr.port());
    let extra = [("host", host.as_str())];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/greeting.txt", b"hi there", &extra, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = signed_with(&server, ROOT, "GET", "/greeting.txt", b"", &extra, None).await;
    assert_eq!((status, body.as_str()), (200, "hi there"));
    let (status, body, _) = signed_with(&server, ROOT, "GET", "/?list-type=2", b"", &extra, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Key>greeting.txt</Key>"), "{body}");
    // The same object, path style.
    let (_, body, _) = signed(&server, ROOT, "GET", "/vhost/greeting.txt", b"").await;
    assert_eq!(body, "hi there");
}

/// The framing current SDKs use for uploads: an aws-chunked body whose checksum comes in a
/// trailer after the data (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_chunked_bodies_with_checksum_trailers() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "chunked").await;
    let upload = |crc: &'static str| {
        let body = format!("b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n");
        let headers = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "11"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ];
        let server = &server;
        async move {
            signed_with(
                server,
                ROOT,
                "PUT",
                "/chunked/greeting",
                body.as_bytes(),
                &headers,
                Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            )
            .await
        }
    };
    // CRC32("hello world") = 0x0d4a1185.
    let (status, body, headers) = upload("DUoRhQ==").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-amz-checksum-crc32"], "DUoRhQ==");
    let meta = server.blob.head_object("chunked", "greeting", None).unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(meta.checksums.get(strata_blob::ChecksumAlgorithm::Crc32), Some("DUoRhQ=="));
    let (_, text, _) = signed(&server, ROOT, "GET", "/chunked/greeting", b"").await;
    assert_eq!(text, "hello world");
    let (status, body, _) = upload("AAAAAA==").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>BadDigest</Code>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_work_until_they_expire() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "links").await;
    let store = client(&server, "links", ROOT);
    let http = reqwest::Client::new();
    let path = Path::from("shared/report.pdf");
    let put_url = store.signed_url(http::Method::PUT, &path, Duration::from_secs(300)).await.unwrap();
    let response = http.put(put_url.as_str()).body("the report").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let get_url = store.signed_url(http::Method::GET, &path, Duration::from_secs(300)).await.unwrap();
    let response = http.get(get_url.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "the report");
    // Our own link (what `strata blob presign` prints) works the same way.
    let endpoint = format!("http://{}", server.addr);
    let link = strata_blob::Link {
        method: "GET",
        endpoint: &endpoint,
        region: "us-east-1",
        bucket: "links",
        key: "shared/report.pdf",
        expires_secs: 60,
        access_key: None,
    };
    let ours = server.blob.presign(&link).unwrap();
    assert_eq!(http.get(&ours).send().await.unwrap().text().await.unwrap(), "the report");
    // A tampered link is refused.
    let tampered = get_url.as_str().replace("report.pdf", "other.pdf");
    let response = http.get(&tampered).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("SignatureDoesNotMatch"));
    // After expiry, it is refused.
    let short = store.signed_url(http::Method::GET, &path, Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = http.get(short.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("<Code>AccessDenied</Code>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_s3_errors() {
    let server = start(Limits { max_object_bytes: 1024 * 1024, ..Limits::default() }).await;
    create_bucket(&server, ROOT, "strict").await;
    let expect = |(status, body, _): (u16, String, _), want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "wanted {code}: {body}");
    };
    // Encryption with a KMS or customer key is refused, not silently skipped, and nothing
    // is stored.
    for sse in [
        ("x-amz-server-side-encryption", "aws:kms"),
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
    ] {
        expect(
            signed_with(&server, ROOT, "PUT", "/strict/sse", b"secret", &[sse], None).await,
            501,
            "NotImplemented",
        );
        expect(
            signed_with(&server, ROOT, "POST", "/strict/sse-mp?uploads", b"", &[sse], None).await,
            501,
            "NotImplemented",
        );
    }
    expect(signed(&server, ROOT, "GET", "/strict/sse", b"").await, 404, "NoSuchKey");
    expect(
        signed(&server, (ROOT.0, "wrong-secret"), "GET", "/strict/x", b"").await,
        403,
        "SignatureDoesNotMatch",
    );
    expect(signed(&server, ("NOBODY", "x"), "GET", "/strict/x", b"").await, 403, "InvalidAccessKeyId");
    expect(signed(&server, ROOT, "PUT", "/Bad_Name", b"").await, 400, "InvalidBucketName");
    expect(signed(&server, ROOT, "GET", "/strict/missing", b"").await, 404, "NoSuchKey");
    expect(signed(&server, ROOT, "GET", "/nobucket/missing", b"").await, 404, "NoSuchBucket");
    expect(
        signed(&server, ROOT, "PUT", "/strict/big", &vec![0u8; 1024 * 1024 + 1]).await,
        400,
        "EntityTooLarge",
    );
    // Unsigned requests to a private bucket are denied.
    let response = reqwest::get(format!("http://{}/strict/x", server.addr)).await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("AccessDenied"));
    // A range past the end is 416 InvalidRange.
    let store = client(&server, "strict", ROOT);
    store.put(&Path::from("ten"), PutPayload::from_static(b"0123456789")).await.unwrap();
    let url = store.signed_url(http::Method::GET, &Path::from("ten"), Duration::from_secs(60)).await.unwrap();
    let response =
        reqwest::Client::new().get(url.as_str()).header("range", "bytes=20-30").send().await.unwrap();
    assert_eq!(response.status(), 416);
    assert!(response.text().await.unwrap().contains("InvalidRange"));
    let response =
        reqwest::Client::new().get(url.as_str()).header("range", "bytes=2-4").send().await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(response.text().await.unwrap(), "234");
    // Conditional reads.
    let etag = store.head(&Path::from("ten")).await.unwrap().e_tag.unwrap();
    let response =
        reqwest::Client::new().get(url.as_str()).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(response.status(), 304);
    let response =
        reqwest::Client::new().get(url.as_str()).header("if-match", "\"nope\"").send().await.unwrap();
    assert_eq!(response.status(), 412);
    // A bucket with objects cannot be deleted; the server keeps serving after all of this.
    expect(signed(&server, ROOT, "DELETE", "/strict", b"").await, 409, "BucketNotEmpty");
    assert_eq!(store.get(&Path::from("ten")).await.unwrap().bytes().await.unwrap().as_ref(), b"0123456789");
}

/// Explicit grants (`x-amz-grant-*` on a write, or PutObjectAcl with headers or an
/// AccessControlPolicy body): an access key granted READ reads the object, READ_ACP its ACL,
/// WRITE_ACP may replace it; a group READ grant is the canned ACL it stands for; what cannot
/// be honoured is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_grants_let_named_keys_read_and_manage_an_object() {
    let server = start(Limits::default()).await;
    let (ann_key, ann_secret) = server.blob.create_user(false).unwrap();
    let (bob_key, bob_secret) = server.blob.create_user(false).unwrap();
    let (ann, bob) = ((ann_key.as_str(), ann_secret.as_str()), (bob_key.as_str(), bob_secret.as_str()));
    create_bucket(&server, ROOT, "docs").await;
    let to_ann = format!("id=\"{ann_key}\"");
    let read = [("x-amz-grant-read", to_ann.as_str())];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/docs/plan.txt", b"the plan", &read, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = signed(&server, ann, "GET", "/docs/plan.txt", b"").await;
    assert_eq!((status, body.as_str()), (200, "the plan"), "a READ grant lets ann read");
    assert_eq!(signed(&server, bob, "GET", "/docs/plan.txt", b"").await.0, 403, "bob has no grant");
    assert_eq!(signed(&server, ann, "GET", "/docs/plan.txt?acl", b"").await.0, 403, "READ is not READ_ACP");
    let (_, acl, _) = signed(&server, ROOT, "GET", "/docs/plan.txt?acl", b"").await;
    assert!(
        acl.contains(&format!("<ID>{ann_key}</ID>")) && acl.contains("<Permission>READ</Permission>"),
        "{acl}"
    );

    // WRITE_ACP lets ann hand the object to bob through an AccessControlPolicy body.
    let manage = [("x-amz-grant-write-acp", to_ann.as_str()), ("x-amz-grant-read-acp", to_ann.as_str())];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/docs/plan.txt?acl", b"", &manage, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        signed(&server, ann, "GET", "/docs/plan.txt", b"").await.0,
        403,
        "the old READ grant was replaced"
    );
    let (status, acl, _) = signed(&server, ann, "GET", "/docs/plan.txt?acl", b"").await;
    assert!(status == 200 && acl.contains("WRITE_ACP"), "{acl}");
    let policy = format!(
        "<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>strata</ID></Owner>\
         <AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:type=\"CanonicalUser\"><ID>{bob_key}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>\
         <Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\">\
         <URI>http://acs.amazonaws.com/groups/global/AuthenticatedUsers</URI></Grantee>\
         <Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"
    );
    let (status, body, _) = signed(&server, ann, "PUT", "/docs/plan.txt?acl", policy.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        signed(&server, bob, "GET", "/docs/plan.txt?acl", b"").await.0,
        200,
        "FULL_CONTROL covers READ_ACP"
    );
    assert_eq!(signed(&server, ann, "GET", "/docs/plan.txt", b"").await.0, 200, "AuthenticatedUsers READ");
    let anonymous = reqwest::get(format!("http://{}/docs/plan.txt", server.addr)).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 403, "but not strangers");
    assert_eq!(
        signed(&server, ann, "PUT", "/docs/plan.txt?acl", policy.as_bytes()).await.0,
        403,
        "ann lost WRITE_ACP"
    );

    // Refused, and nothing changes: an unknown key, WRITE on an object, canned and grants at once.
    let unknown = [("x-amz-grant-read", "id=\"nobody\"")];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/docs/plan.txt?acl", b"", &unknown, None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidArgument</Code>"), "{body}");
    let many: Vec<String> = (0..101).map(|i| format!("id=\"key{i}\"")).collect();
    let many = [("x-amz-grant-read", many.join(", "))];
    let many = [(many[0].0, many[0].1.as_str())];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/docs/plan.txt?acl", b"", &many, None).await;
    assert!(status == 400 && body.contains("at most 100 grants"), "{body}");
    let write = [("x-amz-grant-write", to_ann.as_str())];
    assert_eq!(signed_with(&server, ROOT, "PUT", "/docs/plan.txt?acl", b"", &write, None).await.0, 400);
    let both = [("x-amz-acl", "public-read"), ("x-amz-grant-read", to_ann.as_str())];
    let (status, body, _) = signed_with(&server, ROOT, "PUT", "/docs/other.txt", b"x", &both, None).await;
    assert!(status == 400 && body.contains("<Code>InvalidRequest</Code>"), "{body}");
    assert_eq!(signed(&server, bob, "GET", "/docs/plan.txt?acl", b"").await.0, 200, "bob keeps FULL_CONTROL");

    // A group READ grant is the canned ACL it stands for.
    let public = [("x-amz-grant-read", "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")];
    signed_with(&server, ROOT, "PUT", "/docs/open.txt", b"open", &public, None).await;
    let anonymous = reqwest::get(format!("http://{}/docs/open.txt", server.addr)).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_keys_owners_and_public_read_policies() {
    let server = start(Limits::default()).await;
    let blob = server.blob.clone();
    let (ann_key, ann_secret) = blob.create_user(false).unwrap();
    let (bob_key, bob_secret) = blob.create_user(false).unwrap();
    let ann = (ann_key.as_str(), ann_secret.as_str());
    let bob = (bob_key.as_str(), bob_secret.as_str());
    create_bucket(&server, ann, "site").await;
    let ann_store = client(&server, "site", ann);
    ann_store.put(&Path::from("public/index.html"), PutPayload::from_static(b"<h1>hi</h1>")).await.unwrap();
    ann_store.put(&Path::from("private/notes"), PutPayload::from_static(b"secret")).await.unwrap();
    let bob_store = client(&server, "site", bob);
    assert!(bob_store.get(&Path::from("private/notes")).await.is_err(), "not bob's bucket");
    let public_url = format!("http://{}/site/public/index.html", server.addr);
    assert_eq!(reqwest::get(&public_url).await.unwrap().status(), 403, "private by default");

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/public/*"}]}"#;
    let (status, body, _) = signed(&server, ann, "PUT", "/site?policy", policy.as_bytes()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body, _) = signed(&server, ann, "GET", "/site?policy", b"").await;
    assert_eq!((status, body.as_str()), (200, policy));
    let response = reqwest::get(&public_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "<h1>hi</h1>");
    assert_eq!(
        reqwest::get(format!("http://{}/site/private/notes", server.addr)).await.unwrap().status(),
        403
    );
    assert_eq!(
        bob_store.get(&Path::from("public/index.html")).await.unwrap().bytes().await.unwrap().as_ref(),
        b"<h1>hi</h1>"
    );
    assert!(bob_store.put(&Path::from("public/defaced"), PutPayload::from_static(b"x")).await.is_err());
    let (status, body, _) = signed(&server, ann, "PUT", "/site?policy", b"{\"Statement\": 3}").await;
    assert_eq!(status, 400);
    assert!(body.contains("MalformedPolicy"));
    // A revoked key stops working at once.
    blob.revoke_user(&ann_key).unwrap();
    let (status, body, _) = signed(&server, ann, "GET", "/site/private/notes", b"").await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioning_tagging_and_cors() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "hist").await;
    // ListObjectVersions answers on an unversioned bucket too.
    let (status, body, _) = signed(&server, ROOT, "GET", "/hist?versions", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ListVersionsResult"));
    let config = br#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/hist?versioning", config).await;
    assert_eq!(status, 200, "{body}");
    let (_, body, _) = signed(&server, ROOT, "GET", "/hist?versioning", b"").await;
    assert!(body.contains("<Status>Enabled</Status>"), "{body}");
    let (_, _, first) = signed(&server, ROOT, "PUT", "/hist/doc", b"v1").await;
    let (_, _, second) = signed(&server, ROOT, "PUT", "/hist/doc", b"v2").await;
    let v1 = first["x-amz-version-id"].to_str().unwrap().to_owned();
    assert_ne!(v1, second["x-amz-version-id"].to_str().unwrap());
    let (_, body, _) = signed(&server, ROOT, "GET", &format!("/hist/doc?versionId={v1}"), b"").await;
    assert_eq!(body, "v1");
    let (status, _, headers) = signed(&server, ROOT, "DELETE", "/hist/doc", b"").await;
    assert_eq!(status, 204);
    assert_eq!(headers["x-amz-delete-marker"], "true");
    let (status, _, _) = signed(&server, ROOT, "GET", "/hist/doc", b"").await;
    assert_eq!(status, 404);
    let (_, body, _) = signed(&server, ROOT, "GET", "/hist?versions", b"").await;
    assert_eq!(body.matches("<Version>").count(), 2, "{body}");
    assert_eq!(body.matches("<DeleteMarker>").count(), 1, "{body}");

    // Tags on an object.
    signed(&server, ROOT, "PUT", "/hist/tagged", b"x").await;
    let tagging = br#"<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag></TagSet></Tagging>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/hist/tagged?tagging", tagging).await;
    assert_eq!(status, 200, "{body}");
    let (_, body, _) = signed(&server, ROOT, "GET", "/hist/tagged?tagging", b"").await;
    assert!(body.contains("<Key>team</Key><Value>web</Value>"), "{body}");

    // CORS: a preflight from an allowed origin is answered, others are refused.
    let cors = br#"<CORSConfiguration><CORSRule><AllowedOrigin>https://app.example.com</AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/hist?cors", cors).await;
    assert_eq!(status, 200, "{body}");
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("http://{}/hist/upload.png", server.addr))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let response = preflight("https://app.example.com").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(response.headers()["access-control-max-age"], "600");
    assert_eq!(preflight("https://evil.example.org").await.unwrap().status(), 403);
}

/// `blob.backend = "s3"`: a Strata whose object bytes live in another S3 service (here a
/// second Strata), while records, policies and links stay local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_backend_keeps_bytes_in_another_s3_service() {
    let backing = start(Limits::default()).await;
    create_bucket(&backing, ROOT, "backing").await;
    let remote = strata_blob::RemoteStore {
        endpoint: format!("http://{}", backing.addr),
        bucket: "backing".into(),
        region: "us-east-1".into(),
        access_key: ROOT.0.into(),
        secret_key: ROOT.1.into(),
        prefix: "segments/".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let open = {
        let (dir, remote) = (dir.path().to_owned(), remote.clone());
        move || {
            let store = Store::open(dir.join("core"), strata_core::Options::default()).unwrap();
            let limits = Limits { inline_max_bytes: 1024, min_part_bytes: 1024, ..Limits::default() };
            Blob::open_remote(
                store,
                &dir.join("blob"),
                Arc::new(SystemClock),
                limits,
                (ROOT.0.into(), ROOT.1.into()),
                &remote,
            )
            .unwrap()
        }
    };
    let blob = tokio::task::spawn_blocking(open.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(strata_s3::serve(listener, blob.clone(), strata_s3::S3Config::default(), async {
        let _ = stopped.await;
    }));
    let front = Server { addr, blob: blob.clone(), _dir: tempfile::tempdir().unwrap(), _stop: stop };
    create_bucket(&front, ROOT, "photos").await;
    let store = client(&front, "photos", ROOT);
    let backing_store = client(&backing, "backing", ROOT);
    let remote_objects = || async {
        let listed: Vec<_> = backing_store.list(Some(&Path::from("segments"))).try_collect().await.unwrap();
        listed.len()
    };

    let small = pattern(500, 3);
    let large = pattern(3_000_000, 4);
    store.put(&Path::from("small"), PutPayload::from(small.clone())).await.unwrap();
    store.put(&Path::from("large"), PutPayload::from(large.clone())).await.unwrap();
    assert_eq!(remote_objects().await, 1, "the small object stays in core, the large one is remote");
    assert_eq!(store.get(&Path::from("large")).await.unwrap().bytes().await.unwrap().as_ref(), &large[..]);
    assert_eq!(
        store.get_range(&Path::from("large"), 2_000_000..2_000_100).await.unwrap().as_ref(),
        &large[2_000_000..2_000_100]
    );
    assert_eq!(store.get(&Path::from("small")).await.unwrap().bytes().await.unwrap().as_ref(), &small[..]);

    // Multipart parts are remote segments; completing names them in order.
    let data = pattern(2 * 1024 * 1024 + 5, 9);
    let upload = store.put_multipart(&Path::from("parts")).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 1024 * 1024);
    writer.write(&data);
    writer.finish().await.unwrap();
    assert_eq!(store.get(&Path::from("parts")).await.unwrap().bytes().await.unwrap().as_ref(), &data[..]);
    // A copy is a server-side copy in the remote store.
    store.copy(&Path::from("large"), &Path::from("large-copy")).await.unwrap();
    // large, two 1 MiB parts (the 5-byte last part is inline), the copy.
    assert_eq!(remote_objects().await, 1 + 2 + 1);
    store.delete(&Path::from("large")).await.unwrap();
    assert_eq!(
        store.get(&Path::from("large-copy")).await.unwrap().bytes().await.unwrap().as_ref(),
        &large[..]
    );

    // Remote deletes run in the background; an orphan left in the remote prefix (an upload
    // whose commit never happened) is collected when the block opens again.
    backing_store
        .put(&Path::from("segments/0123456789abcdef0123456789abcdef"), PutPayload::from_static(b"orphan"))
        .await
        .unwrap();
    drop(front);
    drop(blob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reopened = tokio::task::spawn_blocking(open).await.unwrap();
    assert_eq!(remote_objects().await, 2 + 1, "the deleted object's and the orphan's bytes are gone");
    let meta = tokio::task::spawn_blocking(move || reopened.head_object("photos", "parts", None).unwrap())
        .await
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
}

/// Lifecycle configurations: stored and read back in S3's XML, refused when malformed or
/// when they ask for a storage-class transition, and applied by the block's sweep (a past
/// expiration date expires matching objects at once).
#[tokio::test]
async fn lifecycle_configurations_round_trip_and_expire_objects() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "logs").await;
    let (status, body, _) = signed(&server, ROOT, "GET", "/logs?lifecycle", b"").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("<Code>NoSuchLifecycleConfiguration</Code>"), "{body}");

    let config = br#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <Rule><ID>old</ID><Status>Enabled</Status><Filter><Prefix>old/</Prefix></Filter>
        <Expiration><Date>2020-01-01T00:00:00Z</Date></Expiration></Rule>
      <Rule><ID>tmp</ID><Status>Enabled</Status>
        <Filter><And><Prefix>tmp/</Prefix><Tag><Key>class</Key><Value>scratch</Value></Tag></And></Filter>
        <Expiration><Days>7</Days></Expiration>
        <NoncurrentVersionExpiration><NoncurrentDays>30</NoncurrentDays><NewerNoncurrentVersions>3</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>
      <Rule><ID>uploads</ID><Status>Disabled</Status><Filter><Prefix></Prefix></Filter>
        <AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
    </LifecycleConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/logs?lifecycle", config).await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = signed(&server, ROOT, "GET", "/logs?lifecycle", b"").await;
    assert_eq!(status, 200, "{body}");
    for expected in [
        "<ID>old</ID>",
        "<Date>2020-01-01T00:00:00",
        "<And><Prefix>tmp/</Prefix><Tag><Key>class</Key><Value>scratch</Value></Tag></And>",
        "<NewerNoncurrentVersions>3</NewerNoncurrentVersions><NoncurrentDays>30</NoncurrentDays>",
        "<Status>Disabled</Status>",
        "<DaysAfterInitiation>2</DaysAfterInitiation>",
    ] {
        assert!(body.contains(expected), "{expected} in {body}");
    }

    signed(&server, ROOT, "PUT", "/logs/old/a.log", b"old").await;
    signed(&server, ROOT, "PUT", "/logs/new/a.log", b"new").await;
    let swept = server.blob.sweep_lifecycle().unwrap();
    assert_eq!(swept.expired, 1, "{swept:?}");
    assert_eq!(signed(&server, ROOT, "GET", "/logs/old/a.log", b"").await.0, 404);
    assert_eq!(signed(&server, ROOT, "GET", "/logs/new/a.log", b"").await.1, "new");

    let transition = br#"<LifecycleConfiguration><Rule><ID>t</ID><Status>Enabled</Status><Filter/>
      <Transition><Days>30</Days><StorageClass>GLACIER</StorageClass></Transition></Rule></LifecycleConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/logs?lifecycle", transition).await;
    assert_eq!(status, 501, "{body}");
    let zero = br#"<LifecycleConfiguration><Rule><ID>z</ID><Status>Enabled</Status><Filter/>
      <Expiration><Days>0</Days></Expiration></Rule></LifecycleConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/logs?lifecycle", zero).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidArgument</Code>"), "{body}");
    let (_, body, _) = signed(&server, ROOT, "GET", "/logs?lifecycle", b"").await;
    assert!(body.contains("<ID>old</ID>"), "a refused configuration changes nothing: {body}");

    let (status, _, _) = signed(&server, ROOT, "DELETE", "/logs?lifecycle", b"").await;
    assert_eq!(status, 204);
    assert_eq!(signed(&server, ROOT, "GET", "/logs?lifecycle", b"").await.0, 404);
}

/// SSE-S3: `x-amz-server-side-encryption: AES256` stores an object sealed (its file is not
/// the plaintext) and every answer about it says so; multipart uploads follow their
/// creation's choice; a copy cannot add encryption its source lacks.
#[tokio::test]
async fn sse_s3_objects_are_encrypted_at_rest() {
    let server = start(Limits::default()).await;
    create_bucket(&server, ROOT, "vault").await;
    let aes = [("x-amz-server-side-encryption", "AES256")];
    let data = pattern(300_000, 9);
    let (status, body, headers) =
        signed_with(&server, ROOT, "PUT", "/vault/secret.bin", &data, &aes, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    let (status, _, headers) = signed(&server, ROOT, "HEAD", "/vault/secret.bin", b"").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    let store = client(&server, "vault", ROOT);
    let got = store.get(&Path::from("secret.bin")).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
    let ranged = store.get_range(&Path::from("secret.bin"), 1000..200_000).await.unwrap();
    assert_eq!(ranged.as_ref(), &data[1000..200_000]);
    let meta = server.blob.head_object("vault", "secret.bin", None).unwrap();
    let file = std::fs::read(
        server._dir.path().join("blob/data").join(&meta.segments[0].id[..2]).join(&meta.segments[0].id),
    )
    .unwrap();
    assert_eq!(file.len(), data.len());
    assert_ne!(file, data, "ciphertext on disk");

    // A plain object says nothing about encryption.
    let (_, _, headers) = signed(&server, ROOT, "PUT", "/vault/open.txt", b"open").await;
    assert!(headers.get("x-amz-server-side-encryption").is_none());

    // Multipart: the creation's choice holds for its parts and the object.
    let (status, body, headers) =
        signed_with(&server, ROOT, "POST", "/vault/mp.bin?uploads", b"", &aes, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    let upload_id = body.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_owned();
    let part = pattern(5 * 1024 * 1024, 3);
    let (status, body, headers) =
        signed(&server, ROOT, "PUT", &format!("/vault/mp.bin?partNumber=1&uploadId={upload_id}"), &part)
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    let etag = headers.get("etag").unwrap().to_str().unwrap().to_owned();
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let (status, body, headers) =
        signed(&server, ROOT, "POST", &format!("/vault/mp.bin?uploadId={upload_id}"), complete.as_bytes())
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    assert!(server.blob.head_object("vault", "mp.bin", None).unwrap().encrypted());
    let got = store.get(&Path::from("mp.bin")).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), part.as_slice());

    // Copies: an encrypted source copies encrypted; a plain one, asked to, is sealed (how
    // existing objects get encrypted with `aws s3 cp s3://b/k s3://b/k --sse AES256`).
    let from_sealed = [("x-amz-copy-source", "/vault/secret.bin"), aes[0]];
    let (status, body, _) =
        signed_with(&server, ROOT, "PUT", "/vault/copy.bin", b"", &from_sealed, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.blob.head_object("vault", "copy.bin", None).unwrap().encrypted());
    let from_plain = [("x-amz-copy-source", "/vault/open.txt"), aes[0]];
    let (status, body, headers) =
        signed_with(&server, ROOT, "PUT", "/vault/open.txt", b"", &from_plain, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    assert!(server.blob.head_object("vault", "open.txt", None).unwrap().encrypted());
    assert_eq!(signed(&server, ROOT, "GET", "/vault/open.txt", b"").await.1, "open");

    // Default bucket encryption seals writes that do not ask.
    let (status, body, _) = signed(&server, ROOT, "GET", "/vault?encryption", b"").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("ServerSideEncryptionConfigurationNotFoundError"), "{body}");
    let kms = br#"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#;
    assert_eq!(signed(&server, ROOT, "PUT", "/vault?encryption", kms).await.0, 501);
    let aes256 = br#"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#;
    let (status, body, _) = signed(&server, ROOT, "PUT", "/vault?encryption", aes256).await;
    assert_eq!(status, 200, "{body}");
    let (_, body, _) = signed(&server, ROOT, "GET", "/vault?encryption", b"").await;
    assert!(body.contains("<SSEAlgorithm>AES256</SSEAlgorithm>"), "{body}");
    let (status, _, headers) = signed(&server, ROOT, "PUT", "/vault/default.txt", b"sealed by default").await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-amz-server-side-encryption").unwrap(), "AES256");
    assert!(server.blob.head_object("vault", "default.txt", None).unwrap().encrypted());
    assert_eq!(signed(&server, ROOT, "DELETE", "/vault?encryption", b"").await.0, 204);
    let (_, _, headers) = signed(&server, ROOT, "PUT", "/vault/after.txt", b"clear again").await;
    assert!(headers.get("x-amz-server-side-encryption").is_none());
}
