//! Recurrent layers: LSTM, GRU and simple RNN (ONNX layout 0, default activations).
//!
//! f32 runs the fast path ([`run_f32`]): the input projection of every time step is one
//! GEMM, the recurrent weights are packed once per call and each step is one GEMV against
//! them, the gate math is one vectorized loop, and the loop over steps allocates nothing.
//! Other element types take the plain per-step version ([`run_direction`]).

use super::elem::{as_f32, as_f32_mut, is_f32, Elem, Float, Num};
use super::error::{shape_err, Result};
use super::gemm::{sgemm_packed_b, sgemm_raw, Activation, Bias, Epilogue, PackedB};
use super::par;
use super::vmath::{self, simd};
use ndarray::{s, Array2, Array3, ArrayD, ArrayView2, Axis, Ix2, Ix3};

/// Which recurrent cell to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Lstm,
    Gru { linear_before_reset: bool },
    Rnn,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru { .. } => 3,
            Cell::Rnn => 1,
        }
    }
}

fn sig<T: Float>(v: T) -> T {
    T::one().div(T::one().add(v.neg().exp()))
}

/// `a @ b^T` through the crate's GEMM.
fn mm_t<T: Num>(a: &ArrayView2<T>, b: &ArrayView2<T>) -> Array2<T> {
    let mut out = Array2::from_elem((a.nrows(), b.nrows()), T::zero());
    T::gemm(T::one(), a, &b.t(), T::zero(), &mut out.view_mut());
    out
}

/// Runs one direction over the sequence; returns all hidden states `[seq, batch, h]`, last h, last c.
#[allow(clippy::too_many_arguments)]
fn run_direction<T: Float>(
    cell: Cell,
    x: &Array3<T>,
    w: ArrayView2<T>,
    r: ArrayView2<T>,
    b: Option<ndarray::ArrayView1<T>>,
    h0: Array2<T>,
    c0: Array2<T>,
    p: Option<ndarray::ArrayView1<T>>,
    reverse: bool,
    lens: &[usize],
) -> (Array3<T>, Array2<T>, Array2<T>) {
    let (seq, batch, hidden) = (x.shape()[0], x.shape()[1], h0.ncols());
    let g = cell.gates();
    let bias_w: Vec<T> = (0..g * hidden).map(|i| b.map_or(T::zero(), |b| b[i])).collect();
    let bias_r: Vec<T> = (0..g * hidden).map(|i| b.map_or(T::zero(), |b| b[g * hidden + i])).collect();
    let peep = |k: usize, j: usize| p.map_or(T::zero(), |p| p[k * hidden + j]);
    let (mut h, mut c) = (h0, c0);
    let mut ys = Array3::from_elem((seq, batch, hidden), T::zero());
    for step in 0..seq {
        let t = if reverse { seq - 1 - step } else { step };
        let xw = mm_t(&x.index_axis(Axis(0), t), &w);
        let hr = mm_t(&h.view(), &r);
        let mut h_new = Array2::from_elem((batch, hidden), T::zero());
        for bi in 0..batch {
            if t >= lens[bi] {
                // Past this sequence's length: state carried unchanged, output zero.
                h_new.row_mut(bi).assign(&h.row(bi));
                continue;
            }
            for j in 0..hidden {
                let gx = |k: usize| xw[[bi, k * hidden + j]].add(bias_w[k * hidden + j]);
                let gh = |k: usize| hr[[bi, k * hidden + j]].add(bias_r[k * hidden + j]);
                let hp = h[[bi, j]];
                h_new[[bi, j]] = match cell {
                    Cell::Lstm => {
                        let cp = c[[bi, j]];
                        let i = sig(gx(0).add(gh(0)).add(peep(0, j).mul(cp)));
                        let f = sig(gx(2).add(gh(2)).add(peep(2, j).mul(cp)));
                        let cc = gx(3).add(gh(3)).tanh();
                        let cn = f.mul(cp).add(i.mul(cc));
                        let o = sig(gx(1).add(gh(1)).add(peep(1, j).mul(cn)));
                        c[[bi, j]] = cn;
                        o.mul(cn.tanh())
                    }
                    Cell::Gru { linear_before_reset } => {
                        let z = sig(gx(0).add(gh(0)));
                        let rg = sig(gx(1).add(gh(1)));
                        let hh = if linear_before_reset {
                            gx(2).add(rg.mul(gh(2))).tanh()
                        } else {
                            // (r * h_prev) @ R_h^T: recomputed per element from the row of R.
                            let mut acc = bias_r[2 * hidden + j];
                            for k in 0..hidden {
                                acc = acc.add(rg_at(&xw, &hr, &bias_w, &bias_r, bi, k, hidden).mul(h[[bi, k]]).mul(r[[2 * hidden + j, k]]));
                            }
                            gx(2).add(acc).tanh()
                        };
                        T::one().sub(z).mul(hh).add(z.mul(hp))
                    }
                    Cell::Rnn => gx(0).add(gh(0)).tanh(),
                };
            }
        }
        h = h_new;
        let mut y_t = ys.index_axis_mut(Axis(0), t);
        y_t.assign(&h);
        for (bi, &len) in lens.iter().enumerate() {
            if t >= len {
                y_t.row_mut(bi).fill(T::zero());
            }
        }
    }
    (ys, h, c)
}

/// The GRU reset gate of hidden unit `k` (needed whole-row when linear_before_reset = 0).
fn rg_at<T: Float>(xw: &Array2<T>, hr: &Array2<T>, bw: &[T], br: &[T], bi: usize, k: usize, hidden: usize) -> T {
    sig(xw[[bi, hidden + k]].add(bw[hidden + k]).add(hr[[bi, hidden + k]]).add(br[hidden + k]))
}

/// `Y`, `Y_h` and `Y_c` of a recurrent layer.
type Outputs3<T> = (ArrayD<T>, ArrayD<T>, ArrayD<T>);

/// A `batch_first` (layout = 1) layer run in layout 0: the initial states `[batch, dirs, h]`
/// go in transposed, the outputs come back transposed (`X` is the caller's, it may be read
/// in place).
fn in_layout0<T: Elem>(
    h0: Option<&ArrayD<T>>,
    c0: Option<&ArrayD<T>>,
    run: impl FnOnce(Option<&ArrayD<T>>, Option<&ArrayD<T>>) -> Result<Outputs3<T>>,
) -> Result<Outputs3<T>> {
    use super::shape::transpose;
    let h0t = h0.map(|h| transpose(h, &[1, 0, 2])).transpose()?;
    let c0t = c0.map(|c| transpose(c, &[1, 0, 2])).transpose()?;
    let (y, yh, yc) = run(h0t.as_ref(), c0t.as_ref())?;
    Ok((transpose(&y, &[2, 0, 1, 3])?, transpose(&yh, &[1, 0, 2])?, transpose(&yc, &[1, 0, 2])?))
}

