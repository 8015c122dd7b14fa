//! Threads for the runtime: a thin layer over rayon's global pool.
//!
//! The pool size comes from the `RAYON_NUM_THREADS` environment variable (rayon's default,
//! one thread per core, when unset); a caller's own pool applies inside `pool.install(..)`.
//! Every helper here runs its work inline, on the calling thread, when the pool has one
//! thread or when the work is too small to pay for waking another thread. Nesting is fine
//! (an op split over the batch may call a GEMM that splits again): rayon runs the inner
//! pieces on whichever thread is free, and never starts more threads than the pool has.
//!
//! `work` arguments are rough costs in "flops" (multiply-adds count two); below
//! [`MIN_PARALLEL_WORK`] the helpers never touch the pool.
//!
//! A layer split over its batch (each output item written by one thread):
//!
//! ```ignore
//! let per_item = out_channels * out_h * out_w;
//! let flops = 2 * batch * per_item * in_channels * k_h * k_w;
//! par::for_each_chunk_mut(out.as_slice_mut().unwrap(), per_item, flops, |n, out_n| {
//!     // item n of the input -> out_n (its own scratch: thread-local or allocated here)
//! });
//! ```

use std::ops::Range;

/// Work below which splitting is not worth waking a thread: about 70 µs of one core.
/// Measured (GEMM, 2 threads, caller outside the pool): 3 MFLOP ran 20-30% slower split
/// than on one thread (three cross-thread wake-ups per call), 8 MFLOP 1.5x faster.
pub const MIN_PARALLEL_WORK: usize = 8_000_000;

/// Threads of the pool the caller would run on (1 means everything runs inline).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// How many pieces to cut `work` into: 1 (inline) unless the pool has several threads and
/// each piece is worth at least [`MIN_PARALLEL_WORK`] / 2.
pub fn pieces_for(work: usize) -> usize {
    if work < MIN_PARALLEL_WORK {
        return 1;
    }
    threads().min(work / (MIN_PARALLEL_WORK / 2)).max(1)
}

/// Splits `0..n` into `pieces` contiguous ranges whose lengths differ by at most `align`
/// (every range but the last starts and ends on a multiple of `align`).
pub fn split_range(n: usize, pieces: usize, align: usize) -> Vec<Range<usize>> {
    let align = align.max(1);
    let units = n.div_ceil(align);
    let pieces = pieces.clamp(1, units.max(1));
    (0..pieces)
        .map(|p| ((units * p / pieces) * align).min(n)..((units * (p + 1) / pieces) * align).min(n))
        .collect()
}

/// Runs `f` on contiguous sub-ranges of `0..n` covering it exactly once, in parallel when
/// the total `work` pays for it (then at most one range per pool thread). Ranges are
/// multiples of `align` long except the last (`align` 1 = any split).
pub fn for_ranges(n: usize, align: usize, work: usize, f: impl Fn(Range<usize>) + Sync) {
    let pieces = pieces_for(work);
    if pieces <= 1 || n <= align.max(1) {
        if n > 0 {
            f(0..n);
        }
        return;
    }
    let ranges = split_range(n, pieces, align);
    rayon::scope(|s| {
        let f = &f;
        for r in ranges.iter().skip(1).cloned() {
            s.spawn(move |_| f(r));
        }
        f(ranges[0].clone());
    });
}

/// Parallel for over items `0..n` (e.g. batch items or channel blocks), `work` being the
/// total cost of all `n`: `f(i)` once per item, items grouped into one range per thread.
pub fn for_each_index(n: usize, work: usize, f: impl Fn(usize) + Sync) {
    for_ranges(n, 1, work, |r| r.for_each(&f));
}

/// Parallel for over the `chunk_len`-long chunks of `data` (e.g. one batch item of an
/// output, one channel plane): `f(chunk_index, chunk)`, the last chunk may be shorter.
/// `work` is the total cost of all chunks.
pub fn for_each_chunk_mut<T: Send>(data: &mut [T], chunk_len: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk_len = chunk_len.max(1);
    let chunks = data.len().div_ceil(chunk_len);
    let pieces = pieces_for(work).min(chunks);
    if pieces <= 1 {
        data.chunks_mut(chunk_len).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let ranges = split_range(chunks, pieces, 1);
    rayon::scope(|s| {
        let f = &f;
        let mut rest = data;
        let mut groups = Vec::with_capacity(ranges.len());
        for r in &ranges {
            let len = (r.len() * chunk_len).min(rest.len());
            let (head, tail) = rest.split_at_mut(len);
            groups.push((r.start, head));
            rest = tail;
        }
        let mut groups = groups.into_iter();
        let first = groups.next();
        for (start, group) in groups {
            s.spawn(move |_| group.chunks_mut(chunk_len).enumerate().for_each(|(i, c)| f(start + i, c)));
        }
        if let Some((start, group)) = first {
            group.chunks_mut(chunk_len).enumerate().for_each(|(i, c)| f(start + i, c));
        }
    });
}

/// Runs `a` and `b`, in parallel when `work` (their total cost) pays for it.
pub fn join<A: FnOnce() -> RA + Send, B: FnOnce() -> RB + Send, RA: Send, RB: Send>(work: usize, a: A, b: B) -> (RA, RB) {
    if pieces_for(work) < 2 {
        return (a(), b());
    }
    rayon::join(a, b)
}

/// Runs `f` on a thread of the pool (when it has several threads and the caller is not one
/// already), so that the splits inside `f` start from a pool thread: each then costs a
/// push on that thread's own queue instead of a hand-off from outside the pool. Meant
/// to wrap a whole `forward`; with one thread `f` just runs inline.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if threads() <= 1 || rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}
