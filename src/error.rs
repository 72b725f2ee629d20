//! The core's one error type: a kind that callers match on, a complete
//! message for the user (what, about which input, what to do), and, where a
//! caller or a test needs more than the kind, the facts as typed values.
//! Nothing decides anything by looking at a message's text; the kind crosses
//! the bridge, and the glue picks Nix's error class from it.

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

/// What went wrong, as values, for the failures whose facts matter beyond
/// the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Detail {
    #[default]
    None,
    /// A file's bytes do not hash to what the Hub lists.
    HashMismatch { file: String, algorithm: &'static str, expected: String, got: String },
    /// An element of `include`, `exclude` or `files` that cannot be used.
    Filter { attr: &'static str, element: String, problem: FilterProblem },
    /// A thread of the core panicked; `file` is what it was working on.
    Panic { file: Option<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterProblem {
    /// Two commas in a row, or a leading or trailing one.
    EmptyElement,
    /// A `files` entry that is not a plain relative path.
    NotPlainPath,
    /// A glob that does not parse.
    BadGlob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub detail: Detail,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), detail: Detail::None }
    }

    pub fn with_detail(mut self, detail: Detail) -> Error {
        self.detail = detail;
        self
    }

    pub fn interrupted() -> Error {
        Error::new(Kind::Interrupted, "interrupted by the user")
    }

    /// A local file operation on `path` that failed.
    pub fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::new(Kind::LocalIo, format!("cannot {what} {}: {e}", path.display()))
    }

    /// A panic, caught: `what` is its payload, `file` what the thread was
    /// working on, if anything.
    pub fn panic(what: &str, file: Option<&str>) -> Error {
        let on = file.map(|f| format!(" while fetching '{f}'")).unwrap_or_default();
        Error::new(Kind::Bug, format!("internal error in nix-hf{on} (please report it): {what}"))
            .with_detail(Detail::Panic { file: file.map(str::to_string) })
    }
}

/// A caught panic's payload as text.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
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
