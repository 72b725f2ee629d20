//! A Hugging Face cache made of snapshots already in the store, laid out as
//! the official client and the libraries on it read their cache
//! (`HF_HUB_CACHE`): `models--ORG--NAME/refs/<ref>` holds a commit, and
//! `snapshots/<commit>` is the snapshot itself, linked, so that the cache
//! refers to the snapshots (they are in its closure) and holds none of
//! their bytes. Pure: the glue writes these entries and adds them to the
//! store. Also where the official client's own files are, for the token
//! and for blobs a fetch may reuse.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::base::CommitId;
use crate::error::{fail, Result};
use crate::spec::{check_ref, Spec};

/// One snapshot to put in the cache (lib.hubCache gives them as JSON).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The repo as a user names it: `ORG/NAME`, `datasets/ORG/NAME`, …
    pub key: String,
    pub rev: String,
    /// Ref names that point at it (`main`, `refs/convert/parquet`).
    pub refs: Vec<String>,
    /// Where the snapshot is (a store path).
    pub path: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file and its content.
    File(String, String),
    /// A symbolic link and its target.
    Link(String, String),
}

/// The cache's entries, sorted by path; folders are implied. `caller` is
/// what messages name (`builtins.hfHubCache`, `lib.hubCache`).
pub fn layout(snapshots: &[Snapshot], caller: &str) -> Result<Vec<Entry>> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for s in snapshots {
        let shown = format!("{caller}: '{}'", s.key);
        let spec = match Spec::from_url(&s.key, &[], &s.key) {
            Ok(spec) if spec.reference.is_none() && spec.rev.is_none() => spec,
            _ => fail!(
                InvalidInput,
                "{shown} is not a repo id; name each snapshot by its repo: \"ORG/NAME\" (a model), \
                 \"datasets/ORG/NAME\" or \"spaces/ORG/NAME\""
            ),
        };
        let Some(rev) = CommitId::parse(&s.rev) else {
            fail!(InvalidInput, "{shown}: '{}' is not a 40-character commit id", s.rev);
        };
        let folder = repo_folder(&spec);
        for r in &s.refs {
            if check_ref(r, "").is_err() {
                fail!(InvalidInput, "{shown}: '{r}' is not a valid branch or tag name");
            }
            let file = format!("{folder}/refs/{r}");
            if let Some(Entry::File(_, other)) = entries.get(&file) {
                if *other != rev.as_str() {
                    fail!(
                        InvalidInput,
                        "{shown}: ref '{r}' would point at both {other} and {rev}; give each snapshot its own refs"
                    );
                }
            }
            entries.insert(file.clone(), Entry::File(file, rev.to_string()));
        }
        let link = format!("{folder}/snapshots/{rev}");
        if let Some(Entry::Link(_, other)) = entries.get(&link) {
            if *other != s.path {
                fail!(InvalidInput, "{shown}: commit {rev} is given twice, as {other} and as {}", s.path);
            }
        }
        entries.insert(link.clone(), Entry::Link(link, s.path.clone()));
    }
    Ok(entries.into_values().collect())
}

/// A repo's folder in a cache, as the official client names it
/// (`models--ORG--NAME`).
pub fn repo_folder(spec: &Spec) -> String {
    format!("{}--{}", spec.kind.plural(), spec.repo.replace('/', "--"))
}

/// Where the official client keeps its files (its token, its cache under
/// `hub/`): `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else
/// `~/.cache/huggingface`.
pub fn hf_home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HF_HOME").map(PathBuf::from).or_else(|| {
        env("XDG_CACHE_HOME")
            .map(|c| PathBuf::from(c).join("huggingface"))
            .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn snap(key: &str, rev: &str, refs: &[&str], path: &str) -> Snapshot {
        Snapshot {
            key: key.into(),
            rev: rev.into(),
            refs: refs.iter().map(|r| r.to_string()).collect(),
            path: path.into(),
        }
    }

    #[test]
    fn folders_refs_and_snapshot_links() {
        let l = layout(
            &[
                snap("sentence-transformers/all-MiniLM-L6-v2", A, &["main"], "/nix/store/a-source"),
                snap("datasets/acme/squad", A, &["main"], "/nix/store/b-source"),
                snap("datasets/acme/squad", B, &["refs/convert/parquet"], "/nix/store/c-source"),
                snap("gpt2", B, &["main"], "/nix/store/d-source"),
            ],
            "lib.hubCache",
        )
        .unwrap();
        assert_eq!(
            l,
            vec![
                Entry::File("datasets--acme--squad/refs/main".into(), A.into()),
                Entry::File("datasets--acme--squad/refs/refs/convert/parquet".into(), B.into()),
                Entry::Link(format!("datasets--acme--squad/snapshots/{A}"), "/nix/store/b-source".into()),
                Entry::Link(format!("datasets--acme--squad/snapshots/{B}"), "/nix/store/c-source".into()),
                Entry::File("models--gpt2/refs/main".into(), B.into()),
                Entry::Link(format!("models--gpt2/snapshots/{B}"), "/nix/store/d-source".into()),
                Entry::File("models--sentence-transformers--all-MiniLM-L6-v2/refs/main".into(), A.into()),
                Entry::Link(
                    format!("models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{A}"),
                    "/nix/store/a-source".into()
                ),
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = |s: Vec<Snapshot>| layout(&s, "builtins.hfHubCache").unwrap_err().message;
        assert!(err(vec![snap("org/name/main", A, &["main"], "/p")])
            .starts_with("builtins.hfHubCache: 'org/name/main' is not a repo id"));
        assert!(err(vec![snap("org/name", "abc", &["main"], "/p")]).contains("not a 40-character commit id"));
        assert!(err(vec![snap("org/name", A, &["bad ref"], "/p")]).contains("not a valid branch or tag name"));
        let two = vec![snap("org/name", A, &["main"], "/p"), snap("org/name", B, &["main"], "/q")];
        assert!(err(two).contains("ref 'main' would point at both"));
        let same = vec![snap("org/name", A, &["main"], "/p"), snap("models/org/name", A, &["v1"], "/q")];
        assert!(err(same).contains("is given twice"));
        // A commit is the same commit in either case.
        let upper = A.to_uppercase();
        let l = layout(&[snap("org/name", A, &["main"], "/p"), snap("models/org/name", &upper, &["main"], "/p")], "x")
            .unwrap();
        assert_eq!(
            l,
            vec![
                Entry::File("models--org--name/refs/main".into(), A.into()),
                Entry::Link(format!("models--org--name/snapshots/{A}"), "/p".into())
            ]
        );
    }
}
