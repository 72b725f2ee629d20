//! Xet, the Hub's content-addressed storage, without any I/O: its hashes
//! (keyed BLAKE3 over chunks, Merkle trees over chunk hashes), the chunks a
//! xorb range holds (an 8-byte header, then the bytes: stored, LZ4 frames,
//! or byte-grouped and LZ4), and the CAS's reconstruction answers (V1 and
//! V2), read into one checked plan. The Xet protocol specification
//! (huggingface/hub-docs `docs/xet/`) is the authority; every limit it sets
//! is enforced, so a hostile answer costs no more memory than an honest one.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use serde::Deserialize;

pub use crate::base::XetHash;

/// Keys of the spec's keyed BLAKE3 hashes (hashing.md).
const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16, 155, 235, 43, 88, 180,
    208, 176, 75, 147, 173, 242, 41,
];
const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55, 199, 109, 210, 248,
    99, 82, 230, 74, 83, 113, 63,
];

/// The largest chunk, uncompressed (chunking.md: a hard limit), and its
/// largest stored form (xorb.md).
pub const MAX_CHUNK: usize = 128 << 10;
const MAX_STORED_CHUNK: usize = 2 * MAX_CHUNK;
/// A xorb holds at most this many chunks and bytes (xorb.md).
pub const MAX_XORB_CHUNKS: u32 = 8192;
const MAX_XORB_BYTES: u64 = 64 << 20;
/// The smallest chunk but a file's last (chunking.md: an eighth of 64 KiB).
const MIN_CHUNK: u64 = 8 << 10;

pub fn chunk_hash(data: &[u8]) -> XetHash {
    XetHash(*blake3::keyed_hash(&DATA_KEY, data).as_bytes())
}

/// Where the tree cuts a level into nodes: at least 2 children (unless
/// fewer are left), at most 9, ending after the first hash from the third
/// on whose last word is a multiple of 4 (a mean branching factor of 4).
fn next_cut(level: &[(XetHash, u64)]) -> usize {
    if level.len() <= 2 {
        return level.len();
    }
    let end = level.len().min(9);
    (2..end).find(|&i| level[i].0.last_word() % 4 == 0).map_or(end, |i| i + 1)
}

fn merge(children: &[(XetHash, u64)]) -> (XetHash, u64) {
    let mut text = String::with_capacity(children.len() * 90);
    let mut size = 0u64;
    for (h, s) in children {
        text.push_str(&format!("{h} : {s}\n"));
        size = size.saturating_add(*s);
    }
    (XetHash(*blake3::keyed_hash(&INTERNAL_NODE_KEY, text.as_bytes()).as_bytes()), size)
}

/// The Merkle root over chunks (hash, length) in order: a xorb's hash.
pub fn merkle_root(chunks: &[(XetHash, u64)]) -> XetHash {
    let mut level = chunks.to_vec();
    if level.is_empty() {
        return XetHash([0; 32]);
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 3 + 1);
        let mut i = 0;
        while i < level.len() {
            let j = i + next_cut(&level[i..]);
            next.push(merge(&level[i..j]));
            i = j;
        }
        level = next;
    }
    level[0].0
}

/// A file's Xet hash from its chunks in order (an empty file's is zero).
pub fn file_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    if chunks.is_empty() {
        return XetHash([0; 32]);
    }
    XetHash(*blake3::keyed_hash(&[0; 32], &merkle_root(chunks).0).as_bytes())
}

/// Why the bytes of a xorb range are not chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkProblem {
    /// The range ended inside a chunk's header or bytes.
    Truncated,
    /// A header no version of the format writes, or limits broken.
    BadHeader(String),
    /// The bytes do not decompress to the length the header gives.
    Undecodable(String),
}

impl fmt::Display for ChunkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkProblem::Truncated => f.write_str("it is cut off"),
            ChunkProblem::BadHeader(why) => write!(f, "its header is invalid ({why})"),
            ChunkProblem::Undecodable(why) => write!(f, "it does not decompress ({why})"),
        }
    }
}

