//! Xet-backed files read from the CAS, as the official client reads them:
//! each piece is reconstructed (V2, or V1 where V2 is not served), its
//! xorb ranges fetched from the signed URLs and their chunks decoded as
//! they stream in, or read from an earlier snapshot's file where it holds
//! them. Beyond its buffer a piece holds a chunk and the chunks its terms
//! name again, at most its own bytes. Everything else, and any file the
//! CAS cannot serve, comes through the Hub as before (the LFS bridge); the
//! engine verifies every file's sha256 either way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, TryLockError};

use serde::{Deserialize, Serialize};
use url::Url;

use super::{HubSource, Ranged, Source};
use crate::base::{lock, CommitId, XetHash};
use crate::error::Kind;
use crate::hub::{self, Hub, Reconstruction, XetToken, XorbRange};
use crate::retry::Attempt;
use crate::spec::Spec;
use crate::xet::{self, Plan};

/// A Xet-backed file to read: its Xet hash, size and content key.
pub struct XetFile {
    pub hash: XetHash,
    pub size: u64,
    pub key: String,
}

pub struct XetSource {
    hub: Arc<Hub>,
    spec: Spec,
    sha: CommitId,
    /// The bridge, for all that is not read from the CAS.
    bridge: HubSource,
    /// Xet-backed files: path -> Xet hash.
    files: BTreeMap<String, XetHash>,
    token: Arc<Mutex<XetToken>>,
    /// The CAS does not serve V2: V1 from now on.
    v1: AtomicBool,
    /// Files the CAS could not serve: through the bridge from now on.
    bridged: Mutex<BTreeSet<String>>,
    /// The chunks each file gave so far, to check the whole against its
    /// Xet hash once they cover it.
    chunks: Arc<Chunks>,
    /// Chunks on this machine already.
    local: Arc<Local>,
    /// Reconstructions asked for before their pieces are fetched.
    ahead: Arc<Ahead>,
}

/// A piece: its file's path and its bytes `[start, end)`.
type PieceKey = (String, u64, u64);

/// Reconstructions asked for while their pieces wait in the queue, so that
/// a piece, when a worker takes it, costs one round trip (its xorb ranges)
/// and not two: far from the CAS, the second would double every piece's
/// wait. Only an answer to exactly the piece is used, and only once; a
/// retry, and anything but an answer (a refused token, an API not served, a
/// failure), is the piece's own to ask and to handle.
#[derive(Default)]
struct Ahead {
    /// By piece: the answer, or None while it is asked for.
    asked: Mutex<HashMap<PieceKey, Option<Vec<u8>>>>,
    came: Condvar,
}

/// Reconstructions asked ahead at once, answered or not: their answers are
/// some KiB each.
const MAX_AHEAD: usize = 16;

