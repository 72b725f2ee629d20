//! The engine over an in-memory source: pieces, resume, dedup, expiry,
//! corrupt bytes, dropped connections, faults that never pass, Ctrl-C.
//! No nix, no server, no real waiting (a simulated clock).

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use url::Url;

use super::engine::{prepare, start, Job, Output, Ranged, Reuse, Source, Transferred};
use crate::base::{Digest, FileEntry, Observer};
use crate::error::{Detail, Error, Kind, Result};
use crate::retry::testing::FakeClock;
use crate::retry::{Attempt, Budget};
use crate::verify::hex;
use crate::work::Work;

const PIECE: u64 = 16 << 10;

#[derive(Clone)]
enum Fault {
    /// The location has expired, `n` times.
    Expired(usize),
    /// Byte `at` arrives flipped, once.
    Corrupt(u64),
    /// The connection closes after `after` bytes, `n` times.
    Drop { after: usize, n: usize },
    /// 503 on every request.
    Unavailable,
    /// The body never ends until the test is over.
    Hang,
    /// The source panics after `after` bytes of the body (a bug).
    Panic { after: usize },
}

#[derive(Default)]
struct Mem {
    files: BTreeMap<String, Vec<u8>>,
    faults: Mutex<BTreeMap<String, Fault>>,
    /// ("locate" | "range", path, start)
    log: Mutex<Vec<(&'static str, String, u64)>>,
    release: Release,
    /// Comes once a hanging body is read.
    hanging: Release,
}

/// An event: once `now()`, `wait()` returns (lets hanging bodies end,
/// once the test is over).
#[derive(Clone, Default)]
struct Release(Arc<(Mutex<bool>, Condvar)>);

impl Release {
    fn wait(&self) {
        let (m, cv) = &*self.0;
        let _g = cv.wait_while(m.lock().unwrap(), |released| !*released).unwrap();
    }

    fn now(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

impl Mem {
    fn with(files: &[(&str, Vec<u8>)]) -> Mem {
        Mem { files: files.iter().map(|(p, d)| (p.to_string(), d.clone())).collect(), ..Default::default() }
    }

    fn fault(self, path: &str, f: Fault) -> Mem {
        self.faults.lock().unwrap().insert(path.into(), f);
        self
    }

    fn requests(&self, kind: &str, path: &str) -> Vec<u64> {
        self.log.lock().unwrap().iter().filter(|(k, p, _)| *k == kind && p == path).map(|r| r.2).collect()
    }
}

struct Hanging {
    entered: Release,
    release: Release,
}

impl Read for Hanging {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.entered.now();
        self.release.wait();
        Ok(0)
    }
}

/// A body that panics once `left` bytes have been read: a bug in a source.
struct Panicking {
    data: Cursor<Vec<u8>>,
    left: usize,
}

impl Read for Panicking {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let lengths: Vec<usize> = Vec::new();
            return Ok(lengths[7]); // an index out of range, as a real bug would be
        }
        let want = buf.len().min(self.left);
        let n = self.data.read(&mut buf[..want])?;
        self.left -= n;
        Ok(n)
    }
}

impl Source for Mem {
    fn locate(&self, path: &str) -> Attempt<Url> {
        self.log.lock().unwrap().push(("locate", path.into(), 0));
        Attempt::Done(Url::parse(&format!("mem:///{path}")).unwrap())
    }

