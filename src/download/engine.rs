//! The transfer engine: moves a snapshot's files from a `Source` onto disk
//! once, and verifies them while they arrive.
//!
//! - Each distinct content is cut into pieces that a bounded pool of
//!   workers fetches from one location per file (located again when a
//!   signed URL expires), each piece under its own retry budget, written in
//!   place at its offset.
//! - Each finished piece is recorded next to the data (`resume`), so an
//!   interrupted or killed fetch resumes where it was.
//! - A piece is received into a buffer of the bounded `pool`, written to
//!   disk with O_DIRECT (where the file system allows it), and kept in
//!   memory until two readers have passed it: one checks the Hub's hash of
//!   every file; the other either computes the snapshot's NAR hash (for a
//!   tree the caller moves into a local store) or is the snapshot's NAR
//!   itself, which the caller streams into a store it cannot move a tree
//!   into (a nix-daemon's): both in order as the contiguous prefix grows.
//!   Bytes are written once, never through the page cache, and hashed from
//!   memory; pieces from an earlier run or from this machine are read back
//!   from disk.
//! - A stream need not be written here at all (`Job::keep`): then the only
//!   write is the store's, pieces live in memory until both readers have
//!   passed them, and contents already on this machine are read where they
//!   are. The stream's last bytes wait until every file is verified (and
//!   what is kept is on disk), so that no store receives a whole NAR of
//!   anything unverified.
//!
//! A transfer is prepared (planned, resumed), started (its threads, under
//! the fetch's `Work`), and waited for or streamed. Only the caller's thread
//! talks to the `Observer`; the others are detached, so that Ctrl-C returns
//! at once even while a read is blocked.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use url::Url;

use super::plan::{self, Planned};
use super::pool::{Buffer, Pool, ALIGN};
use super::resume::Record;
use crate::base::{content_key, lock, Digest, FileEntry, Observer};
use crate::error::{Error, Kind, Result};
use crate::nar;
use crate::retry::{self, Attempt, Budget, Clock};
use crate::verify::Verifier;
use crate::work::{self, Work};

/// Where a file's bytes come from: the Hub (see `download`), or memory in
/// tests. Each call is one attempt; the engine runs them under the budget.
pub trait Source: Send + Sync {
    /// Where the bytes of `path` are served.
    fn locate(&self, path: &str) -> Attempt<Url>;
    /// Bytes `[start, end)` of `path` from `at`.
    fn range(&self, at: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged>;
    /// What to say of a body that broke off, or stayed silent, at byte `at`
    /// of `path` (for the final message, should the budget run out).
    fn broke_off(&self, path: &str, at: u64, e: &io::Error) -> String;
    /// Bytes `[start, end)` of `path` will be asked for soon (a piece next
    /// in the queue): a source whose range takes two round trips may start
    /// the first one now. Called with the queue locked: it must not block.
    fn ahead(&self, _path: &str, _start: u64, _end: u64) {}
}

pub enum Ranged {
    /// The bytes; `skip` leading ones are not wanted (a server that ignored
    /// Range sends the file from its start).
    Body { reader: Box<dyn Read + Send>, skip: u64 },
    /// The location is no longer valid: locate the file again. `why` says
    /// so, should the budget run out.
    Expired { why: String },
}

/// Contents already on this machine (an earlier snapshot, the official
/// client's cache), verified or trusted, so they need not be fetched.
pub trait Reuse: Send {
    /// Puts the whole content at `part` (a kept transfer), if it can.
    fn place(&self, digest: &Digest, size: u64, part: &Path) -> bool;
    /// A file holding the whole content, read where it is (a stream that
    /// keeps nothing).
    fn open(&self, digest: &Digest, size: u64) -> Option<File>;
}

/// What the caller takes from a transfer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Output {
    /// The tree in `dir/tree`, and its NAR hash.
    Tree,
    /// The snapshot's NAR, read by the caller (`Transfer::stream`).
    Stream,
}

/// What to transfer, from where, to where, and how.
pub struct Job {
    pub source: Arc<dyn Source>,
    pub files: Vec<FileEntry>,
    /// The partial directory: `parts/` holds what arrives, `tree/` the result.
    pub dir: PathBuf,
    pub connections: usize,
    /// Bytes per piece (a multiple of 4096 for O_DIRECT writes).
    pub piece: u64,
    pub reuse: Box<dyn Reuse>,
    pub output: Output,
    /// Whether what arrives is written to `dir/parts`, so that an
    /// interrupted transfer resumes (always so for a tree).
    pub keep: bool,
    pub budget: Budget,
    pub clock: Arc<dyn Clock + Send>,
    /// The input as messages show it.
    pub shown: String,
}

