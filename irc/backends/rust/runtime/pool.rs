//! Pooling: max (with indices), average, Lp, and their global forms.

use super::conv::{next_index, split_phases, strides_of, valid_range, Window};
use super::elem::{Float, Num};
use super::error::{shape_err, Error, Result};
use ndarray::{ArrayD, IxDyn};

/// Per spatial dim and output coordinate: the valid input coordinates and the padded window size.
struct Taps {
    valid: Vec<Vec<Vec<usize>>>,
    padded: Vec<Vec<usize>>,
    out: Vec<usize>,
}

fn plan(in_sp: &[usize], win: &Window, ceil_mode: bool) -> Result<Taps> {
    let geo = win.resolve(in_sp, win.kernel)?;
    let (mut valid, mut padded, mut out) = (vec![], vec![], vec![]);
    for (d, &input) in in_sp.iter().enumerate() {
        let (k, s, dil) = (win.kernel[d], geo.strides[d], geo.dilations[d]);
        let span = (k - 1) * dil + 1;
        let total = input + geo.begin[d] + geo.end[d];
        if total < span {
            return shape_err(format!("pool window {span} larger than padded input {total}"));
        }
        let mut o = if ceil_mode { (total - span).div_ceil(s) + 1 } else { (total - span) / s + 1 };
        if ceil_mode && (o - 1) * s >= input + geo.begin[d] {
            o -= 1;
        }
        let (mut vd, mut pd) = (Vec::with_capacity(o), Vec::with_capacity(o));
        for j in 0..o {
            let start = (j * s) as isize - geo.begin[d] as isize;
            let taps: Vec<isize> = (0..k).map(|t| start + (t * dil) as isize).collect();
            vd.push(taps.iter().filter(|&&p| p >= 0 && (p as usize) < input).map(|&p| p as usize).collect());
            let hi = (input + geo.end[d]) as isize;
            pd.push(taps.iter().filter(|&&p| p >= -(geo.begin[d] as isize) && p < hi).count());
        }
        valid.push(vd);
        padded.push(pd);
        out.push(o);
    }
    Ok(Taps { valid, padded, out })
}

/// Runs `f(window values with flat input index, padded count)` for each output element.
fn pool<T: Num>(
    x: &ArrayD<T>,
    win: &Window,
    ceil_mode: bool,
    mut f: impl FnMut(&[(usize, T)], usize) -> (T, i64),
) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    if x.ndim() < 3 || win.kernel.len() != x.ndim() - 2 {
        return shape_err(format!("pool: input {:?} does not match kernel {:?}", x.shape(), win.kernel));
    }
    let in_sp = &x.shape()[2..];
    let taps = plan(in_sp, win, ceil_mode)?;
    let planes = x.shape()[0] * x.shape()[1];
    let plane: usize = in_sp.iter().product();
    let in_st = strides_of(in_sp);
    let xs = x.as_standard_layout();
    let src = xs.as_slice().unwrap_or(&[]);
    let p_out: usize = taps.out.iter().product();
    let (mut vals, mut idxs) = (Vec::with_capacity(planes * p_out), Vec::with_capacity(planes * p_out));
    let mut buf: Vec<(usize, T)> = Vec::new();
    for p in 0..planes {
        let mut o = vec![0; in_sp.len()];
        for _ in 0..p_out {
            buf.clear();
            let lists: Vec<&Vec<usize>> = taps.valid.iter().zip(&o).map(|(v, &j)| &v[j]).collect();
            let count: usize = taps.padded.iter().zip(&o).map(|(v, &j)| v[j]).product();
            let dims: Vec<usize> = lists.iter().map(|l| l.len()).collect();
            if dims.iter().all(|&d| d > 0) {
                let mut k = vec![0; dims.len()];
                loop {
                    let off: usize = lists.iter().zip(&k).zip(&in_st).map(|((l, &i), &st)| l[i] * st).sum();
                    buf.push((p * plane + off, src[p * plane + off]));
                    if !next_index(&mut k, &dims) {
                        break;
                    }
                }
            }
            let (v, i) = f(&buf, count);
            vals.push(v);
            idxs.push(i);
            next_index(&mut o, &taps.out);
        }
    }
    let mut dims = x.shape()[..2].to_vec();
    dims.extend_from_slice(&taps.out);
    let err = |e: ndarray::ShapeError| Error::Shape(e.to_string());
    Ok((
        ArrayD::from_shape_vec(IxDyn(&dims), vals).map_err(err)?,
        ArrayD::from_shape_vec(IxDyn(&dims), idxs).map_err(err)?,
    ))
}

