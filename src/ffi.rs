//! The one seam between the Rust core and the C++ glue. Only plain data
//! crosses it: attributes as tagged values, strings, numbers. Every Rust
//! entry point runs under `guard`, so a panic becomes an error the glue
//! rethrows as a Nix error instead of unwinding into C++.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::fetch::{self, Observer};
use crate::hub::{self, Hub, HubError, Revision};
use crate::spec::{self, Spec, SpecError};
use crate::token;

#[cxx::bridge(namespace = "nixhf")]
mod bridge {
    enum AttrKind {
        Str,
        Int,
        Bool,
    }

    /// One entry of a Nix `fetchers::Attrs`.
    struct Attr {
        name: String,
        kind: AttrKind,
        str_value: String,
        int_value: u64,
        bool_value: bool,
    }

    /// A URL query parameter, already percent-decoded.
    struct Param {
        name: String,
        value: String,
    }

    /// An attribute an hf input accepts, documented (Nix's AttributeInfo).
    struct AttrInfo {
        name: String,
        type_name: String,
        required: bool,
        doc: String,
    }

    struct UrlParts {
        path: String,
        query: Vec<Param>,
    }

    /// What the glue knows that the core needs for a fetch.
    struct FetchRequest {
        attrs: Vec<Attr>,
        /// The hf-endpoint setting; empty means HF_ENDPOINT or the Hub.
        endpoint_setting: String,
        /// Nix's access-tokens setting (host -> token).
        access_tokens: Vec<Param>,
        /// Where partial snapshots live (under Nix's cache dir).
        partial_root: String,
        /// From Nix's fetcher cache: the ref's commit while fresh, or the
        /// given rev's date; empty / 0 when unknown.
        known_rev: String,
        known_last_modified: u64,
        connections: u32,
        /// Seconds a read or connect may wait before the transfer retries.
        stall_timeout: u32,
        /// Attempts per request before giving up.
        retries: u32,
        /// Nix's ssl-cert-file: the CA certificates to trust (empty: the system's).
        ca_file: String,
    }

    struct FetchOutcome {
        rev: String,
        last_modified: u64,
        files: u64,
        bytes: u64,
        /// The verified snapshot, to move into the store.
        tree: String,
        /// Its NAR serialisation: SHA-256 (hex) and size.
        nar_sha256: String,
        nar_size: u64,
        /// The partial directory to remove once the tree is in the store.
        partial_dir: String,
        /// Opaque: held until the glue is done with the tree.
        lock_fd: i32,
        /// Bytes taken from this machine rather than the network.
        reused_bytes: u64,
        /// The snapshot's files by content (JSON), for remember_snapshot.
        manifest: String,
    }

    unsafe extern "C++" {
        include!("bridge.hh");
        type FetchContext;
        fn check_interrupt(self: &FetchContext) -> Result<()>;
        fn progress(self: &FetchContext, done: u64, expected: u64);
        fn file_started(self: &FetchContext, path: &str, size: u64);
    }

    extern "Rust" {
        /// The endpoint a fetch uses (setting, HF_ENDPOINT, or the Hub).
        fn endpoint(setting: &str) -> String;
        /// Downloads and verifies the snapshot into a partial directory
        /// under `partial_root`, returning the tree and its NAR hash.
        fn fetch_snapshot(req: &FetchRequest, ctx: &FetchContext) -> Result<FetchOutcome>;
        /// Records that `store_path` (a real path) holds `manifest`, so later
        /// snapshots of the repo take unchanged files from it.
        fn remember_snapshot(req: &FetchRequest, store_path: &str, manifest: &str) -> Result<()>;
        /// Whether an error says the Hub could not be reached at all.
        fn is_unreachable(message: &str) -> bool;
        fn scheme_name() -> &'static str;
        fn scheme_description() -> &'static str;
        fn input_attributes() -> Vec<AttrInfo>;
        /// `path` and `query` of an `hf:` URL as Nix parsed them; `shown` is
        /// the whole URL for messages. Returns canonical attributes.
        fn input_from_url(path: &str, query: &Vec<Param>, shown: &str) -> Result<Vec<Attr>>;
        /// Checks attributes and returns them in canonical form.
        fn input_from_attrs(attrs: &Vec<Attr>) -> Result<Vec<Attr>>;
        fn input_to_url(attrs: &Vec<Attr>) -> Result<UrlParts>;
        /// Empty when the input has no rev yet.
        fn input_fingerprint(attrs: &Vec<Attr>) -> Result<String>;
        /// Joins a Nix list into the one string an attribute can hold.
        fn encode_list(items: &Vec<String>) -> String;
    }
}

pub use bridge::{Attr, AttrInfo, AttrKind, FetchContext, FetchOutcome, FetchRequest, Param, UrlParts};

/// Runs `f`, turning a panic into an error naming it as a bug.
fn guard<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("internal error in nix-hf (please report it): {what}"))
        }
    }
}

fn to_spec_attrs(attrs: &[Attr]) -> spec::Attrs {
    attrs
        .iter()
        .map(|a| {
            let v = match a.kind {
                AttrKind::Int => spec::Value::Int(a.int_value),
                AttrKind::Bool => spec::Value::Bool(a.bool_value),
                _ => spec::Value::Str(a.str_value.clone()),
            };
            (a.name.clone(), v)
        })
        .collect()
}

