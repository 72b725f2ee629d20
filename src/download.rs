//! The transfer engine: moves a snapshot's files from the Hub onto disk once,
//! and verifies them while they arrive.
//!
//! - Files are split into pieces that a bounded pool of connections fetches
//!   from one resolved URL per file (re-resolved when a signed URL expires),
//!   written in place at their offsets. Identical contents are fetched once.
//! - Each finished piece is recorded next to the data, so an interrupted or
//!   killed fetch resumes where it was (`partial dir`, kept by the caller
//!   under Nix's cache dir, never in the store).
//! - A piece is received into one of a bounded pool of buffers, written to
//!   disk with O_DIRECT (where the file system allows it), and kept in memory
//!   until two readers have passed it: one checks the Hub's hash of every
//!   file, the other computes the snapshot's NAR hash, both in order as the
//!   contiguous prefix grows. So bytes are written once, never through the
//!   page cache, and hashed from memory; pieces from an earlier run or from a
//!   donor are read back from disk. Memory is bounded by the pool.
//! - Retries and backoff for dropped connections, stalls, 429 and 5xx live
//!   in `fetch_piece`, and nowhere else.
//!
//! Only the calling thread talks to the `Observer`; workers are detached so
//! that Ctrl-C returns at once even while a read is blocked.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use url::Url;

use crate::donors::Donors;
use crate::fetch::{Observer, INTERRUPTED};
use crate::hub::{Digest, Fetched, FileEntry, Hub, HubError};
use crate::nar;
use crate::retry;
use crate::spec::Spec;
use crate::verify::Verifier;

/// Piece size: what one request fetches, what one buffer holds, and what
/// resume loses at most per connection.
pub const PIECE: u64 = 8 << 20;
/// O_DIRECT wants buffers, offsets and lengths aligned to the block size.
const ALIGN: usize = 4096;

/// A piece-sized buffer aligned for O_DIRECT.
struct Buffer {
    ptr: std::ptr::NonNull<u8>,
}

// SAFETY: the buffer is plain memory owned by this value; it moves between
// threads whole, never shared mutably.
unsafe impl Send for Buffer {}

impl Buffer {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(PIECE as usize, ALIGN).expect("a valid layout")
    }

    fn new() -> Buffer {
        // SAFETY: a non-zero size; a null result is handled.
        let p = unsafe { std::alloc::alloc(Self::layout()) };
        Buffer { ptr: std::ptr::NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::layout())) }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: PIECE bytes allocated in `new`, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), PIECE as usize) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), PIECE as usize) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout()) }
    }
}

/// The buffers pieces live in between the network and the two readers; its
/// size bounds memory and how far downloads run ahead of hashing.
struct Pool {
    free: Mutex<(Vec<Buffer>, usize)>,
    limit: usize,
    returned: Condvar,
}

impl Pool {
    fn take(&self, stopped: &dyn Fn() -> bool) -> Option<Buffer> {
        let mut g = self.free.lock().unwrap();
        loop {
            if stopped() {
                return None;
            }
            if let Some(b) = g.0.pop() {
                return Some(b);
            }
            if g.1 < self.limit {
                g.1 += 1;
                return Some(Buffer::new());
            }
            g = self.returned.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
        }
    }

    fn give(&self, b: Buffer) {
        self.free.lock().unwrap().0.push(b);
        self.returned.notify_one();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Verify,
    Nar,
}

/// What a finished transfer leaves: the tree, and its NAR hash and size.
pub struct Transferred {
    pub tree: PathBuf,
    pub nar_sha256: [u8; 32],
    pub nar_size: u64,
    /// Bytes that came from this machine (earlier snapshots, the official
    /// client's cache) instead of the network.
    pub reused_bytes: u64,
}

struct Blob {
    digest: Digest,
    size: u64,
    /// The paths with this content; the first is the one logged.
    paths: Vec<String>,
    part: PathBuf,
    record: PathBuf,
    pieces: Vec<(u64, u64)>,
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

struct Shared {
    hub: Arc<Hub>,
    spec: Spec,
    sha: String,
    blobs: Vec<Blob>,
    queue: Mutex<VecDeque<(usize, usize)>>,
    done_bytes: AtomicU64,
    workers_left: AtomicUsize,
    cancel: AtomicBool,
    error: Mutex<Option<String>>,
    started: Mutex<Vec<(String, u64)>>,
    progress: (Mutex<()>, Condvar),
    pool: Pool,
}

impl Shared {
    fn fail(&self, e: String) {
        self.error.lock().unwrap().get_or_insert(e);
        self.cancel.store(true, Ordering::SeqCst);
        self.progress.1.notify_all();
    }

