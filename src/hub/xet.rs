//! Xet over HTTP: the Hub's read token for a repo's CAS, the CAS's
//! reconstruction of a file range, and xorb ranges from the URLs it signs.
//! The Xet token goes to the CAS the Hub names and nowhere else; the user's
//! Hub token only to the Hub (through `Hub::request`); signed xorb URLs get
//! neither.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Response;
use reqwest::header::{AUTHORIZATION, RANGE};
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::{encode, range_headers, Hub};
use crate::base::{CommitId, XetHash};
use crate::error::{Error, Kind, Result};
use crate::retry::{self, Attempt};
use crate::spec::Spec;
use crate::work::Work;

/// A token for one repo's CAS. Not `Debug`: it is a secret.
#[derive(Clone)]
pub struct XetToken {
    access: String,
    /// Seconds since the epoch.
    exp: u64,
    pub cas: Url,
}

/// How long before its end a token is renewed, as the official client does.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

impl XetToken {
    pub fn fresh(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        now + RENEW_BEFORE < Duration::from_secs(self.exp)
    }

    /// Whether it is the same token as `other`.
    pub fn is(&self, other: &XetToken) -> bool {
        self.access == other.access
    }

    /// The CAS no longer takes it: renew it before the next request.
    pub fn expire(&mut self) {
        self.exp = 0;
    }

    pub fn reconstruction_url(&self, file: &XetHash, v1: bool) -> Url {
        let version = if v1 { "v1" } else { "v2" };
        let mut u = self.cas.clone();
        u.path_segments_mut()
            .expect("an http(s) URL")
            .pop_if_empty()
            .extend([version, "reconstructions"])
            .push(&file.to_string());
        u
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(rename = "accessToken")]
    access_token: String,
    exp: u64,
    #[serde(rename = "casUrl")]
    cas_url: String,
}

/// What the CAS says to a reconstruction request.
pub enum Reconstruction {
    /// The answer's body, to be read by `xet::plan`.
    Body(Vec<u8>),
    /// The token is no longer valid (401): renew it.
    Unauthorized,
    /// This version of the API is not served (404, 501).
    NotServed,
}

/// What a xorb URL gives.
pub enum XorbRange {
    Body(Response),
    /// The signed URL expired (403): reconstruct again.
    Expired,
}

/// The largest reconstruction answer read (the spec's answers for a whole
/// big file are some hundred KiB).
const MAX_ANSWER: u64 = 64 << 20;

impl Hub {
    /// A read token for the CAS behind `spec` at `sha`, under the retry
    /// runner; refusals as for any API call.
    pub fn xet_token(&self, spec: &Spec, sha: &CommitId, work: &Work) -> Result<XetToken> {
        retry::run(
            self.budget,
            &|| format!("'{}' (asking for a Xet read token)", spec.display()),
            &self.clock,
            work,
            |_| self.xet_token_attempt(spec, sha),
        )
    }

    /// The same, one attempt.
    pub fn xet_token_attempt(&self, spec: &Spec, sha: &CommitId) -> Attempt<XetToken> {
        let url = format!("{}/xet-read-token/{}", self.api_base(spec), encode(sha.as_str(), false));
        self.api_attempt(&url, spec, sha.as_str()).and_then(|(body, _)| match token(&body, spec) {
            Ok(t) => Attempt::Done(t),
            Err(e) => Attempt::Fail(e),
        })
    }

    /// The reconstruction of bytes `[start, end)` of `file` (`v1`: the
    /// older API). One attempt.
    pub fn reconstruction(
        &self,
        t: &XetToken,
        file: &XetHash,
        start: u64,
        end: u64,
        v1: bool,
    ) -> Attempt<Reconstruction> {
        let url = t.reconstruction_url(file, v1);
        let resp = match self
            .client
            .request(Method::GET, url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", t.access))
            .header(RANGE, format!("bytes={start}-{}", end - 1))
            .send()
        {
            Ok(r) => r,
            Err(e) => return self.unreachable(&url, &e),
        };
        if let Some(again) = self.transient(&url, &resp) {
            return again;
        }
        match resp.status().as_u16() {
            200 => {
                let mut body = Vec::new();
                match Read::read_to_end(&mut Read::take(resp, MAX_ANSWER), &mut body) {
                    Ok(_) => Attempt::Done(Reconstruction::Body(body)),
                    Err(e) => Attempt::retry(Kind::Unreachable, format!("reading the Xet CAS's answer failed ({e})")),
                }
            }
            401 => Attempt::Done(Reconstruction::Unauthorized),
            404 | 501 => Attempt::Done(Reconstruction::NotServed),
            s => Attempt::Fail(Error::new(
                Kind::CorruptData,
                format!("the Xet CAS at {} answered {s} to a reconstruction", url.origin().ascii_serialization()),
            )),
        }
    }

    /// Bytes `bytes` (inclusive) of a xorb, from a URL the CAS signed. One
    /// attempt.
    pub fn xorb_range(&self, url: &str, bytes: (u64, u64)) -> Attempt<XorbRange> {
        let url = match Url::parse(url) {
            Ok(u) => u,
            Err(e) => return Attempt::retry(Kind::CorruptData, format!("the Xet CAS gave a bad URL ({e})")),
        };
        let resp = match self.client.request(Method::GET, url.clone()).headers(range_headers(bytes.0, bytes.1)).send() {
            Ok(r) => r,
            Err(e) => return self.unreachable(&url, &e),
        };
        if let Some(again) = self.transient(&url, &resp) {
            return again;
        }
        let len = bytes.1 - bytes.0 + 1;
        match resp.status().as_u16() {
            // As long as the range asked for: what the URL is signed for.
            // (Hugging Face's local CAS writes Content-Range relative to it.)
            200 | 206 if resp.content_length() == Some(len) => Attempt::Done(XorbRange::Body(resp)),
            206 => self.starts_at(&url, &resp, bytes.0).map(|()| XorbRange::Body(resp)),
            403 => Attempt::Done(XorbRange::Expired),
            s => Attempt::retry(Kind::CorruptData, format!("{} answered {s} to a xorb range", self.server_name(&url))),
        }
    }
}

fn token(body: &[u8], spec: &Spec) -> Result<XetToken> {
    let a: TokenAnswer = serde_json::from_slice(body).map_err(|e| {
        Error::new(Kind::CorruptData, format!("the Hub's Xet token for '{}' cannot be read ({e})", spec.display()))
    })?;
    let cas = Url::parse(a.cas_url.trim_end_matches('/'))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| {
            Error::new(
                Kind::CorruptData,
                format!("the Hub names a CAS for '{}' that is not an http(s) URL", spec.display()),
            )
        })?;
    Ok(XetToken { access: a.access_token, exp: a.exp, cas })
}
