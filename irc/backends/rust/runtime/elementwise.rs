//! Elementwise operators with numpy broadcasting.
//!
//! Layers take [`Operand`]s: a moved operand (an intermediate that dies here) whose shape is
//! the output's becomes the output buffer, so activations and arithmetic on intermediates
//! allocate nothing. Contiguous operands in the common broadcast patterns (same shape,
//! scalar, bias row, per channel) run as slice loops compiled for the CPU's widest vectors.

use super::elem::{as_f32_mut, is_f32, Elem, Float, Num, Operand};
use super::error::{shape_err, Result};
use super::vmath::{self, simd};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use std::borrow::Cow;

/// The numpy broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
            let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
            match (da, db) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => shape_err(format!("cannot broadcast shapes {a:?} and {b:?}")),
            }
        })
        .collect()
}

/// A view of `a` broadcast to `shape`.
pub fn broadcast_to<'a, T>(a: &'a ArrayD<T>, shape: &[usize]) -> Result<ArrayViewD<'a, T>> {
    match a.broadcast(IxDyn(shape)) {
        Some(v) => Ok(v),
        None => shape_err(format!("cannot broadcast shape {:?} to {shape:?}", a.shape())),
    }
}

/// Applies `f` to every pair of broadcast elements.
pub fn binary<A: Elem, B: Elem, O: Elem>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> O,
) -> Result<ArrayD<O>> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    if let Some(out) = binary_contiguous(a, b, &shape, &f) {
        return Ok(out);
    }
    let (av, bv) = (broadcast_to(a, &shape)?, broadcast_to(b, &shape)?);
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

/// [`binary`] without ndarray's broadcasting iterator when both operands are contiguous
/// and one has the full shape while the other is the same shape, a scalar, a suffix
/// (a bias row) or one value per channel: plain slice loops the compiler vectorizes.
fn binary_contiguous<A: Elem, B: Elem, O: Elem>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    shape: &[usize],
    f: impl Fn(A, B) -> O + Copy,
) -> Option<ArrayD<O>> {
    let (x, y) = (a.as_slice()?, b.as_slice()?);
    let total: usize = shape.iter().product();
    if total == 0 {
        return None;
    }
    let out = if x.len() == total {
        let (mid, inner) = repeat_pattern(b.shape(), shape)?;
        broadcast_rows(x, y, mid, inner, f)
    } else if y.len() == total {
        let (mid, inner) = repeat_pattern(a.shape(), shape)?;
        broadcast_rows(y, x, mid, inner, move |q, p| f(p, q))
    } else {
        return None;
    };
    ArrayD::from_shape_vec(IxDyn(shape), out).ok()
}

/// How `small` broadcast to `full` repeats: `(mid, inner)` such that element `j` of
/// `small` (`mid` of them) covers `inner` consecutive outputs, the pattern repeating over
/// the leading dims. `None` when `small` does not have this form (e.g. `[C, 1, W]`).
fn repeat_pattern(small: &[usize], full: &[usize]) -> Option<(usize, usize)> {
    if small.len() > full.len() {
        return None;
    }
    let pad = full.len() - small.len();
    let dim = |i: usize| if i < pad { 1 } else { small[i - pad] };
    let varying: Vec<usize> = (0..full.len()).filter(|&i| dim(i) != 1).collect();
    let (Some(&lo), Some(&hi)) = (varying.first(), varying.last()) else {
        return Some((1, full.iter().product()));
    };
    if (lo..=hi).any(|i| dim(i) != full[i]) {
        return None;
    }
    Some((full[lo..=hi].iter().product(), full[hi + 1..].iter().product()))
}

/// `f(x[i], y[j])` over the full `x`, with `y` (`mid` values) repeated as [`repeat_pattern`] says.
fn broadcast_rows<X: Copy, Y: Copy, O: Copy + Default>(
    x: &[X],
    y: &[Y],
    mid: usize,
    inner: usize,
    f: impl Fn(X, Y) -> O + Copy,
) -> Vec<O> {
    let mut out = vec![O::default(); x.len()];
    simd(
        #[inline(always)]
        || {
            if inner == 1 {
                for (os, xs) in out.chunks_exact_mut(mid).zip(x.chunks_exact(mid)) {
                    for ((o, &p), &q) in os.iter_mut().zip(xs).zip(y) {
                        *o = f(p, q);
                    }
                }
            } else {
                for ((os, xs), &q) in out.chunks_exact_mut(inner).zip(x.chunks_exact(inner)).zip(y.iter().cycle()) {
                    for (o, &p) in os.iter_mut().zip(xs) {
                        *o = f(p, q);
                    }
                }
            }
        },
    );
    out
}

