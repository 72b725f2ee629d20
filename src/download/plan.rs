//! What to transfer: one blob per distinct content (identical files are
//! fetched once), in the NAR order of each content's first path so the
//! readers find their next file among the first to arrive, each split into
//! pieces.

use std::collections::BTreeMap;

use crate::base::{Digest, FileEntry};
use crate::nar;

pub struct Planned {
    pub digest: Digest,
    pub size: u64,
    /// The paths with this content, in NAR order; the first is the one logged.
    pub paths: Vec<String>,
    /// `[start, end)` of each piece.
    pub pieces: Vec<(u64, u64)>,
}

/// The blobs of `files`, and every path in NAR order.
pub fn plan(files: &[FileEntry], piece: u64) -> (Vec<Planned>, Vec<String>) {
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let order = nar::nar_order(&paths);
    let by_path: BTreeMap<&str, &FileEntry> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut blobs: Vec<Planned> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for p in &order {
        let f = by_path[p.as_str()];
        if let Some(&i) = index.get(&f.content_key()) {
            blobs[i].paths.push(p.clone());
            continue;
        }
        let pieces = (0..f.size).step_by(piece as usize).map(|s| (s, (s + piece).min(f.size))).collect();
        index.insert(f.content_key(), blobs.len());
        blobs.push(Planned { digest: f.digest.clone(), size: f.size, paths: vec![p.clone()], pieces });
    }
    (blobs, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, hash: &str) -> FileEntry {
        FileEntry { path: path.into(), size, digest: Digest::Sha256(hash.repeat(64)), xet: None }
    }

    #[test]
    fn one_blob_per_content_in_nar_order_cut_into_pieces() {
        let files = [file("z/big", 25, "a"), file("copy", 25, "a"), file("b.txt", 0, "b"), file("a", 10, "c")];
        let (blobs, order) = plan(&files, 10);
        assert_eq!(order, ["a", "b.txt", "copy", "z/big"]);
        assert_eq!(
            blobs.iter().map(|b| b.paths.clone()).collect::<Vec<_>>(),
            [vec!["a".to_string()], vec!["b.txt".to_string()], vec!["copy".to_string(), "z/big".to_string()],]
        );
        assert_eq!(blobs[2].pieces, [(0, 10), (10, 20), (20, 25)]);
        assert!(blobs[1].pieces.is_empty(), "an empty file has no piece");
    }
}
