//! Translations between S3's wire types (s3s DTOs) and the blob block's: the one error
//! mapping of this front, timestamps, ETags, ranges, conditions, checksums, tags.

use s3s::dto::{self, ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use strata_blob::{
    BlobError, ByteRange, CannedAcl, ChecksumAlgorithm, Checksums, Expected, Grant, Permission,
    ReadConditions,
};

/// The S3 error for a blob error: its code, HTTP status and message.
pub(crate) fn s3_error(err: BlobError) -> S3Error {
    use S3ErrorCode as C;
    let msg = err.to_string();
    let code = match &err {
        BlobError::NoSuchBucket(_) => C::NoSuchBucket,
        BlobError::NoSuchKey(_) => C::NoSuchKey,
        BlobError::NoSuchVersion(_) => C::NoSuchVersion,
        BlobError::NoSuchUpload(_) => C::NoSuchUpload,
        BlobError::NoSuchBucketPolicy(_) => C::NoSuchBucketPolicy,
        BlobError::NoSuchLifecycleConfiguration(_) => C::NoSuchLifecycleConfiguration,
        BlobError::NoSuchAccessKey(_) => C::InvalidAccessKeyId,
        BlobError::BucketAlreadyExists(_) => C::BucketAlreadyExists,
        BlobError::BucketAlreadyOwnedByYou(_) => C::BucketAlreadyOwnedByYou,
        BlobError::BucketNotEmpty(_) => C::BucketNotEmpty,
        BlobError::InvalidBucketName(_) => C::InvalidBucketName,
        BlobError::InvalidKey(_) => C::KeyTooLongError,
        BlobError::InvalidArgument(_) => C::InvalidArgument,
        BlobError::InvalidRange { .. } => C::InvalidRange,
        BlobError::InvalidPartNumber { .. } => {
            // S3's code for it, which s3s does not list.
            let mut e = S3Error::with_message(C::Custom("InvalidPartNumber".into()), msg);
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            return e;
        }
        BlobError::TooLarge { .. } => C::EntityTooLarge,
        BlobError::TooSmall(_) => C::EntityTooSmall,
        BlobError::BadDigest(_) => C::BadDigest,
        BlobError::InvalidPart(_) => C::InvalidPart,
        BlobError::InvalidPartOrder => C::InvalidPartOrder,
        BlobError::PreconditionFailed => C::PreconditionFailed,
        BlobError::NotModified { etag, .. } => {
            let mut e = S3Error::with_message(C::NotModified, msg);
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = etag.parse() {
                headers.insert(http::header::ETAG, value);
            }
            e.set_headers(headers);
            return e;
        }
        BlobError::MethodNotAllowed(_) => C::MethodNotAllowed,
        BlobError::MalformedPolicy(_) => C::MalformedPolicy,
        BlobError::AccessDenied(_) => C::AccessDenied,
        BlobError::TooManyBuckets(_) => C::TooManyBuckets,
        BlobError::Core(strata_core::Error::Unavailable(_)) => C::ServiceUnavailable,
        BlobError::Core(strata_core::Error::InvalidInput(_)) => C::InvalidArgument,
        BlobError::Core(other) => {
            tracing::error!(err = %other, "blob operation failed");
            C::InternalError
        }
    };
    S3Error::with_message(code, msg)
}

pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(crate) fn millis(ts: Timestamp) -> u64 {
    let t: time::OffsetDateTime = ts.into();
    (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn condition(c: ETagCondition) -> String {
    match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(tag) => tag.into_value(),
    }
}

pub(crate) fn read_conditions(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition),
        if_none_match: if_none_match.map(condition),
        if_modified_since_ms: if_modified_since.map(millis),
        if_unmodified_since_ms: if_unmodified_since.map(millis),
    }
}

