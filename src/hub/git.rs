//! A snapshot's regular files in one request: the Hub serves every repo
//! over git's smart HTTP protocol, so the commit's tree comes as one pack
//! (protocol v2 `fetch`, depth 1: the commit, its trees and blobs, LFS files
//! as the pointers git holds). Two requests (the capabilities, the pack)
//! under the one retry budget; the token goes as git sends it, the password
//! of Basic auth, to the endpoint's origin only.

use std::collections::BTreeMap;
use std::io::Read;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use super::Hub;
use crate::base::CommitId;
use crate::error::{Error, Kind};
use crate::gitpack::{self, Object, ObjectId};
use crate::retry::{self, Attempt};
use crate::spec::Spec;
use crate::token::Token;
use crate::work::Work;

/// Why the git endpoint cannot be used, so the caller falls back to a
/// request per file.
pub enum Unusable {
    /// It refused or does not speak protocol v2 (said at -v).
    Refused(String),
    /// The fetch itself failed: the budget ran out, or the user stopped it.
    Failed(Error),
}

impl Hub {
    fn git_url(&self, spec: &Spec, rest: &str) -> Url {
        let url = format!("{}/{}{}.git/{rest}", self.endpoint_str(), spec.kind.url_prefix(), spec.repo);
        Url::parse(&url).expect("the endpoint and a checked repo id make a URL")
    }

    /// One attempt at a git request: the whole body, at most `limit` bytes.
    fn git_attempt(&self, spec: &Spec, method: Method, rest: &str, body: &[u8], limit: u64) -> Attempt<Vec<u8>> {
        let url = self.git_url(spec, rest);
        let mut headers = HeaderMap::new();
        headers.insert("Git-Protocol", "version=2".parse().expect("a valid header"));
        if method == Method::POST {
            headers.insert(CONTENT_TYPE, "application/x-git-upload-pack-request".parse().expect("a valid header"));
            headers.insert(ACCEPT, "application/x-git-upload-pack-result".parse().expect("a valid header"));
        }
        let resp = match self.request(method, &url, headers, Token::basic).body(body.to_vec()).send() {
            Ok(r) => r,
            Err(e) => return self.unreachable(&url, &e),
        };
        if let Some(again) = self.transient(&url, &resp) {
            return again;
        }
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Attempt::Fail(Error::new(
                if matches!(status, 401 | 403) { Kind::AccessDenied } else { Kind::NotFound },
                format!("{} answered {status} for {}", self.server_name(&url), url.path()),
            ));
        }
        let mut out = Vec::new();
        match resp.take(limit + 1).read_to_end(&mut out) {
            Ok(_) if out.len() as u64 > limit => Attempt::Fail(Error::new(
                Kind::CorruptData,
                format!("{} sent more than the {limit} bytes the snapshot's regular files need", url.path()),
            )),
            Ok(_) => Attempt::Done(out),
            Err(e) => Attempt::retry(
                Kind::Unreachable,
                format!("reading {} from {} failed ({e})", url.path(), self.server_name(&url)),
            ),
        }
    }

    /// The objects of commit `sha` (its tree and blobs, no history), from a
    /// pack checked whole (a damaged one is fetched again, within the
    /// budget); at most `limit` bytes of it.
    pub fn git_pack(
        &self,
        spec: &Spec,
        sha: &CommitId,
        limit: u64,
        work: &Work,
    ) -> std::result::Result<BTreeMap<ObjectId, Object>, Unusable> {
        let what = || format!("the git pack of '{}'", spec.display());
        let caps = retry::run(self.budget, &what, &self.clock, work, |_| {
            self.git_attempt(spec, Method::GET, "info/refs?service=git-upload-pack", &[], 1 << 20)
        });
        let caps = match caps {
            Ok(c) => c,
            Err(e) if e.kind == Kind::Interrupted => return Err(Unusable::Failed(e)),
            Err(e) => return Err(Unusable::Refused(e.message)),
        };
        let sha1 = match capabilities(&caps) {
            Ok(c) => c,
            Err(why) => return Err(Unusable::Refused(why)),
        };
        let request = fetch_request(sha, sha1);
        let pack = retry::run(self.budget, &what, &self.clock, work, |_| {
            self.git_attempt(spec, Method::POST, "git-upload-pack", &request, limit).and_then(|answer| {
                match pack_of(&answer) {
                    Ok(pack) => match gitpack::parse(&pack, limit) {
                        Ok(objects) => Attempt::Done(objects),
                        Err(bad) => Attempt::retry(Kind::CorruptData, format!("the pack is not usable: {}", bad.0)),
                    },
                    Err(Problem::Cut(why)) => Attempt::retry(Kind::Unreachable, why),
                    Err(Problem::Said(why)) => Attempt::Fail(Error::new(Kind::NotFound, why)),
                }
            })
        });
        pack.map_err(|e| match e.kind {
            Kind::NotFound | Kind::AccessDenied => Unusable::Refused(e.message),
            _ => Unusable::Failed(e),
        })
    }
}