/// MaxPool values and flat (row-major) indices of the maxima.
pub fn max_pool_with_indices<T: Num>(x: &ArrayD<T>, win: &Window, ceil_mode: bool) -> Result<(ArrayD<T>, ArrayD<i64>)> {
    pool(x, win, ceil_mode, |w, _| {
        w.iter().fold((T::lowest(), 0), |(bv, bi), &(i, v)| if v > bv || (bi == 0 && bv == T::lowest() && v == bv) { (v, i as i64) } else { (bv, bi) })
    })
}

pub fn max_pool<T: Num>(x: &ArrayD<T>, win: &Window, ceil_mode: bool) -> Result<ArrayD<T>> {
    if x.ndim() >= 3 && win.kernel.len() == x.ndim() - 2 {
        let taps = plan(&x.shape()[2..], win, ceil_mode)?;
        if let Some(y) = max_pool_planes(x, win, &taps) {
            return Ok(y);
        }
    }
    Ok(max_pool_with_indices(x, win, ceil_mode)?.0)
}

/// MaxPool of a contiguous 1-D or 2-D input, one kernel tap at a time over whole output
/// rows (no per-output tap lists, independent maxima the CPU can overlap). Same result as
/// the generic path: the largest value that is not NaN (`T::lowest()` for a window of NaN
/// only). `None`: not applicable.
fn max_pool_planes<T: Num>(x: &ArrayD<T>, win: &Window, taps: &Taps) -> Option<ArrayD<T>> {
    let in_sp = &x.shape()[2..];
    let geo = win.resolve(in_sp, win.kernel).ok()?;
    // A 1-D pool is a 2-D pool of height 1.
    let (h, w, kh, kw, oh, ow, sh, sw, dh, dw, ph, pw) = match in_sp.len() {
        1 => (1, in_sp[0], 1, win.kernel[0], 1, taps.out[0], 1, geo.strides[0], 1, geo.dilations[0], 0, geo.begin[0]),
        2 => (in_sp[0], in_sp[1], win.kernel[0], win.kernel[1], taps.out[0], taps.out[1],
              geo.strides[0], geo.strides[1], geo.dilations[0], geo.dilations[1], geo.begin[0], geo.begin[1]),
        _ => return None,
    };
    let src = x.as_slice()?;
    let plane = h * w;
    if plane == 0 || ow == 0 {
        return None;
    }
    let mut out = vec![T::lowest(); src.len() / plane * oh * ow];
    // Strided windows read a copy of each input row split into its `sw` phases (columns
    // p, p + sw, ...), so each tap is a contiguous run the compiler vectorizes (a `step_by`
    // over the row compiled to a scalar loop: mnist's 2x2 pool took 43 µs, now ~3).
    let plen = w.div_ceil(sw);
    // In `par`'s units (~8.75 ps of one core each): measured 422 µs for resnet18's 3x3/s2
    // pool (64x112x112, 7.2 M taps) and 5.8 µs for mnist_cnn's 2x2 (64x24x24): ~24 per tap.
    let work = src.len() / plane * oh * ow * kh * kw * 24;
    // Per kernel column: the valid output columns and where their run starts in the
    // (phase-split) row; computed once, not per row (two divisions each: half the time).
    let runs: Vec<(usize, usize, usize)> = (0..kw)
        .map(|kx| {
            let (x0, x1) = valid_range(ow, w, sw, kx * dw, pw);
            let ix0 = (x0 * sw + kx * dw).saturating_sub(pw);
            (x0, x1, if sw == 1 { ix0 } else { ix0 % sw * plen + ix0 / sw })
        })
        .filter(|&(x0, x1, _)| x0 < x1)
        .collect();
    // From 1/16 of the usual threshold while the pool polls (mnist_cnn's 2x2 pool at
    // batch 1: 0.9 M units, 6 µs; each thread half of the 64 planes).
    super::par::for_each_chunk_mut_polling(&mut out, oh * ow, work, super::par::MIN_PARALLEL_WORK / 16, |p, dst| {
        let chan = &src[p * plane..(p + 1) * plane];
        if (kh, kw, sh, sw, dh, dw, ph, pw) == (2, 2, 2, 2, 1, 1, 0, 0) && 2 * oh <= h && 2 * ow <= w {
            // The common 2x2 / stride 2 pool: one pass per output row over its two input
            // rows (short rows made the per-tap loops mostly loop overhead).
            let sel = |o: T, v: T| if v > o { v } else { o };
            for (oy, row) in dst.chunks_exact_mut(ow).enumerate() {
                let (r0, r1) = (&chan[2 * oy * w..][..2 * ow], &chan[(2 * oy + 1) * w..][..2 * ow]);
                for ((o, a), b) in row.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    *o = sel(sel(sel(sel(T::lowest(), a[0]), a[1]), b[0]), b[1]);
                }
            }
            return;
        }
        let mut phases = vec![T::lowest(); if sw > 1 { sw * plen } else { 0 }];
        // The window's rows are reduced first, into one row as wide as the input, and the
        // kernel columns then run once over that row: kh·w + kw·ow selects and one phase
        // split per output row instead of kh·kw·ow selects and kh splits (resnet18's 3x3/s2
        // pool on 64x112x112: 0.41 -> 0.29 ms per call). Same maximum: every tap is still visited.
        let mut vrow = vec![T::lowest(); w];
        for (oy, row) in dst.chunks_exact_mut(ow).enumerate() {
            vrow.fill(T::lowest());
            for ky in 0..kh {
                let iy = (oy * sh + ky * dh) as isize - ph as isize;
                if iy < 0 || iy as usize >= h {
                    continue;
                }
                let line = &chan[iy as usize * w..(iy as usize + 1) * w];
                // A select, not a branch: random data would mispredict it half the time.
                for (m, &v) in vrow.iter_mut().zip(line) {
                    *m = if v > *m { v } else { *m };
                }
            }
            let src_row: &[T] = if sw == 1 {
                &vrow
            } else {
                split_phases(&vrow, sw, &mut phases);
                &phases
            };
            for &(x0, x1, start) in &runs {
                for (o, &v) in row[x0..x1].iter_mut().zip(&src_row[start..start + (x1 - x0)]) {
                    *o = if v > *o { v } else { *o };
                }
            }
        }
    });
    let mut dims = x.shape()[..2].to_vec();
    dims.extend_from_slice(&taps.out);
    ArrayD::from_shape_vec(IxDyn(&dims), out).ok()
}

