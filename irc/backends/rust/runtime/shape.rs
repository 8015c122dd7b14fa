//! Shape and data-movement operators: reshape, transpose, slice, gather, pad...

use super::elem::{Elem, Num, Operand};
use super::elementwise::{broadcast_shape, broadcast_to};
use super::error::{shape_err, Error, Result};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use std::borrow::Cow;

/// Checks a model input against the shape the model was compiled for (`None`: any size).
pub fn check_shape<T>(a: &ArrayD<T>, name: &str, expected: &[Option<usize>]) -> Result<()> {
    let ok = a.ndim() == expected.len()
        && a.shape().iter().zip(expected).all(|(d, e)| e.is_none_or(|e| e == *d));
    if ok {
        return Ok(());
    }
    let want: Vec<String> = expected
        .iter()
        .map(|e| e.map_or("?".to_string(), |d| d.to_string()))
        .collect();
    shape_err(format!("input `{name}` has shape {:?}, the model expects [{}]", a.shape(), want.join(", ")))
}

/// Normalizes a possibly negative axis against a rank.
pub fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r.max(1) {
        return shape_err(format!("axis {a} out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn axes(list: &[i64], rank: usize) -> Result<Vec<usize>> {
    list.iter().map(|&a| axis(a, rank)).collect()
}

/// The values of an integer tensor, for shape-like operands computed at run time.
pub fn to_i64_vec<T: Elem>(a: &ArrayD<T>) -> Vec<i64> {
    a.iter().map(|v| v.to_i64()).collect()
}

/// An owned copy in standard layout with a new shape of the same size.
pub fn with_shape<T: Elem>(a: ArrayViewD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
    let data: Vec<T> = match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().copied().collect(),
    };
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|_| Error::Shape(format!("cannot reshape {:?} into {shape:?}", a.shape())))
}

/// `a` with a new shape of the same size: no copy when `a` was moved in (in standard
/// layout), a copy otherwise.
fn reshaped<T: Elem>(a: Cow<'_, ArrayD<T>>, shape: &[usize]) -> Result<ArrayD<T>> {
    match a {
        Cow::Owned(x) if x.is_standard_layout() => {
            let from = x.shape().to_vec();
            x.into_shape_with_order(IxDyn(shape))
                .map_err(|_| Error::Shape(format!("cannot reshape {from:?} into {shape:?}")))
        }
        other => with_shape(other.view(), shape),
    }
}

/// ONNX `Reshape`: `0` copies the input dim (unless `allowzero`), `-1` is inferred.
pub fn reshape<'a, T: Elem>(a: impl Operand<'a, T>, shape: &[i64], allowzero: bool) -> Result<ArrayD<T>> {
    let a = a.into_cow();
    let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            0 if !allowzero => match a.shape().get(i) {
                Some(&x) => dims.push(x),
                None => return shape_err(format!("reshape: dim 0 at {i} beyond input rank")),
            },
            -1 => {
                infer = Some(i);
                dims.push(1);
            }
            d if d < 0 => return shape_err(format!("reshape: bad dim {d}")),
            d => dims.push(d as usize),
        }
    }
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || !a.len().is_multiple_of(known) {
            return shape_err(format!("cannot reshape {:?} into {shape:?}", a.shape()));
        }
        dims[i] = a.len() / known;
    }
    reshaped(a, &dims)
}

pub fn transpose<T: Elem>(a: &ArrayD<T>, perm: &[usize]) -> Result<ArrayD<T>> {
    let perm: Vec<usize> = if perm.is_empty() { (0..a.ndim()).rev().collect() } else { perm.to_vec() };
    let mut seen = vec![false; a.ndim()];
    if perm.len() != a.ndim() || perm.iter().any(|&p| p >= a.ndim() || std::mem::replace(&mut seen[p], true)) {
        return shape_err(format!("transpose: bad perm {perm:?} for shape {:?}", a.shape()));
    }
    let view = a.view().permuted_axes(IxDyn(&perm));
    if let Some(src) = a.as_slice() {
        let data = permute_copy(src, view.shape(), view.strides());
        return ArrayD::from_shape_vec(view.raw_dim(), data).map_err(|e| Error::Shape(e.to_string()));
    }
    Ok(view.as_standard_layout().into_owned())
}

