//! Which files of a snapshot an input wants: `include` and `exclude` globs
//! and an exact `files` list. Globs follow the official client's
//! (fnmatch-style: `*` also crosses `/`; a pattern ending in `/` means
//! everything below it), so patterns copied from Python work unchanged.
//!
//! Nix attributes hold strings, not lists, so a list is one string with
//! elements separated by `,`; a `,` or `\` inside an element is written `\,`
//! or `\\`. The same string appears in flake.lock and in `hf:` URLs.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Detail, Error, FilterProblem, Kind, Result};

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
        Selection::new(None, None, None, "").expect("the empty selection is valid")
    }
}

/// An element of a filter attribute that cannot be used, as the error the
/// input `shown` gets for it.
fn refused(shown: &str, attr: &'static str, element: &str, problem: FilterProblem, why: &str) -> Error {
    let message = match problem {
        FilterProblem::EmptyElement => {
            format!(
                "input '{shown}': '{attr}' has an empty element in '{element}'; separate elements with single commas"
            )
        }
        FilterProblem::NotPlainPath => format!(
            "input '{shown}': '{element}' in '{attr}' is not a plain relative path inside the repo (no leading '/', \
             no '.' or '..' or empty segments)"
        ),
        FilterProblem::BadGlob => format!("input '{shown}': '{element}' in '{attr}' is not a valid glob: {why}"),
    };
    Error::new(Kind::InvalidInput, message).with_detail(Detail::Filter { attr, element: element.to_string(), problem })
}

impl Selection {
    /// Builds a selection from the encoded attribute strings of the input
    /// shown as `shown`; the error names the attribute and the element at
    /// fault.
    pub fn new(include: Option<&str>, exclude: Option<&str>, files: Option<&str>, shown: &str) -> Result<Selection> {
        let include = normalise(decode_list(include.unwrap_or(""), "include", shown)?);
        let exclude = normalise(decode_list(exclude.unwrap_or(""), "exclude", shown)?);
        let files = normalise(decode_list(files.unwrap_or(""), "files", shown)?);
        if let Some(f) = files.iter().find(|f| !is_plain_relative_path(f)) {
            return Err(refused(shown, "files", f, FilterProblem::NotPlainPath, ""));
        }
        Ok(Selection {
            include_set: glob_set(&include, "include", shown)?,
            exclude_set: glob_set(&exclude, "exclude", shown)?,
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
        self.lists().into_iter().map(|(n, l)| (n, encode_list(l))).collect()
    }

    /// The lists by attribute name, sorted and without duplicates; empty
    /// ones left out.
    pub fn lists(&self) -> Vec<(&'static str, &[String])> {
        [("include", &self.include), ("exclude", &self.exclude), ("files", &self.files)]
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(n, l)| (n, l.as_slice()))
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

fn glob_set(patterns: &[String], attr: &'static str, shown: &str) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        // As the official client: a pattern naming a folder takes all of it.
        let p2 = if p.ends_with('/') { format!("{p}*") } else { p.clone() };
        let glob: Glob = GlobBuilder::new(&p2)
            .literal_separator(false)
            .build()
            .map_err(|e| refused(shown, attr, p, FilterProblem::BadGlob, &e.kind().to_string()))?;
        b.add(glob);
    }
    b.build().map_err(|e| refused(shown, attr, &encode_list(patterns), FilterProblem::BadGlob, &e.to_string()))
}

pub fn encode_list(items: &[String]) -> String {
    items.iter().map(|s| s.replace('\\', "\\\\").replace(',', "\\,")).collect::<Vec<_>>().join(",")
}

/// The elements of an encoded list attribute `attr` of the input `shown`.
pub fn decode_list(s: &str, attr: &'static str, shown: &str) -> Result<Vec<String>> {
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
        return Err(refused(shown, attr, s, FilterProblem::EmptyElement, ""));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: Option<&str>, exclude: Option<&str>, files: Option<&str>) -> Result<Selection> {
        Selection::new(include, exclude, files, "hf:org/name")
    }

    fn problem(e: Error) -> (&'static str, String, FilterProblem) {
        assert_eq!(e.kind, Kind::InvalidInput);
        match e.detail {
            Detail::Filter { attr, element, problem } => (attr, element, problem),
            d => panic!("not a filter error: {d:?}"),
        }
    }

    #[test]
    fn globs_behave_like_the_official_client() {
        let s = sel(Some("*.json,original/"), Some("*/secret*"), None).unwrap();
        assert!(s.wants("config.json"));
        assert!(s.wants("nested/deep/config.json"), "* crosses / as fnmatch does");
        assert!(s.wants("original/params.bin"), "a folder pattern takes everything below");
        assert!(!s.wants("model.safetensors"));
        assert!(!s.wants("a/secret.json"));
        assert!(Selection::default().wants("anything/at/all"));
        let f = sel(None, None, Some("tokenizer.json")).unwrap();
        assert!(f.wants("tokenizer.json") && !f.wants("other.json"));
    }

    #[test]
    fn lists_round_trip_with_escapes() {
        let items = vec!["a,b".to_string(), "c\\d".to_string(), "e".to_string()];
        let enc = encode_list(&items);
        assert_eq!(enc, "a\\,b,c\\\\d,e");
        assert_eq!(decode_list(&enc, "include", "x").unwrap(), items);
        let e = decode_list("a,,b", "include", "x").unwrap_err();
        assert_eq!(problem(e), ("include", "a,,b".into(), FilterProblem::EmptyElement));
    }

    #[test]
    fn rejects_bad_globs_and_paths() {
        let e = sel(Some("[abc"), None, None).unwrap_err();
        assert!(e.message.starts_with("input 'hf:org/name': '[abc' in 'include' is not a valid glob"), "{}", e.message);
        assert_eq!(problem(e), ("include", "[abc".into(), FilterProblem::BadGlob));
        for p in ["/etc/passwd", "a/../b", "./a", "a//b", "a/"] {
            let e = sel(None, None, Some(p)).unwrap_err();
            assert_eq!(problem(e), ("files", p.to_string(), FilterProblem::NotPlainPath), "{p}");
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
            prop_assert_eq!(decode_list(&encode_list(&items), "include", "x").unwrap(), items);
        }

        /// Any filter strings give a selection that means what its parts
        /// say, or a refusal that names one of them.
        #[test]
        fn filters_mean_what_they_say(s in "[a-z*?/.,\\[\\]\\\\]{0,16}", t in "[a-z*?/.,\\[\\]\\\\]{0,16}") {
            match Selection::new(Some(&s), Some(&t), Some(&s), "hf:fuzz") {
                Ok(sel) => {
                    for f in sel.files() {
                        prop_assert!(is_plain_relative_path(f));
                        prop_assert_eq!(sel.wants(f), !sel.exclude_set.is_match(f),
                            "a listed file is wanted unless excluded: {}", f);
                    }
                    let attrs = sel.to_attrs();
                    let get = |n: &str| attrs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
                    let again = Selection::new(get("include"), get("exclude"), get("files"), "again").unwrap();
                    prop_assert_eq!(again, sel);
                }
                Err(e) => match e.detail {
                    Detail::Filter { attr, element, .. } => {
                        let given = if attr == "exclude" { &t } else { &s };
                        let items = decode_list(given, attr, "x").unwrap_or_default();
                        prop_assert!(element == *given || items.contains(&element)
                            || element == encode_list(&normalise(items.clone())),
                            "{} names '{}', which is not in '{}'", attr, element, given);
                    }
                    d => prop_assert!(false, "a refusal without its facts: {:?}", d),
                },
            }
        }
    }
}
