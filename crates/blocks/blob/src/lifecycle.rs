//! # Lifecycle rules: what expires in a bucket, and when
//!
//! S3's lifecycle configuration as users write it for logs, backups and build artifacts:
//! each rule filters keys (prefix, tags, object size) and says what to remove:
//!
//! - **Expiration** after `Days` (from the object's last modification) or on a `Date`: the
//!   current version goes as if deleted without a version id, so a versioned bucket keeps it
//!   as a noncurrent version behind a delete marker;
//! - **ExpiredObjectDeleteMarker**: a delete marker with no versions left behind it is removed;
//! - **NoncurrentVersionExpiration** after `NoncurrentDays` (from when a newer version
//!   replaced it), keeping the `NewerNoncurrentVersions` newest if given;
//! - **AbortIncompleteMultipartUpload** after `DaysAfterInitiation`.
//!
//! As in S3, a number of days counts from the event and is rounded up to the next midnight
//! UTC. [`crate::Blob::sweep_lifecycle`] applies the rules (the binary runs it every
//! `blob.lifecycle_interval_secs`); each removal is its own transaction that first checks the
//! version is still the one the sweep saw. Transitions to other storage classes have no
//! meaning here (there is one) and are refused by the s3 front.

use crate::keys::{Key, KeyPrefix, decode_upload_key, decode_version_key};
use crate::{Blob, BlobError, BlobResult, ObjectMeta, UploadMeta, meta};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Most rules in one configuration (S3's limit).
pub const MAX_RULES: usize = 1000;

/// One lifecycle rule, as stored in its bucket's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    #[serde(default)]
    pub filter: RuleFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent: Option<NoncurrentExpiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_upload_days: Option<u32>,
}

/// Which objects a rule applies to: all of these that are given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFilter {
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub size_greater_than: Option<u64>,
    #[serde(default)]
    pub size_less_than: Option<u64>,
}

/// When current versions expire: one of the three.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiration {
    Days(u32),
    /// Midnight UTC of the day, in epoch milliseconds.
    Date(u64),
    ExpiredObjectDeleteMarker,
}

/// When noncurrent versions expire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub days: u32,
    /// How many of the newest noncurrent versions to keep whatever their age.
    #[serde(default)]
    pub keep_newer: Option<u32>,
}

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Current versions expired (deleted, or hidden behind a new delete marker).
    pub expired: u64,
    pub noncurrent_removed: u64,
    pub delete_markers_removed: u64,
    pub uploads_aborted: u64,
}

/// S3's due time for something `days` after `since_ms`: rounded up to the next midnight UTC.
pub fn due_ms(since_ms: u64, days: u32) -> u64 {
    (since_ms + u64::from(days) * DAY_MS) / DAY_MS * DAY_MS + DAY_MS
}

