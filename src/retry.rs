//! When to try again: the one policy that API calls and file pieces share.
//! Exponential backoff between attempts, the server's own word (Retry-After,
//! the RateLimit reset) when it gives one, and waits that end early when the
//! user stops the fetch.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// The longest wait a server can impose with Retry-After before nix-hf gives
/// up instead (the Hub's rate-limit windows are five minutes).
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Failed attempts allowed, including the first.
    pub attempts: u32,
}

impl Policy {
    /// The pause before attempt `n` (2, 3, …): 0.5 s doubling to 8 s.
    pub fn backoff(&self, n: u32) -> Duration {
        Duration::from_millis(250u64 << n.clamp(1, 6)).min(Duration::from_secs(8))
    }
}

/// What the server asked for: `Retry-After: <seconds>`, else the reset time
/// of the Hub's `RateLimit: "…";r=<remaining>;t=<seconds>` when nothing
/// remains.
pub fn server_wait(h: &HeaderMap) -> Option<Duration> {
    if let Some(s) = h.get("Retry-After").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(s));
    }
    let rl = h.get("RateLimit")?.to_str().ok()?;
    let field = |k: &str| rl.split(';').find_map(|p| p.trim().strip_prefix(k).and_then(|v| v.parse::<u64>().ok()));
    if field("r=")? != 0 {
        return None;
    }
    field("t=").map(Duration::from_secs)
}

pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Sleeps `d`, waking early (returning false) once `stopped` says so.
pub fn sleep(d: Duration, stopped: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + d;
    loop {
        if stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits() {
        let mut h = HeaderMap::new();
        assert_eq!(server_wait(&h), None);
        h.insert("RateLimit", "\"resolvers\";r=0;t=42".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(42)));
        h.insert("RateLimit", "\"resolvers\";r=7;t=42".parse().unwrap());
        assert_eq!(server_wait(&h), None, "requests remain: no need to wait");
        h.insert("Retry-After", "3".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(3)));
        let p = Policy { attempts: 5 };
        assert_eq!(p.backoff(2), Duration::from_millis(1000));
        assert_eq!(p.backoff(30), Duration::from_secs(8));
        assert!(!sleep(Duration::from_secs(5), &|| true));
    }
}
