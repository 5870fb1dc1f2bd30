//! Tests of the blob block through its Rust API, on a memory store and a temporary directory.

use super::*;
use std::io::Read;
use strata_core::ManualClock;

struct Fixture {
    blob: Blob,
    dir: tempfile::TempDir,
}

fn fixture_with(limits: Limits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let blob =
        Blob::open(Store::memory(), dir.path(), clock, limits, ("root".into(), "secret".into())).unwrap();
    blob.create_bucket("photos", "root").unwrap();
    Fixture { blob, dir }
}

fn fixture() -> Fixture {
    fixture_with(Limits { inline_max_bytes: 16, min_part_bytes: 4, ..Limits::default() })
}

fn write(blob: &Blob, data: &[u8]) -> Written {
    let mut w = blob.object_writer(&[]);
    for chunk in data.chunks(7) {
        w.write(chunk).unwrap();
    }
    w.finish().unwrap()
}

fn put(blob: &Blob, key: &str, data: &[u8]) -> ObjectMeta {
    blob.put_object("photos", key, NewObject::default(), write(blob, data), &[]).unwrap()
}

fn read(blob: &Blob, key: &str, version: Option<&str>, range: Option<ByteRange>) -> Vec<u8> {
    let (_, mut reader, _) =
        blob.open_object("photos", key, version, range, &ReadConditions::default()).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

fn files_on_disk(dir: &Path) -> usize {
    let data = dir.join("data");
    std::fs::read_dir(data)
        .unwrap()
        .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
        .sum()
}

#[test]
fn put_get_range_and_overwrite_small_and_large() {
    let f = fixture();
    let small = put(&f.blob, "a.txt", b"hello");
    assert_eq!(small.etag, "5d41402abc4b2a76b9719d911017c592");
    assert!(small.segments[0].inline, "5 bytes stay in core");
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let large = put(&f.blob, "b.bin", &big);
    assert!(!large.segments[0].inline);
    assert_eq!(files_on_disk(f.dir.path()), 1);
    assert_eq!(read(&f.blob, "a.txt", None, None), b"hello");
    assert_eq!(read(&f.blob, "b.bin", None, None), big);
    assert_eq!(
        read(&f.blob, "b.bin", None, Some(ByteRange::From { first: 100, last: Some(199) })),
        &big[100..200]
    );
    assert_eq!(read(&f.blob, "b.bin", None, Some(ByteRange::Suffix(10))), &big[big.len() - 10..]);
    assert_eq!(
        read(&f.blob, "b.bin", None, Some(ByteRange::From { first: 9_990, last: None })),
        &big[9_990..]
    );
    assert!(matches!(
        f.blob.open_object(
            "photos",
            "b.bin",
            None,
            Some(ByteRange::From { first: 10_000, last: None }),
            &ReadConditions::default()
        ),
        Err(BlobError::InvalidRange { size: 10_000 })
    ));
    // Overwriting in an unversioned bucket removes the old file.
    put(&f.blob, "b.bin", b"tiny");
    assert_eq!(files_on_disk(f.dir.path()), 0);
    assert_eq!(read(&f.blob, "b.bin", None, None), b"tiny");
    f.blob.delete_object("photos", "a.txt", None).unwrap();
    assert!(matches!(f.blob.head_object("photos", "a.txt", None), Err(BlobError::NoSuchKey(_))));
}

#[test]
fn digests_and_conditions() {
    let f = fixture();
    let w = write(&f.blob, b"hello");
    let bad = NewObject {
        expected: Expected { content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()), checksums: vec![] },
        ..NewObject::default()
    };
    assert!(matches!(f.blob.put_object("photos", "k", bad, w, &[]), Err(BlobError::BadDigest(_))));
    let meta = put(&f.blob, "k", b"hello");
    let only_new = NewObject { if_none_match_star: true, ..NewObject::default() };
    assert!(matches!(
        f.blob.put_object("photos", "k", only_new, write(&f.blob, b"x"), &[]),
        Err(BlobError::PreconditionFailed)
    ));
    let cond = |if_match: Option<&str>, if_none_match: Option<&str>| ReadConditions {
        if_match: if_match.map(str::to_owned),
        if_none_match: if_none_match.map(str::to_owned),
        ..ReadConditions::default()
    };
    assert!(check_read_conditions(&meta, &cond(Some(&meta.quoted_etag()), None)).is_ok());
    assert!(matches!(
        check_read_conditions(&meta, &cond(Some("\"other\""), None)),
        Err(BlobError::PreconditionFailed)
    ));
    assert!(matches!(
        check_read_conditions(&meta, &cond(None, Some(&meta.quoted_etag()))),
        Err(BlobError::NotModified { .. })
    ));
    let since = ReadConditions {
        if_modified_since_ms: Some(meta.last_modified_ms + 1000),
        ..ReadConditions::default()
    };
    assert!(matches!(check_read_conditions(&meta, &since), Err(BlobError::NotModified { .. })));
    let unmodified = ReadConditions {
        if_unmodified_since_ms: Some(meta.last_modified_ms - 5000),
        ..ReadConditions::default()
    };
    assert!(matches!(check_read_conditions(&meta, &unmodified), Err(BlobError::PreconditionFailed)));
}

