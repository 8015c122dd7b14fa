//! Recycled f32 buffers: the emitted `forward` hands every f32 intermediate it owns to
//! [`recycle`] after its last reader, and the kernels that overwrite each element of their
//! output take it from [`take_buffer`]. A recycled `Vec<f32>` holds stale but initialized
//! floats (no undefined behaviour), it skips `calloc`'s memset, and the pool hands out the
//! most recently freed buffer first: the one still in cache.
//!
//! The pool is per thread (no locks); a buffer taken on one thread and recycled on another
//! just moves to that thread's pool. It keeps at most [`MAX_BUFFERS`] buffers and
//! [`MAX_BYTES`] bytes (the oldest go first), so it holds no more than what the allocator
//! kept of the freed intermediates anyway.

use ndarray::ArrayD;
use std::cell::RefCell;

/// Buffers kept per thread.
pub const MAX_BUFFERS: usize = 64;
/// Bytes kept per thread.
pub const MAX_BYTES: usize = 128 << 20;
/// Smaller buffers are not kept (`malloc` serves them from its caches, no memset to save).
const MIN_FLOATS: usize = 1024;

thread_local! {
    /// Recycled buffers, oldest first.
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps the buffer of `x` for [`take_buffer`] when `x` owns it whole (standard layout,
/// no offset); otherwise (or when it is small) just drops it.
pub fn recycle(x: ArrayD<f32>) {
    if !x.is_standard_layout() {
        return;
    }
    let len = x.len();
    let (v, offset) = x.into_raw_vec_and_offset();
    if v.len() != len || offset.unwrap_or(0) != 0 {
        return;
    }
    give(v);
}

/// Puts `v` (its contents are irrelevant) into the thread's pool.
pub fn give(v: Vec<f32>) {
    if v.len() < MIN_FLOATS || v.capacity() * 4 > MAX_BYTES {
        return;
    }
    // `try_with`: during thread teardown the pool may be gone; then just drop.
    let _ = POOL.try_with(|cell| {
        let Ok(mut pool) = cell.try_borrow_mut() else { return };
        pool.push(v);
        let mut bytes: usize = pool.iter().map(|b| b.capacity() * 4).sum();
        while pool.len() > MAX_BUFFERS || bytes > MAX_BYTES {
            bytes -= pool.remove(0).capacity() * 4;
        }
    });
}

/// A `len`-element buffer whose elements hold arbitrary (initialized) floats: the most
/// recently recycled one of that length (see [`reuse`]), else a fresh zeroed one. For
/// outputs the caller overwrites whole.
pub fn take_buffer(len: usize) -> Vec<f32> {
    reuse(len).unwrap_or_else(|| vec![0.0; len])
}

/// [`take_buffer`], zeroed: for outputs the caller accumulates into.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    match reuse(len) {
        Some(mut v) => {
            v.fill(0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// The most recently recycled buffer with room for `len` floats (at most 4x that): the
/// hottest in cache. Cut to `len` (nothing written), or grown to it within its capacity
/// (the new tail zeroed: a `Vec` cannot grow without writing).
pub fn reuse(len: usize) -> Option<Vec<f32>> {
    if len < MIN_FLOATS {
        return None;
    }
    let mut v = POOL
        .try_with(|cell| {
            let mut pool = cell.try_borrow_mut().ok()?;
            let fits = |b: &Vec<f32>| b.capacity() >= len && b.capacity() / 4 <= len;
            // One that needs no growing first.
            let i = pool.iter().rposition(|b| fits(b) && b.len() >= len).or_else(|| pool.iter().rposition(fits))?;
            Some(pool.remove(i))
        })
        .ok()
        .flatten()?;
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    Some(v)
}
