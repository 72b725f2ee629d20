//! What an `hf` input is: `hf:` URLs and attribute sets parsed, checked and
//! rendered back. Everything here runs before any network call, so a typo
//! fails fast with an error that names the input and the fix.

use std::collections::BTreeMap;

use crate::base::{percent_encode, CommitId, Revision};
use crate::error::{fail, Result};
use crate::select::Selection;

/// The input type name, used for `type = "hf"` and the `hf:` URL scheme.
pub const SCHEME: &str = "hf";

/// What the scheme is, for Nix's documentation of fetchTree's input types.
pub const DESCRIPTION: &str = "A snapshot of a Hugging Face Hub repository (model, dataset or space) at a commit, \
every file verified against the hashes the Hub lists. URL form: `hf:[datasets/|spaces/]ORG/NAME[/REF-OR-REV]`.";

/// An attribute an hf input accepts, with its Nix type and documentation.
pub struct Attribute {
    pub name: &'static str,
    pub type_name: &'static str,
    pub required: bool,
    pub doc: &'static str,
}

/// The attributes an hf input accepts (besides `type`). Everything written
/// to flake.lock is among them, so a lock file is always accepted back.
pub const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        name: "repo",
        type_name: "String",
        required: true,
        doc: "The repo id on the Hub: `ORG/NAME`, or a legacy one-segment id such as `gpt2`.",
    },
    Attribute {
        name: "kind",
        type_name: "String",
        required: false,
        doc: "`\"model\"` (the default), `\"dataset\"` or `\"space\"`.",
    },
    Attribute {
        name: "ref",
        type_name: "String",
        required: false,
        doc: "A branch, tag, `refs/pr/N` or `refs/convert/parquet` (default: `main`). Not with `rev`.",
    },
    Attribute {
        name: "rev",
        type_name: "String",
        required: false,
        doc: "A full 40-character commit id. Not with `ref`.",
    },
    Attribute {
        name: "include",
        type_name: "String",
        required: false,
        doc: "Comma-separated globs of the files to fetch (`*` also matches `/`; `dir/` takes everything below `dir`).",
    },
    Attribute {
        name: "exclude",
        type_name: "String",
        required: false,
        doc: "Comma-separated globs of files not to fetch.",
    },
    Attribute {
        name: "files",
        type_name: "String",
        required: false,
        doc: "Comma-separated exact paths of files to fetch; each must exist.",
    },
    Attribute { name: "narHash", type_name: "String", required: false, doc: "The NAR hash of the snapshot; checked." },
    Attribute {
        name: "lastModified",
        type_name: "Integer",
        required: false,
        doc: "The commit's date (seconds since the epoch); set when locked.",
    },
];

fn is_attribute(name: &str) -> bool {
    ATTRIBUTES.iter().any(|a| a.name == name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Dataset,
    Space,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Model, Kind::Dataset, Kind::Space];

    /// The word inputs give in `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Dataset => "dataset",
            Kind::Space => "space",
        }
    }

    /// The plural the Hub uses in its API paths (`/api/datasets/…`), in URL
    /// paths before a repo id (`hf:datasets/…`) and in its cache's folder
    /// names (`datasets--ORG--NAME`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Space => "spaces",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// `"model", "dataset" or "space"`, for messages.
    pub fn choices() -> String {
        let [a, b, c] = Kind::ALL.map(|k| format!("\"{}\"", k.as_str()));
        format!("{a}, {b} or {c}")
    }

    pub fn parse_plural(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == s)
    }

    /// The path segment in front of a repo id in file and URL paths
    /// (`datasets/…`); models have none.
    pub fn url_prefix(self) -> String {
        match self {
            Kind::Model => String::new(),
            k => format!("{}/", k.plural()),
        }
    }
}

/// An attribute value as Nix's fetchers keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
}

pub type Attrs = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub repo: String,
    pub reference: Option<String>,
    pub rev: Option<CommitId>,
    pub selection: Selection,
    pub nar_hash: Option<String>,
    pub last_modified: Option<u64>,
}

