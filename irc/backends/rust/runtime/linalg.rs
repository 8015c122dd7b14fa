//! Matrix products. Every f32 GEMM of the crate (MatMul, Gemm, Conv, ConvTranspose, RNNs)
//! goes through [`gemm_f32`], so swapping in a faster kernel is a one-line change here.

use ndarray::{ArrayView2, ArrayViewMut2};

/// `c = alpha * a @ b + beta * c` on f32 matrices of any strides.
pub fn gemm_f32(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, c: &mut ArrayViewMut2<f32>) {
    gemm_f32_act(alpha, a, b, beta, c, super::gemm::Bias::None, Act::None);
}

/// Keeps glibc from returning large blocks to the kernel between calls.
///
/// glibc serves blocks above its mmap threshold (128 KiB at start) with a fresh `mmap`
/// and unmaps them on `free`, so every large intermediate of `forward` page-faults anew
/// on every call (measured: `clear_page_erms` / page faults high in the profiles of
/// ResNet and BERT). A fixed threshold of 32 MiB (glibc's maximum) and a high trim
/// threshold keep those blocks in the heap for reuse. Peak memory is unchanged: only
/// memory already freed is kept. Called once when a model loads; other targets: no-op.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        extern "C" {
            // glibc's `int mallopt(int param, int value)`, declared in <malloc.h>.
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        ONCE.call_once(|| {
            // SAFETY: `mallopt` only changes allocator parameters; it is thread-safe in glibc.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 512 << 20);
            }
            reserve_huge_heap();
        });
    }
}

/// Grows glibc's heap by [`HUGE_HEAP`] of address space advised for transparent huge pages,
/// then frees it back to the heap's top, where the weights and intermediates loaded next are
/// carved from. With 4 KiB pages, the weights that stream through every `forward` and the
/// layers' outputs cost TLB misses and page walks; on 2 MiB pages mobilenet b1 ran 4-6%
/// faster and resnet18 3% (measured with glibc's own `glibc.malloc.hugetlb=1` tunable, which
/// does this on every heap growth but only when set in the environment before the process
/// starts). Address space only: a page is backed when first touched, and peak RSS did not
/// move. The kernel honours the advice when THP is "madvise" or "always"; otherwise a no-op.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn reserve_huge_heap() {
    use std::ffi::c_void;
    extern "C" {
        fn malloc(size: usize) -> *mut c_void;
        fn free(ptr: *mut c_void);
        fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
    }
    const MADV_HUGEPAGE: i32 = 14;
    const HUGE_PAGE: usize = 2 << 20;
    // Below the 32 MiB mmap threshold set above, so each piece comes from the heap.
    const PIECE: usize = 30 << 20;
    let pieces: Vec<*mut c_void> = (0..HUGE_HEAP / PIECE)
        // SAFETY: plain malloc; every non-null result is freed below.
        .map(|_| unsafe { malloc(PIECE) })
        .filter(|p| !p.is_null())
        .collect();
    for &p in &pieces {
        // Rounded outwards to whole huge pages: the neighbours are heap memory too (a piece
        // or the top chunk), and madvise skips what is not mapped.
        let start = p as usize / HUGE_PAGE * HUGE_PAGE;
        let end = (p as usize + PIECE).next_multiple_of(HUGE_PAGE);
        // SAFETY: MADV_HUGEPAGE is advice only; it never changes the contents of memory.
        unsafe { madvise(start as *mut c_void, end - start, MADV_HUGEPAGE) };
    }
    for p in pieces.into_iter().rev() {
        // SAFETY: each pointer came from `malloc` above and is freed once.
        unsafe { free(p) };
    }
}

/// Heap address space [`reserve_huge_heap`] advises for huge pages.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HUGE_HEAP: usize = 240 << 20;

use super::elem::Num;
use super::elementwise::{broadcast_shape, broadcast_to};
use super::error::{shape_err, Result};
use super::shape::with_shape;
use ndarray::{ArrayD, Axis, Ix2, IxDyn};

