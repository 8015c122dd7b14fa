//! sgemm against a naive f64 triple loop: random sizes with odd edges, strided and
//! transposed views, alpha/beta, epilogues, every microkernel this CPU can run.

use irc_gemm_bench::gemm::{sgemm, sgemm_ex, sgemm_with_isa, Activation, Bias, Epilogue, Isa};

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn value(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.value()).collect()
    }
}

/// A `rows × cols` view: row- or column-major, with `pad` extra elements per line.
#[derive(Clone, Copy, Debug)]
struct Layout {
    col_major: bool,
    pad: usize,
}

impl Layout {
    fn strides(self, rows: usize, cols: usize) -> (isize, isize) {
        if self.col_major {
            (1, (rows + self.pad) as isize)
        } else {
            ((cols + self.pad) as isize, 1)
        }
    }
    fn len(self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        let (rs, cs) = self.strides(rows, cols);
        (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
    }
    fn random(rng: &mut Rng) -> Layout {
        Layout { col_major: rng.below(2) == 1, pad: [0, 0, 3][rng.below(3)] }
    }
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    la: Layout,
    lb: Layout,
    lc: Layout,
    bias: u8,
    act: Activation,
}

fn at(v: &[f32], rs: isize, cs: isize, i: usize, j: usize) -> f32 {
    v[(i as isize * rs + j as isize * cs) as usize]
}

/// Runs one case with `isa` and checks every element of C against f64 arithmetic.
fn check(case: &Case, isa: Isa, rng: &mut Rng) {
    check_entry(case, Some(isa), rng)
}

/// [`check`] through `sgemm_with_isa(isa)`, or through `sgemm_ex` (BLAS with the `blas`
/// feature) when `isa` is None.
fn check_entry(case: &Case, isa: Option<Isa>, rng: &mut Rng) {
    let Case { m, n, k, alpha, beta, la, lb, lc, bias, act } = *case;
    let a = rng.vec(la.len(m, k));
    let b = rng.vec(lb.len(k, n));
    let mut c = rng.vec(lc.len(m, n));
    if beta == 0.0 {
        c.iter_mut().step_by(3).for_each(|x| *x = f32::NAN); // must be ignored
    }
    let c0 = c.clone();
    let bias_values = rng.vec(m.max(n));
    let bias_of = |i: usize, j: usize| match bias {
        1 => bias_values[i] as f64,
        2 => bias_values[j] as f64,
        _ => 0.0,
    };
    let epi = Epilogue {
        bias: match bias {
            1 => Bias::PerRow(&bias_values[..m]),
            2 => Bias::PerCol(&bias_values[..n]),
            _ => Bias::None,
        },
        activation: act,
    };
    let ((rsa, csa), (rsb, csb), (rsc, csc)) = (la.strides(m, k), lb.strides(k, n), lc.strides(m, n));
    match isa {
        Some(isa) => sgemm_with_isa(isa, m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut c, rsc, csc, &epi),
        None => sgemm_ex(m, n, k, alpha, &a, rsa, csa, &b, rsb, csb, beta, &mut c, rsc, csc, &epi),
    }
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = at(&a, rsa, csa, i, p) as f64 * at(&b, rsb, csb, p, j) as f64;
                dot += t;
                mag += t.abs();
            }
            let old = if beta == 0.0 { 0.0 } else { at(&c0, rsc, csc, i, j) as f64 };
            let mut want = alpha as f64 * dot + beta as f64 * old + bias_of(i, j);
            match act {
                Activation::None => {}
                Activation::Relu => want = want.max(0.0),
                Activation::Clip { min, max } => want = want.clamp(min as f64, max as f64),
            }
            let got = at(&c, rsc, csc, i, j) as f64;
            let tol = 1e-5 * (alpha.abs() as f64 * mag + (beta as f64 * old).abs() + 1.0);
            assert!(
                (got - want).abs() <= tol,
                "{isa:?} m={m} n={n} k={k} alpha={alpha} beta={beta} {la:?} {lb:?} {lc:?} bias={bias} \
                 {act:?}: C[{i},{j}] = {got}, expected {want}"
            );
        }
    }
    // Padding between lines of C is not part of the view: it must be untouched.
    let touched = |idx: usize| (0..m).any(|i| (0..n).any(|j| (i as isize * rsc + j as isize * csc) as usize == idx));
    if lc.pad > 0 && m * n < 400 {
        for (idx, (x, y)) in c.iter().zip(&c0).enumerate() {
            if !touched(idx) {
                assert!(x.to_bits() == y.to_bits(), "{isa:?}: padding C[{idx}] was written");
            }
        }
    }
}

