//! The one retry runner, for API calls and file pieces alike. Every request
//! has one budget: a number of attempts and a total time. Failed attempts,
//! waits the server asks for (Retry-After, RateLimit) and renewals of
//! expired download URLs all draw on it; when it runs out, the request ends
//! in one error that says what was asked, what the server said last, how
//! many attempts over how long, and which setting raises the bound.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::error::{Error, Kind, Result};
use crate::work::Work;

/// A request's budget: the `hf-retries` and `hf-retry-time` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// From the first attempt's start; no attempt starts, and no wait is
    /// begun, that would end past it. (An attempt under way is not cut
    /// short: hf-stall-timeout bounds how long it may stay silent.)
    pub time: Duration,
}

/// What one attempt came to.
pub enum Attempt<T> {
    Done(T),
    /// Worth another try. `wait` is the server's word when it gave one;
    /// `why` says what happened, for the final message; `kind` is the
    /// error's kind should the budget run out.
    Retry {
        wait: Option<Duration>,
        why: String,
        kind: Kind,
    },
    Fail(Error),
}

impl<T> Attempt<T> {
    pub fn retry(kind: Kind, why: impl Into<String>) -> Attempt<T> {
        Attempt::Retry { wait: None, why: why.into(), kind }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Attempt<U> {
        self.and_then(|v| Attempt::Done(f(v)))
    }

    /// The next step of the same attempt, once this one is done.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Attempt<U>) -> Attempt<U> {
        match self {
            Attempt::Done(v) => f(v),
            Attempt::Retry { wait, why, kind } => Attempt::Retry { wait, why, kind },
            Attempt::Fail(e) => Attempt::Fail(e),
        }
    }
}

/// Time as the runner sees it: real, or simulated in tests.
pub trait Clock: Sync {
    fn now(&self) -> Duration;
    /// Sleeps `d`; false when the fetch stopped first.
    fn sleep(&self, d: Duration, work: &Work) -> bool;
}

pub struct RealClock(Instant);

impl RealClock {
    pub fn new() -> RealClock {
        RealClock(Instant::now())
    }
}

impl Default for RealClock {
    fn default() -> Self {
        RealClock::new()
    }
}

impl Clock for RealClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&self, d: Duration, work: &Work) -> bool {
        work.sleep(d)
    }
}

/// The pause before attempt `n` (2, 3, …) when the server named none:
/// 0.5 s doubling to 8 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(250u64 << n.clamp(1, 6)).min(Duration::from_secs(8))
}

