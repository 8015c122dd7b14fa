//! Element types: what every tensor element can do, without any crate beyond ndarray.

use super::error::{Error, Result};
use ndarray::ArrayD;
use std::any::TypeId;
use std::borrow::Cow;
use std::fmt::Debug;

/// An input of a layer: borrowed (`&x`: the layer writes a new array) or moved (`x`: an
/// intermediate that dies at this layer, whose buffer the layer may reuse for its output).
///
/// The generated `forward` moves a value into the last layer that reads it, so in-place
/// layers (activations, arithmetic, normalization, reshapes) allocate nothing.
pub trait Operand<'a, T: Clone + 'a> {
    /// The array, owned or borrowed.
    fn into_cow(self) -> Cow<'a, ArrayD<T>>;
}

impl<'a, T: Clone + 'a> Operand<'a, T> for ArrayD<T> {
    fn into_cow(self) -> Cow<'a, ArrayD<T>> {
        Cow::Owned(self)
    }
}

impl<'a, T: Clone + 'a> Operand<'a, T> for &'a ArrayD<T> {
    fn into_cow(self) -> Cow<'a, ArrayD<T>> {
        Cow::Borrowed(self)
    }
}

/// Whether `T` is `f32` (fast paths use the vectorized f32 kernels of `vmath`).
pub fn is_f32<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// `x` as `&[f32]` when `T` is `f32`.
pub fn as_f32<T: 'static>(x: &[T]) -> Option<&[f32]> {
    // SAFETY: `T` is `f32` (same TypeId), so the cast is the identity.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts(x.as_ptr() as *const f32, x.len()) })
}

/// `x` as `&mut [f32]` when `T` is `f32`.
pub fn as_f32_mut<T: 'static>(x: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: `T` is `f32` (same TypeId), so the cast is the identity.
    is_f32::<T>().then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) })
}

/// A tensor of any supported element type, as read from or written to a `.npy` file.
#[derive(Debug, Clone)]
pub enum AnyArray {
    F16(ArrayD<super::half::F16>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I8(ArrayD<i8>),
    I16(ArrayD<i16>),
    I32(ArrayD<i32>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
    U16(ArrayD<u16>),
    U32(ArrayD<u32>),
    U64(ArrayD<u64>),
    Bool(ArrayD<bool>),
}

impl AnyArray {
    /// The `.npy` descr of the element type, e.g. `<f4`.
    pub fn descr(&self) -> &'static str {
        match self {
            AnyArray::F16(_) => super::half::F16::DESCR,
            AnyArray::F32(_) => f32::DESCR,
            AnyArray::F64(_) => f64::DESCR,
            AnyArray::I8(_) => i8::DESCR,
            AnyArray::I16(_) => i16::DESCR,
            AnyArray::I32(_) => i32::DESCR,
            AnyArray::I64(_) => i64::DESCR,
            AnyArray::U8(_) => u8::DESCR,
            AnyArray::U16(_) => u16::DESCR,
            AnyArray::U32(_) => u32::DESCR,
            AnyArray::U64(_) => u64::DESCR,
            AnyArray::Bool(_) => bool::DESCR,
        }
    }

    /// Converts into a typed array, failing with a clear message on a dtype mismatch.
    pub fn into_typed<T: Elem>(self, name: &str) -> Result<ArrayD<T>> {
        let found = self.descr();
        T::from_any(self).ok_or_else(|| {
            Error::DType(format!("input `{name}`: expected dtype {}, got {found}", T::DESCR))
        })
    }
}

/// An element type of a tensor.
pub trait Elem: Copy + Default + PartialEq + PartialOrd + Debug + Send + Sync + 'static {
    /// The `.npy` descr of this type.
    const DESCR: &'static str;
    /// Code of this type in `weights.bin` (the ONNX TensorProto element type).
    const CODE: u32;
    /// Size in bytes.
    const SIZE: usize;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
    fn from_bool(v: bool) -> Self;
    fn is_true(self) -> bool;
    /// The smallest value (minus infinity for floats): the identity of `max`.
    fn lowest() -> Self;
    /// The largest value (infinity for floats): the identity of `min`.
    fn highest() -> Self;
    fn read_le(bytes: &[u8]) -> Self;
    fn write_le(self, out: &mut Vec<u8>);
    fn from_any(a: AnyArray) -> Option<ArrayD<Self>>;
    fn into_any(a: ArrayD<Self>) -> AnyArray;
}