/// [`broadcast_rows`] writing into `x` itself.
fn broadcast_rows_in_place<X: Copy, Y: Copy>(x: &mut [X], y: &[Y], mid: usize, inner: usize, f: impl Fn(X, Y) -> X + Copy) {
    simd(
        #[inline(always)]
        || {
            if inner == 1 {
                for xs in x.chunks_exact_mut(mid) {
                    for (p, &q) in xs.iter_mut().zip(y) {
                        *p = f(*p, q);
                    }
                }
            } else {
                for (xs, &q) in x.chunks_exact_mut(inner).zip(y.iter().cycle()) {
                    for p in xs.iter_mut() {
                        *p = f(*p, q);
                    }
                }
            }
        },
    )
}

/// [`binary`] for operators whose result has the operands' type: the output reuses the
/// buffer of a moved operand that already has the output's shape.
pub fn binary_op<'a, T: Elem>(
    a: impl Operand<'a, T>,
    b: impl Operand<'a, T>,
    f: impl Fn(T, T) -> T + Copy,
) -> Result<ArrayD<T>> {
    let (a, b) = (a.into_cow(), b.into_cow());
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let a = match a {
        Cow::Owned(x) => match reuse(x, &b, &shape, f) {
            Ok(out) => return Ok(out),
            Err(x) => Cow::Owned(x),
        },
        borrowed => borrowed,
    };
    if let Cow::Owned(y) = b {
        return match reuse(y, &a, &shape, move |q, p| f(p, q)) {
            Ok(out) => Ok(out),
            Err(y) => binary(&a, &y, f),
        };
    }
    binary(&a, &b, f)
}

/// `x = f(x, y)` in `x`'s buffer when `x` already has the output `shape` and both operands
/// are contiguous with a simple broadcast of `y`; gives `x` back otherwise.
fn reuse<T: Elem>(
    mut x: ArrayD<T>,
    y: &ArrayD<T>,
    shape: &[usize],
    f: impl Fn(T, T) -> T + Copy,
) -> std::result::Result<ArrayD<T>, ArrayD<T>> {
    if x.shape() != shape || !x.is_standard_layout() {
        return Err(x);
    }
    if x.is_empty() {
        return Ok(x);
    }
    let (Some(ys), Some((mid, inner))) = (y.as_slice(), repeat_pattern(y.shape(), shape)) else {
        return Err(x);
    };
    if let Some(xs) = x.as_slice_mut() {
        broadcast_rows_in_place(xs, ys, mid, inner, f);
    }
    Ok(x)
}

/// [`unary`] for operators that keep the element type: a moved operand is the output.
pub fn unary_op<'a, T: Elem>(a: impl Operand<'a, T>, f: impl Fn(T) -> T + Copy) -> Result<ArrayD<T>> {
    match a.into_cow() {
        Cow::Owned(mut x) => {
            match x.as_slice_mut() {
                Some(xs) => simd(
                    #[inline(always)]
                    || {
                        for v in xs.iter_mut() {
                            *v = f(*v);
                        }
                    },
                ),
                None => x.mapv_inplace(f),
            }
            Ok(x)
        }
        Cow::Borrowed(x) => unary(x, f),
    }
}

/// [`unary_op`] with a vectorized f32 kernel `fast` when `T` is f32 (`slow` otherwise).
fn float_map<'a, T: Float>(
    a: impl Operand<'a, T>,
    fast: impl Fn(f32) -> f32 + Copy + Sync,
    slow: impl Fn(T) -> T + Copy,
) -> Result<ArrayD<T>> {
    if !is_f32::<T>() {
        return unary_op(a, slow);
    }
    let mut out = match a.into_cow() {
        Cow::Owned(x) if x.is_standard_layout() => x,
        other => other.as_standard_layout().into_owned(),
    };
    if let Some(xs) = out.as_slice_mut().and_then(as_f32_mut) {
        // Big tensors split over the threads in 4 Ki runs (~0.6 ns an element in `par`'s
        // units: bert's 128x1536 GELU, 4% of its time, splits; per element, so the same bits).
        let work = xs.len() * 64;
        super::par::for_each_chunk_mut(xs, 4096, work, |_, run| vmath::map_in_place(run, fast));
    }
    Ok(out)
}