impl Ahead {
    /// The answer asked for ahead for this piece, once it came; None if
    /// none was asked for or none came.
    fn take(&self, key: &PieceKey) -> Option<Vec<u8>> {
        let mut asked = lock(&self.asked);
        loop {
            match asked.get(key) {
                None => return None,
                Some(Some(_)) => return asked.remove(key).flatten(),
                Some(None) => asked = self.came.wait(asked).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }

    /// Marks the piece as asked for, unless it is already or `MAX_AHEAD`
    /// are: the answer, or its absence, goes through the `Asking`.
    fn begin(self: &Arc<Self>, key: PieceKey) -> Option<Asking> {
        let mut asked = lock(&self.asked);
        if asked.len() >= MAX_AHEAD || asked.contains_key(&key) {
            return None;
        }
        asked.insert(key.clone(), None);
        Some(Asking { ahead: self.clone(), key, body: None })
    }

    /// Forgets what was asked for `path` (it comes through the bridge now).
    fn forget(&self, path: &str) {
        lock(&self.asked).retain(|k, _| k.0 != path);
        self.came.notify_all();
    }
}

/// A reconstruction under way ahead: its answer, or its absence (however
/// the request ends, a panic included), is told to a waiting piece.
struct Asking {
    ahead: Arc<Ahead>,
    key: PieceKey,
    body: Option<Vec<u8>>,
}

impl Drop for Asking {
    fn drop(&mut self) {
        let mut asked = lock(&self.ahead.asked);
        match self.body.take() {
            // Unless it was forgotten meanwhile.
            Some(b) => {
                if let Some(slot) = asked.get_mut(&self.key) {
                    *slot = Some(b);
                }
            }
            None => {
                asked.remove(&self.key);
            }
        }
        drop(asked);
        self.ahead.came.notify_all();
    }
}

/// Consecutive chunks of one xorb as they lie in a file: what a later
/// fetch may read from that file instead of the CAS (kept in the snapshot
/// index, `donors`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub xorb: String,
    pub first: u32,
    pub offset: u64,
    pub lens: Vec<u32>,
}

/// Chunks on this machine, by xorb: files of earlier snapshots and the
/// runs they hold.
#[derive(Default)]
pub struct Local(BTreeMap<XetHash, Vec<(PathBuf, Run)>>);

impl Local {
    pub fn add(&mut self, file: PathBuf, run: Run) {
        if let Some(x) = XetHash::parse(&run.xorb) {
            self.0.entry(x).or_default().push((file, run));
        }
    }

    /// Where chunks `[first, end)` of `xorb` are: a file (open), the
    /// offset of the first, and each one's length.
    fn find(&self, xorb: &XetHash, first: u32, end: u32) -> Option<(File, u64, Vec<u32>)> {
        self.0.get(xorb)?.iter().find_map(|(file, r)| {
            let from = first.checked_sub(r.first)? as usize;
            let lens = r.lens.get(from..from + (end - first) as usize)?;
            let offset = r.offset + r.lens[..from].iter().map(|&l| l as u64).sum::<u64>();
            Some((File::open(file).ok()?, offset, lens.to_vec()))
        })
    }
}

/// Chunks by file and offset. Pieces overlap by the chunks at their ends,
/// which are kept once; a file whose chunks came partly from an earlier
/// run is never covered here (its sha256 is checked all the same).
#[derive(Default)]
struct Chunks {
    files: Mutex<BTreeMap<String, FileChunks>>,
    /// The runs of each content whose chunks were all seen, by key.
    done: Mutex<BTreeMap<String, Vec<Run>>>,
}

struct FileChunks {
    expected: XetHash,
    size: u64,
    /// The content's key (`base::content_key`), which its runs are kept by.
    key: String,
    covered: u64,
    /// Offset -> the chunk's hash, length, xorb and index in it.
    at: BTreeMap<u64, (XetHash, u64, XetHash, u32)>,
}

impl Chunks {
    /// Notes a chunk of `path` at `offset`; once the file is covered, its
    /// Xet hash is checked, and its runs kept.
    fn add(&self, path: &str, offset: u64, chunk: (XetHash, u64), xorb: XetHash, index: u32) {
        let mut all = lock(&self.files);
        let Some(f) = all.get_mut(path) else { return };
        if f.at.insert(offset, (chunk.0, chunk.1, xorb, index)).is_none() {
            f.covered += chunk.1;
        }
        if f.covered < f.size {
            return;
        }
        let f = all.remove(path).expect("present");
        drop(all);
        let mut next = 0;
        let mut list = Vec::with_capacity(f.at.len());
        let mut runs: Vec<Run> = Vec::new();
        for (off, (h, len, xorb, index)) in f.at {
            if off != next {
                return; // overlapping pieces that disagree: the sha256 decides
            }
            next += len;
            list.push((h, len));
            let hex = xorb.to_string();
            match runs.last_mut() {
                Some(r) if r.xorb == hex && r.first + r.lens.len() as u32 == index => r.lens.push(len as u32),
                _ => runs.push(Run { xorb: hex, first: index, offset: off, lens: vec![len as u32] }),
            }
        }
        if next != f.size {
            return;
        }
        // Chunks that do not give the Xet hash are not remembered for later
        // fetches; whether the file is right, its sha256 decides (a retry of
        // this piece could not tell which chunk is wrong).
        if xet::file_hash(&list) == f.expected {
            lock(&self.done).insert(f.key, runs);
        }
    }
}

impl XetSource {
    pub fn new(
        hub: Arc<Hub>,
        spec: Spec,
        sha: CommitId,
        bridge: HubSource,
        files: BTreeMap<String, XetFile>,
        token: XetToken,
        local: Local,
    ) -> XetSource {
        let chunks = Chunks::default();
        lock(&chunks.files).extend(files.iter().map(|(p, f)| {
            let at = BTreeMap::new();
            (p.clone(), FileChunks { expected: f.hash, size: f.size, key: f.key.clone(), covered: 0, at })
        }));
        let files = files.into_iter().map(|(p, f)| (p, f.hash)).collect();
        XetSource {
            chunks: Arc::new(chunks),
            local: Arc::new(local),
            ahead: Arc::new(Ahead::default()),
            hub,
            spec,
            sha,
            bridge,
            files,
            token: Arc::new(Mutex::new(token)),
            v1: AtomicBool::new(false),
            bridged: Mutex::new(BTreeSet::new()),
        }
    }

