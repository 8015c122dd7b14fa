//! Quantization (QuantizeLinear / DequantizeLinear) and small generators (windows, EyeLike).

use super::elem::{Elem, Float, Num};
use super::error::{shape_err, Result};
use super::shape::axis;
use ndarray::{ArrayD, IxDyn};

/// A scale or zero point broadcast to `shape`: per tensor, per `ax`, or per block along `ax`.
fn expand_param<T: Elem>(p: &ArrayD<T>, shape: &[usize], ax: usize, block: usize) -> Result<ArrayD<T>> {
    if p.len() == 1 {
        return Ok(ArrayD::from_elem(IxDyn(shape), p.iter().copied().next().unwrap_or_default()));
    }
    if block == 0 {
        if p.ndim() != 1 || p.len() != shape[ax] {
            return shape_err(format!("quantization parameter of shape {:?} for axis {ax}", p.shape()));
        }
        return Ok(ArrayD::from_shape_fn(IxDyn(shape), |ix| p[IxDyn(&[ix[ax]])]));
    }
    if p.ndim() != shape.len() {
        return shape_err("blocked quantization parameter of the wrong rank");
    }
    Ok(ArrayD::from_shape_fn(IxDyn(shape), |ix| {
        let mut j = ix.clone();
        j[ax] /= block;
        p[&j]
    }))
}

fn round_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 { 2.0 * (v / 2.0).round() } else { r }
}

/// `saturate(round(x / scale) + zero_point)`.
pub fn quantize_linear<T: Float, Q: Num>(
    x: &ArrayD<T>,
    scale: &ArrayD<T>,
    zero_point: Option<&ArrayD<Q>>,
    ax: i64,
    block: usize,
) -> Result<ArrayD<Q>> {
    let ax = if scale.len() == 1 { 0 } else { axis(ax, x.ndim())? };
    let s = expand_param(scale, x.shape(), ax, block)?;
    let zp = match zero_point {
        Some(z) => expand_param(z, x.shape(), ax, block)?,
        None => ArrayD::from_elem(x.raw_dim(), Q::zero()),
    };
    let (lo, hi) = (Q::lowest().to_f64(), Q::highest().to_f64());
    let mut out = ArrayD::from_elem(x.raw_dim(), Q::zero());
    ndarray::Zip::from(&mut out).and(x).and(&s).and(&zp).for_each(|o, &v, &sc, &z| {
        let q = round_even(v.div(sc).to_f64()) + z.to_f64();
        *o = Q::from_f64(q.clamp(lo, hi));
    });
    Ok(out)
}

/// `(x - zero_point) * scale`.
pub fn dequantize_linear<Q: Num, T: Float>(
    x: &ArrayD<Q>,
    scale: &ArrayD<T>,
    zero_point: Option<&ArrayD<Q>>,
    ax: i64,
    block: usize,
) -> Result<ArrayD<T>> {
    let ax = if scale.len() == 1 { 0 } else { axis(ax, x.ndim())? };
    let s = expand_param(scale, x.shape(), ax, block)?;
    let zp = match zero_point {
        Some(z) => expand_param(z, x.shape(), ax, block)?,
        None => ArrayD::from_elem(x.raw_dim(), Q::zero()),
    };
    let mut out = ArrayD::from_elem(x.raw_dim(), T::zero());
    ndarray::Zip::from(&mut out).and(x).and(&s).and(&zp).for_each(|o, &v, &sc, &z| {
        *o = T::from_f64((v.to_f64() - z.to_f64()) * sc.to_f64());
    });
    Ok(out)
}

/// Hann, Hamming or Blackman window of `size` samples.
pub fn window<T: Float>(kind: &str, size: i64, periodic: bool) -> Result<ArrayD<T>> {
    let n = size.max(0) as usize;
    let denom = if periodic { n as f64 } else { (n as f64 - 1.0).max(1.0) };
    let tau = 2.0 * std::f64::consts::PI;
    let values: Vec<T> = (0..n)
        .map(|i| {
            let x = tau * i as f64 / denom;
            T::from_f64(match kind {
                "hann" => 0.5 - 0.5 * x.cos(),
                "hamming" => 25.0 / 46.0 - 21.0 / 46.0 * x.cos(),
                _ => 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos(),
            })
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[n]), values).map_err(|e| super::error::Error::Shape(e.to_string()))
}

