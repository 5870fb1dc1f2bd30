//! `strata blob ...`: access keys and presigned links, through a running Strata's admin API
//! (`/v1/blob/*` on the http front), so the CLI never opens the data directory that the
//! server holds.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum BlobCommand {
    /// Manage the access keys that sign S3 requests.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a presigned URL for an object: `strata blob presign photos/cat.jpg`.
    Presign {
        /// `bucket/key`.
        object: String,
        /// GET (download, the default), PUT (upload), HEAD or DELETE.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Seconds the link works for (at most seven days).
        #[arg(long, default_value_t = 3600)]
        expires: u64,
        /// Sign with this access key instead of the admin key.
        #[arg(long)]
        access_key: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create an access key and print it with its secret (shown only once).
    Create {
        /// An admin key may do anything; others act on their own buckets and what bucket
        /// policies allow.
        #[arg(long)]
        admin: bool,
    },
    /// List access keys (without secrets).
    List,
    /// Revoke an access key: requests it signs fail from now on.
    Revoke { access_key: String },
}

/// Where the server is and how to authenticate to its admin API.
pub struct Server {
    pub url: String,
    pub api_key: Option<String>,
}

impl Server {
    fn send(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().with_context(|| format!("connecting to Strata at {}", self.url))?;
        let status = response.status();
        let text = response.text()?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }
}

pub fn run(server: &Server, command: BlobCommand) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::new();
    let url = |path: &str| format!("{}{path}", server.url.trim_end_matches('/'));
    match command {
        BlobCommand::Key { command: KeyCommand::Create { admin } } => {
            let key = server.send(http.post(url("/v1/blob/keys")).json(&json!({ "admin": admin })))?;
            println!("access_key = {}", key["access_key"].as_str().unwrap_or_default());
            println!("secret_key = {}", key["secret_key"].as_str().unwrap_or_default());
        }
        BlobCommand::Key { command: KeyCommand::List } => {
            let keys = server.send(http.get(url("/v1/blob/keys")))?;
            for key in keys["keys"].as_array().into_iter().flatten() {
                let admin = if key["admin"].as_bool() == Some(true) { " (admin)" } else { "" };
                println!("{}{admin}", key["access_key"].as_str().unwrap_or_default());
            }
        }
        BlobCommand::Key { command: KeyCommand::Revoke { access_key } } => {
            server.send(http.delete(url(&format!("/v1/blob/keys/{access_key}"))))?;
            println!("revoked {access_key}");
        }
        BlobCommand::Presign { object, method, expires, access_key } => {
            let Some((bucket, key)) = object.split_once('/') else {
                bail!("name the object as bucket/key, not {object:?}");
            };
            let body = json!({
                "bucket": bucket, "key": key, "method": method, "expires_secs": expires, "access_key": access_key,
            });
            let link = server.send(http.post(url("/v1/blob/links")).json(&body))?;
            println!("{}", link["url"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}
