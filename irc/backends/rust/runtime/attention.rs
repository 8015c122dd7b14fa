//! ONNX `Attention` (opset 23+): scaled dot-product attention with masks, causal masking,
//! a key/value cache, grouped-query heads and softcap.

use super::elem::{Elem, Float};
use super::elementwise::{add, unary};
use super::error::{shape_err, Result};
use super::linalg::matmul;
use super::reduce::softmax;
use super::shape::{concat, reshape, transpose};
use ndarray::{ArrayD, Axis, IxDyn};

/// Attributes of `Attention`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionParams {
    pub scale: Option<f64>,
    pub is_causal: bool,
    pub q_num_heads: usize,
    pub kv_num_heads: usize,
    pub softcap: f64,
    pub qk_matmul_output_mode: i64,
}

/// `[B, S, H*D]` -> `[B, H, S, D]`.
fn split_heads<T: Elem>(x: &ArrayD<T>, heads: usize) -> Result<ArrayD<T>> {
    if x.ndim() == 4 {
        return Ok(x.clone());
    }
    if x.ndim() != 3 || heads == 0 {
        return shape_err("attention: inputs must be 3-D (with head counts) or 4-D");
    }
    let (b, s) = (x.shape()[0] as i64, x.shape()[1] as i64);
    transpose(&reshape(x, &[b, s, heads as i64, -1], false)?, &[0, 2, 1, 3])
}

/// The additive bias `[.., q, kv]` from the mask, causal masking and the padding lengths.
fn bias<T: Float, M: Elem>(
    mask: Option<&ArrayD<M>>,
    q_len: usize,
    kv_len: usize,
    past: usize,
    causal: bool,
    nonpad: Option<&ArrayD<i64>>,
) -> Result<ArrayD<T>> {
    let neg = T::lowest();
    let mut b: ArrayD<T> = match mask {
        Some(m) => {
            let is_bool = M::DESCR == "|b1";
            let mut dims = m.shape().to_vec();
            let last = dims.len().saturating_sub(1);
            let have = dims.get(last).copied().unwrap_or(0);
            dims[last] = kv_len;
            ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
                if ix[last] >= have {
                    return neg;
                }
                let v = m[&ix];
                if is_bool {
                    if v.is_true() { T::zero() } else { neg }
                } else {
                    T::from_f64(v.to_f64())
                }
            })
        }
        None => ArrayD::from_elem(IxDyn(&[q_len, kv_len]), T::zero()),
    };
    if causal {
        let r = b.ndim();
        for (ix, v) in b.indexed_iter_mut() {
            let (i, j) = (ix[r - 2], ix[r - 1]);
            if j >= past && j - past > i {
                *v = v.add(neg);
            }
        }
    }
    if let Some(lens) = nonpad {
        let batch = lens.len();
        let pad = ArrayD::from_shape_fn(IxDyn(&[batch, 1, 1, kv_len]), |ix| {
            if (ix[3] as i64) < lens[IxDyn(&[ix[0]])] { T::zero() } else { neg }
        });
        b = add(&b, &pad)?;
    }
    Ok(b)
}

