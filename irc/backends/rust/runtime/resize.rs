//! Resize (nearest, linear, cubic), applied one axis at a time.

use super::elem::Float;
use super::error::{shape_err, Result};
use ndarray::{ArrayD, Dimension, IxDyn};

/// Interpolation settings of ONNX `Resize`.
#[derive(Debug, Clone, Copy)]
pub struct ResizeMode<'a> {
    /// `nearest`, `linear` or `cubic`.
    pub mode: &'a str,
    /// ONNX `coordinate_transformation_mode`.
    pub coord: &'a str,
    /// ONNX `nearest_mode`.
    pub nearest: &'a str,
    pub cubic_coeff_a: f64,
    pub exclude_outside: bool,
    pub extrapolation_value: f64,
    /// ONNX `keep_aspect_ratio_policy`: `stretch`, `not_larger` or `not_smaller`.
    pub policy: &'a str,
}

#[allow(clippy::too_many_arguments)]
fn source_coord(m: &ResizeMode, o: usize, input: usize, output: usize, scale: f64, roi: (f64, f64)) -> f64 {
    let o = o as f64;
    match m.coord {
        "align_corners" => {
            // The reference uses the unrounded output length `scale * input`.
            let length = scale * input as f64;
            if length <= 1.0 { 0.0 } else { o * (input as f64 - 1.0) / (length - 1.0) }
        }
        "asymmetric" => o / scale,
        "pytorch_half_pixel" => {
            if output > 1 { (o + 0.5) / scale - 0.5 } else { 0.0 }
        }
        "half_pixel_symmetric" => {
            let adjustment = output as f64 / (scale * input as f64);
            let offset = input as f64 / 2.0 * (1.0 - adjustment);
            offset + (o + 0.5) / scale - 0.5
        }
        "tf_crop_and_resize" => {
            let (start, end) = roi;
            let span = input as f64 - 1.0;
            if output > 1 {
                start * span + o * (end - start) * span / (output as f64 - 1.0)
            } else {
                0.5 * (start + end) * span
            }
        }
        _ => (o + 0.5) / scale - 0.5,
    }
}

fn nearest_index(nearest: &str, x: f64, input: usize) -> usize {
    let i = match nearest {
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        "round_prefer_ceil" => (x + 0.5).floor(),
        _ => {
            if x.fract() == 0.5 { x.floor() } else { x.round() }
        }
    };
    i.clamp(0.0, input as f64 - 1.0) as usize
}

fn cubic_weights(t: f64, a: f64) -> [f64; 4] {
    let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Input taps (index, weight) of one output coordinate; empty means extrapolation.
fn taps(m: &ResizeMode, x: f64, input: usize) -> Vec<(usize, f64)> {
    let last = input as f64 - 1.0;
    if m.coord == "tf_crop_and_resize" && (x < 0.0 || x > last) {
        return vec![];
    }
    match m.mode {
        "nearest" => vec![(nearest_index(m.nearest, x, input), 1.0)],
        "cubic" => {
            let base = x.floor();
            let w = cubic_weights(x - base, m.cubic_coeff_a);
            let mut out: Vec<(usize, f64)> = Vec::with_capacity(4);
            for (k, &wk) in w.iter().enumerate() {
                let i = base + k as f64 - 1.0;
                if m.exclude_outside && (i < 0.0 || i > last) {
                    continue;
                }
                out.push((i.clamp(0.0, last) as usize, wk));
            }
            if m.exclude_outside {
                let total: f64 = out.iter().map(|t| t.1).sum();
                out.iter_mut().for_each(|t| t.1 /= total);
            }
            out
        }
        _ => {
            let x = x.clamp(0.0, last);
            let i0 = x.floor() as usize;
            let w = x - i0 as f64;
            vec![(i0, 1.0 - w), ((i0 + 1).min(input - 1), w)]
        }
    }
}

fn resize_axis<T: Float>(a: &ArrayD<T>, ax: usize, output: usize, scale: f64, roi: (f64, f64), m: &ResizeMode) -> ArrayD<T> {
    let input = a.shape()[ax];
    let mut dims = a.shape().to_vec();
    dims[ax] = output;
    let plan: Vec<Vec<(usize, f64)>> =
        (0..output).map(|o| taps(m, source_coord(m, o, input, output, scale, roi), input)).collect();
    ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let tap = &plan[ix[ax]];
        if tap.is_empty() {
            return T::from_f64(m.extrapolation_value);
        }
        let mut src = ix.clone();
        let mut acc = 0.0;
        for &(i, w) in tap {
            src[ax] = i;
            acc += a[&src].to_f64() * w;
        }
        T::from_f64(acc)
    })
}