    fn range(&self, _: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged> {
        self.log.lock().unwrap().push(("range", path.into(), start));
        let mut data = self.files[path][start as usize..end as usize].to_vec();
        let mut faults = self.faults.lock().unwrap();
        match faults.get(path).cloned() {
            Some(Fault::Expired(n)) if n > 0 => {
                faults.insert(path.into(), Fault::Expired(n - 1));
                return Attempt::Done(Ranged::Expired { why: EXPIRED.into() });
            }
            Some(Fault::Corrupt(at)) if (start..end).contains(&at) => {
                faults.remove(path);
                data[(at - start) as usize] ^= 0xff;
            }
            Some(Fault::Drop { after, n }) if n > 0 && data.len() > after => {
                faults.insert(path.into(), Fault::Drop { after, n: n - 1 });
                data.truncate(after);
            }
            Some(Fault::Unavailable) => return Attempt::retry(Kind::Unreachable, "the server answered 503"),
            Some(Fault::Hang) => {
                return Attempt::Done(Ranged::Body {
                    reader: Box::new(Hanging { entered: self.hanging.clone(), release: self.release.clone() }),
                    skip: 0,
                })
            }
            Some(Fault::Panic { after }) => {
                let body = Panicking { data: Cursor::new(data), left: after };
                return Attempt::Done(Ranged::Body { reader: Box::new(body), skip: 0 });
            }
            _ => {}
        }
        Attempt::Done(Ranged::Body { reader: Box::new(Cursor::new(data)), skip: 0 })
    }

    fn broke_off(&self, path: &str, at: u64, e: &std::io::Error) -> String {
        format!("the body of '{path}' broke off at byte {at} ({e})")
    }
}

const EXPIRED: &str = "the location expired";

#[derive(Default)]
struct Watcher {
    /// Answer "interrupted" once this many bytes are reported done.
    stop_at: Option<u64>,
    done: Mutex<u64>,
    files: Mutex<Vec<String>>,
}

impl Observer for Watcher {
    fn interrupted(&self) -> bool {
        self.stop_at.is_some_and(|at| *self.done.lock().unwrap() >= at)
    }

    fn progress(&self, done: u64, _: u64) {
        *self.done.lock().unwrap() = done;
    }

    fn file(&self, path: &str, _: u64) {
        self.files.lock().unwrap().push(path.into());
    }

    fn note(&self, _: &str) {}
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7919 + seed as u64 * 31 % 251) as u8).collect()
}

fn sha256(d: &[u8]) -> Digest {
    Digest::Sha256(hex(&Sha256::digest(d)))
}

fn git_sha1(d: &[u8]) -> Digest {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", d.len()).as_bytes());
    h.update(d);
    Digest::GitSha1(hex(&h.finalize()))
}

fn entries(files: &[(&str, Vec<u8>)]) -> Vec<FileEntry> {
    files
        .iter()
        .map(|(p, d)| FileEntry {
            path: p.to_string(),
            size: d.len() as u64,
            digest: if p.ends_with(".txt") { git_sha1(d) } else { sha256(d) },
            xet: None,
        })
        .collect()
}

/// Contents on "this machine", for the engine to reuse.
#[derive(Default)]
struct Here(Vec<Vec<u8>>);

impl Here {
    fn find(&self, digest: &Digest, size: u64) -> Option<&Vec<u8>> {
        self.0.iter().find(|d| d.len() as u64 == size && (sha256(d) == *digest || git_sha1(d) == *digest))
    }
}

impl Reuse for Here {
    fn place(&self, digest: &Digest, size: u64, part: &std::path::Path) -> bool {
        self.find(digest, size).is_some_and(|d| std::fs::write(part, d).is_ok())
    }

    fn open(&self, digest: &Digest, size: u64) -> Option<std::fs::File> {
        let d = self.find(digest, size)?;
        let path = std::env::temp_dir().join(format!("nixhf-here-{}-{}", std::process::id(), digest.hex()));
        std::fs::write(&path, d).ok()?;
        let f = std::fs::File::open(&path).ok();
        // Read through the open file only: nothing is left behind in /tmp.
        let _ = std::fs::remove_file(&path);
        f
    }
}

struct Run {
    dir: PathBuf,
    clock: Arc<FakeClock>,
}

/// A transfer's outcome, and the bytes taken from "this machine".
struct Done {
    t: Transferred,
    reused: u64,
}

