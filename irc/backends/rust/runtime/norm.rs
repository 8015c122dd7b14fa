//! Normalization layers.

use super::elem::{as_f32, as_f32_mut, is_f32, Float, Operand};
use super::elementwise::{broadcast_to, unary};
use super::error::{shape_err, Result};
use super::shape::{axis, with_shape};
use super::vmath::{self, simd};
use ndarray::{ArrayD, Axis, IxDyn, Zip};
use std::borrow::Cow;

/// A per-channel parameter `[C]` as a view broadcastable against `[N, C, ...]`.
fn per_channel<T: Float>(p: &ArrayD<T>, rank: usize) -> Result<ArrayD<T>> {
    let mut dims = vec![1; rank.max(2)];
    dims[1] = p.len();
    with_shape(p.view(), &dims)
}

/// BatchNormalization in inference mode.
pub fn batch_norm<T: Float>(
    x: &ArrayD<T>,
    scale: &ArrayD<T>,
    bias: &ArrayD<T>,
    mean: &ArrayD<T>,
    var: &ArrayD<T>,
    epsilon: f64,
) -> Result<ArrayD<T>> {
    let c = if x.ndim() > 1 { x.shape()[1] } else { 1 };
    if [scale, bias, mean, var].iter().any(|p| p.len() != c) {
        return shape_err(format!("batch_norm: parameters do not have {c} channels"));
    }
    let eps = T::from_f64(epsilon);
    // Fold into one multiply-add per element: y = x * k + (bias - mean * k).
    let k: Vec<T> = scale.iter().zip(var).map(|(&s, &v)| s.div(v.add(eps).sqrt())).collect();
    let off: Vec<T> = bias.iter().zip(mean).zip(&k).map(|((&b, &m), &k)| b.sub(m.mul(k))).collect();
    let kv = per_channel(&ArrayD::from_shape_vec(IxDyn(&[c]), k).map_err(|e| super::error::Error::Shape(e.to_string()))?, x.ndim())?;
    let ov = per_channel(&ArrayD::from_shape_vec(IxDyn(&[c]), off).map_err(|e| super::error::Error::Shape(e.to_string()))?, x.ndim())?;
    let (kb, ob) = (broadcast_to(&kv, x.shape())?, broadcast_to(&ov, x.shape())?);
    Ok(Zip::from(x).and(&kb).and(&ob).map_collect(|&v, &k, &o| v.mul(k).add(o)))
}

/// Normalizes each row of `rows` (length `n`) to zero mean and unit variance.
fn normalize_rows<T: Float>(data: &mut [T], n: usize, epsilon: f64) {
    if n == 0 {
        return;
    }
    for r in data.chunks_mut(n) {
        let mean = r.iter().map(|v| v.to_f64()).sum::<f64>() / n as f64;
        let var = r.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + epsilon).sqrt();
        r.iter_mut().for_each(|v| *v = T::from_f64((v.to_f64() - mean) * inv));
    }
}

pub fn instance_norm<T: Float>(x: &ArrayD<T>, scale: &ArrayD<T>, bias: &ArrayD<T>, epsilon: f64) -> Result<ArrayD<T>> {
    if x.ndim() < 2 {
        return shape_err("instance_norm: rank below 2");
    }
    let mut data: Vec<T> = x.iter().copied().collect();
    let n: usize = x.shape()[2..].iter().product();
    normalize_rows(&mut data, n, epsilon);
    let y = with_shape(ArrayD::from_shape_vec(x.raw_dim(), data).map_err(|e| super::error::Error::Shape(e.to_string()))?.view(), x.shape())?;
    let s = per_channel(scale, x.ndim())?;
    let b = per_channel(bias, x.ndim())?;
    super::elementwise::add(&super::elementwise::mul(&y, &s)?, &b)
}

