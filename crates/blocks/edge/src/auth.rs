//! Authentication of a request: API keys (`X-Api-Key` or a query parameter), JWT
//! (HS256 with a secret, RS256/ES256 with a PEM public key or a JWKS; issuer, audience, exp
//! and nbf checked) and HTTP Basic. A route accepts any method it configures; the result
//! is the consumer id, or a 401 (no or bad credentials) / 403 (a consumer not allowed).

use crate::EdgeError;
use crate::spec::AuthSpec;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use std::collections::BTreeMap;

pub struct Authenticator {
    api_keys: BTreeMap<String, String>,
    api_key_query: Option<String>,
    jwt: Option<Jwt>,
    basic: BTreeMap<String, String>,
    allow: Vec<String>,
}

struct Jwt {
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    validation: Validation,
    consumer_claim: String,
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
                let set: JwkSet =
                    serde_json::from_str(&text).map_err(|e| EdgeError::Invalid(format!("jwt.jwks: {e}")))?;
                for jwk in &set.keys {
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|e| EdgeError::Invalid(format!("jwt.jwks: {e}")))?;
                    let alg = match &jwk.algorithm {
                        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                        _ => Algorithm::RS256,
                    };
                    keys.push((jwk.common.key_id.clone(), key, alg));
                }
            }
            if keys.is_empty() {
                return Err(EdgeError::Invalid("jwt needs a secret, public_key_pem or jwks".into()));
            }
            let mut validation = Validation::new(keys[0].2);
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
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, _, alg)| *alg == header.alg && (kid.is_none() || *kid == header.kid));
        let mut last = denied(401, format!("tokens signed with {:?} are not accepted", header.alg));
        for (_, key, alg) in candidates {
            let mut validation = self.validation.clone();
            validation.algorithms = vec![*alg];
            match decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation) {
                Ok(data) => {
                    return match data.claims.get(&self.consumer_claim) {
                        Some(serde_json::Value::String(s)) => Ok(s.clone()),
                        Some(other) => Ok(other.to_string()),
                        None => Err(denied(401, format!("token has no '{}' claim", self.consumer_claim))),
                    };
                }
                Err(e) => last = denied(401, format!("invalid token: {e}")),
            }
        }
        Err(last)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