/// The elements of the strided view (`shape`, `strides` over `src`) in standard order:
/// contiguous runs are copied as slices, a transposed pair of last dims in cache tiles.
fn permute_copy<T: Copy + Default>(src: &[T], shape: &[usize], strides: &[isize]) -> Vec<T> {
    let total: usize = shape.iter().product();
    let (dims, steps) = merge_dims(shape, strides);
    let mut out = vec![T::default(); total];
    if total == 0 {
        return out;
    }
    let r = dims.len();
    if r == 0 {
        out[0] = src[0];
        return out;
    }
    // The dims handled by the inner kernel: one run (last stride 1), a 2-D tile (the
    // last-but-one dim has stride 1) or a strided row.
    let inner = if steps[r - 1] == 1 || r < 2 || steps[r - 2] != 1 { 1 } else { 2 };
    let block: usize = dims[r - inner..].iter().product();
    let mut index = vec![0usize; r - inner];
    // Offset of the current block in `src`, kept up to date as `index` counts.
    let mut base: isize = 0;
    for dst in out.chunks_exact_mut(block) {
        if inner == 2 {
            transpose_tile(&src[base as usize..], dims[r - 2], dims[r - 1], steps[r - 1] as usize, dst);
        } else if steps[r - 1] == 1 {
            dst.copy_from_slice(&src[base as usize..base as usize + block]);
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                *d = src[(base + j as isize * steps[r - 1]) as usize];
            }
        }
        for d in (0..index.len()).rev() {
            index[d] += 1;
            base += steps[d];
            if index[d] < dims[d] {
                break;
            }
            index[d] = 0;
            base -= steps[d] * dims[d] as isize;
        }
    }
    out
}

/// `shape`/`strides` without size-1 dims, adjacent dims merged where memory allows.
fn merge_dims(shape: &[usize], strides: &[isize]) -> (Vec<usize>, Vec<isize>) {
    let (mut dims, mut steps): (Vec<usize>, Vec<isize>) = (Vec::new(), Vec::new());
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (dims.last_mut(), steps.last_mut()) {
            (Some(pd), Some(ps)) if *ps == s * d as isize => {
                *pd *= d;
                *ps = s;
            }
            _ => {
                dims.push(d);
                steps.push(s);
            }
        }
    }
    (dims, steps)
}

/// `dst[i * cols + j] = src[i + j * col_step]`: a `rows × cols` transpose in 16×16 tiles.
fn transpose_tile<T: Copy>(src: &[T], rows: usize, cols: usize, col_step: usize, dst: &mut [T]) {
    const TILE: usize = 16;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for j in j0..(j0 + TILE).min(cols) {
                let column = &src[j * col_step..];
                for i in i0..(i0 + TILE).min(rows) {
                    dst[i * cols + j] = column[i];
                }
            }
        }
    }
}

pub fn flatten<'a, T: Elem>(a: impl Operand<'a, T>, ax: i64) -> Result<ArrayD<T>> {
    let a = a.into_cow();
    let r = a.ndim() as i64;
    let ax = if ax < 0 { ax + r } else { ax };
    if ax < 0 || ax > r {
        return shape_err(format!("flatten: axis {ax} out of range"));
    }
    let outer: usize = a.shape()[..ax as usize].iter().product();
    let inner: usize = a.shape()[ax as usize..].iter().product();
    reshaped(a, &[outer, inner])
}

pub fn squeeze<'a, T: Elem>(a: impl Operand<'a, T>, which: Option<&[i64]>) -> Result<ArrayD<T>> {
    let a = a.into_cow();
    let drop: Vec<usize> = match which {
        Some(list) => axes(list, a.ndim())?,
        None => (0..a.ndim()).filter(|&i| a.shape()[i] == 1).collect(),
    };
    if drop.iter().any(|&i| a.shape()[i] != 1) {
        return shape_err(format!("squeeze: axes {drop:?} of shape {:?} are not all 1", a.shape()));
    }
    let dims: Vec<usize> =
        a.shape().iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, &d)| d).collect();
    reshaped(a, &dims)
}

pub fn unsqueeze<'a, T: Elem>(a: impl Operand<'a, T>, which: &[i64]) -> Result<ArrayD<T>> {
    let a = a.into_cow();
    let rank = a.ndim() + which.len();
    let mut ins = axes(which, rank)?;
    ins.sort_unstable();
    let mut dims = a.shape().to_vec();
    for &i in &ins {
        dims.insert(i, 1);
    }
    reshaped(a, &dims)
}

