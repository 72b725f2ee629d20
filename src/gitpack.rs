//! Git packfiles (version 2), as a Hub's git endpoint sends them: every
//! object inflated, deltas applied, the pack's own checksum checked, and
//! each object named by the id git gives it (the SHA-1 of its kind, length
//! and bytes), so that a caller trusts nothing but ids it already knows.
//! Pure: bytes in, objects out.

use std::collections::BTreeMap;

use flate2::{Decompress, FlushDecompress, Status};
use sha1::{Digest as _, Sha1};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl ObjectKind {
    fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }
}

pub type ObjectId = [u8; 20];

#[derive(Debug)]
pub struct Object {
    pub kind: ObjectKind,
    pub data: Vec<u8>,
}

/// The id git gives an object.
pub fn object_id(kind: ObjectKind, data: &[u8]) -> ObjectId {
    let mut h = Sha1::new();
    h.update(format!("{} {}\0", kind.name(), data.len()));
    h.update(data);
    h.finalize().into()
}

/// What is wrong with a pack, said for the error its caller makes.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPack(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, BadPack> {
    Err(BadPack(msg.into()))
}

/// An entry as the pack holds it.
enum Raw {
    Whole(ObjectKind, Vec<u8>),
    /// A delta against the entry at this offset of the pack.
    AtOffset(usize, Vec<u8>),
    /// A delta against the object with this id.
    Of(ObjectId, Vec<u8>),
}

/// Every object of `pack`, by id. `limit` bounds the bytes inflated, so
/// that a hostile pack cannot exhaust memory.
pub fn parse(pack: &[u8], limit: u64) -> Result<BTreeMap<ObjectId, Object>, BadPack> {
    if pack.len() < 32 || &pack[..4] != b"PACK" {
        return bad("it is not a git pack (no PACK header)");
    }
    let version = u32::from_be_bytes(pack[4..8].try_into().expect("four bytes"));
    if version != 2 && version != 3 {
        return bad(format!("pack version {version} is not one git writes (2 or 3)"));
    }
    let count = u32::from_be_bytes(pack[8..12].try_into().expect("four bytes")) as usize;
    let (body, sum) = pack.split_at(pack.len() - 20);
    if Sha1::digest(body).as_slice() != sum {
        return bad("its checksum does not match its bytes (corrupt or cut off)");
    }
    let mut pos = 12;
    let mut inflated = 0u64;
    let mut raw: Vec<(usize, Raw)> = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let start = pos;
        let (kind, size) = entry_header(body, &mut pos)?;
        inflated += size;
        if inflated > limit {
            return bad(format!("it inflates to more than the {limit} bytes expected"));
        }
        let entry = match kind {
            1..=4 => Raw::Whole(whole_kind(kind), inflate(body, &mut pos, size)?),
            6 => {
                let back = ofs_offset(body, &mut pos)?;
                let Some(base) = start.checked_sub(back) else { return bad("a delta points before the pack") };
                Raw::AtOffset(base, inflate(body, &mut pos, size)?)
            }
            7 => {
                let Some(id) = body.get(pos..pos + 20) else { return bad("it ends inside an entry") };
                pos += 20;
                Raw::Of(id.try_into().expect("twenty bytes"), inflate(body, &mut pos, size)?)
            }
            k => return bad(format!("entry type {k} is not one git writes")),
        };
        raw.push((start, entry));
    }
    if pos != body.len() {
        return bad("bytes follow its last entry");
    }
    resolve(raw, limit)
}

fn whole_kind(k: u8) -> ObjectKind {
    match k {
        1 => ObjectKind::Commit,
        2 => ObjectKind::Tree,
        3 => ObjectKind::Blob,
        _ => ObjectKind::Tag,
    }
}

fn byte(b: &[u8], pos: &mut usize) -> Result<u8, BadPack> {
    let Some(&c) = b.get(*pos) else { return bad("it ends inside an entry") };
    *pos += 1;
    Ok(c)
}

/// An entry's type and inflated size.
fn entry_header(b: &[u8], pos: &mut usize) -> Result<(u8, u64), BadPack> {
    let mut c = byte(b, pos)?;
    let kind = (c >> 4) & 7;
    let mut size = (c & 15) as u64;
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte(b, pos)?;
        if shift > 57 {
            return bad("an entry's size does not fit in 64 bits");
        }
        size |= ((c & 0x7f) as u64) << shift;
        shift += 7;
    }
    Ok((kind, size))
}

/// How far back an offset delta's base is.
fn ofs_offset(b: &[u8], pos: &mut usize) -> Result<usize, BadPack> {
    let mut c = byte(b, pos)?;
    let mut off = (c & 0x7f) as usize;
    while c & 0x80 != 0 {
        c = byte(b, pos)?;
        off = off.checked_add(1).and_then(|o| o.checked_mul(128)).ok_or(BadPack("a delta offset overflows".into()))?
            | (c & 0x7f) as usize;
    }
    Ok(off)
}