impl Spec {
    /// Parses the parts of an `hf:` URL that Nix has already split and
    /// percent-decoded: `[datasets/|spaces/|models/]ORG/NAME[/REF-OR-REV]` or a
    /// one-segment legacy id, plus query parameters. `shown` is the URL as the
    /// user wrote it, for error messages.
    pub fn from_url(path: &str, query: &[(String, String)], shown: &str) -> Result<Spec> {
        let mut segs: Vec<&str> = path.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            fail!(
                InvalidInput,
                "input '{shown}' has an empty path segment; write hf:ORG/NAME, hf:ORG/NAME/REF or hf:datasets/ORG/NAME"
            );
        }
        let mut kind = Kind::Model;
        if segs.len() > 1 {
            if let Some(k) = Kind::parse_plural(segs[0]) {
                kind = k;
                segs.remove(0);
            }
        }
        let (repo, rest) = match segs.len() {
            1 => (segs[0].to_string(), None),
            _ => (format!("{}/{}", segs[0], segs[1]), (segs.len() > 2).then(|| segs[2..].join("/"))),
        };
        let mut attrs = Attrs::new();
        attrs.insert("repo".into(), Value::Str(repo));
        if kind != Kind::Model {
            attrs.insert("kind".into(), Value::Str(kind.as_str().into()));
        }
        if let Some(r) = rest {
            let key = if CommitId::parse(&r).is_some() { "rev" } else { "ref" };
            attrs.insert(key.into(), Value::Str(r));
        }
        for (name, value) in query {
            if !matches!(name.as_str(), "rev" | "ref" | "include" | "exclude" | "files" | "narHash") {
                fail!(
                InvalidInput,
                    "input '{shown}' has an unknown parameter '{name}'; hf: URLs accept rev, ref, include, exclude, files and narHash"
                );
            }
            if attrs.contains_key(name) {
                fail!(
                    InvalidInput,
                    "input '{shown}' gives '{name}' twice (in the path and as a parameter); give it once"
                );
            }
            attrs.insert(name.clone(), Value::Str(value.clone()));
        }
        Spec::from_attrs_shown(&attrs, shown)
    }

    /// Parses an `hf:` URL as Nix splits one before the scheme sees it:
    /// `hf:`, no authority, each path segment and the query percent-decoded.
    pub fn parse_url(url: &str) -> Result<Spec> {
        let Some(rest) = url.strip_prefix(SCHEME).and_then(|r| r.strip_prefix(':')) else {
            fail!(InvalidInput, "'{url}' is not an hf: URL; write hf:ORG/NAME, hf:ORG/NAME/REF or hf:datasets/ORG/NAME")
        };
        if rest.starts_with("//") {
            fail!(InvalidInput, "URL '{url}' must not have an authority; write hf:ORG/NAME (not hf://ORG/NAME)");
        }
        if rest.contains('#') {
            fail!(
                InvalidInput,
                "URL '{url}' has a fragment ('#…'), which hf: URLs do not take; percent-encode '#' as %23"
            );
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let segments: Vec<String> = path.split('/').map(decode).collect();
        // As Nix's decodeQuery: a parameter without '=' is ignored, and of
        // one given twice the first counts.
        let mut params = BTreeMap::new();
        for p in query.split('&') {
            if let Some((k, v)) = p.split_once('=') {
                params.entry(decode(k)).or_insert_with(|| decode(v));
            }
        }
        let shown = render_nix_url(&segments, &params);
        let query: Vec<(String, String)> = params.into_iter().collect();
        Spec::from_url(&segments.join("/"), &query, &shown)
    }

    /// Parses attributes given as a JSON object, lists as JSON arrays (what
    /// `builtins.toJSON` makes of fetchHuggingFace's argument).
    pub fn from_json(text: &str) -> Result<Spec> {
        let shown = "the JSON input";
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
            fail!(
                InvalidInput,
                "{shown} is not a JSON object of an hf input's attributes ({{\"repo\": \"ORG/NAME\", …}})"
            )
        };
        let mut attrs = Attrs::new();
        for (name, value) in map {
            let v = match value {
                serde_json::Value::String(s) => Value::Str(s),
                serde_json::Value::Number(n) if n.as_u64().is_some() => Value::Int(n.as_u64().unwrap_or_default()),
                serde_json::Value::Array(items) => {
                    let items: Option<Vec<String>> = items.into_iter().map(|i| i.as_str().map(String::from)).collect();
                    let Some(items) = items else {
                        fail!(InvalidInput, "{shown}: attribute '{name}' must be a list of strings")
                    };
                    Value::Str(crate::select::encode_list(&items))
                }
                _ => fail!(
                    InvalidInput,
                    "{shown}: attribute '{name}' must be a string, a list of strings or a non-negative integer"
                ),
            };
            attrs.insert(name, v);
        }
        Spec::from_attrs(&attrs)
    }

    /// Parses an attribute set (`fetchTree { type = "hf"; … }`, flake.lock).
    pub fn from_attrs(attrs: &Attrs) -> Result<Spec> {
        let shown = match attrs.get("repo") {
            Some(Value::Str(r)) => format!("{SCHEME}:{r}"),
            _ => "{ type = \"hf\"; … }".to_string(),
        };
        Spec::from_attrs_shown(attrs, &shown)
    }

    fn from_attrs_shown(attrs: &Attrs, shown: &str) -> Result<Spec> {
        for name in attrs.keys() {
            if name != "type" && !is_attribute(name) {
                fail!(
                    InvalidInput,
                    "input '{shown}' has an unknown attribute '{name}'; hf inputs accept {}",
                    ATTRIBUTES.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
                );
            }
        }
        let string = |name: &str| -> Result<Option<String>> {
            match attrs.get(name) {
                None => Ok(None),
                Some(Value::Str(s)) => Ok(Some(s.clone())),
                Some(_) => fail!(InvalidInput, "input '{shown}': attribute '{name}' must be a string"),
            }
        };
        let Some(repo) = string("repo")? else {
            fail!(InvalidInput, "input '{shown}' has no 'repo'; give the Hub repo id, e.g. repo = \"mistralai/Mistral-7B-Instruct-v0.3\"");
        };
        check_repo_id(&repo, shown)?;
        let kind = match string("kind")? {
            None => Kind::Model,
            Some(k) => match Kind::parse(&k) {
                Some(k) => k,
                None => fail!(InvalidInput, "input '{shown}' has unknown kind '{k}'; use {}", Kind::choices()),
            },
        };
        let reference = string("ref")?;
        let rev = string("rev")?;
        if reference.is_some() && rev.is_some() {
            fail!(
                InvalidInput,
                "input '{shown}' gives both 'ref' and 'rev'; give a branch/tag as ref or a commit as rev, not both"
            );
        }
        let rev = rev.map(|r| check_rev(&r, shown)).transpose()?;
        if let Some(r) = &reference {
            check_ref(r, shown)?;
        }
        let selection = Selection::new(
            string("include")?.as_deref(),
            string("exclude")?.as_deref(),
            string("files")?.as_deref(),
            shown,
        )?;
        let nar_hash = string("narHash")?;
        let last_modified = match attrs.get("lastModified") {
            None => None,
            Some(Value::Int(n)) => Some(*n),
            Some(_) => fail!(InvalidInput, "input '{shown}': attribute 'lastModified' must be an integer"),
        };
        Ok(Spec { kind, repo, reference, rev, selection, nar_hash, last_modified })
    }

    /// The canonical attribute set: lists sorted, defaults left out.
    pub fn to_attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("type".into(), Value::Str(SCHEME.into()));
        a.insert("repo".into(), Value::Str(self.repo.clone()));
        if self.kind != Kind::Model {
            a.insert("kind".into(), Value::Str(self.kind.as_str().into()));
        }
        if let Some(r) = &self.reference {
            a.insert("ref".into(), Value::Str(r.clone()));
        }
        if let Some(r) = &self.rev {
            a.insert("rev".into(), Value::Str(r.to_string()));
        }
        for (name, value) in self.selection.to_attrs() {
            a.insert(name.into(), Value::Str(value));
        }
        if let Some(h) = &self.nar_hash {
            a.insert("narHash".into(), Value::Str(h.clone()));
        }
        if let Some(t) = self.last_modified {
            a.insert("lastModified".into(), Value::Int(t));
        }
        a
    }

    /// The URL path and query (unencoded) that parse back into this input.
    pub fn to_url(&self) -> (String, Vec<(String, String)>) {
        // A model whose org is called like a kind prefix would read back as
        // that kind: spell out its own prefix then.
        let ambiguous = self.kind == Kind::Model
            && self.repo.split_once('/').is_some_and(|(org, _)| Kind::parse_plural(org).is_some());
        let prefix = if ambiguous { format!("{}/", Kind::Model.plural()) } else { self.kind.url_prefix() };
        let mut path = format!("{prefix}{}", self.repo);
        let mut query = Vec::new();
        // A legacy one-segment id followed by a ref would read as ORG/NAME,
        // and a 40-hex branch name as a commit: those go in the query.
        let in_path = self.repo.contains('/');
        match (&self.reference, &self.rev) {
            (Some(r), _) if in_path && CommitId::parse(r).is_none() => path = format!("{path}/{r}"),
            (Some(r), _) => query.push(("ref".into(), r.clone())),
            (_, Some(r)) if in_path => path = format!("{path}/{r}"),
            (_, Some(r)) => query.push(("rev".into(), r.to_string())),
            _ => {}
        }
        for (name, value) in self.selection.to_attrs() {
            query.push((name.into(), value));
        }
        if let Some(h) = &self.nar_hash {
            query.push(("narHash".into(), h.clone()));
        }
        (path, query)
    }

    /// `hf:…` as shown to users in messages.
    pub fn display(&self) -> String {
        let (path, query) = self.to_url();
        let mut s = format!("{SCHEME}:{path}");
        for (i, (k, v)) in query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(&format!("{k}={v}"));
        }
        s
    }

    /// The URL as Nix prints the input (`Input::to_string`).
    pub fn nix_url(&self) -> String {
        let (path, query) = self.to_url();
        let segments: Vec<String> = path.split('/').map(String::from).collect();
        render_nix_url(&segments, &query.into_iter().collect())
    }

    /// The input once fetched: the commit instead of the ref, and the
    /// commit's date. What the scheme returns and flake.lock records.
    pub fn locked(&self, revision: &Revision) -> Spec {
        let mut s = self.clone();
        s.reference = None;
        s.rev = Some(revision.sha.clone());
        s.last_modified = Some(revision.last_modified);
        s
    }

    /// A branch/tag or a commit in place of whichever the input had, as
    /// `nix flake lock --override-input x flake:alias/REF-OR-REV` asks.
    pub fn with_override(&self, reference: Option<&str>, rev: Option<&str>) -> Result<Spec> {
        let shown = self.display();
        let mut s = self.clone();
        match (reference, rev) {
            (Some(r), Some(c)) => fail!(
                InvalidInput,
                "cannot apply both a commit ({c}) and a branch or tag ('{r}') to input '{shown}'; give one"
            ),
            (Some(r), None) => {
                check_ref(r, &shown)?;
                s.reference = Some(r.to_string());
                s.rev = None;
            }
            (None, Some(c)) => {
                s.rev = Some(check_rev(c, &shown)?);
                s.reference = None;
            }
            (None, None) => {}
        }
        Ok(s)
    }

    /// The repo as the Hub matches it: case-insensitively.
    fn repo_key(&self) -> String {
        format!("{};{}", self.kind.as_str(), self.repo.to_ascii_lowercase())
    }

    /// The key of Nix's fetcher-cache entry for the commit the input's ref
    /// points to at `endpoint` (a mirror may lag behind the Hub).
    pub fn ref_cache_key(&self, endpoint: &str) -> Vec<(String, String)> {
        vec![
            ("repo".into(), self.repo_key()),
            ("ref".into(), self.reference.clone().unwrap_or_default()),
            ("endpoint".into(), endpoint.into()),
        ]
    }

    /// The key of Nix's fetcher-cache entry for a commit's date, which never
    /// changes and is the same at every endpoint.
    pub fn rev_cache_key(&self, sha: &CommitId) -> Vec<(String, String)> {
        vec![("repo".into(), self.repo_key()), ("rev".into(), sha.to_string())]
    }

    /// Keys Nix's caches: everything that decides the tree, nothing else (not
    /// the endpoint, which is where the bytes come from, not what they are).
    pub fn fingerprint(&self) -> Option<String> {
        let rev = self.rev.as_ref()?;
        Some(format!(
            "hf1;{};{};{};{}",
            self.kind.as_str(),
            self.repo.to_ascii_lowercase(),
            rev,
            self.selection.fingerprint()
        ))
    }
}