/// numpy `matmul`: 1-D operands are promoted, leading dims broadcast.
pub fn matmul<T: Num>(a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>> {
    if a.ndim() == 0 || b.ndim() == 0 {
        return shape_err("matmul: scalar operand");
    }
    let av = if a.ndim() == 1 { a.view().insert_axis(Axis(0)) } else { a.view() };
    let bv = if b.ndim() == 1 { b.view().insert_axis(Axis(1)) } else { b.view() };
    let (m, k) = (av.shape()[av.ndim() - 2], av.shape()[av.ndim() - 1]);
    let (k2, n) = (bv.shape()[bv.ndim() - 2], bv.shape()[bv.ndim() - 1]);
    if k != k2 {
        return shape_err(format!("matmul: shapes {:?} and {:?} do not align", a.shape(), b.shape()));
    }
    let batch = broadcast_shape(&av.shape()[..av.ndim() - 2], &bv.shape()[..bv.ndim() - 2])?;
    if let Some(out) = matmul_contiguous(a, b, m, k, n, &batch)? {
        return Ok(out);
    }
    // Any other layout (transposed, sliced or broadcast operands): one GEMM per batch
    // index on strided views of the operands, never a copy of them.
    let full = |x: &[usize], y: [usize; 2]| IxDyn(&[x, &y].concat());
    let err = |e: String| super::error::Error::Shape(e);
    let a_full = av.broadcast(full(&batch, [m, k])).ok_or_else(|| err(format!("matmul: cannot broadcast {:?}", a.shape())))?;
    let b_full = bv.broadcast(full(&batch, [k, n])).ok_or_else(|| err(format!("matmul: cannot broadcast {:?}", b.shape())))?;
    let mut out = vec![T::zero(); batch.iter().product::<usize>() * m * n];
    if m * n > 0 {
        for (idx, o) in ndarray::indices(IxDyn(&batch)).into_iter().zip(out.chunks_exact_mut(m * n)) {
            let (mut ai, mut bi) = (a_full.view(), b_full.view());
            for &i in ndarray::Dimension::slice(&idx) {
                ai = ai.index_axis_move(Axis(0), i);
                bi = bi.index_axis_move(Axis(0), i);
            }
            let ai = ai.into_dimensionality::<Ix2>().map_err(|e| err(e.to_string()))?;
            let bi = bi.into_dimensionality::<Ix2>().map_err(|e| err(e.to_string()))?;
            let mut oi = ArrayViewMut2::from_shape((m, n), o).map_err(|e| err(e.to_string()))?;
            T::gemm(T::one(), &ai, &bi, T::zero(), &mut oi);
        }
    }
    let mut dims = batch;
    if a.ndim() > 1 {
        dims.push(m);
    }
    if b.ndim() > 1 {
        dims.push(n);
    }
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| err(e.to_string()))
}

/// [`matmul`] straight on the operands' memory, in the two common cases: a 2-D `b` (a
/// layer's weights: all rows of `a` in one GEMM) and equal batch dims (attention). The
/// general path copies and broadcasts both operands first. `None`: not applicable.
fn matmul_contiguous<T: Num>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    m: usize,
    k: usize,
    n: usize,
    batch: &[usize],
) -> Result<Option<ArrayD<T>>> {
    let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) else { return Ok(None) };
    if a.ndim() < 2 || b.ndim() < 2 || m * k * n == 0 {
        return Ok(None);
    }
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    let mut dims = batch.to_vec();
    dims.extend([m, n]);
    if b.ndim() == 2 {
        let rows = x.len() / k;
        let mut out = vec![T::zero(); rows * n];
        let av = ArrayView2::from_shape((rows, k), x).map_err(err)?;
        let bv = ArrayView2::from_shape((k, n), y).map_err(err)?;
        let mut ov = ArrayViewMut2::from_shape((rows, n), &mut out[..]).map_err(err)?;
        T::gemm(T::one(), &av, &bv, T::zero(), &mut ov);
        return Ok(Some(ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(err)?));
    }
    if a.shape()[..a.ndim() - 2] != *batch || b.shape()[..b.ndim() - 2] != *batch {
        return Ok(None);
    }
    let mut out = vec![T::zero(); x.len() / k * n];
    for ((xa, yb), o) in x.chunks_exact(m * k).zip(y.chunks_exact(k * n)).zip(out.chunks_exact_mut(m * n)) {
        let av = ArrayView2::from_shape((m, k), xa).map_err(err)?;
        let bv = ArrayView2::from_shape((k, n), yb).map_err(err)?;
        let mut ov = ArrayViewMut2::from_shape((m, n), o).map_err(err)?;
        T::gemm(T::one(), &av, &bv, T::zero(), &mut ov);
    }
    Ok(Some(ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(err)?))
}

