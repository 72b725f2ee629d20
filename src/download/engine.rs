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
//! Only the calling thread talks to the `Observer`; workers are detached so
//! that Ctrl-C returns at once even while a read is blocked.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use url::Url;

use super::plan::{self, Planned};
use super::pool::{Buffer, Pool, ALIGN};
use super::resume::Record;
use crate::base::{content_key, Digest, FileEntry, Observer, Stop};
use crate::error::{Error, Kind, Result};
use crate::nar;
use crate::retry::{self, Attempt, Budget, Clock};
use crate::verify::Verifier;

/// Where a file's bytes come from: the Hub (see `download`), or memory in
/// tests. Each call is one attempt; the engine runs them under the budget.
pub trait Source: Send + Sync {
    /// Where the bytes of `path` are served.
    fn locate(&self, path: &str) -> Attempt<Url>;
    /// Bytes `[start, end)` of `path` from `at`.
    fn range(&self, at: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged>;
}

pub enum Ranged {
    /// The bytes; `skip` leading ones are not wanted (a server that ignored
    /// Range sends the file from its start).
    Body { reader: Box<dyn Read + Send>, skip: u64 },
    /// The location is no longer valid: locate the file again.
    Expired,
}

/// What to transfer, from where, to where, and how.
pub struct Job<'a> {
    pub source: Arc<dyn Source>,
    pub files: &'a [FileEntry],
    /// The partial directory: `parts/` holds what arrives, `tree/` the result.
    pub dir: &'a Path,
    pub connections: usize,
    /// Bytes per piece (a multiple of 4096 for O_DIRECT writes).
    pub piece: u64,
    /// Puts a whole content at the given part file from this machine (an
    /// earlier snapshot, the official client's cache), when it can.
    pub reuse: &'a dyn Fn(&Digest, u64, &Path) -> bool,
    pub budget: Budget,
    /// hf-stall-timeout, for messages.
    pub stall_secs: u64,
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Verify,
    Nar,
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
    verified: AtomicU64,
    nar_read: AtomicU64,
}

impl Blob {
    fn path(&self) -> &str {
        &self.planned.paths[0]
    }

    fn advance_watermark(&self) {
        let done = self.done.lock().unwrap();
        let w = self.planned.pieces.iter().zip(done.iter()).take_while(|(_, &d)| d).last().map_or(0, |(p, _)| p.1);
        self.watermark.store(w, Ordering::SeqCst);
    }
}

struct Shared {
    source: Arc<dyn Source>,
    shown: String,
    blobs: Vec<Blob>,
    queue: Mutex<VecDeque<(usize, usize)>>,
    done_bytes: AtomicU64,
    workers_left: AtomicUsize,
    stop: Stop,
    error: Mutex<Option<Error>>,
    started: Mutex<Vec<(String, u64)>>,
    progress: (Mutex<()>, Condvar),
    pool: Pool,
    budget: Budget,
    clock: Arc<dyn Clock + Send>,
    stall_secs: u64,
    piece: u64,
}

impl Shared {
    fn fail(&self, e: Error) {
        self.error.lock().unwrap().get_or_insert(e);
        self.stop.set();
        self.progress.1.notify_all();
    }

    fn stopped(&self) -> bool {
        self.stop.is_set()
    }

    fn wake(&self) {
        self.progress.1.notify_all();
    }

    fn nap(&self, d: Duration) {
        let guard = self.progress.0.lock().unwrap();
        let _ = self.progress.1.wait_timeout(guard, d).unwrap();
    }
}

