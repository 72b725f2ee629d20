//! Talking to the Hub over HTTP: resolving revisions, listing trees,
//! locating files and fetching their byte ranges. Redirects are followed by
//! hand so the token only ever goes to the endpoint's own origin, never to
//! a CDN. API calls run under the retry runner here; a file request is one
//! attempt, which the download engine runs under the same runner.

mod answers;
mod git;
mod messages;
mod xet;

pub use self::git::Unusable;

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::base::{percent_encode, CommitId, FileEntry, Revision, DEFAULT_ENDPOINT};
use crate::error::{fail, Error, Kind, Result};
use crate::retry::{self, Attempt, Budget, RealClock};
use crate::spec::Spec;
use crate::token::{Choice, Token};
use crate::work::Work;

pub use messages::{read_failed, EXPIRED};
pub use xet::{Reconstruction, XetToken, XorbRange};

/// The endpoint from the plugin setting, else `HF_ENDPOINT`, else the Hub.
pub fn endpoint_from(setting: &str, env: Option<String>) -> String {
    let e = if !setting.is_empty() {
        setting.to_string()
    } else {
        env.filter(|e| !e.is_empty()).unwrap_or(DEFAULT_ENDPOINT.into())
    };
    e.trim_end_matches('/').to_string()
}

/// The endpoint as a URL, or an error naming where it came from.
pub fn parse_endpoint(endpoint: &str) -> Result<Url> {
    match Url::parse(endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        _ => fail!(
            InvalidInput,
            "the Hugging Face endpoint '{endpoint}' is not an http(s) URL; fix HF_ENDPOINT or the hf-endpoint setting \
             (nix-hf's --endpoint)"
        ),
    }
}

/// Percent-encodes everything but unreserved characters (and `/` when
/// `keep_slash`): revisions travel as one segment, file paths keep theirs.
pub fn encode(s: &str, keep_slash: bool) -> String {
    percent_encode(s, if keep_slash { b"/" } else { b"" })
}

/// How a fetch talks to the Hub.
pub struct Settings<'a> {
    pub endpoint: Url,
    pub token: Choice,
    /// How long a connect or read may stay silent (hf-stall-timeout).
    pub stall: Duration,
    pub budget: Budget,
    /// When given, the only CA certificates trusted for https (Nix's
    /// ssl-cert-file); otherwise the system's.
    pub ca_file: Option<&'a str>,
}

pub struct Hub {
    endpoint: Url,
    token: Choice,
    client: Client,
    budget: Budget,
    stall: Duration,
    clock: RealClock,
}

/// The answer to a ranged file request.
pub enum Ranged {
    /// Bytes to write; `skip` leading bytes are not wanted (a server that
    /// ignored Range sends the file from its start).
    Body { response: Response, skip: u64 },
    /// A signed CDN URL that is no longer valid: locate the file again.
    Expired,
}

/// How many redirects a request may take before the answer is refused.
const MAX_REDIRECTS: usize = 10;

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