impl Run {
    fn new(name: &str) -> Run {
        let dir = std::env::temp_dir().join(format!("nixhf-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Run { dir, clock: Arc::new(FakeClock::default()) }
    }

    fn job(&self, source: Arc<Mem>, files: &[FileEntry], here: Here, output: Output, keep: bool) -> Job {
        Job {
            source,
            files: files.to_vec(),
            dir: self.dir.clone(),
            connections: 3,
            piece: PIECE,
            reuse: Box::new(here),
            output,
            keep,
            budget: Budget { attempts: 4, time: Duration::from_secs(300) },
            clock: self.clock.clone(),
            shown: "hf:org/name".into(),
        }
    }

    fn go(&self, source: Arc<Mem>, files: &[FileEntry], obs: &Watcher) -> Result<Transferred> {
        self.go_with(source, files, obs, Here::default(), &Work::new()).map(|d| d.t)
    }

    /// A transfer under `work`, which a test may stop as the glue would.
    fn go_with(&self, source: Arc<Mem>, files: &[FileEntry], obs: &Watcher, here: Here, work: &Work) -> Result<Done> {
        let job = self.job(source, files, here, Output::Tree, true);
        let prepared = prepare(&job)?;
        let reused = prepared.reused_bytes();
        Ok(Done { t: start(job, prepared, work).wait(obs)?, reused })
    }

    /// The NAR as the glue reads it, span by lent span.
    fn stream(&self, source: Arc<Mem>, files: &[FileEntry], here: Here, keep: bool) -> Result<(Vec<u8>, u64)> {
        let job = self.job(source, files, here, Output::Stream, keep);
        let prepared = prepare(&job)?;
        let (size, reused) = (prepared.nar_size(), prepared.reused_bytes());
        let mut nar = start(job, prepared, &Work::new()).stream();
        let mut out = Vec::new();
        loop {
            let lent = nar.next(&Watcher::default())?;
            if lent.is_empty() {
                break;
            }
            out.extend_from_slice(lent);
        }
        assert_eq!(out.len() as u64, size, "the NAR is as long as planned");
        Ok((out, reused))
    }

    /// What an earlier run left of `entry` that got only its first piece
    /// (`first`) in: its part file and record. Returns the part's name.
    fn first_piece_left(&self, entry: &FileEntry, first: &[u8]) -> String {
        let parts = self.dir.join("parts");
        std::fs::create_dir_all(&parts).unwrap();
        let name = entry.content_key();
        let mut part = vec![0u8; entry.size as usize];
        part[..first.len()].copy_from_slice(first);
        std::fs::write(parts.join(format!("{name}.part")), &part).unwrap();
        std::fs::write(parts.join(format!("{name}.pieces")), "0\n").unwrap();
        name
    }

    fn parts(&self) -> Vec<String> {
        let dir = self.dir.join("parts");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `nix hash path` would say of the tree (nar.rs is checked against it).
fn nar_of(files: &[(&str, Vec<u8>)]) -> ([u8; 32], u64) {
    let sizes: Vec<(&str, u64)> = files.iter().map(|f| (f.0, f.1.len() as u64)).collect();
    crate::nar::hash(&crate::nar::layout(&sizes), |p| {
        let d = files.iter().find(|f| f.0 == p).unwrap().1.clone();
        Ok(Box::new(Cursor::new(d)))
    })
    .unwrap()
}

fn tree(t: &Transferred, files: &[(&str, Vec<u8>)]) {
    for (p, d) in files {
        assert_eq!(&std::fs::read(t.tree.join(p)).unwrap(), d, "{p}");
    }
}

fn sample() -> Vec<(&'static str, Vec<u8>)> {
    let big = data(1, 3 * PIECE as usize + 1000);
    vec![
        ("weights/a.bin", big.clone()),
        ("copy-of-a.bin", big),
        ("README.txt", b"# readme\n".to_vec()),
        ("empty.txt", Vec::new()),
    ]
}

#[test]
fn pieces_land_verified_once_each_with_nixs_nar_hash() {
    let files = sample();
    let run = Run::new("pieces");
    let mem = Arc::new(Mem::with(&files));
    let obs = Watcher::default();
    let t = run.go(mem.clone(), &entries(&files), &obs).unwrap();
    tree(&t, &files);
    assert_eq!((t.nar_sha256, t.nar_size), nar_of(&files));
    let mut starts = mem.requests("range", "copy-of-a.bin");
    starts.sort();
    assert_eq!(starts, [0, PIECE, 2 * PIECE, 3 * PIECE], "each piece once, from the first path of the content");
    assert!(mem.requests("range", "weights/a.bin").is_empty(), "an identical content is fetched once");
    assert_eq!(mem.requests("locate", "copy-of-a.bin").len(), 1, "one location per file");
    assert!(mem.requests("range", "empty.txt").is_empty());
    assert_eq!(*obs.done.lock().unwrap(), files[0].1.len() as u64 + 9, "progress reached the end, each content once");
    assert!(!run.dir.join("parts").read_dir().unwrap().any(|e| e.unwrap().path().extension().unwrap() == "pieces"));
}

#[test]
fn a_resumed_transfer_fetches_only_what_is_missing() {
    let files = vec![("a.bin", data(2, 4 * PIECE as usize))];
    let run = Run::new("resume");
    let e = entries(&files);
    let parts = run.dir.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let name = e[0].content_key();
    // An earlier run finished pieces 0 and 2.
    let mut part = vec![0u8; files[0].1.len()];
    for p in [0usize, 2] {
        let r = p * PIECE as usize..(p + 1) * PIECE as usize;
        part[r.clone()].copy_from_slice(&files[0].1[r]);
    }
    std::fs::write(parts.join(format!("{name}.part")), &part).unwrap();
    std::fs::write(parts.join(format!("{name}.pieces")), "0\n2\n").unwrap();
    let mem = Arc::new(Mem::with(&files));
    let t = run.go(mem.clone(), &e, &Watcher::default()).unwrap();
    tree(&t, &files);
    let mut starts = mem.requests("range", "a.bin");
    starts.sort();
    assert_eq!(starts, [PIECE, 3 * PIECE]);
}

#[test]
fn a_resumed_piece_that_is_wrong_is_caught_and_thrown_away() {
    let files = vec![("a.bin", data(3, 2 * PIECE as usize))];
    let run = Run::new("badresume");
    let e = entries(&files);
    let parts = run.dir.join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let name = e[0].content_key();
    std::fs::write(parts.join(format!("{name}.part")), vec![0u8; files[0].1.len()]).unwrap();
    std::fs::write(parts.join(format!("{name}.pieces")), "0\n").unwrap();
    let err = run.go(Arc::new(Mem::with(&files)), &e, &Watcher::default()).err().unwrap();
    assert_eq!(err.kind, Kind::CorruptData);
    assert!(!parts.join(format!("{name}.pieces")).exists(), "the bad record is gone");
    let t = run.go(Arc::new(Mem::with(&files)), &e, &Watcher::default()).unwrap();
    tree(&t, &files);
}

#[test]
fn an_expired_location_is_located_again() {
    let files = vec![("a.bin", data(4, PIECE as usize))];
    let run = Run::new("expired");
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Expired(2)));
    let t = run.go(mem.clone(), &entries(&files), &Watcher::default()).unwrap();
    tree(&t, &files);
    assert_eq!(mem.requests("locate", "a.bin").len(), 3);
}

#[test]
fn a_location_that_keeps_expiring_ends_in_one_error() {
    let files = vec![("a.bin", data(4, PIECE as usize))];
    let run = Run::new("expiring");
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Expired(usize::MAX)));
    let e = run.go(mem.clone(), &entries(&files), &Watcher::default()).err().unwrap();
    assert_eq!(e.kind, Kind::AccessDenied);
    assert_eq!(
        e.message,
        format!(
            "giving up on 'a.bin' of 'hf:org/name' (bytes 0-{}): {EXPIRED}; 4 attempts over 7.0 s; \
             raise hf-retries (now 4) to try more often",
            PIECE - 1,
        )
    );
    assert_eq!(mem.requests("range", "a.bin").len(), 4, "renewals count against the budget");
}

