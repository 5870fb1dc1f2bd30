//! Authentication of a request: API keys (`X-Api-Key` or a query parameter), JWT
//! (HS256 with a secret, RS256/ES256 with a PEM public key or a JWKS; issuer, audience, exp
//! and nbf checked) and HTTP Basic. A route accepts any method it configures; the result
//! is the consumer id, or a 401 (no or bad credentials) / 403 (a consumer not allowed).
//!
//! A JWKS from a URL ([`RemoteJwks`]) is fetched by the proxy front, which installs what it
//! gets here; until the first fetch succeeds, tokens for it are refused.

use crate::EdgeError;
use crate::spec::AuthSpec;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub struct Authenticator {
    api_keys: BTreeMap<String, String>,
    api_key_query: Option<String>,
    jwt: Option<Jwt>,
    basic: BTreeMap<String, String>,
    allow: Vec<String>,
}

/// A verification key: its `kid` (none matches every token), the key, its algorithm.
type JwtKey = (Option<String>, DecodingKey, Algorithm);

struct Jwt {
    keys: Vec<JwtKey>,
    remote: Option<Arc<RemoteJwks>>,
    validation: Validation,
    consumer_claim: String,
}

/// The keys of a JWKS served at a URL, as last fetched.
pub struct RemoteJwks {
    pub url: String,
    /// How often to fetch it again.
    pub refresh: Duration,
    keys: RwLock<Vec<JwtKey>>,
    /// A token named a `kid` that is not among the keys.
    unknown_kid: AtomicBool,
}

impl RemoteJwks {
    fn new(url: &str, refresh: Duration) -> Result<RemoteJwks, EdgeError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EdgeError::Invalid(format!("jwt.jwks_url {url:?} is not an http(s) URL")));
        }
        Ok(RemoteJwks {
            url: url.to_string(),
            refresh,
            keys: RwLock::default(),
            unknown_kid: AtomicBool::new(false),
        })
    }

    /// Replaces the keys with those of the JWKS document `text`; returns how many.
    pub fn install(&self, text: &str) -> Result<usize, EdgeError> {
        let keys = parse_jwks(text)?;
        let count = keys.len();
        *self.keys.write().expect("jwks lock") = keys;
        self.unknown_kid.store(false, Ordering::Release);
        Ok(count)
    }

    /// Takes over the keys `other` has (a route replaced with the same URL keeps working).
    pub fn adopt(&self, other: &RemoteJwks) {
        let keys = other.keys.read().expect("jwks lock").clone();
        *self.keys.write().expect("jwks lock") = keys;
    }

    /// Whether it needs a fetch before its refresh is due: it has no keys yet, or a token
    /// named a `kid` it lacks since the last install.
    pub fn wants_keys(&self) -> bool {
        self.unknown_kid.load(Ordering::Acquire) || self.keys.read().expect("jwks lock").is_empty()
    }
}

/// The keys of a JWKS document.
fn parse_jwks(text: &str) -> Result<Vec<JwtKey>, EdgeError> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| EdgeError::Invalid(format!("jwks: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let key = DecodingKey::from_jwk(jwk).map_err(|e| EdgeError::Invalid(format!("jwks: {e}")))?;
        let alg = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
            _ => Algorithm::RS256,
        };
        keys.push((jwk.common.key_id.clone(), key, alg));
    }
    Ok(keys)
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub message: String,
}

fn denied(status: u16, message: impl Into<String>) -> Denied {
    Denied { status, message: message.into() }
}

/// The credentials a request carries.
pub struct Credentials<'a> {
    pub api_key: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub query: Option<&'a str>,
}

