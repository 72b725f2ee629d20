//! The one seam between the Rust core and the C++ glue. Only plain data
//! crosses it: attributes as tagged values, strings, numbers, failures as a
//! kind and a message, and one opaque type, `Fetch`, that owns what a fetch
//! holds until the glue is done with it (its lock, its list of files).
//! Every fallible entry point fills a `Failure` (the glue throws the Nix
//! error its kind calls for) and runs under `guard`, so a panic becomes a
//! `Bug` instead of unwinding into C++; the C++ functions the core calls
//! back never throw (cpp/bridge.hh).

// The bridge takes `&Vec<T>` because the glue holds `rust::Vec`s; cxx's
// `&[T]` would have it convert each one at every call.
#![allow(clippy::ptr_arg)]

use std::path::PathBuf;
use std::sync::Arc;

use crate::base::{Observer, Revision};
use crate::cache;
use crate::download::{NarStream, Output, Transfer};
use crate::error::{Error, Kind, Result};
use crate::fetch;
use crate::hub::{self, Hub};
use crate::spec::{self, Spec};
use crate::work::{self, Work};

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

    /// A name and a value: a URL query parameter (percent-decoded), an
    /// access-tokens entry, a cache key's field.
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

    #[derive(Default)]
    struct UrlParts {
        path: String,
        query: Vec<Param>,
    }

    /// What kind of failure (error::Kind): the glue picks Nix's error class
    /// from it, and falls back to a cached commit on `Unreachable`.
    enum ErrorKind {
        InvalidInput,
        NotFound,
        AccessDenied,
        Unreachable,
        RateLimited,
        CorruptData,
        Interrupted,
        LocalIo,
        Bug,
    }

    /// Filled in by a call that failed; its result is then meaningless.
    struct Failure {
        failed: bool,
        kind: ErrorKind,
        /// Complete: the glue adds nothing but Nix's `error: `.
        message: String,
    }

    /// What the glue knows that the core needs for a fetch.
    struct FetchRequest {
        attrs: Vec<Attr>,
        /// The hf-endpoint setting; empty means HF_ENDPOINT or the Hub.
        endpoint_setting: String,
        /// Nix's access-tokens setting (host -> token).
        access_tokens: Vec<Param>,
        /// The hf-token-file setting; empty when unset.
        token_file: String,
        /// Where partial snapshots live (under Nix's cache dir).
        partial_root: String,
        /// From Nix's fetcher cache: the ref's commit while fresh, or the
        /// given rev's date; empty / 0 when unknown.
        known_rev: String,
        known_last_modified: u64,
        connections: u32,
        /// Seconds a read or connect may wait before the attempt fails.
        stall_timeout: u32,
        /// A request's budget: attempts, and seconds in all.
        retries: u32,
        retry_time: u32,
        /// Nix's ssl-cert-file: the CA certificates to trust (empty: the system's).
        ca_file: String,
        /// The glue streams the NAR into its store (`next_nar`) rather than
        /// moving a tree there (`wait_tree`).
        stream: bool,
        /// For a stream: keep what arrives on disk here too, so that an
        /// interrupted fetch resumes.
        keep: bool,
    }

    /// A fetch under way, once its commit and files are known.
    #[derive(Default)]
    struct FetchStarted {
        /// The locked input's attributes (commit, date; no ref).
        locked: Vec<Attr>,
        files: u64,
        bytes: u64,
        /// The size of the snapshot's NAR.
        nar_size: u64,
        /// Bytes taken from this machine rather than the network.
        reused_bytes: u64,
    }

    /// A fetched tree.
    #[derive(Default)]
    struct FetchedTree {
        /// The verified snapshot, to move into the store.
        tree: String,
        /// Its NAR serialisation: SHA-256 (hex) and size.
        nar_sha256: String,
        nar_size: u64,
    }

    /// The defaults of the plugin's settings (hf-connections, …).
    struct SettingDefaults {
        connections: u32,
        stall_timeout: u32,
        retries: u32,
        retry_time: u32,
    }

    /// A snapshot to put into a Hugging Face cache (builtins.hfHubCache).
    struct CacheSnapshot {
        key: String,
        rev: String,
        refs: Vec<String>,
        path: String,
    }

    /// An entry of the cache: a file and its content, or a link and its target.
    struct CacheEntry {
        path: String,
        is_link: bool,
        value: String,
    }

    unsafe extern "C++" {
        include!("bridge.hh");
        type FetchContext;
        fn interrupted(self: &FetchContext) -> bool;
        fn progress(self: &FetchContext, done: u64, expected: u64);
        fn file_started(self: &FetchContext, path: &str, size: u64);
        fn note(self: &FetchContext, message: &str);
    }

    extern "Rust" {
        /// A fetch of one snapshot, from its request to the store. Dropping
        /// it releases the partial directory's lock.
        type Fetch;
        /// Stops a fetch from another thread (Nix's interrupt callback)
        /// while the fetch itself is busy on the caller's.
        type Interrupter;

        fn scheme_name() -> &'static str;
        fn setting_defaults() -> SettingDefaults;
        fn scheme_description() -> &'static str;
        fn input_attributes() -> Vec<AttrInfo>;
        /// builtins.fetchHuggingFace's string argument as an `hf:` URL.
        fn primop_url(arg: &str) -> String;
        /// `path` and `query` of an `hf:` URL as Nix parsed them; `shown` is
        /// the whole URL for messages. Returns canonical attributes.
        fn input_from_url(path: &str, query: &Vec<Param>, shown: &str, failure: &mut Failure) -> Vec<Attr>;
        /// Checks attributes and returns them in canonical form.
        fn input_from_attrs(attrs: &Vec<Attr>, failure: &mut Failure) -> Vec<Attr>;
        fn input_to_url(attrs: &Vec<Attr>, failure: &mut Failure) -> UrlParts;
        /// Empty when the input has no rev yet.
        fn input_fingerprint(attrs: &Vec<Attr>, failure: &mut Failure) -> String;
        /// A ref (`has_ref`) or a commit (`has_rev`) in place of the input's.
        fn input_with_override(
            attrs: &Vec<Attr>,
            has_ref: bool,
            reference: &str,
            has_rev: bool,
            rev: &str,
            failure: &mut Failure,
        ) -> Vec<Attr>;
        /// The input at `rev`, dated: what the scheme returns and flake.lock records.
        fn input_locked(attrs: &Vec<Attr>, rev: &str, last_modified: u64, failure: &mut Failure) -> Vec<Attr>;
        /// The fetcher-cache key of the commit the input's ref points to.
        fn ref_cache_key(attrs: &Vec<Attr>, endpoint_setting: &str, failure: &mut Failure) -> Vec<Param>;
        /// The fetcher-cache key of a commit's date.
        fn rev_cache_key(attrs: &Vec<Attr>, rev: &str, failure: &mut Failure) -> Vec<Param>;
        /// Joins a Nix list into the one string an attribute can hold.
        fn encode_list(items: &Vec<String>) -> String;
        /// A fetch of the snapshot `req` asks for; checks the request, but
        /// sends nothing yet.
        fn new_fetch(req: &FetchRequest, failure: &mut Failure) -> Box<Fetch>;
        /// What stops the fetch, for another thread: the Fetch itself is
        /// borrowed by whichever call is waiting.
        fn interrupter(self: &Fetch) -> Box<Interrupter>;
        /// Stops the fetch at once. For Nix's interrupt callback: any thread.
        fn interrupt(self: &Interrupter);
        /// Resolves, lists and starts downloading and verifying the
        /// snapshot (into a partial directory under `partial_root`). Once
        /// only; then `wait_tree` or, for a stream, `next_nar`.
        fn run(self: &mut Fetch, ctx: &FetchContext, failure: &mut Failure) -> FetchStarted;
        /// Waits for the verified tree and its NAR hash.
        fn wait_tree(self: &mut Fetch, ctx: &FetchContext, failure: &mut Failure) -> FetchedTree;
        /// The next bytes of the snapshot's NAR, waiting for them, lent
        /// until the next call (so that Nix's small reads copy from them
        /// without a call each); empty at its end, which comes only once
        /// every file is verified. (Unsafe only as cxx spells a borrow
        /// from the Fetch: C++ must not keep the bytes past the next call.)
        unsafe fn next_nar<'a>(self: &'a mut Fetch, ctx: &FetchContext, failure: &mut Failure) -> &'a [u8];
        /// The snapshot is in the store at `store_path` (a real path): the
        /// partial directory goes, and later snapshots of the repo may take
        /// unchanged files from this one.
        fn stored(self: &mut Fetch, store_path: &str, failure: &mut Failure);
        /// The files and links of a Hugging Face cache of `snapshots`.
        fn hub_cache_layout(snapshots: &Vec<CacheSnapshot>, failure: &mut Failure) -> Vec<CacheEntry>;
    }
}

