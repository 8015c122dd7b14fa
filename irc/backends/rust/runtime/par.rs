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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
    pieces_for_min(work, MIN_PARALLEL_WORK)
}

/// [`pieces_for`] with another threshold `min_work` (for memory-bound work such as a GEMV
/// streaming its weights once, where the flop count understates the time): 1 below it
/// or with one thread, else up to one piece per thread, each worth `min_work` / 2.
/// Always 1 inside a piece the calling thread runs for a split started outside the pool
/// (that thread cannot help the pool with nested pieces; see [`for_ranges_min`]).
pub fn pieces_for_min(work: usize, min_work: usize) -> usize {
    let min_work = min_work.max(2);
    if work < min_work || IN_CALLER_PIECE.with(|c| c.get()) {
        return 1;
    }
    threads().min(work / (min_work / 2)).max(1)
}

thread_local! {
    /// Set while a thread outside the pool runs its own piece of a split.
    static IN_CALLER_PIECE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread runs a piece of a split (its own splits then run inline).
pub fn in_split_piece() -> bool {
    IN_CALLER_PIECE.with(|c| c.get())
}

/// Runs `f` with every split inside it inline (for work whose splits cost more than they
/// save, or a piece of a split whose threads are all busy); restored even if `f` panics.
pub fn inline<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_CALLER_PIECE.with(|c| c.replace(true));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_CALLER_PIECE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(was);
    f()
}

/// Runs `pieces[0]` on the calling thread and the others on the pool. Outside the pool the
/// caller keeps its piece (one hand-off to a pool thread instead of `rayon::scope`'s
/// three: into the pool, to a second thread, back to the caller), and nested splits
/// inside the caller's piece run inline.
fn run_pieces<P: Send>(pieces: Vec<P>, f: &(impl Fn(P) + Sync)) {
    let outside = rayon::current_thread_index().is_none();
    rayon::in_place_scope(|s| {
        let mut pieces = pieces.into_iter();
        let first = pieces.next();
        for piece in pieces {
            s.spawn(move |_| {
                if outside {
                    // Every thread has a piece: nested splits inside it run inline too.
                    inline(|| f(piece));
                } else {
                    f(piece);
                }
                if outside && linger_wanted() {
                    // Runs after this piece (this thread's own queue) unless stolen first.
                    rayon::spawn(linger);
                }
            });
        }
        if let Some(piece) = first {
            if outside {
                inline(|| f(piece));
            } else {
                f(piece);
            }
        }
    });
}

/// How long a pool thread that ran a piece for a caller outside the pool keeps polling
/// the pool for the next piece, instead of going to sleep (rayon's idle threads sleep
/// after a few µs; waking one for the next split costs tens of µs on the KVM bench
/// machine, as long as a whole half of mnist_cnn's conv2). onnxruntime's threads spin
/// the same way between parallel sections.
const LINGER: Duration = Duration::from_micros(400);

/// A pause this long between two polls means the lingering thread was descheduled: the
/// machine has no idle core, and spinning would take time from the caller (and others).
const PREEMPTED: Duration = Duration::from_micros(30);

/// After a preemption, lingering stays off this long (then is tried again).
const BUSY_BACKOFF: Duration = Duration::from_millis(50);

/// Set while one pool thread lingers (at most one at a time).
static LINGERING: AtomicBool = AtomicBool::new(false);

/// Nanoseconds since [`epoch`] before which [`linger`] does nothing.
static LINGER_OFF_UNTIL: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch(t: Instant) -> u64 {
    t.duration_since(epoch()).as_nanos() as u64
}

/// No thread lingers yet and the machine did not look busy lately.
fn linger_wanted() -> bool {
    !LINGERING.load(Ordering::Relaxed) && since_epoch(Instant::now()) >= LINGER_OFF_UNTIL.load(Ordering::Relaxed)
}

/// Keeps the current pool thread polling the pool for [`LINGER`] after its last job (a
/// piece of a split started outside the pool), running what arrives (the next split's
/// piece) without a wake-up. One thread at a time, and not on a busy machine (see
/// [`PREEMPTED`]); a job run from here does not linger again.
fn linger() {
    let start = Instant::now();
    if !linger_wanted() || LINGERING.swap(true, Ordering::Acquire) {
        return;
    }
    let (mut last, mut prev) = (start, start);
    loop {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {
                last = Instant::now();
                prev = last;
            }
            Some(rayon::Yield::Idle) => {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
                let now = Instant::now();
                if now - prev >= PREEMPTED {
                    LINGER_OFF_UNTIL.store(since_epoch(now + BUSY_BACKOFF), Ordering::Relaxed);
                    break;
                }
                if now - last >= LINGER {
                    break;
                }
                prev = now;
            }
            None => break,
        }
    }
    LINGERING.store(false, Ordering::Release);
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
    for_ranges_min(n, align, work, MIN_PARALLEL_WORK, f)
}

/// [`for_ranges`] splitting from `min_work` on (see [`pieces_for_min`]).
pub fn for_ranges_min(n: usize, align: usize, work: usize, min_work: usize, f: impl Fn(Range<usize>) + Sync) {
    let pieces = pieces_for_min(work, min_work);
    if pieces <= 1 || n <= align.max(1) {
        if n > 0 {
            f(0..n);
        }
        return;
    }
    run_pieces(split_range(n, pieces, align), &f);
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
    let mut rest = data;
    let mut groups = Vec::with_capacity(ranges.len());
    for r in &ranges {
        let len = (r.len() * chunk_len).min(rest.len());
        let (head, tail) = rest.split_at_mut(len);
        groups.push((r.start, head));
        rest = tail;
    }
    run_pieces(groups, &|(start, group): (usize, &mut [T])| {
        group.chunks_mut(chunk_len).enumerate().for_each(|(i, c)| f(start + i, c))
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