pub fn average_pool<T: Float>(x: &ArrayD<T>, win: &Window, ceil_mode: bool, count_include_pad: bool) -> Result<ArrayD<T>> {
    Ok(pool(x, win, ceil_mode, |w, padded| {
        let sum: f64 = w.iter().map(|(_, v)| v.to_f64()).sum();
        let n = if count_include_pad { padded } else { w.len() };
        (T::from_f64(if n == 0 { 0.0 } else { sum / n as f64 }), 0)
    })?
    .0)
}

pub fn lp_pool<T: Float>(x: &ArrayD<T>, win: &Window, ceil_mode: bool, p: i64) -> Result<ArrayD<T>> {
    Ok(pool(x, win, ceil_mode, |w, _| {
        let sum: f64 = w.iter().map(|(_, v)| v.to_f64().abs().powi(p as i32)).sum();
        (T::from_f64(sum.powf(1.0 / p as f64)), 0)
    })?
    .0)
}

fn spatial_axes(rank: usize) -> Vec<i64> {
    (2..rank as i64).collect()
}

pub fn global_average_pool<T: Num>(x: &ArrayD<T>) -> Result<ArrayD<T>> {
    super::reduce::reduce(x, "mean", Some(&spatial_axes(x.ndim())), true, false)
}

pub fn global_max_pool<T: Num>(x: &ArrayD<T>) -> Result<ArrayD<T>> {
    super::reduce::reduce(x, "max", Some(&spatial_axes(x.ndim())), true, false)
}

