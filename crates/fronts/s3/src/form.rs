//! The canned ACL of a browser form upload (POST with a policy).
//!
//! S3 names a form's ACL field `acl`, and so do boto3's `generate_presigned_post` and HTML
//! forms written for S3; s3s 0.14 reads it only from a field named `x-amz-acl`, so a form's
//! `acl=public-read` was silently dropped. This reads the form's fields ahead of s3s and
//! hands `acl` on as a [`FormAcl`] request extension, which `ops::post_object` uses when s3s
//! found none. Parsing is `multer`'s; it stops at the file, which S3 requires to be the last
//! field.
//!
//! The body is buffered here, up to the form limit plus room for the fields: s3s buffers the
//! file of a form upload anyway (see the crate's limitations). Every other request passes
//! through as a stream.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};

/// The value of a form upload's `acl` field.
#[derive(Clone, Debug)]
pub(crate) struct FormAcl(pub(crate) String);

/// Room for a form's fields (policy, signature, metadata) besides its file.
const FIELDS_BYTES: u64 = 1024 * 1024;

/// `req` with an s3s body; a form upload's body is buffered and its `acl` field, if any,
/// attached as a [`FormAcl`]. A form larger than `max_file_bytes` plus its fields is
/// answered `EntityTooLarge` here.
pub(crate) async fn read_acl(
    req: Request<hyper::body::Incoming>,
    max_file_bytes: u64,
) -> Result<Request<s3s::Body>, Response<s3s::Body>> {
    let Some(boundary) = form_boundary(&req) else {
        return Ok(req.map(s3s::Body::from));
    };
    let (mut parts, body) = req.into_parts();
    let limit = usize::try_from(max_file_bytes.saturating_add(FIELDS_BYTES)).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "the form upload is over the size limit",
            ));
        }
        Err(err) => {
            tracing::debug!(%err, "reading a form upload failed");
            return Err(error(StatusCode::BAD_REQUEST, "IncompleteBody", "the form upload ended early"));
        }
    };
    if let Some(acl) = acl_field(bytes.clone(), boundary).await {
        parts.extensions.insert(FormAcl(acl));
    }
    Ok(Request::from_parts(parts, s3s::Body::from(bytes)))
}

/// The multipart boundary of a form upload: a POST to a bucket with a form body.
fn form_boundary<B>(req: &Request<B>) -> Option<String> {
    if req.method() != Method::POST {
        return None;
    }
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    multer::parse_boundary(content_type).ok()
}

/// The `acl` field (its name in any case) among the fields before the file. A form that does
/// not parse has none here; s3s then answers for the malformed form.
async fn acl_field(body: Bytes, boundary: String) -> Option<String> {
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.file_name().is_some() || field.name().is_some_and(|n| n.eq_ignore_ascii_case("file")) {
            return None;
        }
        if field.name().is_some_and(|n| n.eq_ignore_ascii_case("acl")) {
            return field.text().await.ok();
        }
    }
    None
}

/// An S3 XML error, for the one case answered before s3s sees the request.
fn error(status: StatusCode, code: &str, message: &'static str) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(s3s::Body::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Bytes {
        let mut body = String::new();
        for (name, value) in fields {
            body += &format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        }
        body +=
            "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nacl\r\n--b--\r\n";
        Bytes::from(body)
    }

    #[tokio::test]
    async fn the_acl_field_is_read_before_the_file() {
        let acl = |body| acl_field(body, "b".to_owned());
        assert_eq!(acl(form(&[("key", "k"), ("acl", "public-read")])).await.as_deref(), Some("public-read"));
        assert_eq!(acl(form(&[("ACL", "authenticated-read")])).await.as_deref(), Some("authenticated-read"));
        assert_eq!(acl(form(&[("key", "k")])).await, None, "the file's content is not a field");
        assert_eq!(acl(Bytes::from_static(b"not a form")).await, None);
    }
}
