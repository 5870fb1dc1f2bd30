//! Bucket policies: the subset of S3's JSON policy language that says who may do what to
//! which keys.
//!
//! ```json
//! {"Version": "2012-10-17", "Statement": [
//!   {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
//!    "Resource": "arn:aws:s3:::photos/public/*"},
//!   {"Effect": "Deny", "Principal": {"AWS": ["AKEXAMPLE"]}, "Action": ["s3:DeleteObject"],
//!    "Resource": ["arn:aws:s3:::photos/*"]}]}
//! ```
//!
//! Principals are `*` (everyone, anonymous included) or access keys (bare, or as the last
//! segment of an IAM ARN). Actions and resources take `*` and `?` wildcards. As in S3, an
//! explicit Deny wins over any Allow.
//!
//! ## Limitations
//!
//! `Condition`, `NotAction`, `NotPrincipal` and `NotResource` are refused as malformed
//! rather than ignored, so a policy never grants more than it says.

use crate::glob::glob_match;
use crate::{BlobError, BlobResult};
use serde_json::Value;

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal<'a> {
    Anonymous,
    Key(&'a str),
}

/// What a policy says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement matched.
    Silent,
}

#[derive(Clone, Debug)]
struct Statement {
    allow: bool,
    principals: Vec<String>,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A parsed bucket policy.
#[derive(Clone, Debug)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// Largest policy accepted, as S3's 20 KiB.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

fn strings(value: &Value, what: &str) -> BlobResult<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| malformed(format!("{what} must be strings")))
            })
            .collect(),
        _ => Err(malformed(format!("{what} must be a string or a list of strings"))),
    }
}

fn malformed(msg: String) -> BlobError {
    BlobError::MalformedPolicy(msg)
}

impl Policy {
    /// Parses and checks a policy for `bucket`: every resource must be in the bucket.
    pub fn parse(text: &str, bucket: &str) -> BlobResult<Policy> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(malformed(format!("policies are limited to {MAX_POLICY_BYTES} bytes")));
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(item @ Value::Object(_)) => vec![item.clone()],
            _ => return Err(malformed("Statement is missing".into())),
        };
        let mut parsed = Vec::new();
        for st in &statements {
            let Some(obj) = st.as_object() else {
                return Err(malformed("a Statement must be an object".into()));
            };
            for unsupported in ["Condition", "NotAction", "NotPrincipal", "NotResource"] {
                if obj.contains_key(unsupported) {
                    return Err(malformed(format!("{unsupported} is not supported")));
                }
            }
            let allow = match obj.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(malformed("Effect must be Allow or Deny".into())),
            };
            let principals = match obj.get("Principal") {
                Some(Value::String(s)) if s == "*" => vec!["*".to_owned()],
                Some(Value::Object(p)) => match p.get("AWS") {
                    Some(v) => strings(v, "Principal.AWS")?
                        .into_iter()
                        .map(|p| p.rsplit('/').next().unwrap_or(&p).to_owned())
                        .collect(),
                    None => return Err(malformed("Principal must be \"*\" or {\"AWS\": ...}".into())),
                },
                _ => return Err(malformed("Principal must be \"*\" or {\"AWS\": ...}".into())),
            };
            let actions = strings(obj.get("Action").unwrap_or(&Value::Null), "Action")?;
            for action in &actions {
                if !(action == "*" || action.starts_with("s3:")) {
                    return Err(malformed(format!("action {action} is not an s3 action")));
                }
            }
            let resources = strings(obj.get("Resource").unwrap_or(&Value::Null), "Resource")?;
            let mut names = Vec::new();
            for resource in resources {
                let Some(name) = resource.strip_prefix("arn:aws:s3:::") else {
                    return Err(malformed(format!("resource {resource} is not an arn:aws:s3::: ARN")));
                };
                let in_bucket = name == bucket || name.starts_with(&format!("{bucket}/"));
                if !in_bucket && !glob_match(name.as_bytes(), bucket.as_bytes()) {
                    return Err(malformed(format!("resource {resource} is outside the bucket {bucket}")));
                }
                names.push(name.to_owned());
            }
            parsed.push(Statement { allow, principals, actions, resources: names });
        }
        Ok(Policy { statements: parsed })
    }

    /// What the policy says about `principal` doing `action` (`s3:GetObject`) on `resource`
    /// (`bucket` or `bucket/key`).
    pub fn evaluate(&self, principal: Principal<'_>, action: &str, resource: &str) -> Decision {
        let mut decision = Decision::Silent;
        for st in &self.statements {
            let who = st
                .principals
                .iter()
                .any(|p| p == "*" || matches!(principal, Principal::Key(key) if key == p));
            let what = st.actions.iter().any(|a| glob_match(a.as_bytes(), action.as_bytes()));
            let where_ = st.resources.iter().any(|r| glob_match(r.as_bytes(), resource.as_bytes()));
            if who && what && where_ {
                if !st.allow {
                    return Decision::Deny;
                }
                decision = Decision::Allow;
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_READ: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::site/public/*"]},
        {"Effect":"Deny","Principal":{"AWS":["arn:aws:iam::000000000000:user/BOB"]},"Action":"s3:*","Resource":"arn:aws:s3:::site/*"}]}"#;

    #[test]
    fn allow_deny_and_silence() {
        let policy = Policy::parse(PUBLIC_READ, "site").unwrap();
        let anon = Principal::Anonymous;
        assert_eq!(policy.evaluate(anon, "s3:GetObject", "site/public/a.html"), Decision::Allow);
        assert_eq!(policy.evaluate(anon, "s3:GetObject", "site/private/a"), Decision::Silent);
        assert_eq!(policy.evaluate(anon, "s3:PutObject", "site/public/a.html"), Decision::Silent);
        assert_eq!(policy.evaluate(Principal::Key("BOB"), "s3:GetObject", "site/public/a"), Decision::Deny);
        assert_eq!(policy.evaluate(Principal::Key("ANN"), "s3:GetObject", "site/public/a"), Decision::Allow);
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            "not json",
            r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*","Condition":{}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ec2:Run","Resource":"arn:aws:s3:::site/*"}]}"#,
        ] {
            assert!(matches!(Policy::parse(bad, "site"), Err(BlobError::MalformedPolicy(_))), "{bad}");
        }
    }
}