/// `op(a)` and `op(b)` of ONNX Gemm as 2-D views (transposed by strides), checked to align.
fn gemm_operands<'a, T>(
    a: &'a ArrayD<T>,
    b: &'a ArrayD<T>,
    trans_a: bool,
    trans_b: bool,
) -> Result<(ArrayView2<'a, T>, ArrayView2<'a, T>)> {
    let (Ok(a2), Ok(b2)) = (a.view().into_dimensionality::<Ix2>(), b.view().into_dimensionality::<Ix2>()) else {
        return shape_err("gemm: operands must be 2-D");
    };
    let a2 = if trans_a { a2.reversed_axes() } else { a2 };
    let b2 = if trans_b { b2.reversed_axes() } else { b2 };
    if b2.nrows() != a2.ncols() {
        return shape_err(format!("gemm: shapes {:?} and {:?} do not align", a.shape(), b.shape()));
    }
    Ok((a2, b2))
}

/// ONNX `Gemm`: `alpha * op(a) @ op(b) + beta * c`.
pub fn gemm<T: Num>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    c: Option<&ArrayD<T>>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
) -> Result<ArrayD<T>> {
    let (a2, b2) = gemm_operands(a, b, trans_a, trans_b)?;
    let (m, n) = (a2.nrows(), b2.ncols());
    let mut out = match c {
        Some(c) => broadcast_to(c, &[m, n])?.to_owned(),
        None => ArrayD::from_elem(IxDyn(&[m, n]), T::zero()),
    };
    let beta = if c.is_some() { T::from_f64(beta) } else { T::zero() };
    {
        let mut o2 = out.view_mut().into_dimensionality::<Ix2>().map_err(|e| super::error::Error::Shape(e.to_string()))?;
        T::gemm(T::from_f64(alpha), &a2, &b2, beta, &mut o2);
    }
    Ok(out)
}