#[test]
fn a_dropped_connection_resumes_within_the_piece() {
    let files = vec![("a.bin", data(5, PIECE as usize))];
    let run = Run::new("drop");
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Drop { after: 5000, n: 1 }));
    let t = run.go(mem.clone(), &entries(&files), &Watcher::default()).unwrap();
    tree(&t, &files);
    assert_eq!(mem.requests("range", "a.bin"), [0, 5000]);
}

#[test]
fn corrupt_bytes_fail_naming_the_file_and_are_not_kept() {
    let files = vec![("a.bin", data(6, 2 * PIECE as usize))];
    let run = Run::new("corrupt");
    let e = entries(&files);
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Corrupt(PIECE + 3)));
    let err = run.go(mem, &e, &Watcher::default()).err().unwrap();
    assert_eq!(err.kind, Kind::CorruptData, "{}", err.message);
    let mut flipped = files[0].1.clone();
    flipped[PIECE as usize + 3] ^= 0xff;
    assert_eq!(
        err.detail,
        Detail::HashMismatch {
            file: "a.bin".into(),
            algorithm: "sha256",
            expected: e[0].digest.hex().into(),
            got: sha256(&flipped).hex().into(),
        }
    );
    let left: Vec<_> = run.dir.join("parts").read_dir().unwrap().collect();
    assert!(left.is_empty(), "corrupt data kept for a later run");
}

