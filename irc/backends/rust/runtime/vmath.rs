//! Vectorizable f32 math and the run-time choice of instruction set for hot loops.
//!
//! libm's `expf`, `tanhf` and `erff` are scalar calls, so a loop over them never
//! vectorizes. The functions here are branch-free polynomials (selects, not jumps) that
//! LLVM turns into SIMD code; their relative error is below about 1e-6 (tested against
//! f64 in the crate tests). [`simd`] runs a closure compiled for AVX-512 or AVX2+FMA when
//! the CPU has them, so a portable binary still gets wide vectors in these loops.

#[cfg(target_arch = "x86_64")]
use std::sync::atomic::{AtomicU8, Ordering};

/// Runs `f`, compiled for the widest instruction set of this CPU (AVX-512, AVX2+FMA, or
/// the target's baseline). Mark the closure `#[inline(always)]` so that its loops are
/// inlined, and so vectorized, inside each variant.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match isa() {
            // SAFETY: `isa` checked that the CPU supports these features.
            2 => return unsafe { with_avx512(f) },
            1 => return unsafe { with_avx2(f) },
            _ => {}
        }
    }
    f()
}

/// 2: AVX-512F (+AVX2, FMA), 1: AVX2+FMA, 0: neither. Detected once.
#[cfg(target_arch = "x86_64")]
fn isa() -> u8 {
    static ISA: AtomicU8 = AtomicU8::new(u8::MAX);
    let known = ISA.load(Ordering::Relaxed);
    if known != u8::MAX {
        return known;
    }
    let avx2 = super::cpu::avx2_fma();
    let found = match (avx2, super::cpu::avx512()) {
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    };
    ISA.store(found, Ordering::Relaxed);
    found
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `x[i] = f(x[i])` for every element, vectorized.
#[inline(always)]
pub fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    simd(
        #[inline(always)]
        // A `for` loop, not `for_each`: `fold` may stay an out-of-line call compiled
        // without the wide instruction set.
        move || {
            for v in x.iter_mut() {
                *v = f(*v);
            }
        },
    )
}

/// `dst[i] = f(src[i])`, vectorized (`dst` and `src` have the same length).
#[inline(always)]
pub fn map_into(src: &[f32], dst: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    simd(
        #[inline(always)]
        move || {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = f(s);
            }
        },
    )
}