/// Runs `attempt` (given the attempt's number, from 1) until it is done,
/// fails, or `budget` runs out. `what` names the request for the message:
/// the input as the user wrote it and what was asked of it.
pub fn run<T>(
    budget: Budget,
    what: &dyn Fn() -> String,
    clock: &dyn Clock,
    work: &Work,
    mut attempt: impl FnMut(u32) -> Attempt<T>,
) -> Result<T> {
    let start = clock.now();
    let mut n = 0;
    loop {
        if work.stopped() {
            return Err(Error::interrupted());
        }
        n += 1;
        let (wait, why, kind) = match attempt(n) {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry { wait, why, kind } => (wait, why, kind),
        };
        let elapsed = clock.now().saturating_sub(start);
        let pause = wait.unwrap_or_else(|| backoff(n + 1));
        let over = |limit: &str| {
            Error::new(
                kind,
                format!(
                    "giving up on {}: {why}; {n} {} over {:.1} s; {limit}",
                    what(),
                    if n == 1 { "attempt" } else { "attempts" },
                    elapsed.as_secs_f64()
                ),
            )
        };
        if n >= budget.attempts.max(1) {
            return Err(over(&format!("raise hf-retries (now {}) to try more often", budget.attempts)));
        }
        if elapsed + pause > budget.time {
            let asked = if wait.is_some() {
                format!("the server asks to wait {} s, and ", pause.as_secs())
            } else {
                String::new()
            };
            return Err(over(&format!(
                "{asked}raise hf-retry-time (now {} s) to keep trying longer",
                budget.time.as_secs()
            )));
        }
        if !clock.sleep(pause, work) {
            return Err(Error::interrupted());
        }
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

/// Statuses worth another try, and the kind of error they end in.
pub fn transient(status: u16) -> Option<Kind> {
    match status {
        429 => Some(Kind::RateLimited),
        408 | 500 | 502 | 503 | 504 => Some(Kind::Unreachable),
        _ => None,
    }
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use std::sync::Mutex;

    /// Simulated time: sleeping advances it at once and is recorded.
    #[derive(Default)]
    pub struct FakeClock {
        pub now: Mutex<Duration>,
        pub slept: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        pub fn advance(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
        }

        pub fn slept(&self) -> Vec<Duration> {
            self.slept.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.now.lock().unwrap()
        }

        fn sleep(&self, d: Duration, work: &Work) -> bool {
            if work.stopped() {
                return false;
            }
            self.slept.lock().unwrap().push(d);
            self.advance(d);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeClock;
    use super::*;

    const BUDGET: Budget = Budget { attempts: 6, time: Duration::from_secs(300) };

    fn what() -> String {
        "'hf:org/name' (the tree listing)".into()
    }

    #[test]
    fn server_waits_are_obeyed_and_count() {
        let clock = FakeClock::default();
        let budget = Budget { attempts: 4, time: Duration::from_secs(60) };
        let mut calls = 0;
        let r: Result<()> = run(budget, &what, &clock, &Work::new(), |_| {
            calls += 1;
            Attempt::Retry {
                wait: Some(Duration::from_secs(1)),
                why: "the Hub answered 429".into(),
                kind: Kind::RateLimited,
            }
        });
        let e = r.unwrap_err();
        assert_eq!(calls, 4, "a server-requested wait is an attempt too");
        assert_eq!(clock.slept(), vec![Duration::from_secs(1); 3], "waited as told between attempts");
        assert_eq!(e.kind, Kind::RateLimited);
        assert_eq!(
            e.message,
            "giving up on 'hf:org/name' (the tree listing): the Hub answered 429; 4 attempts over 3.0 s; \
             raise hf-retries (now 4) to try more often"
        );
    }

    #[test]
    fn the_time_budget_bounds_waits_and_slow_attempts() {
        let clock = FakeClock::default();
        let budget = Budget { attempts: 100, time: Duration::from_secs(10) };
        let mut calls = 0;
        let r: Result<()> = run(budget, &what, &clock, &Work::new(), |_| {
            calls += 1;
            clock.advance(Duration::from_secs(3)); // a stall timing out
            Attempt::retry(Kind::Unreachable, "the connection stalled")
        });
        let e = r.unwrap_err();
        assert!(clock.now() <= Duration::from_secs(10) + Duration::from_secs(3), "{:?}", clock.now());
        assert!(e.message.ends_with("raise hf-retry-time (now 10 s) to keep trying longer"), "{}", e.message);
        assert!(calls < 100);
        // A server asking for more than the budget holds: no wait at all.
        let clock = FakeClock::default();
        let r: Result<()> = run(budget, &what, &clock, &Work::new(), |_| Attempt::Retry {
            wait: Some(Duration::from_secs(600)),
            why: "the Hub answered 429 (Retry-After: 600)".into(),
            kind: Kind::RateLimited,
        });
        assert!(clock.slept().is_empty());
        assert!(r.unwrap_err().message.contains("the server asks to wait 600 s, and raise hf-retry-time"));
    }

    #[test]
    fn backoff_success_failure_and_stop() {
        let clock = FakeClock::default();
        let r = run(BUDGET, &what, &clock, &Work::new(), |n| {
            if n < 3 {
                Attempt::retry(Kind::Unreachable, "503")
            } else {
                Attempt::Done(n)
            }
        });
        assert_eq!(r.unwrap(), 3);
        assert_eq!(clock.slept(), vec![backoff(2), backoff(3)]);
        assert_eq!((backoff(2), backoff(30)), (Duration::from_millis(1000), Duration::from_secs(8)));
        let r: Result<()> =
            run(BUDGET, &what, &clock, &Work::new(), |_| Attempt::Fail(Error::new(Kind::NotFound, "no such repo")));
        assert_eq!(r.unwrap_err().kind, Kind::NotFound, "a refusal is not retried");
        let stopped = Work::new();
        stopped.stop();
        let r: Result<()> = run(BUDGET, &what, &clock, &stopped, |_| Attempt::Done(()));
        assert_eq!(r.unwrap_err().kind, Kind::Interrupted);
    }

    #[test]
    fn what_servers_ask_for() {
        let mut h = HeaderMap::new();
        assert_eq!(server_wait(&h), None);
        h.insert("RateLimit", "\"resolvers\";r=0;t=42".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(42)));
        h.insert("RateLimit", "\"resolvers\";r=7;t=42".parse().unwrap());
        assert_eq!(server_wait(&h), None, "requests remain: no need to wait");
        h.insert("Retry-After", "3".parse().unwrap());
        assert_eq!(server_wait(&h), Some(Duration::from_secs(3)));
        assert_eq!(transient(429), Some(Kind::RateLimited));
        assert_eq!(transient(503), Some(Kind::Unreachable));
        assert_eq!(transient(404), None);
        let stopped = Work::new();
        stopped.stop();
        assert!(!RealClock::new().sleep(Duration::from_secs(5), &stopped));
    }
}