/// Inflates the zlib stream at `pos`, which must give exactly `size` bytes.
fn inflate(b: &[u8], pos: &mut usize, size: u64) -> Result<Vec<u8>, BadPack> {
    let mut out = Vec::with_capacity(size as usize);
    let mut z = Decompress::new(true);
    loop {
        let before = (z.total_in(), z.total_out());
        let input = &b[*pos + z.total_in() as usize..];
        if out.len() == out.capacity() {
            // Room to see the stream end; exact, so a blob keeps no slack.
            out.reserve_exact(64);
        }
        let status = match z.decompress_vec(input, &mut out, FlushDecompress::None) {
            Ok(s) => s,
            Err(e) => return bad(format!("an entry does not inflate: {e}")),
        };
        if out.len() as u64 > size {
            return bad("an entry inflates to more than its header says");
        }
        match status {
            Status::StreamEnd => break,
            _ if (z.total_in(), z.total_out()) == before => return bad("it ends inside an entry"),
            _ => {}
        }
    }
    *pos += z.total_in() as usize;
    if out.len() as u64 != size {
        return bad("an entry inflates to less than its header says");
    }
    Ok(out)
}

/// The objects, deltas applied to their bases (which may be deltas too).
fn resolve(mut raw: Vec<(usize, Raw)>, limit: u64) -> Result<BTreeMap<ObjectId, Object>, BadPack> {
    // What the whole entries made counts too: all of it is kept.
    let mut made: u64 = raw.iter().map(|(_, r)| if let Raw::Whole(_, d) = r { d.len() as u64 } else { 0 }).sum();
    let at: BTreeMap<usize, usize> = raw.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
    let mut done: Vec<Option<(ObjectKind, Vec<u8>)>> = (0..raw.len()).map(|_| None).collect();
    let mut by_id: BTreeMap<ObjectId, usize> = BTreeMap::new();
    // Whole entries first: a ref delta names its base by id.
    for (i, (_, r)) in raw.iter_mut().enumerate() {
        if let Raw::Whole(kind, data) = r {
            let data = std::mem::take(data);
            by_id.insert(object_id(*kind, &data), i);
            done[i] = Some((*kind, data));
        }
    }
    // Then deltas, as often as one resolves more (a chain resolves link by
    // link, in any order the pack has it).
    loop {
        let mut progress = false;
        let mut left = false;
        for (i, (_, r)) in raw.iter().enumerate() {
            if done[i].is_some() {
                continue;
            }
            let (base, delta) = match r {
                Raw::AtOffset(p, d) => match at.get(p) {
                    Some(&b) => (b, d),
                    None => return bad("a delta's base is not an entry of the pack"),
                },
                Raw::Of(id, d) => match by_id.get(id) {
                    Some(&b) => (b, d),
                    None => {
                        left = true;
                        continue;
                    }
                },
                Raw::Whole(..) => unreachable!("whole entries are done"),
            };
            let Some((kind, source)) = &done[base] else {
                left = true;
                continue;
            };
            let data = apply_delta(source, delta, limit - made)
                .map_err(|e| BadPack(format!("{}; the bound was {limit} bytes", e.0)))?;
            made += data.len() as u64;
            by_id.insert(object_id(*kind, &data), i);
            done[i] = Some((*kind, data));
            progress = true;
        }
        if !left {
            break;
        }
        if !progress {
            return bad("a delta's base is not in the pack (a thin pack, which was not asked for)");
        }
    }
    Ok(by_id
        .into_iter()
        .map(|(id, i)| {
            let (kind, data) = done[i].take().expect("every entry is resolved");
            (id, Object { kind, data })
        })
        .collect())
}