pub(crate) fn range(r: dto::Range) -> ByteRange {
    match r {
        dto::Range::Int { first, last } => ByteRange::From { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix(length),
    }
}

/// Requests that carry S3's explicit grant headers (`x-amz-grant-*`).
pub(crate) trait GrantHeaders {
    /// The grant headers present: S3's permission name (`READ`, `WRITE_ACP`, ...) and the
    /// header's value.
    fn grant_headers(&self) -> Vec<(&'static str, &str)>;

    /// Whether any grant header is present.
    fn has_grants(&self) -> bool {
        !self.grant_headers().is_empty()
    }
}

macro_rules! grant_headers {
    ($($input:ty: $($grant:ident),+;)+) => {
        $(impl GrantHeaders for $input {
            fn grant_headers(&self) -> Vec<(&'static str, &str)> {
                let mut present = Vec::new();
                $(if let Some(value) = self.$grant.as_deref() {
                    present.push((permission_of(stringify!($grant)), value));
                })+
                present
            }
        })+
    };
}

/// S3's permission name for a grant header's field name (`grant_read_acp` -> `READ_ACP`).
fn permission_of(field: &'static str) -> &'static str {
    match field {
        "grant_read" => "READ",
        "grant_read_acp" => "READ_ACP",
        "grant_write" => "WRITE",
        "grant_write_acp" => "WRITE_ACP",
        _ => "FULL_CONTROL",
    }
}

grant_headers! {
    dto::PutObjectInput: grant_read, grant_full_control, grant_read_acp, grant_write_acp;
    dto::CopyObjectInput: grant_read, grant_full_control, grant_read_acp, grant_write_acp;
    dto::CreateMultipartUploadInput: grant_read, grant_full_control, grant_read_acp, grant_write_acp;
    dto::PutObjectAclInput: grant_read, grant_full_control, grant_read_acp, grant_write, grant_write_acp;
    dto::PutBucketAclInput: grant_read, grant_full_control, grant_read_acp, grant_write, grant_write_acp;
    dto::CreateBucketInput: grant_read, grant_full_control, grant_read_acp, grant_write, grant_write_acp;
    dto::PostObjectInput: grant_read, grant_full_control, grant_read_acp, grant_write_acp;
}

/// Requests that may ask for server-side encryption.
pub(crate) trait EncryptionHeaders {
    /// `x-amz-server-side-encryption`, if sent.
    fn server_side_encryption(&self) -> Option<&str> {
        None
    }
    /// Whether SSE-C (`x-amz-server-side-encryption-customer-*`) or a KMS key is asked for.
    fn customer_or_kms(&self) -> bool;
}

macro_rules! encryption_headers {
    ($($input:ty: $($field:ident),+;)+) => {
        $(impl EncryptionHeaders for $input {
            fn server_side_encryption(&self) -> Option<&str> {
                self.server_side_encryption.as_ref().map(|s| s.as_str())
            }
            fn customer_or_kms(&self) -> bool {
                $(self.$field.is_some())||+
            }
        })+
    };
}

encryption_headers! {
    dto::PutObjectInput: sse_customer_algorithm, ssekms_key_id;
    dto::PostObjectInput: sse_customer_algorithm, ssekms_key_id;
    dto::CopyObjectInput: sse_customer_algorithm, ssekms_key_id, copy_source_sse_customer_algorithm;
    dto::CreateMultipartUploadInput: sse_customer_algorithm, ssekms_key_id;
}

impl EncryptionHeaders for dto::UploadPartInput {
    fn customer_or_kms(&self) -> bool {
        self.sse_customer_algorithm.is_some()
    }
}

impl EncryptionHeaders for dto::UploadPartCopyInput {
    fn customer_or_kms(&self) -> bool {
        self.sse_customer_algorithm.is_some() || self.copy_source_sse_customer_algorithm.is_some()
    }
}

/// Whether a write asks for SSE-S3 (`AES256`), which the blob block does (`sse.rs`). SSE-KMS
/// and SSE-C are refused rather than ignored: an object stored other than its writer asked
/// would be worse than an error.
pub(crate) fn wants_sse(input: &impl EncryptionHeaders) -> Result<bool, S3Error> {
    if input.customer_or_kms() {
        return Err(sse_refused("encryption with a customer-provided or KMS key"));
    }
    match input.server_side_encryption() {
        None => Ok(false),
        Some(dto::ServerSideEncryption::AES256) => Ok(true),
        Some(other) => Err(sse_refused(&format!("server-side encryption {other}"))),
    }
}

/// The 501 for any encryption other than SSE-S3, on a write or as a bucket's default.
pub(crate) fn sse_refused(what: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NotImplemented,
        format!("{what} is not supported; server-side encryption here is SSE-S3 (AES256)"),
    )
}

/// The `x-amz-server-side-encryption` answer for an object or upload.
pub(crate) fn sse_field(encrypted: bool) -> Option<dto::ServerSideEncryption> {
    encrypted.then(|| dto::ServerSideEncryption::from_static(dto::ServerSideEncryption::AES256))
}

/// The group URIs of S3's ACLs.
const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// An object's ACL from a write's or PutObjectAcl's `x-amz-acl` or `x-amz-grant-*` headers
/// (S3 refuses both at once): a canned ACL, and grants to access keys.
pub(crate) fn object_acl(
    acl: Option<&dto::ObjectCannedACL>,
    input: &impl GrantHeaders,
) -> Result<(CannedAcl, Vec<Grant>), S3Error> {
    let headers = input.grant_headers();
    if let Some(acl) = acl {
        if !headers.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "specifying both a canned ACL and grant headers is not allowed",
            ));
        }
        let canned = CannedAcl::parse(acl.as_str())
            .map_err(|m| S3Error::with_message(S3ErrorCode::InvalidArgument, m))?;
        return Ok((canned, Vec::new()));
    }
    let mut grants = Grants::default();
    for (permission, value) in headers {
        for grantee in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let (kind, who) = grantee.split_once('=').ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InvalidArgument, format!("malformed grantee {grantee}"))
            })?;
            let who = who.trim().trim_matches('"');
            let kind = match kind.trim() {
                "id" => dto::Type::CANONICAL_USER,
                "uri" => dto::Type::GROUP,
                "emailAddress" => dto::Type::AMAZON_CUSTOMER_BY_EMAIL,
                other => {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!("unknown grantee type {other}; use id, uri or emailAddress"),
                    ));
                }
            };
            grants.add(kind, who, permission)?;
        }
    }
    Ok((grants.canned, grants.keys))
}

