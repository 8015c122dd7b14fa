//! Threads for the runtime: splits of one op run on the runtime's own small pool (`Pool`:
//! `threads() - 1` std threads that spin for a while between splits, then sleep).
//!
//! The thread count comes from the `RAYON_NUM_THREADS` environment variable (rayon's
//! default, one thread per core, when unset; `threads()` is rayon's, so a caller's own rayon
//! pool applies inside `pool.install(..)`; rayon itself only runs `batch::batch_parallel`).
//! Every helper here runs its work inline, on the calling thread, when there is one thread
//! (the pool is then never started) or when the work is too small to pay for another
//! thread. Nesting is fine: splits inside a piece of a split run inline.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
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

/// Runs the pieces, `pieces[0]` first on the calling thread, the others on the runtime's own
/// pool ([`Pool`]); every piece runs its nested splits inline. Pieces nobody has started
/// when the caller finishes its own are run by the caller, so a pool thread that is asleep
/// or descheduled never makes the caller wait for it (only a piece already started does).
/// When another caller holds the pool, everything runs inline.
fn run_pieces<P: Send>(pieces: Vec<P>, f: &(impl Fn(P) + Sync)) {
    let n = pieces.len();
    if n <= 1 || n > MAX_PIECES {
        pieces.into_iter().for_each(|p| inline(|| f(p)));
        return;
    }
    let slots = Slots(pieces.into_iter().map(|p| std::cell::UnsafeCell::new(Some(p))).collect());
    // Each index is claimed by exactly one thread (Pool::claim), which takes its piece.
    let task = |i: usize| {
        if let Some(p) = unsafe { slots.take(i) } {
            inline(|| f(p));
        }
    };
    let task: &Task = &task;
    pool().run(n, task);
}

/// The pieces of one split, each taken once by the thread that claimed its index.
struct Slots<P>(Vec<std::cell::UnsafeCell<Option<P>>>);
unsafe impl<P: Send> Sync for Slots<P> {}

impl<P> Slots<P> {
    /// Piece `i`; safe only for the one thread that claimed index `i`.
    unsafe fn take(&self, i: usize) -> Option<P> {
        unsafe { (*self.0[i].get()).take() }
    }
}

type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// Most pieces of one split (16 bits of [`Pool::state`]).
const MAX_PIECES: usize = 0xffff;

/// How long a pool thread keeps polling for the next split after its last piece before it
/// sleeps on a condvar (microseconds; `IRC_SPIN_US` overrides it). Waking a sleeping thread
/// costs tens of µs on the KVM bench machine; a spinning one picks a split up in well under
/// 1 µs. onnxruntime's threads spin the same way between parallel sections. The budget is
/// wall time, so a poll descheduled by the OS only shortens the spin (no backoff state).
const SPIN_US: u64 = 1000;

fn spin_budget() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        Duration::from_micros(std::env::var("IRC_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(SPIN_US))
    })
}

/// The runtime's pool: `threads() - 1` threads (started on the first split, never with one
/// thread) that run the pieces of one split at a time, published with one atomic store.
struct Pool {
    /// epoch << 32 | pieces << 16 | next piece to claim; a new epoch is a new split.
    state: AtomicU64,
    /// The current split's task (valid while its pieces run: the caller waits for them).
    task: std::cell::UnsafeCell<*const Task<'static>>,
    /// Pieces of the current split finished.
    done: AtomicUsize,
    /// Set while a caller owns the pool (one split at a time; others run inline).
    busy: AtomicBool,
    /// A piece run by a pool thread panicked.
    panicked: AtomicBool,
    /// Pool threads asleep (or about to sleep) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

unsafe impl Sync for Pool {}
unsafe impl Send for Pool {}

/// The pool, once a split has started it.
static POOL: OnceLock<&'static Pool> = OnceLock::new();

/// Whether the pool is started and none of its threads sleeps: a split then reaches a
/// polling thread (well under 1 µs) and never pays a wake-up (a futex call, tens of µs on
/// the KVM bench machine). Small splits ([`for_ranges_polling`]) ask this first.
pub fn pool_polling() -> bool {
    POOL.get().is_some_and(|p| p.sleepers.load(Ordering::Relaxed) == 0)
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            state: AtomicU64::new(0),
            task: std::cell::UnsafeCell::new(std::ptr::null::<fn(usize)>() as *const Task<'static>),
            done: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }));
        for i in 1..threads().max(2) {
            let spawned = std::thread::Builder::new().name(format!("irc-pool-{i}")).spawn(move || pool.work());
            if spawned.is_err() {
                break; // the callers run every piece themselves
            }
        }
        pool
    })
}