/// Einsum for equations with explicit output and each index at most once per operand.
pub fn einsum<T: Num>(equation: &str, inputs: &[&ArrayD<T>]) -> Result<ArrayD<T>> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let ranks: Vec<usize> = inputs.iter().map(|a| a.ndim()).collect();
    let (eq, ellipsis) = expand_ellipsis(&eq, &ranks)?;
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), r.to_string()),
        None => {
            let mut once: Vec<char> = eq.chars().filter(|c| c.is_alphabetic() && !ellipsis.contains(c)).collect();
            once.sort_unstable();
            let out: String = ellipsis.iter().chain(once.iter().filter(|c| eq.matches(**c).count() == 1)).collect();
            (eq.clone(), out)
        }
    };
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    if terms.len() != inputs.len() || lhs.contains('.') {
        return shape_err(format!("einsum: unsupported equation {equation}"));
    }
    let mut letters: Vec<char> = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    for (t, a) in terms.iter().zip(inputs) {
        if t.len() != a.ndim() {
            return shape_err(format!("einsum: term {t:?} does not match rank {}", a.ndim()));
        }
        for (c, &d) in t.iter().zip(a.shape()) {
            match letters.iter().position(|x| x == c) {
                Some(p) if sizes[p] != d && d != 1 && sizes[p] != 1 => {
                    return shape_err("einsum: inconsistent dims");
                }
                Some(p) => sizes[p] = sizes[p].max(d),
                None => {
                    letters.push(*c);
                    sizes.push(d);
                }
            }
        }
    }
    let out_letters: Vec<char> = rhs.chars().collect();
    let out_dims: Vec<usize> = out_letters
        .iter()
        .map(|c| letters.iter().position(|x| x == c).map(|p| sizes[p]))
        .collect::<Option<_>>()
        .ok_or_else(|| super::error::Error::Shape("einsum: unknown output index".into()))?;
    // Expand every operand to the full index space, multiply, sum the contracted axes.
    let mut acc: Option<ArrayD<T>> = None;
    for (t, a) in terms.iter().zip(inputs) {
        let full = expand_term(a, t, &letters)?;
        acc = Some(match acc {
            None => full,
            Some(x) => super::elementwise::mul(&x, &full)?,
        });
    }
    let mut acc = acc.ok_or_else(|| super::error::Error::Shape("einsum: no inputs".into()))?;
    for p in (0..letters.len()).rev() {
        if !out_letters.contains(&letters[p]) {
            acc = acc.fold_axis(Axis(p), T::zero(), |x, &y| x.add(y));
        }
    }
    let kept: Vec<char> = letters.iter().filter(|c| out_letters.contains(c)).copied().collect();
    let perm: Vec<usize> = out_letters.iter().filter_map(|c| kept.iter().position(|k| k == c)).collect();
    let out = super::shape::transpose(&acc, &perm)?;
    let out = broadcast_to(&out, &out_dims)?.to_owned();
    Ok(out)
}

/// Replaces `...` by letters the equation does not use, right-aligned across operands;
/// returns the new equation and the letters standing for the broadcast dims.
fn expand_ellipsis(eq: &str, ranks: &[usize]) -> Result<(String, Vec<char>)> {
    if !eq.contains("...") {
        return Ok((eq.to_string(), vec![]));
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq, None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return shape_err(format!("einsum: {} operands for equation {eq}", ranks.len()));
    }
    let widths: Vec<usize> = terms
        .iter()
        .zip(ranks)
        .map(|(t, &r)| if t.contains("...") { r.saturating_sub(t.len() - 3) } else { 0 })
        .collect();
    let most = widths.iter().copied().max().unwrap_or(0);
    let free: Vec<char> = ('A'..='Z').chain('a'..='z').filter(|c| !eq.contains(*c)).take(most).collect();
    if free.len() < most {
        return shape_err("einsum: too many broadcast dims");
    }
    let fill = |w: usize| -> String { free[most - w..].iter().collect() };
    let new_terms: Vec<String> = terms.iter().zip(&widths).map(|(t, &w)| t.replace("...", &fill(w))).collect();
    let mut out = new_terms.join(",");
    if let Some(r) = rhs {
        out.push_str("->");
        out.push_str(&r.replace("...", &fill(most)));
    }
    Ok((out, free))
}

/// An einsum operand with its axes ordered like `letters` (size 1 for indices it lacks).
fn expand_term<T: Num>(a: &ArrayD<T>, term: &[char], letters: &[char]) -> Result<ArrayD<T>> {
    let mut uniq: Vec<char> = Vec::new();
    for c in term {
        if !uniq.contains(c) {
            uniq.push(*c);
        }
    }
    let mut x = a.clone();
    if uniq.len() != term.len() {
        // Repeated index (a diagonal): keep elements where the repeated coordinates agree.
        let dims: Vec<usize> = uniq.iter().map(|c| a.shape()[term.iter().position(|t| t == c).unwrap_or(0)]).collect();
        x = ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
            let src: Vec<usize> = term.iter().map(|c| ix[uniq.iter().position(|u| u == c).unwrap_or(0)]).collect();
            a[IxDyn(&src)]
        });
    }
    let perm: Vec<usize> = letters.iter().filter_map(|c| uniq.iter().position(|u| u == c)).collect();
    let x = super::shape::transpose(&x, &perm)?;
    let mut dims = Vec::with_capacity(letters.len());
    let mut it = x.shape().iter();
    for c in letters {
        dims.push(if uniq.contains(c) { *it.next().unwrap_or(&1) } else { 1 });
    }
    with_shape(x.view(), &dims)
}