/// An `irc.Elementwise_*` chain in one pass: `y = f(x, [e0, e1, ...])` for every element of
/// `x`, each extra input broadcast into `x`'s shape (never enlarging it).
///
/// The elements are walked in rows (the longest run of trailing dims along which every
/// extra input is either contiguous or constant), so the closure runs in a plain slice loop.
pub fn fused<'a, T: Elem, const N: usize>(
    x: impl Operand<'a, T>,
    extras: [&ArrayD<T>; N],
    f: impl Fn(T, [T; N]) -> T + Copy,
) -> Result<ArrayD<T>> {
    let mut out = match x.into_cow() {
        Cow::Owned(x) if x.is_standard_layout() => x,
        other => other.as_standard_layout().into_owned(),
    };
    let shape = out.shape().to_vec();
    let plans: Vec<Extra<T>> = extras.iter().map(|e| Extra::new(e, &shape)).collect::<Result<_>>()?;
    let split = (0..=shape.len())
        .find(|&k| plans.iter().all(|p| p.uniform_from(k, &shape)))
        .unwrap_or(shape.len());
    let row: usize = shape[split..].iter().product();
    let Some(data) = out.as_slice_mut() else { return shape_err("fused: output not contiguous") };
    if row == 0 || data.is_empty() {
        return Ok(out);
    }
    // Extras constant along a row are spread into a scratch row, so every operand is a slice.
    let mut scratch: Vec<Vec<T>> = plans.iter().map(|p| if p.varies_from(split, &shape) { Vec::new() } else { vec![T::default(); row] }).collect();
    let mut filled_from = vec![usize::MAX; N];
    let mut index = vec![0usize; split];
    for chunk in data.chunks_exact_mut(row) {
        for (k, p) in plans.iter().enumerate() {
            let at = p.offset(&index);
            if !scratch[k].is_empty() && filled_from[k] != at {
                scratch[k].fill(p.data[at]);
                filled_from[k] = at;
            }
        }
        let srcs: [&[T]; N] = std::array::from_fn(|k| {
            if scratch[k].is_empty() { &plans[k].data[plans[k].offset(&index)..][..row] } else { &scratch[k][..] }
        });
        fused_row(chunk, srcs, f);
        for d in (0..split).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(out)
}

/// `out[i] = f(out[i], [srcs[0][i], ...])`, vectorized.
fn fused_row<T: Copy, const N: usize>(out: &mut [T], srcs: [&[T]; N], f: impl Fn(T, [T; N]) -> T + Copy) {
    let n = out.len();
    let srcs: [&[T]; N] = std::array::from_fn(|k| &srcs[k][..n]);
    simd(
        #[inline(always)]
        || {
            for (i, o) in out.iter_mut().enumerate() {
                *o = f(*o, std::array::from_fn(|k| srcs[k][i]));
            }
        },
    )
}

/// One extra input of [`fused`]: its data in standard layout and its strides within the
/// output's shape (0 along broadcast dims).
struct Extra<'e, T: Clone> {
    data: Cow<'e, [T]>,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl<'e, T: Elem> Extra<'e, T> {
    fn new(e: &'e ArrayD<T>, shape: &[usize]) -> Result<Self> {
        if e.ndim() > shape.len() || broadcast_shape(e.shape(), shape)? != shape {
            return shape_err(format!("fused: {:?} does not broadcast into {shape:?}", e.shape()));
        }
        let pad = shape.len() - e.ndim();
        let dims: Vec<usize> = (0..shape.len()).map(|d| if d < pad { 1 } else { e.shape()[d - pad] }).collect();
        let mut strides = vec![0usize; dims.len()];
        let mut step = 1;
        for d in (0..dims.len()).rev() {
            strides[d] = if dims[d] == 1 { 0 } else { step };
            step *= dims[d];
        }
        let data = match e.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(e.iter().copied().collect()),
        };
        Ok(Extra { data, dims, strides })
    }

    /// Whether the dims from `k` on are all broadcast (size 1) or all full.
    fn uniform_from(&self, k: usize, shape: &[usize]) -> bool {
        let tail = k..shape.len();
        tail.clone().all(|d| self.dims[d] == shape[d]) || tail.clone().all(|d| self.dims[d] == 1)
    }

    /// Whether this input changes along a row that starts at dim `k`.
    fn varies_from(&self, k: usize, shape: &[usize]) -> bool {
        (k..shape.len()).any(|d| self.dims[d] != 1)
    }

    /// Offset of the row at the outer `index`.
    fn offset(&self, index: &[usize]) -> usize {
        index.iter().zip(&self.strides).map(|(i, s)| i * s).sum()
    }
}

