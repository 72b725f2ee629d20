//! Fetching a snapshot into a directory: resolve the revision, list and
//! select the files, download them in parallel and verify every byte against
//! the hashes the Hub lists, before the caller lets anything into the store.
//!
//! Only the calling thread talks to the caller's `Observer` (Nix's logger and
//! interrupt flag are not for worker threads): workers report through atomics
//! and a queue that the calling thread drains while it waits.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::hub::{Digest, FileEntry, Hub, HubError, Revision};
use crate::spec::Spec;
use crate::verify::Verifier;

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
    pub dest: PathBuf,
    /// What the caller's cache knows: the commit of the ref (when fresh), or
    /// the date of the given rev. Avoids asking the Hub again.
    pub known: Option<Revision>,
    pub connections: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub revision: Revision,
    pub files: usize,
    pub bytes: u64,
}

/// The message the glue recognises as "stopped by the user".
pub const INTERRUPTED: &str = "interrupted by the user";

pub fn fetch(hub: &Hub, req: &Request, obs: &dyn Observer) -> Result<Outcome, String> {
    let spec = &req.spec;
    let revision = match (&spec.rev, &req.known) {
        (Some(rev), Some(k)) if &k.sha == rev => k.clone(),
        (Some(rev), _) => {
            let r = hub.revision(spec, Some(rev)).map_err(|HubError(e)| e)?;
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
        (None, None) => hub
            .revision(spec, spec.reference.as_deref())
            .map_err(|HubError(e)| e)?,
    };
    obs.check_interrupt()?;
    let listing = hub.list(spec, &revision.sha).map_err(|HubError(e)| e)?;
    let wanted = select(spec, &revision, listing)?;
    let bytes: u64 = wanted.iter().map(|f| f.size).sum();
    download_all(
        hub,
        spec,
        &revision.sha,
        &wanted,
        &req.dest,
        req.connections.max(1),
        obs,
    )?;
    Ok(Outcome {
        revision,
        files: wanted.len(),
        bytes,
    })
}

fn select(
    spec: &Spec,
    revision: &Revision,
    listing: Vec<FileEntry>,
) -> Result<Vec<FileEntry>, String> {
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
    let wanted: Vec<FileEntry> = listing
        .into_iter()
        .filter(|f| spec.selection.wants(&f.path))
        .collect();
    if wanted.is_empty() && total > 0 {
        return Err(format!(
            "no file of '{}' at commit {} matches its include/exclude/files filters ({total} files in the repo); fix the patterns",
            spec.display(),
            revision.sha
        ));
    }
    Ok(wanted)
}

struct Shared<'a> {
    files: &'a [FileEntry],
    next: AtomicUsize,
    done_bytes: AtomicU64,
    running: AtomicUsize,
    cancel: AtomicBool,
    error: Mutex<Option<String>>,
    started: Mutex<Vec<(String, u64)>>,
}

fn download_all(
    hub: &Hub,
    spec: &Spec,
    sha: &str,
    files: &[FileEntry],
    dest: &Path,
    connections: usize,
    obs: &dyn Observer,
) -> Result<(), String> {
    // Big files first, so the long transfers start early and small ones
    // fill the gaps.
    let mut order: Vec<FileEntry> = files.to_vec();
    order.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    let expected: u64 = order.iter().map(|f| f.size).sum();
    let workers = connections.min(order.len()).max(1);
    let shared = Shared {
        files: &order,
        next: AtomicUsize::new(0),
        done_bytes: AtomicU64::new(0),
        running: AtomicUsize::new(workers),
        cancel: AtomicBool::new(false),
        error: Mutex::new(None),
        started: Mutex::new(Vec::new()),
    };
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                worker(hub, spec, sha, dest, &shared);
                shared.running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        loop {
            for (path, size) in shared.started.lock().unwrap().drain(..) {
                obs.file(&path, size);
            }
            obs.progress(shared.done_bytes.load(Ordering::Relaxed), expected);
            if shared.running.load(Ordering::SeqCst) == 0 {
                break;
            }
            if let Err(e) = obs.check_interrupt() {
                shared.cancel.store(true, Ordering::SeqCst);
                shared.error.lock().unwrap().get_or_insert(e);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    match shared.error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn worker(hub: &Hub, spec: &Spec, sha: &str, dest: &Path, shared: &Shared) {
    loop {
        if shared.cancel.load(Ordering::SeqCst) {
            return;
        }
        let i = shared.next.fetch_add(1, Ordering::SeqCst);
        let Some(entry) = shared.files.get(i) else {
            return;
        };
        shared
            .started
            .lock()
            .unwrap()
            .push((entry.path.clone(), entry.size));
        if let Err(e) = download_one(hub, spec, sha, entry, dest, shared) {
            shared.cancel.store(true, Ordering::SeqCst);
            shared.error.lock().unwrap().get_or_insert(e);
            return;
        }
    }
}

fn download_one(
    hub: &Hub,
    spec: &Spec,
    sha: &str,
    entry: &FileEntry,
    dest: &Path,
    shared: &Shared,
) -> Result<(), String> {
    let target = dest.join(&entry.path);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut out =
        File::create(&target).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    let mut verifier = Verifier::new(&entry.digest, entry.size);
    let mut resp = hub
        .open(spec, sha, &entry.path, 0)
        .map_err(|HubError(e)| e)?;
    let mut buf = vec![0u8; 1 << 18];
    let mut got: u64 = 0;
    loop {
        if shared.cancel.load(Ordering::SeqCst) {
            return Err(INTERRUPTED.into());
        }
        let n = resp.read(&mut buf).map_err(|e| {
            format!(
                "downloading '{}' of '{}' failed after {got} bytes: {e}",
                entry.path,
                spec.display()
            )
        })?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > entry.size {
            return Err(format!(
                "the Hub sent more than the {} bytes listed for '{}' of '{}'; refusing it",
                entry.size,
                entry.path,
                spec.display()
            ));
        }
        verifier.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        shared.done_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    if got != entry.size {
        return Err(format!(
            "'{}' of '{}' arrived truncated: {got} of {} bytes",
            entry.path,
            spec.display(),
            entry.size
        ));
    }
    verifier.finish().map_err(|(want, have)| {
        let algo = match entry.digest {
            Digest::GitSha1(_) => "git blob sha1",
            Digest::Sha256(_) => "sha256",
        };
        format!(
            "'{}' of '{}' is corrupt: expected {algo} {want}, got {have}; nothing was added to the store",
            entry.path,
            spec.display()
        )
    })
}
