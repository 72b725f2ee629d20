//! The records that let an interrupted or killed fetch resume: each blob's
//! bytes go to `<content>.part` at their offsets, and each finished piece's
//! number is appended to `<content>.pieces` beside it. A record is trusted
//! only with a part file of the right size; anything else starts afresh.
//! Pieces are verified again (hashed) when the next run reads them.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::base::lock;
use crate::error::{Error, Result};

pub struct Record {
    pub part: PathBuf,
    pieces: PathBuf,
    /// Set once the content is discarded: a piece that finishes after that
    /// (another worker's) must not bring the record back.
    discarded: Mutex<bool>,
}

impl Record {
    /// The record of content `name` (digest and size) in the `parts` folder.
    pub fn new(parts: &Path, name: &str) -> Record {
        Record {
            part: parts.join(format!("{name}.part")),
            pieces: parts.join(format!("{name}.pieces")),
            discarded: Mutex::new(false),
        }
    }

    /// Which of `count` pieces an earlier run finished, if its part file
    /// is there (None: there is no usable one, and any record is removed).
    pub fn earlier(&self, size: u64, count: usize) -> Option<Vec<bool>> {
        if !fs::metadata(&self.part).is_ok_and(|m| m.len() == size) {
            let _ = fs::remove_file(&self.pieces);
            return None;
        }
        let mut done = vec![false; count];
        for line in fs::read_to_string(&self.pieces).unwrap_or_default().lines() {
            if let Some(d) = line.trim().parse::<usize>().ok().and_then(|i| done.get_mut(i)) {
                *d = true;
            }
        }
        Some(done)
    }

    /// A fresh part file of `size` bytes, none of it done.
    pub fn fresh(&self, size: u64) -> Result<()> {
        let f = File::create(&self.part).map_err(|e| Error::io("create", &self.part, e))?;
        f.set_len(size).map_err(|e| Error::io("size", &self.part, e))
    }

    pub fn finished(&self, piece: usize) -> Result<()> {
        let discarded = lock(&self.discarded);
        if *discarded {
            return Ok(());
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pieces)
            .and_then(|mut f| writeln!(f, "{piece}"))
            .map_err(|e| Error::io("record progress in", &self.pieces, e))
    }

    /// All `count` pieces are there (the part came from elsewhere whole).
    pub fn all_finished(&self, count: usize) -> Result<()> {
        let all: String = (0..count).map(|p| format!("{p}\n")).collect();
        fs::write(&self.pieces, all).map_err(|e| Error::io("record progress in", &self.pieces, e))
    }

    /// Forgets the content: nothing of it will be reused.
    pub fn discard(&self) {
        let mut discarded = lock(&self.discarded);
        *discarded = true;
        let _ = fs::remove_file(&self.part);
        let _ = fs::remove_file(&self.pieces);
    }

    /// Once the part has moved into the tree.
    pub fn done(&self) {
        let _ = fs::remove_file(&self.pieces);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_trusted_only_with_its_part() {
        let dir = std::env::temp_dir().join(format!("nixhf-resume-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let r = Record::new(&dir, "abc-100");
        assert_eq!(r.earlier(100, 4), None, "no part yet");
        r.fresh(100).unwrap();
        assert_eq!(fs::metadata(&r.part).unwrap().len(), 100, "a fresh part of the full size");
        assert_eq!(r.earlier(100, 4).unwrap(), [false; 4]);
        r.finished(1).unwrap();
        r.finished(3).unwrap();
        assert_eq!(r.earlier(100, 4).unwrap(), [false, true, false, true]);
        fs::write(&r.part, b"short").unwrap();
        assert_eq!(r.earlier(100, 4), None, "a part of the wrong size is not trusted");
        assert!(!r.pieces.exists(), "and its record is gone");
        r.fresh(100).unwrap();
        assert_eq!(r.earlier(100, 4).unwrap(), [false; 4], "nor is the record it had");
        r.all_finished(4).unwrap();
        assert_eq!(r.earlier(100, 4).unwrap(), [true; 4]);
        r.discard();
        assert!(!r.part.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