/// Applies `f` to every element.
pub fn unary<A: Elem, O: Elem>(a: &ArrayD<A>, f: impl Fn(A) -> O) -> Result<ArrayD<O>> {
    if let Some(x) = a.as_slice() {
        let f = &f;
        // Contiguous: a slice loop (vectorized), not ndarray's generic iterator.
        let mut out = vec![O::default(); x.len()];
        simd(
            #[inline(always)]
            || {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = f(v);
                }
            },
        );
        if let Ok(arr) = ArrayD::from_shape_vec(a.raw_dim(), out) {
            return Ok(arr);
        }
    }
    Ok(a.mapv(f))
}

/// Folds any number of inputs with a binary function (Sum, Max, Min, Mean...).
pub fn variadic<T: Elem>(inputs: &[&ArrayD<T>], f: impl Fn(T, T) -> T + Copy) -> Result<ArrayD<T>> {
    let (first, rest) = match inputs.split_first() {
        Some(x) => x,
        None => return shape_err("variadic operator without inputs"),
    };
    rest.iter().try_fold((*first).clone(), |acc, x| binary_op(acc, *x, f))
}

pub fn add<'a, T: Num>(a: impl Operand<'a, T>, b: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    binary_op(a, b, T::add)
}
pub fn sub<'a, T: Num>(a: impl Operand<'a, T>, b: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    binary_op(a, b, T::sub)
}
pub fn mul<'a, T: Num>(a: impl Operand<'a, T>, b: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    binary_op(a, b, T::mul)
}
pub fn div<'a, T: Num>(a: impl Operand<'a, T>, b: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    binary_op(a, b, T::div)
}
/// ONNX `Mod`: `fmod` follows the dividend's sign, else the divisor's.
pub fn modulo<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>, fmod: bool) -> Result<ArrayD<T>> {
    if fmod { binary(a, b, T::fmod) } else { binary(a, b, T::modulo) }
}
/// ONNX `Pow`: the exponent may have another type than the base.
pub fn pow<T: Num, E: Num>(a: &ArrayD<T>, b: &ArrayD<E>) -> Result<ArrayD<T>> {
    binary(a, b, |x, y| {
        if T::DESCR.contains('f') {
            T::from_f64(x.to_f64().powf(y.to_f64()))
        } else {
            T::from_i64(ipow(x.to_i64(), y.to_i64()))
        }
    })
}
fn ipow(base: i64, exp: i64) -> i64 {
    if exp < 0 {
        return if base == 1 { 1 } else { 0 };
    }
    (0..exp).fold(1i64, |acc, _| acc.wrapping_mul(base))
}
pub fn max<T: Num>(inputs: &[&ArrayD<T>]) -> Result<ArrayD<T>> {
    variadic(inputs, T::maximum)
}
pub fn min<T: Num>(inputs: &[&ArrayD<T>]) -> Result<ArrayD<T>> {
    variadic(inputs, T::minimum)
}
pub fn sum<T: Num>(inputs: &[&ArrayD<T>]) -> Result<ArrayD<T>> {
    variadic(inputs, T::add)
}
pub fn mean<T: Float>(inputs: &[&ArrayD<T>]) -> Result<ArrayD<T>> {
    let n = T::from_f64(inputs.len() as f64);
    Ok(variadic(inputs, T::add)?.mapv(|v| v.div(n)))
}

