//! GEMM micro-benchmark: GFLOP/s of irc's runtime sgemm (each microkernel) and of
//! ndarray's `general_mat_mul` (matrixmultiply) on the same operands, plus this core's
//! measured FMA peak. Prints one JSON document.
//!
//! Usage: `gemm-bench [--quick] [--seconds S] [--size MxNxK]...` (S = time spent per
//! measurement, default 0.3; `--size` replaces the default size list).
//!
//! Built with `--features blas` (needs the system OpenBLAS), it adds an `openblas` engine:
//! the runtime's `sgemm_ex` routed to `cblas_sgemm`, as in a generated crate built with its
//! `blas` feature (OpenBLAS threads = RAYON_NUM_THREADS; set it to 1 for one core).

use std::hint::black_box;
use std::time::Instant;

#[cfg(feature = "blas")]
use irc_gemm_bench::gemm::sgemm_ex;
use irc_gemm_bench::gemm::{sgemm_packed_b, sgemm_with_isa, Epilogue, Isa, PackedB};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;

struct Options {
    quick: bool,
    seconds: f64,
    /// Explicit `MxNxK` sizes replacing the default list.
    sizes: Vec<(usize, usize, usize)>,
}

fn parse_args() -> Options {
    let mut opts = Options { quick: false, seconds: 0.3, sizes: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => opts.quick = true,
            "--seconds" => {
                opts.seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage("--seconds needs a number"))
            }
            "--size" => {
                let spec = args.next().unwrap_or_else(|| usage("--size needs MxNxK"));
                let dims: Vec<usize> = spec.split('x').filter_map(|d| d.parse().ok()).collect();
                match dims[..] {
                    [m, n, k] => opts.sizes.push((m, n, k)),
                    _ => usage(&format!("bad size {spec}, expected MxNxK")),
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    opts
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: gemm-bench [--quick] [--seconds S] [--size MxNxK]...");
    std::process::exit(2);
}

/// Per-call timings of each engine, measured in interleaved rounds so that noise from
/// other processes on the machine hits every engine alike. Returns (best, median) seconds.
fn time_interleaved(budget: f64, engines: &mut [Box<dyn FnMut() + '_>]) -> Vec<(f64, f64)> {
    const ROUNDS: usize = 9;
    let mut samples = vec![Vec::new(); engines.len()];
    for f in engines.iter_mut() {
        f(); // warm-up: page faults, packing buffers, caches
    }
    let per_round = budget / ROUNDS as f64 / engines.len() as f64;
    for _ in 0..ROUNDS {
        for (f, out) in engines.iter_mut().zip(samples.iter_mut()) {
            let start = Instant::now();
            let mut calls = 0u32;
            while calls == 0 || start.elapsed().as_secs_f64() < per_round {
                let t = Instant::now();
                f();
                out.push(t.elapsed().as_secs_f64());
                calls += 1;
            }
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            (s[0], s[s.len() / 2])
        })
        .collect()
}

/// Deterministic operands in [-1, 1).
fn filled(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Measurement {
    m: usize,
    n: usize,
    k: usize,
    /// (engine name, GFLOP/s of the best call, GFLOP/s of the median call)
    results: Vec<(String, f64, f64)>,
}

fn measure(m: usize, n: usize, k: usize, opts: &Options, isas: &[Isa]) -> Measurement {
    let flops = 2.0 * (m * n * k) as f64;
    let a = filled(m * k, 1);
    let b = filled(k * n, 2);
    let a2 = Array2::from_shape_vec((m, k), a.clone()).expect("shape");
    let b2 = Array2::from_shape_vec((k, n), b.clone()).expect("shape");
    let mut c2 = Array2::<f32>::zeros((m, n));
    // B packed once outside the timing, as a generated crate does for constant weights
    // (for irc's kernel even with the `blas` feature, whose `PackedB::new` keeps B plain).
    let packed = PackedB::with_isa(Isa::detect(), k, n, &b, n as isize, 1);
    let mut c_packed = vec![0.0f32; m * n];
    #[cfg(feature = "blas")]
    let mut c_blas = vec![0.0f32; m * n];
    let mut outputs = vec![vec![0.0f32; m * n]; isas.len()];
    let mut names: Vec<String> = isas.iter().map(|isa| format!("irc_{isa:?}").to_lowercase()).collect();
    let mut engines: Vec<Box<dyn FnMut() + '_>> = Vec::new();
    for (&isa, c) in isas.iter().zip(outputs.iter_mut()) {
        let (a, b) = (&a, &b);
        engines.push(Box::new(move || {
            let (rsa, rsb, rsc) = (k as isize, n as isize, n as isize);
            sgemm_with_isa(isa, m, n, k, 1.0, black_box(a), rsa, 1, b, rsb, 1, 0.0, c, rsc, 1, &Epilogue::NONE);
            black_box(&mut *c);
        }));
    }
    engines.push(Box::new(|| {
        let (a, rsa) = (black_box(&a), k as isize);
        sgemm_packed_b(m, 1.0, a, rsa, 1, &packed, 0.0, &mut c_packed, n as isize, 1, &Epilogue::NONE);
        black_box(&mut c_packed);
    }));
    names.push("irc_prepacked_b".to_string());
    engines.push(Box::new(|| {
        general_mat_mul(1.0, black_box(&a2), &b2, 0.0, &mut c2);
        black_box(&mut c2);
    }));
    names.push("ndarray_matrixmultiply".to_string());
    #[cfg(feature = "blas")]
    {
        engines.push(Box::new(|| {
            let (rsa, rsb, rsc) = (k as isize, n as isize, n as isize);
            sgemm_ex(m, n, k, 1.0, black_box(&a), rsa, 1, &b, rsb, 1, 0.0, &mut c_blas, rsc, 1, &Epilogue::NONE);
            black_box(&mut c_blas);
        }));
        names.push("openblas".to_string());
    }
    let times = time_interleaved(opts.seconds, &mut engines);
    let results = names.into_iter().zip(times).map(|(name, (best, median))| (name, flops / best / 1e9, flops / median / 1e9));
    Measurement { m, n, k, results: results.collect() }
}

/// Single-core FMA peak, measured: independent register-only FMA chains (no memory
/// traffic) on the widest vector unit, enough chains to cover the FMA latency.
mod peak {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    /// GFLOP/s of `reps` passes over 16 independent zmm FMA chains (16 lanes × 2 flops).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    fn avx512(reps: u64) -> f32 {
        let x = _mm512_set1_ps(0.999_999);
        let y = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 16];
        for _ in 0..reps {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
    }

    /// The same with ymm chains (8 lanes × 2 flops).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)]
    fn avx2(reps: u64) -> f32 {
        let x = _mm256_set1_ps(0.999_999);
        let y = _mm256_set1_ps(1e-7);
        // 12 chains: with the two constants that fills the 16 ymm registers of AVX2
        // encoding without spilling.
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..reps {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut out = [0.0f32; 8];
        let mut total = 0.0;
        for a in acc {
            // SAFETY: `out` holds 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), a) };
            total += out.iter().sum::<f32>();
        }
        total
    }

    /// (unit name, GFLOP/s) for each unit this CPU has; best of several runs.
    pub fn measure() -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let reps = 2_000_000u64;
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU reported avx512f.
                let g = best(|| unsafe { avx512(std::hint::black_box(reps)) }, reps as f64 * 16.0 * 16.0 * 2.0);
                out.push(("avx512_fma_zmm", g));
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: the CPU reported avx2 and fma.
                let g = best(|| unsafe { avx2(std::hint::black_box(reps)) }, reps as f64 * 12.0 * 8.0 * 2.0);
                out.push(("avx2_fma_ymm", g));
            }
        }
        out
    }

    fn best(f: impl Fn() -> f32, flops: f64) -> f64 {
        (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(f());
                flops / t.elapsed().as_secs_f64() / 1e9
            })
            .fold(0.0, f64::max)
    }
}