/// What a finished transfer leaves: the tree, and its NAR hash and size.
pub struct Transferred {
    pub tree: PathBuf,
    pub nar_sha256: [u8; 32],
    pub nar_size: u64,
}

/// A piece of a blob, as the queue holds it.
#[derive(Clone, Copy)]
struct PieceRef {
    blob: usize,
    piece: usize,
}

/// A file download that began, for the Observer (shown with -v).
struct Started {
    path: String,
    size: u64,
}

/// The readers every piece waits for before its buffer goes back: the
/// verifier, and the NAR hasher (a tree) or the stream.
#[derive(Clone, Copy)]
enum Reader {
    Verify = 0,
    Nar = 1,
}

/// A piece in memory.
struct Held {
    buf: Arc<Buffer>,
    /// Written to the part file (or not to be written at all).
    on_disk: bool,
}

struct Blob {
    planned: Planned,
    /// Where what arrives is written, when it is kept.
    record: Option<Record>,
    /// The whole content, on this machine, when a stream reads it there.
    donor: Option<File>,
    done: Mutex<Vec<bool>>,
    /// Bytes from 0 that the readers may read: received in this run (held),
    /// or on disk from before.
    watermark: AtomicU64,
    location: Mutex<Option<Url>>,
    /// Pieces received in this run, kept in memory until every reader has
    /// passed them and they are on disk (when kept): a reader that comes
    /// back to a piece no longer held finds it there.
    held: Mutex<BTreeMap<usize, Held>>,
    /// How far each reader has got.
    passed: [AtomicU64; 2],
}

impl Blob {
    fn path(&self) -> &str {
        &self.planned.paths[0]
    }

    fn advance_watermark(&self) {
        let done = lock(&self.done);
        let w = self.planned.pieces.iter().zip(done.iter()).take_while(|(_, &d)| d).last().map_or(0, |(p, _)| p.1);
        self.watermark.store(w, Ordering::SeqCst);
    }
}

/// A planned transfer: what is to come, and what an earlier run (or this
/// machine) already has.
pub struct Prepared {
    blobs: Vec<Blob>,
    queue: VecDeque<PieceRef>,
    /// The snapshot's NAR: framing and each file's contents, in order.
    layout: Vec<nar::Segment>,
    /// Bytes already on disk.
    resumed: u64,
    reused_bytes: u64,
}

impl Prepared {
    pub fn nar_size(&self) -> u64 {
        nar::size(&self.layout)
    }

    pub fn reused_bytes(&self) -> u64 {
        self.reused_bytes
    }
}

/// The threads' shared state.
struct Shared {
    source: Arc<dyn Source>,
    shown: String,
    blobs: Vec<Blob>,
    queue: Mutex<VecDeque<PieceRef>>,
    done_bytes: AtomicU64,
    /// All the bytes, and those last reported to the Observer.
    expected: u64,
    reported: AtomicU64,
    workers_left: AtomicUsize,
    work: Work,
    started: Mutex<Vec<Started>>,
    pool: Pool,
    budget: Budget,
    clock: Arc<dyn Clock + Send>,
    piece: u64,
    /// How many of the queue's next pieces the source hears of (`ahead`):
    /// those the workers take after the ones they fetch.
    ahead: usize,
    verified: AtomicBool,
    /// The NAR hash and size, for a tree; a stream is hashed by its store.
    hashing: bool,
    nar: Mutex<Option<([u8; 32], u64)>>,
}

impl Shared {
    fn finished(&self) -> bool {
        self.workers_left.load(Ordering::SeqCst) == 0
            && self.verified.load(Ordering::SeqCst)
            && (!self.hashing || lock(&self.nar).is_some())
    }

    /// Whether there is something to tell the Observer.
    fn news(&self) -> bool {
        !lock(&self.started).is_empty()
            || self.done_bytes.load(Ordering::Relaxed) / PROGRESS_STEP
                != self.reported.load(Ordering::Relaxed) / PROGRESS_STEP
    }

    fn report(&self, obs: &dyn Observer) {
        let started = std::mem::take(&mut *lock(&self.started));
        for f in started {
            obs.file(&f.path, f.size);
        }
        let done = self.done_bytes.load(Ordering::Relaxed);
        self.reported.store(done, Ordering::Relaxed);
        obs.progress(done, self.expected);
    }

