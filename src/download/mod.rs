//! Downloading a snapshot's files: what to fetch (`plan`), the buffers it
//! passes through (`pool`), the records that let it resume (`resume`), and
//! the engine that does it (`engine`), here wired to the Hub, and to the
//! Xet CAS for Xet-backed files (`xet`).

mod engine;
mod plan;
mod pool;
mod resume;
#[cfg(test)]
mod tests;
mod xet;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use url::Url;

pub use engine::{prepare, start, Job, NarStream, Output, Prepared, Ranged, Reuse, Source, Transfer};
pub use xet::{Local, Run, XetFile, XetSource};

use crate::base::{lock, CommitId};
use crate::hub::{self, Hub};
use crate::retry::Attempt;
use crate::spec::Spec;

/// Piece size: what one request fetches, what one buffer holds, and what
/// resume loses at most per connection.
pub const PIECE: u64 = 8 << 20;

/// A snapshot's files as the Hub serves them.
///
/// The Hub sends a regular file's /resolve on to a location of the same
/// commit named by the file's path. Once one such answer shows where,
/// the other regular files are asked there directly: one request each, not
/// two. Their bytes are verified as any others; should that location fail,
/// the file is located through /resolve after all, and so are the rest.
pub struct HubSource {
    hub: Arc<Hub>,
    spec: Spec,
    sha: CommitId,
    regular: BTreeSet<String>,
    learned: Mutex<Learned>,
}

#[derive(Clone, PartialEq, Eq)]
enum Learned {
    Unknown,
    /// Where regular files are: this, then the path.
    Prefix(String),
    /// That went wrong once: /resolve for every file.
    Off,
}

impl HubSource {
    /// `regular`: the paths of the snapshot's regular (non-LFS) files.
    pub fn new(hub: Arc<Hub>, spec: Spec, sha: CommitId, regular: BTreeSet<String>) -> HubSource {
        HubSource { hub, spec, sha, regular, learned: Mutex::new(Learned::Unknown) }
    }

    fn prefix(&self) -> Option<String> {
        match &*lock(&self.learned) {
            Learned::Prefix(p) => Some(p.clone()),
            _ => None,
        }
    }
}

impl Source for HubSource {
    fn locate(&self, path: &str) -> Attempt<Url> {
        let regular = self.regular.contains(path);
        let encoded = hub::encode(path, true);
        if let (true, Some(p)) = (regular, self.prefix()) {
            if let Ok(u) = Url::parse(&format!("{p}{encoded}")) {
                return Attempt::Done(u);
            }
        }
        let answer = self.hub.locate(&self.spec, &self.sha, path);
        if let (true, Attempt::Done(u)) = (regular, &answer) {
            let mut learned = lock(&self.learned);
            if *learned == Learned::Unknown {
                // Only a location whose path ends in the file's, below the
                // commit; its query (the Hub's names the file again, and its
                // etag) is left out.
                let mut bare = u.clone();
                bare.set_query(None);
                let below = format!("/{}/", self.sha.as_str());
                let prefix = bare.as_str().strip_suffix(encoded.as_str()).filter(|p| p.ends_with(&below));
                if let Some(p) = prefix {
                    *learned = Learned::Prefix(p.to_string());
                }
            }
        }
        answer
    }

    fn range(&self, at: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged> {
        let answer = self.hub.range(at, start, end, &self.spec, path).map(|r| match r {
            hub::Ranged::Body { response, skip } => Ranged::Body { reader: Box::new(response), skip },
            hub::Ranged::Expired => Ranged::Expired { why: hub::EXPIRED.to_string() },
        });
        let from_prefix = self.regular.contains(path) && self.prefix().is_some_and(|p| at.as_str().starts_with(&p));
        match answer {
            Attempt::Fail(e) if from_prefix => {
                *lock(&self.learned) = Learned::Off;
                Attempt::Done(Ranged::Expired { why: e.message })
            }
            a => a,
        }
    }

    fn broke_off(&self, path: &str, at: u64, e: &std::io::Error) -> String {
        hub::read_failed(path, at, e, self.hub.stall().as_secs())
    }
}