    /// The runs of chunks of each file read whole from the CAS (or from
    /// chunks here), by content key.
    pub fn runs(&self) -> BTreeMap<String, Vec<Run>> {
        lock(&self.chunks.done).clone()
    }

    /// The file's Xet hash, if it is read from the CAS.
    fn in_cas(&self, path: &str) -> Option<&XetHash> {
        self.files.get(path).filter(|_| !lock(&self.bridged).contains(path))
    }

    /// A token that is not about to expire.
    fn token(&self) -> Attempt<XetToken> {
        let mut t = lock(&self.token);
        if !t.fresh() {
            match self.hub.xet_token_attempt(&self.spec, &self.sha) {
                Attempt::Done(new) => *t = new,
                Attempt::Retry { wait, why, kind } => return Attempt::Retry { wait, why, kind },
                Attempt::Fail(e) => return Attempt::Fail(e),
            }
        }
        Attempt::Done(t.clone())
    }

    /// The bridge from now on for `path`, after the CAS said `why`.
    fn bridge_instead(&self, path: &str, why: String) -> Attempt<Ranged> {
        lock(&self.bridged).insert(path.to_string());
        self.ahead.forget(path);
        Attempt::Done(Ranged::Expired { why })
    }

    fn reconstruct(&self, file: &XetHash, path: &str, start: u64, end: u64) -> Attempt<Ranged> {
        let body = match self.ahead.take(&(path.to_string(), start, end)) {
            Some(b) => b,
            None => match self.ask(file, path, start, end) {
                Ok(b) => b,
                Err(said) => return said,
            },
        };
        match xet::plan(&body, start, end) {
            Ok(plan) => {
                let skip = plan.skip;
                let at = Origin { chunks: self.chunks.clone(), path: path.to_string(), offset: start - skip };
                let reader = Terms::new(self.hub.clone(), plan, at, self.local.clone());
                Attempt::Done(Ranged::Body { reader: Box::new(reader), skip })
            }
            Err(why) => Attempt::retry(Kind::CorruptData, format!("the Xet CAS's reconstruction of '{path}' {why}")),
        }
    }