/// Checks a configuration as S3 does; gives rules without an id one.
pub fn check_rules(rules: &mut [LifecycleRule]) -> BlobResult<()> {
    let invalid = |msg: String| Err(BlobError::InvalidArgument(msg));
    if rules.is_empty() || rules.len() > MAX_RULES {
        return invalid(format!("a lifecycle configuration has 1 to {MAX_RULES} rules"));
    }
    let mut ids = HashSet::new();
    for (i, rule) in rules.iter_mut().enumerate() {
        if rule.id.is_empty() {
            rule.id = format!("rule-{}", i + 1);
        }
        if rule.id.len() > 255 {
            return invalid("a rule ID is at most 255 characters".into());
        }
        if !ids.insert(rule.id.clone()) {
            return invalid(format!("the rule ID {} is used twice", rule.id));
        }
        let id = &rule.id;
        if rule.expiration.is_none()
            && rule.noncurrent.is_none()
            && rule.abort_incomplete_upload_days.is_none()
        {
            return invalid(format!("rule {id} has no action"));
        }
        let tagged = !rule.filter.tags.is_empty();
        match &rule.expiration {
            Some(Expiration::Days(0)) => {
                return invalid(format!("rule {id}: Days must be a positive integer"));
            }
            Some(Expiration::Date(ms)) if ms % DAY_MS != 0 => {
                return invalid(format!("rule {id}: Date must be at midnight UTC"));
            }
            Some(Expiration::ExpiredObjectDeleteMarker) if tagged => {
                return invalid(format!(
                    "rule {id}: ExpiredObjectDeleteMarker cannot be used with a tag filter"
                ));
            }
            _ => {}
        }
        if let Some(noncurrent) = &rule.noncurrent {
            if noncurrent.days == 0 {
                return invalid(format!("rule {id}: NoncurrentDays must be a positive integer"));
            }
            if noncurrent.keep_newer.is_some_and(|n| n == 0 || n > 100) {
                return invalid(format!("rule {id}: NewerNoncurrentVersions must be 1 to 100"));
            }
        }
        match rule.abort_incomplete_upload_days {
            Some(0) => return invalid(format!("rule {id}: DaysAfterInitiation must be a positive integer")),
            Some(_) if tagged => {
                return invalid(format!(
                    "rule {id}: AbortIncompleteMultipartUpload cannot be used with a tag filter"
                ));
            }
            _ => {}
        }
        if let (Some(gt), Some(lt)) = (rule.filter.size_greater_than, rule.filter.size_less_than)
            && gt >= lt
        {
            return invalid(format!("rule {id}: ObjectSizeGreaterThan must be below ObjectSizeLessThan"));
        }
    }
    Ok(())
}

impl LifecycleRule {
    /// Whether the rule applies to this version of `key` (a delete marker has no size or tags).
    pub(crate) fn matches(&self, key: &str, version: &ObjectMeta) -> bool {
        let filter = &self.filter;
        self.enabled
            && key.starts_with(&filter.prefix)
            && filter.tags.iter().all(|(k, v)| version.tags.get(k) == Some(v))
            && filter.size_greater_than.is_none_or(|gt| version.size > gt)
            && filter.size_less_than.is_none_or(|lt| version.size < lt)
    }

    /// Whether the current version, last modified at `modified_ms`, has expired by `now_ms`.
    pub(crate) fn current_expired(&self, modified_ms: u64, now_ms: u64) -> bool {
        match self.expiration {
            Some(Expiration::Days(days)) => now_ms >= due_ms(modified_ms, days),
            Some(Expiration::Date(date)) => now_ms >= date,
            _ => false,
        }
    }

    /// Whether a noncurrent version, replaced at `since_ms` and with `newer` noncurrent
    /// versions after it, has expired by `now_ms`.
    pub(crate) fn noncurrent_expired(&self, since_ms: u64, newer: usize, now_ms: u64) -> bool {
        self.noncurrent.as_ref().is_some_and(|n| {
            now_ms >= due_ms(since_ms, n.days) && n.keep_newer.is_none_or(|keep| newer >= keep as usize)
        })
    }

    /// Whether an upload of `key` initiated at `initiated_ms` is to be aborted by `now_ms`.
    pub(crate) fn upload_expired(&self, key: &str, initiated_ms: u64, now_ms: u64) -> bool {
        self.enabled
            && key.starts_with(&self.filter.prefix)
            && self.abort_incomplete_upload_days.is_some_and(|days| now_ms >= due_ms(initiated_ms, days))
    }
}

impl Blob {
    /// Sets (after checking) or removes a bucket's lifecycle rules.
    pub fn set_lifecycle(&self, bucket: &str, rules: Option<Vec<LifecycleRule>>) -> BlobResult<()> {
        let rules = match rules {
            Some(mut rules) => {
                check_rules(&mut rules)?;
                rules
            }
            None => Vec::new(),
        };
        self.update_bucket(bucket, |meta| {
            meta.lifecycle = rules.clone();
            Ok(())
        })
    }

    /// A bucket's lifecycle rules; `NoSuchLifecycleConfiguration` when it has none.
    pub fn lifecycle(&self, bucket: &str) -> BlobResult<Vec<LifecycleRule>> {
        let rules = self.bucket(bucket)?.lifecycle;
        if rules.is_empty() {
            return Err(BlobError::NoSuchLifecycleConfiguration(bucket.to_owned()));
        }
        Ok(rules)
    }

