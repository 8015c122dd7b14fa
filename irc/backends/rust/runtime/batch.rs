//! Batch-parallel `forward` (see irc/backends/rust/batch.py): a model whose ops treat the
//! batch items independently runs once per contiguous chunk of its batch, one chunk per
//! thread, and its outputs are concatenated.

use std::ops::Range;

use super::error::{shape_err, Error};
use super::par::{in_split_piece, inline, split_range, threads};

/// The batch length shared by inputs split along a batch axis: `inputs` holds each one's
/// shape and batch axis. `None` when an input lacks its axis or the lengths disagree (the
/// serial `forward` then reports the shape error).
pub fn common_batch(inputs: &[(&[usize], usize)]) -> Option<usize> {
    let mut batch = None;
    for &(shape, axis) in inputs {
        let n = *shape.get(axis)?;
        if batch.is_some_and(|b| b != n) {
            return None;
        }
        batch = Some(n);
    }
    batch
}

/// Work (flops) a chunk of a batch-parallel `forward` needs to pay for its thread: the split
/// costs one hand-off and the copies of the chunk's inputs and outputs (5-15 µs on a quiet
/// machine, 30-50 µs measured while the other core was busy: mlp at batch 8, chunks of
/// 1.9 MFLOP, ran 36 -> 55 µs split). The environment variable `IRC_MIN_CHUNK_WORK`
/// overrides it (the tests set 1 to split tiny models).
pub const MIN_CHUNK_WORK: usize = 4_000_000;

fn min_chunk_work() -> usize {
    static MIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| {
        std::env::var("IRC_MIN_CHUNK_WORK").ok().and_then(|v| v.parse().ok()).unwrap_or(MIN_CHUNK_WORK).max(1)
    })
}

/// How to cut a batch for [`batch_parallel`], `item_work` being the rough cost of one item:
/// one contiguous run of items per pool thread (lengths differ by at most one), each worth
/// at least [`MIN_CHUNK_WORK`] (or `IRC_MIN_CHUNK_WORK`); `None` (run the model serially)
/// when `batch` is unknown, that gives fewer than two chunks, or the caller already runs a
/// piece of a split.
pub fn batch_chunks(batch: Option<usize>, item_work: usize) -> Option<Vec<Range<usize>>> {
    let batch = batch?;
    let pieces = threads().min(batch).min(batch.saturating_mul(item_work) / min_chunk_work());
    if pieces < 2 || in_split_piece() {
        return None;
    }
    Some(split_range(batch, pieces, 1))
}

/// Runs a whole model once per chunk of its batch (`f(range)` for each of `chunks`), the
/// chunks in parallel, the first on the calling thread; every split inside a chunk runs
/// inline on that chunk's thread (no hand-off, no synchronisation until the end). The
/// results come back in chunk order, or the first chunk's error.
pub fn batch_parallel<R: Send>(chunks: Vec<Range<usize>>, f: impl Fn(&Range<usize>) -> Result<R, Error> + Sync) -> Result<Vec<R>, Error> {
    let mut results: Vec<Option<Result<R, Error>>> = chunks.iter().map(|_| None).collect();
    let run = |r: &Range<usize>, slot: &mut Option<Result<R, Error>>| *slot = Some(inline(|| f(r)));
    rayon::in_place_scope(|s| {
        let mut pieces = chunks.iter().zip(results.iter_mut());
        let first = pieces.next();
        for (r, slot) in pieces {
            let run = &run;
            s.spawn(move |_| run(r, slot));
        }
        if let Some((r, slot)) = first {
            run(r, slot);
        }
    });
    results.into_iter().map(|r| r.unwrap_or_else(|| shape_err("batch chunk did not run"))).collect()
}

/// Items `range` of `a` along `axis`, as an owned array (one chunk's input).
pub fn batch_slice<T: Clone>(a: &ndarray::ArrayD<T>, axis: usize, range: &Range<usize>) -> ndarray::ArrayD<T> {
    a.slice_axis(ndarray::Axis(axis), ndarray::Slice::from(range.clone())).to_owned()
}

/// One output of a batch-split `forward`: `part(p)` of every chunk's results, concatenated
/// along the output's batch `axis`.
pub fn concat_batch<P, T: Clone>(parts: &[P], axis: usize, part: impl Fn(&P) -> &ndarray::ArrayD<T>) -> Result<ndarray::ArrayD<T>, Error> {
    if let [one] = parts {
        return Ok(part(one).clone());
    }
    let views: Vec<_> = parts.iter().map(|p| part(p).view()).collect();
    ndarray::concatenate(ndarray::Axis(axis), &views).map_err(|e| Error::Shape(format!("batch concat: {e}")))
}