    /// Lets go of each piece of `b` every reader has passed and that is on
    /// disk (if kept): its buffer goes back to the pool.
    fn release(&self, b: &Blob) {
        let done = b.passed.iter().map(|p| p.load(Ordering::SeqCst)).min().unwrap_or(0);
        let mut freed = Vec::new();
        let mut held = lock(&b.held);
        held.retain(|&pi, h| {
            let keep = b.planned.pieces[pi].1 > done || !h.on_disk;
            if !keep {
                freed.push(h.buf.clone());
            }
            keep
        });
        // Dropped once the lock is let go: the pool's notice must not come
        // under it.
        drop(held);
        drop(freed);
    }

    /// Waits on the caller's thread until `done()`, reporting to `obs`.
    fn pump(&self, obs: &dyn Observer, done: &dyn Fn() -> bool) -> Result<()> {
        self.work.pump(obs, done, &|| self.news(), &|obs| self.report(obs))
    }
}

/// A started transfer.
pub struct Transfer {
    shared: Arc<Shared>,
    dir: PathBuf,
    layout: Vec<nar::Segment>,
}

/// Plans `job`: one blob per content, in NAR order, each resumed from an
/// earlier run's records or taken whole from this machine when possible.
pub fn prepare(job: &Job) -> Result<Prepared> {
    let parts = job.dir.join("parts");
    fs::create_dir_all(&parts).map_err(|e| Error::io("create", &parts, e))?;
    let (planned, order) = plan::plan(&job.files, job.piece);
    let mut p = Prepared { blobs: Vec::new(), queue: VecDeque::new(), layout: Vec::new(), resumed: 0, reused_bytes: 0 };
    let size_of: BTreeMap<&str, u64> =
        planned.iter().flat_map(|b| b.paths.iter().map(move |path| (path.as_str(), b.size))).collect();
    let files: Vec<(&str, u64)> = order.iter().map(|path| (path.as_str(), size_of[path.as_str()])).collect();
    p.layout = nar::layout(&files);
    for (i, planned) in planned.into_iter().enumerate() {
        // A content at several paths is read again for each: it is kept
        // even in a stream that keeps nothing else.
        let keep = job.output == Output::Tree || job.keep || planned.paths.len() > 1;
        let whole = vec![true; planned.pieces.len()];
        let (record, donor, done) = if keep {
            let record = Record::new(&parts, &content_key(&planned.digest, planned.size));
            let count = planned.pieces.len();
            let earlier = record.earlier(planned.size, count).filter(|d| d.contains(&true) || planned.size == 0);
            // Content found elsewhere is put in place whole, without a part
            // file made for it first (thousands of small files, say).
            let done = match earlier {
                Some(done) => done,
                None if planned.size > 0 && job.reuse.place(&planned.digest, planned.size, &record.part) => {
                    record.all_finished(count)?;
                    p.reused_bytes += planned.size;
                    whole
                }
                None => {
                    record.fresh(planned.size)?;
                    vec![false; count]
                }
            };
            (Some(record), None, done)
        } else {
            match job.reuse.open(&planned.digest, planned.size).filter(|_| planned.size > 0) {
                Some(f) => {
                    p.reused_bytes += planned.size;
                    (None, Some(f), whole)
                }
                None => (None, None, vec![false; planned.pieces.len()]),
            }
        };
        for (n, &(s, e)) in planned.pieces.iter().enumerate() {
            if done[n] {
                p.resumed += e - s;
            } else {
                p.queue.push_back(PieceRef { blob: i, piece: n });
            }
        }
        let blob = Blob {
            planned,
            record,
            donor,
            done: Mutex::new(done),
            watermark: AtomicU64::new(0),
            location: Mutex::new(None),
            held: Mutex::new(BTreeMap::new()),
            passed: Default::default(),
        };
        blob.advance_watermark();
        p.blobs.push(blob);
    }
    Ok(p)
}