/// Steps to run per batch row: `sequence_lens` clamped to `0..=seq`, or `seq` for all.
fn step_counts(seq_lens: Option<&ArrayD<i32>>, batch: usize, seq: usize) -> Result<Vec<usize>> {
    match seq_lens {
        Some(l) if l.len() == batch => Ok(l.iter().map(|&v| (v.max(0) as usize).min(seq)).collect()),
        Some(_) => shape_err("recurrent: sequence_lens must have one length per batch entry"),
        None => Ok(vec![seq; batch]),
    }
}

/// ONNX LSTM / GRU / RNN: returns `Y [seq, dirs, batch, h]`, `Y_h [dirs, batch, h]`, `Y_c`.
#[allow(clippy::too_many_arguments)]
pub fn recurrent<T: Float>(
    cell: Cell,
    x: &ArrayD<T>,
    w: &ArrayD<T>,
    r: &ArrayD<T>,
    b: Option<&ArrayD<T>>,
    h0: Option<&ArrayD<T>>,
    c0: Option<&ArrayD<T>>,
    p: Option<&ArrayD<T>>,
    seq_lens: Option<&ArrayD<i32>>,
    hidden: usize,
    direction: &str,
    batch_first: bool,
) -> Result<Outputs3<T>> {
    if batch_first {
        let x0 = super::shape::transpose(x, &[1, 0, 2])?;
        return in_layout0(h0, c0, |h0, c0| recurrent(cell, &x0, w, r, b, h0, c0, p, seq_lens, hidden, direction, false));
    }
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    let x3 = x.view().into_dimensionality::<Ix3>().map_err(err)?.to_owned();
    let w3 = w.view().into_dimensionality::<Ix3>().map_err(err)?;
    let r3 = r.view().into_dimensionality::<Ix3>().map_err(err)?;
    let dirs = if direction == "bidirectional" { 2 } else { 1 };
    let (seq, batch) = (x3.shape()[0], x3.shape()[1]);
    if w3.shape()[0] != dirs || w3.shape()[1] != cell.gates() * hidden || w3.shape()[2] != x3.shape()[2] {
        return shape_err(format!("recurrent: weight {:?} does not match input {:?}", w.shape(), x.shape()));
    }
    let init = |a: Option<&ArrayD<T>>, d: usize| -> Result<Array2<T>> {
        match a {
            Some(a) => Ok(a.view().into_dimensionality::<Ix3>().map_err(err)?.index_axis(Axis(0), d).to_owned()),
            None => Ok(Array2::from_elem((batch, hidden), T::zero())),
        }
    };
    let b2 = match b {
        Some(b) => Some(b.view().into_dimensionality::<Ix2>().map_err(err)?),
        None => None,
    };
    let p2 = match p {
        Some(p) => Some(p.view().into_dimensionality::<Ix2>().map_err(err)?),
        None => None,
    };
    let lens = step_counts(seq_lens, batch, seq)?;
    let mut y = ndarray::Array4::from_elem((seq, dirs, batch, hidden), T::zero());
    let mut yh = Array3::from_elem((dirs, batch, hidden), T::zero());
    let mut yc = Array3::from_elem((dirs, batch, hidden), T::zero());
    let dims = Dims { seq, batch, input: x3.shape()[2], hidden, dirs };
    if let Some(layer) = LayerF32::new(cell, &x3, w3, r3, b, h0, c0, p, &dims) {
        if let (Some(ys), Some(yhs), Some(ycs)) = (
            y.as_slice_mut().and_then(as_f32_mut),
            yh.as_slice_mut().and_then(as_f32_mut),
            yc.as_slice_mut().and_then(as_f32_mut),
        ) {
            for d in 0..dirs {
                let reverse = direction == "reverse" || d == 1;
                run_f32(&layer, &dims, d, reverse, &lens, Outputs { y: ys, yh: yhs, yc: ycs }, Proj::Raw, None);
            }
            return Ok((y.into_dyn(), yh.into_dyn(), yc.into_dyn()));
        }
    }
    for d in 0..dirs {
        let reverse = direction == "reverse" || d == 1;
        let (ys, h, c) = run_direction(
            cell,
            &x3,
            w3.index_axis(Axis(0), d),
            r3.index_axis(Axis(0), d),
            b2.as_ref().map(|b| b.row(d)),
            init(h0, d)?,
            init(c0, d)?,
            p2.as_ref().map(|p| p.row(d)),
            reverse,
            &lens,
        );
        y.slice_mut(s![.., d, .., ..]).assign(&ys);
        yh.index_axis_mut(Axis(0), d).assign(&h);
        yc.index_axis_mut(Axis(0), d).assign(&c);
    }
    Ok((y.into_dyn(), yh.into_dyn(), yc.into_dyn()))
}

/// Sizes of a recurrent layer.
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
}

/// The operands of an f32 layer as contiguous slices (all directions).
struct LayerF32<'a> {
    cell: Cell,
    x: &'a [f32],
    w: &'a [f32],
    r: &'a [f32],
    b: Option<&'a [f32]>,
    h0: Option<&'a [f32]>,
    c0: Option<&'a [f32]>,
    p: Option<&'a [f32]>,
    /// With [`Proj::Done`]: the row of `x` holding step `t`, batch row `b` is
    /// `rows[t * batch + b]` (an embedding lookup) instead of `t * batch + b`.
    rows: Option<&'a [usize]>,
}

impl<'a> LayerF32<'a> {
    /// `None` unless `T` is f32 and every operand is contiguous with the expected size.
    #[allow(clippy::too_many_arguments)]
    fn new<T: Elem>(
        cell: Cell,
        x: &'a Array3<T>,
        w: ndarray::ArrayView3<'a, T>,
        r: ndarray::ArrayView3<'a, T>,
        b: Option<&'a ArrayD<T>>,
        h0: Option<&'a ArrayD<T>>,
        c0: Option<&'a ArrayD<T>>,
        p: Option<&'a ArrayD<T>>,
        d: &Dims,
    ) -> Option<Self> {
        if !is_f32::<T>() {
            return None;
        }
        let gh = cell.gates() * d.hidden;
        let sized = |a: Option<&'a ArrayD<T>>, n: usize| -> Option<Option<&'a [f32]>> {
            match a {
                None => Some(None),
                Some(a) => a.as_slice().and_then(as_f32).filter(|s| s.len() == n).map(Some),
            }
        };
        let state = d.dirs * d.batch * d.hidden;
        let layer = LayerF32 {
            cell,
            x: x.as_slice().and_then(as_f32)?,
            w: w.to_slice().and_then(as_f32).filter(|s| s.len() == d.dirs * gh * d.input)?,
            r: r.to_slice().and_then(as_f32).filter(|s| s.len() == d.dirs * gh * d.hidden)?,
            b: sized(b, d.dirs * 2 * gh)?,
            h0: sized(h0, state)?,
            c0: sized(c0, state)?,
            p: sized(p, d.dirs * 3 * d.hidden)?,
            rows: None,
        };
        Some(layer)
    }
}