/// Fetches `job.files` into `job.dir/tree`, resuming from `job.dir/parts`.
pub fn transfer(job: Job, obs: &dyn Observer) -> Result<Transferred> {
    let parts = job.dir.join("parts");
    fs::create_dir_all(&parts).map_err(|e| Error::io("create", &parts, e))?;
    let (planned, order) = plan::plan(job.files, job.piece);

    let mut blobs = Vec::with_capacity(planned.len());
    let mut queue = VecDeque::new();
    let (mut resumed, mut reused_bytes) = (0u64, 0u64);
    for (i, p) in planned.into_iter().enumerate() {
        let record = Record::new(&parts, &content_key(&p.digest, p.size));
        let mut done = record.resume(p.size, p.pieces.len())?;
        if p.size > 0 && !done.contains(&true) && (job.reuse)(&p.digest, p.size, &record.part) {
            done = vec![true; p.pieces.len()];
            record.all_finished(done.len())?;
            reused_bytes += p.size;
        }
        for (n, &(s, e)) in p.pieces.iter().enumerate() {
            if done[n] {
                resumed += e - s;
            } else {
                queue.push_back((i, n));
            }
        }
        let blob = Blob {
            planned: p,
            record,
            done: Mutex::new(done),
            watermark: AtomicU64::new(0),
            location: Mutex::new(None),
            held: Mutex::new(BTreeMap::new()),
            verified: AtomicU64::new(0),
            nar_read: AtomicU64::new(0),
        };
        blob.advance_watermark();
        blobs.push(blob);
    }
    let expected: u64 = blobs.iter().map(|b| b.planned.size).sum();
    let workers = job.connections.max(1).min(queue.len().max(1));

    let shared = Arc::new(Shared {
        source: job.source.clone(),
        shown: job.shown.clone(),
        blobs,
        queue: Mutex::new(queue),
        done_bytes: AtomicU64::new(resumed),
        workers_left: AtomicUsize::new(workers),
        stop: Stop::default(),
        error: Mutex::new(None),
        started: Mutex::new(Vec::new()),
        progress: (Mutex::new(()), Condvar::new()),
        pool: Pool::new(job.connections.max(1) + 4, job.piece as usize),
        budget: job.budget,
        clock: job.clock.clone(),
        stall_secs: job.stall_secs,
        piece: job.piece,
    });

    for _ in 0..workers {
        let s = shared.clone();
        std::thread::spawn(move || {
            worker(&s);
            s.workers_left.fetch_sub(1, Ordering::SeqCst);
            s.wake();
        });
    }
    let verified = Arc::new(AtomicBool::new(false));
    {
        let (s, v) = (shared.clone(), verified.clone());
        std::thread::spawn(move || match verify_all(&s) {
            Ok(()) => v.store(true, Ordering::SeqCst),
            Err(e) => s.fail(e),
        });
    }
    let nar_result: Arc<Mutex<Option<([u8; 32], u64)>>> = Arc::new(Mutex::new(None));
    {
        let (s, out) = (shared.clone(), nar_result.clone());
        std::thread::spawn(move || {
            let s = &*s;
            let paths: Vec<&str> = order.iter().map(|p| p.as_str()).collect();
            let blob_of: BTreeMap<&str, usize> = s
                .blobs
                .iter()
                .enumerate()
                .flat_map(|(i, b)| b.planned.paths.iter().map(move |p| (p.as_str(), i)))
                .collect();
            let r = nar::hash_tree(&paths, |p| {
                let reader: Box<dyn Read + '_> = Box::new(GrowingReader::new(s, blob_of[p], Role::Nar)?);
                Ok((s.blobs[blob_of[p]].planned.size, reader))
            });
            match r {
                Ok(h) => *out.lock().unwrap() = Some(h),
                Err(_) if s.stopped() => {}
                Err(e) => s.fail(Error::new(Kind::LocalIo, format!("hashing the snapshot failed: {e}"))),
            }
            s.wake();
        });
    }

    loop {
        for (path, size) in shared.started.lock().unwrap().drain(..) {
            obs.file(&path, size);
        }
        obs.progress(shared.done_bytes.load(Ordering::Relaxed), expected);
        if let Some(e) = shared.error.lock().unwrap().clone() {
            return Err(e);
        }
        if obs.interrupted() {
            shared.fail(Error::interrupted());
            return Err(Error::interrupted());
        }
        let downloads_done = shared.workers_left.load(Ordering::SeqCst) == 0;
        if downloads_done && verified.load(Ordering::SeqCst) && nar_result.lock().unwrap().is_some() {
            break;
        }
        shared.nap(Duration::from_millis(50));
    }
    let (nar_sha256, nar_size) = nar_result.lock().unwrap().take().expect("checked above");
    let tree = job.dir.join("tree");
    place(&shared.blobs, &tree)?;
    Ok(Transferred { tree, nar_sha256, nar_size, reused_bytes })
}

fn worker(s: &Shared) {
    loop {
        // A buffer first, then the next piece: pieces then start in queue
        // order, so the earliest unfinished one always has a buffer and the
        // readers waiting for it are never starved by later pieces.
        let Some(mut buf) = s.pool.take(&|| s.stopped()) else { return };
        let Some((bi, pi)) = s.queue.lock().unwrap().pop_front() else {
            s.pool.give(buf);
            return;
        };
        let b = &s.blobs[bi];
        if pi == 0 {
            s.started.lock().unwrap().push((b.path().to_string(), b.planned.size));
        }
        let (start, end) = b.planned.pieces[pi];
        let len = (end - start) as usize;
        let done = fetch_piece(s, b, start, end, &mut buf.bytes_mut()[..len])
            .and_then(|()| write_piece(b, &buf.bytes()[..len], start))
            .and_then(|()| b.record.finished(pi));
        if let Err(e) = done {
            return s.fail(e);
        }
        b.held.lock().unwrap().insert(pi, buf);
        b.done.lock().unwrap()[pi] = true;
        b.advance_watermark();
        s.wake();
    }
}