/// The Hub's repo id rules: one (legacy) or two segments of letters, digits,
/// `-`, `_`, `.`; no `--` or `..`; no `-` or `.` at either end; 96 characters.
fn check_repo_id(repo: &str, shown: &str) -> Result<()> {
    let segs: Vec<&str> = repo.split('/').collect();
    if segs.len() > 2 || segs.iter().any(|s| s.is_empty()) {
        fail!(InvalidInput, "input '{shown}': repo '{repo}' is not a Hub repo id; write ORG/NAME, e.g. \"mistralai/Mistral-7B-Instruct-v0.3\"");
    }
    for s in &segs {
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let ok_ends = !s.starts_with(['-', '.']) && !s.ends_with(['-', '.']);
        if !ok_chars || !ok_ends || s.contains("--") || s.contains("..") || s.len() > 96 {
            fail!(
                InvalidInput,
                "input '{shown}': '{s}' is not a valid Hub name (letters, digits, '-', '_' and '.'; \
                 no '--' or '..'; at most 96 characters)"
            );
        }
    }
    Ok(())
}

/// An `hf:` URL as Nix renders a parsed one (`ParsedURL::to_string`), and so
/// as its messages show it: each path segment percent-encoded but for
/// unreserved characters and `:@`, the query sorted by name, its names and
/// values kept also `/?`.
fn render_nix_url(segments: &[String], query: &BTreeMap<String, String>) -> String {
    let encode = percent_encode;
    let path: Vec<String> = segments.iter().map(|seg| encode(seg, b":@")).collect();
    let mut s = format!("{SCHEME}:{}", path.join("/"));
    for (i, (k, v)) in query.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(&format!("{}={}", encode(k, b":@/?"), encode(v, b":@/?")));
    }
    s
}

