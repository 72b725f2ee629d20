//! The Hub's JSON answers, read into typed values and checked without any
//! I/O: a revision's commit and date, and tree listings, which are refused
//! whole when they name unsafe paths, the same path twice, or a file where a
//! folder is (before anything is written). Fields the Hub adds over time are
//! ignored; what it never sends (a field of the wrong type) is refused.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::base::{CommitId, Digest, FileEntry, Revision, XetHash};
use crate::error::{fail, Error, Kind, Result};
use crate::select::is_plain_relative_path;
use crate::spec::Spec;

/// An answer to `/api/{kind}s/{id}/revision/{rev}` (or `/api/{kind}s/{id}`).
#[derive(Deserialize)]
struct RevisionAnswer {
    sha: Option<String>,
    #[serde(rename = "lastModified")]
    last_modified: Option<String>,
}

/// One entry of a tree listing.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TreeEntry {
    File {
        path: String,
        size: Option<u64>,
        /// The git blob sha1 (of the pointer file, for LFS files).
        oid: Option<String>,
        lfs: Option<LfsInfo>,
        /// Where the content is in Xet, for Xet-backed files.
        #[serde(rename = "xetHash")]
        xet_hash: Option<String>,
    },
    Directory {
        path: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct LfsInfo {
    /// The sha256 of the content.
    oid: Option<String>,
    size: Option<u64>,
}

/// Reads `body` as a `T`, or says what the Hub sent instead.
fn read<'a, T: Deserialize<'a>>(body: &'a [u8], spec: &Spec, what: &str, expected: &str) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        let shown = spec.display();
        let why = if e.is_syntax() || e.is_eof() {
            format!("is not valid JSON ({e})")
        } else if !body.trim_ascii_start().starts_with(expected.as_bytes()) {
            format!("is not {}", if expected == "[" { "a list" } else { "an object" })
        } else {
            format!("has a field nix-hf cannot read ({e})")
        };
        Error::new(Kind::CorruptData, format!("the Hub's {what} for '{shown}' {why}"))
    })
}

/// The commit and date in an answer to `/api/{kind}s/{id}/revision/{rev}`.
pub fn revision(body: &[u8], spec: &Spec) -> Result<Revision> {
    let answer: RevisionAnswer = read(body, spec, "answer", "{")?;
    let Some(sha) = answer.sha.as_deref().and_then(CommitId::parse) else {
        fail!(
            CorruptData,
            "the Hub's answer for '{}' has no valid commit id (sha: {})",
            spec.display(),
            answer.sha.as_deref().unwrap_or("none")
        );
    };
    let Some(last_modified) = answer.last_modified.as_deref().and_then(parse_iso8601) else {
        fail!(CorruptData, "the Hub's answer for '{}' has no valid lastModified date", spec.display())
    };
    Ok(Revision { sha, last_modified })
}

/// A tree listing as it arrives, page by page.
#[derive(Default)]
pub struct Listing {
    files: Vec<FileEntry>,
    dirs: BTreeSet<String>,
}

impl Listing {
    /// Adds one page (a JSON list of entries).
    pub fn add_page(&mut self, body: &[u8], spec: &Spec) -> Result<()> {
        for e in read::<Vec<TreeEntry>>(body, spec, "tree listing", "[")? {
            match e {
                TreeEntry::File { path, size, oid, lfs, xet_hash } => {
                    self.files.push(file(path, size, oid, lfs, xet_hash, spec)?)
                }
                TreeEntry::Directory { path } => {
                    self.dirs.insert(path);
                }
                TreeEntry::Other => {}
            }
        }
        Ok(())
    }

