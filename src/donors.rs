//! Contents already on this machine, so that a new snapshot fetches only
//! what changed: files of earlier snapshots of the same repo in the store
//! (remembered in a small per-repo index), and the blobs of the official
//! client's cache (`~/.cache/huggingface/hub`), which are verified before use
//! since anyone may have written them.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::base::{content_key, Digest, FileEntry};
use crate::cache;
use crate::spec::Spec;
use crate::verify::Verifier;

/// How many earlier snapshots of a repo the index remembers.
const REMEMBERED: usize = 4;

pub struct Donors {
    /// "<digest>-<size>" -> a file in the store with that content.
    store: BTreeMap<String, PathBuf>,
    /// The official client's blobs folder for this repo, if any.
    hf_blobs: Option<PathBuf>,
}

fn index_path(index_root: &Path, spec: &Spec) -> PathBuf {
    let id = format!("{}/{}", spec.kind.as_str(), spec.repo.to_ascii_lowercase());
    index_root.join(format!("{}.json", crate::verify::short_name(&id)))
}

fn read_index(path: &Path) -> Vec<Json> {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
        .and_then(|j| j["snapshots"].as_array().cloned())
        .unwrap_or_default()
}

/// The official client's cache folder for a repo: `$HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub` or
/// `~/.cache/huggingface/hub`.
pub fn hf_blobs_dir(spec: &Spec, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let hub = env("HF_HUB_CACHE").map(PathBuf::from).or_else(|| cache::hf_home(env).map(|h| h.join("hub")))?;
    Some(hub.join(cache::repo_folder(spec)).join("blobs"))
}

impl Donors {
    pub fn find(index_root: &Path, spec: &Spec, hf_blobs: Option<PathBuf>) -> Donors {
        let mut store = BTreeMap::new();
        for snap in read_index(&index_path(index_root, spec)) {
            let (Some(root), Some(files)) = (snap["path"].as_str(), snap["files"].as_object()) else { continue };
            if !Path::new(root).is_dir() {
                continue; // garbage-collected since
            }
            for (k, rel) in files {
                if let Some(rel) = rel.as_str() {
                    store.entry(k.clone()).or_insert_with(|| Path::new(root).join(rel));
                }
            }
        }
        Donors { store, hf_blobs }
    }

    /// Puts the content `digest`/`size` at `part` from a local source, if one
    /// has it. Store files are linked (or copied); the official client's
    /// blobs are copied and checked on the way.
    pub fn provide(&self, digest: &Digest, size: u64, part: &Path) -> bool {
        if let Some(src) = self.store.get(&content_key(digest, size)) {
            if fs::metadata(src).map(|m| m.len() == size).unwrap_or(false) {
                let _ = fs::remove_file(part);
                if fs::hard_link(src, part).is_ok() || fs::copy(src, part).is_ok() {
                    return true;
                }
            }
        }
        let Some(blob) = self.hf_blobs.as_ref().map(|b| b.join(digest.hex())) else { return false };
        fs::metadata(&blob).is_ok_and(|m| m.len() == size) && copy_verified(&blob, part, digest, size).is_ok()
    }
}

fn copy_verified(src: &Path, dst: &Path, digest: &Digest, size: u64) -> std::io::Result<()> {
    let tmp = dst.with_extension("donor");
    let result = (|| {
        let mut r = fs::File::open(src)?;
        let mut w = fs::File::create(&tmp)?;
        let mut v = Verifier::new(digest, size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
            std::io::Write::write_all(&mut w, &buf[..n])?;
        }
        v.finish().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "blob does not match its name"))?;
        fs::rename(&tmp, dst)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A snapshot's files by content, to remember once it is in the store.
pub fn manifest(files: &[FileEntry]) -> Json {
    let map: serde_json::Map<String, Json> =
        files.iter().map(|f| (f.content_key(), Json::String(f.path.clone()))).collect();
    Json::Object(map)
}

/// Records that `store_path` holds the files of `manifest`, keeping the
/// newest few snapshots of the repo.
pub fn remember(index_root: &Path, spec: &Spec, store_path: &str, manifest: Json) -> std::io::Result<()> {
    fs::create_dir_all(index_root)?;
    let path = index_path(index_root, spec);
    let mut snaps: Vec<Json> =
        read_index(&path).into_iter().filter(|s| s["path"].as_str() != Some(store_path)).collect();
    snaps.insert(0, json!({ "path": store_path, "files": manifest }));
    snaps.truncate(REMEMBERED);
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    fs::write(&tmp, serde_json::to_vec(&json!({ "snapshots": snaps }))?)?;
    fs::rename(tmp, path)
}