fn epoch_of(state: u64) -> u32 {
    (state >> 32) as u32
}

impl Pool {
    /// Claims the next piece of split `epoch`, if it has one left.
    fn claim(&self, epoch: u32) -> Option<usize> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let (total, next) = ((s >> 16) & 0xffff, s & 0xffff);
            if epoch_of(s) != epoch || next >= total {
                return None;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(next as usize),
                Err(now) => s = now,
            }
        }
    }

    /// Runs piece `i` of the current split (claimed by this thread) and counts it done.
    fn run_claimed(&self, i: usize) {
        let task = unsafe { *self.task.get() };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*task)(i) }));
        if ran.is_err() {
            self.panicked.store(true, Ordering::Relaxed);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// Runs `task(0..n)`, piece 0 on the caller, the rest on whoever claims them first.
    fn run(&self, n: usize, task: &Task) {
        if self.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            (0..n).for_each(task);
            return;
        }
        // Erase the lifetime: the pieces only run until `Finish` below has seen them done.
        unsafe { *self.task.get() = std::mem::transmute::<*const Task<'_>, *const Task<'static>>(task as *const Task<'_>) };
        self.done.store(0, Ordering::Relaxed);
        let epoch = epoch_of(self.state.load(Ordering::Relaxed)).wrapping_add(1);
        self.state.store((epoch as u64) << 32 | (n as u64) << 16 | 1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
        /// Waits for every piece (also when the caller's own piece panics), frees the pool.
        struct Finish<'p>(&'p Pool, u32, usize);
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                let Finish(pool, epoch, n) = *self;
                while let Some(i) = pool.claim(epoch) {
                    pool.run_claimed(i);
                }
                let mut polls = 0u32;
                while pool.done.load(Ordering::Acquire) < n - 1 {
                    polls += 1;
                    if polls < 4096 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                pool.busy.store(false, Ordering::Release);
            }
        }
        {
            let _finish = Finish(self, epoch, n);
            task(0);
        }
        if self.panicked.swap(false, Ordering::Relaxed) {
            panic!("a piece of a parallel split panicked");
        }
    }

    /// A pool thread: runs the pieces it claims, polls for the next split for
    /// [`spin_budget`] after its last piece, then sleeps until a split wakes it.
    fn work(&self) {
        let mut seen = epoch_of(self.state.load(Ordering::Acquire));
        loop {
            let start = Instant::now();
            let mut polls = 0u32;
            let epoch = loop {
                let e = epoch_of(self.state.load(Ordering::Acquire));
                if e != seen {
                    break e;
                }
                polls = polls.wrapping_add(1);
                if polls.is_multiple_of(64) && start.elapsed() >= spin_budget() {
                    self.sleepers.fetch_add(1, Ordering::SeqCst);
                    let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                    while epoch_of(self.state.load(Ordering::SeqCst)) == seen {
                        guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                    drop(guard);
                    self.sleepers.fetch_sub(1, Ordering::SeqCst);
                } else {
                    std::hint::spin_loop();
                }
            };
            seen = epoch;
            // A piece only runs nested splits inline: mark this thread as running pieces.
            IN_CALLER_PIECE.with(|c| c.set(true));
            while let Some(i) = self.claim(epoch) {
                self.run_claimed(i);
            }
        }
    }
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

/// [`for_ranges_min`] splitting from `min_work` only while the pool's threads are polling
/// ([`pool_polling`]: some other op of the same forward split moments ago), else from
/// [`MIN_PARALLEL_WORK`]: for ops of a few µs beside larger split ops (mnist_cnn b1's
/// first conv and its max-pool beside the 3x3 conv and the dense layer), which must not
/// wake a sleeping thread on their own (a model of only small ops, e.g. tiny_classifier).
pub fn for_ranges_polling(n: usize, align: usize, work: usize, min_work: usize, f: impl Fn(Range<usize>) + Sync) {
    let min_work = if pool_polling() { min_work } else { MIN_PARALLEL_WORK };
    for_ranges_min(n, align, work, min_work, f)
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
    for_each_chunk_mut_min(data, chunk_len, work, MIN_PARALLEL_WORK, f)
}

/// [`for_each_chunk_mut`] splitting from `min_work` while the pool polls (see
/// [`for_ranges_polling`]).
pub fn for_each_chunk_mut_polling<T: Send>(data: &mut [T], chunk_len: usize, work: usize, min_work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let min_work = if pool_polling() { min_work } else { MIN_PARALLEL_WORK };
    for_each_chunk_mut_min(data, chunk_len, work, min_work, f)
}

fn for_each_chunk_mut_min<T: Send>(data: &mut [T], chunk_len: usize, work: usize, min_work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let chunk_len = chunk_len.max(1);
    let chunks = data.len().div_ceil(chunk_len);
    let pieces = pieces_for_min(work, min_work).min(chunks);
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
    let (mut ra, mut rb) = (None, None);
    enum Side<'a, A, B, RA, RB> {
        A(A, &'a mut Option<RA>),
        B(B, &'a mut Option<RB>),
    }
    run_pieces(vec![Side::A(a, &mut ra), Side::B(b, &mut rb)], &|side: Side<'_, A, B, RA, RB>| match side {
        Side::A(a, r) => *r = Some(a()),
        Side::B(b, r) => *r = Some(b()),
    });
    (ra.expect("join: a ran"), rb.expect("join: b ran"))
}

/// A counter on its own cache lines (the two sides of [`lockstep`] poll each other's).
#[repr(align(128))]
struct Padded<T>(T);

/// Runs `a(s)` and `b(s)` for every round `s` in `0..steps`, where round `s` needs both
/// pieces of round `s - 1` done (a recurrence split in two halves that exchange their part
/// of the state every round, e.g. the hidden units of a batch-1 LSTM step). `a` always runs
/// on the caller, `b` on a pool thread while one keeps up: the pool thread claims `b(s)` as
/// soon as round `s - 1` is done, the caller runs `a(s)`, then waits (spinning) for `b(s)`,
/// or runs `b(s)` itself if nobody has claimed it yet. So a pool thread that is asleep,
/// busy or descheduled between rounds costs the caller nothing beyond the 1-thread time
/// (only a `b(s)` already started is waited for). Inline (`a(s)`, `b(s)` per round, `b`
/// first on odd rounds: a caller walking its data back and forth every other round finds
/// the lines it read last still in cache) with one thread, inside a split's piece, when
/// another caller holds the pool, or when `work` (the cost of one round) is below
/// `min_work` (see [`pieces_for_min`]).
pub fn lockstep(steps: usize, work: usize, min_work: usize, a: impl Fn(usize) + Sync, b: impl Fn(usize) + Sync) {
    if steps == 0 {
        return;
    }
    let backoff = LOCKSTEP_BACKOFF.load(Ordering::Relaxed);
    if backoff > 0 {
        LOCKSTEP_BACKOFF.store(backoff - 1, Ordering::Relaxed);
    }
    if backoff > 0 || pieces_for_min(work, min_work) < 2 {
        for s in 0..steps {
            if s % 2 == 0 {
                a(s);
                b(s);
            } else {
                b(s);
                a(s);
            }
        }
        return;
    }
    // Rounds of `a` done; `b`: claimed << 32 | done (only the claimant moves `done`).
    let a_done = Padded(AtomicUsize::new(0));
    let b_state = Padded(AtomicU64::new(0));
    let steps32 = steps.min(u32::MAX as usize) as u64;
    /// Set by a caller unwinding out of `a`: the pool thread stops.
    struct Abort<'a>(&'a AtomicUsize);
    impl Drop for Abort<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(usize::MAX, Ordering::Release);
            }
        }
    }
    // Nanoseconds the caller spent waiting for a late pool thread (see LOCKSTEP_BACKOFF).
    let waited = AtomicU64::new(0);
    let start = Instant::now();
    // When the caller finished its rounds (ns after `start`).
    let caller_end = AtomicU64::new(u64::MAX);
    let caller = || {
        let _abort = Abort(&a_done.0);
        for s in 0..steps {
            a(s);
            a_done.0.store(s + 1, Ordering::Release);
            let s64 = s as u64;
            let mine = b_state.0.compare_exchange(s64 << 32 | s64, (s64 + 1) << 32 | s64, Ordering::Acquire, Ordering::Acquire);
            if mine.is_ok() {
                b(s);
                b_state.0.store((s64 + 1) << 32 | (s64 + 1), Ordering::Release);
                continue;
            }
            // Claimed by the pool thread: wait for it to finish.
            let mut polls = 0u32;
            let mut since = None;
            while b_state.0.load(Ordering::Acquire) & 0xffff_ffff <= s64 {
                polls = polls.wrapping_add(1);
                if !polls.is_multiple_of(1024) {
                    std::hint::spin_loop();
                    continue;
                }
                // A round takes a few µs: a pool thread this late was descheduled.
                let t = *since.get_or_insert_with(Instant::now);
                if t.elapsed() >= LOCKSTEP_LATE {
                    std::thread::yield_now();
                }
            }
            if let Some(t) = since.filter(|t| t.elapsed() >= LOCKSTEP_LATE) {
                waited.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }
        caller_end.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    };
    let helper = || loop {
        let st = b_state.0.load(Ordering::Acquire);
        let (claimed, done) = (st >> 32, st & 0xffff_ffff);
        if claimed >= steps32 {
            return;
        }
        // Round `claimed` needs round `claimed - 1` done on both sides.
        let a = a_done.0.load(Ordering::Acquire);
        if a == usize::MAX {
            return;
        }
        if done < claimed || (a as u64) < claimed {
            std::hint::spin_loop();
            continue;
        }
        if b_state.0.compare_exchange(st, (claimed + 1) << 32 | done, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b(claimed as usize)));
            // Marked done even if `b` panicked (the caller then runs the rest itself).
            b_state.0.store((claimed + 1) << 32 | (claimed + 1), Ordering::Release);
            if let Err(e) = ran {
                std::panic::resume_unwind(e);
            }
        }
    };
    join_pieces(caller, helper);
    // The pool thread still inside its piece when the caller was done: descheduled too.
    let (end, total) = (caller_end.load(Ordering::Relaxed), start.elapsed().as_nanos() as u64);
    let mut lost = waited.load(Ordering::Relaxed);
    if end != u64::MAX && total >= end + LOCKSTEP_LATE.as_nanos() as u64 {
        lost += total - end;
    }
    if lost > 0 {
        // Inline calls for LOCKSTEP_BACKOFF_FACTOR times the stall over the call's own time:
        // a busy second core (stalls of a scheduler slice) turns the split off for a hundred
        // calls or so, a brief preemption (another process waking for a few µs) for a few.
        let own = total.saturating_sub(lost).max(1);
        let calls = (LOCKSTEP_BACKOFF_FACTOR as u64 * lost).div_ceil(own).min(LOCKSTEP_BACKOFF_MAX as u64);
        LOCKSTEP_BACKOFF.store(calls as usize, Ordering::Relaxed);
    }
}

