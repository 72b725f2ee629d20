//! The core's one error type: a kind that callers match on, and a complete
//! message for the user (what, about which input, what to do). Nothing
//! decides anything by looking at a message's text; the kind crosses the
//! bridge, and the glue picks Nix's error class from it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The input as written is wrong: a typo, a bad glob, ref with rev.
    InvalidInput,
    /// The repo, revision or file does not exist (or is not visible).
    NotFound,
    /// Gated, private, or a token the Hub rejects.
    AccessDenied,
    /// No answer from the Hub at all, even after retries.
    Unreachable,
    /// The Hub kept asking to wait longer than the retry budget allows.
    RateLimited,
    /// Bytes or answers that are not what the Hub promised.
    CorruptData,
    /// The user stopped the fetch.
    Interrupted,
    /// This machine's disk or files.
    LocalIo,
    /// A broken invariant in nix-hf itself.
    Bug,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }

    pub fn interrupted() -> Error {
        Error::new(Kind::Interrupted, "interrupted by the user")
    }

    /// A local file operation on `path` that failed.
    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::new(Kind::LocalIo, format!("cannot {what} {}: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `fail!(Kind, "format", args…)` returns an `Err` of that kind.
macro_rules! fail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::Kind::$kind, format!($($arg)*)))
    };
}
pub(crate) use fail;