fn isas() -> Vec<Isa> {
    let mut out = vec![Isa::Generic];
    for isa in [Isa::Avx2, Isa::Avx512] {
        if isa.or_supported() == isa {
            out.push(isa);
        }
    }
    out
}

fn random_case(rng: &mut Rng, max: usize) -> Case {
    let dim = |rng: &mut Rng| if rng.below(8) == 0 { 1 } else { rng.below(max) };
    let alpha = [1.0, -0.5, 2.0, 0.0][rng.below(4)];
    let beta = [0.0, 1.0, 0.5, -2.0][rng.below(4)];
    let act = [Activation::None, Activation::Relu, Activation::Clip { min: -0.5, max: 0.25 }][rng.below(3)];
    Case {
        m: dim(rng),
        n: dim(rng),
        k: dim(rng),
        alpha,
        beta,
        la: Layout::random(rng),
        lb: Layout::random(rng),
        lc: Layout::random(rng),
        bias: rng.below(3) as u8,
        act,
    }
}

#[test]
fn random_small_shapes_every_layout_and_kernel() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..600 {
        let case = random_case(&mut rng, 70);
        for isa in isas() {
            check(&case, isa, &mut rng);
        }
    }
}

#[test]
fn blocks_larger_than_every_cache_block() {
    // k > KC (256), m > MC (144), n > NC (2048): several K blocks, so the epilogue and
    // beta must apply exactly once.
    let mut rng = Rng(7);
    let plain = Layout { col_major: false, pad: 0 };
    for (m, n, k, bias, act) in [(157, 2085, 301, 2, Activation::Relu), (301, 45, 530, 1, Activation::None)] {
        let case = Case { m, n, k, alpha: 0.75, beta: 0.5, la: plain, lb: plain, lc: plain, bias, act };
        for isa in isas() {
            check(&case, isa, &mut rng);
        }
    }
}

#[test]
fn gemv_paths_single_row_and_single_column() {
    let mut rng = Rng(99);
    for (m, n, k) in [(1, 1024, 1024), (1, 37, 1031), (1033, 1, 77), (1, 1, 515), (3, 300, 200), (5, 17, 9)] {
        for (a_cm, b_cm) in [(false, false), (false, true), (true, false), (true, true)] {
            let la = Layout { col_major: a_cm, pad: 1 };
            let lb = Layout { col_major: b_cm, pad: 2 };
            let lc = Layout { col_major: false, pad: 0 };
            let case = Case { m, n, k, alpha: 1.0, beta: 0.0, la, lb, lc, bias: 2, act: Activation::Relu };
            for isa in isas() {
                check(&case, isa, &mut rng);
            }
        }
    }
}

#[test]
fn general_strides_neither_unit() {
    // Every 2nd row and every 3rd column of bigger buffers: no contiguous direction at all.
    let mut rng = Rng(5);
    let (m, n, k) = (29, 41, 23);
    let a = rng.vec(m * 2 * k * 3);
    let b = rng.vec(k * 2 * n * 3);
    let mut c = vec![0.0f32; m * 2 * n * 3];
    let (rsa, csa, rsb, csb, rsc, csc) = ((k * 6) as isize, 3, (n * 6) as isize, 3, (n * 6) as isize, 3);
    for isa in isas() {
        sgemm_with_isa(isa, m, n, k, 1.0, &a, rsa, csa, &b, rsb, csb, 0.0, &mut c, rsc, csc, &Epilogue::NONE);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| at(&a, rsa, csa, i, p) as f64 * at(&b, rsb, csb, p, j) as f64).sum();
                let got = at(&c, rsc, csc, i, j) as f64;
                assert!((got - want).abs() < 1e-4, "{isa:?} C[{i},{j}] = {got}, expected {want}");
            }
        }
    }
}

