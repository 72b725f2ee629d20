//! One snapshot fetched by the program: the plugin's fetch (`fetch::start`,
//! the same engine, retries, resume and verification) into a partial
//! directory under the program's cache dir, ending in a verified tree and
//! its NAR hash. The tree then goes to OUT, whole or not at all, or is
//! dropped once hashed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::args::Global;
use super::terminal::Progress;
use crate::base::{Observer, Revision};
use crate::download::Output;
use crate::error::{fail, Error, Result};
use crate::fetch;
use crate::hub::Hub;
use crate::nixpath;
use crate::spec::Spec;
use crate::work::Work;

/// The Hub, and how the program fetches from it.
pub struct Fetcher {
    hub: Arc<Hub>,
    connections: usize,
    partial_root: PathBuf,
    verbose: bool,
    pub store_dir: String,
}

/// A verified snapshot in its partial directory, which it holds locked.
pub struct Fetched {
    /// The input at its commit, dated.
    pub locked: Spec,
    pub revision: Revision,
    pub nar_sha256: [u8; 32],
    pub files: usize,
    pub bytes: u64,
    tree: PathBuf,
    started: fetch::Started,
}

impl Fetcher {
    pub fn new(g: &Global) -> Result<Fetcher> {
        let hub = fetch::connect(&fetch::Connection {
            endpoint: g.endpoint.as_deref().unwrap_or(""),
            access_tokens: None,
            token_file: g.token_file.as_deref().unwrap_or(""),
            stall_timeout: g.stall_timeout,
            retries: g.retries,
            retry_time: g.retry_time,
            ca_file: g.ca_file.as_deref().unwrap_or(""),
        })?;
        let cache = g.cache_dir.clone().unwrap_or_else(|| default_cache_dir(&|k| std::env::var(k).ok()));
        Ok(Fetcher {
            hub,
            connections: g.connections as usize,
            partial_root: cache.join("partial"),
            verbose: g.verbose,
            store_dir: g.store_dir.clone(),
        })
    }

    /// The commit `spec`'s ref (or rev) points to now, and its date.
    pub fn resolve(&self, spec: &Spec) -> Result<Revision> {
        let work = Work::new();
        let progress = Progress::new(&spec.display(), self.verbose);
        let (hub, spec, w) = (self.hub.clone(), spec.clone(), work.clone());
        let task = work.task("hf-resolve", move || {
            let rev = spec.rev.as_ref().map(|r| r.to_string()).or(spec.reference.clone());
            hub.revision(&spec, rev.as_deref(), &w)
        });
        work.pump(&progress, &|| !task.pending(), &|| false, &|_| {})?;
        Ok(task.take().expect("the revision is there"))
    }

    /// Fetches and verifies `spec` (at `known`, when the caller resolved it)
    /// into a partial directory under the cache dir.
    pub fn fetch(&self, spec: &Spec, known: Option<Revision>) -> Result<Fetched> {
        self.fetch_in(spec, known, &self.partial_root.clone())
    }

    /// Fetches `spec` into a partial directory under `partial_root`.
    pub fn fetch_in(&self, spec: &Spec, known: Option<Revision>, partial_root: &Path) -> Result<Fetched> {
        let work = Work::new();
        let progress = Progress::new(&spec.display(), self.verbose);
        let request = fetch::Request {
            spec: spec.clone(),
            partial_root: partial_root.to_path_buf(),
            // The program knows no store to take unchanged files from; the
            // official client's cache it does use (HF_HOME).
            index_root: None,
            known,
            connections: self.connections,
            output: Output::Tree,
            keep: true,
        };
        let (started, transfer) = fetch::start(self.hub.clone(), request, &work, &progress as &dyn Observer)?;
        let done = transfer.wait(&progress)?;
        progress.clear();
        let locked = spec.locked(&started.revision);
        Ok(Fetched {
            locked,
            revision: started.revision.clone(),
            nar_sha256: done.nar_sha256,
            files: started.files,
            bytes: started.bytes,
            tree: done.tree,
            started,
        })
    }
}

impl Fetched {
    pub fn nar_hash(&self) -> String {
        nixpath::sri(&self.nar_sha256)
    }

