//! The x86-64 instruction sets the runtime's kernels may use.
//!
//! Every kernel with SIMD variants asks here, never `is_x86_feature_detected!` directly:
//! what the CPU has, minus what the crate's cargo features rule out. The features let a
//! test (or a build for machines without AVX-512) run the other variants on any CPU:
//! - `portable`: never AVX-512 (the AVX2+FMA kernels that CPUs without AVX-512 run);
//! - `no-avx`: no AVX at all (the plain-Rust kernels of any x86-64 or aarch64 CPU).
//!
//! The answers are fixed at build time plus one CPU check; no environment variable.

/// AVX-512 kernels are allowed by the crate's features.
#[cfg(target_arch = "x86_64")]
const ALLOW_AVX512: bool = !cfg!(feature = "portable") && !cfg!(feature = "no-avx");
/// AVX / AVX2 kernels are allowed by the crate's features.
#[cfg(target_arch = "x86_64")]
const ALLOW_AVX: bool = !cfg!(feature = "no-avx");

/// AVX (the 8x8 transposes, the A-packing of the GEMM).
#[inline]
pub fn avx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ALLOW_AVX && is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX2 and FMA (the 256-bit kernels).
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ALLOW_AVX && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512F with AVX2 and FMA (every AVX-512 kernel is compiled with all three).
#[inline]
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ALLOW_AVX512 && is_x86_feature_detected!("avx512f") && avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`avx512`] plus AVX-512VL (the kernels that also use masked 256-bit forms).
#[inline]
pub fn avx512vl() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512() && is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The widest instruction set the kernels use on this CPU with this build's features:
/// `avx512`, `avx2` or `generic` (the multi-model test harness prints it).
pub fn widest() -> &'static str {
    if avx512() {
        "avx512"
    } else if avx2_fma() {
        "avx2"
    } else {
        "generic"
    }
}
