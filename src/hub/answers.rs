//! The Hub's JSON answers, read and checked without any I/O: a revision's
//! commit and date, and tree listings, which are refused whole when they
//! name unsafe paths, the same path twice, or a file where a folder is
//! (before anything is written).

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::base::{Digest, FileEntry, Revision};
use crate::error::{fail, Result};
use crate::select::is_plain_relative_path;
use crate::spec::{is_commit, Spec};

/// The commit and date in an answer to `/api/{kind}s/{id}/revision/{rev}`.
pub fn revision(body: &Json, spec: &Spec) -> Result<Revision> {
    let sha = body["sha"].as_str().unwrap_or("");
    if !is_commit(sha) {
        fail!(CorruptData, "the Hub's answer for '{}' has no valid commit id (sha: {})", spec.display(), body["sha"]);
    }
    let Some(last_modified) = body["lastModified"].as_str().and_then(parse_iso8601) else {
        fail!(CorruptData, "the Hub's answer for '{}' has no valid lastModified date", spec.display())
    };
    Ok(Revision { sha: sha.to_ascii_lowercase(), last_modified })
}

/// A tree listing as it arrives, page by page.
#[derive(Default)]
pub struct Listing {
    files: Vec<FileEntry>,
    dirs: BTreeSet<String>,
}

impl Listing {
    /// Adds one page (a JSON list of entries).
    pub fn add_page(&mut self, page: &Json, spec: &Spec) -> Result<()> {
        let Some(entries) = page.as_array() else {
            fail!(CorruptData, "the Hub's tree listing for '{}' is not a list", spec.display())
        };
        for e in entries {
            match e["type"].as_str() {
                Some("file") => self.files.push(file(e, spec)?),
                Some("directory") => {
                    self.dirs.insert(e["path"].as_str().unwrap_or("").to_string());
                }
                _ => {}
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

fn file(e: &Json, spec: &Spec) -> Result<FileEntry> {
    let path = e["path"].as_str().unwrap_or("");
    if !is_plain_relative_path(path) || path.len() > 4096 || path.split('/').any(|s| s.len() > 255) {
        fail!(
            CorruptData,
            "the Hub's listing for '{}' has an unsafe file path {path:?}; refusing to write it",
            spec.display()
        );
    }
    let (digest, size) = match &e["lfs"] {
        Json::Object(lfs) => {
            let oid = lfs.get("oid").and_then(|o| o.as_str()).unwrap_or("");
            if !hex_of_len(oid, 64) {
                fail!(CorruptData, "the Hub lists no valid sha256 for LFS file '{path}' of '{}'", spec.display());
            }
            (Digest::Sha256(oid.to_ascii_lowercase()), lfs.get("size").and_then(|s| s.as_u64()).or(e["size"].as_u64()))
        }
        _ => {
            let oid = e["oid"].as_str().unwrap_or("");
            if !hex_of_len(oid, 40) {
                fail!(CorruptData, "the Hub lists no valid git object id for file '{path}' of '{}'", spec.display());
            }
            (Digest::GitSha1(oid.to_ascii_lowercase()), e["size"].as_u64())
        }
    };
    let Some(size) = size else { fail!(CorruptData, "the Hub lists no size for '{path}' of '{}'", spec.display()) };
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
    use serde_json::json;

    fn spec() -> Spec {
        Spec::from_url("org/name", &[], "hf:org/name").unwrap()
    }

    fn listing(pages: &[Json]) -> Result<Vec<FileEntry>> {
        let mut l = Listing::default();
        for p in pages {
            l.add_page(p, &spec())?;
        }
        l.finish(&spec())
    }

    const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn pages_are_merged_sorted_and_typed() {
        let lfs = "a".repeat(64);
        let files = listing(&[
            json!([{"type": "file", "path": "b/w.bin", "size": 10, "oid": SHA1, "lfs": {"oid": lfs, "size": 99}},
                   {"type": "directory", "path": "b", "oid": SHA1}]),
            json!([{"type": "file", "path": "a.txt", "size": 3, "oid": SHA1.to_uppercase()}]),
        ])
        .unwrap();
        assert_eq!(files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["a.txt", "b/w.bin"]);
        assert_eq!(files[0].digest, Digest::GitSha1(SHA1.into()));
        assert_eq!((files[1].size, &files[1].digest), (99, &Digest::Sha256(lfs)));
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
            (json!({"not": "a list"}), "is not a list"),
        ];
        for (page, message) in cases {
            let e = listing(&[page]).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::CorruptData);
            assert!(e.message.contains(message), "{} does not say {message}", e.message);
        }
    }

    #[test]
    fn revisions_and_dates() {
        let r = revision(&json!({"sha": SHA1.to_uppercase(), "lastModified": "2024-01-04T05:06:07.000Z"}), &spec());
        assert_eq!(r.unwrap(), Revision { sha: SHA1.into(), last_modified: 1704344767 });
        assert!(revision(&json!({"sha": "abc", "lastModified": "2024-01-04T05:06:07Z"}), &spec()).is_err());
        assert!(revision(&json!({"sha": SHA1}), &spec()).is_err());
        assert_eq!(parse_iso8601("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_iso8601("2000-02-29T12:00:00Z"), Some(951825600));
        assert_eq!(parse_iso8601("yesterday"), None);
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
            any::<i64>().prop_map(Json::from),
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
            if let Ok(f) = file(&e, &spec) {
                prop_assert!(is_plain_relative_path(&f.path));
            }
            let _ = revision(&e, &spec);
        }

        #[test]
        fn dates(s in "\\PC{0,40}") {
            let _ = parse_iso8601(&s);
        }
    }
}