fn from_spec_attrs(attrs: &spec::Attrs) -> Vec<Attr> {
    attrs
        .iter()
        .map(|(name, v)| {
            let mut a = Attr {
                name: name.clone(),
                kind: AttrKind::Str,
                str_value: String::new(),
                int_value: 0,
                bool_value: false,
            };
            match v {
                spec::Value::Str(s) => a.str_value = s.clone(),
                spec::Value::Int(n) => (a.kind, a.int_value) = (AttrKind::Int, *n),
                spec::Value::Bool(b) => (a.kind, a.bool_value) = (AttrKind::Bool, *b),
            }
            a
        })
        .collect()
}

fn parse(attrs: &[Attr]) -> Result<Spec, String> {
    Spec::from_attrs(&to_spec_attrs(attrs)).map_err(|SpecError(e)| e)
}

fn scheme_name() -> &'static str {
    spec::SCHEME
}

fn scheme_description() -> &'static str {
    spec::DESCRIPTION
}

fn input_attributes() -> Vec<AttrInfo> {
    spec::ATTRIBUTES
        .iter()
        .map(|a| AttrInfo {
            name: a.name.into(),
            type_name: a.type_name.into(),
            required: a.required,
            doc: a.doc.into(),
        })
        .collect()
}

fn input_from_url(path: &str, query: &Vec<Param>, shown: &str) -> Result<Vec<Attr>, String> {
    guard(|| {
        let q: Vec<(String, String)> = query.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
        let s = Spec::from_url(path, &q, shown).map_err(|SpecError(e)| e)?;
        Ok(from_spec_attrs(&s.to_attrs()))
    })
}

fn input_from_attrs(attrs: &Vec<Attr>) -> Result<Vec<Attr>, String> {
    guard(|| Ok(from_spec_attrs(&parse(attrs)?.to_attrs())))
}

fn input_to_url(attrs: &Vec<Attr>) -> Result<UrlParts, String> {
    guard(|| {
        let (path, query) = parse(attrs)?.to_url();
        Ok(UrlParts { path, query: query.into_iter().map(|(name, value)| Param { name, value }).collect() })
    })
}

fn encode_list(items: &Vec<String>) -> String {
    crate::select::encode_list(items)
}

fn input_fingerprint(attrs: &Vec<Attr>) -> Result<String, String> {
    guard(|| Ok(parse(attrs)?.fingerprint().unwrap_or_default()))
}

fn endpoint(setting: &str) -> String {
    hub::endpoint_from(setting, std::env::var("HF_ENDPOINT").ok())
}

impl Observer for FetchContext {
    fn check_interrupt(&self) -> Result<(), String> {
        FetchContext::check_interrupt(self).map_err(|_| fetch::INTERRUPTED.to_string())
    }

    fn progress(&self, done: u64, expected: u64) {
        FetchContext::progress(self, done, expected)
    }

    fn file(&self, path: &str, size: u64) {
        self.file_started(path, size)
    }
}

fn fetch_snapshot(req: &FetchRequest, ctx: &FetchContext) -> Result<FetchOutcome, String> {
    guard(|| {
        let spec = parse(&req.attrs)?;
        let endpoint = endpoint(&req.endpoint_setting);
        let tokens: Vec<(String, String)> =
            req.access_tokens.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
        let host = hub::endpoint_host(&endpoint).unwrap_or_default();
        let token = token::find(&host, &tokens, &|k| std::env::var(k).ok());
        let stall = std::time::Duration::from_secs(req.stall_timeout.max(1) as u64);
        let policy = crate::retry::Policy { attempts: req.retries.max(1) };
        let hub = std::sync::Arc::new(
            Hub::new(&endpoint, token, stall, policy, Some(&req.ca_file)).map_err(|HubError(e)| e)?,
        );
        let known = (!req.known_rev.is_empty())
            .then(|| Revision { sha: req.known_rev.clone(), last_modified: req.known_last_modified });
        let request = fetch::Request {
            spec,
            partial_root: req.partial_root.clone().into(),
            known,
            connections: req.connections as usize,
        };
        let out = fetch::fetch(hub, &request, ctx)?;
        let hex = crate::verify::hex(&out.transferred.nar_sha256);
        Ok(FetchOutcome {
            rev: out.revision.sha,
            last_modified: out.revision.last_modified,
            files: out.files as u64,
            bytes: out.bytes,
            tree: out.transferred.tree.display().to_string(),
            nar_sha256: hex,
            nar_size: out.transferred.nar_size,
            partial_dir: out.dir.display().to_string(),
            lock_fd: std::os::fd::IntoRawFd::into_raw_fd(out.lock),
            reused_bytes: out.transferred.reused_bytes,
            manifest: out.manifest.to_string(),
        })
    })
}

fn is_unreachable(message: &str) -> bool {
    message.starts_with(hub::UNREACHABLE)
}

fn remember_snapshot(req: &FetchRequest, store_path: &str, manifest: &str) -> Result<(), String> {
    guard(|| {
        let spec = parse(&req.attrs)?;
        let manifest = serde_json::from_str(manifest).map_err(|e| e.to_string())?;
        let root = fetch::index_root(std::path::Path::new(&req.partial_root));
        crate::donors::remember(&root, &spec, store_path, manifest)
            .map_err(|e| format!("cannot update the snapshot index: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_not_an_unwind() {
        let r: Result<(), String> = guard(|| panic!("boom"));
        assert_eq!(r.unwrap_err(), "internal error in nix-hf (please report it): boom");
        let r: Result<(), String> = guard(|| panic!("{}", String::from("formatted")));
        assert!(r.unwrap_err().ends_with("formatted"));
    }
}