fn pkt(line: &str) -> Vec<u8> {
    let mut v = format!("{:04x}", line.len() + 4).into_bytes();
    v.extend_from_slice(line.as_bytes());
    v
}

/// The fetch command: the one commit, without history or progress.
fn fetch_request(sha: &CommitId, object_format: bool) -> Vec<u8> {
    let mut r = pkt("command=fetch\n");
    if object_format {
        r.extend(pkt("object-format=sha1\n"));
    }
    r.extend_from_slice(b"0001");
    let want = format!("want {}\n", sha.as_str());
    for line in ["no-progress\n", "ofs-delta\n", "deepen 1\n", want.as_str(), "done\n"] {
        r.extend(pkt(line));
    }
    r.extend_from_slice(b"0000");
    r
}

/// A pkt-line: data, or one of the special packets.
#[derive(Debug, PartialEq, Eq)]
enum Packet<'a> {
    Data(&'a [u8]),
    Flush,
    Delim,
    End,
}

/// The pkt-lines of `b`, each in turn; an error when one is cut off.
fn packets(b: &[u8]) -> impl Iterator<Item = std::result::Result<Packet<'_>, String>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= b.len() {
            return None;
        }
        let len = b
            .get(pos..pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| usize::from_str_radix(h, 16).ok());
        let p = match len {
            Some(0) => Ok(Packet::Flush),
            Some(1) => Ok(Packet::Delim),
            Some(2) => Ok(Packet::End),
            Some(n) if n >= 4 && pos + n <= b.len() => Ok(Packet::Data(&b[pos + 4..pos + n])),
            Some(n) if n >= 4 => Err(format!("the answer is cut off inside a {n}-byte packet")),
            _ => Err("the answer is not made of git's pkt-lines".to_string()),
        };
        pos = match (&p, len) {
            (Ok(Packet::Data(_)), Some(n)) => pos + n,
            (Ok(_), _) => pos + 4,
            (Err(_), _) => b.len(),
        };
        Some(p)
    })
}

/// Whether the advertisement is protocol v2 with a `fetch` that can cut
/// history; and whether the server names its object format.
fn capabilities(b: &[u8]) -> std::result::Result<bool, String> {
    let mut lines = Vec::new();
    for p in packets(b) {
        if let Packet::Data(d) = p? {
            lines.push(String::from_utf8_lossy(d).trim_end().to_string());
        }
    }
    // Smart HTTP's v0 preamble may come first.
    let lines: Vec<&str> = lines.iter().map(String::as_str).filter(|l| !l.starts_with("# service=")).collect();
    if lines.first() != Some(&"version 2") {
        return Err("the Hub's git endpoint does not speak git protocol v2".into());
    }
    let fetch = lines.iter().find_map(|l| l.strip_prefix("fetch").map(|f| f.trim_start_matches('=')));
    match fetch {
        Some(f) if f.split(' ').any(|c| c == "shallow") => Ok(lines.contains(&"object-format=sha1")),
        Some(_) => Err("the Hub's git endpoint cannot fetch a commit without its history".into()),
        None => Err("the Hub's git endpoint offers no fetch".into()),
    }
}

