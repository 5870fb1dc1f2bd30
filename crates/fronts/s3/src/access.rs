//! Who may call: SigV4 secrets come from the blob block's access keys, and every request,
//! signed or anonymous, is authorized by the block (admins, bucket owners, bucket policies).

use crate::convert::s3_error;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};
use strata_blob::{Blob, Principal};

pub(crate) struct Keys(pub(crate) Blob);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // A point read of core, done on the request's thread like the checks below.
        match self.0.user(access_key).map_err(s3_error)? {
            Some((secret, _)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(InvalidAccessKeyId, "the access key you provided does not exist")),
        }
    }
}

pub(crate) struct Policies(pub(crate) Blob);

/// The IAM action of an S3 operation, as bucket policies name it.
pub(crate) fn action(op: &str) -> String {
    match op {
        "GetObject" | "HeadObject" => "s3:GetObject",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "s3:PutLifecycleConfiguration",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        other => return format!("s3:{other}"),
    }
    .to_owned()
}

#[async_trait::async_trait]
impl S3Access for Policies {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let principal_key = cx.credentials().map(|c| c.access_key.clone());
        let action = action(cx.s3_op().name());
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        // Point reads of core (the key, the bucket, its policy): cheaper here than a
        // blocking thread's round trip on every request.
        let principal = principal_key.as_deref().map_or(Principal::Anonymous, Principal::Key);
        self.0.authorize(principal, &action, bucket.as_deref(), key.as_deref()).map_err(s3_error).map_err(
            |e| {
                if *e.code() == s3s::S3ErrorCode::AccessDenied {
                    e
                } else {
                    s3_error(strata_blob::BlobError::AccessDenied(e.to_string()))
                }
            },
        )
    }
}
