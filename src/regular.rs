//! A snapshot's regular (non-LFS) files in one git pack rather than one
//! request each, where there are many: thousands of small JSON shards or
//! captions are then a couple of requests. Each wanted blob is taken by the
//! id the listing gives it, so nothing the pack holds under another id is
//! used; the transfer then verifies them again, as any content it reuses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::base::{CommitId, Digest, FileEntry};
use crate::download::Reuse;
use crate::error::{Error, Kind, Result};
use crate::gitpack::{self, ObjectKind};
use crate::hub::{Hub, Unusable};
use crate::spec::Spec;
use crate::work::Work;

/// Fewer regular files than this are fetched one request each: a pack
/// costs two requests of its own.
pub const MIN_FILES: usize = 16;
/// A pack carries every regular file of the commit, wanted or not: it is
/// used only when that is at most this much...
pub const MAX_PACK_BYTES: u64 = 256 << 20;
/// ...and at most this many times the wanted regular bytes (plus
/// `SLACK`), so that a filter that wants a few files of many never fetches
/// much more than it asked for.
pub const MAX_EXTRA_FACTOR: u64 = 4;
pub const SLACK: u64 = 16 << 20;

/// The wanted regular files' blobs, from the pack, by git id.
pub struct Packed {
    blobs: BTreeMap<String, Vec<u8>>,
    dir: PathBuf,
    then: Box<dyn Reuse>,
}

/// What `fetch` did, for the caller to say at -v.
pub enum Outcome {
    /// Too few regular files for a pack to pay, or too many bytes.
    NotTried,
    Packed {
        files: usize,
        bytes: u64,
    },
    /// The endpoint cannot be used; fetched one request each instead.
    FellBack {
        files: usize,
        why: String,
    },
}

impl Outcome {
    pub fn note(&self, shown: &str) -> Option<String> {
        match self {
            Outcome::NotTried => None,
            Outcome::Packed { files, bytes } => {
                Some(format!("fetching the {files} regular files of '{shown}' ({bytes} bytes) in one git pack"))
            }
            Outcome::FellBack { files, why } => {
                Some(format!("fetching the {files} regular files of '{shown}' one request each: {why}"))
            }
        }
    }
}

/// The regular files of `wanted` not already on this machine.
fn to_fetch<'a>(wanted: &'a [FileEntry], reuse: &dyn Fn(&FileEntry) -> bool) -> Vec<&'a FileEntry> {
    let mut seen = BTreeSet::new();
    wanted
        .iter()
        .filter(|f| f.is_regular() && f.size > 0)
        .filter(|f| seen.insert(f.digest.hex().to_string()) && !reuse(f))
        .collect()
}

/// Whether a pack of the commit (`listing`, every file) pays for `fetch`.
fn worth_it(listing: &[FileEntry], fetch: &[&FileEntry]) -> Option<u64> {
    if fetch.len() < MIN_FILES {
        return None;
    }
    // Saturating: the sizes are the Hub's word.
    let sum = |sizes: &mut dyn Iterator<Item = u64>| sizes.fold(0u64, u64::saturating_add);
    let regular = sum(&mut listing.iter().filter(|f| f.is_regular()).map(|f| f.size));
    let wanted = sum(&mut fetch.iter().map(|f| f.size));
    if regular > MAX_PACK_BYTES || regular > MAX_EXTRA_FACTOR.saturating_mul(wanted).saturating_add(SLACK) {
        return None;
    }
    // What the pack inflates to at most: the regular files, LFS pointers,
    // trees (an entry per file and directory) and the commit.
    let per_entry = sum(&mut listing.iter().map(|f| f.path.len() as u64 + 256));
    Some(regular.saturating_add(per_entry).saturating_add(64 << 10))
}