/// An object's ACL from PutObjectAcl's `AccessControlPolicy` body.
pub(crate) fn object_acl_body(policy: &dto::AccessControlPolicy) -> Result<(CannedAcl, Vec<Grant>), S3Error> {
    let mut grants = Grants::default();
    for grant in policy.grants.iter().flatten() {
        let (Some(grantee), Some(permission)) = (&grant.grantee, &grant.permission) else {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedACLError,
                "a grant needs a grantee and a permission",
            ));
        };
        let who = match grantee.type_.as_str() {
            dto::Type::CANONICAL_USER => grantee.id.as_deref(),
            dto::Type::GROUP => grantee.uri.as_deref(),
            _ => grantee.email_address.as_deref(),
        };
        let who = who
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::MalformedACLError, "a grantee names no one"))?;
        grants.add(grantee.type_.as_str(), who, permission.as_str())?;
    }
    Ok((grants.canned, grants.keys))
}

/// Grants gathered from headers or a body: groups reading become the canned ACL they are
/// (AllUsers is `public-read`, AuthenticatedUsers `authenticated-read`); grants to ids are
/// kept per access key.
#[derive(Default)]
struct Grants {
    canned: CannedAcl,
    keys: Vec<Grant>,
}

impl Grants {
    fn add(&mut self, kind: &str, who: &str, permission: &str) -> Result<(), S3Error> {
        let permission = match Permission::from_name(permission) {
            Some(permission) => permission,
            None if permission == "WRITE" => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "WRITE applies to buckets, not objects",
                ));
            }
            None => {
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedACLError,
                    format!("unknown permission {permission}"),
                ));
            }
        };
        match kind {
            dto::Type::CANONICAL_USER => {
                // Bounded before the duplicate check, which is linear in the grants so far.
                if self.keys.len() >= strata_blob::MAX_GRANTS {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!("an object may have at most {} grants", strata_blob::MAX_GRANTS),
                    ));
                }
                let grant = Grant { key: who.to_owned(), permission };
                if !self.keys.contains(&grant) {
                    self.keys.push(grant);
                }
            }
            dto::Type::GROUP if permission == Permission::Read && who == ALL_USERS => {
                self.canned = CannedAcl::PublicRead;
            }
            dto::Type::GROUP if permission == Permission::Read && who == AUTHENTICATED_USERS => {
                if self.canned != CannedAcl::PublicRead {
                    self.canned = CannedAcl::AuthenticatedRead;
                }
            }
            dto::Type::GROUP => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    format!(
                        "only READ to AllUsers or AuthenticatedUsers can be granted to a group, not {permission:?} to {who}"
                    ),
                ));
            }
            _ => {
                return Err(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "grants by e-mail address are not supported; grant to an access key (id=...)",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a bucket's canned ACL and grant headers: buckets here are private to their owner
/// (and what their policy allows), so any other ACL, and any grant, is refused rather than
/// ignored.
pub(crate) fn bucket_acl(acl: Option<&dto::BucketCannedACL>, grants: bool) -> Result<(), S3Error> {
    if grants {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "x-amz-grant-* headers are not supported on buckets; a bucket policy opens a bucket or prefix",
        ));
    }
    match acl.map(|a| a.as_str()) {
        None | Some("private") => Ok(()),
        Some(other) => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("the bucket ACL {other} is not supported; a bucket policy opens a bucket or prefix"),
        )),
    }
}