/// Where [`run_f32`] writes: `Y [seq, dirs, batch, h]`, `Y_h` and `Y_c [dirs, batch, h]`.
struct Outputs<'o> {
    y: &'o mut [f32],
    yh: &'o mut [f32],
    yc: &'o mut [f32],
}

/// Where [`run_f32`] takes the input projection of a direction from.
enum Proj<'a> {
    /// `W`'s rows of this direction (`[gh, input]` in `l.w`), packed on this call.
    Raw,
    /// `Wᵀ` of this direction packed at load.
    Packed(&'a Recurrent),
    /// `X` already holds the projections, `[seq, batch, dirs * gh]`, with the biases folded
    /// in (all but the GRU's recurrent bias of the new gate, still read from `B`).
    Done,
}

/// One direction `d` of an f32 layer: the input projection from `proj`, the recurrent
/// weights from `rec` (packed at load) or packed here from `l.r`.
#[allow(clippy::too_many_arguments)]
fn run_f32(
    l: &LayerF32,
    d: &Dims,
    dir: usize,
    reverse: bool,
    lens: &[usize],
    out: Outputs,
    proj: Proj,
    rec: Option<&(Recurrent, Option<Recurrent>)>,
) {
    let (h, batch, seq) = (d.hidden, d.batch, d.seq);
    let gh = l.cell.gates() * h;
    let gru = matches!(l.cell, Cell::Gru { .. });
    // Empty when packed at load (`proj`, `rec`).
    let w = l.w.get(dir * gh * d.input..(dir + 1) * gh * d.input).unwrap_or(&[]);
    let r = l.r.get(dir * gh * h..(dir + 1) * gh * h).unwrap_or(&[]);
    let (wb, rb) = match l.b {
        Some(b) => (&b[dir * 2 * gh..][..gh], &b[dir * 2 * gh + gh..][..gh]),
        None => (&[][..], &[][..]),
    };
    let bias_at = |v: &[f32], k: usize| v.get(k).copied().unwrap_or(0.0);
    // The input projection of all steps at once, with the biases that simply add up
    // folded in (the GRU's recurrent bias of the new gate is applied inside the cell).
    let mut xw_own = Vec::new();
    if !matches!(proj, Proj::Done) {
        let bias: Vec<f32> = (0..gh).map(|k| bias_at(wb, k) + if gru && k >= 2 * h { 0.0 } else { bias_at(rb, k) }).collect();
        xw_own = vec![0.0f32; seq * batch * gh];
        let epi = Epilogue { bias: Bias::PerCol(&bias), activation: Activation::None };
        match proj {
            Proj::Packed(wp) => wp.multiply_epi(l.x, &mut xw_own, &epi),
            _ if !xw_own.is_empty() => {
                // SAFETY: X is [seq*batch, input] row-major, W is [gh, input] read as its transpose
                // ([input, gh] with strides (1, input)), C is the [seq*batch, gh] buffer above.
                unsafe {
                    sgemm_raw(seq * batch, gh, d.input, 1.0, l.x.as_ptr(), d.input as isize, 1, w.as_ptr(), 1,
                              d.input as isize, 0.0, xw_own.as_mut_ptr(), gh as isize, 1, &epi);
                }
            }
            _ => {}
        }
    }
    // The projections of step t, row bi: `xw[(t * batch + bi) * x_stride + x_off..][..gh]`.
    let (xw, x_stride, x_off): (&[f32], usize, usize) = match proj {
        Proj::Done => (l.x, d.dirs * gh, dir * gh),
        _ => (&xw_own, gh, 0),
    };
    // R^T packed once: every step multiplies the state by it (the GRU's new-gate part is
    // packed apart because it multiplies `r * h`, known only after the other gates).
    let rec_cols = if gru { 2 * h } else { gh };
    let packed_here;
    let (recurrent, r_new) = match rec {
        Some((a, b)) => (a, b.as_ref()),
        None => {
            packed_here = (Recurrent::new(&r[..rec_cols * h], h), gru.then(|| Recurrent::new(&r[2 * h * h..], h)));
            (&packed_here.0, packed_here.1.as_ref())
        }
    };
    let state = dir * batch * h;
    let mut hs: Vec<f32> = l.h0.map_or(vec![0.0; batch * h], |s| s[state..][..batch * h].to_vec());
    let mut cs: Vec<f32> = l.c0.map_or(vec![0.0; batch * h], |s| s[state..][..batch * h].to_vec());
    let zeros = vec![0.0f32; 3 * h];
    let peep = l.p.map_or(&zeros[..], |p| &p[dir * 3 * h..][..3 * h]);
    let rb_new: Vec<f32> = (0..h).map(|j| bias_at(rb, 2 * h + j)).collect();
    let mut hr = vec![0.0f32; batch * rec_cols];
    // GRU per-row scratch: z, r, r * h, and the new gate's recurrent term.
    let mut gru_rows: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0f32; if gru { h } else { 0 }]);
    if let (Some(ub), Cell::Lstm, 1) = (&recurrent.units, l.cell, batch) {
        // Batch 1: the steps this row runs, in order (past its length: outputs zero).
        let ts: Vec<usize> = if reverse { (0..lens[0]).rev().collect() } else { (0..lens[0]).collect() };
        for t in lens[0]..seq {
            out.y[(t * d.dirs + dir) * h..][..h].fill(0.0);
        }
        let row = |t: usize| l.rows.map_or(t, |rows| rows[t]);
        let gx = |t: usize| &xw[row(t) * x_stride + x_off..][..gh];
        let y_at = |t: usize| (t * d.dirs + dir) * h;
        let peep = l.p.map_or(&[][..], |p| &p[dir * 3 * h..][..3 * h]);
        lstm_fused(ub, h, &ts, &gx, peep, &mut hs, &mut cs, out.y, &y_at);
        out.yh[state..][..h].copy_from_slice(&hs);
        out.yc[state..][..h].copy_from_slice(&cs);
        return;
    }
    for step in 0..seq {
        let t = if reverse { seq - 1 - step } else { step };
        if l.rows.is_some() {
            // Looked-up rows come from anywhere in the table: fetch them during the GEMV.
            for bi in 0..batch {
                let row = l.rows.map_or(0, |rows| rows[t * batch + bi]);
                prefetch(&xw[row * x_stride + x_off..][..gh]);
            }
        }
        recurrent.multiply(&hs, &mut hr, step % 2 == 1);
        for bi in 0..batch {
            let y_row = &mut out.y[((t * d.dirs + dir) * batch + bi) * h..][..h];
            if t >= lens[bi] {
                // Past this sequence's end: the state is carried, the output is zero.
                y_row.fill(0.0);
                continue;
            }
            let row = l.rows.map_or(t * batch + bi, |rows| rows[t * batch + bi]);
            let gx = &xw[row * x_stride + x_off..][..gh];
            let gr = &hr[bi * rec_cols..][..rec_cols];
            let (hb, cb) = (&mut hs[bi * h..][..h], &mut cs[bi * h..][..h]);
            match l.cell {
                Cell::Lstm => lstm_cell(gx, gr, peep, hb, cb),
                Cell::Rnn => simd(
                    #[inline(always)]
                    || {
                        for ((hv, &a), &b) in hb.iter_mut().zip(gx).zip(gr) {
                            *hv = vmath::tanh_f32(a + b);
                        }
                    },
                ),
                Cell::Gru { linear_before_reset } => {
                    let [z, rg, rh, hh] = &mut gru_rows;
                    gru_gates(gx, gr, z, rg);
                    // The new gate multiplies R_h by `h` (then scales by r) or by `r * h`.
                    let src: &[f32] = if linear_before_reset {
                        hb
                    } else {
                        for ((v, &a), &b) in rh.iter_mut().zip(rg.iter()).zip(hb.iter()) {
                            *v = a * b;
                        }
                        rh
                    };
                    if let Some(rn) = r_new {
                        rn.multiply(src, hh, step % 2 == 1);
                    }
                    for ((v, &c), &g) in hh.iter_mut().zip(&rb_new).zip(rg.iter()) {
                        *v = if linear_before_reset { g * (*v + c) } else { *v + c };
                    }
                    gru_update(&gx[2 * h..], hh, z, hb);
                }
            }
            y_row.copy_from_slice(hb);
        }
    }
    let at = dir * batch * h;
    out.yh[at..][..batch * h].copy_from_slice(&hs);
    out.yc[at..][..batch * h].copy_from_slice(&cs);
}

