//! What the program shows while it fetches: on a terminal a progress line,
//! redrawn at most ten times a second; in a build log (stderr not a
//! terminal) nothing but the lines the commands print, so that a log holds
//! what happened rather than thousands of redraws. With -v, each file as
//! its download begins (the plugin's `-v` line).
//!
//! Ctrl-C (or SIGTERM, SIGHUP) ends the program at once with the plugin's
//! message and exit status: everything already received is on disk, in
//! the partial directory a later run resumes from, and nothing at OUT is
//! ever half made (see `snapshot::Fetched::into`).

use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::base::Observer;

/// Whether stderr is a terminal.
pub fn is_tty() -> bool {
    // SAFETY: isatty only looks at the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe calls here: write(2) and _exit(2).
    let msg: &[u8] =
        if is_tty() { b"\r\x1b[K\nerror: interrupted by the user\n" } else { b"\nerror: interrupted by the user\n" };
    // SAFETY: writing a static buffer to stderr, then leaving at once.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(1);
    }
}

/// Ends the program on Ctrl-C, SIGTERM and SIGHUP, saying so.
pub fn exit_on_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only writes and exits.
        unsafe {
            libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
    }
}

/// Shows one fetch's progress.
pub struct Progress {
    shown: String,
    verbose: bool,
    tty: bool,
    drawn: Cell<Option<Instant>>,
}

const REDRAW: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(shown: &str, verbose: bool) -> Progress {
        Progress { shown: shown.to_string(), verbose, tty: is_tty(), drawn: Cell::new(None) }
    }

    /// Clears the progress line, if one is drawn.
    pub fn clear(&self) {
        if self.drawn.take().is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Observer for Progress {
    fn interrupted(&self) -> bool {
        // A signal ends the program itself (exit_on_signals).
        false
    }

    fn progress(&self, done: u64, expected: u64) {
        if !self.tty || self.drawn.get().is_some_and(|t| t.elapsed() < REDRAW) && done < expected {
            return;
        }
        let percent = done.saturating_mul(100).checked_div(expected).unwrap_or(100);
        eprint!("\r\x1b[K{} / {} ({percent}%) {}", size(done), size(expected), self.shown);
        let _ = std::io::stderr().flush();
        self.drawn.set(Some(Instant::now()));
    }

    fn file(&self, path: &str, size: u64) {
        if self.verbose {
            self.clear();
            eprintln!("fetching '{path}' ({size} bytes)");
        }
    }

    fn note(&self, message: &str) {
        if self.verbose {
            self.clear();
            eprintln!("{message}");
        }
    }
}

/// Bytes as people read them: 812 B, 3.4 MiB, 14.2 GiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(super::size(812), "812 B");
        assert_eq!(super::size(3 << 20 | 400 << 10), "3.4 MiB");
        assert_eq!(super::size(40 << 30), "40.0 GiB");
    }
}
