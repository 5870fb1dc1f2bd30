//! SigV4 verification of SQS requests: the signature is computed again with AWS's own
//! signer (`aws-sigv4`) over the headers the client says it signed, with the client's date
//! and scope, and compared in constant time. A request more than 15 minutes off the clock
//! is refused, as AWS does.

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use std::time::{Duration, SystemTime};
use subtle::ConstantTimeEq;

/// Why a request is not authenticated; each maps to an SQS error code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No or unreadable Authorization header.
    Missing(String),
    UnknownKey,
    SignatureMismatch,
    Expired,
}

struct Parsed<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse(header: &str) -> Option<Parsed<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let parsed = Parsed {
        access_key: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request").then_some(parsed)
}

/// `20261201T120000Z` as a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    (secs >= 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Checks the request's signature; `secret` looks up an access key's secret. Returns the
/// access key that signed.
pub(crate) fn verify(
    method: &str,
    url: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    secret: impl Fn(&str) -> Option<String>,
) -> Result<String, AuthError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Missing("the request is not signed".into()))?;
    let parsed =
        parse(header).ok_or_else(|| AuthError::Missing("the Authorization header is not SigV4".into()))?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Missing("X-Amz-Date is missing".into()))?;
    let time =
        parse_amz_date(amz_date).ok_or_else(|| AuthError::Missing("X-Amz-Date is malformed".into()))?;
    if !amz_date.starts_with(parsed.date) {
        return Err(AuthError::SignatureMismatch);
    }
    let skew = match SystemTime::now().duration_since(time) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if skew > Duration::from_secs(15 * 60) {
        return Err(AuthError::Expired);
    }
    let secret = secret(parsed.access_key).ok_or(AuthError::UnknownKey)?;
    // The headers the client signed, as it sent them; the signer adds X-Amz-Date itself.
    let mut signed = Vec::new();
    for name in &parsed.signed_headers {
        if *name == "x-amz-date" {
            continue;
        }
        let value = headers.get(*name).and_then(|v| v.to_str().ok()).ok_or(AuthError::SignatureMismatch)?;
        signed.push((*name, value));
    }
    let identity =
        aws_credential_types::Credentials::new(parsed.access_key, secret, None, None, "strata").into();
    let mut settings = SigningSettings::default();
    settings.excluded_headers = Some(Vec::new());
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(parsed.region)
        .name(parsed.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::SignatureMismatch)?
        .into();
    let signable = SignableRequest::new(method, url, signed.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| AuthError::SignatureMismatch)?;
    let (_, expected) = sign(signable, &params).map_err(|_| AuthError::SignatureMismatch)?.into_parts();
    if bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        Ok(parsed.access_key.to_owned())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_headers_parse() {
        assert_eq!(
            parse_amz_date("19700101T000100Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert_eq!(
            parse_amz_date("20130524T000000Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600))
        );
        assert_eq!(parse_amz_date("2013-05-24"), None);
        let p = parse("AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc").unwrap();
        assert_eq!((p.access_key, p.region, p.service, p.signature), ("AK", "us-east-1", "sqs", "abc"));
        assert_eq!(p.signed_headers, ["host", "x-amz-date"]);
        assert!(parse("Bearer x").is_none());
    }
}
