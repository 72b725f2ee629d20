//! Contents already on this machine, so that a new snapshot fetches only
//! what changed: files of earlier snapshots of the same repo in the store
//! (remembered in a small per-repo index), and the blobs of the official
//! client's cache (`~/.cache/huggingface/hub`), which are verified before use
//! since anyone may have written them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::{content_key, Digest, FileEntry};
use crate::cache;
use crate::download::{Local, Reuse, Run};
use crate::spec::Spec;
use crate::verify::{self, HashingReader};

/// How many earlier snapshots of a repo the index remembers.
const REMEMBERED: usize = 4;

pub struct Donors {
    /// "<digest>-<size>" -> a file in the store with that content.
    store: BTreeMap<String, PathBuf>,
    /// Xet chunks those files hold.
    xet: Local,
    /// The official client's blobs folder for this repo, if any.
    hf_blobs: Option<PathBuf>,
}

fn index_path(index_root: &Path, spec: &Spec) -> PathBuf {
    let id = format!("{}/{}", spec.kind.as_str(), spec.repo.to_ascii_lowercase());
    index_root.join(format!("{}.json", crate::verify::short_name(&id)))
}

/// A snapshot's files by content: content key (`<digest>-<size>`) to path.
pub type Manifest = BTreeMap<String, String>;

/// The index of a repo's snapshots in the store, newest first.
#[derive(Serialize, Deserialize, Default)]
struct Index {
    snapshots: Vec<Remembered>,
}

#[derive(Serialize, Deserialize)]
struct Remembered {
    /// The snapshot's real path on this machine.
    path: String,
    files: Manifest,
    /// Content key -> the Xet chunks the file holds, where known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    xet: BTreeMap<String, Vec<Run>>,
}

/// The index at `path`; an unreadable one is as good as none (it only
/// saves downloads).
fn read_index(path: &Path) -> Index {
    fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The official client's cache folder for a repo: `$HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub` or
/// `~/.cache/huggingface/hub`.
pub fn hf_blobs_dir(spec: &Spec, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let hub = env("HF_HUB_CACHE").map(PathBuf::from).or_else(|| cache::hf_home(env).map(|h| h.join("hub")))?;
    Some(hub.join(cache::repo_folder(spec)).join("blobs"))
}

impl Donors {
    pub fn find(index_root: Option<&Path>, spec: &Spec, hf_blobs: Option<PathBuf>) -> Donors {
        let mut store = BTreeMap::new();
        let mut xet = Local::default();
        let snapshots = index_root.map(|r| read_index(&index_path(r, spec)).snapshots).unwrap_or_default();
        for snap in snapshots {
            let root = Path::new(&snap.path);
            if !root.is_dir() {
                continue; // garbage-collected since
            }
            for (k, runs) in snap.xet {
                if let Some(rel) = snap.files.get(&k) {
                    runs.into_iter().for_each(|r| xet.add(root.join(rel), r));
                }
            }
            for (k, rel) in snap.files {
                store.entry(k).or_insert_with(|| root.join(rel));
            }
        }
        Donors { store, xet, hf_blobs }
    }

    /// The Xet chunks of earlier snapshots, for the CAS reader.
    pub fn take_xet(&mut self) -> Local {
        std::mem::take(&mut self.xet)
    }

    /// Whether this content is on this machine (unchecked, for planning).
    pub fn has(&self, digest: &Digest, size: u64) -> bool {
        self.in_store(digest, size).is_some() || self.hf_blob(digest, size).is_some()
    }

    /// A file of an earlier snapshot in the store with this content.
    fn in_store(&self, digest: &Digest, size: u64) -> Option<&PathBuf> {
        self.store.get(&content_key(digest, size)).filter(|src| fs::metadata(src).is_ok_and(|m| m.len() == size))
    }

    /// The official client's blob of this content, unchecked.
    fn hf_blob(&self, digest: &Digest, size: u64) -> Option<PathBuf> {
        let blob = self.hf_blobs.as_ref()?.join(digest.hex());
        fs::metadata(&blob).is_ok_and(|m| m.len() == size).then_some(blob)
    }
}

impl Reuse for Donors {
    /// Store files are linked (or copied); the official client's blobs are
    /// copied and checked on the way.
    fn place(&self, digest: &Digest, size: u64, part: &Path) -> bool {
        if let Some(src) = self.in_store(digest, size) {
            let _ = fs::remove_file(part);
            if fs::hard_link(src, part).is_ok() || fs::copy(src, part).is_ok() {
                return true;
            }
        }
        self.hf_blob(digest, size).is_some_and(|blob| copy_verified(&blob, part, digest, size).is_ok())
    }

    /// Store files as they are; the official client's blobs once checked
    /// (anyone may have written them).
    fn open(&self, digest: &Digest, size: u64) -> Option<File> {
        if let Some(f) = self.in_store(digest, size).and_then(|src| File::open(src).ok()) {
            return Some(f);
        }
        let blob = self.hf_blob(digest, size)?;
        let checked = HashingReader::new(File::open(&blob).ok()?, digest, size).check(&blob.display().to_string(), "");
        matches!(checked, Ok(Ok(()))).then(|| File::open(&blob).ok()).flatten()
    }
}

fn copy_verified(src: &Path, dst: &Path, digest: &Digest, size: u64) -> std::io::Result<()> {
    let tmp = dst.with_extension("donor");
    let result = (|| {
        let mut r = HashingReader::new(fs::File::open(src)?, digest, size);
        verify::copy(&mut r, &mut fs::File::create(&tmp)?)?;
        r.finish(&src.display().to_string(), "the official client's cache").map_err(std::io::Error::other)?;
        fs::rename(&tmp, dst)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A snapshot's files by content, to remember once it is in the store.
pub fn manifest(files: &[FileEntry]) -> Manifest {
    files.iter().map(|f| (f.content_key(), f.path.clone())).collect()
}

/// Records that `store_path` holds the files of `manifest`, and the Xet
/// chunks `xet` (by content key) of those fetched now, keeping the newest
/// few snapshots of the repo. Files taken from an earlier snapshot keep
/// the chunks known there.
pub fn remember(
    index_root: &Path,
    spec: &Spec,
    store_path: &str,
    manifest: Manifest,
    mut xet: BTreeMap<String, Vec<Run>>,
) -> std::io::Result<()> {
    fs::create_dir_all(index_root)?;
    let path = index_path(index_root, spec);
    let mut index = read_index(&path);
    for s in &index.snapshots {
        for (k, runs) in &s.xet {
            if manifest.contains_key(k) {
                xet.entry(k.clone()).or_insert_with(|| runs.clone());
            }
        }
    }
    index.snapshots.retain(|s| s.path != store_path);
    index.snapshots.insert(0, Remembered { path: store_path.to_string(), files: manifest, xet });
    index.snapshots.truncate(REMEMBERED);
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    fs::write(&tmp, serde_json::to_vec(&index)?)?;
    fs::rename(tmp, path)
}