/// Ones on diagonal `k` of a 2-D tensor shaped like `x`.
pub fn eye_like<A: Elem, O: Elem>(x: &ArrayD<A>, k: i64) -> Result<ArrayD<O>> {
    if x.ndim() != 2 {
        return shape_err("eye_like: input must be 2-D");
    }
    Ok(ArrayD::from_shape_fn(x.raw_dim(), |ix| O::from_bool(ix[1] as i64 - ix[0] as i64 == k)))
}

/// ONNX `Compress`: the slices along `ax` (or elements of the flattened input) where `cond` holds.
pub fn compress<T: Elem>(x: &ArrayD<T>, cond: &ArrayD<bool>, ax: Option<i64>) -> Result<ArrayD<T>> {
    let keep: Vec<usize> = cond.iter().enumerate().filter(|(_, &c)| c).map(|(i, _)| i).collect();
    match ax {
        None => {
            let flat: Vec<T> = x.iter().copied().collect();
            let out: Vec<T> = keep.iter().filter_map(|&i| flat.get(i).copied()).collect();
            let n = out.len();
            ArrayD::from_shape_vec(IxDyn(&[n]), out).map_err(|e| super::error::Error::Shape(e.to_string()))
        }
        Some(a) => {
            let a = axis(a, x.ndim())?;
            let keep: Vec<usize> = keep.into_iter().filter(|&i| i < x.shape()[a]).collect();
            Ok(x.select(ndarray::Axis(a), &keep))
        }
    }
}

/// ONNX `CenterCropPad`: crop or zero-pad each listed axis to `shape`, centered.
pub fn center_crop_pad<T: Elem>(x: &ArrayD<T>, shape: &[i64], axes: Option<&[i64]>) -> Result<ArrayD<T>> {
    let rank = x.ndim();
    let all: Vec<i64> = (0..rank as i64).collect();
    let axes: Vec<usize> = axes.unwrap_or(&all).iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?;
    if axes.len() != shape.len() {
        return shape_err("center_crop_pad: shape and axes differ in length");
    }
    let mut dims = x.shape().to_vec();
    let mut offset = vec![0i64; rank];
    for (&a, &s) in axes.iter().zip(shape) {
        let d = x.shape()[a] as i64;
        dims[a] = s.max(0) as usize;
        // Crop: skip (d - s) / 2 at the start; pad: (s - d) / 2 zeros before the data.
        offset[a] = if s <= d { (d - s) / 2 } else { -((s - d) / 2) };
    }
    Ok(ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let mut src = Vec::with_capacity(rank);
        for d in 0..rank {
            let i = ix[d] as i64 + offset[d];
            if i < 0 || i >= x.shape()[d] as i64 {
                return T::default();
            }
            src.push(i as usize);
        }
        x[IxDyn(&src)]
    }))
}

/// ONNX `DynamicQuantizeLinear`: uint8 quantization with a scale and zero point from the data range.
pub fn dynamic_quantize_linear<T: Float>(x: &ArrayD<T>) -> Result<(ArrayD<u8>, ArrayD<T>, ArrayD<u8>)> {
    let lo = x.iter().map(|v| v.to_f64()).fold(0.0f64, f64::min);
    let hi = x.iter().map(|v| v.to_f64()).fold(0.0f64, f64::max);
    // Computed in the input precision, as the reference does.
    let scale = T::from_f64(hi).sub(T::from_f64(lo)).div(T::from_f64(255.0));
    let s = scale.to_f64();
    let zp = if s == 0.0 { 0.0 } else { round_even(T::zero().sub(T::from_f64(lo).div(scale)).to_f64().clamp(0.0, 255.0)) };
    let y = x.mapv(|v| {
        let q = if s == 0.0 { zp } else { round_even(v.div(scale).to_f64()) + zp };
        q.clamp(0.0, 255.0) as u8
    });
    Ok((y, ArrayD::from_elem(IxDyn(&[]), scale), ArrayD::from_elem(IxDyn(&[]), zp as u8)))
}