    /// Every file, sorted by path, once the listing is checked whole.
    pub fn finish(self, spec: &Spec) -> Result<Vec<FileEntry>> {
        let Listing { mut files, dirs } = self;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for w in files.windows(2) {
            if w[0].path == w[1].path {
                fail!(
                    CorruptData,
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
                let parent = prefix.trim_end_matches('/');
                if !parent.is_empty() && files.binary_search_by(|x| x.path.as_str().cmp(parent)).is_ok() {
                    fail!(
                        CorruptData,
                        "the Hub's listing for '{}' has '{parent}' both as a file and as a folder",
                        spec.display()
                    );
                }
                prefix.push_str(seg);
                prefix.push('/');
            }
            if dirs.contains(&f.path) {
                fail!(
                    CorruptData,
                    "the Hub's listing for '{}' has '{}' both as a file and as a folder",
                    spec.display(),
                    f.path
                );
            }
        }
        Ok(files)
    }
}

fn hex_of_len(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn file(
    path: String,
    size: Option<u64>,
    oid: Option<String>,
    lfs: Option<LfsInfo>,
    xet_hash: Option<String>,
    spec: &Spec,
) -> Result<FileEntry> {
    if !is_plain_relative_path(&path) || path.len() > 4096 || path.split('/').any(|s| s.len() > 255) {
        fail!(
            CorruptData,
            "the Hub's listing for '{}' has an unsafe file path {path:?}; refusing to write it",
            spec.display()
        );
    }
    let (digest, size) = match lfs {
        Some(lfs) => {
            let oid = lfs.oid.unwrap_or_default();
            if !hex_of_len(&oid, 64) {
                fail!(CorruptData, "the Hub lists no valid sha256 for LFS file '{path}' of '{}'", spec.display());
            }
            (Digest::Sha256(oid.to_ascii_lowercase()), lfs.size.or(size))
        }
        None => {
            let oid = oid.unwrap_or_default();
            if !hex_of_len(&oid, 40) {
                fail!(CorruptData, "the Hub lists no valid git object id for file '{path}' of '{}'", spec.display());
            }
            (Digest::GitSha1(oid.to_ascii_lowercase()), size)
        }
    };
    let Some(size) = size else { fail!(CorruptData, "the Hub lists no size for '{path}' of '{}'", spec.display()) };
    // Only LFS files are in Xet. A Xet hash nix-hf cannot read is left
    // out: the file then comes through the LFS bridge, verified the same.
    let xet = xet_hash.as_deref().and_then(XetHash::parse).filter(|_| matches!(digest, Digest::Sha256(_)));
    Ok(FileEntry { path, size, digest, xet })
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
    use serde_json::{json, Value as Json};

    fn spec() -> Spec {
        Spec::from_url("org/name", &[], "hf:org/name").unwrap()
    }

    fn listing(pages: &[Json]) -> Result<Vec<FileEntry>> {
        let mut l = Listing::default();
        for p in pages {
            l.add_page(p.to_string().as_bytes(), &spec())?;
        }
        l.finish(&spec())
    }

    fn revision_of(j: Json) -> Result<Revision> {
        revision(j.to_string().as_bytes(), &spec())
    }

    const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn pages_are_merged_sorted_and_typed() {
        let lfs = "a".repeat(64);
        let files = listing(&[
            json!([{"type": "file", "path": "b/w.bin", "size": 10, "oid": SHA1, "lfs": {"oid": lfs, "size": 99},
                    "xetHash": "*".repeat(64), "somethingNew": [1, 2]},
                   {"type": "directory", "path": "b", "oid": SHA1},
                   {"type": "submodule", "path": "x"}]),
            json!([{"type": "file", "path": "a.txt", "size": 3, "oid": SHA1.to_uppercase()}]),
        ])
        .unwrap();
        assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a.txt", "b/w.bin"]);
        assert_eq!(files[0].digest, Digest::GitSha1(SHA1.into()));
        assert_eq!((files[1].size, &files[1].digest), (99, &Digest::Sha256(lfs)));
        assert_eq!(files[1].xet, None, "an unreadable Xet hash is left out");
    }

    #[test]
    fn xet_hashes_are_kept_for_lfs_files_only() {
        let xet = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918";
        let files = listing(&[json!([
            {"type": "file", "path": "w", "size": 9, "oid": SHA1, "lfs": {"oid": "a".repeat(64), "size": 9},
             "xetHash": xet},
            {"type": "file", "path": "r", "size": 9, "oid": SHA1, "xetHash": xet}])])
        .unwrap();
        assert_eq!(files[1].xet.map(|h| h.to_string()).as_deref(), Some(xet));
        assert_eq!(files[0].xet, None);
    }

    #[test]
    fn lying_listings_are_refused_whole() {
        let f = |path: &str| json!({"type": "file", "path": path, "size": 1, "oid": SHA1});
        let cases = [
            (json!([f("a"), f("a")]), "names 'a' twice"),
            (json!([f("a"), f("a/b")]), "has 'a' both as a file and as a folder"),
            (json!([f("d"), {"type": "directory", "path": "d"}]), "has 'd' both as a file and as a folder"),
            (json!([f("../x")]), "unsafe file path"),
            (json!([f("/etc/passwd")]), "unsafe file path"),
            (json!([f(&"x".repeat(300))]), "unsafe file path"),
            (json!([{"type": "file", "path": "z", "size": 1, "oid": "nope"}]), "no valid git object id"),
            (json!([{"type": "file", "path": "z", "size": 1, "oid": SHA1, "lfs": {"oid": "x"}}]), "no valid sha256"),
            (json!([{"type": "file", "path": "z", "oid": SHA1}]), "no size"),
            (json!([{"type": "file", "path": "z", "size": "big", "oid": SHA1}]), "has a field nix-hf cannot read"),
            (json!({"not": "a list"}), "is not a list"),
        ];
        for (page, message) in cases {
            let e = listing(&[page]).unwrap_err();
            assert_eq!(e.kind, Kind::CorruptData);
            assert!(e.message.contains(message), "{} does not say {message}", e.message);
        }
        let mut l = Listing::default();
        let e = l.add_page(b"[{\"type\": ", &spec()).unwrap_err();
        assert!(e.message.starts_with("the Hub's tree listing for 'hf:org/name' is not valid JSON"), "{}", e.message);
    }

    #[test]
    fn revisions_and_dates() {
        let r = revision_of(json!({"sha": SHA1.to_uppercase(), "lastModified": "2024-01-04T05:06:07.000Z"}));
        assert_eq!(r.unwrap(), Revision { sha: CommitId::parse(SHA1).unwrap(), last_modified: 1704344767 });
        let e = revision_of(json!({"sha": "abc", "lastModified": "2024-01-04T05:06:07Z"})).unwrap_err();
        assert_eq!(e.message, "the Hub's answer for 'hf:org/name' has no valid commit id (sha: abc)");
        assert!(revision_of(json!({"sha": SHA1})).unwrap_err().message.contains("no valid lastModified"));
        assert!(revision_of(json!([SHA1])).unwrap_err().message.ends_with("is not an object"));
        assert_eq!(parse_iso8601("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_iso8601("2000-02-29T12:00:00Z"), Some(951825600));
        assert_eq!(parse_iso8601("yesterday"), None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value as Json;

    fn json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            "\\PC{0,70}".prop_map(Json::String),
            "[0-9a-f]{40}|[0-9a-f]{64}|(\\.\\./)?[a-z/]{0,10}|file|directory".prop_map(Json::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::btree_map("(type|path|size|oid|lfs|pointerSize|x)", inner, 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Days since 1970-01-01, counted the slow way.
    fn days(y: i64, m: i64, d: i64) -> i64 {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut n = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum::<i64>();
        n += (1..m).map(|m| month[m as usize - 1] + i64::from(m == 2 && leap(y))).sum::<i64>();
        n + d - 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever a listing page holds, it is refused with a message or
        /// accepted with safe, unique paths and hex digests; never a panic.
        #[test]
        fn listing_entries(page in proptest::collection::vec(json(), 0..4)) {
            let spec = Spec::from_url("org/name", &[], "hf:org/name").unwrap();
            let mut l = Listing::default();
            let added = l.add_page(Json::Array(page).to_string().as_bytes(), &spec);
            match added.and_then(|()| l.finish(&spec)) {
                Ok(files) => {
                    for w in files.windows(2) {
                        prop_assert!(w[0].path < w[1].path);
                    }
                    for f in &files {
                        prop_assert!(is_plain_relative_path(&f.path));
                        let (hex, len) = match &f.digest { Digest::GitSha1(h) => (h, 40), Digest::Sha256(h) => (h, 64) };
                        prop_assert!(hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
                    }
                }
                Err(e) => prop_assert!(e.kind == Kind::CorruptData && e.message.starts_with("the Hub")),
            }
        }

        #[test]
        fn revision_answers(answer in json()) {
            match revision(answer.to_string().as_bytes(), &Spec::from_url("org/name", &[], "hf:org/name").unwrap()) {
                Ok(r) => prop_assert_eq!(Some(r.sha.clone()), CommitId::parse(r.sha.as_str())),
                Err(e) => prop_assert_eq!(e.kind, Kind::CorruptData),
            }
        }

        /// Dates read as the seconds they are, whatever follows them: a
        /// string is refused or read right, never misread.
        #[test]
        fn dates(y in 1970i64..2400, m in 1i64..=12, d in 1i64..=28, hh in 0i64..24, mm in 0i64..60, ss in 0i64..60,
                 frac in "(\\.[0-9]{1,6})?", zone in "(Z|\\+00:00|)", tail in "[0-9.Z+:a ]{0,6}") {
            let date = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
            let want = (days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss) as u64;
            prop_assert_eq!(parse_iso8601(&format!("{date}{frac}{zone}")), Some(want));
            if let Some(t) = parse_iso8601(&format!("{date}{tail}")) {
                prop_assert_eq!(t, want);
            }
        }
    }
}
