//! Fetching a snapshot: resolve the revision, list and select the files, and
//! have the transfer engine put them, verified, into a partial directory
//! keyed by what the snapshot is, from which the caller moves the tree into
//! the store. An interrupted fetch leaves that directory for the next run.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::base::{FileEntry, Observer, Revision};
use crate::donors::{self, Donors};
use crate::download::{self, HubSource, Job, Transferred};
use crate::error::{fail, Error, Kind, Result};
use crate::hub::Hub;
use crate::retry::RealClock;
use crate::spec::Spec;

pub struct Request {
    pub spec: Spec,
    /// Where partial snapshots live (under Nix's cache dir).
    pub partial_root: PathBuf,
    /// What the caller's cache knows: the commit of the ref (when fresh), or
    /// the date of the given rev. Avoids asking the Hub again.
    pub known: Option<Revision>,
    pub connections: usize,
}

pub struct Outcome {
    pub revision: Revision,
    pub files: usize,
    pub bytes: u64,
    /// The partial directory; `transferred.tree` below it is the snapshot.
    pub dir: PathBuf,
    pub transferred: Transferred,
    /// The snapshot's files by content, for `donors::remember`.
    pub manifest: serde_json::Value,
    /// Held until the caller has moved the tree: another process fetching
    /// the same snapshot waits for it instead of racing on the same files.
    pub lock: File,
}

pub fn fetch(hub: Arc<Hub>, req: &Request, obs: &dyn Observer) -> Result<Outcome> {
    let spec = &req.spec;
    let cancelled = || obs.interrupted();
    let revision = match (&spec.rev, &req.known) {
        (Some(rev), Some(k)) if &k.sha == rev => k.clone(),
        (Some(rev), _) => {
            let r = hub.revision(spec, Some(rev), &cancelled)?;
            if &r.sha != rev {
                fail!(
                    CorruptData,
                    "the Hub resolved commit {rev} of '{}' to {}; refusing a moved commit",
                    spec.display(),
                    r.sha
                );
            }
            r
        }
        (None, Some(k)) => k.clone(),
        (None, None) => hub.revision(spec, spec.reference.as_deref(), &cancelled)?,
    };
    obs.check()?;
    let listing = hub.list(spec, &revision.sha, &cancelled)?;
    let wanted = select(spec, &revision, listing)?;
    let bytes: u64 = wanted.iter().map(|f| f.size).sum();
    let dir = req.partial_root.join(partial_name(spec, &revision.sha));
    fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let lock = lock_dir(&dir)?;
    let donors =
        Donors::find(&index_root(&req.partial_root), spec, donors::hf_blobs_dir(spec, &|k| std::env::var(k).ok()));
    let source = Arc::new(HubSource { hub: hub.clone(), spec: spec.clone(), sha: revision.sha.clone() });
    let job = Job {
        source,
        files: &wanted,
        dir: &dir,
        connections: req.connections.max(1),
        piece: download::PIECE,
        reuse: &|digest, size, part| donors.provide(digest, size, part),
        budget: hub.budget(),
        stall_secs: hub.stall().as_secs(),
        clock: Arc::new(RealClock::new()),
        shown: spec.display(),
    };
    let transferred = download::transfer(job, obs)?;
    let manifest = donors::manifest(&wanted);
    Ok(Outcome { revision, files: wanted.len(), bytes, dir, transferred, manifest, lock })
}

/// Where the index of remembered snapshots lives, beside the partial dirs.
pub fn index_root(partial_root: &Path) -> PathBuf {
    partial_root.with_file_name("index")
}

/// The partial directory's name: what the snapshot is (kind, repo, commit,
/// filters), hashed; nothing about where it came from or who asked.
fn partial_name(spec: &Spec, sha: &str) -> String {
    let locked = spec.locked(&Revision { sha: sha.to_string(), last_modified: 0 });
    crate::verify::short_name(&locked.fingerprint().expect("a locked spec has a fingerprint"))
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.with_extension("lock");
    let f = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    // SAFETY: flock on a file descriptor we own; blocks while another nix
    // fetches the same snapshot, so the two never write the same files.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io("lock", &path, std::io::Error::last_os_error()));
    }
    Ok(f)
}

fn select(spec: &Spec, revision: &Revision, listing: Vec<FileEntry>) -> Result<Vec<FileEntry>> {
    for f in spec.selection.files() {
        if !listing.iter().any(|e| &e.path == f) {
            fail!(
                NotFound,
                "file '{f}' (in 'files') does not exist in '{}' at commit {}; check the path (it is case-sensitive)",
                spec.display(),
                revision.sha
            );
        }
    }
    let total = listing.len();
    let wanted: Vec<FileEntry> = listing.into_iter().filter(|f| spec.selection.wants(&f.path)).collect();
    if wanted.is_empty() && total > 0 {
        return Err(Error::new(
            Kind::InvalidInput,
            format!(
                "no file of '{}' at commit {} matches its include/exclude/files filters ({total} files in the repo); fix the patterns",
                spec.display(),
                revision.sha
            ),
        ));
    }
    Ok(wanted)
}