/// One LSTM step of one batch row: gates `i, o, f, c` from the two projections, peepholes
/// `p = [p_i, p_o, p_f]`; updates the state `h`, `c` in place. Zipped iterators rather than
/// indices: no bounds checks, so the loop vectorizes.
fn lstm_cell(gx: &[f32], gr: &[f32], p: &[f32], h: &mut [f32], c: &mut [f32]) {
    let n = h.len();
    let sum = |k: usize| gx[k * n..(k + 1) * n].iter().zip(&gr[k * n..(k + 1) * n]);
    let (pi, po, pf) = (&p[..n], &p[n..2 * n], &p[2 * n..3 * n]);
    simd(
        #[inline(always)]
        || {
            let gates = sum(0).zip(sum(1)).zip(sum(2)).zip(sum(3));
            let peep = pi.iter().zip(po).zip(pf);
            for (((((i, o), f), g), ((&pi, &po), &pf)), (hv, cv)) in gates.zip(peep).zip(h.iter_mut().zip(c.iter_mut())) {
                let cp = *cv;
                let i = gate_sigmoid(i.0 + i.1 + pi * cp);
                let f = gate_sigmoid(f.0 + f.1 + pf * cp);
                let cc = gate_tanh(g.0 + g.1);
                let cn = f * cp + i * cc;
                let o = gate_sigmoid(o.0 + o.1 + po * cn);
                *cv = cn;
                *hv = o * gate_tanh(cn);
            }
        },
    )
}

/// Asks for every cache line of `v` ahead of its use.
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in v.chunks(16) {
        // SAFETY: a prefetch never faults; the address is inside `v`.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// `e^x` for the gates, `x` clamped to ±87 (results stay normal: one power of two, where
/// [`vmath::exp_f32`] takes two to reach the subnormals); degree-6 Taylor, relative error < 2e-7.
#[inline(always)]
fn gate_exp(x: f32) -> f32 {
    const ROUND_MAGIC: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    p * f32::from_bits((ni.wrapping_add(127) as u32) << 23)
}

/// `1 / (1 + e^-x)` for the gates.
#[inline(always)]
fn gate_sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + gate_exp(-x))
}

/// `tanh(x) = (1 - e^-2x) / (1 + e^-2x)` for the gates: absolute error ~1e-7 (not relative
/// near 0, which the state update does not need).
#[inline(always)]
fn gate_tanh(x: f32) -> f32 {
    let e = gate_exp(-2.0 * x);
    (1.0 - e) / (1.0 + e)
}

/// GRU update and reset gates of one row, into `z` and `r`.
fn gru_gates(gx: &[f32], gr: &[f32], z: &mut [f32], r: &mut [f32]) {
    let n = z.len();
    let (r, zx, rx, zr, rr) = (&mut r[..n], &gx[..n], &gx[n..2 * n], &gr[..n], &gr[n..2 * n]);
    simd(
        #[inline(always)]
        || {
            for j in 0..n {
                z[j] = vmath::sigmoid_f32(zx[j] + zr[j]);
                r[j] = vmath::sigmoid_f32(rx[j] + rr[j]);
            }
        },
    )
}

/// `h = (1 - z) * tanh(x_h + hh) + z * h`.
fn gru_update(xh: &[f32], hh: &[f32], z: &[f32], h: &mut [f32]) {
    let n = h.len();
    let (xh, hh, z) = (&xh[..n], &hh[..n], &z[..n]);
    simd(
        #[inline(always)]
        || {
            for j in 0..n {
                let cand = vmath::tanh_f32(xh[j] + hh[j]);
                h[j] = (1.0 - z[j]) * cand + z[j] * h[j];
            }
        },
    )
}

/// The recurrent weights `R [n, k]` (row-major) multiplying the state: `out = h · Rᵀ`,
/// with `Rᵀ` packed once per call for the GEMM kernel (batch-1 steps stream it as a GEMV).
struct Recurrent {
    k: usize,
    n: usize,
    packed: PackedB,
    /// `Rᵀ` in blocks of [`GEMV_NB`] columns, each `[k, GEMV_NB]` row-major (zero-padded):
    /// the batch-1 step's GEMV (empty when not built).
    blocks: Vec<f32>,
    /// An LSTM's `R` for the fused batch-1 step (built instead of `blocks` with AVX-512).
    units: Option<UnitBlocks>,
}