/// An input given as a string, to builtins.fetchHuggingFace or the
/// program: an `hf:` URL, or a repo id (`org/name`) that stands for one.
pub fn url_of_arg(arg: &str) -> String {
    let prefix = format!("{SCHEME}:");
    if arg.starts_with(&prefix) {
        arg.to_string()
    } else {
        format!("{prefix}{arg}")
    }
}

/// A commit as inputs give it: the full id, in either case.
pub fn check_rev(r: &str, shown: &str) -> Result<CommitId> {
    match CommitId::parse(r) {
        Some(c) => Ok(c),
        None => fail!(
            InvalidInput,
            "input '{shown}': rev '{r}' is not a full 40-character hexadecimal commit id; use ref for branch and tag names"
        ),
    }
}

/// Branch and tag names as git allows them, which covers `refs/pr/N` and
/// `refs/convert/parquet`.
pub fn check_ref(r: &str, shown: &str) -> Result<()> {
    let bad_char = r.chars().any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c));
    if r.is_empty()
        || bad_char
        || r.contains("..")
        || r.contains("//")
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with(".lock")
    {
        fail!(InvalidInput, "input '{shown}': '{r}' is not a valid branch or tag name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<Spec> {
        let (path, q) = s.split_once('?').unwrap_or((s, ""));
        let query: Vec<(String, String)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Spec::from_url(path, &query, &format!("hf:{s}"))
    }

    fn round_trip(s: &str) -> Spec {
        let spec = url(s).unwrap();
        let (path, query) = spec.to_url();
        let again = Spec::from_url(&path, &query, "again").unwrap();
        assert_eq!(spec, again, "{s} did not round-trip through to_url");
        assert_eq!(Spec::from_attrs(&spec.to_attrs()).unwrap(), spec, "{s} did not round-trip through attrs");
        spec
    }

    #[test]
    fn refs_revs_and_kinds() {
        let s = round_trip("mistralai/Mistral-7B-Instruct-v0.3");
        assert_eq!(
            (s.kind, s.repo.as_str(), s.reference.as_deref()),
            (Kind::Model, "mistralai/Mistral-7B-Instruct-v0.3", None)
        );
        let s = round_trip("org/name/refs/pr/1");
        assert_eq!(s.reference.as_deref(), Some("refs/pr/1"));
        let s = round_trip("datasets/org/data/refs/convert/parquet");
        assert_eq!((s.kind, s.reference.as_deref()), (Kind::Dataset, Some("refs/convert/parquet")));
        let s = round_trip("spaces/org/app/v1.0");
        assert_eq!((s.kind, s.reference.as_deref()), (Kind::Space, Some("v1.0")));
        let rev = "0123456789abcdef0123456789abcdef01234567";
        let s = round_trip(&format!("org/name/{rev}"));
        assert_eq!(s.rev.as_ref().map(|r| r.as_str()), Some(rev));
        let s = round_trip("gpt2");
        assert_eq!(s.repo, "gpt2");
        let s = round_trip("models/datasets/a");
        assert_eq!((s.kind, s.repo.as_str(), s.to_url().0.as_str()), (Kind::Model, "datasets/a", "models/datasets/a"));
        let s = round_trip(&format!("gpt2?rev={rev}"));
        assert_eq!(s.rev.as_ref().map(|r| r.as_str()), Some(rev));
        assert_eq!(s.to_url().0, "gpt2");
        let s = round_trip("gpt2?ref=main");
        assert_eq!(s.reference.as_deref(), Some("main"));
        let s = round_trip(&format!("org/name?ref={rev}"));
        assert_eq!((s.reference.as_deref(), s.rev.is_none()), (Some(rev), true));
    }

    #[test]
    fn filters_round_trip_and_identify() {
        let s = round_trip("org/name?include=*.json,*.safetensors&exclude=original/*&files=a\\,b.txt");
        let fp = |x: &str| url(&format!("{x}&rev=0123456789abcdef0123456789abcdef01234567")).unwrap().fingerprint();
        assert_ne!(fp("org/name?include=*.json"), fp("org/name?include=*.txt"));
        assert_ne!(fp("org/name?include=*.json"), fp("org/name?exclude=*.json"));
        assert_eq!(fp("org/name?include=*.txt,*.json"), fp("org/name?include=*.json,*.txt"));
        assert!(s.fingerprint().is_none(), "an input without rev has no fingerprint");
    }

    #[test]
    fn whole_urls_as_nix_splits_them() {
        let s = Spec::parse_url("hf:datasets/org/data/refs%2Fconvert%2Fparquet?include=a%2Cb,*.json").unwrap();
        assert_eq!((s.kind, s.reference.as_deref()), (Kind::Dataset, Some("refs/convert/parquet")));
        assert_eq!(s.selection.to_attrs(), vec![("include", "*.json,a,b".to_string())]);
        let err = |u: &str| Spec::parse_url(u).unwrap_err().message;
        assert!(err("hf://org/name").contains("must not have an authority"));
        assert!(err("github:org/name").contains("is not an hf: URL"));
        assert!(err("hf:org/name#x").contains("has a fragment"));
        let rev = Revision { sha: CommitId::parse(&"4a".repeat(20)).unwrap(), last_modified: 1 };
        let tiny = Spec::parse_url("hf:nixhf/tiny?include=*.json").unwrap().locked(&rev);
        // As `nix flake prefetch` prints them (Nix 2.35.2).
        assert_eq!(tiny.nix_url(), format!("hf:nixhf/tiny/{}?include=%2A.json", rev.sha));
        let parquet = Spec::parse_url("hf:datasets/org/data/refs%2Fconvert%2Fparquet?files=a b").unwrap();
        assert_eq!(parquet.nix_url(), "hf:datasets/org/data/refs/convert/parquet?files=a%20b");
        let j = Spec::from_json(
            r#"{"repo": "org/name", "kind": "dataset", "include": ["*.json", "a,b"], "lastModified": 7}"#,
        );
        let j = j.unwrap();
        assert_eq!((j.kind, j.last_modified), (Kind::Dataset, Some(7)));
        assert_eq!(j.selection.to_attrs(), vec![("include", "*.json,a\\,b".to_string())]);
        assert!(Spec::from_json("[]").unwrap_err().message.contains("is not a JSON object"));
        assert!(Spec::from_json(r#"{"repo": "org/name", "include": [1]}"#)
            .unwrap_err()
            .message
            .contains("list of strings"));
    }

    #[test]
    fn malformed_inputs_name_the_problem() {
        let err = |s: &str| url(s).unwrap_err().message;
        assert!(err("org/name?bogus=1").contains("unknown parameter 'bogus'"));
        assert!(err("org/name?rev=abc").contains("not a full 40-character"));
        assert!(err("org/name/main?rev=0123456789abcdef0123456789abcdef01234567").contains("both 'ref' and 'rev'"));
        assert!(err("org/name/main?ref=dev").contains("gives 'ref' twice"));
        assert!(err("org//name").contains("empty path segment"));
        assert!(err("org/na me").contains("not a valid Hub name"));
        assert!(err("org/name?include=[abc").contains("include"));
        assert!(err("org/name?files=../etc/passwd").contains("files"));
        let mut a = Attrs::new();
        a.insert("repo".into(), Value::Str("org/name".into()));
        a.insert("kind".into(), Value::Str("modle".into()));
        assert!(Spec::from_attrs(&a).unwrap_err().message.contains("unknown kind 'modle'"));
        a.remove("repo");
        a.insert("kind".into(), Value::Str("model".into()));
        assert!(Spec::from_attrs(&a).unwrap_err().message.contains("has no 'repo'"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._-]{0,12}",
            "(refs|pr|convert|parquet|main|datasets|spaces|models|\\.\\.|\\.|%2F|/)",
            "\\PC{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any URL either fails with a message or parses into a spec that
        /// renders back to itself.
        #[test]
        fn urls_never_panic_and_round_trip(
            segs in proptest::collection::vec(segment(), 0..6),
            query in proptest::collection::vec(("(rev|ref|include|exclude|files|narHash|x)", "\\PC{0,20}"), 0..4),
        ) {
            let path = segs.join("/");
            let q: Vec<(String, String)> = query;
            if let Ok(spec) = Spec::from_url(&path, &q, "hf:fuzz") {
                let (p2, q2) = spec.to_url();
                prop_assert_eq!(Spec::from_url(&p2, &q2, "again").unwrap(), spec.clone());
                // What the program prints reads back, as Nix reads it, too.
                prop_assert_eq!(Spec::parse_url(&spec.nix_url()).unwrap(), spec.clone());
                prop_assert_eq!(Spec::from_attrs(&spec.to_attrs()).unwrap(), spec);
            }
        }

        #[test]
        fn attrs_never_panic(
            entries in proptest::collection::vec(
                ("(repo|kind|ref|rev|include|exclude|files|narHash|lastModified|type|x)",
                 prop_oneof!["\\PC{0,30}".prop_map(Value::Str), any::<u64>().prop_map(Value::Int),
                             any::<bool>().prop_map(Value::Bool)]),
                0..8),
        ) {
            let attrs: Attrs = entries.into_iter().collect();
            if let Ok(spec) = Spec::from_attrs(&attrs) {
                prop_assert_eq!(Spec::from_attrs(&spec.to_attrs()).unwrap(), spec);
            }
        }
    }
}
