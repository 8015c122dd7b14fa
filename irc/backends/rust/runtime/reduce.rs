//! Reductions, arg-reductions, and per-axis row transforms (softmax, cumsum, topk).

use super::elem::{as_f32, as_f32_mut, Elem, Float, Num, Operand};
use super::error::{shape_err, Result};
use super::shape::{axis, with_shape};
use super::vmath::{self, simd};
use ndarray::{ArrayD, IxDyn};
use std::borrow::Cow;

/// `a` with `moved` axes placed last, in standard layout, plus the kept dims. No copy when
/// the moved axes are already the trailing ones of a standard-layout array.
fn rows_last<'a, T: Elem>(a: &'a ArrayD<T>, moved: &[usize]) -> (Cow<'a, [T]>, Vec<usize>, usize) {
    let kept: Vec<usize> = (0..a.ndim()).filter(|d| !moved.contains(d)).collect();
    let row: usize = moved.iter().map(|&d| a.shape()[d]).product();
    let trailing = moved.iter().enumerate().all(|(i, &d)| d == kept.len() + i);
    if let (true, Some(s)) = (trailing, a.as_slice()) {
        return (Cow::Borrowed(s), kept, row);
    }
    let perm: Vec<usize> = kept.iter().chain(moved).copied().collect();
    let view = a.view().permuted_axes(IxDyn(&perm));
    (Cow::Owned(view.iter().copied().collect()), kept, row)
}

/// `(outer, reduced, inner)` when `moved` (sorted) is one run of axes of a standard-layout `a`.
fn contiguous_block<T>(a: &ArrayD<T>, moved: &[usize]) -> Option<(usize, usize, usize)> {
    let (&lo, &hi) = (moved.first()?, moved.last()?);
    if hi - lo + 1 != moved.len() || !a.is_standard_layout() {
        return None;
    }
    let dims = a.shape();
    Some((dims[..lo].iter().product(), dims[lo..=hi].iter().product(), dims[hi + 1..].iter().product()))
}

/// The f32 reductions over a run of axes, straight on the data, into `o` (`outer * inner`
/// values): `false` for other kinds.
fn reduce_block_f32(x: &[f32], kind: &str, o: &mut [f32], red: usize, inner: usize) -> bool {
    if red == 0 || o.is_empty() {
        return false;
    }
    let n = red as f32;
    // Each arm instantiates the loops for one kind: (per-row reduction, per-element map,
    // combination of partial results, final step).
    match kind {
        "sum" => reduce_block(x, o, red, inner, vmath::sum_f32, |v| v, |a, b| a + b, |v| v),
        "mean" => reduce_block(x, o, red, inner, vmath::sum_f32, |v| v, |a, b| a + b, |v| v / n),
        "max" => reduce_block(x, o, red, inner, vmath::max_of_f32, |v| v, vmath::max_f32, |v| v),
        "min" => reduce_block(x, o, red, inner, vmath::min_of_f32, |v| v, vmath::min_f32, |v| v),
        "sum_square" => reduce_block(x, o, red, inner, |r| vmath::sum_sq_dev_f32(r, 0.0), |v| v * v, |a, b| a + b, |v| v),
        "l2" => reduce_block(x, o, red, inner, |r| vmath::sum_sq_dev_f32(r, 0.0), |v| v * v, |a, b| a + b, f32::sqrt),
        "l1" => reduce_block(x, o, red, inner, vmath::sum_abs_f32, f32::abs, |a, b| a + b, |v| v),
        _ => return false,
    }
    true
}