impl Authenticator {
    pub fn new(spec: &AuthSpec) -> Result<Authenticator, EdgeError> {
        let jwt = spec.jwt.as_ref().map(|j| {
            let mut keys = Vec::new();
            if let Some(secret) = &j.secret {
                keys.push((None, DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256));
            }
            if let Some(pem) = &j.public_key_pem {
                let pem = pem.as_bytes();
                if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                    keys.push((None, k, Algorithm::RS256));
                } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                    keys.push((None, k, Algorithm::ES256));
                } else {
                    return Err(EdgeError::Invalid(
                        "jwt.public_key_pem is neither an RSA nor an EC public key".into(),
                    ));
                }
            }
            if let Some(jwks) = &j.jwks {
                let text = if jwks.trim_start().starts_with('{') {
                    jwks.clone()
                } else {
                    std::fs::read_to_string(jwks)
                        .map_err(|e| EdgeError::Invalid(format!("jwt.jwks {jwks}: {e}")))?
                };
                keys.extend(parse_jwks(&text).map_err(|e| EdgeError::Invalid(format!("jwt.{e}")))?);
            }
            let remote = j
                .jwks_url
                .as_deref()
                .map(|url| {
                    RemoteJwks::new(url, Duration::from_secs(j.jwks_refresh_secs.unwrap_or(300).max(1)))
                })
                .transpose()?
                .map(Arc::new);
            if keys.is_empty() && remote.is_none() {
                return Err(EdgeError::Invalid(
                    "jwt needs a secret, public_key_pem, jwks or jwks_url".into(),
                ));
            }
            let first_alg = keys.first().map_or(Algorithm::RS256, |k| k.2);
            let mut validation = Validation::new(first_alg);
            validation.leeway = j.leeway_secs;
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp"]);
            if let Some(iss) = &j.issuer {
                validation.set_issuer(&[iss]);
            }
            match &j.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            Ok(Jwt {
                keys,
                remote,
                validation,
                consumer_claim: j.consumer_claim.clone().unwrap_or_else(|| "sub".into()),
            })
        });
        Ok(Authenticator {
            api_keys: spec.api_keys.clone(),
            api_key_query: spec.api_key_query.clone(),
            jwt: jwt.transpose()?,
            basic: spec.basic.clone(),
            allow: spec.allow.clone(),
        })
    }

    /// The JWKS this route fetches from a URL, if any.
    pub fn remote_jwks(&self) -> Option<&Arc<RemoteJwks>> {
        self.jwt.as_ref()?.remote.as_ref()
    }

    /// The consumer the credentials name.
    pub fn authenticate(&self, creds: &Credentials) -> Result<String, Denied> {
        let consumer = self.identify(creds)?;
        if !self.allow.is_empty() && !self.allow.contains(&consumer) {
            return Err(denied(403, format!("consumer '{consumer}' may not use this route")));
        }
        Ok(consumer)
    }

    fn identify(&self, creds: &Credentials) -> Result<String, Denied> {
        let from_query = self.api_key_query.as_ref().and_then(|name| {
            creds.query?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then_some(v)
            })
        });
        if let Some(key) = creds.api_key.or(from_query) {
            if self.api_keys.is_empty() {
                return Err(denied(401, "API keys are not accepted on this route"));
            }
            return self.api_keys.get(key).cloned().ok_or_else(|| denied(401, "invalid API key"));
        }
        let authorization = creds.authorization.unwrap_or_default();
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            let Some(jwt) = &self.jwt else {
                return Err(denied(401, "bearer tokens are not accepted on this route"));
            };
            return jwt.verify(token.trim());
        }
        if let Some(b64) = authorization.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| denied(401, "malformed basic credentials"))?;
            let (user, password) =
                decoded.split_once(':').ok_or_else(|| denied(401, "malformed basic credentials"))?;
            return match self.basic.get(user) {
                Some(p) if constant_time_eq(p.as_bytes(), password.as_bytes()) => Ok(user.to_string()),
                _ => Err(denied(401, "invalid username or password")),
            };
        }
        Err(denied(401, "authentication required"))
    }
}

impl Jwt {
    fn verify(&self, token: &str) -> Result<String, Denied> {
        let header = decode_header(token).map_err(|e| denied(401, format!("invalid token: {e}")))?;
        let fits = |(kid, _, alg): &&JwtKey| *alg == header.alg && (kid.is_none() || *kid == header.kid);
        let mut last = denied(401, format!("tokens signed with {:?} are not accepted", header.alg));
        for (_, key, alg) in self.keys.iter().filter(fits) {
            match self.decode(token, key, *alg) {
                Ok(consumer) => return consumer,
                Err(d) => last = d,
            }
        }
        let Some(remote) = &self.remote else { return Err(last) };
        let keys = remote.keys.read().expect("jwks lock");
        let mut tried = false;
        for (_, key, alg) in keys.iter().filter(fits) {
            tried = true;
            match self.decode(token, key, *alg) {
                Ok(consumer) => return consumer,
                Err(d) => last = d,
            }
        }
        if !tried {
            remote.unknown_kid.store(true, Ordering::Release);
            if keys.is_empty() {
                last = denied(401, format!("the signing keys from {} are not loaded yet", remote.url));
            } else if let Some(kid) = &header.kid {
                last = denied(401, format!("no signing key with kid '{kid}'"));
            }
        }
        Err(last)
    }

    /// The consumer of a token `key` verifies (or why it is refused); `Err` when the key does
    /// not verify it.
    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Result<String, Denied>, Denied> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        match decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation) {
            Ok(data) => Ok(match data.claims.get(&self.consumer_claim) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Err(denied(401, format!("token has no '{}' claim", self.consumer_claim))),
            }),
            Err(e) => Err(denied(401, format!("invalid token: {e}"))),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
