//! What every layer of the core shares: the Hub's address, the commit a ref
//! points to, a listed file and the hash it must have, what the core reports
//! upward, and the flag that stops a fetch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The Hugging Face Hub: the endpoint when nothing names another, and the
/// one Hub (besides the user's own HF_ENDPOINT) that tokens naming no host
/// may go to.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The commit a ref points to, and its date (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub sha: String,
    pub last_modified: u64,
}

/// What a file must hash to: LFS files by sha256 of their content, others by
/// the git blob sha1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Digest {
    GitSha1(String),
    Sha256(String),
}

impl Digest {
    pub fn hex(&self) -> &str {
        match self {
            Digest::GitSha1(h) | Digest::Sha256(h) => h,
        }
    }

    pub fn algorithm(&self) -> &'static str {
        match self {
            Digest::GitSha1(_) => "git blob sha1",
            Digest::Sha256(_) => "sha256",
        }
    }
}

/// A file of a snapshot as the Hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

impl FileEntry {
    pub fn content_key(&self) -> String {
        content_key(&self.digest, self.size)
    }
}

/// Names a content: equal keys, equal bytes. Partial downloads and the
/// snapshot index are keyed by it.
pub fn content_key(digest: &Digest, size: u64) -> String {
    format!("{}-{size}", digest.hex())
}

/// What the core reports upward and asks of its caller. Only the thread
/// that called into the core talks to it.
pub trait Observer {
    /// True once the user asked to stop (Ctrl-C).
    fn interrupted(&self) -> bool;
    fn progress(&self, done: u64, expected: u64);
    /// A file download begins (shown with -v).
    fn file(&self, path: &str, size: u64);
}

impl dyn Observer + '_ {
    /// `Err(Interrupted)` once the user asked to stop.
    pub fn check(&self) -> Result<()> {
        if self.interrupted() {
            return Err(Error::interrupted());
        }
        Ok(())
    }
}

/// Set once a fetch must stop (the user pressed Ctrl-C, or one part of it
/// failed), for threads that cannot ask the `Observer`.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