#[test]
fn listing_with_prefix_delimiter_and_pages() {
    let f = fixture();
    for key in ["a", "b/1", "b/2", "b/3/x", "c", "d/1"] {
        put(&f.blob, key, key.as_bytes());
    }
    let list = |prefix: &str, delimiter: Option<&str>, after: Option<&str>, max: usize| {
        let q = ListQuery {
            prefix: prefix.into(),
            delimiter: delimiter.map(str::to_owned),
            after: after.map(str::to_owned),
            max,
        };
        f.blob.list_objects("photos", &q).unwrap()
    };
    let all = list("", None, None, 1000);
    let keys: Vec<_> = all.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["a", "b/1", "b/2", "b/3/x", "c", "d/1"]);
    assert!(!all.truncated);
    let top = list("", Some("/"), None, 1000);
    assert_eq!(top.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(top.common_prefixes, ["b/", "d/"]);
    let under_b = list("b/", Some("/"), None, 1000);
    assert_eq!(under_b.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["b/1", "b/2"]);
    assert_eq!(under_b.common_prefixes, ["b/3/"]);
    // Pages of two, resuming from next_after, see every entry once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list("", Some("/"), after.as_deref(), 2);
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        seen.extend(page.common_prefixes.iter().cloned());
        if !page.truncated {
            break;
        }
        after = page.next_after;
    }
    seen.sort();
    assert_eq!(seen, ["a", "b/", "c", "d/"]);
    assert_eq!(list("", None, Some("b/2"), 1000).objects.len(), 3);
}

#[test]
fn versioning_keeps_versions_and_delete_markers() {
    let f = fixture();
    let v0 = put(&f.blob, "k", b"unversioned");
    assert_eq!(v0.version_id, NULL_VERSION);
    f.blob.set_versioning("photos", true).unwrap();
    let v1 = put(&f.blob, "k", b"one");
    let v2 = put(&f.blob, "k", b"two");
    assert_ne!(v1.version_id, v2.version_id);
    assert_eq!(read(&f.blob, "k", None, None), b"two");
    assert_eq!(read(&f.blob, "k", Some(&v1.version_id), None), b"one");
    assert_eq!(read(&f.blob, "k", Some(NULL_VERSION), None), b"unversioned");
    let marker = f.blob.delete_object("photos", "k", None).unwrap();
    assert!(marker.delete_marker);
    assert!(matches!(f.blob.head_object("photos", "k", None), Err(BlobError::NoSuchKey(_))));
    assert!(
        f.blob
            .list_objects("photos", &ListQuery { max: 10, ..ListQuery::default() })
            .unwrap()
            .objects
            .is_empty()
    );
    let versions =
        f.blob.list_versions("photos", &VersionQuery { max: 10, ..VersionQuery::default() }).unwrap();
    let listed: Vec<_> = versions.versions.iter().map(|(m, latest)| (m.delete_marker, *latest)).collect();
    assert_eq!(listed, [(true, true), (false, false), (false, false), (false, false)]);
    // Deleting the marker brings the object back.
    f.blob.delete_object("photos", "k", marker.version_id.as_deref()).unwrap();
    assert_eq!(read(&f.blob, "k", None, None), b"two");
    // Paging through versions one at a time sees each once.
    let mut seen = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = f
            .blob
            .list_versions(
                "photos",
                &VersionQuery {
                    key_marker,
                    version_id_marker: version_marker,
                    max: 1,
                    ..VersionQuery::default()
                },
            )
            .unwrap();
        seen.extend(page.versions.iter().map(|(m, latest)| (m.version_id.clone(), *latest)));
        if !page.truncated {
            break;
        }
        (key_marker, version_marker) = (page.next_key_marker, page.next_version_id_marker);
    }
    assert_eq!(seen, [(v2.version_id, true), (v1.version_id, false), (NULL_VERSION.to_owned(), false)]);
    assert!(matches!(f.blob.delete_bucket("photos"), Err(BlobError::BucketNotEmpty(_))));
}

