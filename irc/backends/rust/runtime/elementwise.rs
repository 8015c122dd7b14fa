//! Elementwise operators with numpy broadcasting.

use super::elem::{Elem, Float, Num};
use super::error::{shape_err, Result};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

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
    f: &impl Fn(A, B) -> O,
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
        broadcast_rows(y, x, mid, inner, |q, p| f(p, q))
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
fn broadcast_rows<X: Copy, Y: Copy, O>(x: &[X], y: &[Y], mid: usize, inner: usize, f: impl Fn(X, Y) -> O) -> Vec<O> {
    let mut out = Vec::with_capacity(x.len());
    if inner == 1 {
        for xs in x.chunks_exact(mid) {
            out.extend(xs.iter().zip(y).map(|(&p, &q)| f(p, q)));
        }
    } else {
        for (xs, &q) in x.chunks_exact(inner).zip(y.iter().cycle()) {
            out.extend(xs.iter().map(|&p| f(p, q)));
        }
    }
    out
}

/// Applies `f` to every element.
pub fn unary<A: Elem, O: Elem>(a: &ArrayD<A>, f: impl Fn(A) -> O) -> Result<ArrayD<O>> {
    if let Some(x) = a.as_slice() {
        // Contiguous: a slice loop (vectorizable), not ndarray's generic iterator.
        let out: Vec<O> = x.iter().map(|&v| f(v)).collect();
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
    rest.iter().try_fold((*first).clone(), |acc, x| binary(&acc, x, f))
}

pub fn add<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, b, T::add)
}
pub fn sub<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, b, T::sub)
}
pub fn mul<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, b, T::mul)
}
pub fn div<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, b, T::div)
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
pub fn clip<T: Num>(a: &ArrayD<T>, lo: Option<T>, hi: Option<T>) -> Result<ArrayD<T>> {
    let lo = lo.unwrap_or_else(T::lowest);
    let hi = hi.unwrap_or_else(T::highest);
    // When lo > hi every value becomes hi, as ONNX specifies.
    unary(a, |v| {
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

pub fn neg<T: Num>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, T::neg)
}
pub fn abs<T: Num>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, T::abs)
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
pub fn relu<T: Num>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| if v > T::zero() { v } else { T::zero() })
}
pub fn leaky_relu<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    let alpha = T::from_f64(alpha);
    unary(a, |v| if v >= T::zero() { v } else { v.mul(alpha) })
}
pub fn prelu<T: Num>(a: &ArrayD<T>, slope: &ArrayD<T>) -> Result<ArrayD<T>> {
    binary(a, slope, |v, s| if v >= T::zero() { v } else { v.mul(s) })
}
pub fn thresholded_relu<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    let alpha = T::from_f64(alpha);
    unary(a, |v| if v > alpha { v } else { T::zero() })
}
pub fn sigmoid<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| {
        if v >= T::zero() {
            T::one().div(T::one().add(v.neg().exp()))
        } else {
            let e = v.exp();
            e.div(T::one().add(e))
        }
    })
}
pub fn hard_sigmoid<T: Float>(a: &ArrayD<T>, alpha: f64, beta: f64) -> Result<ArrayD<T>> {
    unary(a, |v| T::from_f64((alpha * v.to_f64() + beta).clamp(0.0, 1.0)))
}
pub fn hard_swish<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(x * (x / 6.0 + 0.5).clamp(0.0, 1.0))
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
/// GELU, exact (erf) or with the tanh approximation.
pub fn gelu<T: Float>(a: &ArrayD<T>, tanh_approx: bool) -> Result<ArrayD<T>> {
    if !tanh_approx && T::DESCR == "<f4" {
        return unary(a, |v| T::from_f64(gelu_erf_f32(v.to_f64() as f32) as f64));
    }
    unary(a, |v| {
        let x = v.to_f64();
        let y = if tanh_approx {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        } else {
            0.5 * x * (1.0 + super::elem::erf64(x / std::f64::consts::SQRT_2))
        };
        T::from_f64(y)
    })
}
/// Exact-form GELU `x * Φ(x)` for f32 in f32 arithmetic (the series `erf64` costs tens of
/// divisions per element). `Φ(x) = erfc(-x/√2) / 2`, with erfc from Abramowitz & Stegun
/// 7.1.26 (absolute error of erf below 1.5e-7) on `|z| < 3.5`, which is well below f32
/// rounding of the result; beyond that the tail goes to the accurate `erf64`.
fn gelu_erf_f32(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    if a.is_nan() || a >= 3.5 {
        // Tails (and NaN): rare, so the accurate path costs nothing overall.
        return (0.5 * x as f64 * (1.0 + super::elem::erf64(z as f64))) as f32;
    }
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let erfc_a = poly * (-a * a).exp(); // erfc(|z|)
    // Φ(x) = 1 - erfc(z)/2 for z >= 0, erfc(|z|)/2 for z < 0 (no cancellation in the tail).
    let phi = if z >= 0.0 { 1.0 - 0.5 * erfc_a } else { 0.5 * erfc_a };
    x * phi
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
pub fn reciprocal<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    unary(a, |v| T::one().div(v))
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
            pub fn $name<T: Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
                unary(a, T::$method)
            }
        )*
    };
}

float_unary!(
    exp => exp, log => ln, sqrt => sqrt, tanh => tanh, sin => sin, cos => cos, tan => tan,
    asin => asin, acos => acos, atan => atan, sinh => sinh, cosh => cosh, asinh => asinh,
    acosh => acosh, atanh => atanh, floor => floor, ceil => ceil, round => round_even, erf => erf,
);

/// A copy of the input (Identity, Dropout at inference).
pub fn identity<T: Elem>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    Ok(a.clone())
}

/// `x * sigmoid(alpha * x)`.
pub fn swish<T: Float>(a: &ArrayD<T>, alpha: f64) -> Result<ArrayD<T>> {
    unary(a, |v| {
        let x = v.to_f64();
        T::from_f64(x / (1.0 + (-alpha * x).exp()))
    })
}