/// `out[o, i] = finish(combine over r of map(x[o, r, i]))` for `x` of shape `[outer, red, inner]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn reduce_block(
    x: &[f32],
    out: &mut [f32],
    red: usize,
    inner: usize,
    row: impl Fn(&[f32]) -> f32 + Copy,
    map: impl Fn(f32) -> f32 + Copy,
    combine: impl Fn(f32, f32) -> f32 + Copy,
    finish: impl Fn(f32) -> f32 + Copy,
) {
    simd(
        #[inline(always)]
        || {
            if inner == 1 {
                for (o, r) in out.iter_mut().zip(x.chunks_exact(red)) {
                    *o = finish(row(r));
                }
                return;
            }
            // Whole slabs of `inner` values at once: vectorized along `inner`.
            for (acc, block) in out.chunks_exact_mut(inner).zip(x.chunks_exact(red * inner)) {
                let mut slabs = block.chunks_exact(inner);
                for (a, &v) in acc.iter_mut().zip(slabs.next().unwrap_or(&[])) {
                    *a = map(v);
                }
                for slab in slabs {
                    for (a, &v) in acc.iter_mut().zip(slab) {
                        *a = combine(*a, map(v));
                    }
                }
                for a in acc.iter_mut() {
                    *a = finish(*a);
                }
            }
        },
    )
}