/// Fetches the regular files of `wanted` in one pack when that pays, and
/// returns what reuses them ahead of `then`.
pub fn fetch(
    hub: &Hub,
    spec: &Spec,
    sha: &CommitId,
    listing: &[FileEntry],
    wanted: &[FileEntry],
    then: Box<dyn Reuse>,
    has: &dyn Fn(&FileEntry) -> bool,
    dir: &Path,
    work: &Work,
) -> Result<(Box<dyn Reuse>, Outcome)> {
    let fetch = to_fetch(wanted, has);
    let Some(limit) = worth_it(listing, &fetch) else { return Ok((then, Outcome::NotTried)) };
    let mut objects = match hub.git_pack(spec, sha, limit, work) {
        Ok(o) => o,
        Err(Unusable::Refused(why)) => return Ok((then, Outcome::FellBack { files: fetch.len(), why })),
        Err(Unusable::Failed(e)) if e.kind == Kind::Interrupted => return Err(e),
        Err(Unusable::Failed(e)) => return Ok((then, Outcome::FellBack { files: fetch.len(), why: e.message })),
    };
    let shown = spec.display();
    let mut blobs = BTreeMap::new();
    for f in &fetch {
        let id = hex_id(f.digest.hex());
        match id.and_then(|id| objects.remove(&id)) {
            Some(o) if o.kind == ObjectKind::Blob && o.data.len() as u64 == f.size => {
                blobs.insert(f.digest.hex().to_string(), o.data);
            }
            _ => {
                return Err(Error::new(
                    Kind::CorruptData,
                    format!(
                        "the Hub's git pack of '{shown}' holds no blob of '{}' with the git hash the Hub lists ({}): \
                         its bytes there are corrupt or missing",
                        f.path,
                        f.digest.hex()
                    ),
                ))
            }
        }
    }
    let bytes = blobs.values().map(|b| b.len() as u64).sum();
    let outcome = Outcome::Packed { files: blobs.len(), bytes };
    Ok((Box::new(Packed { blobs, dir: dir.to_path_buf(), then }), outcome))
}

fn hex_id(h: &str) -> Option<gitpack::ObjectId> {
    let mut id = [0u8; 20];
    if h.len() != 40 {
        return None;
    }
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}

impl Packed {
    fn blob(&self, digest: &Digest, size: u64) -> Option<&[u8]> {
        match digest {
            Digest::GitSha1(h) => self.blobs.get(h).map(Vec::as_slice).filter(|b| b.len() as u64 == size),
            Digest::Sha256(_) => None,
        }
    }

    /// Written in place: a part is trusted only once its record says so,
    /// which the transfer writes after this.
    fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
        File::create(path).and_then(|mut f| f.write_all(data))
    }
}

impl Reuse for Packed {
    fn place(&self, digest: &Digest, size: u64, part: &Path) -> bool {
        match self.blob(digest, size) {
            Some(data) if Self::write(part, data).is_ok() => true,
            _ => self.then.place(digest, size, part),
        }
    }

    /// A stream that keeps nothing still reads a file: one that is gone
    /// from the directory as soon as it is open.
    fn open(&self, digest: &Digest, size: u64) -> Option<File> {
        let Some(data) = self.blob(digest, size) else { return self.then.open(digest, size) };
        let path = self.dir.join(format!("{}.packed", digest.hex()));
        Self::write(&path, data).ok()?;
        let f = File::open(&path).ok();
        let _ = fs::remove_file(&path);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular(path: &str, size: u64, id: char) -> FileEntry {
        FileEntry { path: path.into(), size, digest: Digest::GitSha1(id.to_string().repeat(40)), xet: None }
    }

    #[test]
    fn a_pack_is_fetched_for_many_regular_files_and_bounded_extra_bytes() {
        let many: Vec<FileEntry> =
            (0..40).map(|i| regular(&format!("f{i}"), 100, char::from_digit(i % 16, 16).unwrap())).collect();
        let distinct: Vec<FileEntry> = (0..40)
            .map(|i| FileEntry {
                path: format!("f{i}"),
                size: 100,
                digest: Digest::GitSha1(format!("{i:040x}")),
                xet: None,
            })
            .collect();
        assert!(to_fetch(&many, &|_| false).len() == 16, "one fetch per content");
        let all: Vec<&FileEntry> = distinct.iter().collect();
        assert!(worth_it(&distinct, &all).is_some());
        assert!(worth_it(&distinct, &all[..MIN_FILES - 1]).is_none(), "too few to pay for a pack");
        let mut big = distinct.clone();
        big.push(regular("huge.json", 100 << 20, 'e'));
        assert!(worth_it(&big, &all).is_none(), "the pack would be far more than what is wanted");
        let on_disk = |f: &FileEntry| f.path == "f3";
        assert_eq!(to_fetch(&distinct, &on_disk).len(), 39, "what is here is not fetched");
        assert_eq!(hex_id(&"0a".repeat(20)), Some([10; 20]));
        assert_eq!(hex_id("zz"), None);
    }
}
