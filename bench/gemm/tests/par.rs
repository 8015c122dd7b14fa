//! The runtime's thread helpers (irc/backends/rust/runtime/par.rs): every item exactly
//! once, inline or split, in pools of 1 and 3 threads.

use irc_gemm_bench::par;
use std::sync::atomic::{AtomicUsize, Ordering};

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool")
}

#[test]
fn split_range_covers_once_aligned() {
    for (n, pieces, align) in [(0, 3, 1), (1, 4, 8), (100, 3, 8), (1203, 2, 32), (7, 7, 1), (64, 5, 16)] {
        let ranges = par::split_range(n, pieces, align);
        assert!(!ranges.is_empty() && ranges.len() <= pieces.max(1));
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, n);
        for w in ranges.windows(2) {
            assert_eq!(w[0].end, w[1].start, "{n} {pieces} {align}: {ranges:?}");
            assert_eq!(w[0].end % align, 0, "{n} {pieces} {align}: {ranges:?}");
        }
    }
}

#[test]
fn for_each_index_and_chunks_visit_everything_once() {
    for threads in [1, 3] {
        for work in [10, 100 * par::MIN_PARALLEL_WORK] {
            pool(threads).install(|| {
                let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
                par::for_each_index(hits.len(), work, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));

                let mut data = vec![0usize; 10 * 7 + 3];
                par::for_each_chunk_mut(&mut data, 7, work, |i, chunk| {
                    assert!(chunk.len() == 7 || (i == 10 && chunk.len() == 3), "chunk {i}: {}", chunk.len());
                    chunk.iter_mut().for_each(|x| *x += i + 1);
                });
                assert!(data.iter().enumerate().all(|(j, &x)| x == j / 7 + 1), "{data:?}");

                let seen = AtomicUsize::new(0);
                par::for_ranges(1000, 8, work, |r| {
                    assert!(r.start % 8 == 0);
                    seen.fetch_add(r.len(), Ordering::Relaxed);
                });
                assert_eq!(seen.load(Ordering::Relaxed), 1000);

                assert_eq!(par::join(work, || 1, || "b"), (1, "b"));
            });
        }
    }
}

#[test]
fn small_work_or_one_thread_stays_inline() {
    assert_eq!(pool(1).install(|| par::pieces_for(usize::MAX)), 1);
    assert_eq!(pool(4).install(|| par::pieces_for(par::MIN_PARALLEL_WORK - 1)), 1);
    assert_eq!(pool(4).install(|| par::pieces_for(100 * par::MIN_PARALLEL_WORK)), 4);
    // Inline means on the caller's thread.
    let caller = std::thread::current().id();
    par::for_each_index(4, 1, |_| assert_eq!(std::thread::current().id(), caller));
}

#[test]
fn pieces_for_min_uses_its_own_threshold() {
    assert_eq!(pool(2).install(|| par::pieces_for_min(999, 1000)), 1);
    assert_eq!(pool(2).install(|| par::pieces_for_min(1000, 1000)), 2);
    assert_eq!(pool(1).install(|| par::pieces_for_min(usize::MAX, 2)), 1);
    // Every range once, split or not.
    for threads in [1, 2, 3] {
        let seen: Vec<std::sync::atomic::AtomicUsize> = (0..100).map(|_| Default::default()).collect();
        pool(threads).install(|| {
            par::for_ranges_min(100, 8, 1000, 10, |r| {
                r.for_each(|i| { seen[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed); })
            })
        });
        assert!(seen.iter().all(|c| c.load(std::sync::atomic::Ordering::Relaxed) == 1));
    }
}

#[test]
fn lockstep_runs_every_round_once_in_order() {
    use std::sync::atomic::AtomicU64;
    // Two halves of a recurrence: round s of each reads both halves of round s - 1.
    let expect = |steps: usize| {
        let (mut a, mut b) = (1u64, 2u64);
        for s in 0..steps as u64 {
            (a, b) = (a.wrapping_mul(31).wrapping_add(b ^ s), b.wrapping_mul(17).wrapping_add(a) ^ 5);
        }
        (a, b)
    };
    for threads in [1, 2, 3] {
        for (steps, slow_b) in [(0, false), (1, false), (200, false), (50, true)] {
            let xa: Vec<AtomicU64> = (0..=steps).map(|_| AtomicU64::new(0)).collect();
            let xb: Vec<AtomicU64> = (0..=steps).map(|_| AtomicU64::new(0)).collect();
            xa[0].store(1, Ordering::Relaxed);
            xb[0].store(2, Ordering::Relaxed);
            let runs: Vec<AtomicUsize> = (0..2 * steps).map(|_| AtomicUsize::new(0)).collect();
            pool(threads).install(|| {
                let caller = std::thread::current().id();
                par::lockstep(
                    steps,
                    1000,
                    10,
                    |s| {
                        assert_eq!(std::thread::current().id(), caller, "a runs on the caller");
                        runs[2 * s].fetch_add(1, Ordering::Relaxed);
                        let (a, b) = (xa[s].load(Ordering::Relaxed), xb[s].load(Ordering::Relaxed));
                        xa[s + 1].store(a.wrapping_mul(31).wrapping_add(b ^ s as u64), Ordering::Relaxed);
                    },
                    |s| {
                        runs[2 * s + 1].fetch_add(1, Ordering::Relaxed);
                        if slow_b && s % 7 == 3 && std::thread::current().id() != caller {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                        }
                        let (a, b) = (xa[s].load(Ordering::Relaxed), xb[s].load(Ordering::Relaxed));
                        xb[s + 1].store(b.wrapping_mul(17).wrapping_add(a) ^ 5, Ordering::Relaxed);
                    },
                )
            });
            assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1), "{threads} threads, {steps} steps");
            let got = (xa[steps].load(Ordering::Relaxed), xb[steps].load(Ordering::Relaxed));
            assert_eq!(got, expect(steps), "{threads} threads, {steps} steps");
        }
    }
}