    /// The CAS's reconstruction of the piece, asked for now; or what the
    /// piece's attempt is to say instead.
    fn ask(&self, file: &XetHash, path: &str, start: u64, end: u64) -> Result<Vec<u8>, Attempt<Ranged>> {
        let t = match self.token() {
            Attempt::Done(t) => t,
            Attempt::Retry { wait, why, kind } => return Err(Attempt::Retry { wait, why, kind }),
            Attempt::Fail(e) => return Err(self.bridge_instead(path, e.message)),
        };
        let mut v1 = self.v1.load(Ordering::Relaxed);
        loop {
            match self.hub.reconstruction(&t, file, start, end, v1) {
                Attempt::Done(Reconstruction::Body(b)) => {
                    // V1 from now on once it served where V2 did not.
                    self.v1.store(v1, Ordering::Relaxed);
                    return Ok(b);
                }
                Attempt::Done(Reconstruction::Unauthorized) => {
                    // Renewed on the next attempt.
                    lock(&self.token).expire();
                    return Err(Attempt::retry(Kind::AccessDenied, "the Xet CAS no longer took the read token"));
                }
                Attempt::Done(Reconstruction::NotServed) if !v1 => v1 = true,
                Attempt::Done(Reconstruction::NotServed) => {
                    return Err(self.bridge_instead(path, format!("the Xet CAS does not know '{path}'")))
                }
                Attempt::Retry { wait, why, kind } => {
                    // Should it never answer, the user can go around it.
                    let why = format!("{why} (HF_HUB_DISABLE_XET=1 fetches through the Hub's LFS bridge instead)");
                    return Err(Attempt::Retry { wait, why, kind });
                }
                Attempt::Fail(e) => return Err(self.bridge_instead(path, e.message)),
            }
        }
    }
}

impl Source for XetSource {
    fn locate(&self, path: &str) -> Attempt<Url> {
        match self.in_cas(path) {
            // Where the file's pieces are reconstructed (each asks anew).
            Some(h) => Attempt::Done(lock(&self.token).reconstruction_url(h, false)),
            None => self.bridge.locate(path),
        }
    }