pub fn equal<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x == y)
}
pub fn less<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x < y)
}
pub fn less_or_equal<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x <= y)
}
pub fn greater<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x > y)
}
pub fn greater_or_equal<T: Elem>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x >= y)
}
pub fn and(a: &ArrayD<bool>, b: &ArrayD<bool>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x && y)
}
pub fn or(a: &ArrayD<bool>, b: &ArrayD<bool>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x || y)
}
pub fn xor(a: &ArrayD<bool>, b: &ArrayD<bool>) -> Result<ArrayD<bool>> {
    binary(a, b, |x, y| x ^ y)
}
pub fn not(a: &ArrayD<bool>) -> Result<ArrayD<bool>> {
    unary(a, |x| !x)
}
/// Bitwise operators on integers, through u64 bit patterns.
pub fn bitwise<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>, op: &str) -> Result<ArrayD<T>> {
    let f = |x: T, y: T| {
        let (x, y) = (x.to_i64(), y.to_i64());
        T::from_i64(match op {
            "and" => x & y,
            "or" => x | y,
            "xor" => x ^ y,
            "left" => {
                if (0..64).contains(&y) { ((x as u64) << y) as i64 } else { 0 }
            }
            _ => {
                let bits = (T::SIZE * 8) as i64;
                let ux = (x as u64) & if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                if (0..64).contains(&y) { (ux >> y) as i64 } else { 0 }
            }
        })
    };
    binary(a, b, f)
}
pub fn bitwise_not<T: Num>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |x| T::from_i64(!x.to_i64()))
}
/// `cond ? x : y` with broadcasting of all three.
pub fn where_<T: Elem>(cond: &ArrayD<bool>, x: &ArrayD<T>, y: &ArrayD<T>) -> Result<ArrayD<T>> {
    let shape = broadcast_shape(&broadcast_shape(cond.shape(), x.shape())?, y.shape())?;
    let (c, xv, yv) = (broadcast_to(cond, &shape)?, broadcast_to(x, &shape)?, broadcast_to(y, &shape)?);
    Ok(Zip::from(&c).and(&xv).and(&yv).map_collect(|&c, &a, &b| if c { a } else { b }))
}
/// Clamps into `[lo, hi]` (either bound optional).
pub fn clip<'a, T: Num>(a: impl Operand<'a, T>, lo: Option<T>, hi: Option<T>) -> Result<ArrayD<T>> {
    let lo = lo.unwrap_or_else(T::lowest);
    let hi = hi.unwrap_or_else(T::highest);
    // When lo > hi every value becomes hi, as ONNX specifies.
    unary_op(a, move |v| {
        let v = if v < lo { lo } else { v };
        if v > hi { hi } else { v }
    })
}
/// Element conversion as ONNX `Cast` (float to int truncates, like C).
pub fn cast<A: Elem, O: Elem>(a: &ArrayD<A>) -> Result<ArrayD<O>> {
    let int_src = !A::DESCR.contains('f') && A::DESCR != "|b1";
    if O::DESCR == "|b1" {
        return unary(a, |v| O::from_bool(v.is_true()));
    }
    if int_src {
        unary(a, |v| O::from_i64(v.to_i64()))
    } else {
        unary(a, |v| O::from_f64(v.to_f64()))
    }
}
/// The first element of a tensor, for scalar operands such as Clip bounds.
pub fn scalar<T: Elem>(a: &ArrayD<T>) -> Result<T> {
    match a.iter().next() {
        Some(v) => Ok(*v),
        None => shape_err("expected a scalar, got an empty tensor"),
    }
}