/// A numeric type: arithmetic that never panics (integer division by zero gives 0).
pub trait Num: Elem {
    fn zero() -> Self;
    fn one() -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// Remainder with the sign of the divisor (Python's `%`).
    fn modulo(self, o: Self) -> Self;
    /// Remainder with the sign of the dividend (C's `fmod`).
    fn fmod(self, o: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    fn pow(self, o: Self) -> Self;
    fn maximum(self, o: Self) -> Self {
        if o > self { o } else { self }
    }
    fn minimum(self, o: Self) -> Self {
        if o < self { o } else { self }
    }
    /// `c += alpha * a @ b` style matrix product: `c = alpha * a @ b + beta * c`.
    fn gemm(
        alpha: Self,
        a: &ndarray::ArrayView2<Self>,
        b: &ndarray::ArrayView2<Self>,
        beta: Self,
        c: &mut ndarray::ArrayViewMut2<Self>,
    );
}

/// A floating-point type.
pub trait Float: Num {
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn tanh(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tan(self) -> Self;
    fn asin(self) -> Self;
    fn acos(self) -> Self;
    fn atan(self) -> Self;
    fn sinh(self) -> Self;
    fn cosh(self) -> Self;
    fn asinh(self) -> Self;
    fn acosh(self) -> Self;
    fn atanh(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    /// Round half to even, as ONNX `Round`.
    fn round_even(self) -> Self;
    fn erf(self) -> Self;
    fn is_nan(self) -> bool;
    fn is_infinite(self) -> bool;
    fn powf(self, o: Self) -> Self;
    fn nan() -> Self;
}

macro_rules! elem_common {
    ($t:ty, $descr:expr, $code:expr, $variant:ident) => {
        const DESCR: &'static str = $descr;
        const CODE: u32 = $code;
        const SIZE: usize = std::mem::size_of::<$t>();
        fn read_le(bytes: &[u8]) -> Self {
            let mut buf = [0u8; std::mem::size_of::<$t>()];
            buf.copy_from_slice(&bytes[..std::mem::size_of::<$t>()]);
            <$t>::from_le_bytes(buf)
        }
        fn write_le(self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.to_le_bytes());
        }
        fn from_any(a: AnyArray) -> Option<ArrayD<Self>> {
            match a {
                AnyArray::$variant(x) => Some(x),
                _ => None,
            }
        }
        fn into_any(a: ArrayD<Self>) -> AnyArray {
            AnyArray::$variant(a)
        }
    };
}

macro_rules! int_elem {
    ($t:ty, $descr:expr, $code:expr, $variant:ident, $signed:expr) => {
        impl Elem for $t {
            elem_common!($t, $descr, $code, $variant);
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn from_bool(v: bool) -> Self {
                v as $t
            }
            fn is_true(self) -> bool {
                self != 0
            }
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn highest() -> Self {
                <$t>::MAX
            }
        }
        impl Num for $t {
            fn zero() -> Self {
                0
            }
            fn one() -> Self {
                1
            }
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_div(o) }
            }
            #[allow(unused_comparisons)]
            fn modulo(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                if $signed && r != 0 && ((r < Self::zero()) != (o < Self::zero())) {
                    r.wrapping_add(o)
                } else {
                    r
                }
            }
            fn fmod(self, o: Self) -> Self {
                if o == 0 { 0 } else { self.wrapping_rem(o) }
            }
            #[allow(clippy::unnecessary_cast)]
            fn neg(self) -> Self {
                (0 as $t).wrapping_sub(self)
            }
            #[allow(unused_comparisons)]
            fn abs(self) -> Self {
                if self < 0 as $t { self.neg() } else { self }
            }
            fn pow(self, o: Self) -> Self {
                (self as f64).powf(o as f64) as $t
            }
            fn gemm(
                alpha: Self,
                a: &ndarray::ArrayView2<Self>,
                b: &ndarray::ArrayView2<Self>,
                beta: Self,
                c: &mut ndarray::ArrayViewMut2<Self>,
            ) {
                ndarray::linalg::general_mat_mul(alpha, a, b, beta, c);
            }
        }
    };
}

int_elem!(i8, "|i1", 3, I8, true);
int_elem!(i16, "<i2", 5, I16, true);
int_elem!(i32, "<i4", 6, I32, true);
int_elem!(i64, "<i8", 7, I64, true);
int_elem!(u8, "|u1", 2, U8, false);
int_elem!(u16, "<u2", 4, U16, false);
int_elem!(u32, "<u4", 12, U32, false);
int_elem!(u64, "<u8", 13, U64, false);

