//! Single-precision matrix multiplication for irc's generated runtime.
//!
//! [`sgemm`] computes `C = alpha·A·B + beta·C`; [`sgemm_ex`] additionally applies an
//! [`Epilogue`] (a bias per row or per column, then an activation) inside the loop that
//! writes C, so a fused `Gemm + bias + Relu` reads and writes C exactly once.
//!
//! # Entry points
//!
//! * [`sgemm`] / [`sgemm_ex`]: safe, on slices with strides.
//! * [`sgemm_raw`]: `unsafe`, on raw pointers and strides (any sign), for ndarray views:
//!   `sgemm_raw(m, n, k, alpha, a.as_ptr(), a.strides()[0], a.strides()[1], ...)`.
//! * [`PackedB`] + [`sgemm_packed_b`]: a constant B (a layer's weights) packed once at load
//!   time; every call then skips packing B, and batch-1 rows stream the packed weights.
//! * [`sgemm_with_isa`] / [`PackedB::with_isa`]: force a microkernel (tests, benchmarks).
//!
//! # Layout contract
//!
//! Every matrix is a strided view into a slice, in the style of the `matrixmultiply`
//! crate: element `(i, j)` of a view with row stride `rs` and column stride `cs` lives at
//! `slice[i * rs + j * cs]`. Strides are counted in elements, not bytes. `A` is `m × k`,
//! `B` is `k × n`, `C` is `m × n`. Row-major is `(rs, cs) = (cols, 1)`, column-major is
//! `(1, rows)`, and a transposed view is the same slice with the two strides swapped.
//!
//! * Every offset `i * rs + j * cs` reached by a valid `(i, j)` must lie in `0..slice.len()`
//!   (checked with `assert!`, so a bad view panics instead of reading out of bounds). With
//!   the view anchored at index 0 this means strides are non-negative in practice.
//! * `C` should not map two `(i, j)` to one element (e.g. a zero stride): the result is
//!   then unspecified, though still memory-safe.
//! * `beta == 0.0` means C is write-only: its old contents (NaN, infinities) are ignored.
//! * Bias slices must hold at least `m` (per row) or `n` (per column) values.
//!
//! # Parallel use
//!
//! The kernel is single-threaded. To spread one product over threads, split C (and A)
//! into disjoint row blocks, e.g. with `chunks_mut(rows * rsc)` on a row-major C, and call
//! [`sgemm`] once per block with `m` set to the block's row count; a per-row bias slice is
//! then sliced the same way. Each thread keeps its own packing buffers.
//!
//! # How it is fast
//!
//! BLIS-style blocking: panels of B (`KC × NC`) and A (`MC × KC`) are packed into
//! contiguous slivers that a register-blocked microkernel streams through (AVX-512F,
//! AVX2+FMA or portable, chosen at run time). Packing buffers are thread-local and reused,
//! so steady-state calls do not allocate. Single-row products (`m == 1`, and `n == 1` by
//! transposition) and products with fewer rows than one microkernel tile take a GEMV path
//! that streams B once without packing.

use std::cell::RefCell;

/// Activation applied to every element of C after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`; NaN stays NaN.
    Relu,
    /// `min(max(x, min), max)` (ReLU6 is `Clip { min: 0.0, max: 6.0 }`); NaN stays NaN.
    Clip { min: f32, max: f32 },
}

/// Bias added to C after `alpha·A·B + beta·C`.
#[derive(Clone, Copy, Debug)]
pub enum Bias<'a> {
    /// No bias.
    None,
    /// One value per row of C (`len >= m`).
    PerRow(&'a [f32]),
    /// One value per column of C (`len >= n`), e.g. a Dense layer's bias.
    PerCol(&'a [f32]),
}

/// Work done in the loop that writes C: `C = act(alpha·A·B + beta·C + bias)`.
///
/// A residual add needs no field: preload C with the residual and pass `beta = 1.0`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// Plain GEMM: no bias, no activation.
    pub const NONE: Epilogue<'static> = Epilogue { bias: Bias::None, activation: Activation::None };
}

/// Instruction set of the microkernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any target.
    Generic,
    /// x86-64 AVX2 + FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512F (512-bit).
    Avx512,
}

impl Isa {
    /// The widest instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            // The AVX-512 path also runs the AVX2+FMA GEMV kernels, so it needs all three.
            let avx2 = super::cpu::avx2_fma();
            if super::cpu::avx512() {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Generic
    }

    /// `self` if the CPU supports it, otherwise the best supported one below it.
    pub fn or_supported(self) -> Isa {
        match (self, Isa::detect()) {
            (_, Isa::Generic) | (Isa::Generic, _) => Isa::Generic,
            (Isa::Avx512, Isa::Avx2) => Isa::Avx2,
            (wanted, _) => wanted,
        }
    }
}

/// `C = alpha·A·B + beta·C` for strided views (see the module documentation).
///
/// # Panics
/// If a view reaches outside its slice.
#[allow(clippy::too_many_arguments)] // the matrixmultiply-style signature is the contract
pub fn sgemm(
    m: usize, n: usize, k: usize, alpha: f32,
    a: &[f32], rsa: isize, csa: isize,
    b: &[f32], rsb: isize, csb: isize,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
) {
    sgemm_ex(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, &Epilogue::NONE);
}

/// [`sgemm`] followed by a fused epilogue: `C = act(alpha·A·B + beta·C + bias)`.
///
/// # Panics
/// If a view or a bias slice is out of bounds.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_ex(
    m: usize, n: usize, k: usize, alpha: f32,
    a: &[f32], rsa: isize, csa: isize,
    b: &[f32], rsb: isize, csb: isize,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    #[cfg(feature = "blas")]
    {
        let problem = checked_problem(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, epilogue);
        // SAFETY: as in `sgemm_with_isa`: checked views, C borrowed mutably.
        if unsafe { blas::run(&problem) } {
            return;
        }
    }
    sgemm_with_isa(Isa::detect(), m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, epilogue);
}

/// [`sgemm_ex`] with a chosen microkernel (downgraded if the CPU lacks it); for tests and
/// benchmarks that compare the kernels.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with_isa(
    isa: Isa,
    m: usize, n: usize, k: usize, alpha: f32,
    a: &[f32], rsa: isize, csa: isize,
    b: &[f32], rsb: isize, csb: isize,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    let problem = checked_problem(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, epilogue);
    // SAFETY: the three views and the bias were bounds-checked against slices that
    // outlive this call; `c` is borrowed mutably, so nothing else aliases it.
    unsafe { problem.run(isa.or_supported()) }
}

/// The slices as raw views, after checking every view and the bias against them.
#[allow(clippy::too_many_arguments)]
fn checked_problem(
    m: usize, n: usize, k: usize, alpha: f32,
    a: &[f32], rsa: isize, csa: isize,
    b: &[f32], rsb: isize, csb: isize,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) -> Problem {
    check_view("A", a.len(), m, k, rsa, csa);
    check_view("B", b.len(), k, n, rsb, csb);
    check_view("C", c.len(), m, n, rsc, csc);
    let (row_bias, col_bias) = bias_pointers(epilogue, m, n);
    Problem {
        m, n, k, alpha, beta,
        a: View { ptr: a.as_ptr(), rs: rsa, cs: csa },
        b: View { ptr: b.as_ptr(), rs: rsb, cs: csb },
        c: ViewMut { ptr: c.as_mut_ptr(), rs: rsc, cs: csc },
        epi: Epi::new(row_bias, col_bias, epilogue.activation),
    }
}

/// [`sgemm_ex`] on raw strided pointers, for callers that hold views rather than slices
/// (e.g. `ndarray`'s `ArrayView2::as_ptr()` and `strides()`; negative strides are fine).
///
/// # Safety
/// For every valid `(i, j)`: `a.offset(i*rsa + j*csa)` (i < m, j < k) and
/// `b.offset(i*rsb + j*csb)` (i < k, j < n) are readable, `c.offset(i*rsc + j*csc)`
/// (i < m, j < n) is readable and writable, no other reference to C's elements is used
/// during the call, and C does not overlap A or B. A per-row / per-column bias slice must
/// hold at least `m` / `n` values (checked).
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_raw(
    m: usize, n: usize, k: usize, alpha: f32,
    a: *const f32, rsa: isize, csa: isize,
    b: *const f32, rsb: isize, csb: isize,
    beta: f32, c: *mut f32, rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    let (row_bias, col_bias) = bias_pointers(epilogue, m, n);
    let problem = Problem {
        m, n, k, alpha, beta,
        a: View { ptr: a, rs: rsa, cs: csa },
        b: View { ptr: b, rs: rsb, cs: csb },
        c: ViewMut { ptr: c, rs: rsc, cs: csc },
        epi: Epi::new(row_bias, col_bias, epilogue.activation),
    };
    // SAFETY: the caller's contract above is exactly what `Problem::run` (and `blas::run`) needs.
    unsafe {
        #[cfg(feature = "blas")]
        if blas::run(&problem) {
            return;
        }
        problem.run(Isa::detect())
    }
}

/// The epilogue's bias as raw pointers (null = none), length-checked against C.
fn bias_pointers(epilogue: &Epilogue, m: usize, n: usize) -> (*const f32, *const f32) {
    match epilogue.bias {
        Bias::None => (std::ptr::null(), std::ptr::null()),
        Bias::PerRow(v) => {
            assert!(v.len() >= m, "sgemm: per-row bias has {} values, C has {m} rows", v.len());
            (v.as_ptr(), std::ptr::null())
        }
        Bias::PerCol(v) => {
            assert!(v.len() >= n, "sgemm: per-column bias has {} values, C has {n} columns", v.len());
            (std::ptr::null(), v.as_ptr())
        }
    }
}

/// A constant B (e.g. a layer's weights) packed once into the microkernel's layout, so
/// that [`sgemm_packed_b`] skips packing B on every call. The layout depends on the
/// instruction set, which is fixed when packing.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    isa: Isa,
    data: Vec<f32>,
    /// With the `blas` feature, [`PackedB::new`] keeps B row-major in `data` for
    /// `cblas_sgemm` instead of packing it for irc's kernel.
    #[cfg(feature = "blas")]
    plain: bool,
}

impl PackedB {
    /// Packs the `k × n` view `b` (strides as in [`sgemm`]) for this CPU's microkernel.
    ///
    /// # Panics
    /// If the view reaches outside `b`.
    pub fn new(k: usize, n: usize, b: &[f32], rsb: isize, csb: isize) -> PackedB {
        #[cfg(feature = "blas")]
        {
            check_view("B", b.len(), k, n, rsb, csb);
            let view = View { ptr: b.as_ptr(), rs: rsb, cs: csb };
            // SAFETY: the view was checked against `b`.
            let data = (0..k).flat_map(|i| (0..n).map(move |j| unsafe { *view.at(i, j) })).collect();
            PackedB { k, n, isa: Isa::detect(), data, plain: true }
        }
        #[cfg(not(feature = "blas"))]
        PackedB::with_isa(Isa::detect(), k, n, b, rsb, csb)
    }