/// LayerNormalization over the axes from `ax` on; `scale` and `bias` broadcast against them.
/// f32 with parameters of the normalized size: one pass per row, in the operand's buffer
/// when it was moved in.
pub fn layer_norm<'a, T: Float>(
    x: impl Operand<'a, T>,
    scale: &ArrayD<T>,
    bias: Option<&ArrayD<T>>,
    ax: i64,
    epsilon: f64,
) -> Result<ArrayD<T>> {
    let x = x.into_cow();
    let ax = axis(ax, x.ndim())?;
    let n: usize = x.shape()[ax..].iter().product();
    let params_fit = scale.len() == n && bias.is_none_or(|b| b.len() == n);
    if let (true, true, Some(g)) = (is_f32::<T>(), params_fit && n > 0, scale.as_slice().and_then(as_f32)) {
        let b = bias.map(|b| b.as_slice().and_then(as_f32));
        if b.is_none() || b.is_some_and(|b| b.is_some()) {
            let mut out = match x {
                Cow::Owned(a) if a.is_standard_layout() => a,
                other => other.as_standard_layout().into_owned(),
            };
            if let Some(data) = out.as_slice_mut().and_then(as_f32_mut) {
                layer_norm_rows_f32(data, g, b.flatten(), epsilon as f32);
            }
            return Ok(out);
        }
    }
    let mut data: Vec<T> = x.iter().copied().collect();
    normalize_rows(&mut data, n, epsilon);
    let y = ArrayD::from_shape_vec(x.raw_dim(), data).map_err(|e| super::error::Error::Shape(e.to_string()))?;
    let y = super::elementwise::mul(y, scale)?;
    match bias {
        Some(b) => super::elementwise::add(y, b),
        None => Ok(y),
    }
}

/// `y = (x - mean) / sqrt(var + eps) * scale + bias` for every row of `scale.len()` values.
fn layer_norm_rows_f32(data: &mut [f32], scale: &[f32], bias: Option<&[f32]>, eps: f32) {
    let n = scale.len();
    simd(
        #[inline(always)]
        || {
            for r in data.chunks_exact_mut(n) {
                let mean = vmath::sum_f32(r) / n as f32;
                let inv = 1.0 / (vmath::sum_sq_dev_f32(r, mean) / n as f32 + eps).sqrt();
                match bias {
                    Some(b) => {
                        for ((v, &g), &c) in r.iter_mut().zip(scale).zip(b) {
                            *v = (*v - mean) * inv * g + c;
                        }
                    }
                    None => {
                        for (v, &g) in r.iter_mut().zip(scale) {
                            *v = (*v - mean) * inv * g;
                        }
                    }
                }
            }
        },
    )
}

/// GroupNormalization; `scale`/`bias` are per channel (opset 21) or per group (opset 18).
pub fn group_norm<T: Float>(x: &ArrayD<T>, scale: &ArrayD<T>, bias: &ArrayD<T>, groups: usize, epsilon: f64) -> Result<ArrayD<T>> {
    let (n, c) = (x.shape()[0], x.shape()[1]);
    if groups == 0 || c % groups != 0 {
        return shape_err("group_norm: channels not divisible by groups");
    }
    let mut data: Vec<T> = x.iter().copied().collect();
    normalize_rows(&mut data, x.len() / (n * groups).max(1), epsilon);
    let y = ArrayD::from_shape_vec(x.raw_dim(), data).map_err(|e| super::error::Error::Shape(e.to_string()))?;
    let expand = |p: &ArrayD<T>| -> Result<ArrayD<T>> {
        if p.len() == c {
            return Ok(p.clone());
        }
        let rep = c / groups;
        Ok(ArrayD::from_shape_fn(IxDyn(&[c]), |ix| p[IxDyn(&[ix[0] / rep])]))
    };
    let s = per_channel(&expand(scale)?, x.ndim())?;
    let b = per_channel(&expand(bias)?, x.ndim())?;
    super::elementwise::add(&super::elementwise::mul(&y, &s)?, &b)
}