pub fn concat<T: Elem>(inputs: &[&ArrayD<T>], ax: i64) -> Result<ArrayD<T>> {
    let rank = inputs.first().map_or(0, |a| a.ndim());
    let ax = axis(ax, rank)?;
    let views: Vec<ArrayViewD<T>> = inputs.iter().map(|a| a.view()).collect();
    ndarray::concatenate(Axis(ax), &views).map_err(|e| Error::Shape(format!("concat: {e}")))
}

/// ONNX `Split` into explicit sizes, or `count` equal parts (the last one smaller).
pub fn split<T: Elem>(a: &ArrayD<T>, ax: i64, sizes: Option<&[i64]>, count: usize) -> Result<Vec<ArrayD<T>>> {
    let ax = axis(ax, a.ndim())?;
    let dim = a.shape()[ax];
    let sizes: Vec<usize> = match sizes {
        Some(s) => s.iter().map(|&x| x.max(0) as usize).collect(),
        None => {
            let part = dim.div_ceil(count.max(1));
            (0..count).map(|i| part.min(dim.saturating_sub(i * part))).collect()
        }
    };
    if sizes.iter().copied().sum::<usize>() != dim {
        return shape_err(format!("split: sizes {sizes:?} do not add up to {dim}"));
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            let part = a.slice_axis(Axis(ax), Slice::from(start..start + s)).to_owned();
            start += s;
            part
        })
        .collect())
}

/// One axis of ONNX `Slice` as an ndarray slice (numpy clamping rules, negative steps).
fn slice_spec(dim: usize, start: i64, end: i64, step: i64) -> Result<Slice> {
    if step == 0 {
        return shape_err("slice: step 0");
    }
    let d = dim as i128;
    let norm = |x: i64| if x < 0 { x as i128 + d } else { x as i128 };
    let (s, e) = (norm(start), norm(end));
    if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        if e <= s {
            return Ok(Slice::new(0, Some(0), 1));
        }
        return Ok(Slice::new(s as isize, Some(e as isize), step as isize));
    }
    let (s, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
    if s <= e {
        return Ok(Slice::new(0, Some(0), 1));
    }
    let k = -(step as i128);
    let n = (s - e + k - 1) / k;
    let last = s - (n - 1) * k;
    Ok(Slice::new(last as isize, Some((s + 1) as isize), step as isize))
}

pub fn slice<T: Elem>(
    a: &ArrayD<T>,
    starts: &[i64],
    ends: &[i64],
    which: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<ArrayD<T>> {
    let all: Vec<i64> = (0..starts.len() as i64).collect();
    let which = axes(which.unwrap_or(&all), a.ndim())?;
    let mut view = a.view();
    for (i, &ax) in which.iter().enumerate() {
        let step = steps.map_or(1, |s| s.get(i).copied().unwrap_or(1));
        let (Some(&s), Some(&e)) = (starts.get(i), ends.get(i)) else {
            return shape_err("slice: starts and ends differ in length");
        };
        let spec = slice_spec(a.shape()[ax], s, e, step)?;
        view.slice_axis_inplace(Axis(ax), spec);
    }
    Ok(view.as_standard_layout().into_owned())
}

fn index(i: i64, dim: usize) -> Result<usize> {
    let j = if i < 0 { i + dim as i64 } else { i };
    if j < 0 || j >= dim as i64 {
        return shape_err(format!("index {i} out of range for axis of size {dim}"));
    }
    Ok(j as usize)
}

pub fn gather<T: Elem, I: Elem>(a: &ArrayD<T>, indices: &ArrayD<I>, ax: i64) -> Result<ArrayD<T>> {
    let ax = axis(ax, a.ndim())?;
    let dim = a.shape()[ax];
    let mut dims = a.shape()[..ax].to_vec();
    dims.extend_from_slice(indices.shape());
    dims.extend_from_slice(&a.shape()[ax + 1..]);
    if let (0, Some(src), Some(ids)) = (ax, a.as_slice(), indices.as_slice()) {
        // Rows of a contiguous table (an embedding): one slice copy per index.
        let row: usize = a.shape()[1..].iter().product();
        let mut out = Vec::with_capacity(ids.len() * row);
        for v in ids {
            let i = index(v.to_i64(), dim)?;
            out.extend_from_slice(&src[i * row..(i + 1) * row]);
        }
        return ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| Error::Shape(e.to_string()));
    }
    let idx: Vec<usize> = indices.iter().map(|v| index(v.to_i64(), dim)).collect::<Result<_>>()?;
    if let Some(src) = a.as_slice() {
        // Contiguous (an embedding table): one slice copy per picked row.
        let inner: usize = a.shape()[ax + 1..].iter().product();
        let mut out = Vec::with_capacity(dims.iter().product());
        if inner > 0 && dim > 0 {
            for block in src.chunks_exact(dim * inner) {
                for &i in &idx {
                    out.extend_from_slice(&block[i * inner..(i + 1) * inner]);
                }
            }
        }
        if let Ok(arr) = ArrayD::from_shape_vec(IxDyn(&dims), out) {
            return Ok(arr);
        }
    }
    let picked = a.select(Axis(ax), &idx);
    with_shape(picked.view(), &dims)
}