pub fn global_lp_pool<T: Float>(x: &ArrayD<T>, p: i64) -> Result<ArrayD<T>> {
    let powered = super::elementwise::unary(x, |v| T::from_f64(v.to_f64().abs().powi(p as i32)))?;
    let sum = super::reduce::reduce(&powered, "sum", Some(&spatial_axes(x.ndim())), true, false)?;
    super::elementwise::unary(&sum, |v| T::from_f64(v.to_f64().powf(1.0 / p as f64)))
}

/// MaxPool indices in column-major order (`storage_order = 1`): spatial dims reversed within a plane.
pub fn to_column_major_indices(indices: &ArrayD<i64>, input_shape: &[usize]) -> ArrayD<i64> {
    let spatial = &input_shape[2.min(input_shape.len())..];
    let plane: usize = spatial.iter().product();
    let row_strides = super::conv::strides_of(spatial);
    let reversed: Vec<usize> = spatial.iter().rev().copied().collect();
    let col_strides: Vec<usize> = super::conv::strides_of(&reversed).into_iter().rev().collect();
    indices.mapv(|i| {
        let (base, mut rest) = ((i as usize / plane.max(1)) * plane, i as usize % plane.max(1));
        let mut off = 0;
        for (rs, cs) in row_strides.iter().zip(&col_strides) {
            off += rest / rs * cs;
            rest %= rs;
        }
        (base + off) as i64
    })
}

/// ONNX `MaxUnpool`: scatters the pooled values to their indices in a zero tensor.
pub fn max_unpool<T: Num>(x: &ArrayD<T>, indices: &ArrayD<i64>, win: &Window, output_shape: Option<&[i64]>) -> Result<ArrayD<T>> {
    if x.ndim() < 3 || indices.shape() != x.shape() {
        return shape_err("max_unpool: values and indices must have the same shape [N, C, D...]");
    }
    // Indices address the inferred unpooled shape; an explicit output_shape pads it at the end.
    let in_sp = &x.shape()[2..];
    let geo = win.resolve(in_sp, win.kernel)?;
    let mut dims = x.shape()[..2].to_vec();
    for (k, &i) in in_sp.iter().enumerate() {
        dims.push(((i - 1) * geo.strides[k] + win.kernel[k]).saturating_sub(geo.begin[k] + geo.end[k]));
    }
    let total: usize = dims.iter().product();
    let mut out = vec![T::zero(); total];
    for (&v, &i) in x.iter().zip(indices.iter()) {
        match out.get_mut(i.max(0) as usize) {
            Some(slot) if i >= 0 => *slot = v,
            _ => return shape_err(format!("max_unpool: index {i} outside the output")),
        }
    }
    let y = ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| Error::Shape(e.to_string()))?;
    match output_shape {
        Some(shape) if shape.len() == dims.len() => {
            let mut pads = vec![0i64; dims.len()];
            pads.extend(shape.iter().zip(&dims).map(|(&s, &d)| s - d as i64));
            super::shape::pad(&y, &pads, T::zero(), "constant", None)
        }
        _ => Ok(y),
    }
}