#[test]
fn multipart_upload_assembles_parts_without_copying() {
    let f = fixture();
    let upload = f
        .blob
        .create_upload(
            "photos",
            "big",
            UploadMeta { checksum_algorithm: Some(ChecksumAlgorithm::Crc32), ..UploadMeta::default() },
        )
        .unwrap();
    let parts: [&[u8]; 3] = [b"first part, long enough", b"second part, also long", b"end"];
    let mut etags = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let mut w = f.blob.part_writer(&[ChecksumAlgorithm::Crc32]);
        w.write(data).unwrap();
        let part = f
            .blob
            .put_part("photos", "big", &upload, i as u64 + 1, w.finish().unwrap(), &Expected::default())
            .unwrap();
        etags.push((i as u64 + 1, Some(format!("\"{}\"", part.etag))));
    }
    // A fourth part, uploaded but not listed at completion, is discarded.
    let mut w = f.blob.part_writer(&[ChecksumAlgorithm::Crc32]);
    w.write(b"left out of the object").unwrap();
    f.blob.put_part("photos", "big", &upload, 9, w.finish().unwrap(), &Expected::default()).unwrap();
    let (listed, truncated) = f.blob.list_parts("photos", "big", &upload, 0, 2).unwrap();
    assert_eq!((listed.len(), truncated), (2, true));
    assert_eq!(f.blob.list_uploads("photos", "", None, None, 10).unwrap().0.len(), 1);
    let swapped = [etags[1].clone(), etags[0].clone()];
    assert!(matches!(
        f.blob.complete_upload("photos", "big", &upload, &swapped, false),
        Err(BlobError::InvalidPartOrder)
    ));
    let meta = f.blob.complete_upload("photos", "big", &upload, &etags, false).unwrap();
    assert!(meta.etag.ends_with("-3"));
    assert!(meta.checksums.get(ChecksumAlgorithm::Crc32).unwrap().ends_with("-3"));
    assert!(meta.checksums.composite);
    assert_eq!(read(&f.blob, "big", None, None), parts.concat());
    assert_eq!(
        read(&f.blob, "big", None, Some(ByteRange::From { first: 20, last: Some(30) })),
        &parts.concat()[20..31]
    );
    assert_eq!(
        files_on_disk(f.dir.path()),
        2,
        "two parts over the inline limit; the unused part's file is gone"
    );
    assert!(matches!(f.blob.list_parts("photos", "big", &upload, 0, 10), Err(BlobError::NoSuchUpload(_))));
    // Parts too small are refused.
    let upload = f.blob.create_upload("photos", "small", UploadMeta::default()).unwrap();
    for n in 1..=2 {
        let mut w = f.blob.part_writer(&[]);
        w.write(b"ab").unwrap();
        f.blob.put_part("photos", "small", &upload, n, w.finish().unwrap(), &Expected::default()).unwrap();
    }
    assert!(matches!(
        f.blob.complete_upload("photos", "small", &upload, &[(1, None), (2, None)], false),
        Err(BlobError::TooSmall(_))
    ));
    f.blob.abort_upload("photos", "small", &upload).unwrap();
    assert!(f.blob.list_uploads("photos", "", None, None, 10).unwrap().0.is_empty());
}

