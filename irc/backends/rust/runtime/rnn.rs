//! Recurrent layers: LSTM, GRU and simple RNN (ONNX layout 0, default activations).

use super::elem::{Float, Num};
use super::error::{shape_err, Result};
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
) -> Result<(ArrayD<T>, ArrayD<T>, ArrayD<T>)> {
    if batch_first {
        // layout = 1: X [batch, seq, in], states [batch, dirs, h]; run in layout 0 and transpose back.
        use super::shape::transpose;
        let x0 = transpose(x, &[1, 0, 2])?;
        let h0t = h0.map(|h| transpose(h, &[1, 0, 2])).transpose()?;
        let c0t = c0.map(|c| transpose(c, &[1, 0, 2])).transpose()?;
        let (y, yh, yc) = recurrent(cell, &x0, w, r, b, h0t.as_ref(), c0t.as_ref(), p, seq_lens, hidden, direction, false)?;
        return Ok((transpose(&y, &[2, 0, 1, 3])?, transpose(&yh, &[1, 0, 2])?, transpose(&yc, &[1, 0, 2])?));
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
    let lens: Vec<usize> = match seq_lens {
        Some(l) if l.len() == batch => l.iter().map(|&v| (v.max(0) as usize).min(seq)).collect(),
        Some(_) => return shape_err("recurrent: sequence_lens must have one length per batch entry"),
        None => vec![seq; batch],
    };
    let mut y = ndarray::Array4::from_elem((seq, dirs, batch, hidden), T::zero());
    let mut yh = Array3::from_elem((dirs, batch, hidden), T::zero());
    let mut yc = Array3::from_elem((dirs, batch, hidden), T::zero());
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