/// ONNX `Resize` with `scales` or `sizes` (one per axis of `axes`, or of every axis).
pub fn resize<T: Float>(
    x: &ArrayD<T>,
    roi: Option<&[f64]>,
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
    axes: Option<&[i64]>,
    m: &ResizeMode,
) -> Result<ArrayD<T>> {
    let rank = x.ndim();
    let all: Vec<i64> = (0..rank as i64).collect();
    let axes: Vec<usize> = axes.unwrap_or(&all).iter().map(|&a| super::shape::axis(a, rank)).collect::<Result<_>>()?;
    let n = axes.len();
    let sizes = sizes.filter(|s| !s.is_empty());
    let scales = scales.filter(|s| !s.is_empty());
    let mut plan: Vec<(usize, f64)> = Vec::with_capacity(n);
    if let Some(s) = sizes {
        if s.len() != n {
            return shape_err("resize: sizes do not match the axes");
        }
        let ratios: Vec<f64> = axes.iter().zip(s).map(|(&ax, &z)| z as f64 / x.shape()[ax].max(1) as f64).collect();
        let pick = match m.policy {
            "not_larger" => Some(ratios.iter().copied().fold(f64::INFINITY, f64::min)),
            "not_smaller" => Some(ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            _ => None,
        };
        for (k, &ax) in axes.iter().enumerate() {
            match pick {
                Some(r) => plan.push(((x.shape()[ax] as f64 * r).round() as usize, r)),
                None => plan.push((s[k].max(0) as usize, ratios[k])),
            }
        }
    } else if let Some(s) = scales {
        if s.len() != n {
            return shape_err("resize: scales do not match the axes");
        }
        for (k, &ax) in axes.iter().enumerate() {
            plan.push((((x.shape()[ax] as f64) * s[k]).floor() as usize, s[k]));
        }
    } else {
        return shape_err("resize: neither scales nor sizes given");
    }
    let mut out = x.clone();
    for (k, (&ax, &(size, scale))) in axes.iter().zip(&plan).enumerate() {
        let input = x.shape()[ax];
        let r = match roi.filter(|r| !r.is_empty()) {
            Some(r) if r.len() == 2 * n => (r[k], r[k + n]),
            Some(r) if r.len() == 2 * rank => (r[ax], r[ax + rank]),
            _ => (0.0, 1.0),
        };
        if size == input && (scale - 1.0).abs() < 1e-12 && m.coord != "tf_crop_and_resize" {
            continue;
        }
        if input == 0 {
            return shape_err("resize: empty input axis");
        }
        out = resize_axis(&out, ax, size, scale, r, m);
    }
    Ok(out)
}

fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    let (dx, from_low) = if x < lo { (lo - x, true) } else if x > hi { (x - hi, false) } else { return x };
    let n = (dx / range).floor();
    let r = dx - n * range;
    let even = (n as i64) % 2 == 0;
    match (from_low, even) {
        (true, true) | (false, false) => lo + r,
        _ => hi - r,
    }
}

