//! Resize (nearest, linear, cubic), applied one axis at a time.

use super::elem::Float;
use super::error::{shape_err, Result};
use ndarray::{ArrayD, IxDyn};

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