fn varint(d: &[u8], pos: &mut usize) -> Result<u64, BadPack> {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let c = byte(d, pos)?;
        if shift > 57 {
            return bad("a delta size does not fit in 64 bits");
        }
        v |= ((c & 0x7f) as u64) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Git's delta: copies from the base and inserted bytes; what it makes is
/// at most `max` bytes.
pub fn apply_delta(base: &[u8], delta: &[u8], max: u64) -> Result<Vec<u8>, BadPack> {
    let mut pos = 0;
    if varint(delta, &mut pos)? != base.len() as u64 {
        return bad("a delta's base has another length than the delta says");
    }
    let size = varint(delta, &mut pos)?;
    if size > max {
        return bad(format!("a delta would make {size} bytes, more than expected"));
    }
    let mut out = Vec::with_capacity(size as usize);
    while pos < delta.len() {
        let op = byte(delta, &mut pos)?;
        if op & 0x80 != 0 {
            let (mut off, mut len) = (0usize, 0usize);
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    off |= (byte(delta, &mut pos)? as usize) << (8 * i);
                }
            }
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    len |= (byte(delta, &mut pos)? as usize) << (8 * i);
                }
            }
            if len == 0 {
                len = 0x10000;
            }
            let Some(from) = off.checked_add(len).and_then(|end| base.get(off..end)) else {
                return bad("a delta copies from beyond its base");
            };
            out.extend_from_slice(from);
        } else if op != 0 {
            let Some(bytes) = delta.get(pos..pos + op as usize) else { return bad("a delta ends inside an insert") };
            out.extend_from_slice(bytes);
            pos += op as usize;
        } else {
            return bad("a delta has a zero opcode");
        }
        if out.len() as u64 > size {
            return bad("a delta makes more than it says");
        }
    }
    if out.len() as u64 != size {
        return bad("a delta makes less than it says");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    fn hex(id: &ObjectId) -> String {
        id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A pack git itself makes of a repository with similar files (so that
    /// it writes deltas), and the blobs' ids git gives them.
    fn git_pack() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("nix-hf-gitpack-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            let o = Command::new("git").arg("-C").arg(&dir).args(args).output().expect("git runs");
            assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
            o.stdout
        };
        git(&["init", "-q"]);
        let mut blobs = Vec::new();
        for i in 0..40 {
            let body: String = (0..200).map(|j| format!("line {j} of file {i}, much like the others\n")).collect();
            let path = dir.join(format!("f{i}.txt"));
            std::fs::write(&path, &body).unwrap();
            let id = String::from_utf8(git(&["hash-object", "-w", path.to_str().unwrap()])).unwrap();
            blobs.push((id.trim().to_string(), body.into_bytes()));
        }
        let ids: String = blobs.iter().map(|(id, _)| format!("{id}\n")).collect();
        let o = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["pack-objects", "--stdout", "--window=50", "--depth=20"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(ids.as_bytes())?;
                c.wait_with_output()
            })
            .expect("git pack-objects runs");
        std::fs::remove_dir_all(&dir).unwrap();
        (o.stdout, blobs)
    }

    #[test]
    fn a_pack_git_writes_gives_every_blob_under_gits_id() {
        let (pack, blobs) = git_pack();
        let objects = parse(&pack, 1 << 30).unwrap();
        assert_eq!(objects.len(), blobs.len());
        for (id, body) in &blobs {
            let (got_id, o) = objects.iter().find(|(k, _)| &hex(k) == id).expect("each blob is there");
            assert_eq!((o.kind, &o.data), (ObjectKind::Blob, body));
            assert_eq!(&hex(&object_id(o.kind, &o.data)), id);
            assert_eq!(got_id, &object_id(o.kind, &o.data));
        }
        assert!(pack.len() < blobs.iter().map(|(_, b)| b.len()).sum::<usize>() / 4, "git wrote deltas");
    }

    #[test]
    fn damage_anywhere_is_refused() {
        let (pack, _) = git_pack();
        assert!(parse(&pack[..pack.len() - 1], 1 << 30).is_err(), "cut off");
        assert!(parse(&pack[..pack.len() / 2], 1 << 30).is_err(), "cut off");
        for at in [12, pack.len() / 3, pack.len() - 21, pack.len() - 1] {
            let mut bad = pack.clone();
            bad[at] ^= 0x40;
            assert!(parse(&bad, 1 << 30).is_err(), "a flipped byte at {at}");
        }
        // Damage behind a checksum made to match: the entries' own checks
        // (inflating, sizes, deltas) refuse it, or it names other objects.
        let ids: std::collections::BTreeSet<ObjectId> = parse(&pack, 1 << 30).unwrap().into_keys().collect();
        for at in (12..pack.len() - 20).step_by(97) {
            let mut bad = pack[..pack.len() - 20].to_vec();
            bad[at] ^= 0x01;
            let sum: [u8; 20] = Sha1::digest(&bad).into();
            bad.extend_from_slice(&sum);
            if let Ok(objects) = parse(&bad, 1 << 30) {
                assert_ne!(
                    objects.into_keys().collect::<std::collections::BTreeSet<_>>(),
                    ids,
                    "damage at {at} unseen"
                );
            }
        }
        assert!(parse(&pack, 100).unwrap_err().0.contains("more than the 100 bytes"));
    }

    #[test]
    fn deltas_copy_and_insert() {
        let base = b"0123456789abcdef";
        // sizes 16 -> 9; copy 4 bytes at offset 2, insert "xyz", copy 2 at 14
        let delta = [16, 9, 0x91, 2, 4, 3, b'x', b'y', b'z', 0x91, 14, 2];
        assert_eq!(apply_delta(base, &delta, 9).unwrap(), b"2345xyzef");
        assert!(apply_delta(base, &delta, 8).unwrap_err().0.contains("more than expected"));
        assert!(apply_delta(base, &[15, 1, 1, b'a'], 100).is_err(), "wrong base length");
        assert!(apply_delta(base, &[16, 1, 0x91, 15, 2], 100).is_err(), "copy past the base");
        assert!(apply_delta(base, &[16, 1, 0], 100).is_err(), "zero opcode");
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), delta in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut pack = b"PACK\0\0\0\x02\0\0\0\x03".to_vec();
            pack.extend_from_slice(&bytes);
            let sum: [u8; 20] = Sha1::digest(&pack).into();
            pack.extend_from_slice(&sum);
            let _ = parse(&pack, 1 << 20);
            let _ = apply_delta(&bytes, &delta, 1 << 20);
        }
    }
}