/// Starts the workers and the verifier of a prepared transfer as threads of
/// `work`, and, for a tree, the NAR hasher.
pub fn start(job: Job, prepared: Prepared, work: &Work) -> Transfer {
    let Prepared { blobs, queue, layout, resumed, .. } = prepared;
    let workers = job.connections.max(1).min(queue.len().max(1));
    let hashing = job.output == Output::Tree;
    let shared = Arc::new(Shared {
        source: job.source,
        shown: job.shown,
        expected: blobs.iter().map(|b| b.planned.size).sum(),
        reported: AtomicU64::new(u64::MAX),
        blobs,
        queue: Mutex::new(queue),
        done_bytes: AtomicU64::new(resumed),
        workers_left: AtomicUsize::new(workers),
        work: work.clone(),
        started: Mutex::new(Vec::new()),
        pool: Pool::new(job.connections.max(1) + 4, job.piece as usize, work),
        budget: job.budget,
        clock: job.clock,
        piece: job.piece,
        ahead: workers,
        verified: AtomicBool::new(false),
        hashing,
        nar: Mutex::new(None),
    });
    for _ in 0..workers {
        let s = shared.clone();
        work.spawn("hf-download", move || {
            worker(&s)?;
            s.workers_left.fetch_sub(1, Ordering::SeqCst);
            s.work.notify();
            Ok(())
        });
    }
    let s = shared.clone();
    work.spawn("hf-verify", move || {
        verify_all(&s)?;
        s.verified.store(true, Ordering::SeqCst);
        s.work.notify();
        Ok(())
    });
    if hashing {
        let (s, layout) = (shared.clone(), layout.clone());
        work.spawn("hf-nar-hash", move || {
            let nar = hash_nar(&s, &layout)?;
            *lock(&s.nar) = Some(nar);
            s.work.notify();
            Ok(())
        });
    }
    Transfer { shared, dir: job.dir, layout }
}

impl Transfer {
    /// Waits until every file is in, verified and hashed, telling `obs` of
    /// progress; then places the tree.
    pub fn wait(self, obs: &dyn Observer) -> Result<Transferred> {
        let s = &*self.shared;
        s.pump(obs, &|| s.finished())?;
        let (nar_sha256, nar_size) = lock(&s.nar).take().expect("finished");
        let tree = self.dir.join("tree");
        place(&s.blobs, &tree)?;
        Ok(Transferred { tree, nar_sha256, nar_size })
    }

    /// The snapshot's NAR, to be read on the caller's thread.
    pub fn stream(self) -> NarStream {
        let blob_of = self
            .shared
            .blobs
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.planned.paths.iter().map(move |p| (p.clone(), i)))
            .collect();
        NarStream {
            shared: self.shared,
            layout: self.layout,
            blob_of,
            at: 0,
            offset: 0,
            reader: None,
            lent: Lent::default(),
        }
    }
}

/// A snapshot's NAR as it arrives: framing from the layout, contents from
/// the pieces (in memory, or on disk once written there), which the
/// verifier reads too, from the same memory. Its last bytes wait until the
/// verifier has checked every file (and the workers have ended, what they
/// keep on disk), so a store never receives a whole NAR of anything
/// unchecked.
///
/// The stream lends its bytes rather than copying them into the caller's
/// buffer: Nix drains a source 8 KiB at a time, and a round through the
/// engine's locks for each of those reads cost the stream's thread (the one
/// feeding a nix-daemon, whose own work bounds a fetch through it) more
/// than the copy itself.
pub struct NarStream {
    shared: Arc<Shared>,
    layout: Vec<nar::Segment>,
    blob_of: BTreeMap<String, usize>,
    /// The segment being read, and how far.
    at: usize,
    offset: u64,
    reader: Option<GrowingReader>,
    /// What the last call lent: a piece in memory (kept from going back to
    /// the pool until the next call), or bytes read from disk.
    lent: Lent,
}

/// Where the bytes a stream lent are.
enum Span {
    End,
    /// Of the framing segment `seg`.
    Framing {
        seg: usize,
        from: usize,
        to: usize,
    },
    /// Of the piece in `Lent::piece`.
    Held {
        from: usize,
        to: usize,
    },
    /// At the start of `Lent::read`.
    Read(usize),
}

impl Span {
    fn len(&self) -> usize {
        match *self {
            Span::End => 0,
            Span::Framing { from, to, .. } | Span::Held { from, to } => to - from,
            Span::Read(n) => n,
        }
    }
}

#[derive(Default)]
struct Lent {
    piece: Option<Arc<Buffer>>,
    read: Vec<u8>,
}

impl Lent {
    /// The bytes of a span of contents (framing is the stream's own).
    fn bytes(&self, span: Span) -> &[u8] {
        match span {
            Span::End => &[],
            Span::Held { from, to } => &self.piece.as_ref().expect("a lent piece").bytes()[from..to],
            Span::Read(n) => &self.read[..n],
            Span::Framing { .. } => unreachable!("framing is the stream's, not lent"),
        }
    }
}

/// How much is read from disk at once for the stream and the verifier
/// (contents an earlier run or this machine has): big enough that a read
/// costs little beside its bytes. Tests make it smaller than their pieces,
/// so that a piece takes several reads there too.
#[cfg(not(test))]
const READ_SPAN: usize = 1 << 20;
#[cfg(test)]
const READ_SPAN: usize = 4096;