    /// [`PackedB::new`] for a chosen microkernel (downgraded if the CPU lacks it).
    pub fn with_isa(isa: Isa, k: usize, n: usize, b: &[f32], rsb: isize, csb: isize) -> PackedB {
        check_view("B", b.len(), k, n, rsb, csb);
        let isa = isa.or_supported();
        let nr = Kernel::for_isa(isa).nr;
        let n_pad = round_up(n, nr);
        let mut data = vec![0.0f32; k * n_pad];
        let view = View { ptr: b.as_ptr(), rs: rsb, cs: csb };
        if n > 0 {
            for pc in (0..k).step_by(KC) {
                // SAFETY: the view was checked against `b`; block `pc` of `data` holds
                // KC·n_pad floats (fewer for the last one), what `pack_b` writes.
                unsafe { pack_b(KC.min(k - pc), n, nr, view.at(pc, 0), view, &mut data[pc * n_pad..]) };
            }
        }
        PackedB { k, n, isa, data, #[cfg(feature = "blas")] plain: false }
    }

    /// Rows of B (the inner dimension of the product).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B (and of C).
    pub fn n(&self) -> usize {
        self.n
    }

    /// This CPU's packed layout as `(kc, nr)`: rows of B come in blocks of `kc` (the last
    /// one shorter), block `pc` starts at `pc · n_pad` (`n_pad` = `n` rounded up to `nr`),
    /// and inside a block of depth `d`, sliver `s` (columns `s·nr..`) is `d` rows of `nr`
    /// values at `s · nr · d`. Lets a producer (im2col) write B straight into this layout.
    pub fn layout() -> (usize, usize) {
        (KC, Kernel::for_isa(Isa::detect().or_supported()).nr)
    }

    /// A `k × n` B already written in [`PackedB::layout`] order (`data` may be longer).
    ///
    /// # Panics
    /// If `data` holds fewer than `k · n_pad` values.
    pub fn from_layout(k: usize, n: usize, data: Vec<f32>) -> PackedB {
        let isa = Isa::detect().or_supported();
        let nr = Kernel::for_isa(isa).nr;
        assert!(data.len() >= k * round_up(n, nr), "PackedB::from_layout: data too short");
        PackedB { k, n, isa, data, #[cfg(feature = "blas")] plain: false }
    }

    /// The packed values, for reuse as the next buffer.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
}

/// A constant A (e.g. a convolution's weights) packed once into the microkernel's layout,
/// so that [`sgemm_packed_a`] skips packing A on every call. The layout (and the tile
/// height, which depends on `m`) is fixed when packing.
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    isa: Isa,
    mr: usize,
    /// K blocks of `KC` rows of A^T: block `pc` starts at `pc · m_pad` (`m` rounded up to
    /// MR) and holds `MR`-row slivers of depth `kc`, each k-major, one after the other.
    data: Vec<f32>,
    /// With the `blas` feature, A kept row-major for `cblas_sgemm`.
    #[cfg(feature = "blas")]
    plain: Vec<f32>,
}

impl PackedA {
    /// Packs the `m × k` view `a` (strides as in [`sgemm`]) for this CPU's microkernel.
    ///
    /// # Panics
    /// If the view reaches outside `a`.
    pub fn new(m: usize, k: usize, a: &[f32], rsa: isize, csa: isize) -> PackedA {
        PackedA::with_isa(Isa::detect(), m, k, a, rsa, csa)
    }

    /// [`PackedA::new`] for a chosen microkernel (downgraded if the CPU lacks it).
    pub fn with_isa(isa: Isa, m: usize, k: usize, a: &[f32], rsa: isize, csa: isize) -> PackedA {
        check_view("A", a.len(), m, k, rsa, csa);
        let isa = isa.or_supported();
        let mr = Kernel::for_rows(isa, m).mr;
        let m_pad = round_up(m, mr);
        let mut data = vec![0.0f32; k * m_pad];
        let view = View { ptr: a.as_ptr(), rs: rsa, cs: csa };
        if m > 0 {
            for pc in (0..k).step_by(KC) {
                // SAFETY: the view was checked against `a`; block `pc` of `data` holds
                // KC·m_pad floats (fewer for the last one), what `pack_a` writes.
                unsafe { pack_a(KC.min(k - pc), m, mr, view.at(0, pc), view, &mut data[pc * m_pad..]) };
            }
        }
        #[cfg(feature = "blas")]
        // SAFETY: the view was checked against `a`.
        let plain = (0..m).flat_map(|i| (0..k).map(move |j| unsafe { *view.at(i, j) })).collect();
        PackedA { m, k, isa, mr, data, #[cfg(feature = "blas")] plain }
    }

    /// This CPU's packed layout for an A of `m` rows as `(kc, mr)`: columns of A come in
    /// blocks of `kc` (the last one shorter), block `pc` starts at `pc · m_pad` (`m` rounded
    /// up to `mr`), and inside a block of depth `d`, sliver `s` (rows `s·mr..`) is `d`
    /// columns of `mr` values at `s · mr · d`. Lets a producer (a transposed im2col) write
    /// A straight into this layout.
    pub fn layout(m: usize) -> (usize, usize) {
        (KC, Kernel::for_rows(Isa::detect().or_supported(), m).mr)
    }

    /// An `m × k` A already written in [`PackedA::layout`] order (`data` may be longer).
    ///
    /// # Panics
    /// If `data` holds fewer than `k · m_pad` values.
    pub fn from_layout(m: usize, k: usize, data: Vec<f32>) -> PackedA {
        let isa = Isa::detect().or_supported();
        let mr = Kernel::for_rows(isa, m).mr;
        assert!(data.len() >= k * round_up(m, mr), "PackedA::from_layout: data too short");
        #[cfg(feature = "blas")]
        let plain = {
            let m_pad = round_up(m, mr);
            (0..m).flat_map(|i| (0..k).map(move |q| (i, q)))
                .map(|(i, q)| data[q / KC * KC * m_pad + (i / mr) * mr * KC.min(k - q / KC * KC) + q % KC * mr + i % mr])
                .collect()
        };
        PackedA { m, k, isa, mr, data, #[cfg(feature = "blas")] plain }
    }

    /// The packed values, for reuse as the next buffer.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// Rows of A (and of C).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of A (the inner dimension of the product).
    pub fn k(&self) -> usize {
        self.k
    }
}

/// The B operand of [`sgemm_packed_a`].
#[derive(Clone, Copy, Debug)]
pub enum OperandB<'a> {
    /// A `k × n` strided view (packed on the fly, or read in place for short A).
    View { b: &'a [f32], rs: isize, cs: isize },
    /// Packed beforehand ([`PackedB::from_layout`] or [`PackedB::new`]).
    Packed(&'a PackedB),
}

/// [`sgemm_ex`] with A packed beforehand: `C = act(alpha·A·B + beta·C + bias)`, with A
/// `a.m() × a.k()`, B `a.k() × n` and C `a.m() × n`.
///
/// # Panics
/// If a view or a bias slice is out of bounds, or a packed B does not match A.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed_a(
    a: &PackedA, n: usize, alpha: f32,
    b: OperandB,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    sgemm_packed_a_part(a, 0..a.k, n, alpha, b, beta, c, rsc, csc, epilogue);
}

/// The columns of A packed in one K block, as `(start, depth)` pairs: a producer of B (an
/// im2col) can write one block of B's rows at a time and call [`sgemm_packed_a_part`] on it
/// while it is in cache.
pub fn packed_a_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).step_by(KC).map(move |pc| (pc, KC.min(k - pc)))
}

/// [`sgemm_packed_a`] on columns `ks` of A (and rows `ks` of B, which has `ks.len()` rows):
/// `ks` is all of A or one block of [`packed_a_blocks`].
///
/// # Panics
/// If `ks` is neither, or as [`sgemm_packed_a`].
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed_a_part(
    a: &PackedA, ks: std::ops::Range<usize>, n: usize, alpha: f32,
    b: OperandB,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    let (m, k) = (a.m, ks.len());
    assert!(
        ks == (0..a.k) || (ks.start.is_multiple_of(KC) && ks.start < a.k && k == KC.min(a.k - ks.start)),
        "sgemm_packed_a_part: columns {ks:?} are not a packed block of A (k = {})", a.k
    );
    let (bview, prepacked) = match b {
        OperandB::View { b, rs, cs } => {
            check_view("B", b.len(), k, n, rs, cs);
            (View { ptr: b.as_ptr(), rs, cs }, None)
        }
        OperandB::Packed(pb) => {
            assert!(pb.k == k && pb.n == n, "sgemm_packed_a: packed B is {}x{}, expected {k}x{n}", pb.k, pb.n);
            // Never read: B's panels come from the packed data.
            (View { ptr: std::ptr::null(), rs: 0, cs: 0 }, Some(pb))
        }
    };
    check_view("C", c.len(), m, n, rsc, csc);
    let (row_bias, col_bias) = bias_pointers(epilogue, m, n);
    let p = Problem {
        m, n, k, alpha, beta,
        // Never read: A's slivers come from `a.data`.
        a: View { ptr: std::ptr::null(), rs: 0, cs: 0 },
        b: bview,
        c: ViewMut { ptr: c.as_mut_ptr(), rs: rsc, cs: csc },
        epi: Epi::new(row_bias, col_bias, epilogue.activation),
    };
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(feature = "blas")]
    if prepacked.is_none_or(|pb| pb.plain) {
        let b = prepacked.map_or(bview, |pb| View { ptr: pb.data.as_ptr(), rs: n as isize, cs: 1 });
        let p = Problem { a: View { ptr: a.plain[ks.start.min(a.plain.len())..].as_ptr(), rs: a.k as isize, cs: 1 }, b, ..p };
        // SAFETY: A is `a.plain` row-major, B and C were checked above.
        unsafe {
            if !blas::run(&p) {
                p.run(Isa::detect());
            }
        }
        return;
    }
    let kernel = Kernel::for_rows(a.isa, m);
    assert_eq!(kernel.mr, a.mr, "sgemm_packed_a: A packed for another tile height");
    let panels_b = match prepacked {
        Some(pb) => {
            assert!(pb.isa == a.isa, "sgemm_packed_a: A and B packed for different kernels");
            PanelsB::Prepacked { data: &pb.data, n_pad: round_up(n, kernel.nr), col0: 0 }
        }
        None => PanelsB::FromView,
    };
    let m_pad = round_up(m, kernel.mr);
    let panels_a = PanelsA::Prepacked { data: &a.data[ks.start * m_pad..], m_pad, row0: 0 };
    // SAFETY: B, C and the bias were checked above, C is borrowed mutably, and `a.data`
    // (and a prepacked B) were packed for this kernel with exactly this (m, k, n).
    unsafe {
        if k == 0 || alpha == 0.0 {
            p.scale_only();
        } else {
            gemm_packed(&kernel, &p, panels_a, panels_b);
        }
    }
}

