//! `nix-hf`, the command-line program: the plugin's fetch without Nix, for
//! evaluators that cannot load the plugin (README, Without the plugin). It
//! is what the fallback fixed-output derivation runs (`fetch`), what finds
//! the rev and narHash that derivation needs (`prefetch`, `pin`), and what
//! lays out `lib.hubCache` (`hub-cache`). The same core, settings, messages
//! and exit statuses as the plugin: `error: …`, 102 for data that is not
//! what was promised, 1 for anything else.

mod args;
mod pins;
mod snapshot;
mod terminal;

use std::path::{Path, PathBuf};

use clap::Parser as _;

use self::args::{Cli, Command, Global, PinAction};
use self::snapshot::{check_out, Fetched, Fetcher};
use crate::cache;
use crate::error::{fail, Error, Kind, Result};
use crate::nixpath;
use crate::spec::{self, Spec};
use crate::work;

/// Runs the program; returns its exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors end as every other error does (1), not with clap's 2;
        // --help and --version are not errors.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    terminal::exit_on_signals();
    let nix_build = cli.global.nix_build;
    match work::guarded(|| run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", explained(&e, nix_build));
            exit_status(e.kind)
        }
    }
}

/// Nix's exit statuses, as the plugin's errors give them.
fn exit_status(kind: Kind) -> i32 {
    match kind {
        Kind::CorruptData => 102,
        _ => 1,
    }
}

/// A Nix build sees none of the user's environment: say so where that is
/// the likely cause.
fn explained(e: &Error, nix_build: bool) -> String {
    if e.kind == Kind::AccessDenied && nix_build {
        format!(
            "{}\n(this ran as a Nix build, which sees only the variables fetchHuggingFace passes (HF_TOKEN, \
             HF_ENDPOINT, HF_HOME, …), from the environment of the process that builds: the nix-daemon's in a \
             multi-user install; see nix-hf's README, Gated repos without the plugin)",
            e.message
        )
    } else {
        e.message.clone()
    }
}

fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Prefetch { source, json } => prefetch(g, &source, json),
        Command::Fetch { source, out, nar_hash } => fetch(g, &source, out, nar_hash),
        Command::Pin { action: PinAction::Add { url, name, file } } => pin_add(g, &url, name, &file),
        Command::Pin { action: PinAction::Update { names, file } } => pin_update(g, &names, &file),
        Command::Pin { action: PinAction::Remove { names, file } } => pin_remove(&names, &file),
        Command::HubCache { snapshots, out } => hub_cache(&snapshots, out_dir(out, g.nix_build)?),
    }
}

/// A SOURCE argument: a JSON object of attributes, an `hf:` URL, or a repo
/// id that stands for one (as builtins.fetchHuggingFace takes it).
fn parse_source(s: &str) -> Result<Spec> {
    if s.trim_start().starts_with('{') {
        Spec::from_json(s)
    } else if s.contains(':') {
        Spec::parse_url(s)
    } else {
        Spec::parse_url(&spec::url_of_arg(s))
    }
}

/// OUT, or as a derivation's builder its output.
fn out_dir(out: Option<PathBuf>, nix_build: bool) -> Result<PathBuf> {
    let from_build = || std::env::var_os("out").filter(|_| nix_build).map(PathBuf::from);
    match out.or_else(from_build) {
        Some(o) => Ok(o),
        None if nix_build => fail!(InvalidInput, "no OUT given and $out is not set, as a Nix build sets it"),
        None => fail!(InvalidInput, "no OUT given: name the directory to make"),
    }
}

/// The NAR hash a fetch must end with: `--nar-hash`, or the input's own
/// narHash; both must agree.
fn expected_hash(spec: &Spec, given: Option<String>) -> Result<Option<[u8; 32]>> {
    let parse = |h: &str| match nixpath::parse_sri(h) {
        Some(sha) => Ok(sha),
        None => {
            fail!(InvalidInput, "'{h}' is not a NAR hash as Nix writes it: give sha256-… (SRI), as flake.lock has it")
        }
    };
    let given = given.as_deref().map(parse).transpose()?;
    let own = spec.nar_hash.as_deref().map(parse).transpose()?;
    match (given, own) {
        (Some(a), Some(b)) if a != b => fail!(
            InvalidInput,
            "--nar-hash {} and the narHash {} of '{}' differ; give one",
            nixpath::sri(&a),
            nixpath::sri(&b),
            spec.display()
        ),
        (a, b) => Ok(a.or(b)),
    }
}

