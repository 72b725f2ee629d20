//! What nix-hf says about the Hub's answers, in one place: refusals (each
//! naming the input, why, and what to do), and what happened on attempts
//! that are worth repeating (which the retry runner quotes when it gives up).

use reqwest::header::HeaderMap;
use url::Url;

use crate::error::{Error, Kind};
use crate::spec::Spec;
use crate::token::{host_key, Choice};

/// An answer that ends the request: 401, 403, 404 and the like.
pub struct Refusal<'a> {
    pub endpoint: &'a Url,
    pub spec: &'a Spec,
    pub token: &'a Choice,
    /// What was asked: a revision, or a file's path.
    pub what: &'a str,
    pub status: u16,
    pub headers: &'a HeaderMap,
}

impl Refusal<'_> {
    pub fn error(&self) -> Error {
        let header = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (code, message) = (header("X-Error-Code"), header("X-Error-Message"));
        let endpoint = self.endpoint.as_str().trim_end_matches('/');
        let name = self.spec.display();
        let kind = self.spec.kind.as_str();
        let repo = &self.spec.repo;
        let page = format!("{endpoint}/{}{repo}", self.spec.kind.url_prefix());
        let how_token = format!(
            "provide a token with read access: access-tokens = {}=hf_… in nix.conf, or HF_TOKEN",
            host_key(self.endpoint)
        );
        let token_note = match (&self.token.token, &self.token.withheld) {
            (Some(t), _) => format!("the token (from {}) has no access", t.source),
            (None, Some(withheld)) => format!("no token was sent ({withheld})"),
            (None, None) => "no token was sent".to_string(),
        };
        let status = self.status;
        let what = self.what;
        match (status, code.as_str()) {
            (401, "") if message.contains("Invalid credentials") || self.token.token.is_some() => Error::new(
                Kind::AccessDenied,
                format!(
                    "the Hub rejected the token for {endpoint} (from {}) as invalid while fetching '{name}'; fix or remove it",
                    self.token.token.as_ref().map_or("?", |t| t.source.as_str())
                ),
            ),
            (_, "GatedRepo") => Error::new(
                Kind::AccessDenied,
                format!("'{name}' is a gated {kind} and {token_note}; accept its conditions at {page} and {how_token}"),
            ),
            (_, "RepoNotFound") | (401, _) => Error::new(
                Kind::NotFound,
                format!(
                    "{kind} repo '{repo}' was not found at {endpoint} ('{name}'), or it is private and {token_note}; \
                     check the name, or {how_token}"
                ),
            ),
            (_, "RevisionNotFound") => Error::new(
                Kind::NotFound,
                format!("revision '{what}' does not exist in {kind} repo '{repo}' ('{name}'); check the ref or rev"),
            ),
            (_, "EntryNotFound") => Error::new(Kind::NotFound, format!("file '{what}' does not exist in '{name}'")),
            (403, _) => Error::new(
                Kind::AccessDenied,
                format!("the Hub refused access to '{name}' ({status}): {message}; {how_token}"),
            ),
            _ => Error::new(
                Kind::NotFound,
                format!(
                    "the Hub answered {status} for '{name}' ({what}){}",
                    if message.is_empty() { String::new() } else { format!(": {message}") }
                ),
            ),
        }
    }
}

/// An answer worth another try (429, 5xx), as the final message quotes it.
pub fn answered(server: &str, status: u16, headers: &HeaderMap) -> String {
    let mut s = format!("{server} answered {status}");
    if let Some(v) = headers.get("Retry-After").and_then(|v| v.to_str().ok()) {
        s.push_str(&format!(" (Retry-After: {v})"));
    } else if let Some(v) = headers.get("RateLimit").and_then(|v| v.to_str().ok()) {
        s.push_str(&format!(" (RateLimit: {v})"));
    }
    s
}

/// No usable answer from `server` (as `Hub::server_name` calls it):
/// refused, reset, stalled, bad TLS.
pub fn unreachable(server: &str, e: &reqwest::Error, stall_secs: u64) -> String {
    if e.is_timeout() {
        return format!("{server} stayed silent for {stall_secs} s (hf-stall-timeout)");
    }
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    format!("cannot reach {server} ({cause}); check the network, or HF_ENDPOINT / the hf-endpoint setting")
}

/// A read that failed or stalled partway through a body.
pub fn read_failed(path: &str, at: u64, e: &std::io::Error, stall_secs: u64) -> String {
    if timed_out(e) {
        return format!("the transfer of '{path}' stalled at byte {at} for {stall_secs} s (hf-stall-timeout)");
    }
    format!("the transfer of '{path}' broke off at byte {at} ({e})")
}

/// Whether a read error is a timeout: the HTTP client reports one as an
/// I/O error wrapping its own error, whose cause is the timeout.
fn timed_out(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref().and_then(|inner| inner.downcast_ref::<reqwest::Error>()).is_some_and(|r| r.is_timeout())
}

pub const EXPIRED: &str = "the CDN refused the download URL as expired (403), even freshly resolved";
