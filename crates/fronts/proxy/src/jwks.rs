//! Fetches the JWKS of every route whose JWT keys come from a URL (`jwt.jwks_url`) and
//! installs it in the route's authenticator: when the route appears, every
//! `jwks_refresh_secs`, and soon after a token names a `kid` the keys lack (a key rotation),
//! at most once per [`MIN_GAP`] per URL. Routes sharing a URL share its fetches. A failed
//! fetch keeps the keys already installed and is retried after [`MIN_GAP`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_edge::Edge;
use strata_edge::auth::RemoteJwks;

/// Fewest time between two fetches of one URL.
const MIN_GAP: Duration = Duration::from_secs(5);
/// Largest JWKS document accepted.
const MAX_BYTES: usize = 1 << 20;
/// Longest a fetch may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(edge: Edge) {
    let client = match jwks_http::Client::builder().timeout(TIMEOUT).build() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "no HTTP client for fetching JWKS; routes with jwt.jwks_url refuse tokens");
            return;
        }
    };
    let mut last_fetch: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let table = edge.table();
        let mut by_url: HashMap<&str, Vec<&Arc<RemoteJwks>>> = HashMap::new();
        for route in table.routes() {
            if let Some(remote) = route.remote_jwks() {
                by_url.entry(remote.url.as_str()).or_default().push(remote);
            }
        }
        last_fetch.retain(|url, _| by_url.contains_key(url.as_str()));
        for (url, remotes) in by_url {
            let due = match last_fetch.get(url).map(Instant::elapsed) {
                None => true,
                Some(since) => {
                    let refresh = remotes.iter().map(|r| r.refresh).min().unwrap_or(MIN_GAP);
                    since >= refresh.max(MIN_GAP)
                        || (since >= MIN_GAP && remotes.iter().any(|r| r.wants_keys()))
                }
            };
            if !due {
                continue;
            }
            last_fetch.insert(url.to_string(), Instant::now());
            let installed = fetch(&client, url).await.and_then(|text| {
                remotes.iter().try_for_each(|r| r.install(&text).map(drop).map_err(|e| e.to_string()))
            });
            match installed {
                Ok(()) => tracing::info!(url, "JWKS fetched"),
                Err(err) => tracing::warn!(url, %err, "fetching a JWKS failed; keeping the keys it had"),
            }
        }
    }
}

/// The body of a 2xx answer to a GET of `url`, up to [`MAX_BYTES`].
async fn fetch(client: &jwks_http::Client, url: &str) -> Result<String, String> {
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(format!("the document is over {MAX_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the document is not UTF-8".to_string())
}
