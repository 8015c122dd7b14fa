//! IEEE half precision (`float16`) without any crate: stored as bits, computed in f32.

use super::elem::{AnyArray, Elem, Float, Num};
use ndarray::ArrayD;
use std::cmp::Ordering;

/// A float16 value. Arithmetic runs in f32 and rounds back to nearest-even, as onnxruntime does.
#[derive(Clone, Copy, Default, Debug)]
pub struct F16(pub u16);

impl F16 {
    /// Rounds an f32 to the nearest float16 (ties to even).
    pub fn from_f32(x: f32) -> F16 {
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xff) as i32;
        let man = b & 0x7f_ffff;
        if exp == 0xff {
            return F16(sign | 0x7c00 | if man != 0 { 0x200 } else { 0 });
        }
        let e = exp - 127 + 15;
        if e >= 0x1f {
            return F16(sign | 0x7c00);
        }
        if e <= 0 {
            if e < -10 {
                return F16(sign);
            }
            let m = man | 0x80_0000;
            let shift = (14 - e) as u32;
            let half = 1u32 << (shift - 1);
            let rem = m & ((1u32 << shift) - 1);
            let mut r = m >> shift;
            if rem > half || (rem == half && r & 1 == 1) {
                r += 1;
            }
            return F16(sign | r as u16);
        }
        let mut r = ((e as u32) << 10) | (man >> 13);
        let rem = man & 0x1fff;
        if rem > 0x1000 || (rem == 0x1000 && r & 1 == 1) {
            r += 1;
        }
        F16(sign | r as u16)
    }

    /// The exact f32 value of this float16.
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x3ff;
        let bits = match exp {
            0 if man == 0 => sign,
            0 => {
                let (mut e, mut m) = (113u32, man);
                while m & 0x400 == 0 {
                    m <<= 1;
                    e -= 1;
                }
                sign | (e << 23) | ((m & 0x3ff) << 13)
            }
            0x1f => sign | 0x7f80_0000 | (man << 13),
            _ => sign | ((exp + 112) << 23) | (man << 13),
        };
        f32::from_bits(bits)
    }

    fn map(self, f: impl Fn(f32) -> f32) -> F16 {
        F16::from_f32(f(self.to_f32()))
    }

    fn zip(self, o: F16, f: impl Fn(f32, f32) -> f32) -> F16 {
        F16::from_f32(f(self.to_f32(), o.to_f32()))
    }
}

impl PartialEq for F16 {
    fn eq(&self, o: &F16) -> bool {
        self.to_f32() == o.to_f32()
    }
}

impl PartialOrd for F16 {
    fn partial_cmp(&self, o: &F16) -> Option<Ordering> {
        self.to_f32().partial_cmp(&o.to_f32())
    }
}

