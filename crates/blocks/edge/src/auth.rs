//! Authentication of a request: API keys (`X-Api-Key` or a query parameter), JWT
//! (HS256 with a secret, RS256/ES256 with a PEM public key or a JWKS; issuer, audience, exp
//! and nbf checked) and HTTP Basic. A route accepts any method it configures; the result
//! is the consumer id, or a 401 (no or bad credentials) / 403 (a consumer not allowed).
//!
//! A JWKS from a URL ([`RemoteJwks`]) is fetched by the proxy front, which installs what it
//! gets here; until the first fetch succeeds, tokens for it are refused.
//!
//! A route remembers the tokens it accepted lately ([`Verified`]), as Envoy's JWT cache
//! does: a client sends the same token on every request until it expires, and checking its
//! signature again (an RSA or ECDSA verification for RS256/ES256) and parsing its claims
//! is most of what authentication costs. Its `exp` and `nbf` are checked again at each use.

use crate::EdgeError;
use crate::spec::AuthSpec;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
    verified: Verified,
}

/// Tokens remembered at most per route; a full cache is emptied and fills again.
const VERIFIED_TOKENS: usize = 1024;
/// Longer tokens are verified every time (the cache holds at most 1024 × 4 KiB).
const VERIFIED_TOKEN_BYTES: usize = 4096;

/// The tokens a route accepted lately, with what is needed to accept them again without
/// their signature: the consumer and the time claims. Rejected tokens are never kept, so a
/// client cannot fill it with garbage. Entries are tied to the generation of the route's
/// remote JWKS: new keys empty it, so a key taken out of the set stops its tokens at once.
#[derive(Default)]
struct Verified {
    tokens: Mutex<(u64, HashMap<Box<str>, Accepted>)>,
}

/// A token that verified.
#[derive(Clone)]
struct Accepted {
    consumer: String,
    exp: u64,
    nbf: Option<u64>,
}

impl Accepted {
    /// Whether its time claims hold at `now`, as jsonwebtoken checks them.
    fn in_time(&self, now: u64, leeway: u64) -> bool {
        self.exp >= now.saturating_sub(leeway) && self.nbf.is_none_or(|nbf| nbf <= now + leeway)
    }
}

impl Verified {
    fn get(&self, token: &str, generation: u64) -> Option<Accepted> {
        let mut tokens = self.tokens.lock().expect("verified tokens lock");
        if tokens.0 != generation {
            *tokens = (generation, HashMap::new());
            return None;
        }
        tokens.1.get(token).cloned()
    }

    fn put(&self, token: &str, generation: u64, accepted: &Accepted) {
        if token.len() > VERIFIED_TOKEN_BYTES {
            return;
        }
        let mut tokens = self.tokens.lock().expect("verified tokens lock");
        if tokens.0 != generation {
            return;
        }
        if tokens.1.len() >= VERIFIED_TOKENS {
            tokens.1.clear();
        }
        tokens.1.insert(token.into(), accepted.clone());
    }
}