/// GetObjectAcl's and GetBucketAcl's answer: the owner has full control, a canned ACL adds
/// reading for everyone or for every access key, and `keys` are the grants to access keys.
pub(crate) fn acl_grants(owner: &str, acl: CannedAcl, keys: &[Grant]) -> (dto::Owner, dto::Grants) {
    let owner_id = dto::Owner { id: Some(owner.to_owned()), display_name: Some(owner.to_owned()) };
    let mut grants = vec![dto::Grant {
        grantee: Some(dto::Grantee {
            id: Some(owner.to_owned()),
            display_name: Some(owner.to_owned()),
            type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
            email_address: None,
            uri: None,
        }),
        permission: Some(dto::Permission::from_static(dto::Permission::FULL_CONTROL)),
    }];
    let group = match acl {
        CannedAcl::Private => None,
        CannedAcl::PublicRead => Some(ALL_USERS),
        CannedAcl::AuthenticatedRead => Some(AUTHENTICATED_USERS),
    };
    if let Some(uri) = group {
        grants.push(dto::Grant {
            grantee: Some(dto::Grantee {
                type_: dto::Type::from_static(dto::Type::GROUP),
                uri: Some(uri.to_owned()),
                id: None,
                display_name: None,
                email_address: None,
            }),
            permission: Some(dto::Permission::from_static(dto::Permission::READ)),
        });
    }
    // The owner's own full control is shown once, above.
    for grant in keys.iter().filter(|g| !(g.key == owner && g.permission == Permission::FullControl)) {
        grants.push(dto::Grant {
            grantee: Some(dto::Grantee {
                id: Some(grant.key.clone()),
                display_name: Some(grant.key.clone()),
                type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                email_address: None,
                uri: None,
            }),
            permission: Some(dto::Permission::from(grant.permission.as_str().to_owned())),
        });
    }
    (owner_id, grants)
}

/// The part a read names (`?partNumber=`), refused next to a `Range`, as S3 refuses it.
pub(crate) fn part_number(part: Option<i32>, range: Option<&dto::Range>) -> Result<Option<u64>, S3Error> {
    match (part, range) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter",
        )),
        (Some(n @ 1..=10_000), None) => Ok(Some(n as u64)),
        (Some(_), None) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive",
        )),
    }
}

/// `bytes=first-last` of UploadPartCopy's `x-amz-copy-source-range`.
pub(crate) fn copy_source_range(header: &str) -> Result<ByteRange, S3Error> {
    match dto::Range::parse(header) {
        Ok(dto::Range::Int { first, last: Some(last) }) => Ok(ByteRange::From { first, last: Some(last) }),
        _ => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last",
        )),
    }
}

pub(crate) fn algorithm(a: &dto::ChecksumAlgorithm) -> Result<ChecksumAlgorithm, S3Error> {
    ChecksumAlgorithm::parse(a.as_str()).ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("unknown checksum algorithm {}", a.as_str()),
        )
    })
}

pub(crate) fn dto_algorithm(a: ChecksumAlgorithm) -> dto::ChecksumAlgorithm {
    dto::ChecksumAlgorithm::from(a.name().to_owned())
}