/// Reads one chunk from `r` into `out` (cleared first), or None at a clean
/// end. `stored` is scratch for its stored form.
pub fn read_chunk(r: &mut dyn Read, stored: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(problem(ChunkProblem::Truncated)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let version = header[0];
    let stored_len = u32::from_le_bytes([header[1], header[2], header[3], 0]) as usize;
    let scheme = header[4];
    let len = u32::from_le_bytes([header[5], header[6], header[7], 0]) as usize;
    if version != 0 {
        return Err(problem(ChunkProblem::BadHeader(format!("version {version}"))));
    }
    if len > MAX_CHUNK || stored_len > MAX_STORED_CHUNK {
        return Err(problem(ChunkProblem::BadHeader(format!("{stored_len} bytes stored for {len}"))));
    }
    stored.resize(stored_len, 0);
    r.read_exact(stored).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => problem(ChunkProblem::Truncated),
        _ => e,
    })?;
    out.clear();
    match scheme {
        0 => out.extend_from_slice(stored),
        1 | 2 => {
            let mut frame = lz4_flex::frame::FrameDecoder::new(&stored[..]);
            // One byte more than promised is enough to tell a lying header.
            (&mut frame as &mut dyn Read)
                .take(len as u64 + 1)
                .read_to_end(out)
                .map_err(|e| problem(ChunkProblem::Undecodable(e.to_string())))?;
            if scheme == 2 && out.len() == len {
                *out = ungroup4(out);
            }
        }
        s => return Err(problem(ChunkProblem::BadHeader(format!("compression scheme {s}")))),
    }
    if out.len() != len {
        return Err(problem(ChunkProblem::Undecodable(format!("{} bytes, the header says {len}", out.len()))));
    }
    Ok(Some(()))
}

/// Undoes byte grouping: the stored form holds every 4th byte first (from
/// byte 0, then 1, 2, 3), the groups of the remainder one longer.
fn ungroup4(g: &[u8]) -> Vec<u8> {
    let n = g.len();
    let (split, rem) = (n / 4, n % 4);
    let sizes = [split + (rem >= 1) as usize, split + (rem >= 2) as usize, split + (rem >= 3) as usize, split];
    let mut starts = [0usize; 4];
    for k in 1..4 {
        starts[k] = starts[k - 1] + sizes[k - 1];
    }
    let mut out = vec![0u8; n];
    for (i, b) in out.iter_mut().enumerate() {
        *b = g[starts[i % 4] + i / 4];
    }
    out
}

/// A chunk problem as an I/O error, so it travels through readers; kind
/// InvalidData tells it from a dropped connection.
fn problem(p: ChunkProblem) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, p)
}

/// The chunk problem an I/O error carries, if it is one.
pub fn chunk_problem(e: &io::Error) -> Option<&ChunkProblem> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<ChunkProblem>())
}

impl std::error::Error for ChunkProblem {}

// -- reconstruction answers -------------------------------------------------

#[derive(Deserialize)]
struct Span {
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
struct TermAnswer {
    hash: String,
    unpacked_length: u64,
    range: Span,
}

#[derive(Deserialize)]
struct RangeAnswer {
    chunks: Span,
    bytes: Span,
}

#[derive(Deserialize)]
struct MultiRangeAnswer {
    url: String,
    ranges: Vec<RangeAnswer>,
}

#[derive(Deserialize)]
struct FetchInfoAnswer {
    range: Span,
    url: String,
    url_range: Span,
}

#[derive(Deserialize)]
struct ReconstructionAnswer {
    #[serde(default)]
    offset_into_first_range: u64,
    terms: Vec<TermAnswer>,
    /// V2.
    xorbs: Option<BTreeMap<String, Vec<MultiRangeAnswer>>>,
    /// V1.
    fetch_info: Option<BTreeMap<String, Vec<FetchInfoAnswer>>>,
}

/// Part of a file: chunks `[first, end)` of a xorb, `len` bytes unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub xorb: XetHash,
    pub first: u32,
    pub end: u32,
    pub len: u64,
    /// Which of the plan's fetches holds its chunks.
    pub fetch: usize,
}