/// Columns per block of [`Recurrent::blocks`]: 128 accumulators, eight AVX-512 registers,
/// so the FMA chains are independent enough to run at the load rate.
const GEMV_NB: usize = 128;

impl Recurrent {
    fn new(r: &[f32], k: usize) -> Self {
        let n = r.len().checked_div(k).unwrap_or(0);
        Recurrent { k, n, packed: PackedB::new(k, n, r, 1, k as isize), blocks: Vec::new(), units: None }
    }

    /// [`Self::new`] plus the blocked copy for batch-1 steps (recurrent weights).
    fn with_gemv(r: &[f32], k: usize) -> Self {
        let mut me = Recurrent::new(r, k);
        me.units = UnitBlocks::new(r, k);
        if me.units.is_some() {
            return me;
        }
        let nblk = me.n.div_ceil(GEMV_NB);
        me.blocks = vec![0.0; nblk * k * GEMV_NB];
        for (j, row) in r.chunks_exact(k.max(1)).enumerate().take(me.n) {
            let blk = &mut me.blocks[(j / GEMV_NB) * k * GEMV_NB..][..k * GEMV_NB];
            for (q, &v) in row.iter().enumerate() {
                blk[q * GEMV_NB + j % GEMV_NB] = v;
            }
        }
        me
    }

    /// `out[b, j] = Σ_q h[b, q] · R[j, q]` for every state row `b` (`h` is `[rows, k]`).
    /// `backward`: the batch-1 GEMV walks `Rᵀ` from its end (every other step, so the lines
    /// read last by the previous step are still in L1).
    fn multiply(&self, h: &[f32], out: &mut [f32], backward: bool) {
        if !self.blocks.is_empty() && h.len() == self.k && out.len() == self.n {
            return if backward { self.gemv::<true>(h, out) } else { self.gemv::<false>(h, out) };
        }
        self.multiply_epi(h, out, &Epilogue::NONE)
    }

    /// One state row against the blocked `Rᵀ`: per block, 128 running sums over `k`.
    fn gemv<const BACKWARD: bool>(&self, h: &[f32], out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        #[inline(always)]
        fn block<'a>(acc: &mut [f32; GEMV_NB], terms: impl Iterator<Item = (&'a f32, &'a [f32])>) {
            for (&hq, row) in terms {
                for (a, &r) in acc.iter_mut().zip(row) {
                    *a = hq.mul_add(r, *a);
                }
            }
        }
        simd(
            #[inline(always)]
            || {
                let blocks = self.blocks.chunks_exact(k * GEMV_NB).zip(out.chunks_mut(GEMV_NB));
                let mut one = |(chunk, dst): (&[f32], &mut [f32])| {
                    let mut acc = [0.0f32; GEMV_NB];
                    if BACKWARD {
                        block(&mut acc, h.iter().zip(chunk.chunks_exact(GEMV_NB)).rev());
                    } else {
                        block(&mut acc, h.iter().zip(chunk.chunks_exact(GEMV_NB)));
                    }
                    dst.copy_from_slice(&acc[..dst.len()]);
                };
                if BACKWARD {
                    blocks.rev().for_each(&mut one);
                } else {
                    blocks.for_each(&mut one);
                }
            },
        );
        debug_assert_eq!(out.len(), n);
    }

    /// [`Self::multiply`] with a GEMM epilogue (the input projection's bias).
    fn multiply_epi(&self, h: &[f32], out: &mut [f32], epi: &Epilogue) {
        if self.k == 0 || self.n == 0 {
            out.fill(0.0);
            let Bias::PerCol(bias) = epi.bias else { return };
            for row in out.chunks_exact_mut(self.n.max(1)) {
                row.iter_mut().zip(bias).for_each(|(o, &b)| *o = b);
            }
            return;
        }
        let rows = h.len() / self.k;
        sgemm_packed_b(rows, 1.0, h, self.k as isize, 1, &self.packed, 0.0, out, self.n as isize, 1, epi);
    }
}

/// Gate weights of a recurrent layer (`W [dirs, gh, input]` or `R [dirs, gh, h]`) packed
/// once at load for [`recurrent_packed`]; `split` rows per direction go in the first part,
/// the rest apart (the GRU's new gate of `R`, which multiplies `r * h`).
pub struct PackedGates {
    dirs: Vec<(Recurrent, Option<Recurrent>)>,
    rows: usize,
    k: usize,
}

impl PackedGates {
    /// Recurrent weights `R` (also laid out for the batch-1 GEMV).
    pub fn new(r: ArrayD<f32>, split: usize) -> Result<PackedGates> {
        Self::build(r, split, true)
    }

    /// Input weights `W` (one GEMM over all steps).
    pub fn input(w: ArrayD<f32>) -> Result<PackedGates> {
        Self::build(w, 0, false)
    }