impl NarStream {
    /// The NAR's next bytes, lent until the next call; empty at its end.
    /// Waits for them, telling `obs` of progress. Fails with the fetch's
    /// first error: a part the verifier found corrupt is gone from disk by
    /// the time its error is told, and the stream must not report the
    /// missing file in its place.
    pub fn next(&mut self, obs: &dyn Observer) -> Result<&[u8]> {
        match self.next_span(obs) {
            Ok(span) => Ok(self.bytes(span)),
            Err(e) => {
                let work = &self.shared.work;
                work.fail(e);
                Err(work.error().expect("the fetch has just failed"))
            }
        }
    }

    fn bytes(&self, span: Span) -> &[u8] {
        match span {
            Span::Framing { seg, from, to } => match &self.layout[seg] {
                nar::Segment::Framing(bytes) => &bytes[from..to],
                nar::Segment::Contents { .. } => unreachable!("a framing span of a contents segment"),
            },
            span => self.lent.bytes(span),
        }
    }

    fn next_span(&mut self, obs: &dyn Observer) -> Result<Span> {
        let s = self.shared.clone();
        if s.work.stopped() {
            return Err(s.work.error().unwrap_or_else(Error::interrupted));
        }
        if s.news() {
            s.report(obs);
        }
        loop {
            let Some(segment) = self.layout.get(self.at) else { return Ok(Span::End) };
            let (span, len) = match segment {
                nar::Segment::Framing(bytes) => {
                    // The NAR ends once every file is verified and every
                    // worker has ended, its last piece on disk if kept: the
                    // glue may then remove what was kept.
                    if self.at + 1 == self.layout.len() && self.offset == 0 {
                        s.pump(obs, &|| s.finished())?;
                    }
                    let from = self.offset as usize;
                    (Span::Framing { seg: self.at, from, to: bytes.len() }, bytes.len() as u64)
                }
                nar::Segment::Contents { path, size } => {
                    let file = Sending { path, size: *size, at: self.offset };
                    (file.lend(&s, &mut self.reader, &self.blob_of, &mut self.lent, obs)?, *size)
                }
            };
            let n = span.len();
            self.offset += n as u64;
            if self.offset == len {
                self.at += 1;
                self.offset = 0;
                self.reader = None;
            }
            if n > 0 {
                return Ok(span);
            }
        }
    }
}

/// The file a stream is sending, and how far it is.
struct Sending<'a> {
    path: &'a str,
    size: u64,
    at: u64,
}

impl Sending<'_> {
    /// Its next bytes, waiting (and reporting) for them to arrive: where
    /// they are, and how many.
    fn lend(
        &self,
        s: &Arc<Shared>,
        reader: &mut Option<GrowingReader>,
        blob_of: &BTreeMap<String, usize>,
        lent: &mut Lent,
        obs: &dyn Observer,
    ) -> Result<Span> {
        let path = self.path;
        if self.at == self.size {
            return Ok(Span::End);
        }
        let unreadable = |e: io::Error| Error::new(Kind::LocalIo, format!("cannot read '{path}': {e}"));
        let r = match reader {
            Some(r) => r,
            None => reader.insert(GrowingReader::new(s, blob_of[path], Reader::Nar).map_err(unreadable)?),
        };
        if !r.ready() {
            s.pump(obs, &|| r.ready())?;
        }
        let span = r.lend(lent).map_err(|e| s.work.error().unwrap_or_else(|| unreadable(e)))?;
        if span.len() == 0 {
            return Err(Error::new(Kind::Bug, format!("'{path}' ended before its {} bytes", self.size)));
        }
        Ok(span)
    }
}

/// What a read says when the fetch stopped under it. (Not
/// `ErrorKind::Interrupted`, which readers retry.)
fn stopped() -> io::Error {
    io::Error::other("the fetch stopped")
}

/// Tells waiters once per this many bytes received, so that progress moves
/// without a wake-up per read.
const PROGRESS_STEP: u64 = 1 << 20;