/// Fetches bytes `[start, end)` of blob `b` into `piece` under one retry
/// budget: a dropped or stalled connection resumes within the piece, an
/// expired location is located again, and 429/5xx wait as told.
fn fetch_piece(s: &Shared, b: &Blob, start: u64, end: u64, piece: &mut [u8]) -> Result<()> {
    let path = b.path();
    let mut pos = start;
    let what = || format!("'{path}' of '{}' (bytes {start}-{})", s.shown, end - 1);
    retry::run(s.budget, &what, &*s.clock, &|| s.stopped(), |_| {
        let url = match locate(s, b) {
            Attempt::Done(u) => u,
            Attempt::Retry { wait, why, kind } => return Attempt::Retry { wait, why, kind },
            Attempt::Fail(e) => return Attempt::Fail(e),
        };
        let (reader, skip) = match s.source.range(&url, path, pos, end) {
            Attempt::Done(Ranged::Body { reader, skip }) => (reader, skip),
            Attempt::Done(Ranged::Expired) => {
                *b.location.lock().unwrap() = None;
                return Attempt::retry(Kind::AccessDenied, crate::hub::EXPIRED);
            }
            Attempt::Retry { wait, why, kind } => return Attempt::Retry { wait, why, kind },
            Attempt::Fail(e) => return Attempt::Fail(e),
        };
        match copy_body(s, piece, start, reader, skip, &mut pos) {
            Ok(()) if pos == end => Attempt::Done(()),
            Ok(()) => Attempt::retry(Kind::Unreachable, format!("the connection closed at byte {pos} of '{path}'")),
            Err(_) if s.stopped() => Attempt::Fail(Error::interrupted()),
            Err(e) => Attempt::retry(Kind::Unreachable, crate::hub::read_failed(path, pos, &e, s.stall_secs)),
        }
    })
}

/// The file's location: the first worker to need it locates it while the
/// others on the same file wait for its answer.
fn locate(s: &Shared, b: &Blob) -> Attempt<Url> {
    let mut loc = b.location.lock().unwrap();
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
        if s.stopped() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
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
        s.done_bytes.fetch_add(n as u64, Ordering::Relaxed);
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
    role: Role,
}

impl<'a> GrowingReader<'a> {
    fn new(s: &'a Shared, bi: usize, role: Role) -> io::Result<Self> {
        let b = &s.blobs[bi];
        Ok(GrowingReader { s, b, file: File::open(&b.record.part)?, pos: 0, role })
    }

    fn read_from(&self, buf: &mut [u8]) -> io::Result<usize> {
        let pi = (self.pos / self.s.piece) as usize;
        let within = (self.pos - pi as u64 * self.s.piece) as usize;
        if let Some(held) = self.b.held.lock().unwrap().get(&pi) {
            buf.copy_from_slice(&held.bytes()[within..within + buf.len()]);
            return Ok(buf.len());
        }
        self.file.read_at(buf, self.pos)
    }

    /// Records progress and hands back each piece both readers have passed.
    fn passed(&self) {
        let counter = if self.role == Role::Verify { &self.b.verified } else { &self.b.nar_read };
        counter.fetch_max(self.pos, Ordering::SeqCst);
        let done = self.b.verified.load(Ordering::SeqCst).min(self.b.nar_read.load(Ordering::SeqCst));
        let mut held = self.b.held.lock().unwrap();
        while let Some((&pi, _)) = held.first_key_value() {
            if self.b.planned.pieces[pi].1 > done {
                break;
            }
            let buf = held.remove(&pi).expect("just seen");
            self.s.pool.give(buf);
        }
    }
}

impl Read for GrowingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos >= self.b.planned.size {
                return Ok(0);
            }
            let w = self.b.watermark.load(Ordering::SeqCst);
            if w > self.pos {
                let piece_end = (self.pos / self.s.piece + 1) * self.s.piece;
                let n = ((w.min(piece_end) - self.pos) as usize).min(buf.len());
                let n = self.read_from(&mut buf[..n])?;
                self.pos += n as u64;
                self.passed();
                return Ok(n);
            }
            if self.s.stopped() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
            }
            self.s.nap(Duration::from_millis(20));
        }
    }
}

/// Checks every blob against the Hub's hash as its bytes land. A bad blob is
/// discarded with its record, so no later run reuses it.
fn verify_all(s: &Shared) -> Result<()> {
    for (bi, b) in s.blobs.iter().enumerate() {
        let mut v = Verifier::new(&b.planned.digest, b.planned.size);
        let mut r = GrowingReader::new(s, bi, Role::Verify).map_err(|e| Error::io("read", &b.record.part, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match r.read(&mut buf) {
                Ok(n) => n,
                Err(_) if s.stopped() => return Ok(()),
                Err(e) => return Err(Error::io("read", &b.record.part, e)),
            };
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
        }
        if let Err((want, got)) = v.finish() {
            b.record.discard();
            return Err(Error::new(
                Kind::CorruptData,
                format!(
                    "'{}' of '{}' is corrupt: expected {} {want}, got {got}; nothing was added to the store",
                    b.path(),
                    s.shown,
                    b.planned.digest.algorithm()
                ),
            ));
        }
    }
    Ok(())
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