#[test]
fn copies_share_files_and_garbage_is_collected_at_open() {
    let f = fixture();
    let data = vec![7u8; 1000];
    put(&f.blob, "src", &data);
    let copy = f
        .blob
        .copy_object(
            ("photos", "src", None),
            ("photos", "dst"),
            CopyAs::default(),
            &ReadConditions::default(),
        )
        .unwrap();
    assert_eq!(copy.etag, f.blob.head_object("photos", "src", None).unwrap().etag);
    f.blob.delete_object("photos", "src", None).unwrap();
    assert_eq!(read(&f.blob, "dst", None, None), data);
    // A file no record names (an upload cut short by a crash) goes at the next open.
    let stray = f.dir.path().join("data").join("ab").join("ab00");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"orphan").unwrap();
    std::fs::write(f.dir.path().join("tmp").join("half"), b"half an upload").unwrap();
    let store = f.blob.inner.store.clone();
    let reopened = Blob::open(
        store,
        f.dir.path(),
        Arc::new(ManualClock::new(0)),
        Limits::default(),
        ("r".into(), "s".into()),
    )
    .unwrap();
    assert!(!stray.exists());
    assert_eq!(std::fs::read_dir(f.dir.path().join("tmp")).unwrap().count(), 0);
    let (_, mut reader, _) =
        reopened.open_object("photos", "dst", None, None, &ReadConditions::default()).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn oversize_and_invalid_names_are_refused() {
    let f = fixture_with(Limits { max_object_bytes: 10, ..Limits::default() });
    let mut w = f.blob.object_writer(&[]);
    assert!(matches!(w.write(&[0u8; 11]), Err(BlobError::TooLarge { limit: 10 })));
    for bad in ["ab", "UPPER", "-start", "a..b", "192.168.1.1", &"x".repeat(64)] {
        assert!(matches!(f.blob.create_bucket(bad, "root"), Err(BlobError::InvalidBucketName(_))), "{bad}");
    }
    assert!(matches!(f.blob.create_bucket("photos", "root"), Err(BlobError::BucketAlreadyOwnedByYou(_))));
    assert!(matches!(f.blob.create_bucket("photos", "other"), Err(BlobError::BucketAlreadyExists(_))));
    assert!(matches!(f.blob.head_object("nope", "k", None), Err(BlobError::NoSuchBucket(_))));
}

#[test]
fn canned_acls_let_others_read_one_object() {
    let f = fixture();
    let (bob, _) = f.blob.create_user(false).unwrap();
    let get = |p: Principal<'_>, key: &str| f.blob.authorize(p, "s3:GetObject", Some("photos"), Some(key));
    put(&f.blob, "plain", b"x");
    let shared = NewObject { acl: CannedAcl::AuthenticatedRead, ..NewObject::default() };
    f.blob.put_object("photos", "shared", shared, write(&f.blob, b"x"), &[]).unwrap();
    assert!(get(Principal::Key(&bob), "plain").is_err() && get(Principal::Anonymous, "plain").is_err());
    assert!(get(Principal::Key(&bob), "shared").is_ok(), "authenticated-read: any valid key");
    assert!(get(Principal::Anonymous, "shared").is_err());
    f.blob.set_object_acl("photos", "shared", None, CannedAcl::PublicRead, Vec::new()).unwrap();
    assert!(get(Principal::Anonymous, "shared").is_ok());
    assert!(
        f.blob.authorize(Principal::Anonymous, "s3:PutObject", Some("photos"), Some("shared")).is_err(),
        "an ACL lets others read, nothing more"
    );
    // Kept with the object: a new version without one is private again.
    put(&f.blob, "shared", b"y");
    assert!(get(Principal::Anonymous, "shared").is_err());
    assert_eq!(CannedAcl::parse("bucket-owner-full-control"), Ok(CannedAcl::Private));
    assert!(CannedAcl::parse("log-delivery-write").is_err());
}

/// A grant lets one key do what its permission covers on one object, and no more; grants to
/// unknown keys are refused.
#[test]
fn grants_let_one_key_read_or_manage_one_object() {
    let f = fixture();
    let (bob, _) = f.blob.create_user(false).unwrap();
    let (eve, _) = f.blob.create_user(false).unwrap();
    let may = |p: Principal<'_>, action: &str| f.blob.authorize(p, action, Some("photos"), Some("a")).is_ok();
    let grant = |key: &str, permission| Grant { key: key.to_owned(), permission };
    let new = NewObject { grants: vec![grant(&bob, Permission::Read)], ..NewObject::default() };
    f.blob.put_object("photos", "a", new, write(&f.blob, b"x"), &[]).unwrap();
    assert!(may(Principal::Key(&bob), "s3:GetObject"));
    assert!(!may(Principal::Key(&bob), "s3:GetObjectAcl") && !may(Principal::Key(&bob), "s3:PutObject"));
    assert!(!may(Principal::Key(&eve), "s3:GetObject") && !may(Principal::Anonymous, "s3:GetObject"));
    let grants = vec![grant(&eve, Permission::WriteAcp), grant(&bob, Permission::FullControl)];
    f.blob.set_object_acl("photos", "a", None, CannedAcl::Private, grants).unwrap();
    assert!(may(Principal::Key(&eve), "s3:PutObjectAcl") && !may(Principal::Key(&eve), "s3:GetObject"));
    assert!(
        ["s3:GetObject", "s3:GetObjectAcl", "s3:PutObjectAcl"].iter().all(|a| may(Principal::Key(&bob), a))
    );
    assert!(!may(Principal::Key(&bob), "s3:DeleteObject"), "FULL_CONTROL is of the ACL's permissions only");
    let unknown = vec![grant("nobody", Permission::Read)];
    let refused = f.blob.set_object_acl("photos", "a", None, CannedAcl::Private, unknown.clone());
    assert!(matches!(refused, Err(BlobError::InvalidArgument(_))));
    assert!(may(Principal::Key(&bob), "s3:GetObject"), "a refused change changes nothing");
    let new = NewObject { grants: unknown, ..NewObject::default() };
    assert!(f.blob.put_object("photos", "b", new, write(&f.blob, b"x"), &[]).is_err());
    // Kept with the version: a new one without grants is private again.
    put(&f.blob, "a", b"y");
    assert!(!may(Principal::Key(&bob), "s3:GetObject"));
}

