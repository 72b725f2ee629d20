//! The NAR serialisation of a snapshot, hashed without writing it anywhere.
//! Knowing the NAR hash lets the glue move a verified snapshot into the
//! store and register it, instead of having Nix copy it a second time.
//!
//! A snapshot holds only directories and regular, non-executable files (the
//! Hub has no symlinks or modes to offer), so that is all this writes.
//! Entries are in Nix's order: by name, bytewise, per directory (not by full
//! path: `a/b` sorts before `a.txt` because the directory `a` does).

use std::collections::BTreeMap;
use std::io::{self, Read};

use sha2::{Digest, Sha256};

#[derive(Default)]
struct Dir {
    // Keyed by name bytes: BTreeMap<String, _> orders UTF-8 strings by
    // their bytes, which is Nix's order.
    entries: BTreeMap<String, Node>,
}

enum Node {
    File,
    Dir(Dir),
}

/// The tree the NAR describes, from relative file paths.
fn tree(paths: &[&str]) -> Dir {
    let mut root = Dir::default();
    for p in paths {
        let mut dir = &mut root;
        let segs: Vec<&str> = p.split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            if i + 1 == segs.len() {
                dir.entries.insert(seg.to_string(), Node::File);
            } else {
                let node = dir.entries.entry(seg.to_string()).or_insert_with(|| Node::Dir(Dir::default()));
                dir = match node {
                    Node::Dir(d) => d,
                    Node::File => unreachable!("listing checks rule out a file where a folder is"),
                };
            }
        }
    }
    root
}

/// The files of `paths` in NAR order.
pub fn nar_order(paths: &[&str]) -> Vec<String> {
    fn walk(d: &Dir, prefix: &str, out: &mut Vec<String>) {
        for (name, node) in &d.entries {
            let p = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            match node {
                Node::File => out.push(p),
                Node::Dir(sub) => walk(sub, &p, out),
            }
        }
    }
    let mut out = Vec::with_capacity(paths.len());
    walk(&tree(paths), "", &mut out);
    out
}

/// A stretch of a snapshot's NAR: framing, or the contents of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Framing(Vec<u8>),
    Contents { path: String, size: u64 },
}

/// Collects framing and contents into segments, adjacent framing merged.
#[derive(Default)]
struct Layout {
    segments: Vec<Segment>,
}

impl Layout {
    fn raw(&mut self, b: &[u8]) {
        match self.segments.last_mut() {
            Some(Segment::Framing(f)) => f.extend_from_slice(b),
            _ => self.segments.push(Segment::Framing(b.to_vec())),
        }
    }

    fn pad(&mut self, len: u64) {
        let rem = (len % 8) as usize;
        if rem != 0 {
            self.raw(&[0u8; 8][..8 - rem]);
        }
    }

    fn str(&mut self, s: &[u8]) {
        self.raw(&(s.len() as u64).to_le_bytes());
        self.raw(s);
        self.pad(s.len() as u64);
    }

    fn dir(&mut self, d: &Dir, prefix: &str, size_of: &dyn Fn(&str) -> u64) {
        self.str(b"(");
        self.str(b"type");
        self.str(b"directory");
        for (name, n) in &d.entries {
            let p = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            self.str(b"entry");
            self.str(b"(");
            self.str(b"name");
            self.str(name.as_bytes());
            self.str(b"node");
            match n {
                Node::Dir(sub) => self.dir(sub, &p, size_of),
                Node::File => {
                    let size = size_of(&p);
                    self.str(b"(");
                    self.str(b"type");
                    self.str(b"regular");
                    self.str(b"contents");
                    self.raw(&size.to_le_bytes());
                    self.segments.push(Segment::Contents { path: p, size });
                    self.pad(size);
                    self.str(b")");
                }
            }
            self.str(b")");
        }
        self.str(b")");
    }
}

/// The NAR of the snapshot made of `files` (relative paths and sizes; every
/// file, nothing else), as segments in order: known before any byte of a
/// file is, so its size and framing are too.
pub fn layout(files: &[(&str, u64)]) -> Vec<Segment> {
    let paths: Vec<&str> = files.iter().map(|f| f.0).collect();
    let sizes: BTreeMap<&str, u64> = files.iter().copied().collect();
    let mut l = Layout::default();
    l.str(b"nix-archive-1");
    l.dir(&tree(&paths), "", &|p| sizes[p]);
    l.segments
}

/// How many bytes the NAR of `layout` has.
pub fn size(layout: &[Segment]) -> u64 {
    layout
        .iter()
        .map(|s| match s {
            Segment::Framing(b) => b.len() as u64,
            Segment::Contents { size, .. } => *size,
        })
        .sum()
}

/// Hashes what is written into it, counting bytes.
struct NarHasher {
    hash: Sha256,
    size: u64,
}

impl io::Write for NarHasher {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.hash.update(b);
        self.size += b.len() as u64;
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The NAR hash (SHA-256) and size of `layout`, reading each file once
/// through `contents` (which opens a file's bytes).
pub fn hash<'r>(
    layout: &[Segment],
    mut contents: impl FnMut(&str) -> io::Result<Box<dyn Read + 'r>>,
) -> io::Result<([u8; 32], u64)> {
    let mut sink = NarHasher { hash: Sha256::new(), size: 0 };
    for seg in layout {
        match seg {
            Segment::Framing(b) => io::Write::write_all(&mut sink, b)?,
            Segment::Contents { path, size } => {
                let n = crate::verify::copy(&mut contents(path)?.take(*size), &mut sink)?;
                if n < *size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{path} is shorter than {size} bytes"),
                    ));
                }
            }
        }
    }
    Ok((sink.hash.finalize().into(), sink.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_per_directory_by_name() {
        assert_eq!(nar_order(&["a.txt", "a/b", "B", "a/a/z"]), vec!["B", "a/a/z", "a/b", "a.txt"]);
    }

    #[test]
    fn matches_nix_for_a_known_tree() {
        // A directory with "hello" = "hello\n" and "d/empty" = "": its NAR
        // hash as printed by `nix hash path --base16` (Nix 2.26.3 and 2.35.2 alike).
        let files: &[(&str, &[u8])] = &[("hello", b"hello\n"), ("d/empty", b"")];
        let sizes: Vec<(&str, u64)> = files.iter().map(|f| (f.0, f.1.len() as u64)).collect();
        let segments = layout(&sizes);
        assert_eq!(size(&segments), 640, "nix-store --dump gives 640 bytes");
        let (h, size) = hash(&segments, |p| {
            let data = files.iter().find(|f| f.0 == p).unwrap().1.to_vec();
            Ok(Box::new(std::io::Cursor::new(data)))
        })
        .unwrap();
        assert_eq!(size, 640);
        assert_eq!(crate::verify::hex(&h), KNOWN_NAR_SHA256);
        assert!(hash(&segments, |_| Ok(Box::new(std::io::empty()))).is_err(), "a file shorter than listed");
    }

    const KNOWN_NAR_SHA256: &str = "3d06db63bf230b3648c4771aa333fe3c7e43d8302c50d4f56943cae8d0e58a79";
}