    fn build(w: ArrayD<f32>, split: usize, gemv: bool) -> Result<PackedGates> {
        let pack = if gemv { Recurrent::with_gemv } else { Recurrent::new };
        let w = w.as_standard_layout();
        let (Some(data), 3) = (w.as_slice(), w.ndim()) else {
            return shape_err(format!("recurrent: gate weights must be 3-D, got {:?}", w.shape()));
        };
        let (dirs, rows, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
        let split = if split == 0 || split > rows { rows } else { split };
        let dirs = (0..dirs)
            .map(|d| {
                let m = &data[d * rows * k..][..rows * k];
                (pack(&m[..split * k], k), (split < rows).then(|| pack(&m[split * k..], k)))
            })
            .collect();
        Ok(PackedGates { dirs, rows, k })
    }
}

/// ONNX LSTM / GRU / RNN in f32 with `R` (and `W`) packed at load. `w = None`: `X` holds the
/// input projections already (`[seq, batch, dirs * gh]`, or `[batch, seq, ..]` when
/// `batch_first`), biases folded in but the GRU's recurrent bias of the new gate.
#[allow(clippy::too_many_arguments)]
pub fn recurrent_packed(
    cell: Cell,
    x: &ArrayD<f32>,
    w: Option<&PackedGates>,
    r: &PackedGates,
    b: Option<&ArrayD<f32>>,
    h0: Option<&ArrayD<f32>>,
    c0: Option<&ArrayD<f32>>,
    p: Option<&ArrayD<f32>>,
    seq_lens: Option<&ArrayD<i32>>,
    hidden: usize,
    direction: &str,
    batch_first: bool,
) -> Result<Outputs3<f32>> {
    if batch_first {
        let x0 = super::shape::transpose(x, &[1, 0, 2])?;
        return in_layout0(h0, c0, |h0, c0| recurrent_packed(cell, &x0, w, r, b, h0, c0, p, seq_lens, hidden, direction, false));
    }
    if x.ndim() != 3 {
        return shape_err(format!("recurrent: input {:?} must be 3-D", x.shape()));
    }
    let xs = x.as_standard_layout();
    let (seq, batch, width) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let xs = Input { x: xs.as_slice().unwrap_or(&[]), seq, batch, width, rows: None };
    packed_core(cell, xs, w, r, b, h0, c0, p, seq_lens, hidden, direction)
}

/// ONNX LSTM / GRU / RNN fed by an embedding folded into `table` (`[vocab, dirs * gh]`, rows
/// of `E @ Wᵀ + b`, see [`recurrent_packed`] with `w = None`): `ids [batch, seq]` picks the
/// rows of every step, read in place (the layer's `X` was `Gather(E, ids)`, transposed to
/// `[seq, batch, ..]` unless `batch_first`).
#[allow(clippy::too_many_arguments)]
pub fn recurrent_lookup(
    cell: Cell,
    table: &ArrayD<f32>,
    ids: &ArrayD<i64>,
    r: &PackedGates,
    b: Option<&ArrayD<f32>>,
    h0: Option<&ArrayD<f32>>,
    c0: Option<&ArrayD<f32>>,
    p: Option<&ArrayD<f32>>,
    seq_lens: Option<&ArrayD<i32>>,
    hidden: usize,
    direction: &str,
    batch_first: bool,
) -> Result<Outputs3<f32>> {
    if batch_first {
        return in_layout0(h0, c0, |h0, c0| recurrent_lookup(cell, table, ids, r, b, h0, c0, p, seq_lens, hidden, direction, false));
    }
    if table.ndim() != 2 || ids.ndim() != 2 {
        return shape_err(format!("recurrent: table {:?} and ids {:?} must be 2-D", table.shape(), ids.shape()));
    }
    let (vocab, width) = (table.shape()[0], table.shape()[1]);
    let (batch, seq) = (ids.shape()[0], ids.shape()[1]);
    let ids = ids.as_standard_layout();
    let ids = ids.as_slice().unwrap_or(&[]);
    let mut rows = vec![0usize; seq * batch];
    for (bi, line) in ids.chunks_exact(seq.max(1)).enumerate().take(batch) {
        for (t, &id) in line.iter().enumerate() {
            let at = if id < 0 { id + vocab as i64 } else { id };
            if at < 0 || at >= vocab as i64 {
                return Err(super::error::Error::Shape(format!("gather: index {id} out of range for {vocab} rows")));
            }
            rows[t * batch + bi] = at as usize;
        }
    }
    let ts = table.as_standard_layout();
    let xs = Input { x: ts.as_slice().unwrap_or(&[]), seq, batch, width, rows: Some(&rows) };
    packed_core(cell, xs, None, r, b, h0, c0, p, seq_lens, hidden, direction)
}

/// The input of [`packed_core`]: `x` with rows of `width`, read at `t * batch + b` or `rows[..]`.
struct Input<'a> {
    x: &'a [f32],
    seq: usize,
    batch: usize,
    width: usize,
    rows: Option<&'a [usize]>,
}

#[allow(clippy::too_many_arguments)]
fn packed_core<'a>(
    cell: Cell,
    xin: Input,
    w: Option<&PackedGates>,
    r: &PackedGates,
    b: Option<&'a ArrayD<f32>>,
    h0: Option<&'a ArrayD<f32>>,
    c0: Option<&'a ArrayD<f32>>,
    p: Option<&'a ArrayD<f32>>,
    seq_lens: Option<&ArrayD<i32>>,
    hidden: usize,
    direction: &str,
) -> Result<Outputs3<f32>> {
    let dirs = if direction == "bidirectional" { 2 } else { 1 };
    let gh = cell.gates() * hidden;
    let (seq, batch, width) = (xin.seq, xin.batch, xin.width);
    if r.dirs.len() != dirs || r.rows != gh || r.k != hidden {
        return shape_err(format!("recurrent: input width {width} or recurrent weights do not match"));
    }
    let input = match w {
        Some(w) if w.dirs.len() == dirs && w.rows == gh && w.k == width => width,
        None if width == dirs * gh => 0,
        _ => return shape_err(format!("recurrent: input width {width} does not match the weights")),
    };
    if xin.rows.is_none() && xin.x.len() != seq * batch * width {
        return shape_err("recurrent: input is not contiguous");
    }
    // Read in place when contiguous (ndarray's element iterator costs ~4 us on lstm_text's B).
    let slice = |a: Option<&'a ArrayD<f32>>, n: usize, what: &str| -> Result<Option<std::borrow::Cow<'a, [f32]>>> {
        match a {
            None => Ok(None),
            Some(a) if a.len() == n => Ok(Some(match a.as_slice() {
                Some(v) => std::borrow::Cow::Borrowed(v),
                None => std::borrow::Cow::Owned(a.iter().copied().collect()),
            })),
            Some(a) => shape_err(format!("recurrent: {what} {:?} has the wrong size", a.shape())),
        }
    };
    let state = dirs * batch * hidden;
    let (bv, h0v, c0v, pv) = (
        slice(b, dirs * 2 * gh, "B")?,
        slice(h0, state, "initial_h")?,
        slice(c0, state, "initial_c")?,
        slice(p, dirs * 3 * hidden, "P")?,
    );
    let lens = step_counts(seq_lens, batch, seq)?;
    let layer = LayerF32 {
        cell,
        x: xin.x,
        w: &[],
        r: &[],
        b: bv.as_deref(),
        h0: h0v.as_deref(),
        c0: c0v.as_deref(),
        p: pv.as_deref(),
        rows: xin.rows,
    };
    let mut y = vec![0.0f32; seq * dirs * batch * hidden];
    let mut yh = vec![0.0f32; state];
    let mut yc = vec![0.0f32; state];
    let dims = Dims { seq, batch, input, hidden, dirs };
    for d in 0..dirs {
        let reverse = direction == "reverse" || d == 1;
        let proj = w.map_or(Proj::Done, |w| Proj::Packed(&w.dirs[d].0));
        run_f32(&layer, &dims, d, reverse, &lens, Outputs { y: &mut y, yh: &mut yh, yc: &mut yc }, proj, Some(&r.dirs[d]));
    }
    let err = |e: ndarray::ShapeError| super::error::Error::Shape(e.to_string());
    Ok((
        ArrayD::from_shape_vec(vec![seq, dirs, batch, hidden], y).map_err(err)?,
        ArrayD::from_shape_vec(vec![dirs, batch, hidden], yh).map_err(err)?,
        ArrayD::from_shape_vec(vec![dirs, batch, hidden], yc).map_err(err)?,
    ))
}