/// `x - zero_point` in i32; a 1-D zero point applies along `axis` (rows of A, output channels of W).
fn centered<Q: Num>(x: &ArrayD<Q>, zp: Option<&ArrayD<Q>>, ax: usize) -> Result<ArrayD<i32>> {
    let xi = x.mapv(|v| v.to_i64() as i32);
    let Some(z) = zp else { return Ok(xi) };
    let zi = z.mapv(|v| v.to_i64() as i32);
    if zi.len() == 1 {
        let z0 = zi.iter().copied().next().unwrap_or(0);
        return Ok(xi.mapv(|v| v - z0));
    }
    let zb = expand_param(&zi, x.shape(), ax, 0)?;
    Ok(&xi - &zb)
}

/// MatMulInteger: `(a - a_zero_point) @ (b - b_zero_point)` in i32.
pub fn int_matmul<A: Num, B: Num>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    a_zero_point: Option<&ArrayD<A>>,
    b_zero_point: Option<&ArrayD<B>>,
) -> Result<ArrayD<i32>> {
    let ai = centered(a, a_zero_point, a.ndim().saturating_sub(2))?;
    let bi = centered(b, b_zero_point, b.ndim().saturating_sub(1))?;
    super::linalg::matmul(&ai, &bi)
}

/// ConvInteger (and the integer core of QLinearConv): the convolution of the centered operands in i32.
pub fn int_conv<A: Num, B: Num>(
    x: &ArrayD<A>,
    w: &ArrayD<B>,
    x_zero_point: Option<&ArrayD<A>>,
    w_zero_point: Option<&ArrayD<B>>,
    bias: Option<&ArrayD<i32>>,
    win: &super::conv::Window,
    group: usize,
) -> Result<ArrayD<i32>> {
    let xi = centered(x, x_zero_point, 1)?;
    let wi = centered(w, w_zero_point, 0)?;
    super::conv::conv(&xi, &wi, bias, win, group)
}

/// Requantizes i32 accumulators: `round(acc * a_scale * b_scale / y_scale) + y_zero_point`, saturated
/// (QLinearConv) or wrapped like the ONNX reference's `astype` (QLinearMatMul); a 1-D `b_scale`
/// applies along `channel_axis`.
#[allow(clippy::too_many_arguments)]
pub fn requantize<T: Float, Q: Num>(
    acc: &ArrayD<i32>,
    a_scale: &ArrayD<T>,
    b_scale: &ArrayD<T>,
    y_scale: &ArrayD<T>,
    y_zero_point: Option<&ArrayD<Q>>,
    channel_axis: usize,
    saturate: bool,
) -> Result<ArrayD<Q>> {
    let first = |p: &ArrayD<T>| p.iter().copied().next().unwrap_or_else(T::one);
    let (sa, sy) = (first(a_scale), first(y_scale));
    let sb = if b_scale.len() == 1 {
        ArrayD::from_elem(acc.raw_dim(), first(b_scale))
    } else {
        expand_param(b_scale, acc.shape(), channel_axis.min(acc.ndim().saturating_sub(1)), 0)?
    };
    let zp = y_zero_point.and_then(|z| z.iter().copied().next()).map_or(0.0, |z| z.to_f64());
    let (lo, hi) = (Q::lowest().to_f64(), Q::highest().to_f64());
    let mut out = ArrayD::from_elem(acc.raw_dim(), Q::zero());
    ndarray::Zip::from(&mut out).and(acc).and(&sb).for_each(|o, &c, &b| {
        // The factor in the scales' precision, the product in f64, as the reference computes it.
        let factor = sa.mul(b).div(sy).to_f64();
        let v = round_even(c as f64 * factor) + zp;
        *o = if saturate { Q::from_f64(v.clamp(lo, hi)) } else { Q::from_i64(v as i64) };
    });
    Ok(out)
}
