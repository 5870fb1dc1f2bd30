//! The records the blob block keeps in core, stored as JSON (see `docs/format/blob.md`).

use crate::checksum::Checksums;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use strata_core::{Result, errcorrupt};

/// Whether a bucket keeps old versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Never enabled: a write replaces the object.
    #[default]
    Unversioned,
    /// Every write adds a version; a delete adds a delete marker.
    Enabled,
    /// Was enabled: old versions stay, new writes replace the `null` version.
    Suspended,
}

/// One rule of a bucket's CORS configuration, as S3 has it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

/// A bucket.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ms: u64,
    /// The access key that created it.
    pub owner: String,
    #[serde(default)]
    pub versioning: Versioning,
    /// The bucket policy, as the JSON the user sent (validated when set).
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub cors: Vec<CorsRule>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Lifecycle rules; none when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle: Vec<crate::lifecycle::LifecycleRule>,
    /// New objects are encrypted at rest (SSE-S3) even when their writes do not ask.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_encryption: bool,
}

/// A run of an object's bytes: a file under `<data-dir>/blob/data/`, or a value in core for
/// small ones (`Key::Data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub id: String,
    pub size: u64,
    #[serde(default)]
    pub inline: bool,
    /// Encrypted at rest (`sse.rs`) under the key derived from this id: the segment's own id
    /// when written, its source's in a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// The HTTP headers an object is served with, as its writer set them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headers {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
}

/// One version of an object, or a delete marker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object's key (not stored: it is in the record's key).
    #[serde(skip)]
    pub key: String,
    /// `"null"` for the version of an unversioned or suspended bucket.
    pub version_id: String,
    #[serde(default)]
    pub delete_marker: bool,
    pub size: u64,
    /// Without quotes: the hex MD5, or `md5-of-part-md5s-N` for a multipart upload.
    pub etag: String,
    pub last_modified_ms: u64,
    #[serde(default)]
    pub headers: Headers,
    /// `x-amz-meta-*`, names lower case without the prefix.
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub checksums: Checksums,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// For a multipart object, the size of each part, in order.
    #[serde(default)]
    pub part_sizes: Vec<u64>,
    #[serde(default, skip_serializing_if = "CannedAcl::is_private")]
    pub acl: CannedAcl,
    /// Explicit grants to access keys, besides what `acl` gives everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
}

/// An explicit ACL grant on an object to one access key (S3's canonical user id here), from
/// `x-amz-grant-*` on the write or a PutObjectAcl.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub key: String,
    pub permission: Permission,
}

/// What an object grant lets its grantee do; S3's names. (`WRITE` applies to buckets only.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// Read the object and its metadata.
    Read,
    /// Read the object's ACL.
    ReadAcp,
    /// Replace the object's ACL.
    WriteAcp,
    /// All three.
    FullControl,
}

impl Permission {
    /// Whether the permission covers `action` (an IAM action name) on the object.
    pub fn allows(self, action: &str) -> bool {
        let wanted = match action {
            "s3:GetObject" => Permission::Read,
            "s3:GetObjectAcl" => Permission::ReadAcp,
            "s3:PutObjectAcl" => Permission::WriteAcp,
            _ => return false,
        };
        self == wanted || self == Permission::FullControl
    }

    /// The permission S3 calls `name` (`READ`, `READ_ACP`, ...), if an object may have it.
    pub fn from_name(name: &str) -> Option<Permission> {
        [Permission::Read, Permission::ReadAcp, Permission::WriteAcp, Permission::FullControl]
            .into_iter()
            .find(|p| p.as_str() == name)
    }

    /// S3's name of the permission.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }
}

/// Who besides the bucket's owner (and what its policy allows) may read an object: its
/// canned ACL, from `x-amz-acl` on the write or PutObjectAcl.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CannedAcl {
    #[default]
    Private,
    /// Anyone, unsigned requests included.
    PublicRead,
    /// Any request signed with a valid access key.
    AuthenticatedRead,
}

impl CannedAcl {
    /// S3's canned ACL names for objects. A bucket's objects belong to its owner here, so
    /// `bucket-owner-read` and `bucket-owner-full-control` are `private`; `public-read-write`
    /// grants nothing more than reading on an object.
    pub fn parse(name: &str) -> Result<CannedAcl, String> {
        Ok(match name {
            "private" | "bucket-owner-read" | "bucket-owner-full-control" | "aws-exec-read" => {
                CannedAcl::Private
            }
            "public-read" | "public-read-write" => CannedAcl::PublicRead,
            "authenticated-read" => CannedAcl::AuthenticatedRead,
            other => return Err(format!("the canned ACL {other} is not one an object can have")),
        })
    }

    pub fn is_private(&self) -> bool {
        *self == CannedAcl::Private
    }
}

impl ObjectMeta {
    /// The ETag as HTTP carries it, quoted.
    pub fn quoted_etag(&self) -> String {
        format!("\"{}\"", self.etag)
    }

    pub fn is_null_version(&self) -> bool {
        self.version_id == NULL_VERSION
    }

    /// Whether its bytes are encrypted at rest (S3's SSE-S3): every segment is.
    pub fn encrypted(&self) -> bool {
        !self.segments.is_empty() && self.segments.iter().all(|s| s.key_id.is_some())
    }
}

/// The version id of objects written while versioning is off or suspended.
pub const NULL_VERSION: &str = "null";

/// A multipart upload in progress: what the object will be created with.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UploadMeta {
    pub initiated_ms: u64,
    pub owner: String,
    #[serde(default)]
    pub headers: Headers,
    #[serde(default)]
    pub user_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The checksum algorithm the parts carry, if the client chose one.
    #[serde(default)]
    pub checksum_algorithm: Option<crate::ChecksumAlgorithm>,
    #[serde(default)]
    pub acl: CannedAcl,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// The client asked for a full-object checksum rather than a composite one.
    #[serde(default)]
    pub checksum_full_object: bool,
    /// Parts are encrypted at rest (`x-amz-server-side-encryption: AES256` at creation).
    #[serde(default)]
    pub encrypted: bool,
}

/// An uploaded part.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PartMeta {
    pub size: u64,
    /// Hex MD5 of the part, without quotes.
    pub etag: String,
    pub last_modified_ms: u64,
    #[serde(default)]
    pub checksums: Checksums,
    pub segment: Option<Segment>,
}

/// An access key that may sign requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserMeta {
    pub secret_key: String,
    /// Admins may do anything; other users act on the buckets they own and what bucket
    /// policies grant them.
    pub admin: bool,
    pub created_ms: u64,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("blob records serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| errcorrupt!("blob record: {e}"))
}