/// Hidden units per group of the batch-1 LSTM layout ([`UnitBlocks`]): one AVX-512
/// register per gate.
const UNIT_GROUP: usize = 16;
/// Most groups per block of [`UnitBlocks`]: 4 gates x 4 groups = 16 accumulators.
const MAX_BLOCK_GROUPS: usize = 4;

/// The recurrent weights of an LSTM (`R [4h, h]`, gates i, o, f, c) laid out for the fused
/// batch-1 step ([`lstm_fused`]): the hidden units in groups of [`UNIT_GROUP`], groups in
/// blocks of up to [`MAX_BLOCK_GROUPS`], each block `[h (q), groups, 4 gates, 16 units]`
/// (zero-padded past `h`), so one pass over a block leaves every gate sum of its units in
/// registers and the cell update follows right away. The blocks of the first `half` and
/// of the rest cover the two halves of the units (the 2-thread split, [`par::lockstep`]).
struct UnitBlocks {
    data: Vec<f32>,
    blocks: Vec<UnitBlock>,
    half: usize,
}

#[derive(Clone, Copy)]
struct UnitBlock {
    /// First group, groups, offset of the block in `data`.
    g0: usize,
    ng: usize,
    at: usize,
}

impl UnitBlocks {
    /// `None` without AVX-512 or unless `r` is an LSTM's `[4k, k]`.
    fn new(r: &[f32], k: usize) -> Option<UnitBlocks> {
        #[cfg(target_arch = "x86_64")]
        let avx512 = super::cpu::avx512();
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        if !avx512 || k == 0 || r.len() != 4 * k * k {
            return None;
        }
        let groups = k.div_ceil(UNIT_GROUP);
        let first = groups.div_ceil(2);
        let mut blocks = Vec::new();
        let mut at = 0;
        for (start, len) in [(0, first), (first, groups - first)] {
            let nb = len.div_ceil(MAX_BLOCK_GROUPS);
            for b in 0..nb {
                let (g0, g1) = (start + len * b / nb, start + len * (b + 1) / nb);
                blocks.push(UnitBlock { g0, ng: g1 - g0, at });
                at += k * (g1 - g0) * 4 * UNIT_GROUP;
            }
        }
        let half = first.div_ceil(MAX_BLOCK_GROUPS);
        let mut data = vec![0.0f32; at];
        for blk in &blocks {
            for q in 0..k {
                for g in 0..blk.ng {
                    for gate in 0..4 {
                        let dst = &mut data[blk.at + ((q * blk.ng + g) * 4 + gate) * UNIT_GROUP..][..UNIT_GROUP];
                        for (l, v) in dst.iter_mut().enumerate() {
                            let unit = (blk.g0 + g) * UNIT_GROUP + l;
                            if unit < k {
                                *v = r[(gate * k + unit) * k + q];
                            }
                        }
                    }
                }
            }
        }
        Some(UnitBlocks { data, blocks, half })
    }
}

/// The state and outputs of [`lstm_fused`], shared by the two halves of a split step
/// (each writes only its own units).
struct FusedState {
    /// `h` before and after each step: step `s` reads `hbuf[s % 2]`, writes the other.
    hbuf: *mut f32,
    c: *mut f32,
    y: *mut f32,
    /// `[3h]` or null.
    peep: *const f32,
}
unsafe impl Sync for FusedState {}
unsafe impl Send for FusedState {}

/// Batch-1 LSTM steps with [`UnitBlocks`] (AVX-512): per block of units, the gate sums
/// `h · Rᵀ` of its units in registers, then the cell update on them. `ts` are the time
/// indices to run, in order; `gx(t)` is step `t`'s input projection `[4h]` (biases folded
/// in), `peep` the peepholes `[3h]` or empty; `h`, `c` the state (updated), `y_at(t)` the
/// offset of step `t`'s output row in `y`. With 2 threads the units split in two halves
/// ([`par::lockstep`]), exchanging only `h` each step.
#[allow(clippy::too_many_arguments)]
fn lstm_fused<'x>(
    ub: &UnitBlocks,
    hidden: usize,
    ts: &[usize],
    gx: &(impl Fn(usize) -> &'x [f32] + Sync),
    peep: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    y: &mut [f32],
    y_at: &(impl Fn(usize) -> usize + Sync),
) {
    let mut hbuf = vec![0.0f32; 2 * hidden];
    hbuf[..hidden].copy_from_slice(h);
    let peep = if peep.len() == 3 * hidden { peep.as_ptr() } else { std::ptr::null() };
    let st = FusedState { hbuf: hbuf.as_mut_ptr(), c: c.as_mut_ptr(), y: y.as_mut_ptr(), peep };
    let ylen = y.len();
    let step = |s: usize, blocks: &[UnitBlock]| {
        let st = &st;
        // SAFETY: step s reads `hbuf[s % 2]`, complete when step s starts (see below).
        let hbuf_of = |s: usize| unsafe { std::slice::from_raw_parts(st.hbuf.add((s % 2) * hidden) as *const f32, hidden) };
        let t = ts[s];
        let row = gx(t);
        assert!(row.len() >= 4 * hidden && y_at(t) + hidden <= ylen);
        if let Some(&next) = ts.get(s + 1) {
            // The next step's row (a table lookup, anywhere in memory): this half's units.
            let (u0, u1) = match (blocks.first(), blocks.last()) {
                (Some(a), Some(b)) => (a.g0 * UNIT_GROUP, ((b.g0 + b.ng) * UNIT_GROUP).min(hidden)),
                _ => (0, 0),
            };
            let nrow = gx(next);
            for gate in 0..4 {
                prefetch(&nrow[gate * hidden + u0..gate * hidden + u1]);
            }
        }
        let backward = s % 2 == 1;
        // The state of the previous step, half of it written by the other thread (when split):
        // ask for all its lines at once rather than one miss at a time inside the blocks.
        prefetch(hbuf_of(s));
        // SAFETY: `hbuf` holds 2 * hidden floats, `c` hidden, `y` reaches y_at(t) + hidden
        // (checked above); the blocks of one step write disjoint units, and the rounds of
        // `par::lockstep` order the steps (step s reads what step s - 1 wrote).
        let (hp, hn) = unsafe {
            let a = st.hbuf.add((s % 2) * hidden);
            let b = st.hbuf.add(((s + 1) % 2) * hidden);
            (a as *const f32, b)
        };
        let mut run = |blk: &UnitBlock| unsafe {
            let args = BlockArgs {
                w: ub.data.as_ptr().add(blk.at),
                k: hidden,
                hp,
                gx: row.as_ptr(),
                peep: st.peep,
                c: st.c,
                hn,
                y: st.y.add(y_at(t)),
                u0: blk.g0 * UNIT_GROUP,
                backward,
            };
            match blk.ng {
                1 => lstm_block::<1>(&args),
                2 => lstm_block::<2>(&args),
                3 => lstm_block::<3>(&args),
                _ => lstm_block::<4>(&args),
            }
        };
        if backward {
            blocks.iter().rev().for_each(&mut run);
        } else {
            blocks.iter().for_each(&mut run);
        }
    };
    let (first, rest) = ub.blocks.split_at(ub.half);
    let per_step = 2 * 4 * hidden * hidden;
    if rest.is_empty() {
        (0..ts.len()).for_each(|s| step(s, first));
    } else {
        par::lockstep(ts.len(), per_step, LOCKSTEP_MIN_WORK, |s| step(s, first), |s| step(s, rest));
    }
    let last = (ts.len() % 2) * hidden;
    h.copy_from_slice(&hbuf[last..last + hidden]);
}