#[test]
fn a_fault_that_never_passes_ends_within_the_budget() {
    let files = vec![("a.bin", data(7, 100))];
    let run = Run::new("unavailable");
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Unavailable));
    let e = run.go(mem.clone(), &entries(&files), &Watcher::default()).err().unwrap();
    assert_eq!(e.kind, Kind::Unreachable);
    assert!(e.message.contains("the server answered 503; 4 attempts over"), "{}", e.message);
    assert_eq!(mem.requests("range", "a.bin").len(), 4);
    assert_eq!(run.clock.slept().len(), 3, "backed off between attempts");
}

#[test]
fn contents_on_this_machine_are_reused() {
    let files = sample();
    let run = Run::new("reuse");
    let mem = Arc::new(Mem::with(&files));
    let big = files[0].1.clone();
    let d =
        run.go_with(mem.clone(), &entries(&files), &Watcher::default(), Here(vec![big.clone()]), &Work::new()).unwrap();
    tree(&d.t, &files);
    assert_eq!(d.reused, big.len() as u64);
    assert!(mem.requests("range", "copy-of-a.bin").is_empty());
}

#[test]
fn ctrl_c_stops_the_transfer_while_a_read_hangs() {
    let files = vec![("a.bin", data(8, 2 * PIECE as usize)), ("b.bin", data(9, PIECE as usize))];
    let run = Run::new("interrupt");
    let mem = Arc::new(Mem::with(&files).fault("b.bin", Fault::Hang));
    // Ctrl-C comes as the glue's Interrupter sends it, once the read hangs:
    // nothing is reported meanwhile that would let the fetch notice it.
    let work = Work::new();
    let ctrl_c = {
        let (mem, work) = (mem.clone(), work.clone());
        std::thread::spawn(move || {
            mem.hanging.wait();
            work.fail(Error::interrupted());
        })
    };
    let e = run.go_with(mem.clone(), &entries(&files), &Watcher::default(), Here::default(), &work).err().unwrap();
    assert_eq!(e, Error::interrupted());
    ctrl_c.join().unwrap();
    let_go(mem);
}

#[test]
fn an_observer_that_says_interrupted_stops_the_transfer_at_its_next_report() {
    // The glue's other way to stop: the observer polls Nix's interrupt flag
    // whenever there is progress to report (every MiB).
    let files = vec![("a.bin", data(14, 4 << 20)), ("b.bin", data(15, PIECE as usize))];
    let run = Run::new("polled");
    let mem = Arc::new(Mem::with(&files).fault("b.bin", Fault::Hang));
    let obs = Watcher { stop_at: Some(1 << 20), ..Default::default() };
    let e = run.go(mem.clone(), &entries(&files), &obs).err().unwrap();
    assert_eq!(e, Error::interrupted());
    let_go(mem);
}