/// The keys of a JWKS served at a URL, as last fetched.
pub struct RemoteJwks {
    pub url: String,
    /// How often to fetch it again.
    pub refresh: Duration,
    keys: RwLock<Vec<JwtKey>>,
    /// Counts the installs of keys, so tokens verified with earlier keys are verified again.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
            unknown_kid: AtomicBool::new(false),
        })
    }

    /// Replaces the keys with those of the JWKS document `text`; returns how many.
    pub fn install(&self, text: &str) -> Result<usize, EdgeError> {
        let keys = parse_jwks(text)?;
        let count = keys.len();
        *self.keys.write().expect("jwks lock") = keys;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.unknown_kid.store(false, Ordering::Release);
        Ok(count)
    }

    /// Takes over the keys `other` has (a route replaced with the same URL keeps working).
    pub fn adopt(&self, other: &RemoteJwks) {
        let keys = other.keys.read().expect("jwks lock").clone();
        *self.keys.write().expect("jwks lock") = keys;
        self.generation.fetch_add(1, Ordering::AcqRel);
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
                verified: Verified::default(),
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
        let generation = self.remote.as_ref().map_or(0, |r| r.generation.load(Ordering::Acquire));
        if let Some(accepted) = self.verified.get(token, generation)
            && accepted.in_time(jsonwebtoken::get_current_timestamp(), self.validation.leeway)
        {
            return Ok(accepted.consumer);
        }
        let accepted = self.verify_signed(token)?;
        self.verified.put(token, generation, &accepted);
        Ok(accepted.consumer)
    }

    /// Verifies the token's signature with the keys that fit it, and its claims.
    fn verify_signed(&self, token: &str) -> Result<Accepted, Denied> {
        let header = decode_header(token).map_err(|e| denied(401, format!("invalid token: {e}")))?;
        let fits = |(kid, _, alg): &&JwtKey| *alg == header.alg && (kid.is_none() || *kid == header.kid);
        let mut last = denied(401, format!("tokens signed with {:?} are not accepted", header.alg));
        for (_, key, alg) in self.keys.iter().filter(fits) {
            match self.decode(token, key, *alg) {
                Ok(accepted) => return accepted,
                Err(d) => last = d,
            }
        }
        let Some(remote) = &self.remote else { return Err(last) };
        let keys = remote.keys.read().expect("jwks lock");
        let mut tried = false;
        for (_, key, alg) in keys.iter().filter(fits) {
            tried = true;
            match self.decode(token, key, *alg) {
                Ok(accepted) => return accepted,
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

    /// The token `key` verifies (or why it is refused); `Err` when the key does not verify it.
    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Result<Accepted, Denied>, Denied> {
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let claims = match decode::<serde_json::Map<String, serde_json::Value>>(token, key, &validation) {
            Ok(data) => data.claims,
            Err(e) => return Err(denied(401, format!("invalid token: {e}"))),
        };
        let consumer = match claims.get(&self.consumer_claim) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Ok(Err(denied(401, format!("token has no '{}' claim", self.consumer_claim)))),
        };
        // jsonwebtoken has checked both: `exp` is present and numeric, `nbf` numeric if there.
        let time = |name: &str| {
            let value = claims.get(name)?;
            value.as_u64().or_else(|| value.as_f64().map(|f| f as u64))
        };
        Ok(Ok(Accepted { consumer, exp: time("exp").unwrap_or(0), nbf: time("nbf") }))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::json;

    fn authenticator(jwt: serde_json::Value) -> Authenticator {
        Authenticator::new(&serde_json::from_value(json!({ "jwt": jwt })).unwrap()).unwrap()
    }

    fn token(secret: &str, kid: Option<&str>, claims: serde_json::Value) -> String {
        let header = Header { kid: kid.map(String::from), ..Header::default() };
        encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn bearer(auth: &Authenticator, token: &str) -> Result<String, Denied> {
        let authorization = format!("Bearer {token}");
        auth.authenticate(&Credentials { api_key: None, authorization: Some(&authorization), query: None })
    }

    fn remembered(auth: &Authenticator) -> usize {
        auth.jwt.as_ref().unwrap().verified.tokens.lock().unwrap().1.len()
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let auth = authenticator(json!({"secret": "s", "leeway_secs": 0}));
        let short = token("s", None, json!({"sub": "ann", "exp": get_current_timestamp() + 1}));
        assert_eq!(bearer(&auth, &short), Ok("ann".into()));
        assert_eq!(bearer(&auth, &short), Ok("ann".into()));
        assert_eq!(remembered(&auth), 1);
        std::thread::sleep(Duration::from_millis(2100));
        let err = bearer(&auth, &short).unwrap_err();
        assert_eq!(err.status, 401);
        assert!(err.message.contains("Expired"), "{}", err.message);
        // Not yet valid: refused, and never remembered.
        let early = token(
            "s",
            None,
            json!({"sub": "bo", "exp": get_current_timestamp() + 60, "nbf": get_current_timestamp() + 30}),
        );
        assert!(bearer(&auth, &early).is_err());
        assert!(bearer(&auth, &early).is_err());
        let accepted = Accepted { consumer: "c".into(), exp: 100, nbf: Some(50) };
        assert!(accepted.in_time(50, 0) && accepted.in_time(100, 0) && accepted.in_time(105, 5));
        assert!(!accepted.in_time(49, 0) && !accepted.in_time(101, 0) && accepted.in_time(45, 5));
    }

    #[test]
    fn new_jwks_keys_forget_the_tokens_old_keys_verified() {
        let auth = authenticator(json!({"jwks_url": "http://idp/keys"}));
        let remote = auth.remote_jwks().unwrap().clone();
        // "c2VjcmV0" is base64url for "secret", "b3RoZXI" for "other".
        remote.install(&json!({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}).to_string()).unwrap();
        let signed = token("secret", Some("k1"), json!({"sub": "cy", "exp": get_current_timestamp() + 60}));
        assert_eq!(bearer(&auth, &signed), Ok("cy".into()));
        assert_eq!(remembered(&auth), 1);
        remote.install(&json!({"keys": [{"kty": "oct", "kid": "k2", "k": "b3RoZXI"}]}).to_string()).unwrap();
        let err = bearer(&auth, &signed).unwrap_err();
        assert_eq!((err.status, err.message.as_str()), (401, "no signing key with kid 'k1'"));
    }

    #[test]
    fn the_remembered_tokens_are_bounded() {
        let auth = authenticator(json!({"secret": "s"}));
        let exp = get_current_timestamp() + 60;
        for i in 0..VERIFIED_TOKENS + 10 {
            let consumer = format!("user-{i}");
            assert_eq!(bearer(&auth, &token("s", None, json!({"sub": consumer, "exp": exp}))), Ok(consumer));
            assert!(remembered(&auth) <= VERIFIED_TOKENS);
        }
        let long = token("s", None, json!({"sub": "x".repeat(VERIFIED_TOKEN_BYTES), "exp": exp}));
        let before = remembered(&auth);
        assert!(bearer(&auth, &long).is_ok());
        assert_eq!(remembered(&auth), before, "a token over the size bound is not kept");
        let forged = format!("{}x", token("s", None, json!({"sub": "z", "exp": exp})));
        assert!(bearer(&auth, &forged).is_err());
        assert_eq!(remembered(&auth), before, "a refused token is not kept");
    }
}