pub fn gather_elements<T: Elem, I: Elem>(a: &ArrayD<T>, indices: &ArrayD<I>, ax: i64) -> Result<ArrayD<T>> {
    let ax = axis(ax, a.ndim())?;
    if indices.ndim() != a.ndim() {
        return shape_err("gather_elements: rank mismatch");
    }
    let dim = a.shape()[ax];
    let idx: Vec<usize> = indices.iter().map(|v| index(v.to_i64(), dim)).collect::<Result<_>>()?;
    let mut it = idx.into_iter();
    let mut out = Vec::with_capacity(indices.len());
    for (pos, _) in indices.indexed_iter() {
        let mut p = pos.clone();
        p[ax] = it.next().unwrap_or(0);
        match a.get(p) {
            Some(v) => out.push(*v),
            None => return shape_err("gather_elements: index out of range"),
        }
    }
    ArrayD::from_shape_vec(indices.raw_dim(), out).map_err(|e| Error::Shape(e.to_string()))
}

/// Offsets into the standard-layout `data` picked by the index tuples in the last axis of `indices`.
fn nd_offsets<I: Elem>(dshape: &[usize], indices: &ArrayD<I>, batch: usize) -> Result<(Vec<usize>, usize)> {
    let k = *indices.shape().last().unwrap_or(&0);
    if batch + k > dshape.len() {
        return shape_err("gather_nd/scatter_nd: index tuple longer than data rank");
    }
    let slice_len: usize = dshape[batch + k..].iter().product();
    let per_batch: usize = dshape[batch..].iter().product();
    let tuples = indices.len() / k.max(1);
    let batch_count: usize = dshape[..batch].iter().product();
    let per_batch_tuples = tuples / batch_count.max(1);
    let flat: Vec<i64> = indices.iter().map(|v| v.to_i64()).collect();
    let mut offsets = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let mut off = (t / per_batch_tuples.max(1)) * per_batch;
        let mut stride = per_batch;
        for j in 0..k {
            stride /= dshape[batch + j];
            off += index(flat[t * k + j], dshape[batch + j])? * stride;
        }
        offsets.push(off);
    }
    Ok((offsets, slice_len))
}

pub fn gather_nd<T: Elem, I: Elem>(a: &ArrayD<T>, indices: &ArrayD<I>, batch_dims: usize) -> Result<ArrayD<T>> {
    let data: Vec<T> = a.iter().copied().collect();
    let (offsets, len) = nd_offsets(a.shape(), indices, batch_dims)?;
    let out: Vec<T> = offsets.iter().flat_map(|&o| data[o..o + len].iter().copied()).collect();
    let k = *indices.shape().last().unwrap_or(&0);
    let mut dims = indices.shape()[..indices.ndim().saturating_sub(1)].to_vec();
    dims.extend_from_slice(&a.shape()[batch_dims + k..]);
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| Error::Shape(e.to_string()))
}

fn reduce_into<T: Num>(slot: &mut T, v: T, reduction: &str) {
    *slot = match reduction {
        "add" => slot.add(v),
        "mul" => slot.mul(v),
        "max" => Num::maximum(*slot, v),
        "min" => Num::minimum(*slot, v),
        _ => v,
    };
}

pub fn scatter_nd<T: Num, I: Elem>(
    a: &ArrayD<T>,
    indices: &ArrayD<I>,
    updates: &ArrayD<T>,
    reduction: &str,
) -> Result<ArrayD<T>> {
    let mut data: Vec<T> = a.iter().copied().collect();
    let (offsets, len) = nd_offsets(a.shape(), indices, 0)?;
    let upd: Vec<T> = updates.iter().copied().collect();
    if upd.len() != offsets.len() * len {
        return shape_err("scatter_nd: updates shape does not match indices");
    }
    for (t, &o) in offsets.iter().enumerate() {
        for j in 0..len {
            reduce_into(&mut data[o + j], upd[t * len + j], reduction);
        }
    }
    ArrayD::from_shape_vec(a.raw_dim(), data).map_err(|e| Error::Shape(e.to_string()))
}