#[test]
fn disjoint_row_blocks_on_threads_match_one_call() {
    let mut rng = Rng(11);
    let (m, n, k) = (203, 96, 70);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let bias = rng.vec(m);
    let epi = Epilogue { bias: Bias::PerRow(&bias), activation: Activation::Relu };
    let mut whole = vec![0.0f32; m * n];
    sgemm_ex(m, n, k, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut whole, n as isize, 1, &epi);
    let mut split = vec![0.0f32; m * n];
    let rows = 64;
    std::thread::scope(|s| {
        for (block, c_block) in split.chunks_mut(rows * n).enumerate() {
            let (a, b, bias) = (&a, &b, &bias);
            s.spawn(move || {
                let r0 = block * rows;
                let mb = c_block.len() / n;
                let epi = Epilogue { bias: Bias::PerRow(&bias[r0..]), activation: Activation::Relu };
                let a_block = &a[r0 * k..];
                sgemm_ex(mb, n, k, 1.0, a_block, k as isize, 1, b, n as isize, 1, 0.0, c_block, n as isize, 1, &epi);
            });
        }
    });
    // A block smaller than one microkernel tile takes the GEMV path: same sums, possibly
    // rounded differently, so compare with a tolerance rather than bit for bit.
    for (x, y) in whole.iter().zip(&split) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn beta_zero_ignores_nan_and_alpha_zero_scales() {
    let (m, n, k) = (13, 35, 8);
    let a = vec![f32::NAN; m * k]; // alpha = 0: A·B must not be evaluated
    let b = vec![1.0f32; k * n];
    let mut c = vec![2.0f32; m * n];
    sgemm(m, n, k, 0.0, &a, k as isize, 1, &b, n as isize, 1, 0.5, &mut c, n as isize, 1);
    assert!(c.iter().all(|&x| x == 1.0));
    let a = vec![1.0f32; m * k];
    let mut c = vec![f32::NAN; m * n];
    sgemm(m, n, k, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1);
    assert!(c.iter().all(|&x| x == k as f32));
    let mut c = vec![f32::NAN; m * n];
    sgemm(m, n, 0, 1.0, &a, k as isize, 1, &b, n as isize, 1, 0.0, &mut c, n as isize, 1);
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn relu_keeps_nan() {
    let a = [f32::NAN, 1.0];
    let b = vec![1.0f32; 2 * 40];
    let mut c = vec![0.0f32; 40];
    let epi = Epilogue { bias: Bias::None, activation: Activation::Relu };
    sgemm_ex(1, 40, 2, 1.0, &a, 2, 1, &b, 40, 1, 0.0, &mut c, 40, 1, &epi);
    assert!(c.iter().all(|x| x.is_nan()));
}

#[test]
#[should_panic(expected = "B view")]
fn out_of_bounds_view_panics() {
    let a = vec![0.0f32; 4 * 4];
    let b = vec![0.0f32; 4 * 4 - 1];
    let mut c = vec![0.0f32; 16];
    sgemm(4, 4, 4, 1.0, &a, 4, 1, &b, 4, 1, 0.0, &mut c, 4, 1);
}

#[test]
#[should_panic(expected = "per-column bias")]
fn short_bias_panics() {
    let a = vec![0.0f32; 16];
    let mut c = vec![0.0f32; 16];
    let bias = [0.0f32; 3];
    let epi = Epilogue { bias: Bias::PerCol(&bias), activation: Activation::None };
    sgemm_ex(4, 4, 4, 1.0, &a, 4, 1, &a, 4, 1, 0.0, &mut c, 4, 1, &epi);
}

#[test]
fn raw_pointer_entry_with_negative_strides() {
    // B read bottom-up through a negative row stride: the raw API allows any valid view.
    let mut rng = Rng(21);
    let (m, n, k) = (9, 37, 13);
    let a = rng.vec(m * k);
    let b = rng.vec(k * n);
    let mut c = vec![0.0f32; m * n];
    let bias = rng.vec(n);
    let epi = Epilogue { bias: Bias::PerCol(&bias), activation: Activation::Relu };
    // SAFETY: every (i, j) of the three views is inside its vector; C is exclusive.
    unsafe {
        irc_gemm_bench::gemm::sgemm_raw(
            m, n, k, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr().add((k - 1) * n), -(n as isize), 1, 0.0,
            c.as_mut_ptr(), n as isize, 1, &epi,
        );
    }
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[(k - 1 - p) * n + j] as f64).sum();
            let want = (dot + bias[j] as f64).max(0.0);
            assert!((c[i * n + j] as f64 - want).abs() < 1e-4, "C[{i},{j}] = {}, expected {want}", c[i * n + j]);
        }
    }
}