impl Elem for F16 {
    const DESCR: &'static str = "<f2";
    const CODE: u32 = 10;
    const SIZE: usize = 2;
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    fn from_f64(v: f64) -> Self {
        F16::from_f32(v as f32)
    }
    fn to_i64(self) -> i64 {
        self.to_f32() as i64
    }
    fn from_i64(v: i64) -> Self {
        F16::from_f32(v as f32)
    }
    fn from_bool(v: bool) -> Self {
        F16::from_f32(if v { 1.0 } else { 0.0 })
    }
    fn is_true(self) -> bool {
        self.to_f32() != 0.0
    }
    fn lowest() -> Self {
        F16(0xfc00)
    }
    fn highest() -> Self {
        F16(0x7c00)
    }
    fn read_le(bytes: &[u8]) -> Self {
        F16(u16::from_le_bytes([bytes[0], bytes[1]]))
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn from_any(a: AnyArray) -> Option<ArrayD<Self>> {
        match a {
            AnyArray::F16(x) => Some(x),
            _ => None,
        }
    }
    fn into_any(a: ArrayD<Self>) -> AnyArray {
        AnyArray::F16(a)
    }
}

impl Num for F16 {
    fn zero() -> Self {
        F16(0)
    }
    fn one() -> Self {
        F16(0x3c00)
    }
    fn add(self, o: Self) -> Self {
        self.zip(o, |a, b| a + b)
    }
    fn sub(self, o: Self) -> Self {
        self.zip(o, |a, b| a - b)
    }
    fn mul(self, o: Self) -> Self {
        self.zip(o, |a, b| a * b)
    }
    fn div(self, o: Self) -> Self {
        self.zip(o, |a, b| a / b)
    }
    fn modulo(self, o: Self) -> Self {
        self.zip(o, |a, b| {
            let r = a % b;
            if r != 0.0 && ((r < 0.0) != (b < 0.0)) { r + b } else { r }
        })
    }
    fn fmod(self, o: Self) -> Self {
        self.zip(o, |a, b| a % b)
    }
    fn neg(self) -> Self {
        F16(self.0 ^ 0x8000)
    }
    fn abs(self) -> Self {
        F16(self.0 & 0x7fff)
    }
    fn pow(self, o: Self) -> Self {
        self.zip(o, f32::powf)
    }
    fn maximum(self, o: Self) -> Self {
        self.zip(o, |a, b| if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) })
    }
    fn minimum(self, o: Self) -> Self {
        self.zip(o, |a, b| if a.is_nan() || b.is_nan() { f32::NAN } else { a.min(b) })
    }
    fn gemm(
        alpha: Self,
        a: &ndarray::ArrayView2<Self>,
        b: &ndarray::ArrayView2<Self>,
        beta: Self,
        c: &mut ndarray::ArrayViewMut2<Self>,
    ) {
        // Accumulate in f32 (as onnxruntime's fp16 kernels do), round once at the end.
        let (a32, b32) = (a.mapv(F16::to_f32), b.mapv(F16::to_f32));
        let mut c32 = c.mapv(F16::to_f32);
        super::linalg::gemm_f32(alpha.to_f32(), &a32.view(), &b32.view(), beta.to_f32(), &mut c32.view_mut());
        c.zip_mut_with(&c32, |d, &s| *d = F16::from_f32(s));
    }
}

impl Float for F16 {
    fn exp(self) -> Self {
        self.map(f32::exp)
    }
    fn ln(self) -> Self {
        self.map(f32::ln)
    }
    fn sqrt(self) -> Self {
        self.map(f32::sqrt)
    }
    fn tanh(self) -> Self {
        self.map(f32::tanh)
    }
    fn sin(self) -> Self {
        self.map(f32::sin)
    }
    fn cos(self) -> Self {
        self.map(f32::cos)
    }
    fn tan(self) -> Self {
        self.map(f32::tan)
    }
    fn asin(self) -> Self {
        self.map(f32::asin)
    }
    fn acos(self) -> Self {
        self.map(f32::acos)
    }
    fn atan(self) -> Self {
        self.map(f32::atan)
    }
    fn sinh(self) -> Self {
        self.map(f32::sinh)
    }
    fn cosh(self) -> Self {
        self.map(f32::cosh)
    }
    fn asinh(self) -> Self {
        self.map(f32::asinh)
    }
    fn acosh(self) -> Self {
        self.map(f32::acosh)
    }
    fn atanh(self) -> Self {
        self.map(f32::atanh)
    }
    fn floor(self) -> Self {
        self.map(f32::floor)
    }
    fn ceil(self) -> Self {
        self.map(f32::ceil)
    }
    fn round_even(self) -> Self {
        self.map(|v| if (v - v.trunc()).abs() == 0.5 { 2.0 * (v / 2.0).round() } else { v.round() })
    }
    fn erf(self) -> Self {
        F16::from_f32(super::elem::erf64(self.to_f64()) as f32)
    }
    fn is_nan(self) -> bool {
        self.to_f32().is_nan()
    }
    fn is_infinite(self) -> bool {
        self.to_f32().is_infinite()
    }
    fn powf(self, o: Self) -> Self {
        self.zip(o, f32::powf)
    }
    fn nan() -> Self {
        F16(0x7e00)
    }
}