/// Determinant of each trailing `[M, M]` matrix (LU with partial pivoting, in f64).
pub fn det<T: super::elem::Float>(a: &ArrayD<T>) -> Result<ArrayD<T>> {
    let r = a.ndim();
    if r < 2 || a.shape()[r - 1] != a.shape()[r - 2] {
        return shape_err(format!("det: {:?} is not a (batch of) square matrices", a.shape()));
    }
    let n = a.shape()[r - 1];
    let data: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();
    let out: Vec<T> = data
        .chunks(n * n)
        .map(|m| {
            let mut m = m.to_vec();
            let mut det = 1.0;
            for c in 0..n {
                let p = (c..n).fold(c, |best, i| if m[i * n + c].abs() > m[best * n + c].abs() { i } else { best });
                if m[p * n + c] == 0.0 {
                    return T::from_f64(0.0);
                }
                if p != c {
                    for k in 0..n {
                        m.swap(c * n + k, p * n + k);
                    }
                    det = -det;
                }
                det *= m[c * n + c];
                for i in c + 1..n {
                    let f = m[i * n + c] / m[c * n + c];
                    for k in c..n {
                        m[i * n + k] -= f * m[c * n + k];
                    }
                }
            }
            T::from_f64(det)
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&a.shape()[..r - 2]), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}

/// ONNX `AffineGrid`: sampling grids `[N, (D,) H, W, k]` from affine matrices `theta [N, k, k + 1]`.
pub fn affine_grid<T: super::elem::Float>(theta: &ArrayD<T>, size: &[i64], align_corners: bool) -> Result<ArrayD<T>> {
    let k = size.len().saturating_sub(2);
    if !(k == 2 || k == 3) || theta.shape() != [size[0].max(0) as usize, k, k + 1] {
        return shape_err(format!("affine_grid: theta {:?} does not match size {size:?}", theta.shape()));
    }
    let spatial: Vec<usize> = size[2..].iter().map(|&d| d.max(0) as usize).collect();
    let coord = |i: usize, len: usize| -> f64 {
        if align_corners {
            -1.0 + i as f64 * 2.0 / (len as f64 - 1.0)
        } else {
            -1.0 + 1.0 / len as f64 + i as f64 * 2.0 / len as f64
        }
    };
    let mut dims = vec![theta.shape()[0]];
    dims.extend_from_slice(&spatial);
    dims.push(k);
    Ok(ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        // Homogeneous point (x, y[, z], 1): x runs along the last spatial dim.
        let mut point: Vec<f64> = (0..k).map(|j| coord(ix[k - j], spatial[k - 1 - j])).collect();
        point.push(1.0);
        let row = ix[k + 1];
        let v: f64 = point.iter().enumerate().map(|(c, p)| theta[IxDyn(&[ix[0], row, c])].to_f64() * p).sum();
        T::from_f64(v)
    }))
}