fn worker(s: &Shared) -> Result<()> {
    loop {
        // The next piece together with a buffer of its size: pieces then
        // start in queue order, so the earliest unfinished one always gets a
        // buffer and the readers waiting for it are never starved by later
        // pieces.
        // None once the queue is empty or the fetch stopped.
        let mut got = None;
        s.work.wait_while(|| {
            let mut queue = lock(&s.queue);
            let Some(front) = queue.front() else { return false };
            let (start, end) = s.blobs[front.blob].planned.pieces[front.piece];
            got = s.pool.try_take((end - start) as usize).map(|buf| (queue.pop_front().expect("a front"), buf));
            if got.is_some() {
                // Told while the queue is locked, so that a piece is always
                // told of before a worker takes it.
                for p in queue.iter().take(s.ahead) {
                    let (start, end) = s.blobs[p.blob].planned.pieces[p.piece];
                    s.source.ahead(s.blobs[p.blob].path(), start, end);
                }
            }
            got.is_none()
        });
        let Some((next, mut buf)) = got.filter(|_| !s.work.stopped()) else { return Ok(()) };
        let b = &s.blobs[next.blob];
        work::working_on(b.path());
        if next.piece == 0 {
            lock(&s.started).push(Started { path: b.path().to_string(), size: b.planned.size });
            s.work.notify();
        }
        let (start, end) = b.planned.pieces[next.piece];
        let len = (end - start) as usize;
        fetch_piece(s, b, start, end, &mut buf.bytes_mut()[..len])?;
        // The readers may take the piece from memory at once; its write to
        // disk, which only a later run needs, goes on meanwhile.
        let buf = Arc::new(buf);
        lock(&b.held).insert(next.piece, Held { buf: buf.clone(), on_disk: b.record.is_none() });
        lock(&b.done)[next.piece] = true;
        b.advance_watermark();
        s.work.notify();
        if let Some(record) = &b.record {
            write_piece(record, &buf.bytes()[..len], start)?;
            record.finished(next.piece)?;
            if let Some(h) = lock(&b.held).get_mut(&next.piece) {
                h.on_disk = true;
            }
            drop(buf);
            s.release(b);
        }
    }
}

/// Fetches bytes `[start, end)` of blob `b` into `piece` under one retry
/// budget: a dropped or stalled connection resumes within the piece, an
/// expired location is located again, and 429/5xx wait as told.
fn fetch_piece(s: &Shared, b: &Blob, start: u64, end: u64, piece: &mut [u8]) -> Result<()> {
    let path = b.path();
    let mut pos = start;
    let what = || format!("'{path}' of '{}' (bytes {start}-{})", s.shown, end - 1);
    retry::run(s.budget, &what, &*s.clock, &s.work, |_| {
        let ranged = locate(s, b).and_then(|url| s.source.range(&url, path, pos, end));
        let (reader, skip) = match ranged {
            Attempt::Done(Ranged::Body { reader, skip }) => (reader, skip),
            Attempt::Done(Ranged::Expired { why }) => {
                *lock(&b.location) = None;
                return Attempt::retry(Kind::AccessDenied, why);
            }
            Attempt::Retry { wait, why, kind } => return Attempt::Retry { wait, why, kind },
            Attempt::Fail(e) => return Attempt::Fail(e),
        };
        match copy_body(s, piece, start, reader, skip, &mut pos) {
            Ok(()) if pos == end => Attempt::Done(()),
            Ok(()) => Attempt::retry(Kind::Unreachable, format!("the connection closed at byte {pos} of '{path}'")),
            Err(_) if s.work.stopped() => Attempt::Fail(Error::interrupted()),
            // Bytes that are not what was promised (a Xet chunk that does
            // not decode) against a connection that broke.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Attempt::retry(Kind::CorruptData, s.source.broke_off(path, pos, &e))
            }
            Err(e) => Attempt::retry(Kind::Unreachable, s.source.broke_off(path, pos, &e)),
        }
    })
}

/// The file's location: the first worker to need it locates it while the
/// others on the same file wait for its answer.
fn locate(s: &Shared, b: &Blob) -> Attempt<Url> {
    let mut loc = lock(&b.location);
    if let Some(u) = &*loc {
        return Attempt::Done(u.clone());
    }
    let answer = s.source.locate(b.path());
    if let Attempt::Done(u) = &answer {
        *loc = Some(u.clone());
    }
    answer
}

/// Reads the body into the piece (which starts at file offset `start`) from
/// `*pos` on, after skipping `skip` bytes.
fn copy_body(
    s: &Shared,
    piece: &mut [u8],
    start: u64,
    mut body: Box<dyn Read + Send>,
    mut skip: u64,
    pos: &mut u64,
) -> io::Result<()> {
    let end = start + piece.len() as u64;
    let mut scratch = Vec::new();
    loop {
        if s.work.stopped() {
            return Err(stopped());
        }
        if *pos >= end {
            return Ok(());
        }
        if skip > 0 {
            // Bytes before the piece: read them somewhere else and drop them.
            scratch.resize(skip.min(1 << 18) as usize, 0);
            let n = body.read(&mut scratch)?;
            if n == 0 {
                return Ok(());
            }
            skip -= n as u64;
            continue;
        }
        let at = (*pos - start) as usize;
        let n = body.read(&mut piece[at..])?;
        if n == 0 {
            return Ok(());
        }
        *pos += n as u64;
        let before = s.done_bytes.fetch_add(n as u64, Ordering::Relaxed);
        if before / PROGRESS_STEP != (before + n as u64) / PROGRESS_STEP {
            s.work.notify();
        }
    }
}