/// [`sgemm_ex`] with a B packed beforehand: `C = act(alpha·A·B + beta·C + bias)`, with A
/// `m × b.k()` and C `m × b.n()`. Fewer rows than one microkernel tile (batch-1 layers)
/// stream the packed B as a GEMV.
///
/// # Panics
/// If a view or a bias slice is out of bounds.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_packed_b(
    m: usize, alpha: f32,
    a: &[f32], rsa: isize, csa: isize,
    b: &PackedB,
    beta: f32, c: &mut [f32], rsc: isize, csc: isize,
    epilogue: &Epilogue,
) {
    let (n, k) = (b.n, b.k);
    check_view("A", a.len(), m, k, rsa, csa);
    check_view("C", c.len(), m, n, rsc, csc);
    let (row_bias, col_bias) = bias_pointers(epilogue, m, n);
    let p = Problem {
        m, n, k, alpha, beta,
        a: View { ptr: a.as_ptr(), rs: rsa, cs: csa },
        // Never read: B's panels come from `b.data`.
        b: View { ptr: std::ptr::null(), rs: 0, cs: 0 },
        c: ViewMut { ptr: c.as_mut_ptr(), rs: rsc, cs: csc },
        epi: Epi::new(row_bias, col_bias, epilogue.activation),
    };
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(feature = "blas")]
    if b.plain {
        let p = Problem { b: View { ptr: b.data.as_ptr(), rs: n as isize, cs: 1 }, ..p };
        // SAFETY: `b.data` is B row-major; A, C and the bias were checked above.
        unsafe {
            if !blas::run(&p) {
                p.run(Isa::detect());
            }
        }
        return;
    }
    let kernel = Kernel::for_rows(b.isa, m);
    // SAFETY: A, C and the bias were checked above, C is borrowed mutably, and `b.data`
    // was packed for `b.isa`'s kernels (one NR for all heights) with exactly this (k, n).
    unsafe {
        if k == 0 || alpha == 0.0 {
            p.scale_only();
        } else if m < gemv_below(b.isa) {
            gemv_prepacked_split(&p, b.isa, kernel.nr, &b.data);
        } else {
            let panels = PanelsB::Prepacked { data: &b.data, n_pad: round_up(n, kernel.nr), col0: 0 };
            gemm_packed(&kernel, &p, PanelsA::FromView, panels);
        }
    }
}

/// Weights (floats of B) from which a GEMV's columns are split over the pool's threads
/// (each core streams its part). Measured on the 2-core bench machine (shared, load 3-4):
/// a split costs ~5-10 µs (one hand-off to a pool thread and back), and GEMVs of 0.2-2 M
/// weights (mlp's 784x256: 9 µs, mnist_cnn's 9216x128: 63 µs) ran 1.1-2x slower split;
/// 4 M weights (16384x256: 391 -> 326 µs) and 16 M (5.4 -> 4.2 ms) ran faster. Those
/// losses were the second core being busy: with the pool thread given a core (`chrt`) and
/// kept polling between splits (now the pool's spin, runtime/par.rs), 1 M weights split well (mnist_cnn's fc1
/// 63 -> 52 µs, mobilenet's 1024x1000 classifier 215 -> 148 µs; p10 of each op). With the
/// runtime's own spinning pool (runtime/par.rs: a split costs well under 1 µs when the pool
/// thread has a core, and the caller runs piece 1 itself when it does not), mlp's 784x256
/// and 256x128 layers split well too: mlp b1 at 2 threads 11.2 -> 6.4-6.6 µs native (chrt,
/// thresholds 32 / 64 / 128 Ki all 6.4-6.7; 8-16 Ki, which split nothing more in the
/// suite, no better). Each thread always gets the same columns (the caller piece 0, the
/// pool thread piece 1), so its half of the weights stays in its own L2 from call to call.
const GEMV_SPLIT_FLOATS: usize = 32 * 1024;

/// Below the old 512 Ki threshold a GEMV split only pays while the pool thread keeps up:
/// when the caller ran piece 1 itself (the pool thread descheduled by a busy second core),
/// the next [`GEMV_BACKOFF_CALLS`] such GEMVs run on one thread (each core's half of the
/// weights would otherwise move between the two L2s). Measured, mlp b1 at 2 threads with
/// the second core busy (load 2.5, no chrt): serial 11.3-11.7 µs, split 12.3-12.8, split
/// with this backoff 11.3-11.9; with a free core (chrt) split 7.0-7.7, backoff 6.8-6.9.
const GEMV_BACKOFF_BELOW: usize = 512 * 1024;
const GEMV_BACKOFF_CALLS: usize = 64;
static GEMV_BACKOFF: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The `m` (< one tile) rows of C from a prepacked B, split by NR-aligned column ranges
/// over the pool when B is large (see [`GEMV_SPLIT_FLOATS`]). Safety: as `gemv_prepacked_cols`.
unsafe fn gemv_prepacked_split(p: &Problem, isa: Isa, nr: usize, data: &[f32]) {
    let floats = p.k.saturating_mul(p.n).saturating_mul(p.m);
    let n_pad = round_up(p.n, nr);
    struct Shared(Problem);
    // SAFETY: the pieces write disjoint column ranges of C; A and B are only read.
    unsafe impl Sync for Shared {}
    impl Shared {
        fn get(&self) -> Problem {
            self.0
        }
    }
    let shared = Shared(*p);
    use std::sync::atomic::Ordering::Relaxed;
    let small = floats < GEMV_BACKOFF_BELOW;
    let mut threshold = GEMV_SPLIT_FLOATS;
    if small && floats >= GEMV_SPLIT_FLOATS {
        let backoff = GEMV_BACKOFF.load(Relaxed);
        if backoff > 0 {
            GEMV_BACKOFF.store(backoff - 1, Relaxed);
            threshold = GEMV_BACKOFF_BELOW;
        }
    }
    let caller = std::thread::current().id();
    // Work in the pool's units: 2 flops per weight read, the threshold likewise.
    super::par::for_ranges_min(p.n, nr, 2 * floats, 2 * threshold, |r| {
        if small && r.start > 0 && std::thread::current().id() == caller {
            GEMV_BACKOFF.store(GEMV_BACKOFF_CALLS, Relaxed);
        }
        let q = shared.get();
        // Columns r of C: B's column 0 is the packed column r.start (a sliver boundary).
        let sub = unsafe {
            Problem { n: r.len(), c: ViewMut { ptr: q.c.at(0, r.start), ..q.c }, epi: q.epi.at(0, r.start), ..q }
        };
        for i in 0..q.m {
            unsafe { gemv_prepacked_cols(&sub, i, isa, nr, data, n_pad, r.start) };
        }
    });
}

/// Row `i` of C from a prepacked B: each NR-column sliver is a k-major strip, streamed once.
/// The problem's column 0 is column `col0` (a multiple of NR) of a packed B `n_pad` wide.
unsafe fn gemv_prepacked_cols(p: &Problem, i: usize, isa: Isa, nr: usize, data: &[f32], n_pad: usize, col0: usize) {
    with_scratch(p.k, |a_row| {
        // A's row made contiguous, so the strip loop is two streams.
        for (q, x) in a_row.iter_mut().enumerate() {
            *x = unsafe { *p.a.at(i, q) };
        }
        let mut acc = [0.0f32; 32];
        for j0 in (0..p.n).step_by(nr) {
            let acc = &mut acc[..nr];
            acc.fill(0.0);
            for pc in (0..p.k).step_by(KC) {
                let kc = KC.min(p.k - pc);
                let sliver = &data[pc * n_pad + (col0 + j0) * kc..][..kc * nr];
                strips(isa, &a_row[pc..pc + kc], sliver, acc);
            }
            unsafe { gemv_finish(p, &acc[..nr.min(p.n - j0)], p.c.at(i, 0), j0, p.epi.at(i, 0)) };
        }
    });
}

/// `acc += Σ_q x[q]·sliver[q·NR..(q+1)·NR]`, with `NR = acc.len()` (8, 16 or 32).
fn strips(isa: Isa, x: &[f32], sliver: &[f32], acc: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `isa` went through `or_supported`, so the CPU has these features.
        if let (Isa::Avx512, Ok(acc)) = (isa, <&mut [f32; 32]>::try_from(&mut *acc)) {
            return unsafe { x86::strips_avx512(x, sliver, acc) };
        }
        if let (Isa::Avx2, Ok(acc)) = (isa, <&mut [f32; 16]>::try_from(&mut *acc)) {
            return unsafe { x86::strips_avx2(x, sliver, acc) };
        }
    }
    let _ = isa;
    if let Ok(acc) = <&mut [f32; GENERIC_NR]>::try_from(&mut *acc) {
        return strips_fixed(x, sliver, acc);
    }
    let nr = acc.len();
    for (&xq, strip) in x.iter().zip(sliver.chunks_exact(nr)) {
        acc.iter_mut().zip(strip).for_each(|(s, &y)| *s += xq * y);
    }
}

/// The strip loop with NR known at compile time (fully vectorized by LLVM).
#[inline(always)]
fn strips_fixed<const NR: usize>(x: &[f32], sliver: &[f32], acc: &mut [f32; NR]) {
    for (&xq, strip) in x.iter().zip(sliver.chunks_exact(NR)) {
        for (s, &y) in acc.iter_mut().zip(strip) {
            *s += xq * y;
        }
    }
}

/// Panics unless every `(i, j)` of a `rows × cols` view lies inside a slice of `len`.
fn check_view(name: &str, len: usize, rows: usize, cols: usize, rs: isize, cs: isize) {
    if rows == 0 || cols == 0 {
        return;
    }
    let reach = |count: usize, stride: isize| -> Option<(isize, isize)> {
        let last = isize::try_from(count - 1).ok()?.checked_mul(stride)?;
        Some((last.min(0), last.max(0)))
    };
    let bounds = reach(rows, rs).zip(reach(cols, cs)).and_then(|((rlo, rhi), (clo, chi))| {
        Some((rlo.checked_add(clo)?, rhi.checked_add(chi)?))
    });
    match bounds {
        Some((lo, hi)) if lo >= 0 && (hi as usize) < len => {}
        _ => panic!("sgemm: {name} view ({rows}x{cols}, strides {rs},{cs}) exceeds its slice of {len}"),
    }
}