    /// Applies every bucket's lifecycle rules as of now: expires current versions, removes
    /// noncurrent versions and expired delete markers, aborts stalled uploads.
    pub fn sweep_lifecycle(&self) -> BlobResult<Swept> {
        let mut swept = Swept::default();
        let now = self.now_ms();
        for (bucket, meta) in self.list_buckets()? {
            let rules: Vec<_> = meta.lifecycle.into_iter().filter(|r| r.enabled).collect();
            if rules.is_empty() {
                continue;
            }
            self.sweep_versions(&bucket, &rules, now, &mut swept)?;
            if rules.iter().any(|r| r.abort_incomplete_upload_days.is_some()) {
                self.sweep_uploads(&bucket, &rules, now, &mut swept)?;
            }
        }
        if swept != Swept::default() {
            tracing::info!(?swept, "lifecycle rules applied");
        }
        Ok(swept)
    }

    /// Walks the bucket's versions one key at a time (newest first within a key).
    fn sweep_versions(
        &self,
        bucket: &str,
        rules: &[LifecycleRule],
        now: u64,
        swept: &mut Swept,
    ) -> BlobResult<()> {
        let txn = self.inner.store.begin_read_only();
        let prefix = KeyPrefix::Versions { bucket, prefix: "" }.encode();
        let mut key = String::new();
        let mut versions: Vec<(u64, ObjectMeta)> = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &prefix) {
            let (k, value) = item?;
            let (_, next_key, ord) = decode_version_key(&k)?;
            if next_key != key && !versions.is_empty() {
                self.sweep_key(bucket, &key, &versions, rules, now, swept)?;
                versions.clear();
            }
            key = next_key;
            versions.push((ord, meta::decode(&value)?));
        }
        if !versions.is_empty() {
            self.sweep_key(bucket, &key, &versions, rules, now, swept)?;
        }
        Ok(())
    }

    fn sweep_key(
        &self,
        bucket: &str,
        key: &str,
        versions: &[(u64, ObjectMeta)],
        rules: &[LifecycleRule],
        now: u64,
        swept: &mut Swept,
    ) -> BlobResult<()> {
        let (current_ord, current) = &versions[0];
        if !current.delete_marker
            && rules
                .iter()
                .any(|r| r.matches(key, current) && r.current_expired(current.last_modified_ms, now))
            && self.expire_current(bucket, key, *current_ord)?
        {
            swept.expired += 1;
        }
        let mut kept = 0;
        for (i, (ord, version)) in versions.iter().enumerate().skip(1) {
            let replaced_ms = versions[i - 1].1.last_modified_ms;
            if rules.iter().any(|r| r.matches(key, version) && r.noncurrent_expired(replaced_ms, kept, now)) {
                if self.remove_unchanged(bucket, key, *ord)? {
                    swept.noncurrent_removed += 1;
                }
            } else {
                kept += 1;
            }
        }
        let marker_alone = current.delete_marker && kept == 0;
        if marker_alone
            && rules.iter().any(|r| {
                r.matches(key, current) && r.expiration == Some(Expiration::ExpiredObjectDeleteMarker)
            })
            && self.remove_lone_marker(bucket, key, *current_ord)?
        {
            swept.delete_markers_removed += 1;
        }
        Ok(())
    }

    /// Deletes `key` as a DELETE without a version id would, if its current version is still
    /// `ord` and not a delete marker.
    fn expire_current(&self, bucket: &str, key: &str, ord: u64) -> BlobResult<bool> {
        let (expired, files) = self.transact(|txn| {
            let bucket_meta = self.must_bucket(txn, bucket)?;
            match self.current_version_ord(txn, bucket, key)? {
                Some((now_ord, meta)) if now_ord == ord && !meta.delete_marker => {
                    Ok((true, self.delete_current(txn, &bucket_meta, bucket, key)?.1))
                }
                _ => Ok((false, Vec::new())),
            }
        })?;
        self.inner.files.remove(&files);
        Ok(expired)
    }

    /// Removes version `ord` of `key` if it is still there.
    fn remove_unchanged(&self, bucket: &str, key: &str, ord: u64) -> BlobResult<bool> {
        let (removed, files) =
            self.transact(|txn| match self.get::<ObjectMeta>(txn, Key::Version { bucket, key, ord })? {
                Some(meta) => Ok((true, self.remove_version(txn, bucket, key, ord, &meta)?)),
                None => Ok((false, Vec::new())),
            })?;
        self.inner.files.remove(&files);
        Ok(removed)
    }

    /// Removes the delete marker `ord` if it is still the only version of `key`.
    fn remove_lone_marker(&self, bucket: &str, key: &str, ord: u64) -> BlobResult<bool> {
        self.transact(|txn| {
            let prefix = KeyPrefix::ObjectVersions { bucket, key }.encode();
            let mut versions = txn.scan_prefix(&self.inner.ks, &prefix);
            let lone = match (versions.next(), versions.next()) {
                (Some(item), None) => {
                    let (k, value) = item?;
                    let marker: ObjectMeta = meta::decode(&value)?;
                    (decode_version_key(&k)?.2 == ord).then_some(marker)
                }
                _ => None,
            };
            drop(versions);
            match lone {
                Some(marker) => {
                    self.remove_version(txn, bucket, key, ord, &marker)?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn sweep_uploads(
        &self,
        bucket: &str,
        rules: &[LifecycleRule],
        now: u64,
        swept: &mut Swept,
    ) -> BlobResult<()> {
        let txn = self.inner.store.begin_read_only();
        let mut due = Vec::new();
        for item in txn.scan_prefix(&self.inner.ks, &KeyPrefix::Uploads { bucket }.encode()) {
            let (k, value) = item?;
            let (_, key, upload_id) = decode_upload_key(&k)?;
            let upload: UploadMeta = meta::decode(&value)?;
            if rules.iter().any(|r| r.upload_expired(&key, upload.initiated_ms, now)) {
                due.push((key, upload_id));
            }
        }
        for (key, upload_id) in due {
            match self.abort_upload(bucket, &key, &upload_id) {
                Ok(()) => swept.uploads_aborted += 1,
                // Completed or aborted since the scan.
                Err(BlobError::NoSuchUpload(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_up_to_the_next_midnight() {
        // S3's example: created 2014-01-15 10:30 UTC, 3 days: expires 2014-01-19 00:00 UTC.
        let created = 1_389_781_800_000;
        assert_eq!(due_ms(created, 3), 1_390_089_600_000);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let rule = |f: fn(&mut LifecycleRule)| {
            let mut rule = LifecycleRule {
                id: "r".into(),
                enabled: true,
                expiration: Some(Expiration::Days(1)),
                ..LifecycleRule::default()
            };
            f(&mut rule);
            check_rules(&mut [rule])
        };
        assert!(rule(|_| {}).is_ok());
        assert!(rule(|r| r.expiration = None).is_err(), "no action");
        assert!(rule(|r| r.expiration = Some(Expiration::Days(0))).is_err());
        assert!(rule(|r| r.expiration = Some(Expiration::Date(DAY_MS + 1))).is_err(), "not midnight");
        assert!(
            rule(|r| {
                r.expiration = Some(Expiration::ExpiredObjectDeleteMarker);
                r.filter.tags.insert("a".into(), "b".into());
            })
            .is_err()
        );
        assert!(
            rule(|r| r.noncurrent = Some(NoncurrentExpiration { days: 1, keep_newer: Some(101) })).is_err()
        );
        assert!(
            rule(|r| {
                r.filter.size_greater_than = Some(10);
                r.filter.size_less_than = Some(10);
            })
            .is_err()
        );
        let mut twice = vec![LifecycleRule { id: "x".into(), ..Default::default() }; 2];
        twice.iter_mut().for_each(|r| r.abort_incomplete_upload_days = Some(1));
        assert!(check_rules(&mut twice).is_err(), "duplicate ids");
        let mut unnamed = vec![LifecycleRule { abort_incomplete_upload_days: Some(1), ..Default::default() }];
        check_rules(&mut unnamed).unwrap();
        assert_eq!(unnamed[0].id, "rule-1");
    }
}
