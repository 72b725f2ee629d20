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
//!   every file, the other computes the snapshot's NAR hash, both in order
//!   as the contiguous prefix grows. Bytes are written once, never through
//!   the page cache, and hashed from memory; pieces from an earlier run or
//!   from this machine are read back from disk.
//!
//! A transfer is prepared (planned, resumed), started (its threads, under
//! the fetch's `Work`), and waited for. Only the waiting thread talks to
//! the `Observer`; the others are detached, so that Ctrl-C returns at once
//! even while a read is blocked.

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
use crate::verify::HashingReader;
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
}

pub enum Ranged {
    /// The bytes; `skip` leading ones are not wanted (a server that ignored
    /// Range sends the file from its start).
    Body { reader: Box<dyn Read + Send>, skip: u64 },
    /// The location is no longer valid: locate the file again. `why` says
    /// so, should the budget run out.
    Expired { why: String },
}

/// Puts a whole content at the given part file from this machine (an
/// earlier snapshot, the official client's cache), when it can.
pub type Reuse = Box<dyn Fn(&Digest, u64, &Path) -> bool + Send>;

/// What to transfer, from where, to where, and how.
pub struct Job {
    pub source: Arc<dyn Source>,
    pub files: Vec<FileEntry>,
    /// The partial directory: `parts/` holds what arrives, `tree/` the result.
    pub dir: PathBuf,
    pub connections: usize,
    /// Bytes per piece (a multiple of 4096 for O_DIRECT writes).
    pub piece: u64,
    pub reuse: Reuse,
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
    /// Bytes that came from this machine instead of the source.
    pub reused_bytes: u64,
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

/// The two readers every piece waits for before its buffer goes back.
#[derive(Clone, Copy)]
enum Reader {
    Verify = 0,
    Nar = 1,
}

struct Blob {
    planned: Planned,
    record: Record,
    done: Mutex<Vec<bool>>,
    /// Bytes from 0 that are on disk.
    watermark: AtomicU64,
    location: Mutex<Option<Url>>,
    /// Pieces received in this run and not yet passed by both readers.
    held: Mutex<BTreeMap<usize, Buffer>>,
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
    /// Every path, in NAR order.
    order: Vec<String>,
    /// Bytes already on disk.
    resumed: u64,
    reused_bytes: u64,
}

/// The threads' shared state.
struct Shared {
    source: Arc<dyn Source>,
    shown: String,
    blobs: Vec<Blob>,
    queue: Mutex<VecDeque<PieceRef>>,
    done_bytes: AtomicU64,
    workers_left: AtomicUsize,
    work: Work,
    started: Mutex<Vec<Started>>,
    pool: Pool,
    budget: Budget,
    clock: Arc<dyn Clock + Send>,
    piece: u64,
    verified: AtomicBool,
    nar: Mutex<Option<([u8; 32], u64)>>,
}

impl Shared {
    fn finished(&self) -> bool {
        self.workers_left.load(Ordering::SeqCst) == 0
            && self.verified.load(Ordering::SeqCst)
            && lock(&self.nar).is_some()
    }
}

/// A started transfer.
pub struct Transfer {
    shared: Arc<Shared>,
    dir: PathBuf,
    expected: u64,
    reused_bytes: u64,
    /// Progress as last reported.
    reported: AtomicU64,
}

/// Plans `job`: one blob per content, in NAR order, each resumed from an
/// earlier run's records or taken whole from this machine when possible.
pub fn prepare(job: &Job) -> Result<Prepared> {
    let parts = job.dir.join("parts");
    fs::create_dir_all(&parts).map_err(|e| Error::io("create", &parts, e))?;
    let (planned, order) = plan::plan(&job.files, job.piece);
    let mut p = Prepared { blobs: Vec::new(), queue: VecDeque::new(), order, resumed: 0, reused_bytes: 0 };
    for (i, planned) in planned.into_iter().enumerate() {
        let record = Record::new(&parts, &content_key(&planned.digest, planned.size));
        let mut done = record.resume(planned.size, planned.pieces.len())?;
        let whole = planned.size > 0 && !done.contains(&true);
        if whole && (job.reuse)(&planned.digest, planned.size, &record.part) {
            done = vec![true; planned.pieces.len()];
            record.all_finished(done.len())?;
            p.reused_bytes += planned.size;
        }
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

/// Starts the workers, the verifier and the NAR hasher of a prepared
/// transfer as threads of `work`.
pub fn start(job: Job, prepared: Prepared, work: &Work) -> Transfer {
    let Prepared { blobs, queue, order, resumed, reused_bytes } = prepared;
    let expected = blobs.iter().map(|b| b.planned.size).sum();
    let workers = job.connections.max(1).min(queue.len().max(1));
    let shared = Arc::new(Shared {
        source: job.source,
        shown: job.shown,
        blobs,
        queue: Mutex::new(queue),
        done_bytes: AtomicU64::new(resumed),
        workers_left: AtomicUsize::new(workers),
        work: work.clone(),
        started: Mutex::new(Vec::new()),
        pool: Pool::new(job.connections.max(1) + 4, job.piece as usize),
        budget: job.budget,
        clock: job.clock,
        piece: job.piece,
        verified: AtomicBool::new(false),
        nar: Mutex::new(None),
    });
    for _ in 0..workers {
        let s = shared.clone();
        work.spawn(move || {
            worker(&s)?;
            s.workers_left.fetch_sub(1, Ordering::SeqCst);
            s.work.notify();
            Ok(())
        });
    }
    let s = shared.clone();
    work.spawn(move || {
        verify_all(&s)?;
        s.verified.store(true, Ordering::SeqCst);
        s.work.notify();
        Ok(())
    });
    let s = shared.clone();
    work.spawn(move || {
        let nar = hash_nar(&s, &order)?;
        *lock(&s.nar) = Some(nar);
        s.work.notify();
        Ok(())
    });
    Transfer { shared, dir: job.dir, expected, reused_bytes, reported: AtomicU64::new(u64::MAX) }
}

/// Fetches `job.files` into `job.dir/tree`, resuming from `job.dir/parts`.
#[cfg(test)]
pub fn transfer(job: Job, work: &Work, obs: &dyn Observer) -> Result<Transferred> {
    let prepared = prepare(&job)?;
    start(job, prepared, work).wait(obs)
}

impl Transfer {
    /// Waits until every file is in, verified and hashed, telling `obs` of
    /// progress; then places the tree.
    pub fn wait(self, obs: &dyn Observer) -> Result<Transferred> {
        let s = &*self.shared;
        s.work.pump(obs, &|| s.finished(), &|| self.news(), &|obs| self.report(obs))?;
        let (nar_sha256, nar_size) = lock(&s.nar).take().expect("finished");
        let tree = self.dir.join("tree");
        place(&s.blobs, &tree)?;
        Ok(Transferred { tree, nar_sha256, nar_size, reused_bytes: self.reused_bytes })
    }

    /// Whether there is something to tell the Observer.
    fn news(&self) -> bool {
        !lock(&self.shared.started).is_empty()
            || self.shared.done_bytes.load(Ordering::Relaxed) != self.reported.load(Ordering::Relaxed)
    }

    fn report(&self, obs: &dyn Observer) {
        let started = std::mem::take(&mut *lock(&self.shared.started));
        for f in started {
            obs.file(&f.path, f.size);
        }
        let done = self.shared.done_bytes.load(Ordering::Relaxed);
        self.reported.store(done, Ordering::Relaxed);
        obs.progress(done, self.expected);
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
        // A buffer first, then the next piece: pieces then start in queue
        // order, so the earliest unfinished one always has a buffer and the
        // readers waiting for it are never starved by later pieces.
        let Some(mut buf) = s.pool.take(&s.work) else { return Ok(()) };
        let Some(next) = lock(&s.queue).pop_front() else {
            s.pool.give(buf, &s.work);
            return Ok(());
        };
        let b = &s.blobs[next.blob];
        work::working_on(b.path());
        if next.piece == 0 {
            lock(&s.started).push(Started { path: b.path().to_string(), size: b.planned.size });
            s.work.notify();
        }
        let (start, end) = b.planned.pieces[next.piece];
        let len = (end - start) as usize;
        fetch_piece(s, b, start, end, &mut buf.bytes_mut()[..len])?;
        write_piece(b, &buf.bytes()[..len], start)?;
        b.record.finished(next.piece)?;
        lock(&b.held).insert(next.piece, buf);
        lock(&b.done)[next.piece] = true;
        b.advance_watermark();
        s.work.notify();
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
fn write_piece(b: &Blob, data: &[u8], offset: u64) -> Result<()> {
    let part = &b.record.part;
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
/// buffer of a piece received in this run, else from the part file.
struct GrowingReader<'a> {
    s: &'a Shared,
    b: &'a Blob,
    file: File,
    pos: u64,
    reader: Reader,
}

impl<'a> GrowingReader<'a> {
    fn new(s: &'a Shared, b: &'a Blob, reader: Reader) -> io::Result<Self> {
        Ok(GrowingReader { s, b, file: File::open(&b.record.part)?, pos: 0, reader })
    }

    fn read_from(&self, buf: &mut [u8]) -> io::Result<usize> {
        let pi = (self.pos / self.s.piece) as usize;
        let within = (self.pos - pi as u64 * self.s.piece) as usize;
        if let Some(held) = lock(&self.b.held).get(&pi) {
            buf.copy_from_slice(&held.bytes()[within..within + buf.len()]);
            return Ok(buf.len());
        }
        self.file.read_at(buf, self.pos)
    }

    /// Records progress and hands back each piece both readers have passed.
    fn passed(&self) {
        self.b.passed[self.reader as usize].fetch_max(self.pos, Ordering::SeqCst);
        let done = self.b.passed.iter().map(|p| p.load(Ordering::SeqCst)).min().unwrap_or(0);
        let mut held = lock(&self.b.held);
        let mut freed = Vec::new();
        while let Some((&pi, _)) = held.first_key_value() {
            if self.b.planned.pieces[pi].1 > done {
                break;
            }
            freed.push(held.remove(&pi).expect("just seen"));
        }
        drop(held);
        for buf in freed {
            self.s.pool.give(buf, &self.s.work);
        }
    }
}

impl Read for GrowingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.b.planned.size {
            return Ok(0);
        }
        let (b, pos) = (self.b, self.pos);
        self.s.work.wait_while(|| b.watermark.load(Ordering::SeqCst) <= pos);
        let w = self.b.watermark.load(Ordering::SeqCst);
        if w <= self.pos {
            return Err(stopped());
        }
        let piece_end = (self.pos / self.s.piece + 1) * self.s.piece;
        let n = ((w.min(piece_end) - self.pos) as usize).min(buf.len());
        let n = self.read_from(&mut buf[..n])?;
        self.pos += n as u64;
        self.passed();
        Ok(n)
    }
}

/// Checks every blob against the Hub's hash as its bytes land. A bad blob is
/// discarded with its record, so no later run reuses it.
fn verify_all(s: &Shared) -> Result<()> {
    for b in &s.blobs {
        work::working_on(b.path());
        let r = GrowingReader::new(s, b, Reader::Verify).map_err(|e| Error::io("read", &b.record.part, e))?;
        let checked = match HashingReader::new(r, &b.planned.digest, b.planned.size).check(b.path(), &s.shown) {
            Ok(checked) => checked,
            Err(_) if s.work.stopped() => return Err(Error::interrupted()),
            Err(e) => return Err(Error::io("read", &b.record.part, e)),
        };
        if let Err(e) = checked {
            // Gone before the error is told (the process may end then), so
            // that no later run reuses it.
            s.work.fail_after(e.clone(), || b.record.discard());
            return Err(e);
        }
    }
    Ok(())
}

/// The snapshot's NAR hash and size, read as the files land.
fn hash_nar(s: &Shared, order: &[String]) -> Result<([u8; 32], u64)> {
    let blob_of: BTreeMap<&str, &Blob> =
        s.blobs.iter().flat_map(|b| b.planned.paths.iter().map(move |p| (p.as_str(), b))).collect();
    let files: Vec<(&str, u64)> = order.iter().map(|p| (p.as_str(), blob_of[p.as_str()].planned.size)).collect();
    let hashed = nar::hash(&nar::layout(&files), |p| {
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
        let first = tree.join(b.path());
        for p in &b.planned.paths {
            let target = tree.join(p);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            }
            let placed = if *p == b.planned.paths[0] {
                fs::rename(&b.record.part, &target)
            } else {
                fs::hard_link(&first, &target).or_else(|_| fs::copy(&first, &target).map(|_| ()))
            };
            placed.map_err(|e| Error::io("place", &target, e))?;
        }
        b.record.done();
    }
    Ok(())
}
