//! Signed links: S3 presigned URLs (SigV4 in the query string), which any S3 endpoint that
//! knows the key's secret accepts until they expire.
//!
//! The signing steps are AWS's (docs: "Authenticating Requests: Using Query Parameters"):
//! a canonical request of the method, path, sorted query and `host` header with an
//! `UNSIGNED-PAYLOAD` body hash; a string to sign naming the date, region and `s3`; and an
//! HMAC-SHA256 chain from the secret. Written here, small as it is, so that the CLI and the
//! admin API can hand out links without an S3 SDK.

use hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Everything but SigV4's unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same, keeping `/` between path segments.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// Longest validity of a presigned URL, as S3's seven days.
pub const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

/// What to sign.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    /// `GET`, `PUT`, `HEAD` or `DELETE`.
    pub method: &'a str,
    /// `http://127.0.0.1:9000`: where the client will send it (path-style addressing).
    pub endpoint: &'a str,
    pub region: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub expires_secs: u64,
    /// The signing key; [`crate::Blob::presign`] uses the admin key when `None`.
    pub access_key: Option<&'a str>,
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A presigned URL for `link`, path-style (`endpoint/bucket/key`), signed with
/// `access_key` and its `secret_key` at `now_secs` (seconds since the Unix epoch).
pub fn presign(link: &Link<'_>, access_key: &str, secret_key: &str, now_secs: u64) -> String {
    let endpoint = link.endpoint.trim_end_matches('/');
    let host = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let path = format!("/{}/{}", link.bucket, utf8_percent_encode(link.key, PATH));
    format!("{endpoint}{path}?{}", signed_query(link, (access_key, secret_key), now_secs, host, &path))
}

/// The query string, signature last, that signs `link.method` of `path` on `host`.
fn signed_query(link: &Link<'_>, key: (&str, &str), now_secs: u64, host: &str, path: &str) -> String {
    let (access_key, secret_key) = key;
    let (date, time) = utc_date_time(now_secs);
    let amz_date = format!("{date}T{time}Z");
    let scope = format!("{date}/{}/s3/aws4_request", link.region);
    let credential = format!("{access_key}/{scope}");
    let mut query = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", link.expires_secs.min(MAX_EXPIRES_SECS).to_string()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ]
    .map(|(k, v)| format!("{k}={}", utf8_percent_encode(&v, QUERY)));
    query.sort();
    let query = query.join("&");
    let canonical = format!("{}\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD", link.method);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    for part in [link.region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    format!("{query}&X-Amz-Signature={}", hex::encode(hmac(&key, to_sign.as_bytes())))
}

/// `(YYYYMMDD, HHMMSS)` of a Unix time, in UTC.
pub(crate) fn utc_date_time(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date_time(0), ("19700101".into(), "000000".into()));
        assert_eq!(utc_date_time(1_369_353_600), ("20130524".into(), "000000".into()));
        assert_eq!(utc_date_time(1_709_251_199), ("20240229".into(), "235959".into()));
    }

    /// AWS's published example of a presigned GET (S3 docs, "Authenticating Requests: Using
    /// Query Parameters"), which is virtual-host style: path `/test.txt` on the bucket's host.
    #[test]
    fn matches_the_aws_example() {
        let link = Link {
            method: "GET",
            endpoint: "https://examplebucket.s3.amazonaws.com",
            region: "us-east-1",
            bucket: "examplebucket",
            key: "test.txt",
            expires_secs: 86_400,
            access_key: None,
        };
        let key = ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let now = 1_369_353_600;
        let query = signed_query(&link, key, now, "examplebucket.s3.amazonaws.com", "/test.txt");
        assert_eq!(
            query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert!(
            presign(&link, key.0, key.1, now).starts_with(
                "https://examplebucket.s3.amazonaws.com/examplebucket/test.txt?X-Amz-Algorithm="
            )
        );
    }
}
