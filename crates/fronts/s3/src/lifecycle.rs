//! Lifecycle configurations between S3's XML shapes (s3s DTOs) and the blob block's rules
//! (`strata_blob::lifecycle`). Transitions to other storage classes are refused: there is
//! one storage class here, so a rule that moves objects to GLACIER could not do what it says.

use crate::convert::{millis, tag_set, timestamp};
use s3s::dto;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::collections::BTreeMap;
use strata_blob::lifecycle::{Expiration, LifecycleRule, NoncurrentExpiration, RuleFilter};

/// The blob block's rules for an S3 lifecycle configuration.
pub(crate) fn rules_of(config: dto::BucketLifecycleConfiguration) -> S3Result<Vec<LifecycleRule>> {
    config.rules.into_iter().map(rule_of).collect()
}

fn rule_of(rule: dto::LifecycleRule) -> S3Result<LifecycleRule> {
    let id = rule.id.unwrap_or_default();
    if rule.transitions.is_some_and(|t| !t.is_empty())
        || rule.noncurrent_version_transitions.is_some_and(|t| !t.is_empty())
    {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            format!("rule {id}: transitions are not supported; Strata has one storage class"),
        ));
    }
    let enabled = match rule.status.as_str() {
        dto::ExpirationStatus::ENABLED => true,
        dto::ExpirationStatus::DISABLED => false,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "rule {id}: Status must be Enabled or Disabled, not {other}"
            ));
        }
    };
    let filter = match (rule.filter, rule.prefix) {
        (Some(_), Some(_)) => return Err(s3_error!(MalformedXML, "rule {id}: both Filter and Prefix")),
        (Some(filter), None) => filter_of(&id, filter)?,
        (None, prefix) => RuleFilter { prefix: prefix.unwrap_or_default(), ..RuleFilter::default() },
    };
    let expiration = match rule.expiration {
        None => None,
        Some(e) => match (e.days, e.date, e.expired_object_delete_marker) {
            (Some(days), None, None | Some(false)) => Some(Expiration::Days(count(&id, "Days", days)?)),
            (None, Some(date), None | Some(false)) => Some(Expiration::Date(millis(date))),
            (None, None, Some(true)) => Some(Expiration::ExpiredObjectDeleteMarker),
            (None, None, _) => None,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "rule {id}: Expiration takes one of Days, Date and ExpiredObjectDeleteMarker"
                ));
            }
        },
    };
    let noncurrent = match rule.noncurrent_version_expiration {
        None => None,
        Some(n) => {
            let days = n
                .noncurrent_days
                .ok_or_else(|| s3_error!(MalformedXML, "rule {id}: NoncurrentDays is missing"))?;
            let keep_newer =
                n.newer_noncurrent_versions.map(|k| count(&id, "NewerNoncurrentVersions", k)).transpose()?;
            Some(NoncurrentExpiration { days: count(&id, "NoncurrentDays", days)?, keep_newer })
        }
    };
    let abort_incomplete_upload_days = rule
        .abort_incomplete_multipart_upload
        .and_then(|a| a.days_after_initiation)
        .map(|d| count(&id, "DaysAfterInitiation", d))
        .transpose()?;
    Ok(LifecycleRule { id, enabled, filter, expiration, noncurrent, abort_incomplete_upload_days })
}