    fn stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }
}

fn digest_hex(d: &Digest) -> &str {
    match d {
        Digest::GitSha1(h) | Digest::Sha256(h) => h,
    }
}

/// Fetches `files` into `dir/tree`, resuming from what `dir/parts` holds.
pub fn transfer(
    hub: Arc<Hub>,
    spec: &Spec,
    sha: &str,
    files: &[FileEntry],
    dir: &Path,
    connections: usize,
    donors: &Donors,
    obs: &dyn Observer,
) -> Result<Transferred, String> {
    let parts = dir.join("parts");
    fs::create_dir_all(&parts).map_err(|e| format!("cannot create {}: {e}", parts.display()))?;

    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let order = nar::nar_order(&paths);
    let by_path: BTreeMap<&str, &FileEntry> = files.iter().map(|f| (f.path.as_str(), f)).collect();

    // One blob per distinct content, in NAR order of its first path, so the
    // readers find their next file among the first to arrive.
    let mut blobs: Vec<Blob> = Vec::new();
    let mut index: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for p in &order {
        let f = by_path[p.as_str()];
        let key = (digest_hex(&f.digest).to_string(), f.size);
        if let Some(&i) = index.get(&key) {
            blobs[i].paths.push(p.clone());
            continue;
        }
        let name = format!("{}-{}", key.0, f.size);
        let pieces: Vec<(u64, u64)> = if f.size == 0 {
            Vec::new()
        } else {
            (0..f.size).step_by(PIECE as usize).map(|s| (s, (s + PIECE).min(f.size))).collect()
        };
        let blob = Blob {
            digest: f.digest.clone(),
            size: f.size,
            paths: vec![p.clone()],
            part: parts.join(format!("{name}.part")),
            record: parts.join(format!("{name}.pieces")),
            done: Mutex::new(vec![false; pieces.len()]),
            pieces,
            watermark: AtomicU64::new(0),
            location: Mutex::new(None),
            held: Mutex::new(BTreeMap::new()),
            verified: AtomicU64::new(0),
            nar_read: AtomicU64::new(0),
        };
        index.insert(key, blobs.len());
        blobs.push(blob);
    }

    let mut queue = VecDeque::new();
    let mut resumed = 0u64;
    let mut reused_bytes = 0u64;
    for (i, b) in blobs.iter().enumerate() {
        let mut done = resume_state(b)?;
        if b.size > 0 && !done.iter().any(|&d| d) && donors.provide(&b.digest, b.size, &b.part).is_some() {
            done = vec![true; b.pieces.len()];
            let all: String = (0..b.pieces.len()).map(|p| format!("{p}\n")).collect();
            fs::write(&b.record, all).map_err(|e| format!("cannot record progress in {}: {e}", b.record.display()))?;
            reused_bytes += b.size;
        }
        for (p, &(s, e)) in b.pieces.iter().enumerate() {
            if done.get(p).copied().unwrap_or(false) {
                resumed += e - s;
            } else {
                queue.push_back((i, p));
            }
        }
        *b.done.lock().unwrap() = done;
        advance_watermark(b);
    }
    let expected: u64 = blobs.iter().map(|b| b.size).sum();

    let shared = Arc::new(Shared {
        hub,
        spec: spec.clone(),
        sha: sha.to_string(),
        blobs,
        queue: Mutex::new(queue),
        done_bytes: AtomicU64::new(resumed),
        workers_left: AtomicUsize::new(0),
        cancel: AtomicBool::new(false),
        error: Mutex::new(None),
        started: Mutex::new(Vec::new()),
        progress: (Mutex::new(()), Condvar::new()),
        pool: Pool { free: Mutex::new((Vec::new(), 0)), limit: connections.max(1) + 4, returned: Condvar::new() },
    });

    let workers = connections.max(1).min(shared.queue.lock().unwrap().len().max(1));
    shared.workers_left.store(workers, Ordering::SeqCst);
    for _ in 0..workers {
        let s = shared.clone();
        std::thread::spawn(move || {
            worker(&s);
            s.workers_left.fetch_sub(1, Ordering::SeqCst);
            s.progress.1.notify_all();
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
        let order = order.clone();
        std::thread::spawn(move || {
            let s = &*s;
            let paths: Vec<&str> = order.iter().map(|p| p.as_str()).collect();
            let blob_of: BTreeMap<&str, usize> =
                s.blobs.iter().enumerate().flat_map(|(i, b)| b.paths.iter().map(move |p| (p.as_str(), i))).collect();
            let r = nar::hash_tree(&paths, |p| {
                let reader: Box<dyn Read + '_> = Box::new(GrowingReader::new(s, blob_of[p], Role::Nar)?);
                Ok((s.blobs[blob_of[p]].size, reader))
            });
            match r {
                Ok(h) => *out.lock().unwrap() = Some(h),
                Err(e) if s.stopped() => drop(e),
                Err(e) => s.fail(format!("hashing the snapshot failed: {e}")),
            }
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
        if obs.check_interrupt().is_err() {
            shared.fail(INTERRUPTED.into());
            return Err(INTERRUPTED.into());
        }
        let downloads_done = shared.workers_left.load(Ordering::SeqCst) == 0;
        if downloads_done && verified.load(Ordering::SeqCst) && nar_result.lock().unwrap().is_some() {
            break;
        }
        let guard = shared.progress.0.lock().unwrap();
        let _ = shared.progress.1.wait_timeout(guard, Duration::from_millis(50)).unwrap();
    }
    let (nar_sha256, nar_size) = nar_result.lock().unwrap().take().expect("checked above");
    let tree = dir.join("tree");
    place(&shared.blobs, &tree)?;
    Ok(Transferred { tree, nar_sha256, nar_size, reused_bytes })
}

/// Which pieces of `b` a previous run finished (its record), with the part
/// file still there and of the right size; anything else starts afresh.
fn resume_state(b: &Blob) -> Result<Vec<bool>, String> {
    let mut done = vec![false; b.pieces.len()];
    let part_ok = fs::metadata(&b.part).map(|m| m.len() == b.size).unwrap_or(false);
    if part_ok {
        if let Ok(text) = fs::read_to_string(&b.record) {
            for line in text.lines() {
                if let Ok(i) = line.trim().parse::<usize>() {
                    if i < done.len() {
                        done[i] = true;
                    }
                }
            }
        }
    } else {
        let _ = fs::remove_file(&b.record);
        let f = File::create(&b.part).map_err(|e| format!("cannot create {}: {e}", b.part.display()))?;
        f.set_len(b.size).map_err(|e| format!("cannot size {}: {e}", b.part.display()))?;
    }
    Ok(done)
}

fn advance_watermark(b: &Blob) {
    let done = b.done.lock().unwrap();
    let mut w = 0;
    for (i, &(_, e)) in b.pieces.iter().enumerate() {
        if !done[i] {
            break;
        }
        w = e;
    }
    b.watermark.store(w, Ordering::SeqCst);
}

fn worker(s: &Shared) {
    loop {
        // A buffer first, then the next piece: pieces then start in queue
        // order, so the earliest unfinished one always has a buffer and the
        // readers waiting for it are never starved by later pieces.
        let Some(buf) = s.pool.take(&|| s.stopped()) else { return };
        let Some((bi, pi)) = s.queue.lock().unwrap().pop_front() else {
            s.pool.give(buf);
            return;
        };
        let b = &s.blobs[bi];
        if pi == 0 {
            s.started.lock().unwrap().push((b.paths[0].clone(), b.size));
        }
        match fetch_piece(s, b, pi, buf) {
            Ok(()) => {
                b.done.lock().unwrap()[pi] = true;
                let recorded =
                    OpenOptions::new().create(true).append(true).open(&b.record).and_then(|mut f| writeln!(f, "{pi}"));
                if let Err(e) = recorded {
                    return s.fail(format!("cannot record progress in {}: {e}", b.record.display()));
                }
                advance_watermark(b);
                s.progress.1.notify_all();
            }
            Err(e) => return s.fail(e),
        }
    }
}

/// Fetches one piece, resuming within it after a dropped or stalled
/// connection, re-resolving an expired URL, and backing off on 429/5xx.
fn fetch_piece(s: &Shared, b: &Blob, pi: usize, mut buf: Buffer) -> Result<(), String> {
    let (start, end) = b.pieces[pi];
    let path = &b.paths[0];
    let mut pos = start;
    let mut attempt = 0u32;
    let mut last_error = String::new();
    while pos < end {
        if s.stopped() {
            return Err(INTERRUPTED.into());
        }
        let policy = s.hub.policy();
        if attempt >= policy.attempts {
            return Err(format!(
                "giving up on '{path}' of '{}' after {} attempts: {last_error}",
                s.spec.display(),
                policy.attempts
            ));
        }
        attempt += 1;
        if attempt > 1 {
            retry::sleep(policy.backoff(attempt), &|| s.stopped());
        }
        // One resolve per file: the first worker to need the URL resolves it
        // while the others on the same file wait for its answer.
        let located = {
            let mut loc = b.location.lock().unwrap();
            match &*loc {
                Some(u) => Ok(u.clone()),
                None => match s.hub.locate(&s.spec, &s.sha, path).map_err(|HubError(e)| e)? {
                    Ok(u) => {
                        *loc = Some(u.clone());
                        Ok(u)
                    }
                    Err(Fetched::Retry { wait, why }) => Err((wait, why)),
                    Err(_) => Err((None, "resolving the file failed".to_string())),
                },
            }
        };
        let url = match located {
            Ok(u) => u,
            Err((wait, why)) => {
                last_error = why;
                if let Some(w) = wait {
                    retry::sleep(w.min(retry::MAX_SERVER_WAIT), &|| s.stopped());
                    attempt -= 1;
                }
                continue;
            }
        };
        let resp = match s.hub.fetch_range(&url, pos, end, &s.spec, path) {
            Ok(Fetched::Body { response, skip }) => (response, skip),
            Ok(Fetched::Expired) => {
                *b.location.lock().unwrap() = None;
                last_error = "the download URL expired".into();
                attempt -= 1; // a fresh URL is not a failed attempt
                continue;
            }
            Ok(Fetched::Retry { wait, why }) => {
                last_error = why;
                if let Some(w) = wait {
                    retry::sleep(w.min(retry::MAX_SERVER_WAIT), &|| s.stopped());
                    attempt -= 1; // the server said when: waiting is not failing
                }
                continue;
            }
            Err(HubError(e)) => return Err(e),
        };
        match copy_body(s, b, &mut buf.bytes_mut()[..(end - start) as usize], start, resp.0, resp.1, &mut pos) {
            Ok(()) => {}
            Err(e) => {
                last_error = e;
                continue;
            }
        }
        if pos < end {
            last_error = format!("the connection closed at byte {pos} of {end}");
        }
    }
    write_piece(b, &buf.bytes()[..(end - start) as usize], start)?;
    b.held.lock().unwrap().insert(pi, buf);
    Ok(())
}

/// Writes a received piece where it belongs, bypassing the page cache where
/// the file system allows (the readers have the bytes in memory already).
fn write_piece(b: &Blob, data: &[u8], offset: u64) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if data.len() % ALIGN == 0 {
        match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&b.part) {
            Ok(f) => match f.write_all_at(data, offset) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(write_error(&b.part, e)),
                Err(_) => {}
            },
            Err(e) if e.raw_os_error() != Some(libc::EINVAL) => {
                return Err(format!("cannot open {}: {e}", b.part.display()))
            }
            Err(_) => {}
        }
    }
    let f =
        OpenOptions::new().write(true).open(&b.part).map_err(|e| format!("cannot open {}: {e}", b.part.display()))?;
    f.write_all_at(data, offset).map_err(|e| write_error(&b.part, e))
}

/// Reads the body into the piece's buffer (which starts at file offset
/// `start`) from `*pos` onward, after skipping `skip` bytes (a server that
/// ignored Range sends the file from its start).
fn copy_body(
    s: &Shared,
    b: &Blob,
    piece: &mut [u8],
    start: u64,
    mut body: impl Read,
    mut skip: u64,
    pos: &mut u64,
) -> Result<(), String> {
    let end = start + piece.len() as u64;
    let mut scratch = Vec::new();
    loop {
        if s.stopped() {
            return Err(INTERRUPTED.into());
        }
        if *pos >= end {
            return Ok(());
        }
        let n = if skip > 0 {
            // Bytes before the piece: read them somewhere else and drop them.
            scratch.resize(skip.min(1 << 18) as usize, 0);
            let n = body.read(&mut scratch).map_err(|e| format!("reading '{}' failed: {e}", b.paths[0]))?;
            skip -= n as u64;
            if n == 0 {
                return Ok(());
            }
            continue;
        } else {
            let at = (*pos - start) as usize;
            body.read(&mut piece[at..]).map_err(|e| format!("reading '{}' failed at byte {}: {e}", b.paths[0], *pos))?
        };
        if n == 0 {
            return Ok(());
        }
        *pos += n as u64;
        s.done_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn write_error(path: &Path, e: io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        let dir = path.parent().and_then(|p| p.parent()).unwrap_or(path);
        return format!(
            "No space left on device for the partial download in {}; free some space (or point XDG_CACHE_HOME to a \
             larger disk) and run again: what is already downloaded is kept",
            dir.display()
        );
    }
    format!("cannot write {}: {e}", path.display())
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
        Ok(GrowingReader { s, b, file: File::open(&b.part)?, pos: 0, role })
    }

    fn read_from(&self, buf: &mut [u8]) -> io::Result<usize> {
        let pi = (self.pos / PIECE) as usize;
        let within = (self.pos - pi as u64 * PIECE) as usize;
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
            if self.b.pieces[pi].1 > done {
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
            if self.pos >= self.b.size {
                return Ok(0);
            }
            let w = self.b.watermark.load(Ordering::SeqCst);
            if w > self.pos {
                let piece_end = (self.pos / PIECE + 1) * PIECE;
                let n = ((w.min(piece_end) - self.pos) as usize).min(buf.len());
                let n = self.read_from(&mut buf[..n])?;
                self.pos += n as u64;
                self.passed();
                return Ok(n);
            }
            if self.s.stopped() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, INTERRUPTED));
            }
            let guard = self.s.progress.0.lock().unwrap();
            let _ = self.s.progress.1.wait_timeout(guard, Duration::from_millis(20)).unwrap();
        }
    }
}