pub use bridge::{
    Attr, AttrInfo, AttrKind, CacheEntry, CacheSnapshot, ErrorKind, Failure, FetchContext, FetchRequest, FetchStarted,
    FetchedTree, Param, SettingDefaults, UrlParts,
};

impl From<Kind> for ErrorKind {
    fn from(k: Kind) -> ErrorKind {
        match k {
            Kind::InvalidInput => ErrorKind::InvalidInput,
            Kind::NotFound => ErrorKind::NotFound,
            Kind::AccessDenied => ErrorKind::AccessDenied,
            Kind::Unreachable => ErrorKind::Unreachable,
            Kind::RateLimited => ErrorKind::RateLimited,
            Kind::CorruptData => ErrorKind::CorruptData,
            Kind::Interrupted => ErrorKind::Interrupted,
            Kind::LocalIo => ErrorKind::LocalIo,
            Kind::Bug => ErrorKind::Bug,
        }
    }
}

/// Runs `f`, reporting an error or a panic (as a bug) in `failure`.
fn guard<T: Default>(failure: &mut Failure, f: impl FnOnce() -> Result<T>) -> T {
    match work::guarded(f) {
        Ok(v) => v,
        Err(e) => {
            *failure = Failure { failed: true, kind: e.kind.into(), message: e.message };
            T::default()
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

fn from_spec(spec: &Spec) -> Vec<Attr> {
    spec.to_attrs()
        .into_iter()
        .map(|(name, v)| {
            let mut a = Attr { name, kind: AttrKind::Str, str_value: String::new(), int_value: 0, bool_value: false };
            match v {
                spec::Value::Str(s) => a.str_value = s,
                spec::Value::Int(n) => (a.kind, a.int_value) = (AttrKind::Int, n),
                spec::Value::Bool(b) => (a.kind, a.bool_value) = (AttrKind::Bool, b),
            }
            a
        })
        .collect()
}

fn params(pairs: Vec<(String, String)>) -> Vec<Param> {
    pairs.into_iter().map(|(name, value)| Param { name, value }).collect()
}

fn pairs(params: &[Param]) -> Vec<(String, String)> {
    params.iter().map(|p| (p.name.clone(), p.value.clone())).collect()
}

fn parse(attrs: &[Attr]) -> Result<Spec> {
    Spec::from_attrs(&to_spec_attrs(attrs))
}

fn scheme_name() -> &'static str {
    spec::SCHEME
}

fn setting_defaults() -> SettingDefaults {
    let d = fetch::DEFAULTS;
    SettingDefaults {
        connections: d.connections,
        stall_timeout: d.stall_timeout,
        retries: d.retries,
        retry_time: d.retry_time,
    }
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

fn primop_url(arg: &str) -> String {
    spec::url_of_arg(arg)
}

fn input_from_url(path: &str, query: &Vec<Param>, shown: &str, failure: &mut Failure) -> Vec<Attr> {
    guard(failure, || Ok(from_spec(&Spec::from_url(path, &pairs(query), shown)?)))
}

fn input_from_attrs(attrs: &Vec<Attr>, failure: &mut Failure) -> Vec<Attr> {
    guard(failure, || Ok(from_spec(&parse(attrs)?)))
}

fn input_to_url(attrs: &Vec<Attr>, failure: &mut Failure) -> UrlParts {
    guard(failure, || {
        let (path, query) = parse(attrs)?.to_url();
        Ok(UrlParts { path, query: params(query) })
    })
}

fn input_fingerprint(attrs: &Vec<Attr>, failure: &mut Failure) -> String {
    guard(failure, || Ok(parse(attrs)?.fingerprint().unwrap_or_default()))
}

fn input_with_override(
    attrs: &Vec<Attr>,
    has_ref: bool,
    reference: &str,
    has_rev: bool,
    rev: &str,
    failure: &mut Failure,
) -> Vec<Attr> {
    guard(failure, || {
        Ok(from_spec(&parse(attrs)?.with_override(has_ref.then_some(reference), has_rev.then_some(rev))?))
    })
}

fn input_locked(attrs: &Vec<Attr>, rev: &str, last_modified: u64, failure: &mut Failure) -> Vec<Attr> {
    guard(failure, || {
        let spec = parse(attrs)?;
        let sha = spec::check_rev(rev, &spec.display())?;
        Ok(from_spec(&spec.locked(&Revision { sha, last_modified })))
    })
}

fn endpoint(setting: &str) -> String {
    hub::endpoint_from(setting, std::env::var("HF_ENDPOINT").ok())
}

fn ref_cache_key(attrs: &Vec<Attr>, endpoint_setting: &str, failure: &mut Failure) -> Vec<Param> {
    guard(failure, || Ok(params(parse(attrs)?.ref_cache_key(&endpoint(endpoint_setting)))))
}

fn rev_cache_key(attrs: &Vec<Attr>, rev: &str, failure: &mut Failure) -> Vec<Param> {
    guard(failure, || {
        let spec = parse(attrs)?;
        Ok(params(spec.rev_cache_key(&spec::check_rev(rev, &spec.display())?)))
    })
}

fn encode_list(items: &Vec<String>) -> String {
    crate::select::encode_list(items)
}

impl Observer for FetchContext {
    fn interrupted(&self) -> bool {
        FetchContext::interrupted(self)
    }

    fn progress(&self, done: u64, expected: u64) {
        FetchContext::progress(self, done, expected)
    }

    fn file(&self, path: &str, size: u64) {
        self.file_started(path, size)
    }

    fn note(&self, message: &str) {
        FetchContext::note(self, message)
    }
}

/// A fetch from its request to the store: set up by `new_fetch`, run once,
/// waited for (a tree) or read (a stream), and kept, with its partial
/// directory's lock, until the snapshot is stored. Dropping it stops the
/// fetch's threads.
#[derive(Default)]
pub struct Fetch {
    work: Work,
    /// What `run` needs; None once it ran, or when the request was refused.
    ready: Option<(Arc<Hub>, fetch::Request)>,
    spec: Option<Spec>,
    /// What `run` started, until `stored`.
    started: Option<fetch::Started>,
    /// The transfer `run` started, until waited for or read as a stream.
    transfer: Option<Transfer>,
    stream: Option<NarStream>,
    partial_root: PathBuf,
}

fn new_fetch(req: &FetchRequest, failure: &mut Failure) -> Box<Fetch> {
    // A refused request still gets a Fetch (cxx hands out no null Box),
    // which the glue drops when it throws the failure.
    Box::new(guard(failure, || {
        let spec = parse(&req.attrs)?;
        let hub = fetch::connect(&fetch::Connection {
            endpoint: &req.endpoint_setting,
            access_tokens: Some(&pairs(&req.access_tokens)),
            token_file: &req.token_file,
            stall_timeout: req.stall_timeout,
            retries: req.retries,
            retry_time: req.retry_time,
            ca_file: &req.ca_file,
        })?;
        let known = match req.known_rev.as_str() {
            "" => None,
            rev => {
                Some(Revision { sha: spec::check_rev(rev, &spec.display())?, last_modified: req.known_last_modified })
            }
        };
        let partial_root = PathBuf::from(&req.partial_root);
        let request = fetch::Request {
            partial_root: partial_root.clone(),
            index_root: Some(fetch::index_root(&partial_root)),
            known,
            connections: req.connections as usize,
            output: if req.stream { Output::Stream } else { Output::Tree },
            keep: req.keep,
            spec: spec.clone(),
        };
        Ok(Fetch {
            work: Work::new(),
            ready: Some((hub, request)),
            spec: Some(spec),
            started: None,
            transfer: None,
            stream: None,
            partial_root,
        })
    }))
}

fn bug(what: &str) -> Error {
    Error::new(Kind::Bug, format!("internal error in nix-hf (please report it): {what}"))
}

pub struct Interrupter(Work);

impl Interrupter {
    fn interrupt(&self) {
        self.0.fail(Error::interrupted());
    }
}

impl Fetch {
    fn interrupter(&self) -> Box<Interrupter> {
        Box::new(Interrupter(self.work.clone()))
    }

    fn run(&mut self, ctx: &FetchContext, failure: &mut Failure) -> FetchStarted {
        guard(failure, || {
            let Some((hub, request)) = self.ready.take() else { return Err(bug("a fetch ran twice")) };
            let spec = request.spec.clone();
            let (info, transfer) = fetch::start(hub, request, &self.work, ctx)?;
            let started = FetchStarted {
                locked: from_spec(&spec.locked(&info.revision)),
                files: info.files as u64,
                bytes: info.bytes,
                nar_size: info.nar_size,
                reused_bytes: info.reused_bytes,
            };
            (self.started, self.transfer) = (Some(info), Some(transfer));
            Ok(started)
        })
    }

    fn wait_tree(&mut self, ctx: &FetchContext, failure: &mut Failure) -> FetchedTree {
        guard(failure, || {
            let Some(transfer) = self.transfer.take() else { return Err(bug("no transfer to wait for")) };
            let t = transfer.wait(ctx)?;
            Ok(FetchedTree {
                tree: t.tree.display().to_string(),
                nar_sha256: crate::verify::hex(&t.nar_sha256),
                nar_size: t.nar_size,
            })
        })
    }

    fn next_nar(&mut self, ctx: &FetchContext, failure: &mut Failure) -> &[u8] {
        let lent = guard(failure, || {
            if let Some(transfer) = self.transfer.take() {
                self.stream = Some(transfer.stream());
            }
            let Some(stream) = &mut self.stream else { return Err(bug("no stream to read")) };
            stream.next(ctx)
        });
        if failure.failed {
            // A panic left the stream midway: it must not go on.
            self.work.stop();
        }
        lent
    }

    fn stored(&mut self, store_path: &str, failure: &mut Failure) {
        guard(failure, || {
            let (Some(started), Some(spec)) = (self.started.take(), &self.spec) else {
                return Err(bug("nothing was fetched"));
            };
            let _ = std::fs::remove_dir_all(&started.dir);
            let root = fetch::index_root(&self.partial_root);
            let xet = started.xet_runs();
            crate::donors::remember(&root, spec, store_path, started.manifest, xet)
                .map_err(|e| Error::new(Kind::LocalIo, format!("cannot update the snapshot index: {e}")))
        })
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        // The glue is done with it, or gave up on it (an exception, say):
        // its threads stop either way.
        self.work.stop();
    }
}

fn hub_cache_layout(snapshots: &Vec<CacheSnapshot>, failure: &mut Failure) -> Vec<CacheEntry> {
    guard(failure, || {
        let snapshots: Vec<cache::Snapshot> = snapshots
            .iter()
            .map(|s| cache::Snapshot {
                key: s.key.clone(),
                rev: s.rev.clone(),
                refs: s.refs.clone(),
                path: s.path.clone(),
            })
            .collect();
        Ok(cache::layout(&snapshots, "builtins.hfHubCache")?
            .into_iter()
            .map(|e| match e {
                cache::Entry::File(path, value) => CacheEntry { path, is_link: false, value },
                cache::Entry::Link(path, value) => CacheEntry { path, is_link: true, value },
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank() -> Failure {
        Failure { failed: false, kind: ErrorKind::Bug, message: String::new() }
    }

    #[test]
    fn a_panic_becomes_a_bug_not_an_unwind() {
        let mut f = blank();
        let r: String = guard(&mut f, || panic!("boom"));
        assert!(r.is_empty() && f.failed && f.kind == ErrorKind::Bug);
        assert_eq!(f.message, "internal error in nix-hf (please report it): boom");
    }

    #[test]
    fn errors_cross_with_their_kind() {
        let mut f = blank();
        let attrs = input_from_url("org/name", &vec![], "hf:org/name", &mut f);
        assert!(!f.failed);
        let _ = input_with_override(&attrs, true, "main", true, &"a".repeat(40), &mut f);
        assert!(f.failed && f.kind == ErrorKind::InvalidInput, "ref and rev exclude each other");
        assert!(f.message.starts_with("cannot apply both a commit"));
        assert_eq!(primop_url("org/name"), "hf:org/name");
        assert_eq!(primop_url("hf:org/name"), "hf:org/name");
    }
}
