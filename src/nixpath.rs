//! How Nix names what the core makes, for the program that runs without
//! Nix: a NAR hash as SRI (`sha256-…`, what flake.lock holds), and the store
//! path of a snapshot with that NAR hash, the content-addressed path Nix
//! gives a fetched tree (`name = "source"`, recursive SHA-256) and that a
//! fixed-output derivation with that hash gets too. Checked against
//! `nix hash path` and `nix store add`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::verify::hex;

/// Where Nix keeps its store unless told otherwise.
pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// The name Nix gives a fetched tree's store path.
pub const SOURCE: &str = "source";

/// `sha256-<base64>`.
pub fn sri(sha256: &[u8; 32]) -> String {
    format!("sha256-{}", STANDARD.encode(sha256))
}

/// The SHA-256 an SRI hash (`sha256-<base64>`) holds; None for anything else.
pub fn parse_sri(s: &str) -> Option<[u8; 32]> {
    let bytes = STANDARD.decode(s.strip_prefix("sha256-")?).ok()?;
    bytes.try_into().ok()
}

/// The store path Nix gives the tree whose NAR has SHA-256 `nar_sha256`,
/// named `name`, in `store_dir`: makeFixedOutputPath of a recursive SHA-256
/// with no references.
pub fn fixed_output_path(store_dir: &str, name: &str, nar_sha256: &[u8; 32]) -> String {
    let fingerprint = format!("source:sha256:{}:{store_dir}:{name}", hex(nar_sha256));
    let full = Sha256::digest(fingerprint.as_bytes());
    // Nix folds the hash to 20 bytes by xor before naming the path.
    let mut folded = [0u8; 20];
    for (i, b) in full.iter().enumerate() {
        folded[i % 20] ^= b;
    }
    format!("{store_dir}/{}-{name}", nix_base32::to_nix_base32(&folded))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree of nar.rs's known hash ("hello" = "hello\n", "d/empty" =
    /// ""), as Nix 2.35.2 names it: `nix hash path` and `nix store add
    /// --name source --mode nar`.
    const NAR: &str = "3d06db63bf230b3648c4771aa333fe3c7e43d8302c50d4f56943cae8d0e58a79";

    fn nar() -> [u8; 32] {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(&NAR[2 * i..2 * i + 2], 16).unwrap();
        }
        h
    }

    #[test]
    fn names_as_nix_gives_them() {
        assert_eq!(sri(&nar()), "sha256-PQbbY78jCzZIxHcaozP+PH5D2DAsUNT1aUPK6NDlink=");
        assert_eq!(parse_sri("sha256-PQbbY78jCzZIxHcaozP+PH5D2DAsUNT1aUPK6NDlink="), Some(nar()));
        assert_eq!(
            fixed_output_path(DEFAULT_STORE_DIR, SOURCE, &nar()),
            "/nix/store/4j8ha4ma76hqyb50b6g0lkqnmmirfszw-source"
        );
        for bad in ["sha512-PQbb", "sha256-!!", "sha256-AAAA", "PQbbY78jCzZIxHcaozP+PH5D2DAsUNT1aUPK6NDlink="] {
            assert_eq!(parse_sri(bad), None, "{bad}");
        }
    }
}
