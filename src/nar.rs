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

/// Writes NAR framing and contents into a hasher, counting bytes.
struct NarSink {
    hash: Sha256,
    size: u64,
}

impl NarSink {
    fn raw(&mut self, b: &[u8]) {
        self.hash.update(b);
        self.size += b.len() as u64;
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
pub fn nar_order<'a>(paths: &[&'a str]) -> Vec<String> {
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

/// The NAR hash (SHA-256) and NAR size of the snapshot in `root` made of
/// `paths` (relative; every file, nothing else), reading each file once.
/// `contents` opens a file's bytes; usually the file on disk.
pub fn hash_tree<'r>(
    paths: &[&str],
    mut contents: impl FnMut(&str) -> io::Result<(u64, Box<dyn Read + 'r>)>,
) -> io::Result<([u8; 32], u64)> {
    fn node<'r>(
        sink: &mut NarSink,
        d: &Dir,
        prefix: &str,
        contents: &mut dyn FnMut(&str) -> io::Result<(u64, Box<dyn Read + 'r>)>,
    ) -> io::Result<()> {
        sink.str(b"(");
        sink.str(b"type");
        sink.str(b"directory");
        for (name, n) in &d.entries {
            let p = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            sink.str(b"entry");
            sink.str(b"(");
            sink.str(b"name");
            sink.str(name.as_bytes());
            sink.str(b"node");
            match n {
                Node::Dir(sub) => node(sink, sub, &p, contents)?,
                Node::File => {
                    let (len, mut r) = contents(&p)?;
                    sink.str(b"(");
                    sink.str(b"type");
                    sink.str(b"regular");
                    sink.str(b"contents");
                    sink.raw(&len.to_le_bytes());
                    let mut buf = vec![0u8; 1 << 20];
                    let mut left = len;
                    while left > 0 {
                        let want = left.min(buf.len() as u64) as usize;
                        let n = r.read(&mut buf[..want])?;
                        if n == 0 {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("{p} is shorter than {len} bytes"),
                            ));
                        }
                        sink.raw(&buf[..n]);
                        left -= n as u64;
                    }
                    sink.pad(len);
                    sink.str(b")");
                }
            }
            sink.str(b")");
        }
        sink.str(b")");
        Ok(())
    }
    let mut sink = NarSink { hash: Sha256::new(), size: 0 };
    sink.str(b"nix-archive-1");
    node(&mut sink, &tree(paths), "", &mut contents)?;
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
        let paths: Vec<&str> = files.iter().map(|f| f.0).collect();
        let (h, size) = hash_tree(&paths, |p| {
            let data = files.iter().find(|f| f.0 == p).unwrap().1.to_vec();
            Ok((data.len() as u64, Box::new(std::io::Cursor::new(data))))
        })
        .unwrap();
        assert_eq!(size, 640, "nix-store --dump gives 640 bytes");
        assert_eq!(crate::verify::hex(&h), KNOWN_NAR_SHA256);
    }

    const KNOWN_NAR_SHA256: &str = "3d06db63bf230b3648c4771aa333fe3c7e43d8302c50d4f56943cae8d0e58a79";
}