impl Hub {
    pub fn new(s: Settings) -> Result<Hub> {
        let mut builder = Client::builder();
        if let Some(f) = s.ca_file.filter(|f| !f.is_empty()) {
            let pem = std::fs::read(f).map_err(|e| {
                Error::new(
                    Kind::LocalIo,
                    format!("cannot read the CA certificates in '{f}' (ssl-cert-file, NIX_SSL_CERT_FILE or SSL_CERT_FILE): {e}"),
                )
            })?;
            let Some(certs) = reqwest::Certificate::from_pem_bundle(&pem).ok().filter(|c| !c.is_empty()) else {
                fail!(InvalidInput, "'{f}' (ssl-cert-file) holds no PEM certificates")
            };
            builder = builder.tls_built_in_root_certs(false);
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(s.stall)
            // Per operation in the blocking client (each read, not the whole
            // body): a stalled transfer fails instead of hanging.
            .timeout(s.stall)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .user_agent(concat!("nix-hf/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(Kind::Bug, format!("cannot set up HTTP: {e}")))?;
        Ok(Hub {
            endpoint: s.endpoint,
            token: s.token,
            client,
            budget: s.budget,
            stall: s.stall,
            clock: RealClock::new(),
        })
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    pub fn stall(&self) -> Duration {
        self.stall
    }

    fn endpoint_str(&self) -> &str {
        self.endpoint.as_str().trim_end_matches('/')
    }

    fn same_origin(&self, u: &Url) -> bool {
        u.origin() == self.endpoint.origin()
    }

    /// How messages name the server behind `u`.
    fn server_name(&self, u: &Url) -> String {
        let origin = u.origin().ascii_serialization();
        if self.same_origin(u) {
            format!("the Hugging Face Hub at {origin}")
        } else {
            format!("the download server {origin}")
        }
    }

    fn api_base(&self, spec: &Spec) -> String {
        format!("{}/api/{}/{}", self.endpoint_str(), spec.kind.plural(), spec.repo)
    }

    fn refusal(&self, spec: &Spec, what: &str, status: u16, headers: &HeaderMap) -> Error {
        messages::Refusal { endpoint: &self.endpoint, spec, token: &self.token, what, status, headers }.error()
    }

    /// One request, with the token only when the URL is on the endpoint's
    /// origin. Redirects are not followed here.
    fn send(&self, method: Method, url: &Url, headers: &HeaderMap) -> reqwest::Result<Response> {
        self.request(method, url, headers.clone(), Token::bearer).send()
    }

    /// A request, carrying the token as `auth` writes it only when the URL is
    /// on the endpoint's origin: the one place that decides where it goes.
    fn request(&self, method: Method, url: &Url, headers: HeaderMap, auth: fn(&Token) -> String) -> RequestBuilder {
        let req = self.client.request(method, url.clone()).headers(headers);
        match (self.same_origin(url), &self.token.token) {
            (true, Some(t)) => req.header(AUTHORIZATION, auth(t)),
            _ => req,
        }
    }

    /// A request that got no answer: worth another try.
    fn unreachable<T>(&self, url: &Url, e: &reqwest::Error) -> Attempt<T> {
        Attempt::retry(Kind::Unreachable, messages::unreachable(&self.server_name(url), e, self.stall.as_secs()))
    }

    /// An answer worth another try (429, 5xx), waiting as the server says.
    fn transient<T>(&self, url: &Url, resp: &Response) -> Option<Attempt<T>> {
        let status = resp.status().as_u16();
        retry::transient(status).map(|kind| Attempt::Retry {
            wait: retry::server_wait(resp.headers()),
            why: messages::answered(&self.server_name(url), status, resp.headers()),
            kind,
        })
    }

    /// One request, following redirects by hand (each hop is sent by
    /// `send`, so the token never leaves the endpoint's origin): the first
    /// answer that is not a redirect, and the URL that gave it.
    fn follow(&self, method: Method, url: &Url, headers: &HeaderMap) -> Attempt<(Url, Response)> {
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let resp = match self.send(method.clone(), &url, headers) {
                Ok(r) => r,
                Err(e) => return self.unreachable(&url, &e),
            };
            if !is_redirect(resp.status()) {
                return Attempt::Done((url, resp));
            }
            match redirect_target(&url, &resp) {
                Ok(u) => url = u,
                Err(e) => return Attempt::Fail(e),
            }
        }
        Attempt::Fail(Error::new(Kind::CorruptData, format!("too many redirects fetching {url}")))
    }

    /// One attempt at an API call: the body read whole, and the next
    /// page's link (listings) kept.
    fn api_attempt(&self, url: &str, spec: &Spec, what: &str) -> Attempt<(Vec<u8>, Option<String>)> {
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return Attempt::Fail(Error::new(Kind::Bug, format!("bad URL {url}: {e}"))),
        };
        self.follow(Method::GET, &url, &HeaderMap::new()).and_then(|(url, resp)| {
            if let Some(again) = self.transient(&url, &resp) {
                return again;
            }
            if !resp.status().is_success() {
                return Attempt::Fail(self.refusal(spec, what, resp.status().as_u16(), resp.headers()));
            }
            let next = next_link(resp.headers());
            let mut body = Vec::new();
            if let Err(e) = resp.take(256 << 20).read_to_end(&mut body) {
                return Attempt::retry(
                    Kind::Unreachable,
                    format!("reading the answer from {} failed ({e})", self.server_name(&url)),
                );
            }
            Attempt::Done((body, next))
        })
    }

    /// An API call under the retry runner; `asked` describes it for the
    /// message should the budget run out.
    fn api(&self, url: &str, spec: &Spec, what: &str, asked: &str, work: &Work) -> Result<(Vec<u8>, Option<String>)> {
        retry::run(self.budget, &|| format!("'{}' ({asked})", spec.display()), &self.clock, work, |_| {
            self.api_attempt(url, spec, what)
        })
    }

    /// The commit `rev` (a ref or commit; None for the default branch) points to.
    pub fn revision(&self, spec: &Spec, rev: Option<&str>, work: &Work) -> Result<Revision> {
        let url = match rev {
            Some(r) => format!("{}/revision/{}", self.api_base(spec), encode(r, false)),
            None => self.api_base(spec),
        };
        let what = rev.unwrap_or("main");
        let (body, _) = self.api(&url, spec, what, &format!("resolving '{what}'"), work)?;
        answers::revision(&body, spec)
    }

    /// Every file of the tree at `sha`, across all pages, checked whole.
    pub fn list(&self, spec: &Spec, sha: &CommitId, work: &Work) -> Result<Vec<FileEntry>> {
        let mut url =
            format!("{}/tree/{}?recursive=true&expand=false", self.api_base(spec), encode(sha.as_str(), false));
        let mut listing = answers::Listing::default();
        let asked = format!("listing the files at {sha}");
        loop {
            let (page, next) = self.api(&url, spec, sha.as_str(), &asked, work)?;
            listing.add_page(&page, spec)?;
            let Some(n) = next else { break };
            let u = self
                .endpoint
                .join(&n)
                .map_err(|e| Error::new(Kind::CorruptData, format!("bad next-page link {n}: {e}")))?;
            if !self.same_origin(&u) {
                fail!(
                    CorruptData,
                    "the Hub's listing for '{}' points to another host ({n}); refusing to follow it",
                    spec.display()
                );
            }
            url = u.to_string();
        }
        listing.finish(spec)
    }

    /// Where the bytes of `path` at commit `sha` are served: the Hub's
    /// answer to /resolve (a CDN URL for LFS files, the Hub's own cache for
    /// the others). One attempt.
    pub fn locate(&self, spec: &Spec, sha: &CommitId, path: &str) -> Attempt<Url> {
        let url = format!(
            "{}/{}{}/resolve/{}/{}",
            self.endpoint_str(),
            spec.kind.url_prefix(),
            spec.repo,
            encode(sha.as_str(), false),
            encode(path, true)
        );
        let url = match Url::parse(&url) {
            Ok(u) => u,
            Err(e) => return Attempt::Fail(Error::new(Kind::Bug, format!("bad URL {url}: {e}"))),
        };
        let resp = match self.send(Method::HEAD, &url, &HeaderMap::new()) {
            Ok(r) => r,
            Err(e) => return self.unreachable(&url, &e),
        };
        // One hop only: where /resolve points is the file's location, which
        // ranged reads then ask (and follow further, if it redirects again).
        if is_redirect(resp.status()) {
            return match redirect_target(&url, &resp) {
                Ok(u) => Attempt::Done(u),
                Err(e) => Attempt::Fail(e),
            };
        }
        if resp.status().is_success() {
            return Attempt::Done(url);
        }
        if let Some(again) = self.transient(&url, &resp) {
            return again;
        }
        Attempt::Fail(self.refusal(spec, path, resp.status().as_u16(), resp.headers()))
    }

    /// Bytes `[start, end)` of a located file. One attempt.
    pub fn range(&self, url: &Url, start: u64, end: u64, spec: &Spec, path: &str) -> Attempt<Ranged> {
        self.follow(Method::GET, url, &range_headers(start, end - 1))
            .and_then(|(url, resp)| self.ranged_answer(&url, resp, start, end, spec, path))
    }

    /// Whether a 206 answer's Content-Range begins at `start`, as asked.
    fn starts_at(&self, url: &Url, resp: &Response, start: u64) -> Attempt<()> {
        let range = resp.headers().get("Content-Range").and_then(|v| v.to_str().ok()).unwrap_or("");
        let first = range.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|n| n.parse::<u64>().ok());
        if first != Some(start) {
            return Attempt::retry(
                Kind::CorruptData,
                format!("{} sent '{range}' when asked for bytes from {start}", self.server_name(url)),
            );
        }
        Attempt::Done(())
    }

    /// What a ranged request's final answer means.
    fn ranged_answer(
        &self,
        url: &Url,
        resp: Response,
        start: u64,
        end: u64,
        spec: &Spec,
        path: &str,
    ) -> Attempt<Ranged> {
        if let Some(again) = self.transient(url, &resp) {
            return again;
        }
        match resp.status().as_u16() {
            206 => self.starts_at(url, &resp, start).map(|()| Ranged::Body { response: resp, skip: 0 }),
            200 => Attempt::Done(Ranged::Body { response: resp, skip: start }),
            403 if !self.same_origin(url) => Attempt::Done(Ranged::Expired),
            416 => Attempt::Fail(Error::new(
                Kind::CorruptData,
                format!(
                    "the server says '{path}' of '{}' is shorter than the {end} bytes the Hub lists",
                    spec.display()
                ),
            )),
            s => Attempt::Fail(self.refusal(spec, path, s, resp.headers())),
        }
    }
}

/// The headers of a request for bytes `first..=last`, as they are sent.
fn range_headers(first: u64, last: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Accept-Encoding", "identity".parse().expect("a valid header"));
    headers.insert(RANGE, format!("bytes={first}-{last}").parse().expect("a valid header"));
    headers
}

fn redirect_target(from: &Url, resp: &Response) -> Result<Url> {
    let Some(loc) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
        fail!(CorruptData, "{from} answered {} without a Location", resp.status());
    };
    from.join(loc).map_err(|e| Error::new(Kind::CorruptData, format!("bad redirect from {from} to {loc}: {e}")))
}