/// Checks every blob against the Hub's hash as its bytes land. A bad blob is
/// deleted with its record, so no later run reuses it.
fn verify_all(s: &Shared) -> Result<(), String> {
    for (bi, b) in s.blobs.iter().enumerate() {
        let mut v = Verifier::new(&b.digest, b.size);
        let mut r =
            GrowingReader::new(s, bi, Role::Verify).map_err(|e| format!("cannot read {}: {e}", b.part.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match r.read(&mut buf) {
                Ok(n) => n,
                Err(_) if s.stopped() => return Ok(()),
                Err(e) => return Err(format!("cannot read {}: {e}", b.part.display())),
            };
            if n == 0 {
                break;
            }
            v.update(&buf[..n]);
        }
        if let Err((want, got)) = v.finish() {
            let _ = fs::remove_file(&b.part);
            let _ = fs::remove_file(&b.record);
            let algo = match b.digest {
                Digest::GitSha1(_) => "git blob sha1",
                Digest::Sha256(_) => "sha256",
            };
            return Err(format!(
                "'{}' of '{}' is corrupt: expected {algo} {want}, got {got}; nothing was added to the store",
                b.paths[0],
                s.spec.display()
            ));
        }
    }
    Ok(())
}

/// Moves each verified part to its path(s) in the tree; a content found at
/// several paths is hard-linked (or copied where links are not possible).
fn place(blobs: &[Blob], tree: &Path) -> Result<(), String> {
    if tree.exists() {
        fs::remove_dir_all(tree).map_err(|e| format!("cannot clear {}: {e}", tree.display()))?;
    }
    fs::create_dir_all(tree).map_err(|e| format!("cannot create {}: {e}", tree.display()))?;
    for b in blobs {
        let first = tree.join(&b.paths[0]);
        for p in &b.paths {
            let target = tree.join(p);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let placed = if *p == b.paths[0] {
                fs::rename(&b.part, &target)
            } else {
                fs::hard_link(&first, &target).or_else(|_| fs::copy(&first, &target).map(|_| ()))
            };
            placed.map_err(|e| format!("cannot place {}: {e}", target.display()))?;
        }
        let _ = fs::remove_file(&b.record);
    }
    Ok(())
}
