//! Fetching a snapshot: resolve the revision, list and select the files, and
//! have the transfer engine put them, verified, into a partial directory
//! keyed by what the snapshot is, from which the caller moves the tree into
//! the store. An interrupted fetch leaves that directory for the next run.
//!
//! Or, for a store the tree cannot be moved into (a nix-daemon's), the
//! caller reads the snapshot's NAR as it arrives and streams it there.
//!
//! All of it runs on the fetch's own threads; the caller's thread only waits
//! and reports (`Work::pump`), so that Ctrl-C ends a fetch at once in every
//! phase, even while an answer from the Hub is awaited.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::base::{env_on, CommitId, FileEntry, Observer, Revision};
use crate::donors::{self, Donors, Manifest};
use crate::download::{self, HubSource, Job, Local, Output, Run, Source, Transfer, XetFile, XetSource};
use crate::error::{fail, Error, Kind, Result};
use crate::hub::{self, Hub};
use crate::regular;
use crate::retry::{Budget, RealClock};
use crate::spec::Spec;
use crate::token;
use crate::work::Work;

/// The defaults of a fetch's settings, said here only: the plugin's
/// nix.conf settings (hf-connections, …) and the program's options take
/// them from here.
pub struct Defaults {
    pub connections: u32,
    pub stall_timeout: u32,
    pub retries: u32,
    pub retry_time: u32,
}

pub const DEFAULTS: Defaults = Defaults { connections: 8, stall_timeout: 30, retries: 6, retry_time: 300 };

/// How a fetch talks to the Hub, as the plugin's settings or the program's
/// options give it.
pub struct Connection<'a> {
    /// hf-endpoint (or --endpoint); empty: HF_ENDPOINT, else the Hub.
    pub endpoint: &'a str,
    /// Nix's access-tokens (host, token); None for the program, which has
    /// no such setting (and so says another way to send a token).
    pub access_tokens: Option<&'a [(String, String)]>,
    /// hf-token-file (or --token-file); empty when unset.
    pub token_file: &'a str,
    pub stall_timeout: u32,
    pub retries: u32,
    pub retry_time: u32,
    /// The only CA certificates to trust; empty: the system's.
    pub ca_file: &'a str,
}

/// The Hub a fetch talks to, with the token the rules choose for it.
pub fn connect(c: &Connection) -> Result<Arc<Hub>> {
    let endpoint = hub::parse_endpoint(&hub::endpoint_from(c.endpoint, std::env::var("HF_ENDPOINT").ok()))?;
    Ok(Arc::new(Hub::new(hub::Settings {
        token: token::choose(&endpoint, c.access_tokens, Some(c.token_file), &|k| std::env::var(k).ok()),
        endpoint,
        stall: Duration::from_secs(c.stall_timeout.max(1) as u64),
        budget: Budget { attempts: c.retries.max(1), time: Duration::from_secs(c.retry_time as u64) },
        ca_file: Some(c.ca_file),
    })?))
}

pub struct Request {
    pub spec: Spec,
    /// Where partial snapshots live (under Nix's cache dir).
    pub partial_root: PathBuf,
    /// Where the index of snapshots already in the store is, if anywhere.
    pub index_root: Option<PathBuf>,
    /// What the caller's cache knows: the commit of the ref (when fresh), or
    /// the date of the given rev. Avoids asking the Hub again.
    pub known: Option<Revision>,
    pub connections: usize,
    /// What the caller takes: the tree, or the NAR as a stream.
    pub output: Output,
    /// For a stream: whether what arrives is also kept here, so that an
    /// interrupted fetch resumes (at the cost of a second write).
    pub keep: bool,
}

/// A fetch under way: the commit and files it found.
pub struct Started {
    pub revision: Revision,
    pub files: usize,
    pub bytes: u64,
    /// The snapshot's NAR size, and the bytes taken from this machine.
    pub nar_size: u64,
    pub reused_bytes: u64,
    /// The partial directory; `tree/` below it is a fetched tree.
    pub dir: PathBuf,
    /// The snapshot's files by content, for `donors::remember`.
    pub manifest: Manifest,
    /// What read the Xet-backed files, if the CAS did.
    xet: Option<Arc<XetSource>>,
    /// Held until the caller has the snapshot in the store: another
    /// process fetching the same snapshot waits for it instead of racing on
    /// the same files. Never read: dropping it releases the lock.
    #[allow(dead_code)]
    pub lock: File,
}

impl Started {
    /// The Xet chunks of the files read whole, by content key, for
    /// `donors::remember`.
    pub fn xet_runs(&self) -> BTreeMap<String, Vec<Run>> {
        self.xet.as_ref().map(|x| x.runs()).unwrap_or_default()
    }
}

/// What the first phase finds: the commit, the files, and a transfer ready
/// to start.
struct Planned {
    revision: Revision,
    wanted: Vec<FileEntry>,
    dir: PathBuf,
    lock: File,
    job: Job,
    prepared: download::Prepared,
    /// What to say at -v once planned (how the regular files come).
    notes: Vec<String>,
    xet: Option<Arc<XetSource>>,
}