/// The plugin's message for a snapshot that is not the one pinned.
fn check_hash(fetched: &Fetched, spec: &Spec, expected: Option<[u8; 32]>) -> Result<()> {
    match expected {
        Some(e) if e != fetched.nar_sha256 => fail!(
            CorruptData,
            "hash mismatch in Hugging Face snapshot '{}':\n  specified: {}\n       got: {}",
            spec.display(),
            nixpath::sri(&e),
            fetched.nar_hash()
        ),
        _ => Ok(()),
    }
}

fn prefetch(g: &Global, source: &str, json: bool) -> Result<()> {
    let spec = parse_source(source)?;
    let expected = expected_hash(&spec, None)?;
    let fetcher = Fetcher::new(g)?;
    let fetched = fetcher.fetch(&spec, None)?;
    let checked = check_hash(&fetched, &spec, expected);
    let (hash, path) = (fetched.nar_hash(), fetched.store_path(&fetcher.store_dir));
    let locked = fetched.locked.clone();
    fetched.discard();
    checked?;
    if json {
        // What `nix flake prefetch --json` prints: the input as given and as
        // locked (Nix's attributes, without narHash), its hash and path.
        let out = serde_json::json!({
            "hash": hash,
            "locked": attrs_json(&Spec { nar_hash: None, ..locked }),
            "original": attrs_json(&spec),
            "storePath": path,
        });
        println!("{out}");
    } else {
        eprintln!("Downloaded '{}' to '{path}' (hash '{hash}').", locked.nix_url());
        print!("{}", expression(&locked, &hash));
    }
    Ok(())
}

fn attrs_json(spec: &Spec) -> serde_json::Value {
    spec.to_attrs()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                spec::Value::Str(s) => serde_json::Value::from(s),
                spec::Value::Int(n) => serde_json::Value::from(n),
                spec::Value::Bool(b) => serde_json::Value::from(b),
            };
            (k, v)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A fetchHuggingFace call that pins `locked`, ready to paste.
fn expression(locked: &Spec, hash: &str) -> String {
    let mut s = String::from("fetchHuggingFace {\n");
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k} = {v};\n"));
    line("repo", nix_string(&locked.repo));
    if locked.kind != spec::Kind::Model {
        line("kind", nix_string(locked.kind.as_str()));
    }
    if let Some(rev) = &locked.rev {
        line("rev", nix_string(rev.as_str()));
    }
    if let Some(t) = locked.last_modified {
        line("lastModified", t.to_string());
    }
    line("narHash", nix_string(hash));
    for (name, list) in locked.selection.lists() {
        let items: Vec<String> = list.iter().map(|i| nix_string(i)).collect();
        line(name, format!("[ {} ]", items.join(" ")));
    }
    s.push_str("}\n");
    s
}

/// `s` as a Nix string literal.
fn nix_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace("${", "\\${").replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The name of the partial directory inside a Nix build's output.
const IN_OUTPUT: &str = ".nix-hf-partial";

