//! Which files of a snapshot an input wants: `include` and `exclude` globs
//! and an exact `files` list. Globs follow the official client's
//! (fnmatch-style: `*` also crosses `/`; a pattern ending in `/` means
//! everything below it), so patterns copied from Python work unchanged.
//!
//! Nix attributes hold strings, not lists, so a list is one string with
//! elements separated by `,`; a `,` or `\` inside an element is written `\,`
//! or `\\`. The same string appears in flake.lock and in `hf:` URLs.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Debug, Clone)]
pub struct Selection {
    include: Vec<String>,
    exclude: Vec<String>,
    files: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

impl PartialEq for Selection {
    fn eq(&self, other: &Self) -> bool {
        (&self.include, &self.exclude, &self.files) == (&other.include, &other.exclude, &other.files)
    }
}

impl Eq for Selection {}

impl Default for Selection {
    fn default() -> Self {
        Selection::new(None, None, None).expect("the empty selection is valid")
    }
}

impl Selection {
    /// Builds a selection from the encoded attribute strings; the error names
    /// the attribute and the element at fault.
    pub fn new(include: Option<&str>, exclude: Option<&str>, files: Option<&str>) -> Result<Selection, String> {
        let include = normalise(decode_list(include.unwrap_or(""), "include")?);
        let exclude = normalise(decode_list(exclude.unwrap_or(""), "exclude")?);
        let files = normalise(decode_list(files.unwrap_or(""), "files")?);
        for f in &files {
            if !is_plain_relative_path(f) {
                return Err(format!(
                    "'{f}' in 'files' is not a plain relative path inside the repo (no leading '/', no '.' or '..' or empty segments)"
                ));
            }
        }
        Ok(Selection {
            include_set: glob_set(&include, "include")?,
            exclude_set: glob_set(&exclude, "exclude")?,
            include,
            exclude,
            files,
        })
    }

    /// A file is wanted when it is listed in `files` or matches `include`
    /// (everything, when neither is given), and matches no `exclude`.
    pub fn wants(&self, path: &str) -> bool {
        let chosen = if self.include.is_empty() && self.files.is_empty() {
            true
        } else {
            self.files.iter().any(|f| f == path) || self.include_set.is_match(path)
        };
        chosen && !self.exclude_set.is_match(path)
    }

    /// `files` entries, which must all exist in the snapshot.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// The attributes that describe this selection, encoded; empty lists are
    /// left out.
    pub fn to_attrs(&self) -> Vec<(&'static str, String)> {
        [("include", &self.include), ("exclude", &self.exclude), ("files", &self.files)]
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| (n, encode_list(l)))
            .collect()
    }

    pub fn fingerprint(&self) -> String {
        format!("i={};e={};f={}", encode_list(&self.include), encode_list(&self.exclude), encode_list(&self.files))
    }
}

/// A path as it may appear in a snapshot: relative, `/`-separated, with no
/// empty, `.` or `..` segment and no control characters.
pub fn is_plain_relative_path(p: &str) -> bool {
    !p.is_empty() && !p.chars().any(|c| c.is_control()) && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

fn normalise(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn glob_set(patterns: &[String], attr: &str) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // As the official client: a pattern naming a folder takes all of it.
        let p2 = if p.ends_with('/') { format!("{p}*") } else { p.clone() };
        let glob: Glob = GlobBuilder::new(&p2)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("'{p}' in '{attr}' is not a valid glob: {}", e.kind()))?;
        b.add(glob);
    }
    b.build().map_err(|e| format!("bad '{attr}' patterns: {e}"))
}

pub fn encode_list(items: &[String]) -> String {
    items.iter().map(|s| s.replace('\\', "\\\\").replace(',', "\\,")).collect::<Vec<_>>().join(",")
}

pub fn decode_list(s: &str, attr: &str) -> Result<Vec<String>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ (',' | '\\')) => cur.push(n),
                Some(n) => {
                    cur.push('\\');
                    cur.push(n);
                }
                None => cur.push('\\'),
            },
            ',' => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!("'{attr}' has an empty element in '{s}'; separate elements with single commas"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_behave_like_the_official_client() {
        let s = Selection::new(Some("*.json,original/"), Some("*/secret*"), None).unwrap();
        assert!(s.wants("config.json"));
        assert!(s.wants("nested/deep/config.json"), "* crosses / as fnmatch does");
        assert!(s.wants("original/params.bin"), "a folder pattern takes everything below");
        assert!(!s.wants("model.safetensors"));
        assert!(!s.wants("a/secret.json"));
        assert!(Selection::default().wants("anything/at/all"));
        let f = Selection::new(None, None, Some("tokenizer.json")).unwrap();
        assert!(f.wants("tokenizer.json") && !f.wants("other.json"));
    }

    #[test]
    fn lists_round_trip_with_escapes() {
        let items = vec!["a,b".to_string(), "c\\d".to_string(), "e".to_string()];
        let enc = encode_list(&items);
        assert_eq!(enc, "a\\,b,c\\\\d,e");
        assert_eq!(decode_list(&enc, "x").unwrap(), items);
        assert!(decode_list("a,,b", "include").unwrap_err().contains("empty element"));
    }

    #[test]
    fn rejects_bad_globs_and_paths() {
        assert!(Selection::new(Some("[abc"), None, None).unwrap_err().contains("'[abc' in 'include'"));
        for p in ["/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            assert!(Selection::new(None, None, Some(p)).is_err(), "{p}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn lists_round_trip(items in proptest::collection::vec("\\PC{1,12}", 0..6)) {
            prop_assert_eq!(decode_list(&encode_list(&items), "x").unwrap(), items);
        }

        #[test]
        fn any_filter_string_is_accepted_or_refused_without_panic(s in "\\PC{0,40}", t in "\\PC{0,40}") {
            if let Ok(sel) = Selection::new(Some(&s), Some(&t), Some(&s)) {
                let _ = sel.wants("a/b.json");
            }
        }
    }
}
