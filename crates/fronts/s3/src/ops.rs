//! The S3 operations: each decodes its s3s input, calls the blob block (on a blocking
//! thread), and encodes the output. No business logic lives here.

use crate::body::{read_body, spawn, write_body};
use crate::convert::*;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use strata_blob::{Blob, Expected, Headers, NewObject, ObjectMeta, Pick, Principal, UploadMeta, Versioning};

/// The S3 service over the blob block.
#[derive(Clone)]
pub(crate) struct Strata {
    pub(crate) blob: Blob,
    pub(crate) region: String,
}

/// What S3 answers for an object stored without a content type.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

fn owner_of<T>(req: &S3Request<T>) -> String {
    req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default()
}

fn ok<T>(output: T) -> S3Result<S3Response<T>> {
    Ok(S3Response::new(output))
}

fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_deref().map(str::to_owned)))
        }
        _ => Err(s3_error!(NotImplemented, "only bucket copy sources are supported")),
    }
}

/// Copying reads the source: the caller must be allowed `s3:GetObject` on it too.
async fn authorize_source<T>(blob: &Blob, req: &S3Request<T>, bucket: &str, key: &str) -> S3Result<()> {
    let (blob, principal_key) = (blob.clone(), req.credentials.as_ref().map(|c| c.access_key.clone()));
    let (bucket, key) = (bucket.to_owned(), key.to_owned());
    spawn(move || {
        let principal = principal_key.as_deref().map_or(Principal::Anonymous, Principal::Key);
        blob.authorize(principal, "s3:GetObject", Some(&bucket), Some(&key))
    })
    .await
}

fn headers_of(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
) -> Headers {
    Headers {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires: expires.map(|t| millis(t).to_string()),
    }
}

fn expires_of(headers: &Headers) -> Option<Timestamp> {
    headers.expires.as_deref().and_then(|e| e.parse().ok()).map(timestamp)
}

fn version_out(meta: &ObjectMeta, versioning_ever: bool) -> Option<String> {
    (versioning_ever || !meta.is_null_version()).then(|| meta.version_id.clone())
}