    fn range(&self, at: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged> {
        // A location `locate` gave (the CAS it names may have changed since,
        // with a new token: the reconstruction goes to the current one).
        let from_cas = self.files.get(path).is_some_and(|h| at.path().ends_with(&format!("/reconstructions/{h}")));
        match self.in_cas(path) {
            Some(h) if from_cas => self.reconstruct(h, path, start, end),
            _ if from_cas => Attempt::Done(Ranged::Expired { why: format!("'{path}' comes through the bridge now") }),
            _ => self.bridge.range(at, path, start, end),
        }
    }

    fn ahead(&self, path: &str, start: u64, end: u64) {
        let Some(file) = self.in_cas(path).copied() else { return };
        // Most pieces were told of already, by the workers before. Any
        // return below drops `asking` unanswered, which forgets the piece.
        let Some(asking) = self.ahead.begin((path.to_string(), start, end)) else { return };
        // Never waits: a token being renewed, or about to be, is the
        // piece's own business.
        let t = match self.token.try_lock() {
            Ok(t) => t.clone(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().clone(),
            Err(TryLockError::WouldBlock) => return,
        };
        if !t.fresh() {
            return;
        }
        let (hub, v1, token) = (self.hub.clone(), self.v1.load(Ordering::Relaxed), self.token.clone());
        // Should no thread start, `asking` is dropped unanswered.
        let _ = std::thread::Builder::new().name("hf-xet-ahead".into()).spawn(move || {
            let mut asking = asking;
            match hub.reconstruction(&t, &file, start, end, v1) {
                Attempt::Done(Reconstruction::Body(b)) => asking.body = Some(b),
                // Renewed by the next piece, as when a piece hears it; unless
                // it was renewed already.
                Attempt::Done(Reconstruction::Unauthorized) => {
                    let mut now = lock(&token);
                    if now.is(&t) {
                        now.expire();
                    }
                }
                _ => {}
            }
        });
    }

    fn broke_off(&self, path: &str, at: u64, e: &io::Error) -> String {
        if !self.files.contains_key(path) || lock(&self.bridged).contains(path) {
            return self.bridge.broke_off(path, at, e);
        }
        if e.kind() == io::ErrorKind::InvalidData {
            return format!("the Xet CAS sent '{path}' what it did not promise, at byte {at} of the file: {e}");
        }
        format!("{} from the Xet CAS", hub::read_failed(path, at, e, self.hub.stall().as_secs()))
    }
}

/// The bytes of a plan's terms in order, decoded as they stream in. A
/// fetch already open serves the next term too when its chunks follow.
struct Terms {
    hub: Arc<Hub>,
    plan: Plan,
    origin: Origin,
    local: Arc<Local>,
    /// The term's chunks here: the file, the next one's offset, the
    /// lengths of those left.
    here: Option<(File, u64, std::vec::IntoIter<u32>)>,
    /// The term being read, its next chunk, and what it gave so far.
    term: usize,
    chunk: u32,
    unpacked: u64,
    /// The open fetches: by index in the plan, the index of the next
    /// chunk each gives. Kept while terms alternate between xorbs, so that
    /// none is fetched again from its start.
    open: HashMap<usize, (u32, Box<dyn Read + Send>)>,
    /// How many more times the terms name each chunk, and those decoded
    /// that are named again.
    uses: HashMap<(XetHash, u32), usize>,
    kept: HashMap<(XetHash, u32), Vec<u8>>,
    kept_bytes: usize,
    keep_limit: usize,
    stored: Vec<u8>,
    out: Vec<u8>,
    at: usize,
}

impl Terms {
    fn new(hub: Arc<Hub>, plan: Plan, origin: Origin, local: Arc<Local>) -> Terms {
        let chunk = plan.terms.first().map_or(0, |t| t.first);
        // Deduplicated contents name the same chunks in several terms (a
        // run of equal bytes, a repeated block): each is fetched once. The
        // chunks a piece's terms name are at most its bytes plus two.
        let mut uses = HashMap::new();
        for t in &plan.terms {
            for i in t.first..t.end {
                *uses.entry((t.xorb, i)).or_insert(0usize) += 1;
            }
        }
        let (stored, out, kept) = (Vec::new(), Vec::new(), HashMap::new());
        let keep_limit = plan.terms.iter().map(|t| t.len as usize).sum();
        Terms {
            hub,
            plan,
            origin,
            local,
            here: None,
            term: 0,
            chunk,
            unpacked: 0,
            open: HashMap::new(),
            uses,
            kept,
            kept_bytes: 0,
            keep_limit,
            stored,
            out,
            at: 0,
        }
    }

    /// Whether the term's chunks are on this machine: they are read there.
    fn look_here(&mut self) {
        let t = &self.plan.terms[self.term];
        self.here =
            self.local.find(&t.xorb, t.first, t.end).map(|(file, offset, lens)| (file, offset, lens.into_iter()));
    }

    /// The next chunk from the file here.
    fn chunk_here(&mut self) -> io::Result<()> {
        let (file, offset, lens) = self.here.as_mut().expect("a term here");
        let len = lens.next().ok_or_else(|| invalid("a term here ran out of chunks".into()))? as usize;
        self.out.resize(len, 0);
        file.read_exact_at(&mut self.out, *offset)?;
        *offset += len as u64;
        Ok(())
    }

    /// Decodes the next chunk into `out`; false when all terms are read.
    fn next_chunk(&mut self) -> io::Result<bool> {
        loop {
            let Some(t) = self.plan.terms.get(self.term) else { return Ok(false) };
            if self.chunk < t.end {
                break;
            }
            if self.unpacked != t.len {
                return Err(invalid(format!(
                    "chunks {}-{} of xorb {} unpack to {} bytes, not the {} the CAS promised",
                    t.first, t.end, t.xorb, self.unpacked, t.len
                )));
            }
            self.term += 1;
            self.unpacked = 0;
            self.chunk = self.plan.terms.get(self.term).map_or(0, |t| t.first);
            self.here = None;
        }
        if self.chunk == self.plan.terms[self.term].first {
            self.look_here();
        }
        if self.here.is_some() {
            match self.chunk_here() {
                Ok(()) => return self.took_chunk(),
                // A file here that cannot be read as remembered: the rest of
                // the term comes from the CAS.
                Err(_) => self.here = None,
            }
        }
        let t = &self.plan.terms[self.term];
        let (fetch, chunk, xorb) = (t.fetch, self.chunk, t.xorb);
        if let Some(kept) = self.kept.get(&(xorb, chunk)) {
            self.out.clone_from(kept);
        } else {
            if !matches!(self.open.get(&fetch), Some((c, _)) if *c <= chunk) {
                let f = &self.plan.fetches[fetch];
                if self.open.len() >= MAX_OPEN {
                    self.open.clear();
                }
                let body = match self.hub.xorb_range(&f.url, f.bytes) {
                    Attempt::Done(XorbRange::Body(r)) => r,
                    Attempt::Done(XorbRange::Expired) => return Err(io::Error::other("its signed URL expired")),
                    Attempt::Retry { why, .. } => return Err(io::Error::other(why)),
                    Attempt::Fail(e) => return Err(io::Error::other(e.message)),
                };
                // Chunk headers are 8 bytes: read through a buffer, not a
                // call into the HTTP client each.
                self.open.insert(fetch, (f.first, Box::new(BufReader::with_capacity(1 << 18, body))));
            }
            let (mut next, mut body) = self.open.remove(&fetch).expect("a fetch is open");
            // Chunks before the term's: kept if a later term wants them.
            while next <= chunk {
                let got =
                    xet::read_chunk(&mut body, &mut self.stored, &mut self.out).map_err(
                        |e| match xet::chunk_problem(&e) {
                            Some(p) => invalid(format!("chunk {next} of xorb {xorb} was refused: {p}")),
                            None => e,
                        },
                    )?;
                if got.is_none() {
                    return Err(invalid(format!("the xorb range ended before chunk {next} of xorb {xorb}")));
                }
                if next < chunk && self.uses.get(&(xorb, next)).is_some_and(|&n| n > 0) {
                    self.keep((xorb, next));
                }
                next += 1;
            }
            self.open.insert(fetch, (next, body));
        }
        self.took_chunk()
    }

    /// One use of a chunk of the plan's: kept while later terms want it.
    fn used(&mut self, xorb: XetHash, chunk: u32) {
        let key = (xorb, chunk);
        let left = self.uses.get_mut(&key).map_or(0, |n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == 0 {
            if let Some(v) = self.kept.remove(&key) {
                self.kept_bytes -= v.len();
            }
        } else if !self.kept.contains_key(&key) {
            self.keep(key);
        }
    }

    /// Keeps the chunk in `out` for a later term. What is kept never
    /// exceeds what the terms unpack to (a piece and a chunk at each end),
    /// however an answer names chunks.
    fn keep(&mut self, key: (XetHash, u32)) {
        if self.kept_bytes + self.out.len() <= self.keep_limit {
            self.kept_bytes += self.out.len();
            self.kept.insert(key, self.out.clone());
        }
    }

    /// The chunk in `out` is the term's next: counted, noted, and kept if
    /// a later term names it again.
    fn took_chunk(&mut self) -> io::Result<bool> {
        let t = &self.plan.terms[self.term];
        let (xorb, index, len) = (t.xorb, self.chunk, self.out.len() as u64);
        if self.unpacked + len > t.len {
            return Err(invalid(format!(
                "chunks {}-{} of xorb {xorb} unpack to more than the {} bytes the CAS promised",
                t.first, t.end, t.len
            )));
        }
        self.used(xorb, index);
        self.chunk += 1;
        self.unpacked += len;
        self.at = 0;
        let o = &mut self.origin;
        o.chunks.add(&o.path, o.offset, (xet::chunk_hash(&self.out), len), xorb, index);
        o.offset += len;
        Ok(true)
    }
}

impl Read for Terms {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Where a reader's bytes go: the file, and the offset of its next chunk.
struct Origin {
    chunks: Arc<Chunks>,
    path: String,
    offset: u64,
}

/// Fetches a reader keeps open at once.
const MAX_OPEN: usize = 4;

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, start: u64) -> PieceKey {
        (path.to_string(), start, start + 8)
    }

    fn answered(mut asking: Asking, body: &[u8]) {
        asking.body = Some(body.to_vec());
    }

    #[test]
    fn an_answer_asked_ahead_is_taken_once_and_only_for_its_piece() {
        let ahead = Arc::new(Ahead::default());
        answered(ahead.begin(key("a", 0)).expect("asked"), b"plan");
        assert_eq!(ahead.take(&key("a", 8)), None, "another piece of the file");
        assert_eq!(ahead.take(&key("b", 0)), None, "another file");
        assert_eq!(ahead.take(&key("a", 0)).as_deref(), Some(&b"plan"[..]));
        assert_eq!(ahead.take(&key("a", 0)), None, "a retry asks again itself");
    }

    #[test]
    fn a_piece_is_asked_for_once_and_at_most_max_ahead_at_once() {
        let ahead = Arc::new(Ahead::default());
        let first = ahead.begin(key("a", 0)).expect("asked");
        assert!(ahead.begin(key("a", 0)).is_none(), "asked for twice");
        let rest: Vec<_> = (1..MAX_AHEAD as u64).map(|i| ahead.begin(key("a", 8 * i)).expect("room")).collect();
        assert!(ahead.begin(key("b", 0)).is_none(), "more than MAX_AHEAD asked at once");
        answered(first, b"plan");
        assert!(ahead.begin(key("b", 0)).is_none(), "an answer not yet taken still counts");
        assert!(ahead.take(&key("a", 0)).is_some());
        assert!(ahead.begin(key("b", 0)).is_some(), "room once an answer is taken");
        drop(rest);
    }

    #[test]
    fn a_request_that_ends_unanswered_leaves_the_piece_to_ask_itself() {
        let ahead = Arc::new(Ahead::default());
        let asking = ahead.begin(key("a", 0)).expect("asked");
        let waiting = {
            let ahead = ahead.clone();
            std::thread::spawn(move || ahead.take(&key("a", 0)))
        };
        drop(asking);
        assert_eq!(waiting.join().expect("no panic"), None);
        assert!(lock(&ahead.asked).is_empty());
        assert!(ahead.begin(key("a", 0)).is_some(), "may be asked for again");
    }

    #[test]
    fn a_waiting_piece_gets_the_answer_when_it_comes() {
        let ahead = Arc::new(Ahead::default());
        let asking = ahead.begin(key("a", 0)).expect("asked");
        // Answered once the piece's thread runs, so that it most likely
        // takes first and must wait; should it take after, it must find
        // the answer all the same.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = {
            let ahead = ahead.clone();
            std::thread::spawn(move || {
                tx.send(()).expect("told");
                ahead.take(&key("a", 0))
            })
        };
        rx.recv().expect("the piece's thread runs");
        answered(asking, b"plan");
        assert_eq!(waiting.join().expect("no panic").as_deref(), Some(&b"plan"[..]));
    }

    #[test]
    fn a_file_forgotten_drops_its_answers_even_those_still_coming() {
        let ahead = Arc::new(Ahead::default());
        answered(ahead.begin(key("a", 0)).expect("asked"), b"plan");
        let coming = ahead.begin(key("a", 8)).expect("asked");
        let other = ahead.begin(key("b", 0)).expect("asked");
        ahead.forget("a");
        answered(coming, b"late");
        assert_eq!(ahead.take(&key("a", 0)), None);
        assert_eq!(ahead.take(&key("a", 8)), None, "an answer that came after the file was forgotten");
        answered(other, b"kept");
        assert!(ahead.take(&key("b", 0)).is_some(), "another file's answer");
    }
}