/// Ends a hanging body and waits, bounded, for the detached worker that
/// read it to let go of `mem`: were the run's folder removed before, the
/// worker would leave its parts directory behind in /tmp.
fn let_go(mem: Arc<Mem>) {
    mem.release.now();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&mem) > 1 {
        assert!(std::time::Instant::now() < deadline, "the released worker never ended");
        std::thread::yield_now();
    }
}

#[test]
fn a_panic_mid_piece_ends_the_transfer_naming_the_file_and_keeps_what_arrived() {
    let files = vec![("a.bin", data(10, 3 * PIECE as usize)), ("weights/b.bin", data(11, 2 * PIECE as usize))];
    let run = Run::new("panic");
    let e = entries(&files);
    let mem = Arc::new(Mem::with(&files).fault("weights/b.bin", Fault::Panic { after: 1000 }));
    let err = run.go(mem.clone(), &e, &Watcher::default()).err().expect("a panic ends the transfer; it does not hang");
    assert_eq!(err.kind, Kind::Bug);
    assert_eq!(err.detail, Detail::Panic { file: Some("weights/b.bin".into()) });
    assert!(err.message.starts_with("internal error in nix-hf while fetching 'weights/b.bin' (please report it): "));
    // The partial directory stays for the next attempt, which fetches only
    // what did not arrive.
    let parts = run.dir.join("parts");
    let recorded = |f: &FileEntry| -> Vec<u64> {
        let pieces = std::fs::read_to_string(parts.join(format!("{}.pieces", f.content_key()))).unwrap_or_default();
        pieces.lines().map(|l| l.parse::<u64>().unwrap() * PIECE).collect()
    };
    let kept: Vec<(String, Vec<u64>)> = e.iter().map(|f| (f.path.clone(), recorded(f))).collect();
    assert!(parts.join(format!("{}.part", e[1].content_key())).exists());
    mem.faults.lock().unwrap().clear();
    mem.log.lock().unwrap().clear();
    let t = run.go(mem.clone(), &e, &Watcher::default()).unwrap();
    tree(&t, &files);
    for (path, done) in kept {
        let again = mem.requests("range", &path);
        assert!(done.iter().all(|d| !again.contains(d)), "{path}: pieces {done:?} fetched again ({again:?})");
    }
}

/// The NAR bytes of `files`, as Nix would serialise them.
fn nar_bytes(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let sizes: Vec<(&str, u64)> = files.iter().map(|f| (f.0, f.1.len() as u64)).collect();
    let mut out = Vec::new();
    for seg in crate::nar::layout(&sizes) {
        match seg {
            crate::nar::Segment::Framing(b) => out.extend_from_slice(&b),
            crate::nar::Segment::Contents { path, .. } => {
                out.extend_from_slice(&files.iter().find(|f| f.0 == path).unwrap().1)
            }
        }
    }
    out
}

#[test]
fn a_stream_is_the_snapshots_nar_and_keeps_nothing_on_disk() {
    let files = sample();
    let run = Run::new("stream");
    let mem = Arc::new(Mem::with(&files));
    let (nar, _) = run.stream(mem.clone(), &entries(&files), Here::default(), false).unwrap();
    assert_eq!(Sha256::digest(&nar).as_slice(), nar_of(&files).0, "the stream is the NAR nix hash path hashes");
    assert_eq!(nar, nar_bytes(&files));
    let mut starts = mem.requests("range", "copy-of-a.bin");
    starts.sort();
    assert_eq!(starts, [0, PIECE, 2 * PIECE, 3 * PIECE], "each piece fetched once, even for two paths");
    // Only the content found at two paths is written here (the stream reads
    // it twice); nothing else is.
    let kept = run.parts();
    let twice = entries(&files)[0].content_key();
    assert_eq!(kept, [format!("{twice}.part"), format!("{twice}.pieces")], "written here: {kept:?}");
}