fn reduce_axes(rank: usize, list: Option<&[i64]>) -> Result<Vec<usize>> {
    let mut v: Vec<usize> = match list {
        Some(l) => l.iter().map(|&x| axis(x, rank)).collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn reduce_row<T: Num>(kind: &str, row: &[T]) -> T {
    let f = |v: &T| v.to_f64();
    let sum = |g: &dyn Fn(f64) -> f64| row.iter().map(|v| g(f(v))).sum::<f64>();
    let n = row.len() as f64;
    let exact_int = !T::DESCR.contains('f');
    match kind {
        "max" => row.iter().fold(T::lowest(), |a, &b| Num::maximum(a, b)),
        "min" => row.iter().fold(T::highest(), |a, &b| Num::minimum(a, b)),
        "sum" if exact_int => row.iter().fold(T::zero(), |a, &b| a.add(b)),
        "prod" if exact_int => row.iter().fold(T::one(), |a, &b| a.mul(b)),
        "sum" => T::from_f64(sum(&|x| x)),
        "mean" => T::from_f64(sum(&|x| x) / n),
        "prod" => T::from_f64(row.iter().map(f).product()),
        "l1" => T::from_f64(sum(&|x| x.abs())),
        "l2" => T::from_f64(sum(&|x| x * x).sqrt()),
        "sum_square" => T::from_f64(sum(&|x| x * x)),
        "log_sum" => T::from_f64(sum(&|x| x).ln()),
        "log_sum_exp" => {
            let m = row.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            if m.is_infinite() {
                return T::from_f64(m);
            }
            T::from_f64(m + sum(&|x| (x - m).exp()).ln())
        }
        _ => T::zero(),
    }
}

/// The ONNX Reduce* family; `kind` is max, min, sum, mean, prod, l1, l2, sum_square, log_sum, log_sum_exp.
pub fn reduce<T: Num>(
    a: &ArrayD<T>,
    kind: &str,
    which: Option<&[i64]>,
    keepdims: bool,
    noop_with_empty_axes: bool,
) -> Result<ArrayD<T>> {
    let empty = which.is_none_or(|w| w.is_empty());
    if empty && noop_with_empty_axes {
        return Ok(a.clone());
    }
    let moved = reduce_axes(a.ndim(), if empty { None } else { which })?;
    let dims: Vec<usize> = if keepdims {
        (0..a.ndim()).map(|d| if moved.contains(&d) { 1 } else { a.shape()[d] }).collect()
    } else {
        (0..a.ndim()).filter(|d| !moved.contains(d)).map(|d| a.shape()[d]).collect()
    };
    if let (Some((outer, red, inner)), Some(x)) = (contiguous_block(a, &moved), a.as_slice().and_then(as_f32)) {
        let mut out = vec![T::zero(); outer * inner];
        if as_f32_mut(&mut out).is_some_and(|o| reduce_block_f32(x, kind, o, red, inner)) {
            return ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| super::error::Error::Shape(e.to_string()));
        }
    }
    let (data, kept, row) = rows_last(a, &moved);
    let out: Vec<T> = if row == 0 {
        let n: usize = kept.iter().map(|&d| a.shape()[d]).product();
        vec![reduce_row::<T>(kind, &[]); n]
    } else {
        data.chunks(row).map(|r| reduce_row(kind, r)).collect()
    };
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}

/// ArgMax (`max = true`) or ArgMin along one axis.
pub fn arg_reduce<T: Num>(a: &ArrayD<T>, ax: i64, keepdims: bool, select_last: bool, max: bool) -> Result<ArrayD<i64>> {
    let ax = axis(ax, a.ndim())?;
    let (data, kept, row) = rows_last(a, &[ax]);
    if row == 0 {
        return shape_err("arg reduction over an empty axis");
    }
    let out: Vec<i64> = data
        .chunks(row)
        .map(|r| {
            let mut best = 0;
            for (i, v) in r.iter().enumerate().skip(1) {
                let better = if max { *v > r[best] } else { *v < r[best] };
                if better || (select_last && *v == r[best]) {
                    best = i;
                }
            }
            best as i64
        })
        .collect();
    let dims: Vec<usize> = if keepdims {
        (0..a.ndim()).map(|d| if d == ax { 1 } else { a.shape()[d] }).collect()
    } else {
        kept.iter().map(|&d| a.shape()[d]).collect()
    };
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}

/// Applies `f` to every 1-D row along `ax`, in place, keeping the shape.
pub fn along_axis<T: Elem>(a: &ArrayD<T>, ax: usize, f: impl Fn(&mut [T])) -> Result<ArrayD<T>> {
    let (data, kept, row) = rows_last(a, &[ax]);
    let mut data = data.into_owned();
    if row > 0 {
        data.chunks_mut(row).for_each(&f);
    }
    let mut dims: Vec<usize> = kept.iter().map(|&d| a.shape()[d]).collect();
    dims.push(a.shape()[ax]);
    let moved = ArrayD::from_shape_vec(IxDyn(&dims), data).map_err(|e| super::error::Error::Shape(e.to_string()))?;
    let mut inverse = vec![0; a.ndim()];
    for (i, &d) in kept.iter().chain(std::iter::once(&ax)).enumerate() {
        inverse[d] = i;
    }
    Ok(moved.permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned())
}

/// Runs a row transform along `ax`, or, with `legacy` (opset < 13), over the flattened `[ax..]` dims.
fn rows<T: Elem>(a: &ArrayD<T>, ax: i64, legacy: bool, f: impl Fn(&mut [T])) -> Result<ArrayD<T>> {
    if legacy {
        let ax = axis(ax, a.ndim().max(1))?;
        let outer: usize = a.shape()[..ax].iter().product();
        let flat = with_shape(a.view(), &[outer, a.len() / outer.max(1)])?;
        let done = along_axis(&flat, 1, f)?;
        return with_shape(done.view(), a.shape());
    }
    along_axis(a, axis(ax, a.ndim())?, f)
}

fn softmax_row<T: Float>(r: &mut [T], log: bool) {
    let m = r.iter().fold(T::lowest(), |a, &b| Num::maximum(a, b));
    let total: f64 = r.iter().map(|v| (v.to_f64() - m.to_f64()).exp()).sum();
    for v in r.iter_mut() {
        let d = v.to_f64() - m.to_f64();
        *v = T::from_f64(if log { d - total.ln() } else { d.exp() / total });
    }
}

/// Softmax (or log-softmax) of every contiguous row of `row` values, in place, in f32.
fn softmax_rows_f32(data: &mut [f32], row: usize, log: bool) {
    simd(
        #[inline(always)]
        || {
            for r in data.chunks_exact_mut(row) {
                let m = vmath::max_of_f32(r);
                if log {
                    let shift = m + vmath::sum_exp_f32(r, m).ln();
                    for v in r.iter_mut() {
                        *v -= shift;
                    }
                } else {
                    for v in r.iter_mut() {
                        *v = vmath::exp_f32(*v - m);
                    }
                    let inv = 1.0 / vmath::sum_f32(r);
                    for v in r.iter_mut() {
                        *v *= inv;
                    }
                }
            }
        },
    )
}

/// Softmax family along `ax` (or over the flattened `[ax..]` dims with `legacy`): f32 rows
/// that are contiguous are done in place in the operand's buffer when it was moved in.
fn softmax_family<'a, T: Float>(a: impl Operand<'a, T>, ax: i64, legacy: bool, log: bool) -> Result<ArrayD<T>> {
    let a = a.into_cow();
    let rank = a.ndim();
    let ax_n = axis(ax, rank.max(1))?;
    let row: usize = if legacy || ax_n + 1 >= rank { a.shape()[ax_n.min(rank)..].iter().product() } else { 0 };
    if row > 0 && super::elem::is_f32::<T>() {
        let mut out = match a {
            Cow::Owned(x) if x.is_standard_layout() => x,
            other => other.as_standard_layout().into_owned(),
        };
        if let Some(x) = out.as_slice_mut().and_then(as_f32_mut) {
            softmax_rows_f32(x, row, log);
        }
        return Ok(out);
    }
    rows(&a, ax, legacy, |r| softmax_row(r, log))
}

