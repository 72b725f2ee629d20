//! Hashing file contents as they arrive, against what the Hub lists: sha256
//! of the content for LFS files, the git blob sha1 (`blob <size>\0` + content)
//! for the others.

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::base::Digest;

pub enum Verifier {
    GitSha1(Sha1, String),
    Sha256(Sha256, String),
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short, file-name-safe name for `text`: the first 16 bytes of its
/// SHA-256, in hex. Names partial directories and index files after what
/// they hold.
pub fn short_name(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..16])
}

impl Verifier {
    pub fn new(expected: &Digest, size: u64) -> Verifier {
        match expected {
            Digest::GitSha1(h) => {
                let mut s = Sha1::new();
                s.update(format!("blob {size}\0").as_bytes());
                Verifier::GitSha1(s, h.clone())
            }
            Digest::Sha256(h) => Verifier::Sha256(Sha256::new(), h.clone()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Verifier::GitSha1(s, _) => s.update(data),
            Verifier::Sha256(s, _) => s.update(data),
        }
    }

    /// Ok when the content matched; otherwise (expected, got).
    pub fn finish(self) -> Result<(), (String, String)> {
        let (got, want) = match self {
            Verifier::GitSha1(s, w) => (hex(&s.finalize()), w),
            Verifier::Sha256(s, w) => (hex(&s.finalize()), w),
        };
        if got == want {
            Ok(())
        } else {
            Err((want, got))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_and_sha256() {
        // `git hash-object` of an empty file and of "hello\n".
        let mut v = Verifier::new(&Digest::GitSha1("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".into()), 0);
        v.update(b"");
        assert!(v.finish().is_ok());
        let mut v = Verifier::new(&Digest::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into()), 6);
        v.update(b"hello\n");
        assert!(v.finish().is_ok());
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let mut v = Verifier::new(&Digest::Sha256(sha.into()), 6);
        v.update(b"hello\n");
        assert!(v.finish().is_ok());
        let mut v = Verifier::new(&Digest::Sha256(sha.into()), 6);
        v.update(b"hellO\n");
        assert_eq!(v.finish().unwrap_err().0, sha);
    }
}