/// A byte range of a xorb, holding chunks `[first, end)`, at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    pub url: String,
    pub first: u32,
    pub end: u32,
    /// Inclusive, as HTTP writes it.
    pub bytes: (u64, u64),
}

/// How to rebuild (part of) a file: its terms in order, the first `skip`
/// bytes of the first not wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub skip: u64,
    pub terms: Vec<Term>,
    pub fetches: Vec<Fetch>,
}

/// Reads a reconstruction answer (V1 or V2) for bytes `[start, end)` of a
/// file into a plan, or says what is wrong with it: every term must come
/// with a fetch holding its chunks, and the terms must cover the range.
pub fn plan(body: &[u8], start: u64, end: u64) -> Result<Plan, String> {
    let a: ReconstructionAnswer = serde_json::from_slice(body).map_err(|e| format!("is not a reconstruction ({e})"))?;
    let mut fetches = Vec::new();
    let mut by_xorb: BTreeMap<XetHash, Vec<usize>> = BTreeMap::new();
    let mut add = |hex: &str, url: String, chunks: &Span, bytes: &Span| -> Result<(), String> {
        let xorb = XetHash::parse(hex).ok_or_else(|| format!("names a xorb {hex:?} that is not a Xet hash"))?;
        let (first, end) = chunk_span(chunks)?;
        // A xorb is at most 64 MiB (xorb.md).
        if bytes.start > bytes.end || bytes.end - bytes.start >= MAX_XORB_BYTES {
            return Err(format!("gives xorb {xorb} the byte range {}-{}", bytes.start, bytes.end));
        }
        by_xorb.entry(xorb).or_default().push(fetches.len());
        fetches.push(Fetch { url, first, end, bytes: (bytes.start, bytes.end) });
        Ok(())
    };
    match (a.xorbs, a.fetch_info) {
        (Some(xorbs), _) => {
            for (hex, multi) in xorbs {
                for m in multi {
                    for r in m.ranges {
                        add(&hex, m.url.clone(), &r.chunks, &r.bytes)?;
                    }
                }
            }
        }
        (None, Some(info)) => {
            for (hex, list) in info {
                for f in list {
                    add(&hex, f.url, &f.range, &f.url_range)?;
                }
            }
        }
        (None, None) => return Err("has neither xorbs nor fetch_info".into()),
    }
    let mut terms = Vec::with_capacity(a.terms.len());
    let (mut total, mut chunks) = (0u64, 0u64);
    for t in a.terms {
        let xorb =
            XetHash::parse(&t.hash).ok_or_else(|| format!("names a term {:?} that is not a Xet hash", t.hash))?;
        let (first, last) = chunk_span(&t.range)?;
        let holds = |&i: &usize| fetches[i].first <= first && last <= fetches[i].end;
        let fetch = by_xorb
            .get(&xorb)
            .and_then(|v| v.iter().copied().find(holds))
            .ok_or_else(|| format!("gives no fetch for chunks {first}-{last} of xorb {xorb}"))?;
        // Each chunk holds at least a byte and at most MAX_CHUNK.
        let n = (last - first) as u64;
        if t.unpacked_length > n * MAX_CHUNK as u64 || t.unpacked_length < n {
            return Err(format!("says {n} chunks of xorb {xorb} unpack to {} bytes", t.unpacked_length));
        }
        total = total.saturating_add(t.unpacked_length);
        chunks += n;
        terms.push(Term { xorb, first, end: last, len: t.unpacked_length, fetch });
    }
    let wanted = end - start;
    if total < a.offset_into_first_range.saturating_add(wanted) {
        return Err(format!(
            "covers {total} bytes from {} on, short of the {wanted} bytes asked for",
            a.offset_into_first_range
        ));
    }
    // Terms are whole chunks: at most one more at each end than asked for
    // (which bounds what a reader of them holds), starting at or before the
    // range. Chunks are at least MIN_CHUNK, but for the last of a file,
    // which any term may hold once.
    let skip = a.offset_into_first_range;
    if skip >= MAX_CHUNK as u64 || skip > start || total > wanted.saturating_add(2 * MAX_CHUNK as u64) {
        return Err(format!("covers {total} bytes from {skip} on for the {wanted} asked for"));
    }
    if chunks > total / MIN_CHUNK + terms.len() as u64 {
        return Err(format!("names {chunks} chunks for {total} bytes"));
    }
    Ok(Plan { skip, terms, fetches })
}