pub fn scatter_elements<T: Num, I: Elem>(
    a: &ArrayD<T>,
    indices: &ArrayD<I>,
    updates: &ArrayD<T>,
    ax: i64,
    reduction: &str,
) -> Result<ArrayD<T>> {
    let ax = axis(ax, a.ndim())?;
    let mut out = a.clone();
    let dim = a.shape()[ax];
    for ((pos, i), u) in indices.indexed_iter().zip(updates.iter()) {
        let mut p = pos.clone();
        p[ax] = index(i.to_i64(), dim)?;
        match out.get_mut(p) {
            Some(slot) => reduce_into(slot, *u, reduction),
            None => return shape_err("scatter_elements: index out of range"),
        }
    }
    Ok(out)
}

pub fn expand<T: Elem>(a: &ArrayD<T>, shape: &[i64]) -> Result<ArrayD<T>> {
    let want: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    let out = broadcast_shape(a.shape(), &want)?;
    Ok(broadcast_to(a, &out)?.to_owned())
}

/// Builds an output whose coordinate on each axis maps to a source coordinate (None: `fill`).
fn remap<T: Elem>(a: &ArrayD<T>, maps: &[Vec<Option<usize>>], fill: T) -> ArrayD<T> {
    let dims: Vec<usize> = maps.iter().map(Vec::len).collect();
    let mut src = vec![0usize; maps.len()];
    ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        for (d, m) in maps.iter().enumerate() {
            match m[ix[d]] {
                Some(s) => src[d] = s,
                None => return fill,
            }
        }
        a[IxDyn(&src)]
    })
}

pub fn tile<T: Elem>(a: &ArrayD<T>, repeats: &[i64]) -> Result<ArrayD<T>> {
    if repeats.len() != a.ndim() {
        return shape_err("tile: repeats length differs from rank");
    }
    let maps: Vec<Vec<Option<usize>>> = a
        .shape()
        .iter()
        .zip(repeats)
        .map(|(&d, &r)| (0..d * r.max(0) as usize).map(|j| Some(j % d)).collect())
        .collect();
    Ok(remap(a, &maps, T::default()))
}

/// ONNX `Pad` (constant, reflect, edge, wrap); negative pads crop.
pub fn pad<T: Elem>(a: &ArrayD<T>, pads: &[i64], value: T, mode: &str, which: Option<&[i64]>) -> Result<ArrayD<T>> {
    let rank = a.ndim();
    let all: Vec<i64> = (0..rank as i64).collect();
    let which = axes(which.unwrap_or(&all), rank)?;
    if pads.len() != 2 * which.len() {
        return shape_err(format!("pad: {} pads for {} axes", pads.len(), which.len()));
    }
    let mut begin = vec![0i64; rank];
    let mut end = vec![0i64; rank];
    for (i, &ax) in which.iter().enumerate() {
        begin[ax] = pads[i];
        end[ax] = pads[i + which.len()];
    }
    let mut maps = Vec::with_capacity(rank);
    for ax in 0..rank {
        let d = a.shape()[ax] as i64;
        let n = d + begin[ax] + end[ax];
        if n < 0 {
            return shape_err("pad: negative output size");
        }
        let map: Vec<Option<usize>> = (0..n)
            .map(|o| {
                let s = o - begin[ax];
                if (0..d).contains(&s) {
                    return Some(s as usize);
                }
                if d == 0 {
                    return None;
                }
                match mode {
                    "edge" => Some(s.clamp(0, d - 1) as usize),
                    "wrap" => Some(s.rem_euclid(d) as usize),
                    "reflect" if d > 1 => {
                        let p = 2 * (d - 1);
                        let m = s.rem_euclid(p);
                        Some(if m < d { m } else { p - m } as usize)
                    }
                    "reflect" => Some(0),
                    _ => None,
                }
            })
            .collect();
        maps.push(map);
    }
    Ok(remap(a, &maps, value))
}