#[test]
fn a_kept_stream_ends_only_once_what_it_keeps_is_on_disk() {
    let files = vec![("a.bin", data(13, 6 * PIECE as usize))];
    let run = Run::new("keptend");
    let e = entries(&files);
    run.stream(Arc::new(Mem::with(&files)), &e, Here::default(), true).unwrap();
    // The glue removes the kept copy next; no worker may write to it after.
    let name = e[0].content_key();
    let parts = run.dir.join("parts");
    let recorded = std::fs::read_to_string(parts.join(format!("{name}.pieces"))).unwrap();
    assert_eq!(recorded.lines().count(), 6, "every piece recorded when the NAR ends: {recorded:?}");
    assert!(std::fs::read(parts.join(format!("{name}.part"))).unwrap() == files[0].1, "the copy is whole");
}

#[test]
fn a_kept_stream_resumes_what_an_earlier_run_has() {
    let files = vec![("a.bin", data(12, 4 * PIECE as usize)), ("b.txt", b"small\n".to_vec())];
    let run = Run::new("keptstream");
    let e = entries(&files);
    let name = run.first_piece_left(&e[0], &files[0].1[..PIECE as usize]);
    let mem = Arc::new(Mem::with(&files));
    let (nar, _) = run.stream(mem.clone(), &e, Here::default(), true).unwrap();
    assert_eq!(nar, nar_bytes(&files));
    let mut starts = mem.requests("range", "a.bin");
    starts.sort();
    assert_eq!(starts, [PIECE, 2 * PIECE, 3 * PIECE], "the piece an earlier run has is not fetched again");
    assert!(run.parts().contains(&format!("{name}.pieces")), "kept for a later run until the caller is done");
}

#[test]
fn a_corrupt_piece_an_earlier_run_left_fails_the_stream_by_its_hash() {
    let files = vec![("a.bin", data(14, 3 * PIECE as usize)), ("b.txt", b"small\n".to_vec())];
    let run = Run::new("keptcorrupt");
    let e = entries(&files);
    let mut first = files[0].1[..PIECE as usize].to_vec();
    first[PIECE as usize / 2] ^= 1;
    let name = run.first_piece_left(&e[0], &first);
    let err = run.stream(Arc::new(Mem::with(&files)), &e, Here::default(), true).unwrap_err();
    assert_eq!(err.kind, Kind::CorruptData, "{err:?}");
    assert!(matches!(err.detail, Detail::HashMismatch { ref file, .. } if file == "a.bin"), "{:?}", err.detail);
    assert!(!run.parts().contains(&format!("{name}.pieces")), "a later run would trust the bad piece again");
}

#[test]
fn a_stream_reads_contents_on_this_machine_where_they_are() {
    let files = sample();
    let run = Run::new("streamdonor");
    let mem = Arc::new(Mem::with(&files));
    let readme = files[2].1.clone();
    let (nar, reused) = run.stream(mem.clone(), &entries(&files), Here(vec![readme.clone()]), false).unwrap();
    assert_eq!(nar, nar_bytes(&files));
    assert_eq!(reused, readme.len() as u64);
    assert!(mem.requests("range", "README.txt").is_empty() && mem.requests("locate", "README.txt").is_empty());
}

#[test]
fn a_stream_never_ends_before_every_file_is_verified() {
    let files = vec![("a.bin", data(13, 2 * PIECE as usize)), ("b.txt", b"last\n".to_vec())];
    let run = Run::new("streamcorrupt");
    let e = entries(&files);
    let mem = Arc::new(Mem::with(&files).fault("a.bin", Fault::Corrupt(7)));
    let job = run.job(mem, &e, Here::default(), Output::Stream, false);
    let prepared = prepare(&job).unwrap();
    let size = prepared.nar_size();
    let mut nar = start(job, prepared, &Work::new()).stream();
    let mut got = 0u64;
    let err = loop {
        match nar.next(&Watcher::default()) {
            Ok([]) => panic!("the stream ended although a file was corrupt"),
            Ok(lent) => got += lent.len() as u64,
            Err(e) => break e,
        }
    };
    assert!(got < size, "{got} of {size} bytes: the end was withheld");
    assert_eq!(err.kind, Kind::CorruptData);
    assert!(matches!(err.detail, Detail::HashMismatch { ref file, .. } if file == "a.bin"), "{:?}", err.detail);
}
