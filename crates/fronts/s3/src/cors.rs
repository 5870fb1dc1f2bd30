//! CORS for browser uploads and downloads: answers preflight `OPTIONS` requests from the
//! bucket's CORS rules, and adds `Access-Control-*` headers to responses whose `Origin` a
//! rule allows, as S3 does. Buckets without rules answer preflights with 403.

use crate::Domain;
use http::{HeaderValue, Method, Response, StatusCode, header};
use strata_blob::{Blob, CorsRule};

/// Whether `pattern` (with at most one `*`) matches `value`, as S3 matches origins and
/// headers.
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value[..head.len()].eq_ignore_ascii_case(head)
                && value[value.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

/// The first rule allowing `origin` to use `method` with `headers`.
fn matching<'a>(rules: &'a [CorsRule], origin: &str, method: &str, headers: &[&str]) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            && headers.iter().all(|h| r.allowed_headers.iter().any(|a| wildcard(a, h)))
    })
}

fn bucket_of<B>(req: &http::Request<B>, domain: &Domain) -> Option<String> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()));
    if let Some(bucket) = host.and_then(|h| domain.bucket_of(h)) {
        return Some(bucket.to_owned());
    }
    req.uri().path().trim_start_matches('/').split('/').next().filter(|b| !b.is_empty()).map(str::to_owned)
}

fn set(response: &mut Response<s3s::Body>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn allow(response: &mut Response<s3s::Body>, rule: &CorsRule, origin: &str, method: &str) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    set(response, header::ACCESS_CONTROL_ALLOW_ORIGIN, if any_origin { "*" } else { origin });
    set(response, header::ACCESS_CONTROL_ALLOW_METHODS, method);
    if !rule.expose_headers.is_empty() {
        set(response, header::ACCESS_CONTROL_EXPOSE_HEADERS, &rule.expose_headers.join(", "));
    }
    if let Some(age) = rule.max_age_seconds {
        set(response, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    set(response, header::VARY, "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
}

async fn rules(blob: &Blob, bucket: String) -> Vec<CorsRule> {
    let blob = blob.clone();
    tokio::task::spawn_blocking(move || blob.bucket(&bucket).map(|b| b.cors).unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// Runs `req` through s3s, with CORS.
pub(crate) async fn around(
    service: s3s::service::S3Service,
    blob: Blob,
    domain: &Domain,
    req: http::Request<s3s::Body>,
) -> Result<Response<s3s::Body>, s3s::HttpError> {
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned);
    let bucket = bucket_of(&req, domain);
    let (Some(origin), Some(bucket)) = (origin, bucket) else {
        return service.call(req).await;
    };
    if req.method() == Method::OPTIONS {
        let method = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        let asked: Vec<String> = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let asked: Vec<&str> = asked.iter().map(String::as_str).collect();
        let rules = rules(&blob, bucket).await;
        let mut response = Response::new(s3s::Body::empty());
        match matching(&rules, &origin, method, &asked) {
            Some(rule) => {
                allow(&mut response, rule, &origin, method);
                if !asked.is_empty() {
                    set(&mut response, header::ACCESS_CONTROL_ALLOW_HEADERS, &asked.join(", "));
                }
            }
            None => *response.status_mut() = StatusCode::FORBIDDEN,
        }
        return Ok(response);
    }
    let method = req.method().to_string();
    let mut response = service.call(req).await?;
    let rules = rules(&blob, bucket).await;
    if let Some(rule) = matching(&rules, &origin, &method, &[]) {
        allow(&mut response, rule, &origin, &method);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_origins_methods_and_headers() {
        let rule = CorsRule {
            allowed_origins: vec!["https://*.example.com".into()],
            allowed_methods: vec!["PUT".into(), "GET".into()],
            allowed_headers: vec!["*".into()],
            ..CorsRule::default()
        };
        let rules = [rule];
        assert!(matching(&rules, "https://app.example.com", "PUT", &["content-type"]).is_some());
        assert!(matching(&rules, "https://evil.com", "PUT", &[]).is_none());
        assert!(matching(&rules, "https://app.example.com", "DELETE", &[]).is_none());
    }
}