fn fetch(g: &Global, source: &str, out: Option<PathBuf>, nar_hash: Option<String>) -> Result<()> {
    let spec = parse_source(source)?;
    let expected = expected_hash(&spec, nar_hash)?;
    // A Nix build's output is written once, in place: the partial directory
    // inside it, so that no byte is copied from the build's temporary
    // directory (another file system, often) into the store. Nix removes
    // the output of a build that fails, and starts the next afresh anyway.
    let in_build = g.nix_build && g.cache_dir.is_none();
    let out = out_dir(out, g.nix_build)?;
    check_out(&out)?;
    let fetcher = Fetcher::new(g)?;
    let inside = out.join(IN_OUTPUT);
    let fetched = if in_build {
        std::fs::create_dir(&out).map_err(|e| Error::io("create", &out, e))?;
        fetcher.fetch_in(&spec, None, &inside)?
    } else {
        fetcher.fetch(&spec, None)?
    };
    if let Err(e) = check_hash(&fetched, &spec, expected) {
        fetched.discard();
        return Err(e);
    }
    let (files, bytes, hash, shown) = (fetched.files, fetched.bytes, fetched.nar_hash(), fetched.locked.display());
    if in_build {
        fetched.into_holder(&out, &inside)?;
    } else {
        fetched.into(&out)?;
    }
    eprintln!(
        "fetched {files} files ({}) of '{shown}' into '{}' (hash '{hash}')",
        terminal::size(bytes),
        out.display()
    );
    Ok(())
}

fn pin_add(g: &Global, url: &str, name: Option<String>, file: &Path) -> Result<()> {
    let spec = parse_source(url)?;
    let mut all = pins::read(file)?;
    let name = name.unwrap_or_else(|| pins::default_name(&spec));
    if let Some(p) = all.pins.get(&name) {
        fail!(
            InvalidInput,
            "pin '{name}' is already in '{}' ({} at {}); move it with 'nix-hf pin update {name}', or give this one \
             another --name",
            file.display(),
            p.repo,
            p.rev
        );
    }
    let expected = expected_hash(&spec, None)?;
    let fetched = Fetcher::new(g)?.fetch(&spec, None)?;
    let checked = check_hash(&fetched, &spec, expected);
    let pin = pins::Pin::new(&spec, &fetched.revision, fetched.nar_hash());
    let shown = fetched.locked.nix_url();
    fetched.discard();
    checked?;
    all.pins.insert(name.clone(), pin);
    pins::write(file, &all)?;
    eprintln!("• Added pin '{name}': '{shown}'");
    Ok(())
}

fn pin_update(g: &Global, names: &[String], file: &Path) -> Result<()> {
    if !file.exists() {
        fail!(InvalidInput, "there is no pins file '{}'; make one with 'nix-hf pin add URL'", file.display());
    }
    let mut all = pins::read(file)?;
    let names: Vec<String> = if names.is_empty() { all.pins.keys().cloned().collect() } else { names.to_vec() };
    for n in &names {
        if !all.pins.contains_key(n) {
            let known: Vec<&str> = all.pins.keys().map(String::as_str).collect();
            fail!(InvalidInput, "'{}' has no pin '{n}'; its pins are: {}", file.display(), known.join(", "));
        }
    }
    let fetcher = Fetcher::new(g)?;
    for name in &names {
        let pin = all.pins[name].clone();
        let followed = pin.followed(name)?;
        let before = pin.locked(name)?;
        let current = match &pin.reference {
            Some(_) => fetcher.resolve(&followed)?,
            None => crate::base::Revision {
                sha: before.rev.clone().expect("a locked pin has its rev"),
                last_modified: pin.last_modified,
            },
        };
        if current.sha.as_str() == pin.rev && pin.nar_hash.is_some() {
            eprintln!("pin '{name}' is up to date ('{}')", before.nix_url());
            continue;
        }
        let fetched = fetcher.fetch(&followed, Some(current))?;
        let updated = pins::Pin::new(&followed, &fetched.revision, fetched.nar_hash());
        let after = fetched.locked.nix_url();
        fetched.discard();
        eprintln!(
            "• Updated pin '{name}':\n    '{}' ({})\n  → '{after}' ({})",
            before.nix_url(),
            date(pin.last_modified),
            date(updated.last_modified)
        );
        all.pins.insert(name.clone(), updated);
        // Each pin as it is done, so that a failure later keeps this one.
        pins::write(file, &all)?;
    }
    Ok(())
}

fn pin_remove(names: &[String], file: &Path) -> Result<()> {
    let mut all = pins::read(file)?;
    for n in names {
        if all.pins.remove(n).is_none() {
            fail!(InvalidInput, "'{}' has no pin '{n}'", file.display());
        }
    }
    pins::write(file, &all)?;
    for n in names {
        eprintln!("• Removed pin '{n}'");
    }
    Ok(())
}