    /// The store path Nix gives this snapshot: the plugin's, and that of a
    /// fixed-output derivation with its NAR hash.
    pub fn store_path(&self, store_dir: &str) -> String {
        nixpath::fixed_output_path(store_dir, nixpath::SOURCE, &self.nar_sha256)
    }

    /// Makes the tree the directory `out`, whole: moved there when on the
    /// same file system, else copied beside it first and then renamed.
    pub fn into(self, out: &Path) -> Result<()> {
        match fs::rename(&self.tree, out) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                let staging = staging_for(out);
                let _ = fs::remove_dir_all(&staging);
                let copied = copy_tree(&self.tree, &staging)
                    .and_then(|()| fs::rename(&staging, out).map_err(|e| Error::io("move the snapshot to", out, e)));
                if let Err(e) = copied {
                    // Nothing of a copy that failed (a full disk) stays
                    // beside OUT; the verified tree stays for the next try.
                    let _ = fs::remove_dir_all(&staging);
                    return Err(e);
                }
            }
            Err(e) => return Err(Error::io("move the snapshot to", out, e)),
        }
        self.discard();
        Ok(())
    }

    /// Moves the tree's entries into `out`, a directory that holds the
    /// partial directory (a Nix build's output, written once: see `fetch`).
    pub fn into_holder(self, out: &Path, partial_root: &Path) -> Result<()> {
        let entries = fs::read_dir(&self.tree).map_err(|e| Error::io("read", &self.tree, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.tree, e))?;
            let target = out.join(entry.file_name());
            if target == partial_root {
                fail!(
                    LocalIo,
                    "the snapshot has a file named like nix-hf's partial directory ('{}'); fetch it with --cache-dir",
                    target.display()
                );
            }
            fs::rename(entry.path(), &target).map_err(|e| Error::io("move the snapshot to", &target, e))?;
        }
        drop(self);
        fs::remove_dir_all(partial_root).map_err(|e| Error::io("remove", partial_root, e))
    }

    /// Removes the partial directory (and with it the tree, unless moved).
    pub fn discard(self) {
        let _ = fs::remove_dir_all(&self.started.dir);
    }
}

/// Where a copy to `out` is made before it becomes `out`: beside it, so the
/// last step is a rename on one file system.
fn staging_for(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!(".{name}.nix-hf-partial"))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(|e| Error::io("create", to, e))?;
    for entry in fs::read_dir(from).map_err(|e| Error::io("read", from, e))? {
        let entry = entry.map_err(|e| Error::io("read", from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| Error::io("read", &src, e))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| Error::io("copy the snapshot to", &dst, e))?;
        }
    }
    Ok(())
}

/// Refuses an OUT that exists or whose parent does not, before anything is
/// fetched.
pub fn check_out(out: &Path) -> Result<()> {
    if out.symlink_metadata().is_ok() {
        fail!(
            LocalIo,
            "'{}' already exists; nix-hf fetch makes a new directory there, so remove it or choose another",
            out.display()
        );
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        fail!(LocalIo, "cannot make '{}': its parent directory '{}' does not exist", out.display(), parent.display());
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/nix-hf`, else `~/.cache/nix-hf`; in a Nix build, whose
/// HOME does not exist, the build's temporary directory (kept only as long
/// as the build).
pub fn default_cache_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let home = env("HOME").map(PathBuf::from).filter(|h| h.is_dir());
    env("XDG_CACHE_HOME")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".cache")))
        .or_else(|| env("NIX_BUILD_TOP").or_else(|| env("TMPDIR")).map(PathBuf::from))
        .unwrap_or_else(std::env::temp_dir)
        .join("nix-hf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_dir_is_the_users_else_the_builds() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(default_cache_dir(&env(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/")])), PathBuf::from("/c/nix-hf"));
        assert_eq!(default_cache_dir(&env(&[("HOME", "/")])), PathBuf::from("/.cache/nix-hf"));
        let build = env(&[("HOME", "/homeless-shelter"), ("NIX_BUILD_TOP", "/build")]);
        assert_eq!(default_cache_dir(&build), PathBuf::from("/build/nix-hf"));
    }
}