impl Elem for bool {
    const DESCR: &'static str = "|b1";
    const CODE: u32 = 9;
    const SIZE: usize = 1;
    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn from_bool(v: bool) -> Self {
        v
    }
    fn is_true(self) -> bool {
        self
    }
    fn lowest() -> Self {
        false
    }
    fn highest() -> Self {
        true
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn from_any(a: AnyArray) -> Option<ArrayD<Self>> {
        match a {
            AnyArray::Bool(x) => Some(x),
            _ => None,
        }
    }
    fn into_any(a: ArrayD<Self>) -> AnyArray {
        AnyArray::Bool(a)
    }
}

macro_rules! float_elem {
    ($t:ident, $descr:expr, $code:expr, $variant:ident) => {
        impl Elem for $t {
            elem_common!($t, $descr, $code, $variant);
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            fn from_bool(v: bool) -> Self {
                if v { 1.0 } else { 0.0 }
            }
            fn is_true(self) -> bool {
                self != 0.0
            }
            fn lowest() -> Self {
                <$t>::NEG_INFINITY
            }
            fn highest() -> Self {
                <$t>::INFINITY
            }
        }
        impl Num for $t {
            fn zero() -> Self {
                0.0
            }
            fn one() -> Self {
                1.0
            }
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn modulo(self, o: Self) -> Self {
                let r = self % o;
                if r != 0.0 && ((r < 0.0) != (o < 0.0)) { r + o } else { r }
            }
            fn fmod(self, o: Self) -> Self {
                self % o
            }
            fn neg(self) -> Self {
                -self
            }
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            fn pow(self, o: Self) -> Self {
                self.powf(o)
            }
            fn maximum(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() { <$t>::NAN } else if o > self { o } else { self }
            }
            fn minimum(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() { <$t>::NAN } else if o < self { o } else { self }
            }
            float_gemm!($t);
        }
        impl Float for $t {
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            fn tan(self) -> Self {
                <$t>::tan(self)
            }
            fn asin(self) -> Self {
                <$t>::asin(self)
            }
            fn acos(self) -> Self {
                <$t>::acos(self)
            }
            fn atan(self) -> Self {
                <$t>::atan(self)
            }
            fn sinh(self) -> Self {
                <$t>::sinh(self)
            }
            fn cosh(self) -> Self {
                <$t>::cosh(self)
            }
            fn asinh(self) -> Self {
                <$t>::asinh(self)
            }
            fn acosh(self) -> Self {
                <$t>::acosh(self)
            }
            fn atanh(self) -> Self {
                <$t>::atanh(self)
            }
            fn floor(self) -> Self {
                <$t>::floor(self)
            }
            fn ceil(self) -> Self {
                <$t>::ceil(self)
            }
            fn round_even(self) -> Self {
                let r = <$t>::round(self);
                if (self - <$t>::trunc(self)).abs() == 0.5 { 2.0 * <$t>::round(self / 2.0) } else { r }
            }
            fn erf(self) -> Self {
                erf64(self as f64) as $t
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn is_infinite(self) -> bool {
                <$t>::is_infinite(self)
            }
            fn powf(self, o: Self) -> Self {
                <$t>::powf(self, o)
            }
            fn nan() -> Self {
                <$t>::NAN
            }
        }
    };
}

macro_rules! float_gemm {
    (f32) => {
        fn gemm(
            alpha: Self,
            a: &ndarray::ArrayView2<Self>,
            b: &ndarray::ArrayView2<Self>,
            beta: Self,
            c: &mut ndarray::ArrayViewMut2<Self>,
        ) {
            super::linalg::gemm_f32(alpha, a, b, beta, c);
        }
    };
    (f64) => {
        fn gemm(
            alpha: Self,
            a: &ndarray::ArrayView2<Self>,
            b: &ndarray::ArrayView2<Self>,
            beta: Self,
            c: &mut ndarray::ArrayViewMut2<Self>,
        ) {
            ndarray::linalg::general_mat_mul(alpha, a, b, beta, c);
        }
    };
}

float_elem!(f32, "<f4", 1, F32);
float_elem!(f64, "<f8", 11, F64);

/// The error function, accurate to about 1e-15: a Taylor series near zero, a continued fraction beyond.
pub fn erf64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut term, mut sum, x2) = (a, a, a * a);
        for n in 1..200 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut frac = 0.0;
        for n in (1..80).rev() {
            frac = (n as f64 / 2.0) / (a + frac);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + frac)
    };
    if x < 0.0 { -r } else { r }
}