// ---------------------------------------------------------------------------------------
// Internal representation: raw strided views, valid for the whole call (checked above).

#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

impl View {
    /// Pointer to element `(i, j)`. Caller keeps `(i, j)` inside the checked view.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }

    fn transposed(self) -> View {
        View { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }
}

#[derive(Clone, Copy)]
struct ViewMut {
    ptr: *mut f32,
    rs: isize,
    cs: isize,
}

impl ViewMut {
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> *mut f32 {
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// The epilogue as raw pointers already offset to the current tile (null = no bias).
#[derive(Clone, Copy)]
struct Epi {
    row: *const f32,
    col: *const f32,
    lo: f32,
    hi: f32,
    clamp: bool,
    /// False for every K block but the last: the bias and activation apply once.
    apply: bool,
}

impl Epi {
    fn new(row: *const f32, col: *const f32, activation: Activation) -> Epi {
        let (lo, hi, clamp) = match activation {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY, false),
            Activation::Relu => (0.0, f32::INFINITY, true),
            Activation::Clip { min, max } => (min, max, true),
        };
        Epi { row, col, lo, hi, clamp, apply: true }
    }

    /// The epilogue of the sub-block starting at row `i`, column `j`.
    #[inline(always)]
    unsafe fn at(self, i: usize, j: usize) -> Epi {
        let shift = |p: *const f32, by: usize| if p.is_null() { p } else { unsafe { p.add(by) } };
        Epi { row: shift(self.row, i), col: shift(self.col, j), ..self }
    }

    fn transposed(self) -> Epi {
        Epi { row: self.col, col: self.row, ..self }
    }

    fn skipped(self) -> Epi {
        Epi { apply: false, ..self }
    }

    /// Bias and activation of element `(r, j)` relative to this epilogue's origin.
    #[inline(always)]
    unsafe fn finish(&self, mut v: f32, r: usize, j: usize) -> f32 {
        if !self.apply {
            return v;
        }
        unsafe {
            if !self.row.is_null() {
                v += *self.row.add(r);
            }
            if !self.col.is_null() {
                v += *self.col.add(j);
            }
        }
        // Written with comparisons (not f32::max) so that NaN propagates like the SIMD path.
        if self.clamp {
            if v < self.lo {
                v = self.lo;
            } else if v > self.hi {
                v = self.hi;
            }
        }
        v
    }
}

/// `C = epi(alpha·A·B + beta·C)` for one call, on raw views.
#[derive(Clone, Copy)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    a: View,
    b: View,
    c: ViewMut,
    epi: Epi,
}

impl Problem {
    /// `Cᵀ = Bᵀ·Aᵀ`: the same product seen with rows and columns swapped.
    fn transposed(self) -> Problem {
        Problem {
            m: self.n,
            n: self.m,
            a: self.b.transposed(),
            b: self.a.transposed(),
            c: ViewMut { ptr: self.c.ptr, rs: self.c.cs, cs: self.c.rs },
            epi: self.epi.transposed(),
            ..self
        }
    }

    /// Picks the algorithm. Safety: views valid, C not aliased (see `sgemm_with_isa`).
    unsafe fn run(self, isa: Isa) {
        let Problem { m, n, k, .. } = self;
        if m == 0 || n == 0 {
            return;
        }
        unsafe {
            if k == 0 || self.alpha == 0.0 {
                return self.scale_only();
            }
            // The kernels write row-major tiles best; a column-major C, or a single
            // column, is the transposed problem. A single row never is, so this cannot
            // bounce back and forth.
            let col_major_c = self.c.rs == 1 && self.c.cs != 1;
            if m > 1 && (n == 1 || col_major_c) {
                return self.transposed().run(isa);
            }
            let kernel = Kernel::for_rows(isa, m);
            // A few rows times a transposed B (a weight stored [n, k], the common Dense
            // layout): packing B would cost more than the product, so stream its columns.
            if m > 1 && m < DOT_ROWS_MAX && self.b.rs == 1 && self.b.cs != 1 {
                return gemm_dots(isa, &self);
            }
            if m < gemv_below(isa) && gemv_friendly(self.b) {
                for i in 0..m {
                    gemv_row(isa, &self, i);
                }
                return;
            }
            gemm_packed(&kernel, &self, PanelsA::FromView, PanelsB::FromView);
        }
    }

    /// `C = epi(beta·C)`, when `A·B` contributes nothing.
    unsafe fn scale_only(self) {
        for i in 0..self.m {
            for j in 0..self.n {
                unsafe {
                    let p = self.c.at(i, j);
                    let v = if self.beta == 0.0 { 0.0 } else { self.beta * *p };
                    *p = self.epi.finish(v, i, j);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Packed, cache-blocked GEMM.

// Block sizes, tuned on a 1 MiB-L2 core (AMD EPYC Zen 4) with bench/gemm: the A block
// (KC·MC·4 = 192 KiB) and the B panel (KC·NC·4 = 512 KiB) both stay in L2.
/// K depth of a packed panel: an MR×KC sliver of A plus a KC×NR sliver of B fit in L1.
const KC: usize = 256;
/// Rows of A packed at once.
const MC: usize = 192;
/// Columns of B packed at once.
const NC: usize = 512;

/// Microkernel: `kc` steps over packed slivers, then writes one tile of C.
type KernelFn = unsafe fn(kc: usize, a: *const f32, b: *const f32, tile: &Tile);

struct Kernel {
    mr: usize,
    nr: usize,
    run: KernelFn,
    /// The kernel can read B in place (any row step, unit column step) instead of packed.
    direct_b: bool,
}

impl Kernel {
    fn for_isa(isa: Isa) -> Kernel {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernel { mr: x86::AVX512_MR, nr: 32, run: x86::kernel_avx512::<8>, direct_b: true },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Kernel { mr: 6, nr: 16, run: x86::kernel_avx2, direct_b: true },
            _ => Kernel { mr: GENERIC_MR, nr: GENERIC_NR, run: kernel_generic, direct_b: false },
        }
    }

    /// The kernel for a product with `m` rows: on AVX-512, fewer than 8 rows get a tile
    /// of 2, 4 or 6 rows (same NR, so a prepacked B fits every one), so a short batch
    /// wastes no FMAs on zero rows and still reads each B sliver once.
    fn for_rows(isa: Isa, m: usize) -> Kernel {
        let kernel = Kernel::for_isa(isa);
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && m < kernel.mr {
            let (mr, run): (usize, KernelFn) = match m {
                0..=2 => (2, x86::kernel_avx512::<2>),
                3..=4 => (4, x86::kernel_avx512::<4>),
                _ => (6, x86::kernel_avx512::<6>),
            };
            return Kernel { mr, run, ..kernel };
        }
        let _ = m;
        kernel
    }

}

/// Products with fewer rows than this take the GEMV paths (one row of C at a time): the
/// smallest tile's height.
fn gemv_below(isa: Isa) -> usize {
    if isa == Isa::Avx512 { 2 } else { Kernel::for_isa(isa).mr }
}

/// Up to this many rows, B with unit column stride is read in place by the kernel rather
/// than packed: each B element then serves at most two row slivers, too few to pay for
/// copying it (measured 8x1024x1024: 50 GFLOP/s packing B on every call).
const DIRECT_B_ROWS: usize = 16;

/// Where and how a microkernel writes its `mr × nr` result.
struct Tile {
    c: *mut f32,
    rs: isize,
    cs: isize,
    /// Valid rows and columns (smaller than mr/nr at the edges of C).
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
    epi: Epi,
    /// Floats between consecutive k rows of the B sliver: NR when packed, B's row stride
    /// when read in place.
    b_step: isize,
}

impl Tile {
    /// Scalar write of a tile held in `acc` (row stride `nr`): the edge and strided case.
    unsafe fn store_generic(&self, acc: &[f32], nr: usize) {
        for r in 0..self.rows {
            for j in 0..self.cols {
                unsafe {
                    let p = self.c.offset(r as isize * self.rs + j as isize * self.cs);
                    let mut v = self.alpha * acc[r * nr + j];
                    if self.beta != 0.0 {
                        v += self.beta * *p;
                    }
                    *p = self.epi.finish(v, r, j);
                }
            }
        }
    }
}

/// 16 extra floats let a buffer start on a 64-byte line whatever the allocator returns.
const ALIGN_SLACK: usize = 16;

thread_local! {
    static PACK_BUFFER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a 64-byte-aligned scratch slice of `len` floats, reused across calls.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let aligned = |v: &mut Vec<f32>| -> usize {
        if v.len() < len + ALIGN_SLACK {
            v.resize(len + ALIGN_SLACK, 0.0);
        }
        v.as_ptr().align_offset(64).min(ALIGN_SLACK)
    };
    PACK_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            let start = aligned(&mut v);
            f(&mut v[start..start + len])
        }
        // Re-entered from inside `f` (not done today): fall back to a fresh buffer.
        Err(_) => {
            let mut v = Vec::new();
            let start = aligned(&mut v);
            f(&mut v[start..start + len])
        }
    })
}

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

/// Where the packed panels of B come from.
#[derive(Clone, Copy)]
enum PanelsB<'a> {
    /// Packed on the fly from the problem's B view.
    FromView,
    /// Read in place by the kernel (B's columns contiguous, few rows of A), except the
    /// last sliver when it is narrower than NR.
    Direct,
    /// Packed once by [`PackedB`]: K blocks of `KC` rows, each `n_pad` (the full B's `n`
    /// rounded up to NR) wide; this problem's column 0 is the packed B's column `col0`.
    Prepacked { data: &'a [f32], n_pad: usize, col0: usize },
}

/// Where the packed slivers of A come from.
#[derive(Clone, Copy)]
enum PanelsA<'a> {
    /// Packed on the fly from the problem's A view.
    FromView,
    /// Packed once by [`PackedA`]: K blocks of `KC` columns, each `m_pad` (the full A's `m`
    /// rounded up to MR) rows; this problem's row 0 is the packed A's row `row0` (a
    /// multiple of MR).
    Prepacked { data: &'a [f32], m_pad: usize, row0: usize },
}

/// A problem shared by the threads that each compute a disjoint part of C.
struct SharedProblem<'a> {
    p: Problem,
    kernel: &'a Kernel,
    panels_a: PanelsA<'a>,
    panels: PanelsB<'a>,
    /// True: threads take column ranges of C (B packed once overall, A once per thread);
    /// false: row ranges (A once overall, B once per thread).
    by_columns: bool,
}

// SAFETY: the raw views are only used to compute disjoint row or column ranges of C (see
// `SharedProblem::part`); A and B are only read.
unsafe impl Sync for SharedProblem<'_> {}

impl SharedProblem<'_> {
    /// Rows or columns `r` of C: a sub-problem with its own views, bias and B panels.
    unsafe fn part(&self, r: std::ops::Range<usize>) {
        let p = self.p;
        unsafe {
            let (sub, panels_a, panels) = if self.by_columns {
                let panels = match self.panels {
                    PanelsB::FromView => PanelsB::FromView,
                    PanelsB::Direct => PanelsB::Direct,
                    PanelsB::Prepacked { data, n_pad, col0 } => PanelsB::Prepacked { data, n_pad, col0: col0 + r.start },
                };
                let b = if matches!(panels, PanelsB::Prepacked { .. }) { p.b } else { View { ptr: p.b.at(0, r.start), ..p.b } };
                let c = ViewMut { ptr: p.c.at(0, r.start), ..p.c };
                (Problem { n: r.len(), b, c, epi: p.epi.at(0, r.start), ..p }, self.panels_a, panels)
            } else {
                let panels_a = match self.panels_a {
                    PanelsA::FromView => PanelsA::FromView,
                    PanelsA::Prepacked { data, m_pad, row0 } => PanelsA::Prepacked { data, m_pad, row0: row0 + r.start },
                };
                let a = if matches!(panels_a, PanelsA::Prepacked { .. }) { p.a } else { View { ptr: p.a.at(r.start, 0), ..p.a } };
                let c = ViewMut { ptr: p.c.at(r.start, 0), ..p.c };
                (Problem { m: r.len(), a, c, epi: p.epi.at(r.start, 0), ..p }, panels_a, self.panels)
            };
            gemm_packed_serial(self.kernel, &sub, panels_a, panels);
        }
    }
}