fn next_link(h: &HeaderMap) -> Option<String> {
    let link = h.get("Link")?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_endpoint("ftp://x").unwrap_err().message.contains("not an http(s) URL"));
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The next page is the target of the link marked rel="next",
        /// wherever it stands among others; without one there is none.
        #[test]
        fn links(target in "[A-Za-z0-9:/?&=._~%-]{1,40}", other in "[A-Za-z0-9:/?&=._~%-]{1,40}",
                 first in any::<bool>(), has_next in any::<bool>()) {
            let next = format!("<{target}>; rel=\"next\"");
            let prev = format!("<{other}>; rel=\"prev\"");
            let parts: Vec<&str> = match (has_next, first) {
                (true, true) => vec![&next, &prev],
                (true, false) => vec![&prev, &next],
                (false, _) => vec![&prev],
            };
            let mut h = HeaderMap::new();
            h.insert("Link", parts.join(", ").parse().unwrap());
            prop_assert_eq!(next_link(&h), has_next.then(|| target.clone()));
        }

        #[test]
        fn any_link_header_is_read_without_panic(s in "\\PC{0,60}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = s.parse() {
                h.insert("Link", v);
                if let Some(t) = next_link(&h) {
                    prop_assert!(s.contains("rel=\"next\"") && s.contains(t.as_str()));
                }
            }
        }
    }
}