fn chunk_span(s: &Span) -> Result<(u32, u32), String> {
    if s.start >= s.end || s.end > MAX_XORB_CHUNKS as u64 {
        return Err(format!("gives the chunk range {}-{}", s.start, s.end));
    }
    Ok((s.start as u32, s.end as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> XetHash {
        XetHash::parse(s).unwrap()
    }

    #[test]
    fn hex_is_four_little_endian_words() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        let s = XetHash(b).to_string();
        assert_eq!(s, "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918");
        assert_eq!(XetHash::parse(&s), Some(XetHash(b)));
        assert_eq!(XetHash::parse(&s[1..]), None);
        assert_eq!(XetHash::parse(&"g".repeat(64)), None);
    }

    // xet-core's own vectors (merklehash aggregated_hashes test_correctness).
    #[test]
    fn merkle_and_file_hashes_match_the_reference() {
        let a = (h("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6"), 100);
        let b = (h("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72"), 200);
        let c = (h("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37"), 300);
        let d = (h("adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784"), 400);
        let cases: [(Vec<(XetHash, u64)>, &str, &str); 4] = [
            (
                vec![a],
                "cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6",
                "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661",
            ),
            (
                vec![a, b, c],
                "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
                "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715",
            ),
            (
                vec![a, a, a, a],
                "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b",
                "2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd",
            ),
            (
                vec![a, b, a, b, c, d],
                "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
                "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f",
            ),
        ];
        for (chunks, root, file) in cases {
            assert_eq!(merkle_root(&chunks).to_string(), root);
            assert_eq!(file_hash(&chunks).to_string(), file);
        }
        assert_eq!(file_hash(&[]).to_string(), "0".repeat(64));
    }

    fn chunk(scheme: u8, data: &[u8]) -> Vec<u8> {
        let stored = match scheme {
            0 => data.to_vec(),
            _ => {
                let grouped = if scheme == 2 { group4(data) } else { data.to_vec() };
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                std::io::Write::write_all(&mut e, &grouped).unwrap();
                e.finish().unwrap()
            }
        };
        let mut v = vec![0u8];
        v.extend_from_slice(&(stored.len() as u32).to_le_bytes()[..3]);
        v.push(scheme);
        v.extend_from_slice(&(data.len() as u32).to_le_bytes()[..3]);
        v.extend_from_slice(&stored);
        v
    }

    // The writer's side, as the spec describes it, to test the reader.
    fn group4(d: &[u8]) -> Vec<u8> {
        (0..4).flat_map(|k| d.iter().skip(k).step_by(4).copied()).collect()
    }

    fn read_all(bytes: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let mut r = bytes;
        let (mut stored, mut out, mut all) = (Vec::new(), Vec::new(), Vec::new());
        while read_chunk(&mut r, &mut stored, &mut out)?.is_some() {
            all.push(out.clone());
        }
        Ok(all)
    }

    proptest! {
        #[test]
        fn every_scheme_round_trips(data in proptest::collection::vec(any::<u8>(), 0..3000), scheme in 0u8..3) {
            let got = read_all(&chunk(scheme, &data)).unwrap();
            prop_assert_eq!(got, vec![data]);
        }

        #[test]
        fn no_bytes_panic_or_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(chunks) = read_all(&bytes) {
                prop_assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK));
            }
        }

        #[test]
        fn hashes_round_trip_through_hex(b in any::<[u8; 32]>()) {
            prop_assert_eq!(XetHash::parse(&XetHash(b).to_string()), Some(XetHash(b)));
        }

        #[test]
        fn any_answer_is_read_without_panic(s in "\\PC{0,200}") {
            let _ = plan(s.as_bytes(), 0, 10);
        }
    }

    #[test]
    fn cut_off_and_lying_chunks_are_told_apart() {
        let good = chunk(1, &[7u8; 5000]);
        let e = read_all(&good[..good.len() - 3]).unwrap_err();
        assert_eq!(chunk_problem(&e), Some(&ChunkProblem::Truncated));
        let mut lying = good.clone();
        lying[5] = lying[5].wrapping_add(1);
        assert!(matches!(chunk_problem(&read_all(&lying).unwrap_err()), Some(ChunkProblem::Undecodable(_))));
        let mut future = good;
        future[0] = 1;
        assert!(matches!(chunk_problem(&read_all(&future).unwrap_err()), Some(ChunkProblem::BadHeader(_))));
    }

    const X: &str = "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918";

    #[test]
    fn v1_and_v2_answers_give_one_plan() {
        let v2 = format!(
            r#"{{"offset_into_first_range":5,"terms":[{{"hash":"{X}","unpacked_length":20000,"range":{{"start":1,"end":3}}}}],
               "xorbs":{{"{X}":[{{"url":"http://cas/a","ranges":[{{"chunks":{{"start":0,"end":4}},"bytes":{{"start":0,"end":999}}}}]}}]}}}}"#
        );
        let v1 = format!(
            r#"{{"offset_into_first_range":5,"terms":[{{"hash":"{X}","unpacked_length":20000,"range":{{"start":1,"end":3}}}}],
               "fetch_info":{{"{X}":[{{"range":{{"start":0,"end":4}},"url":"http://cas/a","url_range":{{"start":0,"end":999}}}}]}}}}"#
        );
        let p = plan(v2.as_bytes(), 10, 105).unwrap();
        assert_eq!(p, plan(v1.as_bytes(), 10, 105).unwrap());
        assert_eq!(p.skip, 5);
        assert_eq!(p.terms[0].fetch, 0);
        assert_eq!(p.fetches[0].bytes, (0, 999));
        assert!(plan(v2.as_bytes(), 10, 20006).unwrap_err().contains("short of the 19996 bytes"));
        let more = v2.replace(
            r#""unpacked_length":20000,"range":{"start":1,"end":3}"#,
            r#""unpacked_length":400000,"range":{"start":0,"end":4}"#,
        );
        assert!(plan(more.as_bytes(), 10, 105).unwrap_err().contains("covers 400000 bytes from 5 on for the 95 asked"));
        // Hostile shapes: chunks of no bytes, a skip past the range's start.
        let empty = v2.replace(r#""unpacked_length":20000"#, r#""unpacked_length":1"#);
        assert!(plan(empty.as_bytes(), 10, 11).unwrap_err().contains("2 chunks of xorb"));
        let many = v2.replace(r#""start":0,"end":4"#, r#""start":0,"end":8000"#).replace(r#""end":3"#, r#""end":7999"#);
        let many = many.replace(r#""unpacked_length":20000"#, r#""unpacked_length":9000"#);
        assert!(plan(many.as_bytes(), 10, 8000).unwrap_err().contains("names 7998 chunks for 9000 bytes"));
        assert!(plan(v2.as_bytes(), 3, 90).unwrap_err().contains("from 5 on"));
        let orphan = v2.replace(r#""start":0,"end":4"#, r#""start":2,"end":4"#);
        assert!(plan(orphan.as_bytes(), 10, 20).unwrap_err().contains("gives no fetch for chunks 1-3"));
    }
}
