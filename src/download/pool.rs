//! The buffers pieces live in between the network and the two readers that
//! hash them: aligned for O_DIRECT, and bounded in number, which bounds
//! memory and how far downloads run ahead of hashing. The unsafe code of
//! the transfer engine is here and nowhere else.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;

use crate::base::lock;
use crate::work::Work;

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

#[derive(Default)]
struct Stock {
    free: Vec<Buffer>,
    /// How many buffers exist, free or in use.
    made: usize,
}

pub struct Pool {
    stock: Mutex<Stock>,
    limit: usize,
    size: usize,
}

impl Pool {
    /// At most `limit` buffers of `size` bytes each.
    pub fn new(limit: usize, size: usize) -> Pool {
        Pool { stock: Mutex::new(Stock::default()), limit: limit.max(1), size }
    }

    /// A buffer, waiting (on the fetch's condition) for one to come back
    /// when all are in use; None once the fetch stops.
    pub fn take(&self, work: &Work) -> Option<Buffer> {
        let mut got = None;
        work.wait_while(|| {
            let mut s = lock(&self.stock);
            got = s.free.pop().or_else(|| {
                (s.made < self.limit).then(|| {
                    s.made += 1;
                    Buffer::new(self.size)
                })
            });
            got.is_none()
        });
        got.filter(|_| !work.stopped())
    }

    pub fn give(&self, b: Buffer, work: &Work) {
        lock(&self.stock).free.push(b);
        work.notify();
    }

    /// How many buffers were ever made: the pool's peak memory, in buffers.
    #[cfg(test)]
    pub fn made(&self) -> usize {
        lock(&self.stock).made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_aligned_and_reused() {
        let work = Work::new();
        let pool = Pool::new(2, 3 * ALIGN);
        let mut a = pool.take(&work).unwrap();
        let b = pool.take(&work).unwrap();
        assert_eq!(a.bytes().as_ptr() as usize % ALIGN, 0);
        a.bytes_mut()[3 * ALIGN - 1] = 7;
        // A third taker waits until a buffer comes back.
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| pool.take(&work).map(|c| c.bytes().len()));
            pool.give(b, &work);
            assert_eq!(waiting.join().unwrap(), Some(3 * ALIGN));
        });
        assert_eq!(pool.made(), 2, "the returned buffer was reused");
        let stopped = Work::new();
        stopped.stop();
        assert!(pool.take(&stopped).is_none(), "a stopped taker does not wait");
        drop(a);
    }
}
