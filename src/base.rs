//! What every layer of the core shares: the Hub's address, a commit id and
//! the revision a ref points to, a listed file and the hash it must have,
//! and what the core reports upward.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

/// The Hugging Face Hub: the endpoint when nothing names another, and the
/// one Hub (besides the user's own HF_ENDPOINT) that tokens naming no host
/// may go to.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Whether a switch in the environment is on, as the official client reads
/// its own (`HF_HUB_DISABLE_XET`, …): 1, on, yes or true, in any case.
pub fn env_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| ["1", "on", "yes", "true"].contains(&v.trim().to_ascii_lowercase().as_str()))
}

/// A commit id: 40 hexadecimal digits, lowercase. Checked, and lowercased,
/// once, where it enters the core (an input, the Hub's answer, the glue's
/// cache); everything after compares these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(String);

impl CommitId {
    pub fn parse(s: &str) -> Option<CommitId> {
        (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| CommitId(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The commit a ref points to, and its date (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub sha: CommitId,
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
    /// Where the file is stored in Xet, when it is (`xetHash`).
    pub xet: Option<XetHash>,
}

/// A Xet hash: a chunk's, a xorb's or a file's (see `xet`). Written as four
/// little-endian 64-bit words, each as 16 hex digits: the Xet spec's order,
/// not the bytes'.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XetHash(pub [u8; 32]);

impl XetHash {
    pub fn parse(s: &str) -> Option<XetHash> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut b = [0u8; 32];
        for i in 0..4 {
            let w = u64::from_str_radix(&s[16 * i..16 * i + 16], 16).ok()?;
            b[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        Some(XetHash(b))
    }

    fn word(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[8 * i..8 * i + 8].try_into().expect("8 bytes"))
    }

    pub fn last_word(&self) -> u64 {
        self.word(3)
    }
}

impl fmt::Display for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (0..4).try_for_each(|i| write!(f, "{:016x}", self.word(i)))
    }
}

impl fmt::Debug for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FileEntry {
    /// A regular file: in git itself, not in LFS (the Hub names it by its
    /// git blob hash).
    pub fn is_regular(&self) -> bool {
        matches!(self.digest, Digest::GitSha1(_))
    }

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
    /// How the fetch goes about it (shown with -v).
    fn note(&self, message: &str);
}

/// Percent-encodes every byte of `s` but unreserved characters (RFC 3986:
/// letters, digits, `-._~`) and those in `keep`.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Locks `m` whether or not a thread panicked while holding it: a panic is
/// caught and reported as the fetch's error (see `work`), and what it left
/// behind is only read on the way out.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
