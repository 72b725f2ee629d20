//! The buffers pieces live in between the network and the two readers that
//! hash them: aligned for O_DIRECT, and bounded in number, which bounds
//! memory and how far downloads run ahead of hashing. The unsafe code of
//! the transfer engine is here and nowhere else.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// O_DIRECT wants buffers, offsets and lengths aligned to the block size.
pub const ALIGN: usize = 4096;

/// A piece-sized buffer aligned for O_DIRECT.
pub struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value; it moves between
// threads whole, never shared mutably.
unsafe impl Send for Buffer {}

impl Buffer {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), ALIGN).expect("a valid layout")
    }

    fn new(len: usize) -> Buffer {
        // SAFETY: a non-zero size; a null result is handled.
        let p = unsafe { std::alloc::alloc(Self::layout(len)) };
        let ptr = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::layout(len)));
        Buffer { ptr, len }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes allocated in `new`, alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

pub struct Pool {
    /// Free buffers, and how many exist in all.
    free: Mutex<(Vec<Buffer>, usize)>,
    limit: usize,
    size: usize,
    returned: Condvar,
}

impl Pool {
    /// At most `limit` buffers of `size` bytes each.
    pub fn new(limit: usize, size: usize) -> Pool {
        Pool { free: Mutex::new((Vec::new(), 0)), limit: limit.max(1), size, returned: Condvar::new() }
    }

    /// A buffer, waiting for one to come back when all are in use; None
    /// once `stopped` says so.
    pub fn take(&self, stopped: &dyn Fn() -> bool) -> Option<Buffer> {
        let mut g = self.free.lock().unwrap();
        loop {
            if stopped() {
                return None;
            }
            if let Some(b) = g.0.pop() {
                return Some(b);
            }
            if g.1 < self.limit {
                g.1 += 1;
                return Some(Buffer::new(self.size));
            }
            g = self.returned.wait_timeout(g, Duration::from_millis(20)).unwrap().0;
        }
    }

    pub fn give(&self, b: Buffer) {
        self.free.lock().unwrap().0.push(b);
        self.returned.notify_one();
    }

    /// How many buffers were ever made: the pool's peak memory, in buffers.
    #[cfg(test)]
    pub fn made(&self) -> usize {
        self.free.lock().unwrap().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_aligned_and_reused() {
        let pool = Pool::new(2, 3 * ALIGN);
        let mut a = pool.take(&|| false).unwrap();
        let b = pool.take(&|| false).unwrap();
        assert_eq!(a.bytes().as_ptr() as usize % ALIGN, 0);
        a.bytes_mut()[3 * ALIGN - 1] = 7;
        assert!(pool.take(&|| true).is_none(), "a stopped taker does not wait");
        pool.give(b);
        let c = pool.take(&|| false).unwrap();
        assert_eq!(pool.made(), 2, "the returned buffer was reused");
        drop((a, c));
    }
}
