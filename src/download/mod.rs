//! Downloading a snapshot's files: what to fetch (`plan`), the buffers it
//! passes through (`pool`), the records that let it resume (`resume`), and
//! the engine that does it (`engine`), here wired to the Hub.

mod engine;
mod plan;
mod pool;
mod resume;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use url::Url;

pub use engine::{prepare, start, Job, NarStream, Output, Prepared, Ranged, Reuse, Source, Transfer};

use crate::base::CommitId;
use crate::hub::{self, Hub};
use crate::retry::Attempt;
use crate::spec::Spec;

/// Piece size: what one request fetches, what one buffer holds, and what
/// resume loses at most per connection.
pub const PIECE: u64 = 8 << 20;

/// A snapshot's files as the Hub serves them.
pub struct HubSource {
    pub hub: Arc<Hub>,
    pub spec: Spec,
    pub sha: CommitId,
}

impl Source for HubSource {
    fn locate(&self, path: &str) -> Attempt<Url> {
        self.hub.locate(&self.spec, &self.sha, path)
    }

    fn range(&self, at: &Url, path: &str, start: u64, end: u64) -> Attempt<Ranged> {
        self.hub.range(at, start, end, &self.spec, path).map(|r| match r {
            hub::Ranged::Body { response, skip } => Ranged::Body { reader: Box::new(response), skip },
            hub::Ranged::Expired => Ranged::Expired { why: hub::EXPIRED.to_string() },
        })
    }

    fn broke_off(&self, path: &str, at: u64, e: &std::io::Error) -> String {
        hub::read_failed(path, at, e, self.hub.stall().as_secs())
    }
}