/// A server's words, fit for a terminal: no control characters.
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

enum Problem {
    /// Cut off or garbled on the way: worth another try.
    Cut(String),
    /// The server said why it sends nothing.
    Said(String),
}

/// The pack in a fetch answer: its "packfile" section, side band 1.
fn pack_of(answer: &[u8]) -> std::result::Result<Vec<u8>, Problem> {
    let mut pack = Vec::new();
    let mut in_pack = false;
    let mut ended = false;
    for p in packets(answer) {
        match p.map_err(Problem::Cut)? {
            Packet::Data(d) if !in_pack => {
                let line = String::from_utf8_lossy(d);
                if line.trim_end() == "packfile" {
                    in_pack = true;
                } else if let Some(e) = line.strip_prefix("ERR ") {
                    return Err(Problem::Said(format!("the Hub's git endpoint said: {}", printable(e.as_bytes()))));
                }
            }
            Packet::Data(d) => match d.split_first() {
                Some((1, data)) => pack.extend_from_slice(data),
                Some((2, _)) => {}
                Some((3, msg)) => {
                    return Err(Problem::Said(format!("the Hub's git endpoint said: {}", printable(msg))))
                }
                _ => return Err(Problem::Cut("a packet of the pack has no side band".into())),
            },
            Packet::Flush if in_pack => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    if !ended {
        return Err(Problem::Cut("the pack is cut off".into()));
    }
    Ok(pack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_asks_for_one_commit_without_history() {
        let sha = CommitId::parse(&"a".repeat(40)).unwrap();
        let r = String::from_utf8(fetch_request(&sha, true)).unwrap();
        assert_eq!(
            r,
            format!(
                "0012command=fetch\n0017object-format=sha1\n00010010no-progress\n000eofs-delta\n000ddeepen 1\n0032want {}\n0009done\n0000",
                "a".repeat(40)
            )
        );
    }

    #[test]
    fn capabilities_of_v2_with_shallow_fetch() {
        let adv = [
            pkt("version 2\n"),
            pkt("agent=git/2\n"),
            pkt("fetch=shallow wait-for-done filter\n"),
            pkt("object-format=sha1\n"),
            b"0000".to_vec(),
        ]
        .concat();
        assert_eq!(capabilities(&adv), Ok(true));
        let v0 = [pkt("# service=git-upload-pack\n"), b"0000".to_vec(), adv.clone()].concat();
        assert_eq!(capabilities(&v0), Ok(true));
        let old = [pkt("abc refs/heads/main\0multi_ack\n"), b"0000".to_vec()].concat();
        assert!(capabilities(&old).unwrap_err().contains("protocol v2"));
        let no_shallow = [pkt("version 2\n"), pkt("fetch\n"), b"0000".to_vec()].concat();
        assert!(capabilities(&no_shallow).unwrap_err().contains("without its history"));
    }

    #[test]
    fn the_pack_is_side_band_one_of_the_packfile_section() {
        let band = |n: u8, d: &[u8]| {
            let mut v = format!("{:04x}", d.len() + 5).into_bytes();
            v.push(n);
            v.extend_from_slice(d);
            v
        };
        let answer = [
            pkt("shallow-info\n"),
            pkt(&format!("shallow {}\n", "b".repeat(40))),
            b"0001".to_vec(),
            pkt("packfile\n"),
            band(2, b"counting"),
            band(1, b"PACK"),
            band(1, b"rest"),
            b"0000".to_vec(),
        ]
        .concat();
        assert_eq!(pack_of(&answer).ok(), Some(b"PACKrest".to_vec()));
        assert!(matches!(pack_of(&answer[..answer.len() - 4]), Err(Problem::Cut(_))), "no flush: cut off");
        assert!(matches!(pack_of(&answer[..answer.len() - 7]), Err(Problem::Cut(_))), "inside a packet");
        let refused = [pkt("packfile\n"), band(3, b"not our ref"), b"0000".to_vec()].concat();
        assert!(matches!(pack_of(&refused), Err(Problem::Said(m)) if m.ends_with("not our ref")));
    }
}