fn filter_of(id: &str, filter: dto::LifecycleRuleFilter) -> S3Result<RuleFilter> {
    let tags_of = |tags: Vec<dto::Tag>| -> S3Result<BTreeMap<String, String>> {
        tags.into_iter()
            .map(|t| match (t.key, t.value) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(s3_error!(MalformedXML, "rule {id}: a Tag needs a Key and a Value")),
            })
            .collect()
    };
    let given = [filter.prefix.is_some(), filter.tag.is_some(), filter.and.is_some()]
        .into_iter()
        .chain([filter.object_size_greater_than.is_some(), filter.object_size_less_than.is_some()])
        .filter(|g| *g)
        .count();
    if given > 1 {
        return Err(s3_error!(MalformedXML, "rule {id}: a Filter holds one condition; use And for several"));
    }
    Ok(match filter.and {
        Some(and) => RuleFilter {
            prefix: and.prefix.unwrap_or_default(),
            tags: tags_of(and.tags.unwrap_or_default())?,
            size_greater_than: size(id, and.object_size_greater_than)?,
            size_less_than: size(id, and.object_size_less_than)?,
        },
        None => RuleFilter {
            prefix: filter.prefix.unwrap_or_default(),
            tags: tags_of(filter.tag.into_iter().collect())?,
            size_greater_than: size(id, filter.object_size_greater_than)?,
            size_less_than: size(id, filter.object_size_less_than)?,
        },
    })
}

fn count(id: &str, what: &str, n: i32) -> S3Result<u32> {
    u32::try_from(n).map_err(|_| s3_error!(InvalidArgument, "rule {id}: {what} must not be negative"))
}

fn size(id: &str, bytes: Option<i64>) -> S3Result<Option<u64>> {
    bytes
        .map(|b| {
            u64::try_from(b)
                .map_err(|_| s3_error!(InvalidArgument, "rule {id}: an object size must not be negative"))
        })
        .transpose()
}

/// S3's shape of stored rules, for GetBucketLifecycleConfiguration.
pub(crate) fn rules_to_dto(rules: Vec<LifecycleRule>) -> Vec<dto::LifecycleRule> {
    rules.into_iter().map(rule_to_dto).collect()
}

fn rule_to_dto(rule: LifecycleRule) -> dto::LifecycleRule {
    let f = rule.filter;
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let to_i64 = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let filter = if conditions > 1 {
        dto::LifecycleRuleFilter {
            and: Some(dto::LifecycleRuleAndOperator {
                prefix: (!f.prefix.is_empty()).then_some(f.prefix),
                tags: (!f.tags.is_empty()).then(|| tag_set(&f.tags)),
                object_size_greater_than: to_i64(f.size_greater_than),
                object_size_less_than: to_i64(f.size_less_than),
            }),
            ..dto::LifecycleRuleFilter::default()
        }
    } else {
        dto::LifecycleRuleFilter {
            tag: tag_set(&f.tags).pop(),
            object_size_greater_than: to_i64(f.size_greater_than),
            object_size_less_than: to_i64(f.size_less_than),
            prefix: Some(f.prefix),
            ..dto::LifecycleRuleFilter::default()
        }
    };
    let days = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    dto::LifecycleRule {
        id: Some(rule.id),
        status: dto::ExpirationStatus::from_static(if rule.enabled {
            dto::ExpirationStatus::ENABLED
        } else {
            dto::ExpirationStatus::DISABLED
        }),
        filter: Some(filter),
        expiration: rule.expiration.map(|e| match e {
            Expiration::Days(n) => dto::LifecycleExpiration { days: Some(days(n)), ..Default::default() },
            Expiration::Date(ms) => {
                dto::LifecycleExpiration { date: Some(timestamp(ms)), ..Default::default() }
            }
            Expiration::ExpiredObjectDeleteMarker => {
                dto::LifecycleExpiration { expired_object_delete_marker: Some(true), ..Default::default() }
            }
        }),
        noncurrent_version_expiration: rule.noncurrent.map(|n| dto::NoncurrentVersionExpiration {
            noncurrent_days: Some(days(n.days)),
            newer_noncurrent_versions: n.keep_newer.map(days),
        }),
        abort_incomplete_multipart_upload: rule
            .abort_incomplete_upload_days
            .map(|d| dto::AbortIncompleteMultipartUpload { days_after_initiation: Some(days(d)) }),
        prefix: None,
        transitions: None,
        noncurrent_version_transitions: None,
    }
}