/// ONNX `DFT`: input `[..., n, 1 | 2]` (real or complex), transformed along `ax`; output `[..., m, 2]`.
pub fn dft<T: super::elem::Float>(x: &ArrayD<T>, length: Option<i64>, ax: i64, inverse: bool, onesided: bool) -> Result<ArrayD<T>> {
    let r = x.ndim();
    if r < 2 || !(x.shape()[r - 1] == 1 || x.shape()[r - 1] == 2) {
        return shape_err(format!("dft: last dim of {:?} must be 1 (real) or 2 (complex)", x.shape()));
    }
    // Negative axes count from the back of the full rank, the complex dim included.
    let ax = if ax < 0 { ax + r as i64 } else { ax };
    if ax < 0 || ax as usize >= r - 1 {
        return shape_err(format!("dft: axis {ax} out of range for {:?}", x.shape()));
    }
    let ax = ax as usize;
    let have = x.shape()[ax];
    let n = length.map_or(have, |l| l.max(0) as usize);
    let m = if onesided { n / 2 + 1 } else { n };
    let complex = x.shape()[r - 1] == 2;
    let mut dims = x.shape().to_vec();
    dims[ax] = m;
    dims[r - 1] = 2;
    let sign = if inverse { 1.0 } else { -1.0 };
    let scale = if inverse { 1.0 / n.max(1) as f64 } else { 1.0 };
    Ok(ArrayD::from_shape_fn(IxDyn(&dims), |ix| {
        let j = ix[ax];
        let (mut re, mut im) = (0.0, 0.0);
        let mut src = ix.clone();
        for k in 0..n.min(have) {
            src[ax] = k;
            src[r - 1] = 0;
            let a = x[&src].to_f64();
            let b = if complex {
                src[r - 1] = 1;
                x[&src].to_f64()
            } else {
                0.0
            };
            let t = sign * 2.0 * std::f64::consts::PI * ((j * k) % n.max(1)) as f64 / n.max(1) as f64;
            let (s, c) = t.sin_cos();
            re += a * c - b * s;
            im += a * s + b * c;
        }
        T::from_f64(scale * if ix[r - 1] == 0 { re } else { im })
    }))
}

/// The activation of a fused `irc.<Base><Act>` op (Conv, Gemm or MatMul), applied where
/// the layer writes its output instead of in a separate op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    Sigmoid,
    Tanh,
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu(f32),
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid(f32, f32),
    /// `min(max(x, lo), hi)`.
    Clip(f32, f32),
}

impl Act {
    /// What the GEMM epilogue applies itself; `None` when the activation needs its own pass.
    pub fn in_epilogue(self) -> Option<super::gemm::Activation> {
        use super::gemm::Activation;
        match self {
            Act::None => Some(Activation::None),
            Act::Relu => Some(Activation::Relu),
            Act::Clip(min, max) => Some(Activation::Clip { min, max }),
            _ => None,
        }
    }

    /// The activation of one value.
    #[inline(always)]
    pub fn of(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            // Comparisons, not f32::max, so that NaN propagates like the GEMM epilogue.
            Act::Relu => if v < 0.0 { 0.0 } else { v },
            Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
            Act::Tanh => v.tanh(),
            Act::LeakyRelu(alpha) => if v < 0.0 { alpha * v } else { v },
            Act::HardSigmoid(alpha, beta) => (alpha * v + beta).clamp(0.0, 1.0),
            Act::Clip(lo, hi) => if v < lo { lo } else if v > hi { hi } else { v },
        }
    }

    /// Applies the activation in place (one pass, for the activations no epilogue covers).
    pub fn apply(self, out: &mut [f32]) {
        if self != Act::None {
            out.iter_mut().for_each(|v| *v = self.of(*v));
        }
    }

    /// The epilogue for `bias` when this activation fits in it, else bias only (the
    /// caller then runs [`Act::apply`] on the written block).
    fn epilogue(self, bias: super::gemm::Bias<'_>) -> super::gemm::Epilogue<'_> {
        let activation = self.in_epilogue().unwrap_or(super::gemm::Activation::None);
        super::gemm::Epilogue { bias, activation }
    }
}

/// `c = act(alpha * a @ b + beta * c + bias)` on f32 views; the activation is fused into
/// the GEMM's output loop when it can be, else applied while the block is still in cache.
pub fn gemm_f32_act(
    alpha: f32,
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    beta: f32,
    c: &mut ArrayViewMut2<f32>,
    bias: super::gemm::Bias<'_>,
    act: Act,
) {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert!(b.nrows() == k && c.dim() == (m, n), "gemm_f32_act: shapes do not align");
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    let pc = c.as_mut_ptr();
    // SAFETY: three valid ndarray views of the checked shapes; `c` is borrowed mutably,
    // so it aliases neither `a` nor `b`.
    unsafe {
        super::gemm::sgemm_raw(
            m, n, k, alpha, a.as_ptr(), sa[0], sa[1], b.as_ptr(), sb[0], sb[1],
            beta, pc, sc[0], sc[1], &act.epilogue(bias),
        )
    }
    if act.in_epilogue().is_none() {
        c.mapv_inplace(|v| act.of(v));
    }
}

