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