/// Starts fetching the snapshot `req` asks for, as threads of `work`,
/// reporting to `obs` on the caller's thread: resolves, lists, plans, and
/// returns once the transfer is under way.
pub fn start(hub: Arc<Hub>, req: Request, work: &Work, obs: &dyn Observer) -> Result<(Started, Transfer)> {
    let planning = {
        let work = work.clone();
        work.clone().task("hf-plan", move || plan(&hub, &req, &work))
    };
    work.pump(obs, &|| !planning.pending(), &|| false, &|_| {})?;
    let Planned { revision, wanted, dir, lock, job, prepared, notes, xet } =
        planning.take().expect("the plan is there");
    for n in &notes {
        obs.note(n);
    }
    let (nar_size, reused_bytes) = (prepared.nar_size(), prepared.reused_bytes());
    let transfer = download::start(job, prepared, work);
    let started = Started {
        revision,
        files: wanted.len(),
        bytes: wanted.iter().map(|f| f.size).sum(),
        nar_size,
        reused_bytes,
        dir,
        manifest: donors::manifest(&wanted),
        xet,
        lock,
    };
    Ok((started, transfer))
}

fn plan(hub: &Arc<Hub>, req: &Request, work: &Work) -> Result<Planned> {
    let spec = &req.spec;
    let revision = match (&spec.rev, &req.known) {
        (Some(rev), Some(k)) if &k.sha == rev => k.clone(),
        (Some(rev), _) => {
            let r = hub.revision(spec, Some(rev.as_str()), work)?;
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
        (None, None) => hub.revision(spec, spec.reference.as_deref(), work)?,
    };
    let listing = hub.list(spec, &revision.sha, work)?;
    let wanted = select(spec, &revision, listing.clone())?;
    let dir = req.partial_root.join(partial_name(spec, &revision.sha));
    fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let lock = lock_dir(&dir)?;
    let hf_blobs = donors::hf_blobs_dir(spec, &|k| std::env::var(k).ok());
    let mut donors = Donors::find(req.index_root.as_deref(), spec, hf_blobs);
    let local = donors.take_xet();
    // Only regular files can come in a pack: only they are looked for here.
    let here: BTreeSet<String> =
        wanted.iter().filter(|f| f.is_regular() && donors.has(&f.digest, f.size)).map(FileEntry::content_key).collect();
    // Xet-backed files to fetch: those not on this machine.
    let xet: BTreeMap<String, XetFile> = wanted
        .iter()
        .filter(|f| !donors.has(&f.digest, f.size))
        .filter_map(|f| f.xet.map(|hash| (f.path.clone(), XetFile { hash, size: f.size, key: f.content_key() })))
        .collect();
    let (reuse, outcome) = regular::fetch(
        hub,
        spec,
        &revision.sha,
        &listing,
        &wanted,
        Box::new(donors),
        &|f| here.contains(&f.content_key()),
        &dir,
        work,
    )?;
    let mut notes: Vec<String> = outcome.note(&spec.display()).into_iter().collect();
    let regular = wanted.iter().filter(|f| f.is_regular()).map(|f| f.path.clone()).collect();
    let bridge = HubSource::new(hub.clone(), spec.clone(), revision.sha.clone(), regular);
    let Sources { source, xet, note } = xet_source(hub, spec, &revision.sha, xet, local, bridge, work)?;
    notes.extend(note);
    let job = Job {
        source,
        files: wanted.clone(),
        dir: dir.clone(),
        connections: req.connections.max(1),
        piece: download::PIECE,
        reuse,
        output: req.output,
        keep: req.keep,
        budget: hub.budget(),
        clock: Arc::new(RealClock::new()),
        shown: spec.display(),
    };
    let prepared = download::prepare(&job)?;
    Ok(Planned { revision, wanted, dir, lock, job, prepared, notes, xet })
}

/// Where a snapshot's files come from; what reads the CAS, if it does;
/// and why it does not, if it could have.
struct Sources {
    source: Arc<dyn Source>,
    xet: Option<Arc<XetSource>>,
    note: Option<String>,
}

/// The files' source: the Xet CAS for Xet-backed files still to fetch,
/// when the Hub gives a token for it, and the Hub otherwise. When it gives
/// none, a note says why. `HF_HUB_DISABLE_XET`, the official client's
/// switch, sends them through the Hub's LFS bridge.
fn xet_source(
    hub: &Arc<Hub>,
    spec: &Spec,
    sha: &CommitId,
    files: BTreeMap<String, XetFile>,
    local: Local,
    bridge: HubSource,
    work: &Work,
) -> Result<Sources> {
    if files.is_empty() || env_on(std::env::var("HF_HUB_DISABLE_XET").ok().as_deref()) {
        return Ok(Sources { source: Arc::new(bridge), xet: None, note: None });
    }
    match hub.xet_token(spec, sha, work) {
        Ok(token) => {
            let x = Arc::new(XetSource::new(hub.clone(), spec.clone(), sha.clone(), bridge, files, token, local));
            Ok(Sources { source: x.clone(), xet: Some(x), note: None })
        }
        Err(e) if e.kind == Kind::Interrupted => Err(e),
        Err(e) => {
            let shown = spec.display();
            let note =
                format!("{shown}: no Xet CAS ({}); its Xet-backed files come through the Hub's LFS bridge", e.message);
            Ok(Sources { source: Arc::new(bridge), xet: None, note: Some(note) })
        }
    }
}

/// Where the index of remembered snapshots lives, beside the partial dirs.
pub fn index_root(partial_root: &Path) -> PathBuf {
    partial_root.with_file_name("index")
}

/// The partial directory's name: what the snapshot is (kind, repo, commit,
/// filters), hashed; nothing about where it came from or who asked.
fn partial_name(spec: &Spec, sha: &CommitId) -> String {
    let locked = spec.locked(&Revision { sha: sha.clone(), last_modified: 0 });
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