pub fn shape<T>(a: &ArrayD<T>, start: i64, end: Option<i64>) -> Result<ArrayD<i64>> {
    let r = a.ndim() as i64;
    let clampi = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let (s, e) = (clampi(start), clampi(end.unwrap_or(r)));
    let dims: Vec<i64> = a.shape()[s..e.max(s)].iter().map(|&d| d as i64).collect();
    ArrayD::from_shape_vec(IxDyn(&[dims.len()]), dims).map_err(|e| Error::Shape(e.to_string()))
}

pub fn size<T>(a: &ArrayD<T>) -> Result<ArrayD<i64>> {
    Ok(ArrayD::from_elem(IxDyn(&[]), a.len() as i64))
}

pub fn constant_of_shape<T: Elem>(shape: &[i64], value: T) -> Result<ArrayD<T>> {
    let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
    Ok(ArrayD::from_elem(IxDyn(&dims), value))
}

pub fn range<T: Num>(start: T, limit: T, delta: T) -> Result<ArrayD<T>> {
    let is_float = T::DESCR.contains('f');
    let (s, l, d) = (start.to_f64(), limit.to_f64(), delta.to_f64());
    if d == 0.0 {
        return shape_err("range: delta is 0");
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    let values: Vec<T> = (0..n)
        .map(|i| {
            if is_float {
                T::from_f64(s + i as f64 * d)
            } else {
                T::from_i64(start.to_i64() + i as i64 * delta.to_i64())
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[n]), values).map_err(|e| Error::Shape(e.to_string()))
}

pub fn nonzero<T: Elem>(a: &ArrayD<T>) -> Result<ArrayD<i64>> {
    let hits: Vec<IxDyn> = a.indexed_iter().filter(|(_, v)| v.is_true()).map(|(i, _)| i).collect();
    let rank = a.ndim();
    let out = ArrayD::from_shape_fn(IxDyn(&[rank, hits.len()]), |ix| hits[ix[1]][ix[0]] as i64);
    Ok(out)
}

pub fn depth_to_space<T: Elem>(a: &ArrayD<T>, bs: usize, crd: bool) -> Result<ArrayD<T>> {
    let s = a.shape().to_vec();
    if s.len() != 4 || !s[1].is_multiple_of(bs * bs) {
        return shape_err("depth_to_space: bad input shape");
    }
    let (b, c, h, w) = (s[0], s[1] / (bs * bs), s[2], s[3]);
    let (tmp, perm) = if crd {
        (vec![b, c, bs, bs, h, w], [0, 1, 4, 2, 5, 3])
    } else {
        (vec![b, bs, bs, c, h, w], [0, 3, 4, 1, 5, 2])
    };
    let t = transpose(&reshape_usize(a, &tmp)?, &perm)?;
    reshape_usize(&t, &[b, c, h * bs, w * bs])
}

pub fn space_to_depth<T: Elem>(a: &ArrayD<T>, bs: usize) -> Result<ArrayD<T>> {
    let s = a.shape().to_vec();
    if s.len() != 4 || !s[2].is_multiple_of(bs) || !s[3].is_multiple_of(bs) {
        return shape_err("space_to_depth: bad input shape");
    }
    let (b, c, h, w) = (s[0], s[1], s[2] / bs, s[3] / bs);
    let t = transpose(&reshape_usize(a, &[b, c, h, bs, w, bs])?, &[0, 3, 5, 1, 2, 4])?;
    reshape_usize(&t, &[b, c * bs * bs, h, w])
}

fn reshape_usize<T: Elem>(a: &ArrayD<T>, dims: &[usize]) -> Result<ArrayD<T>> {
    with_shape(a.view(), dims)
}

pub fn one_hot<I: Elem, T: Elem>(indices: &ArrayD<I>, depth: i64, values: &ArrayD<T>, ax: i64) -> Result<ArrayD<T>> {
    let vals: Vec<T> = values.iter().copied().collect();
    if vals.len() != 2 || depth < 0 {
        return shape_err("one_hot: values must have two elements and depth be >= 0");
    }
    let rank = indices.ndim() + 1;
    let ax = axis(ax, rank)?;
    let mut dims = indices.shape().to_vec();
    dims.insert(ax, depth as usize);
    let mut pos = vec![0usize; indices.ndim()];
    Ok(ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let mut k = 0;
        for d in 0..rank {
            if d == ax {
                continue;
            }
            pos[k] = ix[d];
            k += 1;
        }
        let mut v = indices[IxDyn(&pos)].to_f64() as i64;
        if v < 0 {
            v += depth;
        }
        if v == ix[ax] as i64 { vals[1] } else { vals[0] }
    }))
}