/// Packed GEMM, split over the pool's threads when the product is large enough (see
/// [`super::par`]): C is cut into one column range per thread when it is wider than tall
/// (the cheaper operand to pack twice is then A), into row ranges otherwise.
unsafe fn gemm_packed(kernel: &Kernel, p: &Problem, panels_a: PanelsA, panels: PanelsB) {
    let work = 2usize.saturating_mul(p.m).saturating_mul(p.n).saturating_mul(p.k);
    let by_columns = p.n > p.m;
    let (len, align) = if by_columns { (p.n, kernel.nr) } else { (p.m, kernel.mr) };
    let shared = SharedProblem { p: *p, kernel, panels_a, panels, by_columns };
    let min_work = if by_columns && p.m <= kernel.mr { SHORT_SPLIT_WORK } else { super::par::MIN_PARALLEL_WORK };
    // SAFETY: the parts are disjoint ranges of C covering it once; see `SharedProblem`.
    super::par::for_ranges_min(len, align, work, min_work, |r| unsafe { shared.part(r) });
}

/// Work (flops) from which a short product (at most one row sliver: a Dense layer at batch
/// 2-8) splits its columns over the pool, instead of [`super::par::MIN_PARALLEL_WORK`]. Only
/// B's columns are split (A is one sliver), so each thread streams half of the weights.
/// Measured on mlp at batch 8 (784x256 layer, 3.2 MFLOP, 27 µs on one core), native loop
/// under `chrt`, 2 threads: 36.3 -> 28.5 µs for the whole model (1 thread unchanged).
const SHORT_SPLIT_WORK: usize = 2_000_000;

unsafe fn gemm_packed_serial(kernel: &Kernel, p: &Problem, panels_a: PanelsA, panels: PanelsB) {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let mc_step = (MC / mr).max(1) * mr;
    let nc_step = (NC / nr).max(1) * nr;
    let kc_max = KC.min(p.k);
    let mc_max = if matches!(panels_a, PanelsA::FromView) { round_up(mc_step.min(p.m), mr) } else { 0 };
    // A conv's packed weights times its input planes (pointwise layers, many positions):
    // the AVX-512 kernel reads those rows in place too (measured at mobilenet's shapes,
    // 64x12544x32 .. 256x784x256: 96-109 -> 99-113 GFLOP/s; the AVX2 tile lost).
    let conv_rows = kernel.nr == 32 && matches!(panels_a, PanelsA::Prepacked { .. });
    let direct = matches!(panels, PanelsB::FromView) && kernel.direct_b && p.b.cs == 1 && (p.m <= DIRECT_B_ROWS || conv_rows);
    let panels = if direct { PanelsB::Direct } else { panels };
    let nc_max = match panels {
        PanelsB::FromView => round_up(nc_step.min(p.n), nr),
        PanelsB::Direct => nr, // the last, partial sliver is packed
        PanelsB::Prepacked { .. } => 0,
    };
    with_scratch(kc_max * (mc_max + nc_max), |buf| {
        let (a_pack, b_buf) = buf.split_at_mut(kc_max * mc_max);
        if p.m <= mc_step {
            // A single row block (a conv's weights, a short batch): with K blocks outside,
            // each block of A is packed once for all of C's columns rather than once per
            // column panel. C is read and written once per K block either way.
            for pc in (0..p.k).step_by(KC) {
                let kc = KC.min(p.k - pc);
                let beta = if pc == 0 { p.beta } else { 1.0 };
                let epi = if pc + kc == p.k { p.epi } else { p.epi.skipped() };
                unsafe {
                    let a_block = panel_a(panels_a, p, pc, kc, 0, p.m, mr, a_pack);
                    for jc in (0..p.n).step_by(nc_step) {
                        let nc = nc_step.min(p.n - jc);
                        let b_pack = panel_b(panels, p, pc, kc, jc, nc, nr, b_buf);
                        let block = Block { ic: 0, jc, mc: p.m, nc, kc, beta, epi };
                        block.multiply(kernel, p, a_block, b_pack);
                    }
                }
            }
            return;
        }
        for jc in (0..p.n).step_by(nc_step) {
            let nc = nc_step.min(p.n - jc);
            for pc in (0..p.k).step_by(KC) {
                let kc = KC.min(p.k - pc);
                let beta = if pc == 0 { p.beta } else { 1.0 };
                let epi = if pc + kc == p.k { p.epi } else { p.epi.skipped() };
                unsafe {
                    let b_pack = panel_b(panels, p, pc, kc, jc, nc, nr, b_buf);
                    for ic in (0..p.m).step_by(mc_step) {
                        let mc = mc_step.min(p.m - ic);
                        let a_block = panel_a(panels_a, p, pc, kc, ic, mc, mr, a_pack);
                        let block = Block { ic, jc, mc, nc, kc, beta, epi };
                        block.multiply(kernel, p, a_block, b_pack);
                    }
                }
            }
        }
    });
}

/// The `kc × nc` panel of B at `(pc, jc)` as the kernels read it.
#[derive(Clone, Copy)]
enum PanelB<'a> {
    /// NR-column slivers, each `kc × NR` k-major, one after the other.
    Packed(&'a [f32]),
    /// B in place from `origin` (row step `rs`); the last sliver, narrower than NR, is
    /// packed in `edge` (empty when NR divides the panel).
    InPlace { origin: *const f32, rs: isize, edge: &'a [f32] },
}

impl PanelB<'_> {
    /// Sliver starting at panel column `jr`: (pointer, floats between k rows).
    #[inline(always)]
    unsafe fn sliver(&self, jr: usize, kc: usize, nr: usize, nc: usize) -> (*const f32, isize) {
        match *self {
            PanelB::Packed(data) => (unsafe { data.as_ptr().add(jr * kc) }, nr as isize),
            PanelB::InPlace { origin, rs, edge } if jr + nr <= nc || edge.is_empty() => {
                let _ = edge;
                (unsafe { origin.add(jr) }, rs)
            }
            PanelB::InPlace { edge, .. } => (edge.as_ptr(), nr as isize),
        }
    }
}

/// The panel of B at `(pc, jc)`: packed now into `b_buf`, read in place, or a slice of
/// the prepacked B.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_b<'a>(
    panels: PanelsB<'a>, p: &Problem, pc: usize, kc: usize, jc: usize, nc: usize, nr: usize, b_buf: &'a mut [f32],
) -> PanelB<'a> {
    match panels {
        PanelsB::FromView => {
            unsafe { pack_b(kc, nc, nr, p.b.at(pc, jc), p.b, b_buf) };
            PanelB::Packed(b_buf)
        }
        PanelsB::Direct => {
            let full = nc / nr * nr;
            let edge: &[f32] = if full < nc {
                unsafe { pack_b(kc, nc - full, nr, p.b.at(pc, jc + full), p.b, b_buf) };
                &b_buf[..kc * nr]
            } else {
                &[]
            };
            PanelB::InPlace { origin: unsafe { p.b.at(pc, jc) }, rs: p.b.rs, edge }
        }
        PanelsB::Prepacked { data, n_pad, col0 } => PanelB::Packed(&data[pc * n_pad + (col0 + jc) * kc..]),
    }
}

/// The `mc × kc` block of A at `(ic, pc)` as MR-row slivers: packed now into `a_buf`, or a
/// slice of the prepacked A.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_a<'a>(
    panels: PanelsA<'a>, p: &Problem, pc: usize, kc: usize, ic: usize, mc: usize, mr: usize, a_buf: &'a mut [f32],
) -> &'a [f32] {
    match panels {
        PanelsA::FromView => {
            unsafe { pack_a(kc, mc, mr, p.a.at(ic, pc), p.a, a_buf) };
            a_buf
        }
        PanelsA::Prepacked { data, m_pad, row0 } => &data[pc * m_pad + (row0 + ic) * kc..],
    }
}

/// One packed `mc × kc` block of A times one packed `kc × nc` panel of B.
struct Block {
    ic: usize,
    jc: usize,
    mc: usize,
    nc: usize,
    kc: usize,
    beta: f32,
    epi: Epi,
}

impl Block {
    unsafe fn multiply(&self, kernel: &Kernel, p: &Problem, a_pack: &[f32], b_pack: PanelB) {
        let (mr, nr) = (kernel.mr, kernel.nr);
        // Column slivers outside, row slivers inside: one B sliver stays in L1 while the
        // A slivers stream from L2.
        for jr in (0..self.nc).step_by(nr) {
            for ir in (0..self.mc).step_by(mr) {
                let (i, j) = (self.ic + ir, self.jc + jr);
                unsafe {
                    let (b, b_step) = b_pack.sliver(jr, self.kc, nr, self.nc);
                    let tile = Tile {
                        c: p.c.at(i, j),
                        rs: p.c.rs,
                        cs: p.c.cs,
                        rows: mr.min(self.mc - ir),
                        cols: nr.min(self.nc - jr),
                        alpha: p.alpha,
                        beta: self.beta,
                        epi: self.epi.at(i, j),
                        b_step,
                    };
                    let a = a_pack.as_ptr().add(ir * self.kc);
                    (kernel.run)(self.kc, a, b, &tile);
                }
            }
        }
    }
}