/// The checksum values a request carries in its headers, by algorithm.
pub(crate) fn sent_checksums(
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
) -> Vec<(ChecksumAlgorithm, String)> {
    [
        (ChecksumAlgorithm::Crc32, crc32),
        (ChecksumAlgorithm::Crc32c, crc32c),
        (ChecksumAlgorithm::Crc64Nvme, crc64nvme),
        (ChecksumAlgorithm::Sha1, sha1),
        (ChecksumAlgorithm::Sha256, sha256),
    ]
    .into_iter()
    .filter_map(|(a, v)| v.map(|v| (a, v)))
    .collect()
}

/// The algorithms to compute for an upload: those named by `x-amz-sdk-checksum-algorithm`
/// (or the operation's field), sent in headers, or announced as trailers (`x-amz-trailer`).
pub(crate) fn wanted_algorithms(
    headers: &http::HeaderMap,
    field: Option<&dto::ChecksumAlgorithm>,
    sent: &[(ChecksumAlgorithm, String)],
) -> Result<Vec<ChecksumAlgorithm>, S3Error> {
    let mut out: Vec<ChecksumAlgorithm> = sent.iter().map(|(a, _)| *a).collect();
    if let Some(a) = field {
        out.push(algorithm(a)?);
    }
    for name in headers.get_all("x-amz-trailer").iter().filter_map(|v| v.to_str().ok()) {
        for trailer in name.split(',') {
            if let Some(a) = trailer.trim().strip_prefix("x-amz-checksum-").and_then(ChecksumAlgorithm::parse)
            {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// Adds the checksums sent as trailers (once the body has been read) to `expected`.
pub(crate) fn add_trailer_checksums(trailers: Option<&s3s::TrailingHeaders>, expected: &mut Expected) {
    let Some(map) = trailers.and_then(|t| t.take()) else { return };
    for (name, value) in &map {
        if let (Some(a), Ok(v)) =
            (name.as_str().strip_prefix("x-amz-checksum-").and_then(ChecksumAlgorithm::parse), value.to_str())
        {
            expected.checksums.retain(|(e, _)| *e != a);
            expected.checksums.push((a, v.to_owned()));
        }
    }
}

/// The five checksum fields of S3's outputs, from stored checksums.
pub(crate) struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub kind: Option<dto::ChecksumType>,
}

pub(crate) fn checksum_fields(sums: &Checksums) -> ChecksumFields {
    let get = |a| sums.get(a).map(str::to_owned);
    ChecksumFields {
        crc32: get(ChecksumAlgorithm::Crc32),
        crc32c: get(ChecksumAlgorithm::Crc32c),
        crc64nvme: get(ChecksumAlgorithm::Crc64Nvme),
        sha1: get(ChecksumAlgorithm::Sha1),
        sha256: get(ChecksumAlgorithm::Sha256),
        kind: (!sums.values.is_empty()).then(|| {
            dto::ChecksumType::from(if sums.composite { "COMPOSITE" } else { "FULL_OBJECT" }.to_owned())
        }),
    }
}

/// Parses `x-amz-tagging` (`k1=v1&k2=v2`, URL-encoded).
pub(crate) fn tagging_header(header: Option<&str>) -> BTreeMap<String, String> {
    header.map(|h| form_urlencoded::parse(h.as_bytes()).into_owned().collect()).unwrap_or_default()
}

pub(crate) fn tag_set(tags: &BTreeMap<String, String>) -> Vec<dto::Tag> {
    tags.iter().map(|(k, v)| dto::Tag { key: Some(k.clone()), value: Some(v.clone()) }).collect()
}

pub(crate) fn tags_from(set: Vec<dto::Tag>) -> BTreeMap<String, String> {
    set.into_iter().filter_map(|t| Some((t.key?, t.value.unwrap_or_default()))).collect()
}

/// User metadata as stored: names lower case.
pub(crate) fn user_metadata(m: Option<dto::Metadata>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

pub(crate) fn continuation_token(after: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

pub(crate) fn decode_continuation_token(token: &str) -> Result<String, S3Error> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::with_message(S3ErrorCode::InvalidArgument, "the continuation token is not valid")
        })
}