/// Flops of one batch-1 LSTM step from which its units split over 2 threads: 2 * 4h * h
/// for h = 64 (R 64 KiB). Measured at seq 64, 1 -> 2 threads: h = 64 61 -> 52 µs, h = 96
/// 118 -> 86 µs, h = 128 (lstm_text) 170 -> 96 µs; smaller layers not measured.
const LOCKSTEP_MIN_WORK: usize = 2 * 4 * 64 * 64;

/// One block of [`lstm_block`]: pointers into the weights, state and outputs.
struct BlockArgs {
    w: *const f32,
    k: usize,
    hp: *const f32,
    gx: *const f32,
    peep: *const f32,
    c: *mut f32,
    hn: *mut f32,
    y: *mut f32,
    u0: usize,
    backward: bool,
}

/// The gate sums of `NG` groups of units (`h · Rᵀ`, 4 * NG registers over `k`), then
/// their cell update: `c`, the new `h` (into `hn` and `y`), units `u0..` (masked past `k`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn lstm_block<const NG: usize>(a: &BlockArgs) {
    use std::arch::x86_64::*;
    let k = a.k;
    let stride = NG * 4 * UNIT_GROUP;
    let mut acc = [[_mm512_setzero_ps(); 4]; NG];
    unsafe {
        let mut term = |q: usize| {
            let hq = _mm512_set1_ps(*a.hp.add(q));
            let row = a.w.add(q * stride);
            for (g, accg) in acc.iter_mut().enumerate() {
                for (gate, v) in accg.iter_mut().enumerate() {
                    *v = _mm512_fmadd_ps(_mm512_loadu_ps(row.add((g * 4 + gate) * UNIT_GROUP)), hq, *v);
                }
            }
        };
        if a.backward {
            (0..k).rev().for_each(&mut term);
        } else {
            (0..k).for_each(&mut term);
        }
        let one = _mm512_set1_ps(1.0);
        for (g, accg) in acc.iter().enumerate() {
            let u = a.u0 + g * UNIT_GROUP;
            if u >= k {
                break;
            }
            let m: __mmask16 = if k - u >= UNIT_GROUP { 0xffff } else { (1u16 << (k - u)) - 1 };
            let ld = |p: *const f32| _mm512_maskz_loadu_ps(m, p);
            let x = |gate: usize| _mm512_add_ps(ld(a.gx.add(gate * k + u)), accg[gate]);
            let cp = ld(a.c.add(u));
            let (mut xi, mut xf) = (x(0), x(2));
            if !a.peep.is_null() {
                xi = _mm512_fmadd_ps(ld(a.peep.add(u)), cp, xi);
                xf = _mm512_fmadd_ps(ld(a.peep.add(2 * k + u)), cp, xf);
            }
            let i = sigmoid16(xi, one);
            let f = sigmoid16(xf, one);
            let cc = tanh16(x(3), one);
            let cn = _mm512_fmadd_ps(f, cp, _mm512_mul_ps(i, cc));
            let mut xo = x(1);
            if !a.peep.is_null() {
                xo = _mm512_fmadd_ps(ld(a.peep.add(k + u)), cn, xo);
            }
            let o = sigmoid16(xo, one);
            let hv = _mm512_mul_ps(o, tanh16(cn, one));
            _mm512_mask_storeu_ps(a.c.add(u), m, cn);
            _mm512_mask_storeu_ps(a.hn.add(u), m, hv);
            _mm512_mask_storeu_ps(a.y.add(u), m, hv);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn lstm_block<const NG: usize>(_: &BlockArgs) {
    unreachable!("UnitBlocks are only built with AVX-512")
}

/// `e^x` on 16 lanes for the gates, `x` clamped to ±87 (as [`gate_exp`]: degree-6 Taylor
/// on `x - n ln 2`, here with FMAs, scaled by `2^n` with `vscalefps`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn exp16(x: std::arch::x86_64::__m512, one: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = |v: f32| _mm512_set1_ps(v);
    let x = _mm512_min_ps(_mm512_max_ps(x, c(-87.0)), c(87.0));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, c(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, c(0.693_359_375), x);
    let r = _mm512_fnmadd_ps(n, c(-2.121_944_4e-4), r);
    let mut p = _mm512_fmadd_ps(r, c(1.0 / 720.0), c(1.0 / 120.0));
    p = _mm512_fmadd_ps(r, p, c(1.0 / 24.0));
    p = _mm512_fmadd_ps(r, p, c(1.0 / 6.0));
    p = _mm512_fmadd_ps(r, p, c(0.5));
    p = _mm512_fmadd_ps(r, p, one);
    p = _mm512_fmadd_ps(r, p, one);
    _mm512_scalef_ps(p, n)
}

/// `1 / d` on 16 lanes: `vrcp14ps` and one Newton step (relative error ~1e-8 before rounding;
/// the divider's throughput is the gate math's bottleneck otherwise).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn recip16(d: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let y = _mm512_rcp14_ps(d);
    _mm512_mul_ps(y, _mm512_fnmadd_ps(d, y, _mm512_set1_ps(2.0)))
}

/// [`gate_sigmoid`] on 16 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn sigmoid16(x: std::arch::x86_64::__m512, one: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    unsafe { recip16(_mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x), one))) }
}

/// [`gate_tanh`] on 16 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tanh16(x: std::arch::x86_64::__m512, one: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    unsafe {
        let e = exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0), x), one);
        _mm512_mul_ps(_mm512_sub_ps(one, e), recip16(_mm512_add_ps(one, e)))
    }
}
