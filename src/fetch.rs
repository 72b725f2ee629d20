//! Fetching a snapshot: resolve the revision, list and select the files, and
//! have the transfer engine (`download`) put them, verified, into a partial
//! directory keyed by what the snapshot is, from which the caller moves the
//! tree into the store. An interrupted fetch leaves that directory for the
//! next run to resume.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::donors::{self, Donors};
use crate::download::{self, Transferred};
use crate::hub::{FileEntry, Hub, HubError, Revision};
use crate::spec::Spec;

/// What the core reports upward and asks of its caller.
pub trait Observer {
    /// Err once the user asked to stop (Ctrl-C).
    fn check_interrupt(&self) -> Result<(), String>;
    fn progress(&self, done: u64, expected: u64);
    /// A file download begins (shown with -v).
    fn file(&self, path: &str, size: u64);
}

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
    /// The partial directory; `tree` below it is the verified snapshot.
    pub dir: PathBuf,
    pub transferred: Transferred,
    /// The snapshot's files by content, for `donors::remember`.
    pub manifest: serde_json::Value,
    /// Held until the caller has moved the tree: another process fetching
    /// the same snapshot waits for it instead of racing on the same files.
    pub lock: File,
}

/// The message the glue recognises as "stopped by the user".
pub const INTERRUPTED: &str = "interrupted by the user";

pub fn fetch(hub: Arc<Hub>, req: &Request, obs: &dyn Observer) -> Result<Outcome, String> {
    let spec = &req.spec;
    let stopped = || obs.check_interrupt().is_err();
    let revision = match (&spec.rev, &req.known) {
        (Some(rev), Some(k)) if &k.sha == rev => k.clone(),
        (Some(rev), _) => {
            let r = hub.revision(spec, Some(rev), &stopped).map_err(|HubError(e)| e)?;
            if &r.sha != rev {
                return Err(format!(
                    "the Hub resolved commit {rev} of '{}' to {}; refusing a moved commit",
                    spec.display(),
                    r.sha
                ));
            }
            r
        }
        (None, Some(k)) => k.clone(),
        (None, None) => hub.revision(spec, spec.reference.as_deref(), &stopped).map_err(|HubError(e)| e)?,
    };
    obs.check_interrupt()?;
    let listing = hub.list(spec, &revision.sha, &stopped).map_err(|HubError(e)| e)?;
    let wanted = select(spec, &revision, listing)?;
    let bytes: u64 = wanted.iter().map(|f| f.size).sum();
    let dir = req.partial_root.join(partial_name(spec, &revision.sha));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = lock_dir(&dir)?;
    let donors =
        Donors::find(&index_root(&req.partial_root), spec, donors::hf_blobs_dir(spec, &|k| std::env::var(k).ok()));
    let transferred =
        download::transfer(hub, spec, &revision.sha, &wanted, &dir, req.connections.max(1), &donors, obs)?;
    let manifest = donors::manifest(&wanted);
    Ok(Outcome { revision, files: wanted.len(), bytes, dir, transferred, manifest, lock })
}

/// Where the index of remembered snapshots lives, beside the partial dirs.
pub fn index_root(partial_root: &std::path::Path) -> PathBuf {
    partial_root.with_file_name("index")
}

/// The partial directory's name: what the snapshot is (kind, repo, commit,
/// filters), hashed; nothing about where it came from or who asked.
fn partial_name(spec: &Spec, sha: &str) -> String {
    let mut s = spec.clone();
    s.rev = Some(sha.to_string());
    s.reference = None;
    crate::verify::short_name(&s.fingerprint().expect("a spec with a rev has a fingerprint"))
}

fn lock_dir(dir: &std::path::Path) -> Result<File, String> {
    let path = dir.with_extension("lock");
    let f = File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; blocks while another nix
    // fetches the same snapshot, so the two never write the same files.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    Ok(f)
}

fn select(spec: &Spec, revision: &Revision, listing: Vec<FileEntry>) -> Result<Vec<FileEntry>, String> {
    for f in spec.selection.files() {
        if !listing.iter().any(|e| &e.path == f) {
            return Err(format!(
                "file '{f}' (in 'files') does not exist in '{}' at commit {}; check the path (it is case-sensitive)",
                spec.display(),
                revision.sha
            ));
        }
    }
    let total = listing.len();
    let wanted: Vec<FileEntry> = listing.into_iter().filter(|f| spec.selection.wants(&f.path)).collect();
    if wanted.is_empty() && total > 0 {
        return Err(format!(
            "no file of '{}' at commit {} matches its include/exclude/files filters ({total} files in the repo); fix the patterns",
            spec.display(),
            revision.sha
        ));
    }
    Ok(wanted)
}