/// Writes a received piece where it belongs, bypassing the page cache where
/// the system and file system allow (the readers have the bytes in memory
/// already).
fn write_piece(record: &Record, data: &[u8], offset: u64) -> Result<()> {
    let part = &record.part;
    #[cfg(target_os = "linux")]
    if data.len() % ALIGN == 0 && offset % ALIGN as u64 == 0 {
        use std::os::unix::fs::OpenOptionsExt;
        match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(part) {
            Ok(f) => match f.write_all_at(data, offset) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(write_error(part, e)),
                Err(_) => {}
            },
            Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(Error::io("open", part, e)),
            Err(_) => {}
        }
    }
    let f = OpenOptions::new().write(true).open(part).map_err(|e| Error::io("open", part, e))?;
    f.write_all_at(data, offset).map_err(|e| write_error(part, e))
}

fn write_error(path: &Path, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        let dir = path.parent().and_then(|p| p.parent()).unwrap_or(path);
        return Error::new(
            Kind::LocalIo,
            format!(
                "No space left on device for the partial download in {}; free some space (or point XDG_CACHE_HOME \
                 to a larger disk) and run again: what is already downloaded is kept",
                dir.display()
            ),
        );
    }
    Error::io("write", path, e)
}

/// Reads a blob as far as it has arrived, waiting for more: from the held
/// buffer of a piece received in this run, else from where it is on disk
/// (the part file, or the content found on this machine).
struct GrowingReader {
    s: Arc<Shared>,
    blob: usize,
    part: Option<File>,
    pos: u64,
    reader: Reader,
}

impl GrowingReader {
    fn new(s: &Arc<Shared>, blob: usize, reader: Reader) -> io::Result<Self> {
        let part = s.blobs[blob].record.as_ref().map(|r| File::open(&r.part)).transpose()?;
        Ok(GrowingReader { s: s.clone(), blob, part, pos: 0, reader })
    }

    fn b(&self) -> &Blob {
        &self.s.blobs[self.blob]
    }

    fn read_from(&self, buf: &mut [u8]) -> io::Result<usize> {
        let b = self.b();
        let (pi, within) = self.piece_at();
        if let Some(held) = lock(&b.held).get(&pi) {
            buf.copy_from_slice(&held.buf.bytes()[within..within + buf.len()]);
            return Ok(buf.len());
        }
        self.read_on_disk(buf)
    }

    /// The piece the next byte is in, and where in it.
    fn piece_at(&self) -> (usize, usize) {
        let pi = (self.pos / self.s.piece) as usize;
        (pi, (self.pos - pi as u64 * self.s.piece) as usize)
    }

    fn read_on_disk(&self, buf: &mut [u8]) -> io::Result<usize> {
        let b = self.b();
        match b.donor.as_ref().or(self.part.as_ref()) {
            Some(f) => f.read_at(buf, self.pos),
            None => Err(io::Error::other(format!(
                "piece {} of '{}' is neither in memory nor on disk",
                self.piece_at().0,
                b.path()
            ))),
        }
    }

    /// How many bytes from the next one have arrived, within its piece and
    /// at most `max`, waiting for at least one; 0 at the end.
    fn arrived(&self, max: usize) -> io::Result<usize> {
        let (b, pos) = (self.b(), self.pos);
        if pos >= b.planned.size {
            return Ok(0);
        }
        self.s.work.wait_while(|| !self.ready());
        let w = b.watermark.load(Ordering::SeqCst);
        if w <= pos {
            return Err(stopped());
        }
        let piece_end = (pos / self.s.piece + 1) * self.s.piece;
        Ok(((w.min(piece_end) - pos) as usize).min(max))
    }