// 1.5 * 2^23: adding it rounds an f32 below 2^22 to an integer, held in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
// ln 2 split in two: LN2_HI has 9 significant bits, so `n * LN2_HI` is exact for |n| < 2^15.
const LN2_HI: f32 = 0.693_359_375;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x`; relative error ~1e-7, exact overflow to infinity, underflow to 0, NaN kept.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // e^x = 2^n * e^r with n = round(x / ln 2) and |r| <= ln(2) / 2.
    let x = x.clamp(-104.0, 88.8);
    let shifted = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Taylor series of e^r to degree 7: truncation error < 6e-9 on |r| <= 0.35.
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0
        + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n as two normal powers of two (n is in [-150, 128]), so that results near the
    // subnormal range and up to f32::MAX come out right.
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let half = ni >> 1;
    let pow2 = |e: i32| f32::from_bits((e.wrapping_add(127) as u32) << 23);
    p * pow2(half) * pow2(ni.wrapping_sub(half))
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// `tanh(x)`: an odd Taylor polynomial near 0, `1 - 2 / (e^2|x| + 1)` beyond.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    // Through x^15: the next term is below 4e-7 relative for |x| < 0.55.
    let near = x * (1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0
        + z * (-1382.0 / 155_925.0 + z * (21_844.0 / 6_081_075.0 + z * (-929_569.0 / 638_512_875.0))))))));
    let far = (1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0)).copysign(x);
    if a < 0.55 { near } else { far }
}

/// `erfc(z)` for `z >= 0`, fractional error below 1.1e-7 everywhere (the Chebyshev fit
/// of Numerical Recipes, `erfcc`).
#[inline(always)]
fn erfc_nonneg(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_2 + t * (1.000_023_7 + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06
        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t * exp_f32(poly - z * z)
}

/// `erf(x)`: its Taylor series for |x| < 0.75 (no cancellation near 0), `1 - erfc(|x|)` beyond.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let z = x * x;
    // 2/sqrt(pi) * (x - x^3/3 + x^5/10 - ...), through x^17: error < 2e-8 for |x| < 0.75.
    let near = x * std::f32::consts::FRAC_2_SQRT_PI * (1.0 + z * (-1.0 / 3.0 + z * (1.0 / 10.0 + z * (-1.0 / 42.0
        + z * (1.0 / 216.0 + z * (-1.0 / 1320.0 + z * (1.0 / 9360.0 + z * (-1.0 / 75_600.0 + z * (1.0 / 685_440.0)))))))));
    let far = (1.0 - erfc_nonneg(x.abs())).copysign(x);
    if x.abs() < 0.75 { near } else { far }
}

/// Exact-form GELU `x * Φ(x)`, with `Φ(x) = erfc(-x/√2) / 2` so that the negative tail
/// keeps its relative precision.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    let e = erfc_nonneg(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    let phi = if x <= 0.0 { 0.5 * e } else { 1.0 - 0.5 * e };
    x * phi
}

/// Tanh-form GELU: `x/2 * (1 + tanh(u))` is `x * sigmoid(2u)`, computed that way (no
/// cancellation for negative x).
#[inline(always)]
pub fn gelu_tanh_f32(x: f32) -> f32 {
    // sqrt(2 / pi)
    const K: f32 = 0.797_884_6;
    let u = K * (x + 0.044_715 * x * x * x);
    x * sigmoid_f32(2.0 * u)
}

/// ONNX `Max` on f32: NaN if either operand is NaN.
#[inline(always)]
pub fn max_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else if b > a { b } else { a }
}

/// ONNX `Min` on f32: NaN if either operand is NaN.
#[inline(always)]
pub fn min_f32(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() { f32::NAN } else if b < a { b } else { a }
}

/// `max(x, 0)`, NaN kept (ONNX `Relu`).
#[inline(always)]
pub fn relu_f32(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// `ln(1 + e^x)` without overflow.
#[inline(always)]
pub fn softplus_f32(x: f32) -> f32 {
    if x > 30.0 { x } else { exp_f32(x).ln_1p() }
}

/// `x / (1 + |x|)`.
#[inline(always)]
pub fn softsign_f32(x: f32) -> f32 {
    x / (1.0 + x.abs())
}

/// Lanes of the partial sums below: one 512-bit vector (two 256-bit ones).
pub const LANES: usize = 16;

/// The sum of the lanes as a tree (halves added pairwise): a few vector shuffles and adds,
/// where `iter().sum()` would be a chain of 16 dependent scalar additions.
#[inline(always)]
pub fn hsum(acc: &[f32; LANES]) -> f32 {
    let mut v = *acc;
    let mut width = LANES / 2;
    while width > 0 {
        let (lo, hi) = v.split_at_mut(width);
        for (a, &b) in lo.iter_mut().zip(&hi[..width]) {
            *a += b;
        }
        width /= 2;
    }
    v[0]
}

/// Sum of `x` in 16 interleaved partial sums, which LLVM keeps in one vector register
/// (a single running sum is a dependency chain the compiler may not reorder).
#[inline(always)]
pub fn sum_f32(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    hsum(&acc) + tail
}

/// `Σ (x - m)^2`, in partial sums like [`sum_f32`].
#[inline(always)]
pub fn sum_sq_dev_f32(x: &[f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| (v - m) * (v - m)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v - m) * (v - m);
        }
    }
    hsum(&acc) + tail
}

/// `Σ |x|`, in partial sums like [`sum_f32`].
#[inline(always)]
pub fn sum_abs_f32(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v.abs()).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v.abs();
        }
    }
    hsum(&acc) + tail
}

/// `Σ e^(x - m)`, in partial sums like [`sum_f32`].
#[inline(always)]
pub fn sum_exp_f32(x: &[f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp_f32(v - m)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += exp_f32(v - m);
        }
    }
    hsum(&acc) + tail
}

/// The smallest element (NaN if any is NaN, +inf for an empty slice).
#[inline(always)]
pub fn min_of_f32(x: &[f32]) -> f32 {
    -max_of_f32_by(x, |v| -v)
}

/// The largest element (NaN if any is NaN, -inf for an empty slice).
#[inline(always)]
pub fn max_of_f32(x: &[f32]) -> f32 {
    max_of_f32_by(x, |v| v)
}

/// The largest `key(x)` (NaN if any is NaN, -inf for an empty slice).
#[inline(always)]
fn max_of_f32_by(x: &[f32], key: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut nan = false;
    let chunks = x.chunks_exact(LANES);
    for &v in chunks.remainder() {
        let v = key(v);
        nan |= v.is_nan();
        acc[0] = if v > acc[0] { v } else { acc[0] };
    }
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            let v = key(v);
            nan |= v.is_nan();
            *a = if v > *a { v } else { *a };
        }
    }
    if nan {
        return f32::NAN;
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}