#[test]
fn access_keys_owners_and_policies() {
    let f = fixture();
    let (ann, _) = f.blob.create_user(false).unwrap();
    let (bob, _) = f.blob.create_user(false).unwrap();
    f.blob.create_bucket("anns", &ann).unwrap();
    let get = |p: Principal<'_>, key: &str| f.blob.authorize(p, "s3:GetObject", Some("anns"), Some(key));
    assert!(get(Principal::Key(&ann), "x").is_ok(), "owners may read");
    assert!(get(Principal::Key("root"), "x").is_ok(), "admins may read");
    assert!(get(Principal::Key(&bob), "x").is_err());
    assert!(get(Principal::Anonymous, "x").is_err(), "private by default");
    let policy = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::anns/public/*"}]}"#;
    f.blob.set_policy("anns", Some(policy)).unwrap();
    assert!(get(Principal::Anonymous, "public/cat.jpg").is_ok());
    assert!(get(Principal::Anonymous, "private/cat.jpg").is_err());
    assert!(f.blob.authorize(Principal::Anonymous, "s3:PutObject", Some("anns"), Some("public/x")).is_err());
    assert!(matches!(f.blob.set_policy("anns", Some("{")), Err(BlobError::MalformedPolicy(_))));
    f.blob.revoke_user(&bob).unwrap();
    assert!(f.blob.user(&bob).unwrap().is_none());
    assert!(
        get(Principal::Key(&bob), "public/cat.jpg").is_err(),
        "a revoked key is refused even where the public may read"
    );
    let link = Link {
        method: "GET",
        endpoint: "http://127.0.0.1:9000",
        region: "us-east-1",
        bucket: "anns",
        key: "a b.txt",
        expires_secs: 60,
        access_key: Some(&ann),
    };
    let url = f.blob.presign(&link).unwrap();
    assert!(
        f.blob.presign(&Link { expires_secs: 30 * 86_400, ..link }).is_err(),
        "links last at most 7 days"
    );
    assert!(f.blob.presign(&Link { access_key: Some("nobody"), ..link }).is_err());
    assert!(url.starts_with("http://127.0.0.1:9000/anns/a%20b.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"));
}

/// Lifecycle rules with a clock moved by days: current versions expire by prefix, tag and
/// size (to a delete marker when versioned), noncurrent versions go after their days except
/// the newest kept ones, a delete marker left alone is removed, and a stalled upload is
/// aborted; nothing else is touched.
#[test]
fn lifecycle_rules_expire_versions_markers_and_uploads() {
    use lifecycle::{Expiration, LifecycleRule, NoncurrentExpiration, RuleFilter};
    const DAY: u64 = 24 * 60 * 60 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let blob = Blob::open(
        Store::memory(),
        dir.path(),
        Arc::new(clock.clone()),
        Limits { inline_max_bytes: 16, min_part_bytes: 4, ..Limits::default() },
        ("root".into(), "secret".into()),
    )
    .unwrap();
    blob.create_bucket("photos", "root").unwrap();
    assert!(matches!(blob.lifecycle("photos"), Err(BlobError::NoSuchLifecycleConfiguration(_))));
    let tagged = |key: &str, tag: &str| {
        let new = NewObject { tags: BTreeMap::from([("class".into(), tag.into())]), ..NewObject::default() };
        blob.put_object("photos", key, new, write(&blob, b"a file larger than sixteen bytes"), &[]).unwrap();
    };
    put(&blob, "logs/a", b"old log");
    put(&blob, "keep/a", b"kept");
    tagged("tmp/scratch", "scratch");
    tagged("tmp/precious", "precious");
    let upload = blob.create_upload("photos", "logs/stalled", UploadMeta::default()).unwrap();
    let rules = vec![
        LifecycleRule {
            id: "logs".into(),
            enabled: true,
            filter: RuleFilter { prefix: "logs/".into(), ..RuleFilter::default() },
            expiration: Some(Expiration::Days(2)),
            abort_incomplete_upload_days: Some(1),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "scratch".into(),
            enabled: true,
            filter: RuleFilter {
                prefix: "tmp/".into(),
                tags: BTreeMap::from([("class".into(), "scratch".into())]),
                size_greater_than: Some(10),
                ..RuleFilter::default()
            },
            expiration: Some(Expiration::Days(1)),
            ..LifecycleRule::default()
        },
        LifecycleRule {
            id: "off".into(),
            enabled: false,
            expiration: Some(Expiration::Days(1)),
            ..LifecycleRule::default()
        },
    ];
    blob.set_lifecycle("photos", Some(rules.clone())).unwrap();
    assert_eq!(blob.lifecycle("photos").unwrap(), rules);

    assert_eq!(blob.sweep_lifecycle().unwrap(), lifecycle::Swept::default(), "nothing is due yet");
    clock.advance_ms(2 * DAY);
    let swept = blob.sweep_lifecycle().unwrap();
    assert_eq!((swept.expired, swept.uploads_aborted), (1, 1), "{swept:?}: the scratch file and the upload");
    assert!(matches!(blob.head_object("photos", "tmp/scratch", None), Err(BlobError::NoSuchKey(_))));
    assert!(blob.head_object("photos", "tmp/precious", None).is_ok(), "another tag");
    assert!(blob.head_object("photos", "logs/a", None).is_ok(), "two days, rounded up to midnight");
    assert!(matches!(blob.upload("photos", "logs/stalled", &upload), Err(BlobError::NoSuchUpload(_))));
    clock.advance_ms(DAY);
    assert_eq!(blob.sweep_lifecycle().unwrap().expired, 1);
    assert!(matches!(blob.head_object("photos", "logs/a", None), Err(BlobError::NoSuchKey(_))));
    assert_eq!(read(&blob, "keep/a", None, None), b"kept", "no rule for it");

    // Versioned: expiry leaves a delete marker; noncurrent versions go after their days,
    // keeping the newest one; then the marker, alone, is removed.
    blob.set_versioning("photos", true).unwrap();
    blob.set_lifecycle(
        "photos",
        Some(vec![
            LifecycleRule {
                id: "versions".into(),
                enabled: true,
                filter: RuleFilter { prefix: "docs/".into(), ..RuleFilter::default() },
                noncurrent: Some(NoncurrentExpiration { days: 1, keep_newer: Some(1) }),
                expiration: Some(Expiration::Days(5)),
                ..LifecycleRule::default()
            },
            LifecycleRule {
                id: "markers".into(),
                enabled: true,
                filter: RuleFilter { prefix: "docs/".into(), ..RuleFilter::default() },
                expiration: Some(Expiration::ExpiredObjectDeleteMarker),
                noncurrent: Some(NoncurrentExpiration { days: 3, keep_newer: None }),
                ..LifecycleRule::default()
            },
        ]),
    )
    .unwrap();
    let v1 = put(&blob, "docs/d", b"one");
    let v2 = put(&blob, "docs/d", b"two");
    let v3 = put(&blob, "docs/d", b"three");
    clock.advance_ms(2 * DAY);
    let swept = blob.sweep_lifecycle().unwrap();
    assert_eq!(swept.noncurrent_removed, 1, "{swept:?}: v1 goes, v2 is the newest noncurrent one kept");
    assert!(blob.head_object("photos", "docs/d", Some(&v2.version_id)).is_ok());
    assert!(blob.head_object("photos", "docs/d", Some(&v1.version_id)).is_err());
    clock.advance_ms(4 * DAY);
    let swept = blob.sweep_lifecycle().unwrap();
    // v3 expires behind a delete marker; v2, noncurrent for over three days, goes by the
    // second rule, which keeps no newest.
    assert_eq!((swept.expired, swept.noncurrent_removed), (1, 1), "{swept:?}");
    assert!(matches!(blob.head_object("photos", "docs/d", None), Err(BlobError::NoSuchKey(_))));
    assert_eq!(read(&blob, "docs/d", Some(&v3.version_id), None), b"three", "kept behind the marker");
    clock.advance_ms(4 * DAY);
    let swept = blob.sweep_lifecycle().unwrap();
    assert_eq!((swept.noncurrent_removed, swept.delete_markers_removed), (1, 1), "{swept:?}");
    let left = blob.list_versions(
        "photos",
        &VersionQuery { prefix: "docs/".into(), max: 10, ..VersionQuery::default() },
    );
    assert!(left.unwrap().versions.is_empty());

    blob.set_lifecycle("photos", None).unwrap();
    assert!(matches!(blob.lifecycle("photos"), Err(BlobError::NoSuchLifecycleConfiguration(_))));
}

/// SSE-S3: an encrypted object reads back whole and by range, through copies and multipart
/// uploads, while its file and its core-held bytes are ciphertext; digests are of the
/// plaintext.
#[test]
fn encrypted_objects_are_sealed_at_rest_and_read_back_plain() {
    let f = fixture();
    let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sealed_put = |key: &str, data: &[u8]| {
        let mut w = f.blob.object_writer(&[]).encrypted();
        for chunk in data.chunks(4096) {
            w.write(chunk).unwrap();
        }
        f.blob.put_object("photos", key, NewObject::default(), w.finish().unwrap(), &[]).unwrap()
    };
    let meta = sealed_put("big", &plain);
    assert!(meta.encrypted());
    assert_eq!(read(&f.blob, "big", None, None), plain);
    assert_eq!(
        read(&f.blob, "big", None, Some(ByteRange::From { first: 4095, last: Some(70_001) })),
        plain[4095..=70_001]
    );
    let on_disk = files_under(&f.dir.path().join("data"));
    assert_eq!(on_disk.len(), 1);
    assert_eq!(on_disk[0].len(), plain.len());
    assert_ne!(on_disk[0], plain, "the file holds ciphertext");

    // Small objects live in core, sealed too.
    let small = sealed_put("small", b"short secret");
    assert!(small.encrypted() && small.segments[0].inline);
    let txn = f.blob.inner.store.begin_read_only();
    let stored = txn.get(&f.blob.inner.ks, &Key::Data(&small.segments[0].id).encode()).unwrap().unwrap();
    assert_ne!(stored, b"short secret");
    assert_eq!(read(&f.blob, "small", None, None), b"short secret");

    // A copy shares the sealed bytes under a new name and still reads.
    let copy = f
        .blob
        .copy_object(
            ("photos", "big", None),
            ("photos", "copy"),
            CopyAs::default(),
            &ReadConditions::default(),
        )
        .unwrap();
    assert!(copy.encrypted());
    assert_eq!(
        read(&f.blob, "copy", None, Some(ByteRange::From { first: 50_000, last: Some(50_009) })),
        plain[50_000..=50_009]
    );
    // A copy that asks for encryption of a plain source writes the bytes again, sealed.
    put(&f.blob, "clear", &plain);
    let sealed_copy = f
        .blob
        .copy_object(
            ("photos", "clear", None),
            ("photos", "sealed-copy"),
            CopyAs { encrypt: true, ..CopyAs::default() },
            &ReadConditions::default(),
        )
        .unwrap();
    assert!(sealed_copy.encrypted());
    assert_eq!(read(&f.blob, "sealed-copy", None, None), plain);

    // Multipart: parts of an encrypted upload are sealed, and so is the object.
    let upload = f
        .blob
        .create_upload("photos", "parts", UploadMeta { encrypted: true, ..UploadMeta::default() })
        .unwrap();
    let mut etags = Vec::new();
    for (i, chunk) in plain.chunks(40_000).enumerate() {
        let mut w = f.blob.part_writer(&[]).encrypted();
        w.write(chunk).unwrap();
        let part = f
            .blob
            .put_part("photos", "parts", &upload, i as u64 + 1, w.finish().unwrap(), &Expected::default())
            .unwrap();
        etags.push((i as u64 + 1, Some(format!("\"{}\"", part.etag))));
    }
    let whole = f.blob.complete_upload("photos", "parts", &upload, &etags, false).unwrap();
    assert!(whole.encrypted());
    assert_eq!(
        read(&f.blob, "parts", None, Some(ByteRange::From { first: 39_990, last: Some(40_010) })),
        plain[39_990..=40_010]
    );

    // Unencrypted objects are unchanged, and digests are of the plaintext either way.
    let clear = f.blob.head_object("photos", "clear", None).unwrap();
    assert!(!clear.encrypted());
    assert_eq!(meta.etag, clear.etag);
}

fn files_under(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(std::fs::read(path).unwrap());
        }
    }
    out
}

/// An unsynced put or delete shows when it returns; `durable` resolves only once the fsync
/// covers it, and only then removes the file of the version it replaced or deleted. Both
/// survive a reopen.
#[test]
fn unsynced_puts_and_deletes_are_acknowledged_after_their_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Store::open(dir.path().join("core"), strata_core::Options::default()).unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let limits = Limits { inline_max_bytes: 16, ..Limits::default() };
        let blob =
            Blob::open(store.clone(), &dir.path().join("blob"), clock, limits, ("root".into(), "s".into()));
        (store, blob.unwrap())
    };
    let (store, blob) = open();
    blob.create_bucket("photos", "root").unwrap();
    let big = vec![7u8; 1000];
    put(&blob, "a", &big);
    assert_eq!(files_on_disk(&dir.path().join("blob")), 1);
    let acknowledged = store.subscribe();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();

    let unsynced = blob.put_object_unsynced("photos", "a", NewObject::default(), write(&blob, b"small"), &[]);
    let committed_at = store.last_seq();
    assert_eq!(read(&blob, "a", None, None), b"small", "visible at once");
    assert_eq!(files_on_disk(&dir.path().join("blob")), 1, "the old bytes stay until the fsync");
    let meta = runtime.block_on(unsynced.unwrap().durable()).unwrap();
    assert!(*acknowledged.borrow() >= committed_at, "durable resolved before the fsync covered the put");
    assert_eq!(meta.etag, "eb5c1399a871211c7e7ed732d15e3a8b");
    assert_eq!(files_on_disk(&dir.path().join("blob")), 0, "the replaced version's file is removed");

    put(&blob, "b", &big);
    let unsynced = blob.delete_object_unsynced("photos", "b", None).unwrap();
    let deleted_at = store.last_seq();
    assert!(matches!(blob.head_object("photos", "b", None), Err(BlobError::NoSuchKey(_))), "gone at once");
    assert_eq!(files_on_disk(&dir.path().join("blob")), 1, "the bytes stay until the fsync");
    runtime.block_on(unsynced.durable()).unwrap();
    assert!(*acknowledged.borrow() >= deleted_at, "durable resolved before the fsync covered the delete");
    assert_eq!(files_on_disk(&dir.path().join("blob")), 0, "the deleted version's file is removed");
    drop((blob, store));

    let (_store, blob) = open();
    assert_eq!(read(&blob, "a", None, None), b"small");
    assert!(matches!(blob.head_object("photos", "b", None), Err(BlobError::NoSuchKey(_))));
}

/// `open_object_in_core` opens what core holds, ranges and parts as `open_object` does, and
/// leaves objects in files to the blocking path.
#[test]
fn objects_held_in_core_open_without_files() {
    let f = fixture();
    put(&f.blob, "small", b"0123456789");
    put(&f.blob, "large", &[1u8; 100]);
    let open = |key: &str, pick: Pick| {
        f.blob.open_object_in_core("photos", key, None, pick, &ReadConditions::default())
    };
    let (meta, mut reader, span) =
        open("small", Pick::Range(Some(ByteRange::From { first: 2, last: Some(4) })))
            .unwrap()
            .expect("a small object is held in core");
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    assert_eq!((out.as_slice(), span, meta.size), (&b"234"[..], (2, 3), 10));
    let (_, _, span) = open("small", Pick::Part(1)).unwrap().unwrap();
    assert_eq!(span, (0, 10), "part 1 of a single PUT is the whole object");
    assert!(open("large", Pick::Range(None)).unwrap().is_none(), "bytes in a file are not opened here");
    assert!(matches!(open("missing", Pick::Range(None)), Err(BlobError::NoSuchKey(_))));
    let stale = ReadConditions { if_match: Some("\"nope\"".into()), ..ReadConditions::default() };
    let refused = f.blob.open_object_in_core("photos", "small", None, Pick::Range(None), &stale);
    assert!(matches!(refused, Err(BlobError::PreconditionFailed)));
}