    /// The next bytes as a stream lends them: the piece they are in when it
    /// is in memory, else read from disk into `lent`.
    fn lend(&mut self, lent: &mut Lent) -> io::Result<Span> {
        let n = self.arrived(usize::MAX)?;
        if n == 0 {
            return Ok(Span::End);
        }
        let (pi, within) = self.piece_at();
        let held = lock(&self.b().held).get(&pi).map(|h| h.buf.clone());
        let span = match held {
            Some(buf) => {
                lent.piece = Some(buf);
                Span::Held { from: within, to: within + n }
            }
            None => {
                lent.piece = None;
                lent.read.resize(n.min(READ_SPAN), 0);
                Span::Read(self.read_on_disk(&mut lent.read)?)
            }
        };
        self.pos += span.len() as u64;
        self.passed();
        Ok(span)
    }

    /// Records progress, letting go of what every reader has passed.
    fn passed(&self) {
        let b = self.b();
        b.passed[self.reader as usize].fetch_max(self.pos, Ordering::SeqCst);
        self.s.release(b);
    }

    /// Whether the next byte has arrived (or there is none).
    fn ready(&self) -> bool {
        let b = self.b();
        self.pos >= b.planned.size || b.watermark.load(Ordering::SeqCst) > self.pos
    }
}

impl Read for GrowingReader {
    /// Reads, waiting for bytes to arrive.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.arrived(buf.len())?;
        if n == 0 {
            return Ok(0);
        }
        let n = self.read_from(&mut buf[..n])?;
        self.pos += n as u64;
        self.passed();
        Ok(n)
    }
}

/// Checks every blob against the Hub's hash as its bytes land, hashing them
/// where they are (the piece in memory, as the stream lends it). A bad blob
/// is discarded with its record, so no later run reuses it.
fn verify_all(s: &Arc<Shared>) -> Result<()> {
    for (i, b) in s.blobs.iter().enumerate() {
        work::working_on(b.path());
        let unreadable = |e: io::Error| Error::new(Kind::LocalIo, format!("cannot read '{}': {e}", b.path()));
        let mut r = GrowingReader::new(s, i, Reader::Verify).map_err(unreadable)?;
        let mut verifier = Verifier::new(&b.planned.digest, b.planned.size);
        let mut lent = Lent::default();
        loop {
            // Bytes already here would otherwise be hashed on after Ctrl-C.
            if s.work.stopped() {
                return Err(Error::interrupted());
            }
            match r.lend(&mut lent) {
                Ok(span) if span.len() == 0 => break,
                Ok(span) => verifier.update(lent.bytes(span)),
                Err(_) if s.work.stopped() => return Err(Error::interrupted()),
                Err(e) => return Err(unreadable(e)),
            }
        }
        if let Err(e) = verifier.finish(b.path(), &s.shown) {
            // Gone before the error is told (the process may end then), so
            // that no later run reuses it.
            s.work.fail_after(e.clone(), || {
                if let Some(r) = &b.record {
                    r.discard()
                }
            });
            return Err(e);
        }
    }
    Ok(())
}

/// The snapshot's NAR hash and size, read as the files land.
fn hash_nar(s: &Arc<Shared>, layout: &[nar::Segment]) -> Result<([u8; 32], u64)> {
    let blob_of: BTreeMap<&str, usize> =
        s.blobs.iter().enumerate().flat_map(|(i, b)| b.planned.paths.iter().map(move |p| (p.as_str(), i))).collect();
    let hashed = nar::hash(layout, |p| {
        work::working_on(p);
        Ok(Box::new(GrowingReader::new(s, blob_of[p], Reader::Nar)?) as Box<dyn Read>)
    });
    match hashed {
        Ok(h) => Ok(h),
        Err(_) if s.work.stopped() => Err(Error::interrupted()),
        Err(e) => Err(Error::new(Kind::LocalIo, format!("hashing the snapshot failed: {e}"))),
    }
}

/// Moves each verified part to its path(s) in the tree; a content found at
/// several paths is hard-linked (or copied where links are not possible).
fn place(blobs: &[Blob], tree: &Path) -> Result<()> {
    if tree.exists() {
        fs::remove_dir_all(tree).map_err(|e| Error::io("clear", tree, e))?;
    }
    fs::create_dir_all(tree).map_err(|e| Error::io("create", tree, e))?;
    for b in blobs {
        let record = b.record.as_ref().expect("a tree keeps every content");
        let first = tree.join(b.path());
        for p in &b.planned.paths {
            let target = tree.join(p);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            }
            let placed = if *p == b.planned.paths[0] {
                fs::rename(&record.part, &target)
            } else {
                fs::hard_link(&first, &target).or_else(|_| fs::copy(&first, &target).map(|_| ()))
            };
            placed.map_err(|e| Error::io("place", &target, e))?;
        }
        record.done();
    }
    Ok(())
}