/// Packs `mc × kc` of A (starting at `origin`) as `mr`-row slivers, each stored k-major
/// (`mr` values per k step), rows past `mc` zero-filled.
unsafe fn pack_a(kc: usize, mc: usize, mr: usize, origin: *const f32, a: View, dst: &mut [f32]) {
    debug_assert!(dst.len() >= round_up(mc, mr) * kc);
    let out = dst.as_mut_ptr();
    for (s, i0) in (0..mc).step_by(mr).enumerate() {
        let rows = mr.min(mc - i0);
        let sliver = unsafe { out.add(s * mr * kc) };
        let first = unsafe { origin.offset(i0 as isize * a.rs) };
        // Full slivers with MR known at compile time: contiguous writes, MR read streams.
        if rows == mr {
            let packed = unsafe {
                match mr {
                    #[cfg(target_arch = "x86_64")]
                    8 if a.cs == 1 && super::cpu::avx() => {
                        x86::pack_a_sliver8_avx(kc, first, a.rs, sliver);
                        true
                    }
                    8 => pack_a_sliver::<8>(kc, first, a, sliver),
                    6 => pack_a_sliver::<6>(kc, first, a, sliver),
                    4 => pack_a_sliver::<4>(kc, first, a, sliver),
                    2 => pack_a_sliver::<2>(kc, first, a, sliver),
                    _ => false,
                }
            };
            if packed {
                continue;
            }
        }
        for r in 0..mr {
            for p in 0..kc {
                unsafe {
                    let v = if r < rows { *origin.offset((i0 + r) as isize * a.rs + p as isize * a.cs) } else { 0.0 };
                    *sliver.add(p * mr + r) = v;
                }
            }
        }
    }
}

/// One full `MR`-row sliver of A from row pointer `first`, k-major; always true (packed).
#[inline(always)]
unsafe fn pack_a_sliver<const MR: usize>(kc: usize, first: *const f32, a: View, sliver: *mut f32) -> bool {
    let rows: [*const f32; MR] = std::array::from_fn(|r| unsafe { first.offset(r as isize * a.rs) });
    for p in 0..kc {
        let step = p as isize * a.cs;
        let vals: [f32; MR] = std::array::from_fn(|r| unsafe { *rows[r].offset(step) });
        unsafe { *(sliver.add(p * MR) as *mut [f32; MR]) = vals };
    }
    true
}

/// Packs `kc × nc` of B (starting at `origin`) as `nr`-column slivers, each stored
/// k-major (`nr` values per k step), columns past `nc` zero-filled.
unsafe fn pack_b(kc: usize, nc: usize, nr: usize, origin: *const f32, b: View, dst: &mut [f32]) {
    debug_assert!(dst.len() >= round_up(nc, nr) * kc);
    let out = dst.as_mut_ptr();
    for (s, j0) in (0..nc).step_by(nr).enumerate() {
        let cols = nr.min(nc - j0);
        let sliver = unsafe { out.add(s * nr * kc) };
        for p in 0..kc {
            unsafe {
                let src = origin.offset(p as isize * b.rs + j0 as isize * b.cs);
                let row = sliver.add(p * nr);
                if b.cs == 1 && cols == nr {
                    // Fixed-size copies compile to vector moves; a copy of runtime length
                    // is a `memcpy` call per row (9% of a ResNet profile).
                    match nr {
                        32 => *(row as *mut [f32; 32]) = *(src as *const [f32; 32]),
                        16 => *(row as *mut [f32; 16]) = *(src as *const [f32; 16]),
                        _ => std::ptr::copy_nonoverlapping(src, row, nr),
                    }
                } else if b.cs == 1 && nr == 32 {
                    // The edge sliver of a row-major B (Winograd's V: one per GEMM): the
                    // select loop below compiled to scalar stores in some builds (3% of resnet18).
                    let mut edge = [0.0f32; 32];
                    edge[..cols].copy_from_slice(std::slice::from_raw_parts(src, cols));
                    *(row as *mut [f32; 32]) = edge;
                } else {
                    for j in 0..nr {
                        *row.add(j) = if j < cols { *src.offset(j as isize * b.cs) } else { 0.0 };
                    }
                }
            }
        }
    }
}

const GENERIC_MR: usize = 4;
const GENERIC_NR: usize = 8;

/// Portable microkernel (LLVM vectorizes the fixed-size inner loops with baseline SIMD).
unsafe fn kernel_generic(kc: usize, a: *const f32, b: *const f32, tile: &Tile) {
    debug_assert_eq!(tile.b_step, GENERIC_NR as isize, "the portable kernel reads packed B only");
    let mut acc = [0.0f32; GENERIC_MR * GENERIC_NR];
    // SAFETY: the packed slivers hold kc·MR and kc·NR floats.
    let (a, b) = unsafe {
        (std::slice::from_raw_parts(a, kc * GENERIC_MR), std::slice::from_raw_parts(b, kc * GENERIC_NR))
    };
    for (av, bv) in a.chunks_exact(GENERIC_MR).zip(b.chunks_exact(GENERIC_NR)) {
        for (row, &x) in acc.chunks_exact_mut(GENERIC_NR).zip(av) {
            for (c, &y) in row.iter_mut().zip(bv) {
                *c += x * y;
            }
        }
    }
    unsafe { tile.store_generic(&acc, GENERIC_NR) }
}

// ---------------------------------------------------------------------------------------
// GEMV: one row of C from one row of A, B streamed once without packing.

/// Columns of C accumulated per pass over B's rows (a 4 KiB stack buffer).
const GEMV_CHUNK: usize = 1024;

/// B's layout lets a row of C be computed by streaming B: contiguous rows or columns.
fn gemv_friendly(b: View) -> bool {
    b.cs == 1 || b.rs == 1
}

/// Row `i` of C. Safety: as `Problem::run`, and B is `gemv_friendly` or any layout.
unsafe fn gemv_row(isa: Isa, p: &Problem, i: usize) {
    unsafe {
        let a = View { ptr: p.a.at(i, 0), rs: 0, cs: p.a.cs };
        let c = p.c.at(i, 0);
        let epi = p.epi.at(i, 0);
        if p.b.cs == 1 {
            gemv_rows_of_b(isa, p, a, c, epi);
        } else {
            gemv_cols_of_b(isa, p, a, c, epi);
        }
    }
}

/// Writes `c[j] = epi(alpha·acc[j] + beta·c[j])` for the `acc.len()` columns from `j0`.
unsafe fn gemv_finish(p: &Problem, acc: &[f32], c: *mut f32, j0: usize, epi: Epi) {
    for (j, &v) in (j0..).zip(acc) {
        unsafe {
            let cp = c.offset(j as isize * p.c.cs);
            let mut x = p.alpha * v;
            if p.beta != 0.0 {
                x += p.beta * *cp;
            }
            *cp = epi.finish(x, 0, j);
        }
    }
}

/// B with contiguous rows: C's row is a sum of B's rows scaled by A's entries.
unsafe fn gemv_rows_of_b(isa: Isa, p: &Problem, a: View, c: *mut f32, epi: Epi) {
    let mut acc = [0.0f32; GEMV_CHUNK];
    for j0 in (0..p.n).step_by(GEMV_CHUNK) {
        let w = GEMV_CHUNK.min(p.n - j0);
        let acc = &mut acc[..w];
        acc.fill(0.0);
        unsafe {
            let row = |q: usize| std::slice::from_raw_parts(p.b.at(q, j0), w);
            let coef = |q: usize| *a.at(0, q);
            let mut q = 0;
            while q + 4 <= p.k {
                let rows = [row(q), row(q + 1), row(q + 2), row(q + 3)];
                let coefs = [coef(q), coef(q + 1), coef(q + 2), coef(q + 3)];
                axpy4(isa, acc, coefs, rows);
                q += 4;
            }
            while q < p.k {
                let (x, r) = (coef(q), row(q));
                acc.iter_mut().zip(r).for_each(|(s, &y)| *s += x * y);
                q += 1;
            }
            gemv_finish(p, acc, c, j0, epi);
        }
    }
}

/// `acc += Σ coefs[t]·rows[t]`, the GEMV inner loop (four rows per pass over `acc`).
fn axpy4(isa: Isa, acc: &mut [f32], coefs: [f32; 4], rows: [&[f32]; 4]) {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Generic {
        // SAFETY: `Isa::or_supported` only keeps Avx2/Avx512 when `detect` saw avx2+fma.
        return unsafe { x86::axpy4_avx2(acc, coefs, rows) };
    }
    let _ = isa;
    let [r0, r1, r2, r3] = rows;
    let [x0, x1, x2, x3] = coefs;
    for ((((s, &y0), &y1), &y2), &y3) in acc.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
        *s += x0 * y0 + x1 * y1 + x2 * y2 + x3 * y3;
    }
}

/// B with contiguous columns (a transposed weight): each C entry is a dot product.
unsafe fn gemv_cols_of_b(isa: Isa, p: &Problem, a: View, c: *mut f32, epi: Epi) {
    with_scratch(p.k, |a_row| {
        // A's row made contiguous so both dot operands stream.
        for (q, x) in a_row.iter_mut().enumerate() {
            *x = unsafe { *a.at(0, q) };
        }
        let col = |j: usize| unsafe { std::slice::from_raw_parts(p.b.at(0, j), p.k) };
        let mut j = 0;
        while j < p.n {
            // Past the last column, repeat it: the extra sums are computed, never written.
            let w = 4.min(p.n - j);
            let cols = [col(j), col(j + 1.min(w - 1)), col(j + 2.min(w - 1)), col(j + 3.min(w - 1))];
            let acc = dot4(isa, a_row, cols);
            unsafe { gemv_finish(p, &acc[..w], c, j, epi) };
            j += w;
        }
    });
}

/// Below this many rows, a B with contiguous columns is streamed by `gemm_dots` instead of
/// being packed (measured: packing a transposed 784x256 weight costs ~2 cycles per element).
const DOT_ROWS_MAX: usize = 16;