/// Returns `Y`, `present_key`, `present_value` and the `qk_matmul_output` selected by its mode.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn attention<T: Float, M: Elem>(
    q: &ArrayD<T>,
    k: &ArrayD<T>,
    v: &ArrayD<T>,
    mask: Option<&ArrayD<M>>,
    past_key: Option<&ArrayD<T>>,
    past_value: Option<&ArrayD<T>>,
    nonpad: Option<&ArrayD<i64>>,
    p: &AttentionParams,
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    let three_d = q.ndim() == 3;
    let q4 = split_heads(q, p.q_num_heads)?;
    let mut k4 = split_heads(k, p.kv_num_heads)?;
    let mut v4 = split_heads(v, p.kv_num_heads)?;
    let past = past_key.map_or(0, |pk| pk.shape().get(2).copied().unwrap_or(0));
    if let Some(pk) = past_key {
        k4 = concat(&[pk, &k4], 2)?;
    }
    if let Some(pv) = past_value {
        v4 = concat(&[pv, &v4], 2)?;
    }
    let (present_k, present_v) = (k4.clone(), v4.clone());
    let head = q4.shape()[3] as f64;
    let s = T::from_f64(p.scale.unwrap_or(1.0 / head.sqrt()).sqrt());
    let (hq, hk) = (q4.shape()[1], k4.shape()[1]);
    if hq != hk && hk > 0 && hq % hk == 0 {
        let pick: Vec<usize> = (0..hq).map(|h| h / (hq / hk)).collect();
        k4 = k4.select(Axis(1), &pick);
        v4 = v4.select(Axis(1), &pick);
    }
    let qs = unary(&q4, |x| x.mul(s))?;
    let ks = unary(&transpose(&k4, &[0, 1, 3, 2])?, |x| x.mul(s))?;
    let qk = matmul(&qs, &ks)?;
    let b = bias::<T, M>(mask, q4.shape()[2], k4.shape()[2], past, p.is_causal, nonpad)?;
    let mut scores = add(&qk, &b)?;
    let mut qk_out = if p.qk_matmul_output_mode == 1 { scores.clone() } else { qk };
    if p.softcap > 0.0 {
        let c = p.softcap;
        scores = unary(&scores, |x| T::from_f64((x.to_f64() / c).tanh() * c))?;
        if p.qk_matmul_output_mode == 2 {
            qk_out = scores.clone();
        }
    }
    let probs = softmax(&scores, -1, false)?;
    if p.qk_matmul_output_mode == 3 {
        qk_out = probs.clone();
    }
    let mut y = matmul(&probs, &v4)?;
    if three_d {
        let (bsz, seq) = (y.shape()[0] as i64, y.shape()[2] as i64);
        y = reshape(&transpose(&y, &[0, 2, 1, 3])?, &[bsz, seq, -1], false)?;
    }
    Ok((y, present_k, present_v, qk_out))
}

/// ONNX `RotaryEmbedding`: rotates the first `rotary_dim` features of each head by cached angles.
#[allow(clippy::too_many_arguments)]
pub fn rotary_embedding<T: Float>(
    x: &ArrayD<T>,
    cos: &ArrayD<T>,
    sin: &ArrayD<T>,
    position_ids: Option<&ArrayD<i64>>,
    interleaved: bool,
    rotary_dim: usize,
    num_heads: usize,
) -> Result<ArrayD<T>> {
    let four_d = x.ndim() == 4;
    if !four_d && (x.ndim() != 3 || num_heads == 0) {
        return shape_err("rotary_embedding: input must be 4-D, or 3-D with num_heads");
    }
    let head = if four_d { x.shape()[3] } else { x.shape()[2] / num_heads };
    let rot = if rotary_dim == 0 { head } else { rotary_dim };
    let half = rot / 2;
    if cos.shape().last() != Some(&half) || sin.shape() != cos.shape() {
        return shape_err("rotary_embedding: cache width is not rotary_embedding_dim / 2");
    }
    let angle = |c: &ArrayD<T>, b: usize, s: usize, i: usize| -> T {
        match position_ids {
            Some(p) => {
                let pos = p[IxDyn(&[b, s])].max(0) as usize;
                c.get(IxDyn(&[pos.min(c.shape()[0].saturating_sub(1)), i])).copied().unwrap_or_default()
            }
            None => c.get(IxDyn(&[b, s, i])).copied().unwrap_or_default(),
        }
    };
    Ok(ArrayD::from_shape_fn(x.raw_dim(), |ix| {
        // (b, s, feature index within the head) and a reader for other features of the same head.
        let (b, s, d) = if four_d { (ix[0], ix[2], ix[3]) } else { (ix[0], ix[1], ix[2] % head) };
        let at = |k: usize| -> T {
            let mut j = ix.clone();
            if four_d {
                j[3] = k;
            } else {
                j[2] = ix[2] - d + k;
            }
            x[&j]
        };
        if d >= rot {
            return at(d);
        }
        let (i, first) = if interleaved { (d / 2, d % 2 == 0) } else { (d % half, d < half) };
        let (x1, x2) = if interleaved { (at(2 * i), at(2 * i + 1)) } else { (at(i), at(i + half)) };
        let (c, sn) = (angle(cos, b, s, i), angle(sin, b, s, i));
        if first { c.mul(x1).sub(sn.mul(x2)) } else { sn.mul(x1).add(c.mul(x2)) }
    }))
}