fn checksum_mode_on(mode: &Option<ChecksumMode>) -> bool {
    mode.as_ref().is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

impl Strata {
    /// Changes a bucket's settings with `f` (tags, CORS rules).
    async fn change_bucket(
        &self,
        bucket: String,
        mut f: impl FnMut(&mut strata_blob::BucketMeta) + Send + 'static,
    ) -> S3Result<()> {
        let blob = self.blob.clone();
        spawn(move || {
            blob.update_bucket(&bucket, |meta| {
                f(meta);
                Ok(())
            })
        })
        .await
    }

    /// One page of a bucket's current objects for ListObjects and ListObjectsV2, with the
    /// max-keys it was limited to.
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &Option<String>,
        delimiter: &Option<String>,
        after: Option<String>,
        max_keys: Option<i32>,
    ) -> S3Result<(strata_blob::ListPage, i32)> {
        let max_keys = max_keys.unwrap_or(1000).clamp(0, 1000);
        let query = strata_blob::ListQuery {
            prefix: prefix.clone().unwrap_or_default(),
            delimiter: delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max: max_keys as usize,
        };
        let (blob, bucket) = (self.blob.clone(), bucket.to_owned());
        Ok((spawn(move || blob.list_objects(&bucket, &query)).await?, max_keys))
    }

    /// Whether a write to `bucket` is encrypted: it asks (`wants_sse`), or the bucket's
    /// default encryption says so. The bucket record is read on this thread: one point read
    /// from core, cheaper than a hand-over to a blocking thread on every write.
    fn encrypts(&self, bucket: &str, asked: bool) -> S3Result<bool> {
        Ok(asked || self.blob.bucket(bucket).map_err(s3_error)?.default_encryption)
    }

    /// `bucket`'s versioning; once it has been on, its objects show their version ids. A
    /// point read of core, on this thread as in `encrypts`.
    fn versioning(&self, bucket: &str) -> S3Result<Versioning> {
        Ok(self.blob.bucket(bucket).map_err(s3_error)?.versioning)
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_object(
        &self,
        headers: &http::HeaderMap,
        trailers: Option<&s3s::TrailingHeaders>,
        bucket: String,
        key: String,
        body: Option<StreamingBlob>,
        content_length: Option<i64>,
        algorithm_field: Option<&ChecksumAlgorithm>,
        mut new: NewObject,
        encrypted: bool,
    ) -> S3Result<ObjectMeta> {
        let asked = wanted_algorithms(headers, algorithm_field, &new.expected.checksums)?;
        let mut writer = self.blob.object_writer(&asked);
        if encrypted {
            writer = writer.encrypted();
        }
        let written = write_body(writer, body, content_length, self.blob.limits().inline_max_bytes).await?;
        add_trailer_checksums(trailers, &mut new.expected);
        if written.in_memory() {
            // Held in memory: committed here, acknowledged after its fsync.
            let unsynced = self.blob.put_object_unsynced(&bucket, &key, new, written, &asked);
            return unsynced.map_err(s3_error)?.durable().await.map_err(s3_error);
        }
        let blob = self.blob.clone();
        spawn(move || blob.put_object(&bucket, &key, new, written, &asked)).await
    }
}

#[async_trait::async_trait]
impl S3 for Strata {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let blob = self.blob.clone();
        let owner = owner_of(&req);
        let admin = spawn({
            let (blob, owner) = (blob.clone(), owner.clone());
            move || Ok(blob.user(&owner)?.is_some_and(|(_, admin)| admin))
        })
        .await?;
        let buckets = spawn(move || blob.list_buckets()).await?;
        let buckets = buckets
            .into_iter()
            .filter(|(_, meta)| admin || meta.owner == owner)
            .map(|(name, meta)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(meta.created_ms)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        ok(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner { id: Some(owner.clone()), display_name: Some(owner) }),
            ..Default::default()
        })
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let owner = owner_of(&req);
        bucket_acl(req.input.acl.as_ref(), req.input.has_grants())?;
        let bucket = req.input.bucket;
        let blob = self.blob.clone();
        let name = bucket.clone();
        spawn(move || blob.create_bucket(&name, &owner)).await?;
        ok(CreateBucketOutput { location: Some(format!("/{bucket}")) })
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let blob = self.blob.clone();
        spawn(move || blob.delete_bucket(&req.input.bucket)).await?;
        ok(DeleteBucketOutput {})
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let blob = self.blob.clone();
        spawn(move || blob.bucket(&req.input.bucket)).await?;
        ok(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() })
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let input = req.input;
        let blob = self.blob.clone();
        let (owner, meta) = spawn(move || {
            let meta = blob.head_object(&input.bucket, &input.key, input.version_id.as_deref())?;
            Ok((blob.bucket(&input.bucket)?.owner, meta))
        })
        .await?;
        let (owner, grants) = acl_grants(&owner, meta.acl, &meta.grants);
        ok(GetObjectAclOutput { owner: Some(owner), grants: Some(grants), ..Default::default() })
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        let input = req.input;
        let (acl, grants) = match &input.access_control_policy {
            Some(_) if input.acl.is_some() || input.has_grants() => {
                return Err(s3_error!(
                    InvalidRequest,
                    "an AccessControlPolicy body cannot come with a canned ACL or grant headers"
                ));
            }
            Some(policy) => object_acl_body(policy)?,
            None => object_acl(input.acl.as_ref(), &input)?,
        };
        let blob = self.blob.clone();
        spawn(move || {
            blob.set_object_acl(&input.bucket, &input.key, input.version_id.as_deref(), acl, grants)
        })
        .await?;
        ok(PutObjectAclOutput::default())
    }

    /// A bucket's ACL is its owner's full control; who else may do what is its policy's.
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let blob = self.blob.clone();
        let bucket = req.input.bucket;
        let owner = spawn(move || Ok(blob.bucket(&bucket)?.owner)).await?;
        let (owner, grants) = acl_grants(&owner, strata_blob::CannedAcl::Private, &[]);
        ok(GetBucketAclOutput { owner: Some(owner), grants: Some(grants) })
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        let input = req.input;
        if input.access_control_policy.is_some() || input.has_grants() || input.acl.is_none() {
            return Err(s3_error!(
                NotImplemented,
                "only a canned private bucket ACL is supported; a bucket policy opens a bucket or prefix"
            ));
        }
        bucket_acl(input.acl.as_ref(), false)?;
        let blob = self.blob.clone();
        spawn(move || blob.bucket(&input.bucket).map(drop)).await?;
        ok(PutBucketAclOutput::default())
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let blob = self.blob.clone();
        spawn(move || blob.bucket(&req.input.bucket)).await?;
        // S3 reports us-east-1 as an empty location constraint.
        let location =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        ok(GetBucketLocationOutput { location_constraint: location })
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let sse = self.encrypts(&req.input.bucket, wants_sse(&req.input)?)?;
        let input = req.input;
        let (acl, grants) = object_acl(input.acl.as_ref(), &input)?;
        let expected = Expected {
            content_md5: input.content_md5,
            checksums: sent_checksums(
                input.checksum_crc32,
                input.checksum_crc32c,
                input.checksum_crc64nvme,
                input.checksum_sha1,
                input.checksum_sha256,
            ),
        };
        let new = NewObject {
            headers: headers_of(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires,
            ),
            user_metadata: user_metadata(input.metadata),
            tags: tagging_header(input.tagging.as_deref()),
            expected,
            if_none_match_star: matches!(input.if_none_match, Some(ETagCondition::Any)),
            if_match: input.if_match.map(|c| match c {
                ETagCondition::Any => "*".to_owned(),
                ETagCondition::ETag(t) => t.into_value(),
            }),
            acl,
            grants,
        };
        let meta = self
            .store_object(
                &req.headers,
                req.trailing_headers.as_ref(),
                input.bucket,
                input.key,
                input.body,
                input.content_length,
                input.checksum_algorithm.as_ref(),
                new,
                sse,
            )
            .await?;
        let sums = checksum_fields(&meta.checksums);
        ok(PutObjectOutput {
            e_tag: Some(etag(&meta.etag)),
            server_side_encryption: sse_field(meta.encrypted()),
            version_id: (!meta.is_null_version()).then(|| meta.version_id.clone()),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: sums.kind,
            size: Some(meta.size as i64),
            ..Default::default()
        })
    }

    async fn post_object(&self, req: S3Request<PostObjectInput>) -> S3Result<S3Response<PostObjectOutput>> {
        // s3s reads the ACL from an `x-amz-acl` field; S3's forms name it `acl` (`form.rs`).
        let form_acl =
            req.extensions.get::<crate::form::FormAcl>().map(|a| ObjectCannedACL::from(a.0.clone()));
        let sse = self.encrypts(&req.input.bucket, wants_sse(&req.input)?)?;
        let input = req.input;
        if input.has_grants() {
            return Err(s3_error!(
                NotImplemented,
                "grant fields are not supported in form uploads; use the acl field or PutObjectAcl"
            ));
        }
        let acl = object_acl(input.acl.as_ref().or(form_acl.as_ref()), &input)?.0;
        let new = NewObject {
            headers: headers_of(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires,
            ),
            user_metadata: user_metadata(input.metadata),
            tags: tagging_header(input.tagging.as_deref()),
            expected: Expected { content_md5: input.content_md5, checksums: Vec::new() },
            acl,
            ..NewObject::default()
        };
        let bucket = input.bucket.clone();
        let key = input.key.clone();
        let meta = self
            .store_object(
                &req.headers,
                None,
                input.bucket,
                input.key,
                input.body,
                input.content_length,
                None,
                new,
                sse,
            )
            .await?;
        let status = input.success_action_status.unwrap_or(204);
        let mut response = S3Response::new(PostObjectOutput {
            e_tag: Some(etag(&meta.etag)),
            server_side_encryption: sse_field(meta.encrypted()),
            version_id: (!meta.is_null_version()).then(|| meta.version_id.clone()),
            ..Default::default()
        });
        if let Ok(location) = format!("/{bucket}/{key}").parse() {
            response.headers.insert(http::header::LOCATION, location);
        }
        response.status = http::StatusCode::from_u16(status as u16).ok().filter(|s| s.is_success());
        Ok(response)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let part = part_number(input.part_number, input.range.as_ref())?;
        let conditions = read_conditions(
            input.if_match,
            input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        );
        let range = input.range.map(range);
        let pick = part.map_or(Pick::Range(range), Pick::Part);
        let (bucket, key, version) = (input.bucket.clone(), input.key.clone(), input.version_id.clone());
        // An object held in core is read here; one in files on a blocking thread.
        let in_core = self.blob.open_object_in_core(&bucket, &key, version.as_deref(), pick, &conditions);
        let (meta, (start, len), body) = match in_core.map_err(s3_error)? {
            Some((meta, reader, span)) => (meta, span, read_body(reader)),
            None => {
                let blob = self.blob.clone();
                spawn(move || {
                    let (meta, reader, span) =
                        blob.open_object_part(&bucket, &key, version.as_deref(), pick, &conditions)?;
                    Ok((meta, span, read_body(reader)))
                })
                .await?
            }
        };
        let versioned = self.versioning(&input.bucket)? != Versioning::Unversioned;
        let partial = range.is_some() || part.is_some();
        let sums = if checksum_mode_on(&input.checksum_mode) && !partial {
            checksum_fields(&meta.checksums)
        } else {
            checksum_fields(&Default::default())
        };
        let output = GetObjectOutput {
            body: Some(body),
            accept_ranges: Some("bytes".into()),
            content_length: Some(len as i64),
            content_range: partial
                .then(|| format!("bytes {start}-{}/{}", (start + len).max(1) - 1, meta.size)),
            content_type: input
                .response_content_type
                .or(meta.headers.content_type.clone())
                .or(Some(DEFAULT_CONTENT_TYPE.into())),
            content_encoding: input.response_content_encoding.or(meta.headers.content_encoding.clone()),
            content_disposition: input
                .response_content_disposition
                .or(meta.headers.content_disposition.clone()),
            content_language: input.response_content_language.or(meta.headers.content_language.clone()),
            cache_control: input.response_cache_control.or(meta.headers.cache_control.clone()),
            expires: input.response_expires.or(expires_of(&meta.headers)),
            e_tag: Some(etag(&meta.etag)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            metadata: Some(meta.user_metadata.clone().into_iter().collect()),
            version_id: version_out(&meta, versioned),
            tag_count: (!meta.tags.is_empty()).then_some(meta.tags.len() as i32),
            parts_count: (!meta.part_sizes.is_empty()).then_some(meta.part_sizes.len() as i32),
            server_side_encryption: sse_field(meta.encrypted()),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: sums.kind,
            ..Default::default()
        };
        let mut response = S3Response::new(output);
        if partial {
            response.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let part = part_number(input.part_number, input.range.as_ref())?;
        let conditions = read_conditions(
            input.if_match,
            input.if_none_match,
            input.if_modified_since,
            input.if_unmodified_since,
        );
        // Point reads of core, done here.
        let meta = self.blob.head_object(&input.bucket, &input.key, input.version_id.as_deref());
        let meta = meta.map_err(s3_error)?;
        strata_blob::check_read_conditions(&meta, &conditions).map_err(s3_error)?;
        let versioned = self.versioning(&input.bucket)? != Versioning::Unversioned;
        let wanted = match part {
            Some(part) => strata_blob::part_range(&meta, part).map_err(s3_error)?,
            None => input.range.map(range),
        };
        let (start, len) = strata_blob::resolve_range(wanted, meta.size).map_err(s3_error)?;
        let partial = input.range.is_some() || part.is_some();
        let sums = if checksum_mode_on(&input.checksum_mode) && !partial {
            checksum_fields(&meta.checksums)
        } else {
            checksum_fields(&Default::default())
        };
        // s3s answers every HeadObject with 200, whatever status is set here; a partial
        // HEAD shows in its Content-Range and Content-Length.
        ok(HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            content_length: Some(len as i64),
            content_range: partial
                .then(|| format!("bytes {start}-{}/{}", (start + len).max(1) - 1, meta.size)),
            content_type: meta.headers.content_type.clone().or(Some(DEFAULT_CONTENT_TYPE.into())),
            content_encoding: meta.headers.content_encoding.clone(),
            content_disposition: meta.headers.content_disposition.clone(),
            content_language: meta.headers.content_language.clone(),
            cache_control: meta.headers.cache_control.clone(),
            expires: expires_of(&meta.headers),
            e_tag: Some(etag(&meta.etag)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            metadata: Some(meta.user_metadata.clone().into_iter().collect()),
            version_id: version_out(&meta, versioned),
            parts_count: (!meta.part_sizes.is_empty()).then_some(meta.part_sizes.len() as i32),
            server_side_encryption: sse_field(meta.encrypted()),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: sums.kind,
            ..Default::default()
        })
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        // Core work only: committed here, acknowledged after its fsync.
        let unsynced =
            self.blob.delete_object_unsynced(&input.bucket, &input.key, input.version_id.as_deref());
        let deleted = unsynced.map_err(s3_error)?.durable().await.map_err(s3_error)?;
        ok(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        })
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys may be deleted at once"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let blob = self.blob.clone();
        let bucket = input.bucket;
        let principal_key = req.credentials.as_ref().map(|c| c.access_key.clone());
        let (deleted, errors) = spawn(move || {
            let principal = principal_key.as_deref().map_or(Principal::Anonymous, Principal::Key);
            let (mut deleted, mut errors) = (Vec::new(), Vec::new());
            for object in input.delete.objects {
                let result = blob
                    .authorize(principal, "s3:DeleteObject", Some(&bucket), Some(&object.key))
                    .and_then(|()| blob.delete_object(&bucket, &object.key, object.version_id.as_deref()));
                match result {
                    Ok(d) => deleted.push(DeletedObject {
                        key: Some(object.key),
                        delete_marker: d.delete_marker.then_some(true),
                        delete_marker_version_id: d.delete_marker.then(|| d.version_id.clone()).flatten(),
                        version_id: object.version_id,
                    }),
                    Err(err) => {
                        let e = s3_error(err);
                        errors.push(Error {
                            code: Some(e.code().as_str().to_owned()),
                            key: Some(object.key),
                            message: e.message().map(str::to_owned),
                            version_id: object.version_id,
                        });
                    }
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        ok(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: Some(errors),
            ..Default::default()
        })
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let sse = self.encrypts(&req.input.bucket, wants_sse(&req.input)?)?;
        let (src_bucket, src_key, src_version) = copy_source(&req.input.copy_source)?;
        authorize_source(&self.blob, &req, &src_bucket, &src_key).await?;
        let input = req.input;
        let (acl, grants) = object_acl(input.acl.as_ref(), &input)?;
        let conditions = read_conditions(
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let replace =
            input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE).then(
                || {
                    (
                        headers_of(
                            input.content_type,
                            input.content_encoding,
                            input.content_disposition,
                            input.content_language,
                            input.cache_control,
                            input.expires,
                        ),
                        user_metadata(input.metadata),
                    )
                },
            );
        let tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE)
            .then(|| tagging_header(input.tagging.as_deref()));
        let blob = self.blob.clone();
        let (bucket, key) = (input.bucket, input.key);
        let source_version = src_version.clone();
        let meta = spawn(move || {
            blob.copy_object(
                (&src_bucket, &src_key, src_version.as_deref()),
                (&bucket, &key),
                strata_blob::CopyAs { replace, tags, acl, grants, encrypt: sse },
                &conditions,
            )
        })
        .await?;
        let sums = checksum_fields(&meta.checksums);
        ok(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&meta.etag)),
                last_modified: Some(timestamp(meta.last_modified_ms)),
                checksum_crc32: sums.crc32,
                checksum_crc32c: sums.crc32c,
                checksum_crc64nvme: sums.crc64nvme,
                checksum_sha1: sums.sha1,
                checksum_sha256: sums.sha256,
                checksum_type: sums.kind,
            }),
            copy_source_version_id: source_version,
            version_id: (!meta.is_null_version()).then(|| meta.version_id.clone()),
            server_side_encryption: sse_field(meta.encrypted()),
            ..Default::default()
        })
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(decode_continuation_token(token)?),
            (None, start_after) => start_after.clone(),
        };
        let (page, max_keys) =
            self.list_page(&input.bucket, &input.prefix, &input.delimiter, after, input.max_keys).await?;
        let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
        let enc = KeyEncoding::of(&input.encoding_type);
        ok(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc.apply(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(|d| enc.apply(d)),
            max_keys: Some(max_keys),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            start_after: input.start_after.map(|s| enc.apply(s)),
            is_truncated: Some(page.truncated),
            next_continuation_token: page.next_after.as_deref().map(continuation_token),
            contents: Some(page.objects.iter().map(|o| object_entry(o, enc)).collect()),
            common_prefixes: Some(enc.prefixes(page.common_prefixes)),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let (page, max_keys) = self
            .list_page(&input.bucket, &input.prefix, &input.delimiter, input.marker.clone(), input.max_keys)
            .await?;
        let enc = KeyEncoding::of(&input.encoding_type);
        ok(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.apply(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.clone().map(|d| enc.apply(d)),
            marker: input.marker.map(|m| enc.apply(m)),
            max_keys: Some(max_keys),
            is_truncated: Some(page.truncated),
            // S3 sends NextMarker only with a delimiter; clients use the last key otherwise.
            next_marker: if input.delimiter.is_some() { page.next_after.map(|m| enc.apply(m)) } else { None },
            contents: Some(page.objects.iter().map(|o| object_entry(o, enc)).collect()),
            common_prefixes: Some(enc.prefixes(page.common_prefixes)),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let query = strata_blob::VersionQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            key_marker: input.key_marker.clone().filter(|k| !k.is_empty()),
            version_id_marker: input.version_id_marker.clone().filter(|v| !v.is_empty()),
            max: max_keys as usize,
        };
        let blob = self.blob.clone();
        let bucket = input.bucket.clone();
        let page = spawn(move || blob.list_versions(&bucket, &query)).await?;
        let enc = KeyEncoding::of(&input.encoding_type);
        let (mut versions, mut markers) = (Vec::new(), Vec::new());
        for (meta, is_latest) in page.versions {
            if meta.delete_marker {
                markers.push(DeleteMarkerEntry {
                    key: Some(enc.apply(meta.key.clone())),
                    version_id: Some(meta.version_id.clone()),
                    is_latest: Some(is_latest),
                    last_modified: Some(timestamp(meta.last_modified_ms)),
                    owner: None,
                });
            } else {
                versions.push(ObjectVersion {
                    key: Some(enc.apply(meta.key.clone())),
                    version_id: Some(meta.version_id.clone()),
                    is_latest: Some(is_latest),
                    e_tag: Some(etag(&meta.etag)),
                    size: Some(meta.size as i64),
                    last_modified: Some(timestamp(meta.last_modified_ms)),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
        }
        ok(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(enc.apply(input.prefix.unwrap_or_default())),
            delimiter: input.delimiter.map(|d| enc.apply(d)),
            key_marker: input.key_marker.map(|k| enc.apply(k)),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max_keys),
            is_truncated: Some(page.truncated),
            next_key_marker: page.next_key_marker.map(|k| enc.apply(k)),
            next_version_id_marker: page.next_version_id_marker,
            versions: Some(versions),
            delete_markers: Some(markers),
            common_prefixes: Some(enc.prefixes(page.common_prefixes)),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let sse = self.encrypts(&req.input.bucket, wants_sse(&req.input)?)?;
        let owner = owner_of(&req);
        let input = req.input;
        let algorithm = input.checksum_algorithm.as_ref().map(algorithm).transpose()?;
        let full_object =
            input.checksum_type.as_ref().is_some_and(|t| t.as_str() == ChecksumType::FULL_OBJECT);
        let (acl, grants) = object_acl(input.acl.as_ref(), &input)?;
        let upload = UploadMeta {
            owner,
            headers: headers_of(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires,
            ),
            user_metadata: user_metadata(input.metadata),
            tags: tagging_header(input.tagging.as_deref()),
            checksum_algorithm: algorithm,
            checksum_full_object: full_object,
            acl,
            grants,
            encrypted: sse,
            ..UploadMeta::default()
        };
        let blob = self.blob.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let upload_id = spawn(move || blob.create_upload(&bucket, &key, upload)).await?;
        ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: input.checksum_type,
            server_side_encryption: sse_field(sse),
            ..Default::default()
        })
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        wants_sse(&req.input)?;
        let input = req.input;
        let mut expected = Expected {
            content_md5: input.content_md5,
            checksums: sent_checksums(
                input.checksum_crc32,
                input.checksum_crc32c,
                input.checksum_crc64nvme,
                input.checksum_sha1,
                input.checksum_sha256,
            ),
        };
        let mut asked =
            wanted_algorithms(&req.headers, input.checksum_algorithm.as_ref(), &expected.checksums)?;
        let (blob, bucket, key, upload_id) =
            (self.blob.clone(), input.bucket.clone(), input.key.clone(), input.upload_id.clone());
        let upload = spawn(move || blob.upload(&bucket, &key, &upload_id)).await?;
        asked.extend(upload.checksum_algorithm);
        let mut writer = self.blob.part_writer(&asked);
        if upload.encrypted {
            writer = writer.encrypted();
        }
        let written =
            write_body(writer, input.body, input.content_length, self.blob.limits().inline_max_bytes).await?;
        add_trailer_checksums(req.trailing_headers.as_ref(), &mut expected);
        let blob = self.blob.clone();
        let number = u64::try_from(input.part_number).unwrap_or(0);
        let part = spawn(move || {
            blob.put_part(&input.bucket, &input.key, &input.upload_id, number, written, &expected)
        })
        .await?;
        let sums = checksum_fields(&part.checksums);
        ok(UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            server_side_encryption: sse_field(upload.encrypted),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..Default::default()
        })
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        wants_sse(&req.input)?;
        let (src_bucket, src_key, src_version) = copy_source(&req.input.copy_source)?;
        authorize_source(&self.blob, &req, &src_bucket, &src_key).await?;
        let input = req.input;
        let range = input.copy_source_range.as_deref().map(copy_source_range).transpose()?;
        let conditions = read_conditions(
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let blob = self.blob.clone();
        let number = u64::try_from(input.part_number).unwrap_or(0);
        let source_version = src_version.clone();
        let part = spawn(move || {
            blob.copy_part(
                (&src_bucket, &src_key, src_version.as_deref()),
                range,
                &conditions,
                &input.bucket,
                &input.key,
                &input.upload_id,
                number,
            )
        })
        .await?;
        ok(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&part.etag)),
                last_modified: Some(timestamp(part.last_modified_ms)),
                ..Default::default()
            }),
            copy_source_version_id: source_version,
            server_side_encryption: sse_field(part.segment.as_ref().is_some_and(|s| s.key_id.is_some())),
            ..Default::default()
        })
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts: Vec<(u64, Option<String>)> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                (
                    p.part_number.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    p.e_tag.map(|e| e.into_value()),
                )
            })
            .collect();
        let blob = self.blob.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let full_object = input.checksum_type.as_ref().map(|t| t.as_str() == ChecksumType::FULL_OBJECT);
        let meta = spawn(move || {
            let upload = blob.upload(&bucket, &key, &input.upload_id)?;
            let full_object = full_object.unwrap_or(upload.checksum_full_object);
            blob.complete_upload(&bucket, &key, &input.upload_id, &parts, full_object)
        })
        .await?;
        let sums = checksum_fields(&meta.checksums);
        ok(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&meta.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: (!meta.is_null_version()).then(|| meta.version_id.clone()),
            server_side_encryption: sse_field(meta.encrypted()),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: sums.kind,
            ..Default::default()
        })
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let blob = self.blob.clone();
        spawn(move || blob.abort_upload(&input.bucket, &input.key, &input.upload_id)).await?;
        ok(AbortMultipartUploadOutput::default())
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let marker = input.part_number_marker.and_then(|m| u64::try_from(m).ok()).unwrap_or(0);
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000);
        let blob = self.blob.clone();
        let (bucket, key, upload_id) = (input.bucket.clone(), input.key.clone(), input.upload_id.clone());
        let ((parts, truncated), upload) = spawn(move || {
            Ok((
                blob.list_parts(&bucket, &key, &upload_id, marker, max as usize)?,
                blob.upload(&bucket, &key, &upload_id)?,
            ))
        })
        .await?;
        let next = parts.last().map(|(n, _)| *n as i32);
        let parts = parts
            .into_iter()
            .map(|(number, p)| {
                let sums = checksum_fields(&p.checksums);
                Part {
                    part_number: Some(number as i32),
                    e_tag: Some(etag(&p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    checksum_crc32: sums.crc32,
                    checksum_crc32c: sums.crc32c,
                    checksum_crc64nvme: sums.crc64nvme,
                    checksum_sha1: sums.sha1,
                    checksum_sha256: sums.sha256,
                }
            })
            .collect();
        ok(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: if truncated { next } else { None },
            max_parts: Some(max),
            is_truncated: Some(truncated),
            parts: Some(parts),
            checksum_algorithm: upload.checksum_algorithm.map(dto_algorithm),
            ..Default::default()
        })
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000);
        let blob = self.blob.clone();
        let bucket = input.bucket.clone();
        let (prefix, key_marker, id_marker) = (
            input.prefix.clone().unwrap_or_default(),
            input.key_marker.clone(),
            input.upload_id_marker.clone(),
        );
        let (uploads, truncated) = spawn(move || {
            blob.list_uploads(&bucket, &prefix, key_marker.as_deref(), id_marker.as_deref(), max as usize)
        })
        .await?;
        let last = uploads.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        let uploads = uploads
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp(u.meta.initiated_ms)),
                checksum_algorithm: u.meta.checksum_algorithm.map(dto_algorithm),
                ..Default::default()
            })
            .collect();
        ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max),
            is_truncated: Some(truncated),
            next_key_marker: if truncated { last.clone().map(|l| l.0) } else { None },
            next_upload_id_marker: if truncated { last.map(|l| l.1) } else { None },
            uploads: Some(uploads),
            ..Default::default()
        })
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let enabled = match input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => true,
            Some(BucketVersioningStatus::SUSPENDED) => false,
            _ => return Err(s3_error!(MalformedXML, "Status must be Enabled or Suspended")),
        };
        let blob = self.blob.clone();
        spawn(move || blob.set_versioning(&input.bucket, enabled)).await?;
        ok(PutBucketVersioningOutput {})
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let status = match self.versioning(&req.input.bucket)? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => {
                Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED))
            }
        };
        ok(GetBucketVersioningOutput { status, ..Default::default() })
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let blob = self.blob.clone();
        let meta =
            spawn(move || blob.head_object(&input.bucket, &input.key, input.version_id.as_deref())).await?;
        ok(GetObjectTaggingOutput {
            tag_set: tag_set(&meta.tags),
            version_id: (!meta.is_null_version()).then(|| meta.version_id.clone()),
        })
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = tags_from(input.tagging.tag_set);
        let blob = self.blob.clone();
        let version =
            spawn(move || blob.set_object_tags(&input.bucket, &input.key, input.version_id.as_deref(), tags))
                .await?;
        ok(PutObjectTaggingOutput { version_id: (version != strata_blob::NULL_VERSION).then_some(version) })
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let blob = self.blob.clone();
        let version = spawn(move || {
            blob.set_object_tags(&input.bucket, &input.key, input.version_id.as_deref(), BTreeMap::new())
        })
        .await?;
        ok(DeleteObjectTaggingOutput {
            version_id: (version != strata_blob::NULL_VERSION).then_some(version),
        })
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let blob = self.blob.clone();
        let meta = spawn(move || blob.bucket(&req.input.bucket)).await?;
        if meta.tags.is_empty() {
            return Err(s3_error!(NoSuchTagSet, "the bucket has no tags"));
        }
        ok(GetBucketTaggingOutput { tag_set: tag_set(&meta.tags) })
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let input = req.input;
        let tags = tags_from(input.tagging.tag_set);
        self.change_bucket(input.bucket, move |meta| meta.tags = tags.clone()).await?;
        ok(PutBucketTaggingOutput {})
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.change_bucket(req.input.bucket, move |meta| meta.tags.clear()).await?;
        ok(DeleteBucketTaggingOutput {})
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        let rules = input.server_side_encryption_configuration.rules;
        if rules.is_empty() {
            return Err(s3_error!(MalformedXML, "the configuration has no rule"));
        }
        for rule in &rules {
            let Some(default) = &rule.apply_server_side_encryption_by_default else {
                return Err(s3_error!(MalformedXML, "a rule has no ApplyServerSideEncryptionByDefault"));
            };
            if default.sse_algorithm.as_str() != ServerSideEncryption::AES256
                || default.kms_master_key_id.is_some()
            {
                return Err(sse_refused(&format!("default encryption {}", default.sse_algorithm.as_str())));
            }
        }
        self.change_bucket(input.bucket, |meta| meta.default_encryption = true).await?;
        ok(PutBucketEncryptionOutput::default())
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let blob = self.blob.clone();
        let bucket = req.input.bucket;
        if !spawn(move || blob.bucket(&bucket)).await?.default_encryption {
            let mut err = s3_error!(
                ServerSideEncryptionConfigurationNotFoundError,
                "the bucket has no default encryption; objects are encrypted when their writes ask"
            );
            // S3's status for it; s3s would answer 400.
            err.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(err);
        }
        ok(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
                        kms_master_key_id: None,
                    }),
                    bucket_key_enabled: None,
                }],
            }),
        })
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.change_bucket(req.input.bucket, |meta| meta.default_encryption = false).await?;
        ok(DeleteBucketEncryptionOutput {})
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let input = req.input;
        let config = input
            .lifecycle_configuration
            .ok_or_else(|| s3_error!(MalformedXML, "the request has no LifecycleConfiguration"))?;
        let rules = crate::lifecycle::rules_of(config)?;
        let blob = self.blob.clone();
        spawn(move || blob.set_lifecycle(&input.bucket, Some(rules))).await?;
        ok(PutBucketLifecycleConfigurationOutput::default())
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let blob = self.blob.clone();
        let rules = spawn(move || blob.lifecycle(&req.input.bucket)).await?;
        ok(GetBucketLifecycleConfigurationOutput {
            rules: Some(crate::lifecycle::rules_to_dto(rules)),
            ..Default::default()
        })
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        let blob = self.blob.clone();
        spawn(move || blob.set_lifecycle(&req.input.bucket, None)).await?;
        ok(DeleteBucketLifecycleOutput {})
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let blob = self.blob.clone();
        let bucket = req.input.bucket;
        let meta = spawn({
            let bucket = bucket.clone();
            move || blob.bucket(&bucket)
        })
        .await?;
        match meta.policy {
            Some(policy) => ok(GetBucketPolicyOutput { policy: Some(policy) }),
            None => Err(s3_error(strata_blob::BlobError::NoSuchBucketPolicy(bucket))),
        }
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        let blob = self.blob.clone();
        spawn(move || blob.set_policy(&input.bucket, Some(&input.policy))).await?;
        ok(PutBucketPolicyOutput {})
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let blob = self.blob.clone();
        spawn(move || blob.set_policy(&req.input.bucket, None)).await?;
        ok(DeleteBucketPolicyOutput {})
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let blob = self.blob.clone();
        let meta = spawn(move || blob.bucket(&req.input.bucket)).await?;
        if meta.cors.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::NoSuchCORSConfiguration,
                "the bucket has no CORS configuration",
            ));
        }
        let rules = meta
            .cors
            .into_iter()
            .map(|r| CORSRule {
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: Some(r.allowed_headers),
                expose_headers: Some(r.expose_headers),
                max_age_seconds: r.max_age_seconds,
                id: None,
            })
            .collect();
        ok(GetBucketCorsOutput { cors_rules: Some(rules) })
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let input = req.input;
        let rules: Vec<strata_blob::CorsRule> = input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(|r| strata_blob::CorsRule {
                allowed_origins: r.allowed_origins,
                allowed_methods: r.allowed_methods,
                allowed_headers: r.allowed_headers.unwrap_or_default(),
                expose_headers: r.expose_headers.unwrap_or_default(),
                max_age_seconds: r.max_age_seconds,
            })
            .collect();
        if rules.len() > 100 {
            return Err(s3_error!(MalformedXML, "at most 100 CORS rules"));
        }
        self.change_bucket(input.bucket, move |meta| meta.cors = rules.clone()).await?;
        ok(PutBucketCorsOutput {})
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.change_bucket(req.input.bucket, move |meta| meta.cors.clear()).await?;
        ok(DeleteBucketCorsOutput {})
    }
}

/// `encoding-type=url` in a listing: keys and prefixes in the answer are percent-encoded
/// (clients such as aws-cli ask for it and decode them), so any byte survives XML.
#[derive(Clone, Copy)]
struct KeyEncoding(bool);

/// Everything but unreserved characters and `/`.
const KEY_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

impl KeyEncoding {
    fn of(requested: &Option<EncodingType>) -> KeyEncoding {
        KeyEncoding(requested.as_ref().is_some_and(|e| e.as_str().eq_ignore_ascii_case("url")))
    }

    fn apply(self, text: String) -> String {
        if self.0 { percent_encoding::utf8_percent_encode(&text, KEY_ESCAPES).to_string() } else { text }
    }

    fn prefixes(self, prefixes: Vec<String>) -> Vec<CommonPrefix> {
        prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(self.apply(p)) }).collect()
    }
}

fn object_entry(meta: &ObjectMeta, enc: KeyEncoding) -> Object {
    Object {
        key: Some(enc.apply(meta.key.clone())),
        e_tag: Some(etag(&meta.etag)),
        size: Some(meta.size as i64),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        ..Default::default()
    }
}