/// Rows of C two at a time, each entry a dot product of an A row with a contiguous B column.
unsafe fn gemm_dots(isa: Isa, p: &Problem) {
    let k = p.k;
    with_scratch(2 * k, |rows| {
        for i0 in (0..p.m).step_by(2) {
            let pair = 2.min(p.m - i0);
            // Both A rows made contiguous; a lone last row is doubled (its twin is not written).
            for (r, row) in rows.chunks_exact_mut(k).enumerate() {
                let i = i0 + r.min(pair - 1);
                for (q, x) in row.iter_mut().enumerate() {
                    *x = unsafe { *p.a.at(i, q) };
                }
            }
            let (r0, r1) = rows.split_at(k);
            let col = |j: usize| unsafe { std::slice::from_raw_parts(p.b.at(0, j), k) };
            let mut j = 0;
            while j < p.n {
                let w = 4.min(p.n - j);
                let cols = [col(j), col(j + 1.min(w - 1)), col(j + 2.min(w - 1)), col(j + 3.min(w - 1))];
                let acc = dot2x4(isa, [r0, r1], cols);
                for (r, sums) in acc.iter().enumerate().take(pair) {
                    unsafe { gemv_finish(p, &sums[..w], p.c.at(i0 + r, 0), j, p.epi.at(i0 + r, 0)) };
                }
                j += w;
            }
        }
    });
}

/// `[r][c] = rows[r] · cols[c]` for two rows and four columns.
fn dot2x4(isa: Isa, rows: [&[f32]; 2], cols: [&[f32]; 4]) -> [[f32; 4]; 2] {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Generic {
        // SAFETY: `Isa::or_supported` only keeps Avx2/Avx512 when `detect` saw avx2+fma.
        return unsafe { x86::dot2x4_avx2(rows, cols) };
    }
    let _ = isa;
    rows.map(|row| cols.map(|col| row.iter().zip(col).map(|(a, b)| a * b).sum()))
}

/// Four dot products of `x` with `cols`.
fn dot4(isa: Isa, x: &[f32], cols: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Generic {
        // SAFETY: as in `axpy4`.
        return unsafe { x86::dot4_avx2(x, cols) };
    }
    let _ = isa;
    cols.map(|col| x.iter().zip(col).map(|(a, b)| a * b).sum())
}

// ---------------------------------------------------------------------------------------
// The `blas` feature: products whose views BLAS can describe go to the system OpenBLAS.

#[cfg(feature = "blas")]
mod blas {
    use super::Problem;

    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    #[link(name = "openblas")]
    extern "C" {
        // CBLAS, as declared in OpenBLAS's cblas.h (32-bit integers: Debian's libopenblas0).
        fn cblas_sgemm(
            layout: i32, trans_a: i32, trans_b: i32, m: i32, n: i32, k: i32, alpha: f32,
            a: *const f32, lda: i32, b: *const f32, ldb: i32, beta: f32, c: *mut f32, ldc: i32,
        );
        fn openblas_set_num_threads(threads: i32);
    }

    /// A `rows × cols` view as a row-major CBLAS operand: (transposed, leading dimension),
    /// or None when neither stride is 1 (or a dimension does not fit an `i32`).
    fn operand(rows: usize, cols: usize, rs: isize, cs: isize) -> Option<(bool, i32)> {
        let fits = |ld: isize, min: usize| if ld >= min.max(1) as isize { i32::try_from(ld).ok() } else { None };
        // A single row or column has one stride that is never stepped: any valid ld works.
        if cs == 1 || cols == 1 {
            if let Some(ld) = fits(if rows == 1 { cols.max(1) as isize } else { rs }, cols) {
                return Some((false, ld));
            }
        }
        if rs == 1 || rows == 1 {
            if let Some(ld) = fits(if cols == 1 { rows.max(1) as isize } else { cs }, rows) {
                return Some((true, ld));
            }
        }
        None
    }