fn json_object(items: impl Iterator<Item = (String, f64)>) -> String {
    let body: Vec<String> = items.map(|(k, v)| format!("\"{k}\": {v:.2}")).collect();
    format!("{{{}}}", body.join(", "))
}

fn main() {
    let opts = parse_args();
    let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2, Isa::Generic]
        .into_iter()
        .filter(|&isa| isa.or_supported() == isa)
        .collect();
    let detected = Isa::detect();
    let started = Instant::now();
    let peaks_before = peak::measure();
    let sizes: Vec<(usize, usize, usize)> = if !opts.sizes.is_empty() {
        opts.sizes.clone()
    } else if opts.quick {
        vec![(64, 64, 64), (256, 256, 256), (1, 1024, 1024)]
    } else {
        let mut v: Vec<_> = [64, 128, 256, 384, 512, 768, 1024].iter().map(|&s| (s, s, s)).collect();
        v.extend([(1, 1024, 1024), (8, 1024, 1024), (3136, 64, 576), (196, 256, 2304)]);
        v
    };
    let rows: Vec<Measurement> = sizes.iter().map(|&(m, n, k)| measure(m, n, k, &opts, &isas)).collect();
    // Measured twice, best kept: a short run preempted by another process reads low.
    let peaks: Vec<(&str, f64)> =
        peaks_before.iter().zip(peak::measure()).map(|(a, b)| (a.0, a.1.max(b.1))).collect();
    let peak = peaks.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut out = String::from("{\n");
    out += &format!("  \"detected_isa\": \"{}\",\n", format!("{detected:?}").to_lowercase());
    out += &format!(
        "  \"peak\": {{\"gflops\": {peak:.2}, \"units\": {}, \"how\": \"best of 2x30 short runs (before and after the GEMM runs) of 12-16 independent register-only FMA chains per vector width (no loads or stores), 2 flops per lane per FMA, one core\"}},\n",
        json_object(peaks.iter().map(|(k, v)| (k.to_string(), *v)))
    );
    out += "  \"sgemm\": [\n";
    let auto = format!("irc_{detected:?}").to_lowercase();
    let lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let best = json_object(r.results.iter().map(|(k, b, _)| (k.clone(), *b)));
            let median = json_object(r.results.iter().map(|(k, _, md)| (k.clone(), *md)));
            let irc = r.results.iter().find(|x| x.0 == auto).map_or(0.0, |x| x.1);
            format!(
                "    {{\"m\": {}, \"n\": {}, \"k\": {}, \"gflops_best\": {best}, \"gflops_median\": {median}, \"irc_pct_of_peak\": {:.1}}}",
                r.m, r.n, r.k, 100.0 * irc / peak
            )
        })
        .collect();
    out += &lines.join(",\n");
    out += &format!("\n  ],\n  \"seconds\": {:.1}\n}}", started.elapsed().as_secs_f64());
    println!("{out}");
}
