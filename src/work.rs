//! The threads of one fetch. Each is started guarded: its error, or a panic
//! (an `unwrap`, an index out of range), ends the whole fetch with one
//! error, so nothing waits forever for a thread that is gone. They stop
//! together, and they wait without polling: every wait of a fetch is on one
//! condition, which whoever changes what others wait for notifies (a piece
//! arrived, a buffer came back, the fetch must stop).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::base::{lock, Observer};
use crate::error::{panic_text, Error, Result};

#[derive(Clone, Default)]
pub struct Work(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    /// The first error of any thread: what the fetch ends with.
    error: Mutex<Option<Error>>,
    changed: Mutex<()>,
    wake: Condvar,
}

thread_local! {
    /// What this thread is working on, for the message should it panic.
    static WORKING_ON: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Names the file this thread works on from now on, for panic messages.
pub fn working_on(file: &str) {
    WORKING_ON.with(|w| *w.borrow_mut() = Some(file.to_string()));
}

impl Work {
    pub fn new() -> Work {
        Work::default()
    }

    /// Every thread of the fetch is to stop (and every wait returns).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.notify();
    }

    pub fn stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Ends the fetch with `e`, unless it already ended with another error.
    pub fn fail(&self, e: Error) {
        self.fail_after(e, || {});
    }

    /// Runs `cleanup`, then ends the fetch with `e` (unless it already ended
    /// with another error). Until `cleanup` is done no one sees the error,
    /// and no other thread's error, a consequence of the cleanup perhaps,
    /// can take its place.
    pub fn fail_after(&self, e: Error, cleanup: impl FnOnce()) {
        let mut error = lock(&self.0.error);
        cleanup();
        error.get_or_insert(e);
        drop(error);
        self.stop();
    }

    pub fn error(&self) -> Option<Error> {
        lock(&self.0.error).clone()
    }

    /// Wakes every wait, to look again at what it waits for. Never call it
    /// while holding another lock that a waiter's condition takes.
    pub fn notify(&self) {
        let _g = lock(&self.0.changed);
        self.0.wake.notify_all();
    }

    /// Waits while `busy()` holds and the fetch goes on. `busy` is checked
    /// under the condition's lock, so a change made before `notify` is
    /// never missed.
    pub fn wait_while(&self, mut busy: impl FnMut() -> bool) {
        let mut g = lock(&self.0.changed);
        while !self.stopped() && busy() {
            g = self.0.wake.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sleeps for `d` unless the fetch stops first; false if it did.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let mut g = lock(&self.0.changed);
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            g = self.0.wake.wait_timeout(g, until - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits on the caller's thread, the one that talks to `obs`, until
    /// `done()`, the fetch fails, or the user stops it. `report` tells `obs`
    /// what has changed, each time `news()` says something has.
    pub fn pump(
        &self,
        obs: &dyn Observer,
        done: &dyn Fn() -> bool,
        news: &dyn Fn() -> bool,
        report: &dyn Fn(&dyn Observer),
    ) -> Result<()> {
        loop {
            report(obs);
            if obs.interrupted() {
                self.fail(Error::interrupted());
            }
            if let Some(e) = self.error() {
                return Err(e);
            }
            if done() {
                return Ok(());
            }
            self.wait_while(|| !done() && !news());
        }
    }

    /// Runs `f` on a thread of its own, called `name` (as `top` and
    /// debuggers show it). Its error, or its panic (named by what
    /// `working_on` last said), ends the fetch.
    pub fn spawn(&self, name: &str, f: impl FnOnce() -> Result<()> + Send + 'static) {
        let work = self.clone();
        let run = move || {
            if let Err(e) = guarded(f) {
                work.fail(e);
            }
        };
        if let Err(e) = std::thread::Builder::new().name(name.to_string()).spawn(run) {
            self.fail(Error::new(crate::error::Kind::LocalIo, format!("cannot start a thread ({name}): {e}")));
        }
    }

    /// Runs `f` on a thread of its own and keeps its result, which `Task`
    /// hands over once it is there.
    pub fn task<T: Send + 'static>(&self, name: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Task<T> {
        let slot = Arc::new(Mutex::new(None));
        let (out, work) = (slot.clone(), self.clone());
        self.spawn(name, move || {
            let v = f()?;
            *lock(&out) = Some(v);
            work.notify();
            Ok(())
        });
        Task(slot)
    }
}

/// Runs `f`, turning a panic into the error it stands for.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let file = WORKING_ON.with(|w| w.borrow().clone());
        Err(Error::panic(&panic_text(&*payload), file.as_deref()))
    })
}

/// The result of a `Work::task`, once there.
pub struct Task<T>(Arc<Mutex<Option<T>>>);

impl<T> Task<T> {
    pub fn pending(&self) -> bool {
        lock(&self.0).is_none()
    }

    pub fn take(&self) -> Option<T> {
        lock(&self.0).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Detail, Kind};

    #[test]
    fn a_panicking_thread_ends_the_fetch_naming_its_file() {
        let work = Work::new();
        let task: Task<()> = work.task("test", || {
            working_on("weights/a.bin");
            let v: Vec<u8> = Vec::new();
            let _ = v[3];
            Ok(())
        });
        work.wait_while(|| task.pending());
        let e = work.error().expect("the panic is the fetch's error");
        assert_eq!(e.kind, Kind::Bug);
        assert_eq!(e.detail, Detail::Panic { file: Some("weights/a.bin".into()) });
        assert!(task.pending(), "no result from a thread that panicked");
    }

    #[test]
    fn waits_end_when_the_fetch_stops_and_the_first_error_stays() {
        let work = Work::new();
        let w = work.clone();
        let waiter = std::thread::spawn(move || w.wait_while(|| true));
        let sleeper = {
            let w = work.clone();
            std::thread::spawn(move || w.sleep(Duration::from_secs(3600)))
        };
        work.fail(Error::new(Kind::NotFound, "first"));
        work.fail(Error::new(Kind::Unreachable, "second"));
        waiter.join().unwrap();
        assert!(!sleeper.join().unwrap(), "a stop cuts a sleep short");
        assert_eq!(work.error().unwrap().message, "first");
    }
}
