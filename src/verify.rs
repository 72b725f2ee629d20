//! Hashing file contents as they arrive, against what the Hub lists: sha256
//! of the content for LFS files, the git blob sha1 (`blob <size>\0` + content)
//! for the others. `HashingReader` is the one place bytes are checked on
//! their way somewhere, and `copy` the one loop that moves them.

use std::io::{self, Read, Write};

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::base::Digest;
use crate::error::{Detail, Error, Kind, Result};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short, file-name-safe name for `text`: the first 16 bytes of its
/// SHA-256, in hex. Names partial directories and index files after what
/// they hold.
pub fn short_name(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..16])
}

enum Hasher {
    GitSha1(Sha1),
    Sha256(Sha256),
}

pub struct Verifier {
    hasher: Hasher,
    expected: Digest,
}

impl Verifier {
    pub fn new(expected: &Digest, size: u64) -> Verifier {
        let hasher = match expected {
            Digest::GitSha1(_) => {
                let mut s = Sha1::new();
                s.update(format!("blob {size}\0").as_bytes());
                Hasher::GitSha1(s)
            }
            Digest::Sha256(_) => Hasher::Sha256(Sha256::new()),
        };
        Verifier { hasher, expected: expected.clone() }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.hasher {
            Hasher::GitSha1(s) => s.update(data),
            Hasher::Sha256(s) => s.update(data),
        }
    }

    /// Ok when the content matched; otherwise the mismatch, as an error
    /// about `file` of the input shown as `shown`.
    pub fn finish(self, file: &str, shown: &str) -> Result<()> {
        let got = match self.hasher {
            Hasher::GitSha1(s) => hex(&s.finalize()),
            Hasher::Sha256(s) => hex(&s.finalize()),
        };
        let expected = self.expected.hex();
        if got == expected {
            return Ok(());
        }
        let algorithm = self.expected.algorithm();
        Err(Error::new(
            Kind::CorruptData,
            format!("'{file}' of '{shown}' is corrupt: expected {algorithm} {expected}, got {got}; nothing was added to the store"),
        )
        .with_detail(Detail::HashMismatch { file: file.to_string(), algorithm, expected: expected.to_string(), got }))
    }
}

/// A reader that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    verifier: Verifier,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, expected: &Digest, size: u64) -> Self {
        HashingReader { inner, verifier: Verifier::new(expected, size) }
    }

    /// Reads what is left (into nothing) and checks the whole.
    pub fn check(mut self, file: &str, shown: &str) -> io::Result<Result<()>> {
        copy(&mut self, &mut io::sink())?;
        Ok(self.verifier.finish(file, shown))
    }

    pub fn finish(self, file: &str, shown: &str) -> Result<()> {
        self.verifier.finish(file, shown)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.verifier.update(&buf[..n]);
        Ok(n)
    }
}

/// Moves everything `r` has into `w` in large reads; returns how many bytes.
pub fn copy(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(digest: Digest, data: &[u8]) -> Result<()> {
        HashingReader::new(data, &digest, data.len() as u64).check("f", "hf:org/name").unwrap()
    }

    #[test]
    fn git_blob_and_sha256() {
        // `git hash-object` of an empty file and of "hello\n".
        assert_eq!(check(Digest::GitSha1("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".into()), b""), Ok(()));
        assert_eq!(check(Digest::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into()), b"hello\n"), Ok(()));
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        assert_eq!(check(Digest::Sha256(sha.into()), b"hello\n"), Ok(()));
        let e = check(Digest::Sha256(sha.into()), b"hellO\n").unwrap_err();
        assert_eq!(e.kind, Kind::CorruptData);
        assert_eq!(
            e.detail,
            Detail::HashMismatch {
                file: "f".into(),
                algorithm: "sha256",
                expected: sha.into(),
                got: hex(&Sha256::digest(b"hellO\n")),
            }
        );
    }
}