/// Local response normalization across channels.
pub fn lrn<T: Float>(x: &ArrayD<T>, size: usize, alpha: f64, beta: f64, bias: f64) -> Result<ArrayD<T>> {
    if x.ndim() < 2 {
        return shape_err("lrn: rank below 2");
    }
    let c = x.shape()[1];
    let sq = unary(x, |v| v.to_f64() * v.to_f64())?;
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    let mut out = x.clone();
    for ch in 0..c {
        let (a, b) = (ch.saturating_sub(lo), (ch + hi).min(c - 1));
        let mut acc = sq.index_axis(Axis(1), a).to_owned();
        for k in a + 1..=b {
            acc = acc + sq.index_axis(Axis(1), k);
        }
        let mut dst = out.index_axis_mut(Axis(1), ch);
        Zip::from(&mut dst).and(&acc).for_each(|y, &s| {
            *y = T::from_f64(y.to_f64() / (bias + alpha / size as f64 * s).powf(beta));
        });
    }
    Ok(out)
}

/// MeanVarianceNormalization over `axes`.
pub fn mean_variance_normalization<T: Float>(x: &ArrayD<T>, axes: &[i64]) -> Result<ArrayD<T>> {
    let mean = super::reduce::reduce(x, "mean", Some(axes), true, false)?;
    let centered = super::elementwise::sub(x, &mean)?;
    let sq = unary(&centered, |v| v.mul(v))?;
    let var = super::reduce::reduce(&sq, "mean", Some(axes), true, false)?;
    let std = unary(&var, |v| v.add(T::from_f64(1e-9)).sqrt())?;
    super::elementwise::div(&centered, &std)
}

/// LayerNormalization with its two auxiliary outputs: the mean and the inverse standard deviation.
pub fn layer_norm_stats<T: Float>(
    x: &ArrayD<T>,
    scale: &ArrayD<T>,
    bias: Option<&ArrayD<T>>,
    ax: i64,
    epsilon: f64,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    let ax = axis(ax, x.ndim())?;
    let n: usize = x.shape()[ax..].iter().product();
    let rows = x.len() / n.max(1);
    let data: Vec<T> = x.iter().copied().collect();
    let (mut means, mut invs) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for r in data.chunks(n.max(1)) {
        let mean = r.iter().map(|v| v.to_f64()).sum::<f64>() / n as f64;
        let var = r.iter().map(|v| (v.to_f64() - mean).powi(2)).sum::<f64>() / n as f64;
        means.push(T::from_f64(mean));
        invs.push(T::from_f64(1.0 / (var + epsilon).sqrt()));
    }
    let y = layer_norm(x, scale, bias, ax as i64, epsilon)?;
    let dims: Vec<usize> = (0..x.ndim()).map(|d| if d < ax { x.shape()[d] } else { 1 }).collect();
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    Ok((
        y,
        ArrayD::from_shape_vec(IxDyn(&dims), means).map_err(err)?,
        ArrayD::from_shape_vec(IxDyn(&dims), invs).map_err(err)?,
    ))
}

/// RMSNormalization over the axes from `ax` on.
pub fn rms_norm<T: Float>(x: &ArrayD<T>, scale: &ArrayD<T>, ax: i64, epsilon: f64) -> Result<ArrayD<T>> {
    let ax = axis(ax, x.ndim())?;
    let n: usize = x.shape()[ax..].iter().product();
    let mut data: Vec<T> = x.iter().copied().collect();
    for r in data.chunks_mut(n.max(1)) {
        let ms = r.iter().map(|v| v.to_f64().powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (ms + epsilon).sqrt();
        r.iter_mut().for_each(|v| *v = T::from_f64(v.to_f64() * inv));
    }
    let y = ArrayD::from_shape_vec(x.raw_dim(), data).map_err(|e| super::error::Error::Shape(e.to_string()))?;
    super::elementwise::mul(&y, scale)
}