pub fn softmax<'a, T: Float>(a: impl Operand<'a, T>, ax: i64, legacy: bool) -> Result<ArrayD<T>> {
    softmax_family(a, ax, legacy, false)
}

pub fn log_softmax<'a, T: Float>(a: impl Operand<'a, T>, ax: i64, legacy: bool) -> Result<ArrayD<T>> {
    softmax_family(a, ax, legacy, true)
}

pub fn hardmax<T: Num>(a: &ArrayD<T>, ax: i64, legacy: bool) -> Result<ArrayD<T>> {
    rows(a, ax, legacy, |r| {
        let best = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
        r.iter_mut().enumerate().for_each(|(i, v)| *v = if i == best { T::one() } else { T::zero() });
    })
}

pub fn cumsum<T: Num>(a: &ArrayD<T>, ax: i64, exclusive: bool, reverse: bool) -> Result<ArrayD<T>> {
    along_axis(a, axis(ax, a.ndim())?, |r| {
        if reverse {
            r.reverse();
        }
        let mut acc = T::zero();
        for v in r.iter_mut() {
            let x = *v;
            if exclusive {
                *v = acc;
                acc = acc.add(x);
            } else {
                acc = acc.add(x);
                *v = acc;
            }
        }
        if reverse {
            r.reverse();
        }
    })
}

pub fn lp_normalization<T: Float>(a: &ArrayD<T>, ax: i64, p: i64) -> Result<ArrayD<T>> {
    along_axis(a, axis(ax, a.ndim())?, |r| {
        let norm: f64 = if p == 1 {
            r.iter().map(|v| v.to_f64().abs()).sum()
        } else {
            r.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt()
        };
        r.iter_mut().for_each(|v| *v = if norm == 0.0 { T::zero() } else { T::from_f64(v.to_f64() / norm) });
    })
}

