//! Reductions, arg-reductions, and per-axis row transforms (softmax, cumsum, topk).

use super::elem::{Elem, Float, Num};
use super::error::{shape_err, Result};
use super::shape::{axis, with_shape};
use ndarray::{ArrayD, IxDyn};

/// `a` with `moved` axes placed last, in standard layout, plus the kept dims.
fn rows_last<T: Elem>(a: &ArrayD<T>, moved: &[usize]) -> (Vec<T>, Vec<usize>, usize) {
    let kept: Vec<usize> = (0..a.ndim()).filter(|d| !moved.contains(d)).collect();
    let perm: Vec<usize> = kept.iter().chain(moved).copied().collect();
    let view = a.view().permuted_axes(IxDyn(&perm));
    let row: usize = moved.iter().map(|&d| a.shape()[d]).product();
    (view.iter().copied().collect(), kept, row)
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
    let (data, kept, row) = rows_last(a, &moved);
    let out: Vec<T> = if row == 0 {
        let n: usize = kept.iter().map(|&d| a.shape()[d]).product();
        vec![reduce_row::<T>(kind, &[]); n]
    } else {
        data.chunks(row).map(|r| reduce_row(kind, r)).collect()
    };
    let dims: Vec<usize> = if keepdims {
        (0..a.ndim()).map(|d| if moved.contains(&d) { 1 } else { a.shape()[d] }).collect()
    } else {
        kept.iter().map(|&d| a.shape()[d]).collect()
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
    let (mut data, kept, row) = rows_last(a, &[ax]);
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

pub fn softmax<T: Float>(a: &ArrayD<T>, ax: i64, legacy: bool) -> Result<ArrayD<T>> {
    rows(a, ax, legacy, |r| softmax_row(r, false))
}

pub fn log_softmax<T: Float>(a: &ArrayD<T>, ax: i64, legacy: bool) -> Result<ArrayD<T>> {
    rows(a, ax, legacy, |r| softmax_row(r, true))
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