/// `irc.Gemm<Act>`: ONNX `Gemm` then the activation, bias and activation in the GEMM's
/// output loop (a bias row `[n]` / `[1, n]` is the epilogue's per-column bias).
#[allow(clippy::too_many_arguments)]
pub fn gemm_act(
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    c: &ArrayD<f32>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    trans_b: bool,
    act: Act,
) -> Result<ArrayD<f32>> {
    let (a2, b2) = gemm_operands(a, b, trans_a, trans_b)?;
    let (m, n) = (a2.nrows(), b2.ncols());
    let (alpha, beta) = (alpha as f32, beta as f32);
    let per_col = c.len() == n && (c.ndim() == 1 || (c.ndim() == 2 && c.shape()[0] == 1));
    let mut out;
    let bias: Vec<f32>;
    let gemm_beta = if per_col || beta == 0.0 {
        out = ArrayD::from_elem(IxDyn(&[m, n]), 0.0f32);
        bias = if per_col && beta != 0.0 { c.iter().map(|&v| beta * v).collect() } else { Vec::new() };
        0.0
    } else {
        out = broadcast_to(c, &[m, n])?.to_owned();
        bias = Vec::new();
        beta
    };
    let epi_bias = if bias.is_empty() { super::gemm::Bias::None } else { super::gemm::Bias::PerCol(&bias) };
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    let mut o2 = out.view_mut().into_dimensionality::<Ix2>().map_err(err)?;
    gemm_f32_act(alpha, &a2, &b2, gemm_beta, &mut o2, epi_bias, act);
    Ok(out)
}

/// `irc.MatMul<Act>`: numpy `matmul` then the activation.
pub fn matmul_act(a: &ArrayD<f32>, b: &ArrayD<f32>, act: Act) -> Result<ArrayD<f32>> {
    let mut out = matmul(a, b)?;
    if let Some(s) = out.as_slice_mut() {
        act.apply(s);
    } else {
        out.mapv_inplace(|v| act.of(v));
    }
    Ok(out)
}

/// A constant `[k, n]` GEMM operand (a `Gemm`/`MatMul` layer's weights) packed once at load
/// into the sgemm microkernel's layout, so no call packs it again.
pub struct PackedMat {
    b: super::gemm::PackedB,
}

impl PackedMat {
    /// `w` is the `[k, n]` operand, or `[n, k]` when `transposed` (Gemm `transB`, Dense weights).
    pub fn new(w: ArrayD<f32>, transposed: bool) -> Result<PackedMat> {
        let w = w.as_standard_layout();
        let (Some(data), 2) = (w.as_slice(), w.ndim()) else {
            return shape_err(format!("packed weights must be 2-D, got {:?}", w.shape()));
        };
        let (rows, cols) = (w.shape()[0], w.shape()[1]);
        let (k, n, rs, cs) = if transposed { (cols, rows, 1, cols as isize) } else { (rows, cols, cols as isize, 1) };
        Ok(PackedMat { b: super::gemm::PackedB::new(k, n, data, rs, cs) })
    }

