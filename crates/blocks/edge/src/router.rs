//! Route matching: host (exact or `*.suffix`), path (exact, prefix, regex with captures),
//! methods and headers; and the rewrite of the forwarded path.
//!
//! Precedence: higher `priority`, then an exact path before a regex before a longer prefix
//! before none, then an exact host before a wildcard before none, then routes that restrict
//! methods or headers; then the order routes were declared in.

use crate::spec::MatchSpec;
use crate::{EdgeError, RouteSpec};
use regex::Regex;

pub struct Matcher {
    host: Option<HostMatch>,
    path: PathMatch,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
}

enum HostMatch {
    Exact(String),
    /// `*.example.com` → `.example.com`.
    Suffix(String),
}

enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

/// The captures of a path regex, by number and by name.
pub type Captures = Vec<(String, String)>;

/// What a request offers for matching.
pub struct RequestHead<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub method: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

impl Matcher {
    pub fn new(spec: &MatchSpec) -> Result<Matcher, EdgeError> {
        let paths = [spec.path.is_some(), spec.path_prefix.is_some(), spec.path_regex.is_some()];
        if paths.iter().filter(|p| **p).count() > 1 {
            return Err(EdgeError::Invalid("match takes one of path, path_prefix and path_regex".into()));
        }
        let path = if let Some(p) = &spec.path {
            PathMatch::Exact(p.clone())
        } else if let Some(p) = &spec.path_prefix {
            PathMatch::Prefix(p.clone())
        } else if let Some(r) = &spec.path_regex {
            let anchored = format!("^(?:{r})$");
            PathMatch::Regex(
                Regex::new(&anchored).map_err(|e| EdgeError::Invalid(format!("path_regex: {e}")))?,
            )
        } else {
            PathMatch::Any
        };
        let host = spec.host.as_ref().map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
            None => HostMatch::Exact(h.to_ascii_lowercase()),
        });
        Ok(Matcher {
            host,
            path,
            methods: spec.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
            headers: spec.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
        })
    }

    /// A sort key: larger is more specific.
    pub fn specificity(&self) -> (u8, usize, u8, u8) {
        let (kind, len) = match &self.path {
            PathMatch::Exact(p) => (3, p.len()),
            PathMatch::Regex(_) => (2, 0),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Any => (0, 0),
        };
        let host = match &self.host {
            Some(HostMatch::Exact(_)) => 2,
            Some(HostMatch::Suffix(_)) => 1,
            None => 0,
        };
        let extra = u8::from(!self.methods.is_empty()) + u8::from(!self.headers.is_empty());
        (kind, len, host, extra)
    }

    /// Whether the request matches; on a match, the captures of a path regex.
    pub fn matches(&self, req: &RequestHead) -> Option<Captures> {
        let host = req.host.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match &self.host {
            Some(HostMatch::Exact(h)) if *h != host => return None,
            Some(HostMatch::Suffix(s)) if !host.ends_with(s.as_str()) => return None,
            _ => {}
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return None;
        }
        for (name, want) in &self.headers {
            let have = (req.header)(name)?;
            if want != "*" && have != *want {
                return None;
            }
        }
        match &self.path {
            PathMatch::Any => Some(Vec::new()),
            PathMatch::Exact(p) => (p == req.path).then(Vec::new),
            PathMatch::Prefix(p) => prefix_matches(p, req.path).then(Vec::new),
            PathMatch::Regex(r) => {
                let caps = r.captures(req.path)?;
                let mut out = Vec::new();
                for (i, name) in r.capture_names().enumerate().skip(1) {
                    let value = caps.get(i).map_or("", |m| m.as_str()).to_string();
                    out.push((i.to_string(), value.clone()));
                    if let Some(name) = name {
                        out.push((name.to_string(), value));
                    }
                }
                Some(out)
            }
        }
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apis`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path to forward: the prefix stripped and/or the rewrite applied.
pub fn forward_path(spec: &RouteSpec, path: &str, captures: &[(String, String)]) -> String {
    if let Some(rewrite) = &spec.rewrite {
        let mut out = rewrite.clone();
        // Longest names first, so `$10` is not read as `$1` then `0`.
        let mut caps: Vec<&(String, String)> = captures.iter().collect();
        caps.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        for (name, value) in caps {
            out = out.replace(&format!("${name}"), value);
        }
        return out;
    }
    if spec.strip_prefix
        && let Some(prefix) = &spec.matcher.path_prefix
    {
        let rest = path.strip_prefix(prefix.trim_end_matches('/')).unwrap_or(path);
        return if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
    }
    path.to_string()
}