#[test]
fn prepacked_b_matches_sgemm() {
    use irc_gemm_bench::gemm::{sgemm_packed_b, PackedB};
    let mut rng = Rng(0xfeed);
    for round in 0..152 {
        let case = random_case(&mut rng, 90);
        let (m, n, k) = match round {
            // Past every cache block: several K blocks, N panels (jc > 0) and M blocks.
            150 => (200, 1100, 600),
            151 => (3, 1100, 600),
            _ => (if round % 3 == 0 { 1 + round % 5 } else { case.m }, case.n, case.k + 300 * (round % 7 == 0) as usize),
        };
        let (la, lb, lc) = (case.la, case.lb, Layout { col_major: round % 4 == 1, pad: case.lc.pad });
        let a = rng.vec(la.len(m, k));
        let b = rng.vec(lb.len(k, n));
        let c0 = rng.vec(lc.len(m, n));
        let bias = rng.vec(n);
        let epi = Epilogue { bias: Bias::PerCol(&bias), activation: case.act };
        let ((rsa, csa), (rsb, csb), (rsc, csc)) = (la.strides(m, k), lb.strides(k, n), lc.strides(m, n));
        for isa in isas() {
            let packed = PackedB::with_isa(isa, k, n, &b, rsb, csb);
            assert_eq!((packed.k(), packed.n()), (k, n));
            let mut want = c0.clone();
            sgemm_with_isa(isa, m, n, k, case.alpha, &a, rsa, csa, &b, rsb, csb, case.beta, &mut want, rsc, csc, &epi);
            let mut got = c0.clone();
            sgemm_packed_b(m, case.alpha, &a, rsa, csa, &packed, case.beta, &mut got, rsc, csc, &epi);
            for (idx, (x, y)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()),
                    "{isa:?} m={m} n={n} k={k}: C[{idx}] = {x}, sgemm gives {y}"
                );
            }
        }
    }
}

/// C computed inside a rayon pool of `threads` threads (the runtime splits large products
/// over the pool it runs on).
fn in_pool(threads: usize, f: impl FnOnce() + Send) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    pool.install(f);
}

#[test]
fn threads_split_rows_or_columns_bit_for_bit() {
    use irc_gemm_bench::gemm::{sgemm_packed_b, PackedB};
    let mut rng = Rng(0x7ead);
    // Wider than tall (column ranges), taller than wide (row ranges), odd edges, several
    // K blocks; each far above the size below which the runtime stays on one thread.
    // Few rows (5, 12): B read in place by the kernel, or 2-6-row tiles on AVX-512.
    // One row: the batch-1 GEMV from a prepacked B, split by columns above 4 Mi weights.
    for (m, n, k) in [(37, 1203, 300), (1003, 45, 290), (200, 200, 70), (5, 2000, 300), (12, 1100, 290), (1, 4200, 1010)] {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let (row_bias, col_bias) = (rng.vec(m), rng.vec(n));
        let c0 = rng.vec(m * n);
        let epis = [
            Epilogue { bias: Bias::PerRow(&row_bias), activation: Activation::Relu },
            Epilogue { bias: Bias::PerCol(&col_bias), activation: Activation::Clip { min: -0.5, max: 0.5 } },
        ];
        for epi in &epis {
            let run = |threads: usize, packed: bool| {
                let mut c = c0.clone();
                in_pool(threads, || {
                    if packed {
                        let pb = PackedB::new(k, n, &b, n as isize, 1);
                        sgemm_packed_b(m, 0.5, &a, k as isize, 1, &pb, 1.0, &mut c, n as isize, 1, epi);
                    } else {
                        sgemm_ex(m, n, k, 0.5, &a, k as isize, 1, &b, n as isize, 1, 1.0, &mut c, n as isize, 1, epi);
                    }
                });
                c
            };
            for packed in [false, true] {
                let one = run(1, packed);
                for threads in [2, 3] {
                    let many = run(threads, packed);
                    // Splitting M or N never changes a sum's order: the same bits.
                    let same = one.iter().zip(&many).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "m={m} n={n} k={k} packed={packed}: {threads} threads differ from 1");
                }
            }
        }
    }
}

/// With `--features blas`, `sgemm_ex` goes to OpenBLAS's `cblas_sgemm` whenever the views
/// allow it (row- or column-major A, B and C, padded or not); without it, irc's kernels.
#[test]
fn sgemm_ex_random_layouts_and_epilogues() {
    let mut rng = Rng(0xb1a5);
    for round in 0..300 {
        let mut case = random_case(&mut rng, 70);
        if round % 50 == 0 {
            (case.m, case.n, case.k) = (150 + round / 5, 300, 280); // past every cache block
        }
        check_entry(&case, None, &mut rng);
    }
}