/// A wait for the pool thread in [`lockstep`] this long means it was descheduled: the next
/// calls then run inline, as many as [`LOCKSTEP_BACKOFF_FACTOR`] times the time lost over
/// the call's own time (at most [`LOCKSTEP_BACKOFF_MAX`]), so the split pays for its stalls
/// whether they are rare and short or a busy second core's. Unlike the other splits, whose
/// pieces are short, the pool thread's piece of a lockstep spans the whole call, so a
/// preemption anywhere in it holds the caller until the OS runs that thread again. Measured
/// (lstm_text b1, 2 threads): a fixed 64-call backoff kept the split off for most calls
/// when a process merely polled /proc every 2 ms (the bench's RSS poller: median 169-193
/// µs, the 1-thread time, against 97-112 without it); this rule measured 105-114 µs with the
/// poller, 106-113 without, and the same wall time as the fixed backoff with a busy loop
/// pinned to the second core (native loop, 3000 calls, old and new binaries alternated).
const LOCKSTEP_LATE: Duration = Duration::from_micros(30);
const LOCKSTEP_BACKOFF_FACTOR: usize = 4;
const LOCKSTEP_BACKOFF_MAX: usize = 1024;
static LOCKSTEP_BACKOFF: AtomicUsize = AtomicUsize::new(0);

/// Runs `a` on the caller and `b` on the pool (or on the caller after `a`, if nobody took
/// it), whatever the work.
fn join_pieces(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    enum Side<A, B> {
        A(A),
        B(B),
    }
    run_pieces(vec![Side::A(a), Side::B(b)], &|side: Side<_, _>| match side {
        Side::A(a) => a(),
        Side::B(b) => b(),
    });
}