/// `softmax(scale · q @ kᵀ, last axis) @ v` for every leading index (batch × heads), the
/// chain `MatMul(q, Transpose(k)) → Mul(scale) → Softmax(-1) → MatMul(·, v)` in one op:
/// no transposed copy of `k`, the scale in the GEMM's alpha, one `[Sq, Sk]` scratch per
/// head, heads in parallel. `q [.., Sq, D]`, `k [.., Sk, D]`, `v [.., Sk, Dv]` with the
/// same leading dims; returns `[.., Sq, Dv]`.
pub fn attention_chain(q: &ArrayD<f32>, k: &ArrayD<f32>, v: &ArrayD<f32>, scale: f32) -> Result<ArrayD<f32>> {
    use super::gemm::{sgemm_raw, Epilogue};
    use super::vmath;
    let r = q.ndim();
    if r < 2 || k.ndim() != r || v.ndim() != r || q.shape()[..r - 2] != k.shape()[..r - 2] || k.shape()[..r - 2] != v.shape()[..r - 2] {
        return shape_err(format!("attention: q {:?}, k {:?}, v {:?} do not match", q.shape(), k.shape(), v.shape()));
    }
    let (sq, d, sk, dv) = (q.shape()[r - 2], q.shape()[r - 1], k.shape()[r - 2], v.shape()[r - 1]);
    if k.shape()[r - 1] != d || v.shape()[r - 2] != sk {
        return shape_err(format!("attention: q {:?}, k {:?}, v {:?} do not match", q.shape(), k.shape(), v.shape()));
    }
    let heads: usize = q.shape()[..r - 2].iter().product();
    let (q, k, v) = (q.as_standard_layout(), k.as_standard_layout(), v.as_standard_layout());
    let (qs, ks, vs) = (q.as_slice().unwrap_or(&[]), k.as_slice().unwrap_or(&[]), v.as_slice().unwrap_or(&[]));
    let mut out = vec![0.0f32; heads * sq * dv];
    let work = heads * sq * sk * (d + dv) * 2;
    if sq * dv > 0 {
        super::par::for_each_chunk_mut(&mut out, sq * dv, work, |h, o| {
            let mut s = vec![0.0f32; sq * sk];
            let (qh, kh, vh) = (&qs[h * sq * d..][..sq * d], &ks[h * sk * d..][..sk * d], &vs[h * sk * dv..][..sk * dv]);
            if sk > 0 {
                // SAFETY: qh is [sq, d] row-major, kh [sk, d] read as its transpose [d, sk]
                // (strides 1, d), s the [sq, sk] scratch; all in bounds by the slicing above.
                unsafe {
                    sgemm_raw(sq, sk, d, scale, qh.as_ptr(), d as isize, 1, kh.as_ptr(), 1, d as isize, 0.0,
                              s.as_mut_ptr(), sk as isize, 1, &Epilogue::NONE);
                }
                vmath::simd(
                    #[inline(always)]
                    || {
                        for row in s.chunks_exact_mut(sk) {
                            let m = vmath::max_of_f32(row);
                            for x in row.iter_mut() {
                                *x = vmath::exp_f32(*x - m);
                            }
                            let inv = 1.0 / vmath::sum_f32(row);
                            for x in row.iter_mut() {
                                *x *= inv;
                            }
                        }
                    },
                );
            }
            // SAFETY: s is [sq, sk], vh [sk, dv], o [sq, dv], all row-major and in bounds.
            unsafe {
                sgemm_raw(sq, dv, sk, 1.0, s.as_ptr(), sk as isize, 1, vh.as_ptr(), dv as isize, 1, 0.0,
                          o.as_mut_ptr(), dv as isize, 1, &Epilogue::NONE);
            }
        });
    }
    let mut shape = q.shape()[..r - 2].to_vec();
    shape.extend([sq, dv]);
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}