/// TopK along an axis: values and int64 indices; ties keep the lower index first.
pub fn topk<T: Num>(a: &ArrayD<T>, k: i64, ax: i64, largest: bool, sorted: bool) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    let _ = sorted; // results are always sorted, which satisfies both settings
    let ax = axis(ax, a.ndim())?;
    let n = a.shape()[ax];
    if k < 0 || k as usize > n {
        return shape_err(format!("topk: k={k} for an axis of size {n}"));
    }
    let k = k as usize;
    let (data, kept, row) = rows_last(a, &[ax]);
    let (mut vals, mut idxs) = (Vec::new(), Vec::new());
    if row > 0 {
        for r in data.chunks(row) {
            let mut order: Vec<usize> = (0..row).collect();
            order.sort_by(|&i, &j| {
                let c = r[i].partial_cmp(&r[j]).unwrap_or(std::cmp::Ordering::Equal);
                let c = if largest { c.reverse() } else { c };
                c.then(i.cmp(&j))
            });
            order.truncate(k);
            vals.extend(order.iter().map(|&i| r[i]));
            idxs.extend(order.iter().map(|&i| i as i64));
        }
    }
    let mut dims: Vec<usize> = kept.iter().map(|&d| a.shape()[d]).collect();
    dims.push(k);
    let mut inverse = vec![0; a.ndim()];
    for (i, &d) in kept.iter().chain(std::iter::once(&ax)).enumerate() {
        inverse[d] = i;
    }
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    let v = ArrayD::from_shape_vec(IxDyn(&dims), vals).map_err(err)?;
    let i = ArrayD::from_shape_vec(IxDyn(&dims), idxs).map_err(err)?;
    let v = v.permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned();
    let i = i.permuted_axes(IxDyn(&inverse)).as_standard_layout().into_owned();
    Ok((v, i))
}

/// ReduceMax / ReduceMin on booleans: any / all.
pub fn reduce_bool(
    a: &ArrayD<bool>,
    any: bool,
    which: Option<&[i64]>,
    keepdims: bool,
    noop_with_empty_axes: bool,
) -> Result<ArrayD<bool>> {
    let as_u8 = a.mapv(u8::from);
    let kind = if any { "max" } else { "min" };
    Ok(reduce(&as_u8, kind, which, keepdims, noop_with_empty_axes)?.mapv(|v| v != 0))
}

/// ONNX `Unique`: unique values (or slices along `ax`), first-occurrence indices, inverse indices, counts.
#[allow(clippy::type_complexity)]
pub fn unique<T: Elem>(
    a: &ArrayD<T>,
    ax: Option<i64>,
    sorted: bool,
) -> Result<(ArrayD<T>, ArrayD<i64>, ArrayD<i64>, ArrayD<i64>)> {
    let (items, ax): (Vec<Vec<T>>, Option<usize>) = match ax {
        None => (a.iter().map(|&v| vec![v]).collect(), None),
        Some(x) => {
            let x = axis(x, a.ndim())?;
            (a.axis_iter(ndarray::Axis(x)).map(|s| s.iter().copied().collect()).collect(), Some(x))
        }
    };
    let mut reps: Vec<usize> = Vec::new();
    let mut which: Vec<usize> = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        match reps.iter().position(|&r| items[r] == *it) {
            Some(p) => which.push(p),
            None => {
                which.push(reps.len());
                reps.push(i);
            }
        }
    }
    let mut order: Vec<usize> = (0..reps.len()).collect();
    if sorted {
        order.sort_by(|&x, &y| {
            items[reps[x]].partial_cmp(&items[reps[y]]).unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let mut rank = vec![0; reps.len()];
    for (pos, &u) in order.iter().enumerate() {
        rank[u] = pos;
    }
    let u = order.len();
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    let y = match ax {
        None => ArrayD::from_shape_vec(IxDyn(&[u]), order.iter().map(|&k| items[reps[k]][0]).collect()).map_err(err)?,
        Some(x) => a.select(ndarray::Axis(x), &order.iter().map(|&k| reps[k]).collect::<Vec<_>>()),
    };
    let first: Vec<i64> = order.iter().map(|&k| reps[k] as i64).collect();
    let inverse: Vec<i64> = which.iter().map(|&w| rank[w] as i64).collect();
    let mut counts = vec![0i64; u];
    for &w in &which {
        counts[rank[w]] += 1;
    }
    let vec1 = |v: Vec<i64>| ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).map_err(err);
    Ok((y, vec1(first)?, vec1(inverse)?, vec1(counts)?))
}
