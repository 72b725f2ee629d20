//! Talking to the Hub over HTTP: resolving revisions, listing trees, opening
//! files. Redirects are followed by hand so the token only ever goes to the
//! endpoint's own origin, never to a CDN. Errors are complete sentences that
//! say which repo, what happened and what to do.

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RANGE};
use serde_json::Value as Json;
use url::Url;

use crate::retry::{self, Policy};
use crate::select::is_plain_relative_path;
use crate::spec::Spec;
use crate::token::Token;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How every "no answer from the Hub" message begins; the glue falls back to
/// a stale cached commit on it.
pub const UNREACHABLE: &str = "cannot reach the Hugging Face Hub";

#[derive(Debug)]
pub struct HubError(pub String);

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HubError {}

pub type Result<T> = std::result::Result<T, HubError>;

macro_rules! fail {
    ($($arg:tt)*) => { return Err(HubError(format!($($arg)*))) };
}

/// The commit a ref points to, and its date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub sha: String,
    pub last_modified: u64,
}

/// What a file must hash to: LFS files by sha256 of their content, others by
/// the git blob sha1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest {
    GitSha1(String),
    Sha256(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

pub struct Hub {
    endpoint: Url,
    token: Option<Token>,
    client: Client,
    policy: Policy,
}

/// The answer to a ranged file request, sorted by what the engine does next.
pub enum Fetched {
    /// Bytes to write; `skip` leading bytes are not wanted (a server that
    /// ignored Range sends the file from its start).
    Body { response: Response, skip: u64 },
    /// A signed CDN URL that is no longer valid: resolve again.
    Expired,
    /// Worth another try: after `wait` when the server said so.
    Retry { wait: Option<Duration>, why: String },
}

/// The endpoint from the plugin setting, else `HF_ENDPOINT`, else the Hub.
pub fn endpoint_from(setting: &str, env: Option<String>) -> String {
    let e = if !setting.is_empty() {
        setting.to_string()
    } else {
        env.filter(|e| !e.is_empty()).unwrap_or(DEFAULT_ENDPOINT.into())
    };
    e.trim_end_matches('/').to_string()
}

/// `host` or `host:port` of an endpoint, as access-tokens entries name it.
pub fn endpoint_host(endpoint: &str) -> Option<String> {
    let u = Url::parse(endpoint).ok()?;
    let host = u.host_str()?.to_string();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Percent-encodes everything but unreserved characters (and `/` when
/// `keep_slash`): revisions travel as one segment, file paths keep theirs.
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Hub {
    /// `stall` bounds how long any one read or connect may wait for data.
    /// `ca_file`, when given, holds the only certificate authorities trusted
    /// for https (Nix's ssl-cert-file); otherwise the system's are.
    pub fn new(
        endpoint: &str,
        token: Option<Token>,
        stall: Duration,
        policy: Policy,
        ca_file: Option<&str>,
    ) -> Result<Hub> {
        let endpoint = match Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => fail!("the Hugging Face endpoint '{endpoint}' is not an http(s) URL; fix HF_ENDPOINT or the hf-endpoint setting"),
        };
        let mut builder = Client::builder();
        if let Some(f) = ca_file.filter(|f| !f.is_empty()) {
            let pem = std::fs::read(f).map_err(|e| {
                HubError(format!(
                    "cannot read the CA certificates in '{f}' (ssl-cert-file, NIX_SSL_CERT_FILE or SSL_CERT_FILE): {e}"
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| HubError(format!("'{f}' (ssl-cert-file) holds no PEM certificates")))?;
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(stall)
            // Per operation in the blocking client (each read, not the whole
            // body): a stalled transfer fails instead of hanging.
            .timeout(stall)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .user_agent(concat!("nix-hf/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HubError(format!("cannot set up HTTP: {e}")))?;
        Ok(Hub { endpoint, token, client, policy })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str().trim_end_matches('/')
    }

    fn same_origin(&self, u: &Url) -> bool {
        u.origin() == self.endpoint.origin()
    }

    fn api_base(&self, spec: &Spec) -> String {
        format!("{}/api/{}s/{}", self.endpoint(), spec.kind.as_str(), spec.repo)
    }

    /// One request, with the token only when the URL is on the endpoint's
    /// origin. Redirects are not followed here.
    fn send(
        &self,
        method: reqwest::Method,
        url: &Url,
        headers: &HeaderMap,
    ) -> std::result::Result<Response, reqwest::Error> {
        let mut req = self.client.request(method, url.clone()).headers(headers.clone());
        if let (true, Some(t)) = (self.same_origin(url), &self.token) {
            req = req.header(AUTHORIZATION, t.bearer());
        }
        req.send()
    }

    /// GET following redirects by hand, so the token is dropped for any
    /// other origin.
    fn get(&self, url: &str, headers: HeaderMap) -> Result<Response> {
        let mut url = Url::parse(url).map_err(|e| HubError(format!("bad URL {url}: {e}")))?;
        for _ in 0..10 {
            let resp = self.send(reqwest::Method::GET, &url, &headers).map_err(|e| self.unreachable(&url, e))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            url = redirect_target(&url, &resp)?;
        }
        fail!("too many redirects fetching {url}")
    }

    /// An API GET that succeeded, retrying connection trouble, 429 and 5xx
    /// as the shared policy says; refusals (401, 403, 404) end it at once.
    fn get_api(&self, url: &str, spec: &Spec, what: &str, stopped: &dyn Fn() -> bool) -> Result<Response> {
        let mut last = String::new();
        let mut n = 0;
        while n < self.policy.attempts {
            n += 1;
            if n > 1 && !retry::sleep(self.policy.backoff(n), stopped) {
                fail!("{}", crate::fetch::INTERRUPTED);
            }
            let resp = match self.get(url, HeaderMap::new()) {
                Ok(r) => r,
                Err(HubError(e)) => {
                    last = e;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if resp.status().is_success() {
                return Ok(resp);
            }
            if !retry::is_transient(status) {
                return Err(self.refusal(spec, resp, what));
            }
            last = format!("the Hub answered {status} for '{}' ({what})", spec.display());
            if let Some(w) = retry::server_wait(resp.headers()) {
                if w > retry::MAX_SERVER_WAIT {
                    fail!("{last} and asks to wait {} s; try again later", w.as_secs());
                }
                if !retry::sleep(w, stopped) {
                    fail!("{}", crate::fetch::INTERRUPTED);
                }
                n -= 1; // waiting as told is not a failed attempt
            }
        }
        if n > 1 {
            last.push_str(&format!(" (tried {n} times)"));
        }
        Err(HubError(last))
    }

    fn unreachable(&self, url: &Url, e: reqwest::Error) -> HubError {
        let mut cause = String::new();
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            cause = s.to_string();
            src = s.source();
        }
        let origin = url.origin().ascii_serialization();
        HubError(format!(
            "{UNREACHABLE} at {origin} ({cause}); check the network, or HF_ENDPOINT / the hf-endpoint setting"
        ))
    }

    /// Turns a Hub error answer into a message about `spec`.
    fn refusal(&self, spec: &Spec, resp: Response, what: &str) -> HubError {
        let status = resp.status();
        let h = resp.headers();
        let code = h.get("X-Error-Code").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let message = h.get("X-Error-Message").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let name = spec.display();
        let kind = spec.kind.as_str();
        let page = format!("{}/{}{}", self.endpoint(), spec.kind.url_prefix(), spec.repo);
        let how_token = format!(
            "provide a token with read access: access-tokens = {}=hf_… in nix.conf, or HF_TOKEN",
            endpoint_host(self.endpoint()).unwrap_or_default()
        );
        let token_note = match &self.token {
            None => "no token was sent".to_string(),
            Some(t) => format!("the token (from {}) has no access", t.source),
        };
        HubError(match (status.as_u16(), code.as_str()) {
            (401, "") if message.contains("Invalid credentials") || self.token.is_some() => format!(
                "the Hub rejected the token for {} (from {}) as invalid while fetching '{name}'; fix or remove it",
                self.endpoint(),
                self.token.as_ref().map_or("?".into(), |t| t.source.clone())
            ),
            (_, "GatedRepo") => format!(
                "'{name}' is a gated {kind} and {token_note}; accept its conditions at {page} and {how_token}"
            ),
            (_, "RepoNotFound") | (401, _) => format!(
                "{kind} repo '{}' was not found at {} ('{name}'), or it is private and {token_note}; check the name, or {how_token}",
                spec.repo,
                self.endpoint()
            ),
            (_, "RevisionNotFound") => {
                format!("revision '{what}' does not exist in {kind} repo '{}' ('{name}'); check the ref or rev", spec.repo)
            }
            (_, "EntryNotFound") => format!("file '{what}' does not exist in '{name}'"),
            (403, _) => format!("the Hub refused access to '{name}' ({status}): {message}; {how_token}"),
            (429, _) => format!("the Hub is rate-limiting requests for '{name}' (429); try again later"),
            _ => format!("the Hub answered {status} for '{name}' ({what}){}", if message.is_empty() { String::new() } else { format!(": {message}") }),
        })
    }

    /// The commit `rev` (a ref or commit; None for the default branch) points to.
    pub fn revision(&self, spec: &Spec, rev: Option<&str>, stopped: &dyn Fn() -> bool) -> Result<Revision> {
        let url = match rev {
            Some(r) => format!("{}/revision/{}", self.api_base(spec), encode(r, false)),
            None => self.api_base(spec),
        };
        let resp = self.get_api(&url, spec, rev.unwrap_or("main"), stopped)?;
        let body: Json = read_json(resp, &url)?;
        let sha = body["sha"].as_str().unwrap_or("");
        if !crate::spec::is_commit(sha) {
            fail!("the Hub's answer for '{}' has no valid commit id (sha: {:?})", spec.display(), body["sha"]);
        }
        let last_modified = body["lastModified"].as_str().and_then(parse_iso8601).ok_or_else(|| {
            HubError(format!("the Hub's answer for '{}' has no valid lastModified date", spec.display()))
        })?;
        Ok(Revision { sha: sha.to_ascii_lowercase(), last_modified })
    }

    /// Every file of the tree at `sha`, across all pages, checked: paths are
    /// plain relative paths, no duplicates, no file where a folder is.
    pub fn list(&self, spec: &Spec, sha: &str, stopped: &dyn Fn() -> bool) -> Result<Vec<FileEntry>> {
        let mut url = format!("{}/tree/{}?recursive=true&expand=false", self.api_base(spec), encode(sha, false));
        let mut files = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        loop {
            let resp = self.get_api(&url, spec, sha, stopped)?;
            let next = next_link(resp.headers());
            let page: Json = read_json(resp, &url)?;
            let Some(entries) = page.as_array() else {
                fail!("the Hub's tree listing for '{}' is not a list", spec.display())
            };
            for e in entries {
                match e["type"].as_str() {
                    Some("file") => files.push(parse_file(e, spec)?),
                    Some("directory") => {
                        dirs.insert(e["path"].as_str().unwrap_or("").to_string());
                    }
                    _ => {}
                }
            }
            match next {
                None => break,
                Some(n) => {
                    let u = Url::parse(self.endpoint())
                        .and_then(|b| b.join(&n))
                        .map_err(|e| HubError(format!("bad next-page link {n}: {e}")))?;
                    if !self.same_origin(&u) {
                        fail!(
                            "the Hub's listing for '{}' points to another host ({n}); refusing to follow it",
                            spec.display()
                        );
                    }
                    url = u.to_string();
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for w in files.windows(2) {
            if w[0].path == w[1].path {
                fail!(
                    "the Hub's listing for '{}' names '{}' twice; refusing an ambiguous tree",
                    spec.display(),
                    w[0].path
                );
            }
        }
        for f in &files {
            // A file may not stand where the tree also has a folder, nor
            // below another file.
            let mut prefix = String::new();
            for seg in f.path.split('/') {
                if !prefix.is_empty()
                    && files.binary_search_by(|x| x.path.as_str().cmp(prefix.trim_end_matches('/'))).is_ok()
                {
                    fail!(
                        "the Hub's listing for '{}' has '{}' both as a file and as a folder",
                        spec.display(),
                        prefix.trim_end_matches('/')
                    );
                }
                prefix.push_str(seg);
                prefix.push('/');
            }
            if dirs.contains(&f.path) {
                fail!("the Hub's listing for '{}' has '{}' both as a file and as a folder", spec.display(), f.path);
            }
        }
        Ok(files)
    }

    /// Where the bytes of `path` at commit `sha` are served: the Hub's
    /// answer to /resolve (a CDN URL for LFS files, the Hub's own cache for
    /// the others), asked once per file. Transient trouble is `Err(Retry)`.
    pub fn locate(&self, spec: &Spec, sha: &str, path: &str) -> Result<std::result::Result<Url, Fetched>> {
        let url = format!(
            "{}/{}{}/resolve/{}/{}",
            self.endpoint(),
            spec.kind.url_prefix(),
            spec.repo,
            encode(sha, false),
            encode(path, true)
        );
        let url = Url::parse(&url).map_err(|e| HubError(format!("bad URL {url}: {e}")))?;
        let resp = match self.send(reqwest::Method::HEAD, &url, &HeaderMap::new()) {
            Ok(r) => r,
            Err(e) => return Ok(Err(Fetched::Retry { wait: None, why: self.unreachable(&url, e).0 })),
        };
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            return Ok(Ok(redirect_target(&url, &resp)?));
        }
        if resp.status().is_success() {
            return Ok(Ok(url));
        }
        if retry::is_transient(status) {
            return Ok(Err(Fetched::Retry {
                wait: retry::server_wait(resp.headers()),
                why: format!("the Hub answered {status}"),
            }));
        }
        Err(self.refusal(spec, resp, path))
    }

    /// Bytes `[start, end)` of a located file.
    pub fn fetch_range(&self, url: &Url, start: u64, end: u64, spec: &Spec, path: &str) -> Result<Fetched> {
        let mut headers = HeaderMap::new();
        headers.insert("Accept-Encoding", "identity".parse().unwrap());
        headers.insert(RANGE, format!("bytes={start}-{}", end - 1).parse().unwrap());
        let mut url = url.clone();
        for _ in 0..10 {
            let resp = match self.send(reqwest::Method::GET, &url, &headers) {
                Ok(r) => r,
                Err(e) => return Ok(Fetched::Retry { wait: None, why: self.unreachable(&url, e).0 }),
            };
            let status = resp.status().as_u16();
            match status {
                206 => {
                    let range = resp.headers().get("Content-Range").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let first = range
                        .strip_prefix("bytes ")
                        .and_then(|r| r.split('-').next())
                        .and_then(|n| n.parse::<u64>().ok());
                    if first != Some(start) {
                        return Ok(Fetched::Retry {
                            wait: None,
                            why: format!("asked for bytes from {start}, got '{range}'"),
                        });
                    }
                    return Ok(Fetched::Body { response: resp, skip: 0 });
                }
                200 => return Ok(Fetched::Body { response: resp, skip: start }),
                301 | 302 | 303 | 307 | 308 => url = redirect_target(&url, &resp)?,
                403 if !self.same_origin(&url) => return Ok(Fetched::Expired),
                s if retry::is_transient(s) => {
                    return Ok(Fetched::Retry {
                        wait: retry::server_wait(resp.headers()),
                        why: format!("{} answered {s}", url.origin().ascii_serialization()),
                    })
                }
                416 => fail!(
                    "the server says '{path}' of '{}' is shorter than the {end} bytes the Hub lists",
                    spec.display()
                ),
                _ => return Err(self.refusal(spec, resp, path)),
            }
        }
        fail!("too many redirects fetching '{path}' of '{}'", spec.display())
    }
}

fn redirect_target(from: &Url, resp: &Response) -> Result<Url> {
    let Some(loc) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
        fail!("{from} answered {} without a Location", resp.status());
    };
    from.join(loc).map_err(|e| HubError(format!("bad redirect from {from} to {loc}: {e}")))
}

fn read_json(resp: Response, url: &str) -> Result<Json> {
    let mut body = Vec::new();
    resp.take(256 << 20).read_to_end(&mut body).map_err(|e| HubError(format!("reading {url}: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| HubError(format!("the Hub's answer from {url} is not valid JSON: {e}")))
}

fn next_link(h: &HeaderMap) -> Option<String> {
    let link = h.get("Link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_file(e: &Json, spec: &Spec) -> Result<FileEntry> {
    let path = e["path"].as_str().unwrap_or("");
    if !is_plain_relative_path(path) || path.len() > 4096 || path.split('/').any(|s| s.len() > 255) {
        fail!("the Hub's listing for '{}' has an unsafe file path {:?}; refusing to write it", spec.display(), path);
    }
    let size = e["size"].as_u64();
    let digest = match &e["lfs"] {
        Json::Object(lfs) => {
            let oid = lfs.get("oid").and_then(|o| o.as_str()).unwrap_or("");
            if !hex_of_len(oid, 64) {
                fail!("the Hub lists no valid sha256 for LFS file '{path}' of '{}'", spec.display());
            }
            let size = lfs.get("size").and_then(|s| s.as_u64()).or(size);
            return Ok(FileEntry {
                path: path.to_string(),
                size: size.ok_or_else(|| HubError(format!("the Hub lists no size for '{path}'")))?,
                digest: Digest::Sha256(oid.to_ascii_lowercase()),
            });
        }
        _ => {
            let oid = e["oid"].as_str().unwrap_or("");
            if !hex_of_len(oid, 40) {
                fail!("the Hub lists no valid git object id for file '{path}' of '{}'", spec.display());
            }
            Digest::GitSha1(oid.to_ascii_lowercase())
        }
    };
    let Some(size) = size else { fail!("the Hub lists no size for '{path}' of '{}'", spec.display()) };
    Ok(FileEntry { path: path.to_string(), size, digest })
}

/// Seconds since the epoch of an ISO-8601 UTC time such as
/// `2024-05-22T10:20:30.000Z`.
pub fn parse_iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let rest = &s[19..];
    let rest = rest.strip_prefix('.').map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit())).unwrap_or(rest);
    if !(rest == "Z" || rest == "+00:00" || rest.is_empty()) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days * 86400 + hh * 3600 + mm * 60 + ss).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_iso8601("2024-01-04T05:06:07.000Z"), Some(1704344767));
        assert_eq!(parse_iso8601("2000-02-29T12:00:00Z"), Some(951825600));
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn encoding_keeps_revisions_in_one_segment() {
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("with space/naïve#?.txt", true), "with%20space/na%C3%AFve%23%3F.txt");
    }

    #[test]
    fn endpoints() {
        assert_eq!(endpoint_from("", Some("http://127.0.0.1:8080/".into())), "http://127.0.0.1:8080");
        assert_eq!(endpoint_from("https://mirror.example", Some("http://x".into())), "https://mirror.example");
        assert_eq!(endpoint_from("", None), DEFAULT_ENDPOINT);
        assert_eq!(endpoint_host("http://127.0.0.1:8080").as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(endpoint_host("https://huggingface.co").as_deref(), Some("huggingface.co"));
    }

    #[test]
    fn next_page_links() {
        let mut h = HeaderMap::new();
        h.insert("Link", "<http://h/api/models/a/b/tree/x?cursor=abc>; rel=\"next\"".parse().unwrap());
        assert_eq!(next_link(&h).as_deref(), Some("http://h/api/models/a/b/tree/x?cursor=abc"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|n| Json::from(n)),
            "\\PC{0,70}".prop_map(Json::String),
            "[0-9a-f]{40}|[0-9a-f]{64}|(\\.\\./)?[a-z/]{0,10}".prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::btree_map("(type|path|size|oid|lfs|pointerSize|x)", inner, 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever a listing entry holds, it is refused or accepted with a
        /// safe path; never a panic.
        #[test]
        fn listing_entries(e in json()) {
            let spec = Spec::from_url("org/name", &[], "hf:org/name").unwrap();
            if let Ok(f) = parse_file(&e, &spec) {
                prop_assert!(is_plain_relative_path(&f.path));
            }
        }

        #[test]
        fn dates_and_links(s in "\\PC{0,40}") {
            let _ = parse_iso8601(&s);
            let mut h = HeaderMap::new();
            if let Ok(v) = s.parse() {
                h.insert("Link", v);
                let _ = next_link(&h);
            }
        }
    }
}