/// Lays out the cache lib.hubCache asks for at OUT.
fn hub_cache(snapshots: &str, out: PathBuf) -> Result<()> {
    let snapshots: Vec<cache::Snapshot> = serde_json::from_str(snapshots).map_err(|e| {
        Error::new(Kind::InvalidInput, format!("the snapshots are not a JSON list of {{key, rev, refs, path}}: {e}"))
    })?;
    let entries = cache::layout(&snapshots, "lib.hubCache")?;
    check_out(&out)?;
    std::fs::create_dir(&out).map_err(|e| Error::io("create", &out, e))?;
    for e in entries {
        let (path, made) = match &e {
            cache::Entry::File(p, content) => (out.join(p), (Some(content), None)),
            cache::Entry::Link(p, target) => (out.join(p), (None, Some(target))),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let r = match made {
            (Some(content), _) => std::fs::write(&path, content),
            (_, Some(target)) => std::os::unix::fs::symlink(target, &path),
            _ => unreachable!("an entry is a file or a link"),
        };
        r.map_err(|e| Error::io("create", &path, e))?;
    }
    Ok(())
}

/// A commit date as `nix flake update` shows it: YYYY-MM-DD (UTC).
fn date(secs: u64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_as_the_plugin_parses_them() {
        let url = parse_source("hf:datasets/org/data?include=*.json").unwrap();
        let json = parse_source(r#"{"repo": "org/data", "kind": "dataset", "include": ["*.json"]}"#).unwrap();
        assert_eq!(url, json);
        assert_eq!(parse_source("org/name").unwrap(), parse_source("hf:org/name").unwrap());
        assert!(parse_source("github:org/name").unwrap_err().message.contains("is not an hf: URL"));
        let e = parse_source("hf:org/name?include=[x").unwrap_err();
        assert!(e.message.contains("is not a valid glob"), "{}", e.message);
    }

    #[test]
    fn expressions_paste_into_nix() {
        let rev = crate::base::Revision {
            sha: crate::base::CommitId::parse(&"0a".repeat(20)).unwrap(),
            last_modified: 1_704_344_767,
        };
        let spec = parse_source(r#"{"repo": "org/d", "kind": "dataset", "include": ["a\"${b}", "*.json"]}"#).unwrap();
        let e = expression(&spec.locked(&rev), "sha256-AAAA");
        assert_eq!(
            e,
            format!(
                "fetchHuggingFace {{\n  repo = \"org/d\";\n  kind = \"dataset\";\n  rev = \"{}\";\n  lastModified = \
                 1704344767;\n  narHash = \"sha256-AAAA\";\n  include = [ \"*.json\" \"a\\\"\\${{b}}\" ];\n}}\n",
                rev.sha
            )
        );
        assert_eq!(date(1_704_344_767), "2024-01-04");
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn hashes_are_checked_before_anything_is_fetched() {
        let spec = parse_source("hf:org/name?narHash=sha256-PQbbY78jCzZIxHcaozP%2BPH5D2DAsUNT1aUPK6NDlink%3D").unwrap();
        assert!(expected_hash(&spec, None).unwrap().is_some());
        let same = expected_hash(&spec, Some("sha256-PQbbY78jCzZIxHcaozP+PH5D2DAsUNT1aUPK6NDlink=".into()));
        assert_eq!(same.unwrap(), expected_hash(&spec, None).unwrap());
        let e = expected_hash(&spec, Some(nixpath::sri(&[0; 32]))).unwrap_err();
        assert!(e.message.contains("differ; give one"), "{}", e.message);
        let e = expected_hash(&spec, Some("sha256-other".into())).unwrap_err();
        assert!(e.message.contains("'sha256-other' is not a NAR hash"), "{}", e.message);
        let e = expected_hash(&parse_source("org/name").unwrap(), Some("abc".into())).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidInput);
        assert!(e.message.contains("'abc' is not a NAR hash"));
    }
}