pub fn trilu<T: Elem>(a: &ArrayD<T>, k: i64, upper: bool) -> Result<ArrayD<T>> {
    let r = a.ndim();
    if r < 2 {
        return shape_err("trilu: rank below 2");
    }
    Ok(ArrayD::from_shape_fn(a.raw_dim(), |ix| {
        let (i, j) = (ix[r - 2] as i64, ix[r - 1] as i64);
        let keep = if upper { j - i >= k } else { j - i <= k };
        if keep { a[&ix] } else { T::default() }
    }))
}

/// The values of a numeric tensor as f64, for scale-like operands computed at run time.
pub fn to_f64_vec<T: Elem>(a: &ArrayD<T>) -> Vec<f64> {
    a.iter().map(|v| v.to_f64()).collect()
}

/// Stacks equally shaped tensors along a new first axis (Loop and Scan outputs); none gives `[0]`.
pub fn stack_parts<T: Elem>(parts: &[ArrayD<T>]) -> Result<ArrayD<T>> {
    if parts.is_empty() {
        return Ok(ArrayD::from_elem(IxDyn(&[0]), T::default()));
    }
    let views: Vec<ArrayViewD<T>> = parts.iter().map(|p| p.view()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| Error::Shape(format!("loop outputs differ in shape: {e}")))
}

/// A 0-d tensor holding `v` (a Loop's iteration number or condition).
pub fn scalar_tensor<T: Elem>(v: T) -> ArrayD<T> {
    ArrayD::from_elem(IxDyn(&[]), v)
}

/// The slice at position `i` of axis `ax` (one step of a Scan input).
pub fn index_axis<T: Elem>(a: &ArrayD<T>, ax: i64, i: usize) -> Result<ArrayD<T>> {
    let ax = axis(ax, a.ndim())?;
    if i >= a.shape()[ax] {
        return shape_err(format!("scan step {i} beyond axis of size {}", a.shape()[ax]));
    }
    Ok(a.index_axis(Axis(ax), i).to_owned())
}

/// Scan outputs: the parts stacked along `ax` of the result, in reverse order when `reverse`.
pub fn stack_axis<T: Elem>(parts: &[ArrayD<T>], ax: i64, reverse: bool) -> Result<ArrayD<T>> {
    let mut views: Vec<ArrayViewD<T>> = parts.iter().map(|p| p.view()).collect();
    if reverse {
        views.reverse();
    }
    if views.is_empty() {
        return Ok(ArrayD::from_elem(IxDyn(&[0]), T::default()));
    }
    let ax = axis(ax, views[0].ndim() + 1)?;
    ndarray::stack(Axis(ax), &views).map_err(|e| Error::Shape(format!("scan outputs differ in shape: {e}")))
}

/// ONNX `TensorScatter`: writes `update` into a copy of the cache along `ax`, from each batch's
/// write index (wrapping around with `circular`).
pub fn tensor_scatter<T: Elem>(
    cache: &ArrayD<T>,
    update: &ArrayD<T>,
    write_indices: Option<&ArrayD<i64>>,
    ax: i64,
    circular: bool,
) -> Result<ArrayD<T>> {
    let ax = axis(ax, cache.ndim())?;
    let ok = cache.ndim() == update.ndim()
        && (0..cache.ndim()).all(|d| if d == ax { update.shape()[d] <= cache.shape()[d] } else { update.shape()[d] == cache.shape()[d] });
    if !ok || ax == 0 {
        return shape_err(format!("tensor_scatter: update {:?} does not fit cache {:?}", update.shape(), cache.shape()));
    }
    let max_len = cache.shape()[ax] as i64;
    let mut out = cache.clone();
    for (ix, &v) in update.indexed_iter() {
        let start = write_indices.map_or(0, |w| w.get(IxDyn(&[ix[0]])).copied().unwrap_or(0));
        let mut pos = start + ix[ax] as i64;
        if circular {
            pos = pos.rem_euclid(max_len.max(1));
        }
        let mut dst = ix.clone();
        if pos < 0 || pos >= max_len {
            return shape_err(format!("tensor_scatter: write position {pos} outside the cache"));
        }
        dst[ax] = pos as usize;
        out[&dst] = v;
    }
    Ok(out)
}
