//! The pins file: for Nix without the plugin, what flake.lock is for `hf:`
//! inputs. Each pin names what to follow (repo, kind, ref, filters) and
//! where it is now (rev, lastModified, narHash); `lib.fromPins` gives each
//! through fetchHuggingFace. Written sorted and indented, so that an update
//! is a small diff.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::base::Revision;
use crate::error::{fail, Error, Kind, Result};
use crate::select::encode_list;
use crate::spec::{self, Spec};

/// The format's version, which `lib.fromPins` checks too.
pub const VERSION: u32 = 1;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    pub version: u32,
    pub pins: BTreeMap<String, Pin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pin {
    pub repo: String,
    pub kind: String,
    /// What `update` follows; absent when the pin was given a commit.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    pub rev: String,
    pub last_modified: u64,
    /// Absent (removed by hand, after editing the filters, say): `update`
    /// computes it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nar_hash: Option<String>,
}

/// The ref a pin of an input without ref or rev follows: the Hub's default
/// branch, said explicitly so that the file shows what moves it.
const DEFAULT_REF: &str = "main";

impl Pin {
    /// A pin of `spec` (as given, with its ref) at `revision`.
    pub fn new(spec: &Spec, revision: &Revision, nar_hash: String) -> Pin {
        let list = |name: &str| {
            spec.selection.lists().into_iter().find(|(n, _)| *n == name).map(|(_, l)| l.to_vec()).unwrap_or_default()
        };
        Pin {
            repo: spec.repo.clone(),
            kind: spec.kind.as_str().to_string(),
            reference: match (&spec.reference, &spec.rev) {
                (Some(r), _) => Some(r.clone()),
                (None, Some(_)) => None,
                (None, None) => Some(DEFAULT_REF.to_string()),
            },
            include: list("include"),
            exclude: list("exclude"),
            files: list("files"),
            rev: revision.sha.to_string(),
            last_modified: revision.last_modified,
            nar_hash: Some(nar_hash),
        }
    }

    /// What the pin follows: its ref, or its commit when it has none.
    pub fn followed(&self, name: &str) -> Result<Spec> {
        let mut attrs = spec::Attrs::new();
        let mut put = |k: &str, v: String| attrs.insert(k.to_string(), spec::Value::Str(v));
        put("repo", self.repo.clone());
        put("kind", self.kind.clone());
        match &self.reference {
            Some(r) => put("ref", r.clone()),
            None => put("rev", self.rev.clone()),
        };
        for (k, l) in [("include", &self.include), ("exclude", &self.exclude), ("files", &self.files)] {
            if !l.is_empty() {
                put(k, encode_list(l));
            }
        }
        Spec::from_attrs(&attrs).map_err(|e| Error::new(e.kind, format!("pin '{name}': {}", e.message)))
    }

    /// Where the pin is now.
    pub fn locked(&self, name: &str) -> Result<Spec> {
        let revision =
            Revision { sha: spec::check_rev(&self.rev, &format!("pin '{name}'"))?, last_modified: self.last_modified };
        Ok(self.followed(name)?.locked(&revision))
    }
}

/// The pins in `path`; none when it does not exist yet.
pub fn read(path: &Path) -> Result<Pins> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Pins { version: VERSION, pins: BTreeMap::new() })
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let pins: Pins = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            Kind::InvalidInput,
            format!("'{}' is not a nix-hf pins file ({e}); fix it, or move it away to start a new one", path.display()),
        )
    })?;
    if pins.version != VERSION {
        fail!(
            InvalidInput,
            "'{}' is a pins file of version {}, and this nix-hf reads version {VERSION}; use the nix-hf that wrote it",
            path.display(),
            pins.version
        );
    }
    Ok(pins)
}

/// Writes `pins` to `path`, replacing it whole.
pub fn write(path: &Path, pins: &Pins) -> Result<()> {
    let mut text = serde_json::to_string_pretty(pins).map_err(|e| Error::new(Kind::Bug, e.to_string()))?;
    text.push('\n');
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("replace", path, e))
}

/// The name a pin of `spec` gets unless given one: the repo's name.
pub fn default_name(spec: &Spec) -> String {
    spec.repo.rsplit('/').next().unwrap_or(&spec.repo).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::CommitId;

    fn rev() -> Revision {
        Revision { sha: CommitId::parse(&"ab".repeat(20)).unwrap(), last_modified: 1_700_000_000 }
    }

    #[test]
    fn a_pin_follows_its_ref_and_reads_back() {
        let spec = Spec::parse_url("hf:datasets/org/data/refs%2Fconvert%2Fparquet?include=*.parquet,a%5C,b").unwrap();
        let pin = Pin::new(&spec, &rev(), "sha256-x".into());
        assert_eq!((pin.kind.as_str(), pin.reference.as_deref()), ("dataset", Some("refs/convert/parquet")));
        assert_eq!(pin.include, vec!["*.parquet".to_string(), "a,b".to_string()]);
        assert_eq!(pin.followed("d").unwrap(), spec);
        assert_eq!(pin.locked("d").unwrap(), spec.locked(&rev()));

        let plain = Pin::new(&Spec::parse_url("hf:org/name").unwrap(), &rev(), "h".into());
        assert_eq!(plain.reference.as_deref(), Some("main"), "the default branch, said explicitly");
        let fixed = Pin::new(&Spec::parse_url(&format!("hf:org/name/{}", rev().sha)).unwrap(), &rev(), "h".into());
        assert_eq!(fixed.reference, None, "a commit stays put");
        assert_eq!(fixed.followed("n").unwrap().rev, Some(rev().sha));

        let pins = Pins { version: VERSION, pins: [("data".to_string(), pin)].into() };
        let text = serde_json::to_string_pretty(&pins).unwrap();
        assert!(text.contains("\"lastModified\": 1700000000") && text.contains("\"ref\": \"refs/convert/parquet\""));
        assert!(!text.contains("exclude"), "empty lists are left out");
        assert_eq!(serde_json::from_str::<Pins>(&text).unwrap(), pins);
    }

    #[test]
    fn bad_files_and_pins_are_named() {
        let dir = std::env::temp_dir().join(format!("nix-hf-pins-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hf-pins.json");
        assert_eq!(read(&file).unwrap().pins.len(), 0, "no file yet: no pins");
        fs::write(&file, r#"{"version": 1, "pins": {"x": {"repo": "org/name"}}}"#).unwrap();
        assert!(read(&file).unwrap_err().message.contains("is not a nix-hf pins file"));
        fs::write(&file, r#"{"version": 9, "pins": {}}"#).unwrap();
        assert!(read(&file).unwrap_err().message.contains("of version 9"));
        fs::remove_dir_all(&dir).unwrap();

        let mut pin = Pin::new(&Spec::parse_url("hf:org/name").unwrap(), &rev(), "h".into());
        pin.include = vec!["[bad".into()];
        assert!(pin.followed("p").unwrap_err().message.starts_with("pin 'p': input"));
        pin.include.clear();
        pin.rev = "nope".into();
        assert!(pin.locked("p").is_err());
    }
}