    /// `c = act(alpha * a @ B + beta * c + bias)`, `a` `[m, k]` (any strides), `c` `[m, n]`.
    #[allow(clippy::too_many_arguments)]
    fn product(&self, alpha: f32, a: &ArrayView2<f32>, beta: f32, c: &mut [f32], bias: super::gemm::Bias<'_>, act: Act) -> Result<()> {
        let (m, k) = a.dim();
        if k != self.b.k() {
            return shape_err(format!("gemm: operand with {k} columns times packed weights with {} rows", self.b.k()));
        }
        let n = self.b.n();
        let (sa, base) = (a.strides(), a.as_ptr());
        // The smallest slice that holds the view (the packed GEMM takes slices).
        let a_len = if m * k == 0 { 0 } else { ((m - 1) as isize * sa[0] + (k - 1) as isize * sa[1]) as usize + 1 };
        if sa[0] < 0 || sa[1] < 0 {
            return shape_err("gemm: negative strides");
        }
        // SAFETY: a view of `m x k` with non-negative strides reaches exactly `a_len` floats from its origin.
        let a_slice = unsafe { std::slice::from_raw_parts(base, a_len) };
        super::gemm::sgemm_packed_b(m, alpha, a_slice, sa[0], sa[1], &self.b, beta, c, n as isize, 1, &act.epilogue(bias));
        if act.in_epilogue().is_none() {
            act.apply(c);
        }
        Ok(())
    }
}

/// ONNX `Gemm` (`irc.Gemm<Act>` with an activation) whose B is a [`PackedMat`].
pub fn gemm_packed(
    a: &ArrayD<f32>,
    b: &PackedMat,
    c: Option<&ArrayD<f32>>,
    alpha: f64,
    beta: f64,
    trans_a: bool,
    act: Act,
) -> Result<ArrayD<f32>> {
    let Ok(a2) = a.view().into_dimensionality::<Ix2>() else {
        return shape_err("gemm: operands must be 2-D");
    };
    let a2 = if trans_a { a2.reversed_axes() } else { a2 };
    let (m, n, beta) = (a2.nrows(), b.b.n(), beta as f32);
    let per_col = c.is_some_and(|c| c.len() == n && (c.ndim() == 1 || (c.ndim() == 2 && c.shape()[0] == 1)));
    // A contiguous bias with beta 1 (every Dense layer) is read in place: collecting it
    // through ndarray's element iterator cost ~1 µs per call on mlp (3% of batch 8).
    let scaled: Vec<f32>;
    let (mut out, gemm_beta, bias): (Vec<f32>, f32, &[f32]) = match c {
        Some(c) if per_col => {
            let bias = match c.as_slice() {
                Some(s) if beta == 1.0 => s,
                _ => {
                    scaled = c.iter().map(|&v| beta * v).collect();
                    &scaled
                }
            };
            (vec![0.0f32; m * n], 0.0, bias)
        }
        Some(c) if beta != 0.0 => {
            let full = broadcast_to(c, &[m, n])?;
            (full.iter().copied().collect(), beta, &[])
        }
        _ => (vec![0.0f32; m * n], 0.0, &[]),
    };
    let epi_bias = if bias.is_empty() { super::gemm::Bias::None } else { super::gemm::Bias::PerCol(bias) };
    b.product(alpha as f32, &a2, gemm_beta, &mut out, epi_bias, act)?;
    ArrayD::from_shape_vec(IxDyn(&[m, n]), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}

/// numpy `matmul` (`irc.MatMul<Act>` with an activation) of `a` `[..., k]` by a [`PackedMat`]
/// `[k, n]`: all leading dims of `a` are rows of one GEMM.
pub fn matmul_packed(a: &ArrayD<f32>, b: &PackedMat, act: Act) -> Result<ArrayD<f32>> {
    let (k, n) = (b.b.k(), b.b.n());
    if a.ndim() == 0 || a.shape()[a.ndim() - 1] != k {
        return shape_err(format!("matmul: shape {:?} does not align with [{k}, {n}]", a.shape()));
    }
    let a_std = a.as_standard_layout();
    let rows: usize = a.shape()[..a.ndim() - 1].iter().product();
    let a2 = ArrayView2::from_shape((rows, k), a_std.as_slice().unwrap_or(&[])).map_err(|e| super::error::Error::Shape(e.to_string()))?;
    let mut out = vec![0.0f32; rows * n];
    b.product(1.0, &a2, 0.0, &mut out, super::gemm::Bias::None, act)?;
    let mut dims = a.shape()[..a.ndim() - 1].to_vec();
    dims.push(n);
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| super::error::Error::Shape(e.to_string()))
}