pub fn neg<'a, T: Num>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    unary_op(a, T::neg)
}
pub fn abs<'a, T: Num>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    unary_op(a, T::abs)
}
pub fn sign<T: Num>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| {
        if v > T::zero() {
            T::one()
        } else if v < T::zero() {
            T::one().neg()
        } else {
            v
        }
    })
}
pub fn relu<'a, T: Num>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    unary_op(a, |v| if v > T::zero() { v } else { T::zero() })
}
pub fn leaky_relu<'a, T: Float>(a: impl Operand<'a, T>, alpha: f64) -> Result<ArrayD<T>> {
    let alpha = T::from_f64(alpha);
    unary_op(a, move |v| if v >= T::zero() { v } else { v.mul(alpha) })
}
pub fn prelu<T: Num>(a: &ArrayD<T>, slope: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, slope, |v, s| if v >= T::zero() { v } else { v.mul(s) })
}
pub fn thresholded_relu<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    let alpha = T::from_f64(alpha);
    unary(a, |v| if v > alpha { v } else { T::zero() })
}
pub fn sigmoid<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    float_map(a, vmath::sigmoid_f32, |v| {
        if v >= T::zero() {
            T::one().div(T::one().add(v.neg().exp()))
        } else {
            let e = v.exp();
            e.div(T::one().add(e))
        }
    })
}
pub fn hard_sigmoid<'a, T: Float>(a: impl Operand<'a, T>, alpha: f64, beta: f64) -> Result<ArrayD<T>> {
    let (a_t, b_t) = (T::from_f64(alpha), T::from_f64(beta));
    unary_op(a, move |v| {
        let y = a_t.mul(v).add(b_t);
        if y < T::zero() {
            T::zero()
        } else if y > T::one() {
            T::one()
        } else {
            y
        }
    })
}
pub fn hard_swish<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    let (sixth, half) = (T::from_f64(1.0 / 6.0), T::from_f64(0.5));
    unary_op(a, move |v| {
        let g = v.mul(sixth).add(half);
        let g = if g < T::zero() { T::zero() } else if g > T::one() { T::one() } else { g };
        v.mul(g)
    })
}
pub fn elu<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    let alpha = T::from_f64(alpha);
    unary(a, |v| if v >= T::zero() { v } else { alpha.mul(v.exp().sub(T::one())) })
}
pub fn celu<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(x.max(0.0) + (alpha * ((x / alpha).exp() - 1.0)).min(0.0))
    })
}
pub fn selu<T: Float>(a: &ArrayD<T>, alpha: f64, gamma: f64) -> Result<ArrayD<T>> {
    let (alpha, gamma) = (T::from_f64(alpha), T::from_f64(gamma));
    unary(a, |v| {
        if v > T::zero() {
            gamma.mul(v)
        } else {
            gamma.mul(alpha.mul(v.exp()).sub(alpha))
        }
    })
}
pub fn softplus<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(if x > 30.0 { x } else { x.exp().ln_1p() })
    })
}
pub fn softsign<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| v.div(T::one().add(v.abs())))
}
pub fn mish<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(x * (if x > 30.0 { x } else { x.exp().ln_1p() }).tanh())
    })
}
/// GELU, exact (erf) or with the tanh approximation; f32 through the vectorized kernels.
pub fn gelu<'a, T: Float>(a: impl Operand<'a, T>, tanh_approx: bool) -> Result<ArrayD<T>> {
    let slow = move |v: T| {
        let x = v.to_f64();
        let y = if tanh_approx {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        } else {
            0.5 * x * (1.0 + super::elem::erf64(x / std::f64::consts::SQRT_2))
        };
        T::from_f64(y)
    };
    if tanh_approx {
        float_map(a, vmath::gelu_tanh_f32, slow)
    } else {
        float_map(a, vmath::gelu_f32, slow)
    }
}
pub fn shrink<T: Num>(a: &ArrayD<T>, bias: f64, lambd: f64) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(if x < -lambd {
            x + bias
        } else if x > lambd {
            x - bias
        } else {
            0.0
        })
    })
}
pub fn reciprocal<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    unary_op(a, |v| T::one().div(v))
}
pub fn is_nan<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<bool>> {
    unary(a, |v| v.is_nan())
}
pub fn is_inf<T: Float>(a: &ArrayD<T>, pos: bool, neg: bool) -> Result<ArrayD<bool>> {
    unary(a, |v| v.is_infinite() && ((pos && v > T::zero()) || (neg && v < T::zero())))
}

macro_rules! float_unary {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            pub fn $name<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
                unary_op(a, T::$method)
            }
        )*
    };
}

float_unary!(
    log => ln, sqrt => sqrt, sin => sin, cos => cos, tan => tan,
    asin => asin, acos => acos, atan => atan, sinh => sinh, cosh => cosh, asinh => asinh,
    acosh => acosh, atanh => atanh, floor => floor, ceil => ceil, round => round_even,
);

pub fn exp<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    float_map(a, vmath::exp_f32, T::exp)
}
pub fn tanh<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    float_map(a, vmath::tanh_f32, T::tanh)
}
pub fn erf<'a, T: Float>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    float_map(a, vmath::erf_f32, T::erf)
}

/// The input itself (Identity, Dropout at inference): a moved operand costs nothing.
pub fn identity<'a, T: Elem>(a: impl Operand<'a, T>) -> Result<ArrayD<T>> {
    Ok(a.into_cow().into_owned())
}

/// `x * sigmoid(alpha * x)`.
pub fn swish<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(x / (1.0 + (-alpha * x).exp()))
    })
}