/// Per spatial dim: the (index, weight) taps of one sampling coordinate.
fn grid_taps(mode: &str, x: f64) -> Vec<(i64, f64)> {
    match mode {
        "nearest" => vec![(x as i64, 1.0)],
        "cubic" => {
            let x0 = x.floor();
            let w = cubic_weights(x - x0, -0.75);
            (0..4).map(|k| (x0 as i64 + k - 1, w[k as usize])).collect()
        }
        _ => {
            let x0 = x.floor();
            let t = x - x0;
            vec![(x0 as i64, 1.0 - t), (x0 as i64 + 1, t)]
        }
    }
}

/// ONNX `GridSample` (N-D): samples `x [N, C, D...]` at the normalized points of `grid [N, O..., k]`.
pub fn grid_sample<T: Float>(x: &ArrayD<T>, grid: &ArrayD<T>, mode: &str, padding: &str, align_corners: bool) -> Result<ArrayD<T>> {
    let nd = x.ndim().saturating_sub(2);
    if nd == 0 || grid.ndim() != nd + 2 || grid.shape()[grid.ndim() - 1] != nd || grid.shape()[0] != x.shape()[0] {
        return shape_err(format!("grid_sample: grid {:?} does not match input {:?}", grid.shape(), x.shape()));
    }
    let dims: Vec<usize> = x.shape()[2..].to_vec();
    let (lo, hi): (Vec<f64>, Vec<f64>) = dims
        .iter()
        .map(|&d| if align_corners { (0.0, d as f64 - 1.0) } else { (-0.5, d as f64 - 0.5) })
        .unzip();
    let mut out_dims = vec![x.shape()[0], x.shape()[1]];
    out_dims.extend_from_slice(&grid.shape()[1..grid.ndim() - 1]);
    Ok(ArrayD::from_shape_fn(IxDyn(&out_dims), |ix| {
        let mut g = vec![ix[0]];
        g.extend_from_slice(&ix.slice()[2..]);
        g.push(0);
        let last = g.len() - 1;
        // Grid coordinates are (x, y, z...): the innermost spatial dim first.
        let taps: Vec<Vec<(i64, f64)>> = (0..nd)
            .map(|i| {
                g[last] = nd - 1 - i;
                let n = grid[IxDyn(&g)].to_f64();
                let len = dims[i] as f64;
                let mut c = if align_corners { (n + 1.0) / 2.0 * (len - 1.0) } else { ((n + 1.0) * len - 1.0) / 2.0 };
                if mode == "nearest" {
                    c = if (c - c.trunc()).abs() == 0.5 { 2.0 * (c / 2.0).round() } else { c.round() };
                }
                if c < lo[i] || c > hi[i] {
                    c = match padding {
                        "border" => c.clamp(0.0, len - 1.0),
                        "reflection" => reflect(c, lo[i], hi[i]),
                        _ => c,
                    };
                }
                grid_taps(mode, c)
            })
            .collect();
        let sizes: Vec<usize> = taps.iter().map(Vec::len).collect();
        let mut k = vec![0usize; nd];
        let mut src = vec![ix[0], ix[1]];
        src.extend(std::iter::repeat_n(0, nd));
        let mut acc = 0.0;
        loop {
            let mut w = 1.0;
            let mut inside = true;
            for i in 0..nd {
                let (idx, wt) = taps[i][k[i]];
                w *= wt;
                let d = dims[i] as i64;
                let j = match padding {
                    "border" => idx.clamp(0, d - 1),
                    "reflection" => reflect(idx as f64, lo[i], hi[i]) as i64,
                    _ => idx,
                };
                if j < 0 || j >= d {
                    inside = false;
                } else {
                    src[2 + i] = j as usize;
                }
            }
            if inside && w != 0.0 {
                acc += w * x[IxDyn(&src)].to_f64();
            }
            if !super::conv::next_index(&mut k, &sizes) {
                break;
            }
        }
        T::from_f64(acc)
    }))
}