    /// OpenBLAS gets as many threads as the rayon pool (RAYON_NUM_THREADS), once.
    fn set_threads() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        let threads = super::super::par::threads().min(i32::MAX as usize) as i32;
        // SAFETY: plain setter of OpenBLAS's thread count.
        ONCE.call_once(|| unsafe { openblas_set_num_threads(threads) });
    }

    /// `C = epi(alpha·A·B + beta·C)` by `cblas_sgemm` then one pass for the epilogue; false
    /// (nothing done) when a view has no BLAS layout or the product is empty, so the caller
    /// runs irc's kernels. Safety: as `Problem::run`.
    pub(super) unsafe fn run(p: &Problem) -> bool {
        if p.m == 0 || p.n == 0 || p.k == 0 || p.alpha == 0.0 {
            return false;
        }
        let Some(c) = operand(p.m, p.n, p.c.rs, p.c.cs) else { return false };
        if c.0 {
            // C stored column-major: compute Cᵀ = Bᵀ·Aᵀ, whose C is row-major.
            return unsafe { run(&p.transposed()) };
        }
        let dims = (i32::try_from(p.m), i32::try_from(p.n), i32::try_from(p.k));
        let (Ok(m), Ok(n), Ok(k)) = dims else { return false };
        let (Some(a), Some(b)) = (operand(p.m, p.k, p.a.rs, p.a.cs), operand(p.k, p.n, p.b.rs, p.b.cs)) else {
            return false;
        };
        let flag = |t: bool| if t { TRANS } else { NO_TRANS };
        set_threads();
        unsafe {
            cblas_sgemm(ROW_MAJOR, flag(a.0), flag(b.0), m, n, k, p.alpha, p.a.ptr, a.1, p.b.ptr, b.1, p.beta, p.c.ptr, c.1);
            epilogue(p);
        }
        true
    }

    /// Bias and activation over C, when the epilogue has any.
    unsafe fn epilogue(p: &Problem) {
        let (m, n, c, e) = (p.m, p.n, p.c, p.epi);
        if e.row.is_null() && e.col.is_null() && !e.clamp {
            return;
        }
        for i in 0..m {
            for j in 0..n {
                unsafe {
                    let x = c.at(i, j);
                    *x = e.finish(*x, i, j);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// x86-64 kernels. Every function here is `unsafe` because it needs CPU features that the
// caller proved with `is_x86_feature_detected!` (through `Isa`), and reads raw pointers
// into packed buffers whose sizes the driver guarantees.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Tile;
    use std::arch::x86_64::*;

    /// Rows of the AVX-512 tile: 8×32 (16 zmm accumulators). Measured against 6, 12 and 14
    /// rows on Zen 4: the same large-size speed, and the least waste on small/odd M.
    pub const AVX512_MR: usize = 8;
    /// How far ahead (bytes) [`kernel_avx512_half`] prefetches its A sliver.
    const HALF_PREFETCH: usize = 3072;

    /// One 8-row sliver of a row-major A (rows `rs` apart, unit column step) packed k-major
    /// through 8x8 in-register transposes: 8 row loads and 8 contiguous stores per 8 k
    /// steps instead of 64 scalar loads (mlp at batch 8: `pack_a` 3.2% of the profile).
    ///
    /// # Safety
    /// The CPU has AVX; rows `first + r·rs` (r < 8) hold `kc` floats; `sliver` holds `8·kc`.
    #[target_feature(enable = "avx")]
    pub unsafe fn pack_a_sliver8_avx(kc: usize, first: *const f32, rs: isize, sliver: *mut f32) {
        let rows: [*const f32; 8] = std::array::from_fn(|r| unsafe { first.offset(r as isize * rs) });
        let mut p = 0;
        while p + 8 <= kc {
            unsafe {
                let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(rows[i].add(p)));
                // Column j of the 8 rows is the sliver's 8 floats at p + j.
                for (j, col) in super::transpose8x8(r).into_iter().enumerate() {
                    _mm256_storeu_ps(sliver.add((p + j) * 8), col);
                }
            }
            p += 8;
        }
        for q in p..kc {
            for (r, row) in rows.iter().enumerate() {
                unsafe { *sliver.add(q * 8 + r) = *row.add(q) };
            }
        }
    }

    /// 6×16 tile: 12 ymm accumulators + 2 B vectors + 1 broadcast of A.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_avx2(kc: usize, a: *const f32, b: *const f32, tile: &Tile) {
        const MR: usize = 6;
        const NR: usize = 16;
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        unsafe {
            for q in 0..kc {
                let bq = b.offset(q as isize * tile.b_step);
                let (b0, b1) = (_mm256_loadu_ps(bq), _mm256_loadu_ps(bq.add(8)));
                let aq = a.add(q * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*aq.add(r));
                    row[0] = _mm256_fmadd_ps(x, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(x, b1, row[1]);
                }
            }
            if tile.rows == MR && tile.cols == NR && tile.cs == 1 {
                store_rows_avx2(&acc, tile);
            } else {
                let mut buf = [0.0f32; MR * NR];
                for (r, row) in acc.iter().enumerate() {
                    _mm256_storeu_ps(buf.as_mut_ptr().add(r * NR), row[0]);
                    _mm256_storeu_ps(buf.as_mut_ptr().add(r * NR + 8), row[1]);
                }
                tile.store_generic(&buf, NR);
            }
        }
    }

    /// Full tile, contiguous rows of C: alpha, beta and the epilogue in vector registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_rows_avx2<const MR: usize, const V: usize>(acc: &[[__m256; V]; MR], t: &Tile) {
        let alpha = _mm256_set1_ps(t.alpha);
        let beta = _mm256_set1_ps(t.beta);
        let (lo, hi) = (_mm256_set1_ps(t.epi.lo), _mm256_set1_ps(t.epi.hi));
        let apply = t.epi.apply;
        for (r, row) in acc.iter().enumerate() {
            unsafe {
                let cr = t.c.offset(r as isize * t.rs);
                let row_bias = if apply && !t.epi.row.is_null() { *t.epi.row.add(r) } else { 0.0 };
                for (h, &v) in row.iter().enumerate() {
                    let cp = cr.add(h * 8);
                    let mut x = _mm256_mul_ps(v, alpha);
                    if t.beta != 0.0 {
                        x = _mm256_fmadd_ps(_mm256_loadu_ps(cp), beta, x);
                    }
                    if apply {
                        x = _mm256_add_ps(x, _mm256_set1_ps(row_bias));
                        if !t.epi.col.is_null() {
                            x = _mm256_add_ps(x, _mm256_loadu_ps(t.epi.col.add(h * 8)));
                        }
                        if t.epi.clamp {
                            // max/min return their second operand when one is NaN: x.
                            x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
                        }
                    }
                    _mm256_storeu_ps(cp, x);
                }
            }
        }
    }

    /// MR×32 tile: 2·MR zmm accumulators + 2 B vectors + 1 broadcast of A (MR = 8; 2, 4
    /// or 6 for short products).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_avx512<const MR: usize>(kc: usize, a: *const f32, b: *const f32, tile: &Tile) {
        const NR: usize = 32;
        const { assert!(MR >= 1 && MR <= AVX512_MR) };
        if tile.cols <= NR / 2 {
            // The last sliver of a panel 16 columns wide or less (784 = 24·32 + 16 at
            // 28x28, 196 = 6·32 + 4 at 14x14): half the FMAs of a full tile.
            return unsafe { kernel_avx512_half::<MR>(kc, a, b, tile) };
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        unsafe {
            for q in 0..kc {
                let bq = b.offset(q as isize * tile.b_step);
                let (b0, b1) = (_mm512_loadu_ps(bq), _mm512_loadu_ps(bq.add(16)));
                let aq = a.add(q * MR);
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*aq.add(r));
                    row[0] = _mm512_fmadd_ps(x, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(x, b1, row[1]);
                }
            }
            if tile.rows == MR && tile.cols == NR && tile.cs == 1 {
                store_rows_avx512(&acc, tile);
            } else if MR == AVX512_MR && tile.rows == MR && tile.cols == NR && tile.rs == 1 {
                // Column-major C (a conv's output written as out^T): transposed in 8x8 blocks.
                let mut buf = [0.0f32; AVX512_MR * NR];
                for (r, row) in acc.iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR), row[0]);
                    _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR + 16), row[1]);
                }
                store_cols_8(&buf, NR, tile);
            } else {
                // Sized for the tallest tile (8 rows); shorter tiles use the first rows.
                let mut buf = [0.0f32; AVX512_MR * NR];
                for (r, row) in acc.iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR), row[0]);
                    _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR + 16), row[1]);
                }
                tile.store_generic(&buf, NR);
            }
        }
    }

    /// Writes an 8-row tile held row-major in `buf` (row stride `nr`, `t.cols` columns that
    /// are a multiple of 8) into a column-major C (`t.rs == 1`): each column's 8 rows are
    /// one contiguous vector after an 8x8 transpose, with alpha, beta and the epilogue
    /// (row bias as a vector, column bias broadcast) applied there.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_cols_8(buf: &[f32], nr: usize, t: &Tile) {
        let alpha = _mm256_set1_ps(t.alpha);
        let beta = _mm256_set1_ps(t.beta);
        let (lo, hi) = (_mm256_set1_ps(t.epi.lo), _mm256_set1_ps(t.epi.hi));
        let apply = t.epi.apply;
        unsafe {
            let row_bias = if apply && !t.epi.row.is_null() { _mm256_loadu_ps(t.epi.row) } else { _mm256_setzero_ps() };
            for j0 in (0..t.cols).step_by(8) {
                let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(buf.as_ptr().add(i * nr + j0)));
                let cols = super::transpose8x8(r);
                for (jj, v) in cols.into_iter().enumerate() {
                    let j = j0 + jj;
                    let cp = t.c.offset(j as isize * t.cs);
                    let mut x = _mm256_mul_ps(v, alpha);
                    if t.beta != 0.0 {
                        x = _mm256_fmadd_ps(_mm256_loadu_ps(cp), beta, x);
                    }
                    if apply {
                        x = _mm256_add_ps(x, row_bias);
                        if !t.epi.col.is_null() {
                            x = _mm256_add_ps(x, _mm256_set1_ps(*t.epi.col.add(j)));
                        }
                        if t.epi.clamp {
                            x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
                        }
                    }
                    _mm256_storeu_ps(cp, x);
                }
            }
        }
    }

    /// MR×16 tile (one zmm per row) for slivers at most 16 columns wide; B keeps its
    /// sliver layout (`tile.b_step` floats per k row), only the first 16 are read.
    ///
    /// A is prefetched [`HALF_PREFETCH`] bytes ahead, one cache line per 16 floats: with 16
    /// columns each weight feeds one FMA, and batch-1 Winograd GEMMs on 14x14 / 7x7 planes
    /// (9.4 / 16.8 MB of transformed weights per layer, streamed from DRAM) ran at ~9.5 GB/s
    /// on the hardware prefetcher alone (resnet18 b1: 7x7 layer GEMMs 1.70 -> 1.35 ms,
    /// 14x14 1.00 -> 0.80 ms; 2048 and 4096 bytes ahead measured a little slower).
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel_avx512_half<const MR: usize>(kc: usize, a: *const f32, b: *const f32, tile: &Tile) {
        const NR: usize = 16;
        let mut acc = [[_mm512_setzero_ps(); 1]; MR];
        unsafe {
            for q in 0..kc {
                let b0 = _mm512_loadu_ps(b.offset(q as isize * tile.b_step));
                let aq = a.add(q * MR);
                if (q * MR) % 16 < MR {
                    // A hint: never faults, even past the end of A.
                    _mm_prefetch::<_MM_HINT_T0>(aq.cast::<i8>().wrapping_add(HALF_PREFETCH));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    row[0] = _mm512_fmadd_ps(_mm512_set1_ps(*aq.add(r)), b0, row[0]);
                }
            }
            if tile.rows == MR && tile.cols == NR && tile.cs == 1 {
                store_rows_avx512(&acc, tile);
            } else {
                let mut buf = [0.0f32; AVX512_MR * NR];
                for (r, row) in acc.iter().enumerate() {
                    _mm512_storeu_ps(buf.as_mut_ptr().add(r * NR), row[0]);
                }
                tile.store_generic(&buf, NR);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn store_rows_avx512<const MR: usize, const V: usize>(acc: &[[__m512; V]; MR], t: &Tile) {
        let alpha = _mm512_set1_ps(t.alpha);
        let beta = _mm512_set1_ps(t.beta);
        let (lo, hi) = (_mm512_set1_ps(t.epi.lo), _mm512_set1_ps(t.epi.hi));
        let apply = t.epi.apply;
        for (r, row) in acc.iter().enumerate() {
            unsafe {
                let cr = t.c.offset(r as isize * t.rs);
                let row_bias = if apply && !t.epi.row.is_null() { *t.epi.row.add(r) } else { 0.0 };
                for (h, &v) in row.iter().enumerate() {
                    let cp = cr.add(h * 16);
                    let mut x = _mm512_mul_ps(v, alpha);
                    if t.beta != 0.0 {
                        x = _mm512_fmadd_ps(_mm512_loadu_ps(cp), beta, x);
                    }
                    if apply {
                        x = _mm512_add_ps(x, _mm512_set1_ps(row_bias));
                        if !t.epi.col.is_null() {
                            x = _mm512_add_ps(x, _mm512_loadu_ps(t.epi.col.add(h * 16)));
                        }
                        if t.epi.clamp {
                            x = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
                        }
                    }
                    _mm512_storeu_ps(cp, x);
                }
            }
        }
    }

    /// [`super::strips_fixed`] compiled for AVX-512F (two zmm accumulators).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn strips_avx512(x: &[f32], sliver: &[f32], acc: &mut [f32; 32]) {
        super::strips_fixed(x, sliver, acc)
    }

    /// [`super::strips_fixed`] compiled for AVX2 (two ymm accumulators).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn strips_avx2(x: &[f32], sliver: &[f32], acc: &mut [f32; 16]) {
        super::strips_fixed(x, sliver, acc)
    }

    /// `acc += Σ coefs[t]·rows[t]`, 8 lanes at a time; rows are at least `acc.len()` long.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy4_avx2(acc: &mut [f32], coefs: [f32; 4], rows: [&[f32]; 4]) {
        let n = acc.len();
        assert!(rows.iter().all(|r| r.len() >= n));
        let x = coefs.map(|v| _mm256_set1_ps(v));
        let s = acc.as_mut_ptr();
        let mut j = 0;
        unsafe {
            while j + 8 <= n {
                let mut t = _mm256_loadu_ps(s.add(j));
                for (xv, row) in x.iter().zip(&rows) {
                    t = _mm256_fmadd_ps(*xv, _mm256_loadu_ps(row.as_ptr().add(j)), t);
                }
                _mm256_storeu_ps(s.add(j), t);
                j += 8;
            }
        }
        for j in j..n {
            acc[j] += coefs[0] * rows[0][j] + coefs[1] * rows[1][j] + coefs[2] * rows[2][j] + coefs[3] * rows[3][j];
        }
    }

    /// Four dot products of `x` with `cols`, 16 lanes per step (two accumulators each).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_avx2(x: &[f32], cols: [&[f32]; 4]) -> [f32; 4] {
        let k = x.len();
        assert!(cols.iter().all(|c| c.len() >= k));
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        let mut q = 0;
        unsafe {
            while q + 16 <= k {
                let x0 = _mm256_loadu_ps(x.as_ptr().add(q));
                let x1 = _mm256_loadu_ps(x.as_ptr().add(q + 8));
                for (a, col) in acc.iter_mut().zip(&cols) {
                    a[0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(col.as_ptr().add(q)), a[0]);
                    a[1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(col.as_ptr().add(q + 8)), a[1]);
                }
                q += 16;
            }
        }
        let mut out = [0.0f32; 4];
        for ((o, a), col) in out.iter_mut().zip(&acc).zip(&cols) {
            *o = hsum_avx(_mm256_add_ps(a[0], a[1]));
            *o += x[q..].iter().zip(&col[q..k]).map(|(u, v)| u * v).sum::<f32>();
        }
        out
    }

    /// Two rows times four columns, 8 lanes per step: 8 ymm accumulators, 6 loads per 8 FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot2x4_avx2(rows: [&[f32]; 2], cols: [&[f32]; 4]) -> [[f32; 4]; 2] {
        let k = rows[0].len();
        assert!(rows[1].len() >= k && cols.iter().all(|c| c.len() >= k));
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut q = 0;
        unsafe {
            while q + 8 <= k {
                let x = [_mm256_loadu_ps(rows[0].as_ptr().add(q)), _mm256_loadu_ps(rows[1].as_ptr().add(q))];
                for (c, col) in cols.iter().enumerate() {
                    let y = _mm256_loadu_ps(col.as_ptr().add(q));
                    acc[0][c] = _mm256_fmadd_ps(x[0], y, acc[0][c]);
                    acc[1][c] = _mm256_fmadd_ps(x[1], y, acc[1][c]);
                }
                q += 8;
            }
        }
        let mut out = [[0.0f32; 4]; 2];
        for ((o_row, a_row), row) in out.iter_mut().zip(&acc).zip(&rows) {
            for ((o, &a), col) in o_row.iter_mut().zip(a_row).zip(&cols) {
                *o = hsum_avx(a) + row[q..k].iter().zip(&col[q..k]).map(|(u, v)| u * v).sum::<f32>();
            }
        }
        out
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum_avx(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
}

/// The 8x8 transpose of eight AVX rows: vector `i` of the result holds element `i` of
/// every row. Inlined into its AVX callers (the conv output transpose, column-major C
/// stores), which enable the target feature.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn transpose8x8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}
