//! The buffers pieces live in between the network and the readers that hash
//! them: aligned for O_DIRECT, each as large as its piece, and bounded in
//! bytes, which bounds memory and how far downloads run ahead of hashing
//! (by bytes, not by count: thousands of small files may be in flight and
//! waiting for the readers in the memory one large piece takes). A buffer goes back to the
//! pool when its last holder drops it (the readers, and the write of the
//! piece to disk, each hold it until done). The unsafe code of the
//! transfer engine is here and nowhere else.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use crate::base::lock;
use crate::work::Work;

/// O_DIRECT wants buffers, offsets and lengths aligned to the block size.
pub const ALIGN: usize = 4096;

/// Piece-sized memory aligned for O_DIRECT.
struct Memory {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the memory is owned by this value; it moves between threads whole,
// and is shared only immutably (behind `Buffer`'s `&self`).
unsafe impl Send for Memory {}
unsafe impl Sync for Memory {}

impl Memory {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1), ALIGN).expect("a valid layout")
    }

    fn new(len: usize) -> Memory {
        // SAFETY: a non-zero size; a null result is handled.
        let p = unsafe { std::alloc::alloc(Self::layout(len)) };
        let ptr = NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::layout(len)));
        Memory { ptr, len }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

#[derive(Default)]
struct Stock {
    /// Full-size buffers not in use, kept for the next full piece.
    free: Vec<Memory>,
    /// How many full-size buffers exist, free or in use.
    made: usize,
    /// Bytes of the buffers in use.
    used: usize,
}

struct Shared {
    stock: Mutex<Stock>,
    /// Bytes of buffers in use at most (one buffer is always allowed).
    limit: usize,
    /// A full piece's size.
    size: usize,
    work: Work,
}

/// A buffer of the pool; back in the pool when dropped.
pub struct Buffer {
    memory: Option<Memory>,
    pool: Arc<Shared>,
}

impl Buffer {
    pub fn bytes(&self) -> &[u8] {
        let m = self.memory.as_ref().expect("a buffer has memory until dropped");
        // SAFETY: `len` bytes allocated in `Memory::new`, alive as long as self.
        unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let m = self.memory.as_ref().expect("a buffer has memory until dropped");
        // SAFETY: as above, and &mut self makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(m.ptr.as_ptr(), m.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(m) = self.memory.take() {
            let mut stock = lock(&self.pool.stock);
            stock.used -= m.len;
            if m.len == self.pool.size {
                stock.free.push(m);
            }
            drop(stock);
            self.pool.work.notify();
        }
    }
}

#[derive(Clone)]
pub struct Pool(Arc<Shared>);

impl Pool {
    /// Buffers of at most `size` bytes each, `limit` full ones' worth in
    /// all, for the fetch `work`.
    pub fn new(limit: usize, size: usize, work: &Work) -> Pool {
        let limit = limit.max(1) * size;
        Pool(Arc::new(Shared { stock: Mutex::new(Stock::default()), limit, size, work: work.clone() }))
    }

    /// A buffer for `len` bytes (at most a full piece), if the bound allows
    /// one now; never waits.
    pub fn try_take(&self, len: usize) -> Option<Buffer> {
        let s = &self.0;
        let want = len.clamp(1, s.size).div_ceil(ALIGN) * ALIGN;
        let want = want.min(s.size);
        let mut stock = lock(&s.stock);
        if stock.used > 0 && stock.used + want > s.limit {
            return None;
        }
        let memory = if want == s.size {
            stock.free.pop().unwrap_or_else(|| {
                stock.made += 1;
                Memory::new(want)
            })
        } else {
            Memory::new(want)
        };
        stock.used += want;
        Some(Buffer { memory: Some(memory), pool: s.clone() })
    }

    /// A full-size buffer, waiting (on the fetch's condition) for the bound
    /// to allow one; None once the fetch stops.
    #[cfg(test)]
    pub fn take(&self) -> Option<Buffer> {
        let mut got = None;
        self.0.work.wait_while(|| {
            got = self.try_take(self.0.size);
            got.is_none()
        });
        got.filter(|_| !self.0.work.stopped())
    }

    /// How many full-size buffers were ever made.
    #[cfg(test)]
    pub fn made(&self) -> usize {
        lock(&self.0.stock).made
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_aligned_and_reused() {
        let work = Work::new();
        let pool = Pool::new(2, 3 * ALIGN, &work);
        let mut a = pool.take().unwrap();
        let b = Arc::new(pool.take().unwrap());
        assert_eq!(a.bytes().as_ptr() as usize % ALIGN, 0);
        a.bytes_mut()[3 * ALIGN - 1] = 7;
        // A third taker waits until a buffer comes back: when its last
        // holder lets it go.
        let second_holder = b.clone();
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| pool.take().map(|c| c.bytes().len()));
            drop(b);
            drop(second_holder);
            assert_eq!(waiting.join().unwrap(), Some(3 * ALIGN));
        });
        assert_eq!(pool.made(), 2, "the returned buffer was reused");
        let stopped = Work::new();
        stopped.stop();
        assert!(Pool::new(1, ALIGN, &stopped).take().is_none(), "a stopped taker does not wait");
        drop(a);
    }

    #[test]
    fn small_buffers_count_by_their_bytes() {
        let work = Work::new();
        let pool = Pool::new(2, 4 * ALIGN, &work);
        let small: Vec<Buffer> =
            (0..8).map(|_| pool.try_take(10).expect("eight small in two full ones' worth")).collect();
        assert!(small.iter().all(|b| b.bytes().len() == ALIGN && b.bytes().as_ptr() as usize % ALIGN == 0));
        assert!(pool.try_take(1).is_none(), "the bound is in bytes");
        drop(small);
        let full = pool.try_take(4 * ALIGN).unwrap();
        assert_eq!(full.bytes().len(), 4 * ALIGN);
        let _also = pool.try_take(4 * ALIGN).unwrap();
        assert!(pool.try_take(4 * ALIGN).is_none());
        drop(full);
        let lone = Pool::new(1, ALIGN, &work);
        assert!(lone.try_take(ALIGN).is_some(), "one buffer is always allowed");
    }
}
