//! Convolution (N-D, groups, dilations, pads, auto_pad) through im2col + GEMM, and its transpose.

use super::elem::Num;
use super::error::{shape_err, Error, Result};
use super::shape::with_shape;
use super::gemm::{packed_a_blocks, sgemm_packed_a, sgemm_packed_a_part, sgemm_packed_b, Activation, Bias, Epilogue, OperandB, PackedA, PackedB};
use super::linalg::{gemm_f32_act, Act};
use ndarray::{s, Array2, ArrayD, ArrayView2, ArrayViewMut2, Ix2, IxDyn};

/// Window geometry of a convolution or pooling; empty slices mean the ONNX defaults.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub kernel: &'a [usize],
    pub strides: &'a [usize],
    pub dilations: &'a [usize],
    pub pads: &'a [usize],
    /// `NOTSET`, `SAME_UPPER`, `SAME_LOWER` or `VALID`.
    pub auto_pad: &'a str,
}

/// Resolved per-dim geometry: strides, dilations, pads begin/end.
pub struct Geometry {
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub begin: Vec<usize>,
    pub end: Vec<usize>,
}

fn or_ones(v: &[usize], n: usize) -> Vec<usize> {
    if v.is_empty() { vec![1; n] } else { v.to_vec() }
}

impl Window<'_> {
    /// Strides, dilations and pads for input spatial dims `input` and kernel `kernel`.
    pub fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<Geometry> {
        let n = input.len();
        let strides = or_ones(self.strides, n);
        let dilations = or_ones(self.dilations, n);
        if strides.len() != n || dilations.len() != n || kernel.len() != n {
            return shape_err(format!("window attributes do not match {n} spatial dims"));
        }
        let (mut begin, mut end) = (vec![0; n], vec![0; n]);
        match self.auto_pad {
            "SAME_UPPER" | "SAME_LOWER" => {
                for d in 0..n {
                    let out = input[d].div_ceil(strides[d]);
                    let span = (kernel[d] - 1) * dilations[d] + 1;
                    let total = ((out - 1) * strides[d] + span).saturating_sub(input[d]);
                    let small = total / 2;
                    (begin[d], end[d]) =
                        if self.auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                }
            }
            "VALID" => {}
            _ if !self.pads.is_empty() => {
                if self.pads.len() != 2 * n {
                    return shape_err(format!("{} pads for {n} spatial dims", self.pads.len()));
                }
                begin.copy_from_slice(&self.pads[..n]);
                end.copy_from_slice(&self.pads[n..]);
            }
            _ => {}
        }
        Ok(Geometry { strides, dilations, begin, end })
    }
}

impl Geometry {
    /// Output size of dim `d` (floor mode).
    pub fn out_dim(&self, d: usize, input: usize, kernel: usize) -> Result<usize> {
        let span = (kernel - 1) * self.dilations[d] + 1;
        let padded = input + self.begin[d] + self.end[d];
        if padded < span {
            return shape_err(format!("window of {span} larger than padded input {padded}"));
        }
        Ok((padded - span) / self.strides[d] + 1)
    }

    /// For each kernel tap of dim `d`, the input coordinate read by each output position.
    pub fn taps(&self, d: usize, input: usize, kernel: usize, out: usize) -> Vec<Vec<Option<usize>>> {
        (0..kernel)
            .map(|k| {
                (0..out)
                    .map(|o| {
                        let i = (o * self.strides[d] + k * self.dilations[d]) as isize - self.begin[d] as isize;
                        (i >= 0 && (i as usize) < input).then_some(i as usize)
                    })
                    .collect()
            })
            .collect()
    }
}

/// Advances a row-major multi-index; false once it wraps around.
pub fn next_index(idx: &mut [usize], dims: &[usize]) -> bool {
    for (i, &lim) in idx.iter_mut().zip(dims).rev() {
        *i += 1;
        if *i < lim {
            return true;
        }
        *i = 0;
    }
    false
}

/// Row-major strides of a shape.
pub fn strides_of(dims: &[usize]) -> Vec<usize> {
    let mut st = vec![1; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * dims[d + 1];
    }
    st
}

/// Fills `col` (rows: channel x kernel tap, columns: output positions) from channel planes `src`.
fn im2col<T: Num>(col: &mut Array2<T>, src: &[T], channels: usize, in_sp: &[usize], kernel: &[usize], taps: &[Vec<Vec<Option<usize>>>]) {
    let plane: usize = in_sp.iter().product();
    let in_st = strides_of(in_sp);
    let out_sp: Vec<usize> = taps.iter().map(|t| t.first().map_or(0, Vec::len)).collect();
    let mut rows = col.rows_mut().into_iter();
    for c in 0..channels {
        let chan = &src[c * plane..(c + 1) * plane];
        let mut kidx = vec![0; kernel.len()];
        loop {
            let Some(mut row) = rows.next() else { return };
            let maps: Vec<&Vec<Option<usize>>> = taps.iter().zip(&kidx).map(|(t, &k)| &t[k]).collect();
            let mut o = vec![0; out_sp.len()];
            for v in row.iter_mut() {
                let mut off = Some(0);
                for ((m, &i), &st) in maps.iter().zip(&o).zip(&in_st) {
                    off = match (off, m[i]) {
                        (Some(acc), Some(x)) => Some(acc + x * st),
                        _ => None,
                    };
                }
                *v = off.map_or(T::zero(), |x| chan[x]);
                next_index(&mut o, &out_sp);
            }
            if !next_index(&mut kidx, kernel) {
                break;
            }
        }
    }
}

/// A 1-D or 2-D convolution seen as 2-D (1-D has height 1): the fast paths work on this.
#[derive(Clone, Copy)]
struct Plane2 {
    h: usize, w: usize, kh: usize, kw: usize, oh: usize, ow: usize,
    sh: usize, sw: usize, dh: usize, dw: usize, ph: usize, pw: usize,
}

impl Plane2 {
    fn new(in_sp: &[usize], kernel: &[usize], out_sp: &[usize], geo: &Geometry) -> Option<Plane2> {
        let (s, d, b) = (&geo.strides, &geo.dilations, &geo.begin);
        match in_sp.len() {
            1 => Some(Plane2 {
                h: 1, w: in_sp[0], kh: 1, kw: kernel[0], oh: 1, ow: out_sp[0],
                sh: 1, sw: s[0], dh: 1, dw: d[0], ph: 0, pw: b[0],
            }),
            2 => Some(Plane2 {
                h: in_sp[0], w: in_sp[1], kh: kernel[0], kw: kernel[1], oh: out_sp[0], ow: out_sp[1],
                sh: s[0], sw: s[1], dh: d[0], dw: d[1], ph: b[0], pw: b[1],
            }),
            _ => None,
        }
    }

    /// Output rows `[y0, y1)` whose input row for kernel row `ky` lies inside the image.
    fn rows(&self, ky: usize) -> (usize, usize) {
        valid_range(self.oh, self.h, self.sh, ky * self.dh, self.ph)
    }

    /// Output columns `[x0, x1)` whose input column for kernel column `kx` lies inside.
    fn cols(&self, kx: usize) -> (usize, usize) {
        valid_range(self.ow, self.w, self.sw, kx * self.dw, self.pw)
    }
}

/// Outputs `o < out` with `o * stride + offset - pad` in `0..len`, as a range.
pub(crate) fn valid_range(out: usize, len: usize, stride: usize, offset: usize, pad: usize) -> (usize, usize) {
    let lo = if offset >= pad { 0 } else { (pad - offset).div_ceil(stride) };
    let hi = if len + pad > offset { (len + pad - offset).div_ceil(stride).min(out) } else { 0 };
    (lo.min(hi), hi)
}

/// 2-D im2col: each row of `col` (channel x kernel tap) is built from whole input-row
/// slices (a `copy_from_slice` at stride 1), zeros where the tap falls into the padding.
fn im2col_2d<T: Num>(col: &mut [T], src: &[T], channels: usize, g: &Plane2, pitch: usize) {
    let (plane, p_out) = (g.h * g.w, g.oh * g.ow);
    // Rows `pitch` apart (several images side by side), each `p_out` long.
    let mut rows = col.chunks_mut(pitch).map(|r| &mut r[..p_out]);
    for chan in src.chunks_exact(plane).take(channels) {
        for ky in 0..g.kh {
            let (y0, y1) = g.rows(ky);
            for kx in 0..g.kw {
                let Some(row) = rows.next() else { return };
                im2col_row(row, chan, (ky, y0, y1), kx, g, (0, g.oh));
            }
        }
    }
}

/// Output rows `[r0, r1)` of one im2col row (`(r1 - r0) * ow` values): the channel plane
/// `chan` seen through kernel tap `(ky, kx)`, whose valid output rows are `[y0, y1)`; zeros
/// where it falls into the padding.
#[inline(always)]
fn im2col_row<T: Num>(
    row: &mut [T], chan: &[T], (ky, y0, y1): (usize, usize, usize), kx: usize, g: &Plane2, (r0, r1): (usize, usize),
) {
    let (x0, x1) = g.cols(kx);
    let (y0, y1) = (y0.clamp(r0, r1), y1.clamp(r0, r1));
    let (y0, y1) = (y0, y1.max(y0));
    row[..(y0 - r0) * g.ow].fill(T::zero());
    row[(y1 - r0) * g.ow..].fill(T::zero());
    for oy in y0..y1 {
        let dst = &mut row[(oy - r0) * g.ow..(oy - r0 + 1) * g.ow];
        dst[..x0].fill(T::zero());
        dst[x1..].fill(T::zero());
        if x0 == x1 {
            continue;
        }
        let iy = oy * g.sh + ky * g.dh - g.ph;
        let ix0 = x0 * g.sw + kx * g.dw - g.pw;
        let line = &chan[iy * g.w..(iy + 1) * g.w];
        if g.sw == 1 {
            copy_run(&mut dst[x0..x1], &line[ix0..ix0 + (x1 - x0)]);
        } else {
            copy_strided(&mut dst[x0..x1], &line[ix0..], g.sw);
        }
    }
}

/// `dst[j] = src[j * step]`: stride 2 (a strided conv's taps) as pairs, which compiles to
/// vector loads and shuffles instead of one bounds-checked scalar load per element.
#[inline(always)]
fn copy_strided<T: Copy>(dst: &mut [T], src: &[T], step: usize) {
    let len = dst.len();
    if len == 0 {
        return;
    }
    if step == 2 {
        let src = &src[..2 * len - 1];
        let pairs = len - 1;
        for (d, pair) in dst[..pairs].iter_mut().zip(src.chunks_exact(2)) {
            *d = pair[0];
        }
        dst[pairs] = src[2 * pairs];
        return;
    }
    for (d, s) in dst.iter_mut().zip(src.iter().step_by(step)) {
        *d = *s;
    }
}

/// [`im2col_row`] written straight into packed-B slivers: the row's position `p` (counted
/// from output row `r0`, `images` images of `(r1 - r0) * ow` positions side by side, image
/// `i` of the chunk from channel plane `chans[i]`) goes to `dst[(p / nr) * nr * depth + p % nr]`.
/// Positions up to the next multiple of `nr` are zero-filled.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn im2col_row_packed(
    dst: &mut [f32], nr: usize, depth: usize, chans: &mut dyn Iterator<Item = &[f32]>,
    (ky, y0, y1): (usize, usize, usize), kx: usize, g: &Plane2, (r0, r1): (usize, usize), width_pad: usize,
) {
    let (x0, x1) = g.cols(kx);
    let (y0, y1) = (y0.clamp(r0, r1), y1.clamp(r0, r1));
    let y1 = y1.max(y0);
    let per_image = (r1 - r0) * g.ow;
    // Positions [p, p + len) from `src` (None: zeros), split at sliver boundaries.
    let mut put = |mut p: usize, src: Option<&[f32]>, len: usize| {
        let mut done = 0;
        while done < len {
            let off = p % nr;
            let run = (nr - off).min(len - done);
            let at = (p / nr) * nr * depth + off;
            let d = &mut dst[at..at + run];
            match src {
                Some(src) => copy_run(d, &src[done..done + run]),
                None => d.fill(0.0),
            }
            done += run;
            p += run;
        }
    };
    let mut images = 0;
    for (i, chan) in chans.enumerate() {
        let base = i * per_image;
        images = i + 1;
        put(base, None, (y0 - r0) * g.ow);
        for oy in y0..y1 {
            let row0 = base + (oy - r0) * g.ow;
            put(row0, None, x0);
            if x0 < x1 {
                let iy = oy * g.sh + ky * g.dh - g.ph;
                let ix0 = x0 * g.sw + kx * g.dw - g.pw;
                let line = &chan[iy * g.w..(iy + 1) * g.w];
                if g.sw == 1 {
                    put(row0 + x0, Some(&line[ix0..ix0 + (x1 - x0)]), x1 - x0);
                } else {
                    for (j, v) in line[ix0..].iter().step_by(g.sw).take(x1 - x0).enumerate() {
                        put(row0 + x0 + j, Some(std::slice::from_ref(v)), 1);
                    }
                }
            }
            put(row0 + x1, None, g.ow - x1);
        }
        put(base + (y1 - r0) * g.ow, None, (r1 - y1) * g.ow);
    }
    let width = images * per_image;
    put(width, None, width_pad - width);
}

/// GEMMs with more output channels than this pack B (the kernel reads narrower ones in
/// place, so writing the packed layout would be extra work for them).
const PACKED_COLUMNS_MIN_ROWS: usize = 16;

/// The f32 2-D im2col GEMM with the columns written straight into the GEMM's packed-B
/// layout ([`PackedB::layout`]): each im2col row is built in an L1-resident row buffer and
/// scattered into its NR-wide slivers, instead of a full column matrix that the GEMM then
/// reads back and packs again. The columns of a chunk are written one K block
/// ([`packed_a_blocks`]) at a time, each multiplied right away while it is in L2:
/// `gemm(g, rows, columns, beta, c, rsc, epilogue)` multiplies columns `rows` of group `g`'s
/// weights by that block into C. With `beta = 0` every block of `out` is write-only (old
/// contents ignored); with `beta = 1` `out` holds the addend (a residual). Images smaller
/// than one chunk share a chunk (their output block goes through `tmp`), so the weights are
/// streamed once per chunk of several images. Only output rows `rows` are computed (all
/// of them but for a band of one image, see [`conv_packed_impl`]): `out` then holds that
/// band, `s.p_out` (its positions per channel) = `rows.len() * g2.ow`.
#[allow(clippy::too_many_arguments)]
fn conv_packed_columns(
    src: &[f32], bias: Option<&[f32]>, s: &ConvShape, g2: &Plane2, act: Act,
    out: &mut [f32], buf: &mut Vec<f32>, beta: f32, rows: std::ops::Range<usize>,
    mut gemm: impl FnMut(usize, std::ops::Range<usize>, &PackedB, f32, &mut [f32], isize, &Epilogue),
) {
    let (cg, mg, n) = (s.cg, s.mg, s.p_out);
    let k = cg * s.kk;
    let (_, nr) = PackedB::layout();
    // Output rows per GEMM: about COLUMN_CHUNK positions, so the packed columns stay in
    // cache between im2col writing them and the GEMM reading them (a whole layer's columns
    // are megabytes, and writing them out to memory cost more than the copy itself).
    // Columns that fit in L2 whole (mnist_cnn) run as one GEMM: chunks would only repack A.
    let rows_per_chunk = if k * n <= CACHED_COLUMNS { g2.oh.max(1) } else { (COLUMN_CHUNK / g2.ow.max(1)).clamp(1, g2.oh.max(1)) };
    // Whole small images (late layers) side by side in one chunk.
    let images = if rows_per_chunk >= g2.oh { (COLUMN_CHUNK / n.max(1)).clamp(1, s.n.max(1)) } else { 1 };
    let chunk_pad = (images * rows_per_chunk * g2.ow).div_ceil(nr) * nr;
    let depth_max = packed_a_blocks(k).map(|(_, d)| d).max().unwrap_or(0);
    let mut data = std::mem::take(buf);
    if data.len() < depth_max * chunk_pad {
        data.resize(depth_max * chunk_pad, 0.0);
    }
    let mut row = vec![0.0f32; chunk_pad];
    let mut tmp = if images > 1 { vec![0.0f32; mg * images * n] } else { Vec::new() };
    for g in 0..s.group {
        for b0 in (0..s.n).step_by(images) {
            let b1 = (b0 + images).min(s.n);
            for r0 in rows.clone().step_by(rows_per_chunk) {
                let r1 = (r0 + rows_per_chunk).min(rows.end);
                let (j0, per_image) = ((r0 - rows.start) * g2.ow, (r1 - r0) * g2.ow);
                let width = per_image * (b1 - b0);
                let width_pad = width.div_ceil(nr) * nr;
                // Columns width..width_pad are the last sliver's padding: zero.
                row[width..width_pad].fill(0.0);
                let epi_bias = bias.map_or(Bias::None, |v| Bias::PerRow(&v[g * mg..]));
                let epilogue = Epilogue { bias: epi_bias, activation: act.in_epilogue().unwrap_or(Activation::None) };
                // Chunks of several images hold whole images (r0 = 0, per_image = n) and
                // go through `tmp`.
                let (c, rsc): (&mut [f32], usize) = if b1 - b0 == 1 {
                    (&mut out[(b0 * s.m + g * mg) * n + j0..], n)
                } else {
                    let tmp = &mut tmp[..mg * width];
                    if beta != 0.0 {
                        for (i, t) in tmp.chunks_exact_mut(width).enumerate() {
                            for (bi, seg) in (b0..b1).zip(t.chunks_exact_mut(n)) {
                                seg.copy_from_slice(&out[(bi * s.m + g * mg + i) * n..][..n]);
                            }
                        }
                    }
                    (tmp, width)
                };
                for (pc, depth) in packed_a_blocks(k) {
                    for q in pc..pc + depth {
                        let (ci, tap) = (q / s.kk, q % s.kk);
                        let (ky, kx) = (tap / g2.kw, tap % g2.kw);
                        let (y0, y1) = g2.rows(ky);
                        let base = (q - pc) * nr;
                        if g2.sw == 1 {
                            // Straight into the slivers (stride 1: runs of whole image rows).
                            let mut chans = (b0..b1).map(|bi| &src[(bi * s.c + g * cg + ci) * s.plane..][..s.plane]);
                            im2col_row_packed(&mut data[base..], nr, depth, &mut chans, (ky, y0, y1), kx, g2, (r0, r1), width_pad);
                            continue;
                        }
                        for (bi, seg) in (b0..b1).zip(row[..width].chunks_exact_mut(per_image)) {
                            let chan = &src[(bi * s.c + g * cg + ci) * s.plane..][..s.plane];
                            im2col_row(seg, chan, (ky, y0, y1), kx, g2, (r0, r1));
                        }
                        for (sl, piece) in row[..width_pad].chunks_exact(nr).enumerate() {
                            copy_sliver(&mut data[base + sl * nr * depth..][..nr], piece);
                        }
                    }
                    let packed = PackedB::from_layout(depth, width, data);
                    let block_beta = if pc == 0 { beta } else { 1.0 };
                    let block_epi = if pc + depth == k { epilogue } else { Epilogue::NONE };
                    gemm(g, pc..pc + depth, &packed, block_beta, &mut *c, rsc as isize, &block_epi);
                    data = packed.into_data();
                }
                if b1 - b0 > 1 {
                    for (i, t) in tmp[..mg * width].chunks_exact(width).enumerate() {
                        for (bi, seg) in (b0..b1).zip(t.chunks_exact(n)) {
                            out[(bi * s.m + g * mg + i) * n..][..n].copy_from_slice(seg);
                        }
                    }
                }
            }
            if act.in_epilogue().is_none() {
                for bi in b0..b1 {
                    act.apply(&mut out[(bi * s.m + g * mg) * n..][..mg * n]);
                }
            }
        }
    }
    *buf = data;
}

/// Target output positions per im2col chunk in [`conv_packed_columns`].
const COLUMN_CHUNK: usize = 512;

/// Column matrices up to this many floats (1 MiB) are packed whole in [`conv_packed_columns`].
const CACHED_COLUMNS: usize = 1 << 18;

/// `dst.copy_from_slice(src)` for one sliver row: fixed sizes compile to vector moves.
#[inline(always)]
fn copy_sliver(dst: &mut [f32], src: &[f32]) {
    if let (Ok(d), Ok(s)) = (<&mut [f32; 32]>::try_from(&mut *dst), <&[f32; 32]>::try_from(src)) {
        *d = *s;
    } else if let (Ok(d), Ok(s)) = (<&mut [f32; 8]>::try_from(&mut *dst), <&[f32; 8]>::try_from(src)) {
        *d = *s;
    } else {
        dst.copy_from_slice(src);
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (an image row, often 7-56
/// values): fixed 8-value blocks compile to vector moves, where a `memcpy` call per run
/// cost more than the copy (measured: 8% of mnist_cnn in `memmove`).
#[inline(always)]
fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d8, s8) in (&mut d).zip(&mut s) {
        let s8: &[T; 8] = s8.try_into().expect("chunks of 8");
        let d8: &mut [T; 8] = d8.try_into().expect("chunks of 8");
        *d8 = *s8;
    }
    for (x, &y) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *x = y;
    }
}

/// Depthwise 2-D convolution of one channel plane, accumulated into `out` (`oh * ow`,
/// preloaded with the bias): one pass over the valid output window per kernel tap, a
/// contiguous multiply-add at stride 1 that the compiler vectorizes.
fn depthwise_2d<T: Num>(out: &mut [T], chan: &[T], taps: &[T], g: &Plane2) {
    for ky in 0..g.kh {
        let (y0, y1) = g.rows(ky);
        for kx in 0..g.kw {
            let (x0, x1) = g.cols(kx);
            if x0 == x1 {
                continue;
            }
            let wv = taps[ky * g.kw + kx];
            for oy in y0..y1 {
                let iy = oy * g.sh + ky * g.dh - g.ph;
                let ix0 = x0 * g.sw + kx * g.dw - g.pw;
                let line = &chan[iy * g.w..(iy + 1) * g.w];
                let dst = &mut out[oy * g.ow + x0..oy * g.ow + x1];
                if g.sw == 1 {
                    for (d, &s) in dst.iter_mut().zip(&line[ix0..ix0 + (x1 - x0)]) {
                        *d = d.add(wv.mul(s));
                    }
                } else {
                    for (d, &s) in dst.iter_mut().zip(line[ix0..].iter().step_by(g.sw)) {
                        *d = d.add(wv.mul(s));
                    }
                }
            }
        }
    }
}

fn err2(e: ndarray::ShapeError) -> Error {
    Error::Shape(e.to_string())
}

/// The shapes of one Conv call: `[N, C, D...]` input, `[M, C/group, K...]` weight.
struct ConvShape {
    n: usize,
    c: usize,
    m: usize,
    cg: usize,
    mg: usize,
    group: usize,
    /// Kernel taps per channel (product of the kernel dims).
    kk: usize,
    /// Input and output positions per channel.
    plane: usize,
    p_out: usize,
    in_sp: Vec<usize>,
    kernel: Vec<usize>,
    out_sp: Vec<usize>,
    geo: Geometry,
}

impl ConvShape {
    fn new(x: &[usize], w: &[usize], win: &Window, group: usize) -> Result<ConvShape> {
        if x.len() < 3 || w.len() != x.len() {
            return shape_err(format!("conv: input {x:?} and weight {w:?} ranks differ"));
        }
        let (n, c, m, cg) = (x[0], x[1], w[0], w[1]);
        if group == 0 || c != cg * group || m % group != 0 {
            return shape_err(format!("conv: {c} input channels do not match weight {w:?} with group {group}"));
        }
        let (in_sp, kernel) = (x[2..].to_vec(), w[2..].to_vec());
        let geo = win.resolve(&in_sp, &kernel)?;
        let out_sp: Vec<usize> = (0..in_sp.len()).map(|d| geo.out_dim(d, in_sp[d], kernel[d])).collect::<Result<_>>()?;
        Ok(ConvShape {
            n, c, m, cg, mg: m / group, group,
            kk: kernel.iter().product(),
            plane: in_sp.iter().product(),
            p_out: out_sp.iter().product(),
            in_sp, kernel, out_sp, geo,
        })
    }

    fn out_dims(&self) -> Vec<usize> {
        [&[self.n, self.m][..], &self.out_sp].concat()
    }

    /// 1x1 kernel, stride 1, no padding: the input planes are already the GEMM's B.
    fn pointwise(&self) -> bool {
        let g = &self.geo;
        self.kk == 1 && g.strides.iter().chain(&g.dilations).all(|&v| v == 1)
            && g.begin.iter().chain(&g.end).all(|&v| v == 0)
    }
}

/// How [`conv_into`] computed the output.
#[derive(PartialEq)]
enum ConvPath {
    /// Direct depthwise kernel: the output holds the convolution plus bias.
    Depthwise,
    /// GEMMs through the caller's closure (which owns bias and activation).
    Gemm,
}

/// The convolution driver: depthwise directly, everything else as one GEMM per image and
/// group, `gemm(g, weights [mg, cg*K], columns [cg*K, P], output [mg, P])` (the output
/// block is zero on entry). `depthwise(out plane, input plane, taps, geometry)` accumulates
/// one channel onto its bias.
fn conv_into<T: Num>(
    src: &[T],
    wdata: &[T],
    bias: Option<&[T]>,
    s: &ConvShape,
    out: &mut [T],
    col: &mut Vec<T>,
    mut depthwise: impl FnMut(&mut [T], &[T], &[T], &Plane2),
    mut gemm: impl FnMut(usize, ArrayView2<T>, ArrayView2<T>, ArrayViewMut2<T>),
) -> Result<ConvPath> {
    let (c, m, cg, mg, kk, plane, p_out) = (s.c, s.m, s.cg, s.mg, s.kk, s.plane, s.p_out);
    if p_out == 0 {
        return Ok(ConvPath::Gemm);
    }
    let w2 = ArrayView2::from_shape((m, cg * kk), wdata).map_err(err2)?;
    let p2 = Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo);
    if let (Some(g2), true) = (&p2, cg == 1 && mg == 1) {
        // Depthwise: each channel convolved with its own taps, no GEMM.
        for (ob, xb) in out.chunks_exact_mut(m * p_out).zip(src.chunks_exact(c * plane)) {
            for (ch, ((o, chan), taps)) in ob.chunks_exact_mut(p_out).zip(xb.chunks_exact(plane)).zip(wdata.chunks_exact(kk)).enumerate() {
                // The depthwise kernel accumulates: the plane starts from the bias.
                o.fill(bias.map_or(T::zero(), |b| b[ch]));
                depthwise(o, chan, taps, g2);
            }
        }
        return Ok(ConvPath::Depthwise);
    }
    let pointwise = s.pointwise();
    // Per-element tap tables: only the N-D (3-D and up) im2col needs them.
    let taps: Vec<_> = if p2.is_none() {
        (0..s.in_sp.len()).map(|d| s.geo.taps(d, s.in_sp[d], s.kernel[d], s.out_sp[d])).collect()
    } else {
        Vec::new()
    };
    let col_len = if pointwise { 0 } else { cg * kk * p_out };
    // Every element is written by im2col_2d, so a reused buffer needs no clearing.
    if p2.is_some() && col.len() < col_len {
        col.resize(col_len, T::zero());
    }
    let mut col_nd = Array2::<T>::from_elem((if p2.is_some() || pointwise { 0 } else { cg * kk }, p_out), T::zero());
    for b in 0..s.n {
        for g in 0..s.group {
            let start = (b * c + g * cg) * plane;
            let xg = &src[start..start + cg * plane];
            let cols = if pointwise {
                ArrayView2::from_shape((cg, plane), xg).map_err(err2)?
            } else if let Some(g2) = &p2 {
                im2col_2d(&mut col[..col_len], xg, cg, g2, p_out);
                ArrayView2::from_shape((cg * kk, p_out), &col[..col_len]).map_err(err2)?
            } else {
                im2col(&mut col_nd, xg, cg, &s.in_sp, &s.kernel, &taps);
                col_nd.view()
            };
            let o0 = (b * m + g * mg) * p_out;
            let og = ArrayViewMut2::from_shape((mg, p_out), &mut out[o0..o0 + mg * p_out]).map_err(err2)?;
            gemm(g, w2.slice(s![g * mg..(g + 1) * mg, ..]), cols, og);
        }
    }
    Ok(ConvPath::Gemm)
}

fn bias_values<T: Num>(bias: Option<&ArrayD<T>>, m: usize) -> Result<Option<Vec<T>>> {
    match bias {
        Some(b) if b.len() != m => shape_err(format!("conv: bias has {} values for {m} channels", b.len())),
        Some(b) => Ok(Some(b.iter().copied().collect())),
        None => Ok(None),
    }
}

/// ONNX `Conv`: input `[N, C, D...]`, weight `[M, C/group, K...]`, optional bias `[M]`.
pub fn conv<T: Num>(x: &ArrayD<T>, w: &ArrayD<T>, bias: Option<&ArrayD<T>>, win: &Window, group: usize) -> Result<ArrayD<T>> {
    let s = ConvShape::new(x.shape(), w.shape(), win, group)?;
    let bias = bias_values(bias, s.m)?;
    let xs = x.as_standard_layout();
    let wc = w.as_standard_layout();
    let mut out = vec![T::zero(); s.n * s.m * s.p_out];
    let mg = s.mg;
    conv_into(xs.as_slice().unwrap_or(&[]), wc.as_slice().unwrap_or(&[]), bias.as_deref(), &s, &mut out, &mut Vec::new(), depthwise_2d, |g, wg, cols, mut og| {
        // The output block starts as the bias and the GEMM accumulates onto it.
        let beta = match &bias {
            Some(b) => {
                for (mut row, &bv) in og.rows_mut().into_iter().zip(&b[g * mg..]) {
                    row.fill(bv);
                }
                T::one()
            }
            None => T::zero(),
        };
        T::gemm(T::one(), &wg, &cols, beta, &mut og);
    })?;
    ArrayD::from_shape_vec(IxDyn(&s.out_dims()), out).map_err(err2)
}

/// f32 `Conv` (`irc.Conv<Act>`, and every f32 `Conv` with `Act::None`): bias and activation
/// applied in the GEMM's output loop (bias per output channel = per row of each GEMM);
/// depthwise convolutions run a SIMD kernel and activate each plane while it is in cache.
pub fn conv_act(x: &ArrayD<f32>, w: &ArrayD<f32>, bias: Option<&ArrayD<f32>>, win: &Window, group: usize, act: Act) -> Result<ArrayD<f32>> {
    let s = ConvShape::new(x.shape(), w.shape(), win, group)?;
    let bias = bias_values(bias, s.m)?;
    let xs = x.as_standard_layout();
    let wc = w.as_standard_layout();
    if let Some(out) = conv_direct(xs.as_slice().unwrap_or(&[]), wc.as_slice().unwrap_or(&[]), bias.as_deref(), &s, act) {
        return ArrayD::from_shape_vec(IxDyn(&s.out_dims()), out).map_err(err2);
    }
    // Every element is written before anything reads it: `conv_into` fills depthwise
    // planes (bias or zero) first, and each GEMM block there and in `conv_packed_columns`
    // (blocks (b, g) tile the output) is computed with beta = 0, which makes C write-only.
    let mut out = output_buffer(s.n * s.m * s.p_out);
    let mg = s.mg;
    let mut phases = Vec::new();
    let depthwise = |o: &mut [f32], chan: &[f32], taps: &[f32], g: &Plane2| {
        depthwise_f32(o, chan, taps, g, &mut phases);
        act.apply(o);
    };
    let (src, wdata) = (xs.as_slice().unwrap_or(&[]), wc.as_slice().unwrap_or(&[]));
    let p2 = Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo);
    if let Some(g2) = p2.filter(|_| s.p_out > 0 && s.mg > PACKED_COLUMNS_MIN_ROWS && !s.pointwise() && src.len() == x.len()) {
        let k = s.cg * s.kk;
        with_columns(|col| {
            conv_packed_columns(src, bias.as_deref(), &s, &g2, act, &mut out, col, 0.0, 0..g2.oh, |g, ks, packed, beta, oc, rsc, epi| {
                let wg = &wdata[g * s.mg * k..][..s.mg * k];
                sgemm_packed_b(s.mg, 1.0, &wg[ks.start..], k as isize, 1, packed, beta, oc, rsc, 1, epi);
            })
        });
        return ArrayD::from_shape_vec(IxDyn(&s.out_dims()), out).map_err(err2);
    }
    with_columns(|col| {
        conv_into(src, wdata, bias.as_deref(), &s, &mut out, col, depthwise, |g, wg, cols, mut og| {
            let bias = bias.as_ref().map_or(Bias::None, |b| Bias::PerRow(&b[g * mg..]));
            gemm_f32_act(1.0, &wg, &cols, 0.0, &mut og, bias, act);
        })
    })?;
    ArrayD::from_shape_vec(IxDyn(&s.out_dims()), out).map_err(err2)
}

/// Conv weights `[M, C/group, K...]` packed once at load, per group, in one of two layouts:
///
/// * [`ConvWeights::rows`]: the `[M/group, C/group * K]` A operand of
///   `out [M, P] = W · columns [C*K, P]`, already the NCHW layout (no transpose); for
///   layers with many output positions.
/// * [`ConvWeights::new`]: the `[C/group * K, M/group]` B operand of the transposed product
///   `out^T [P, M] = columns^T [P, C*K] · W^T`, for layers whose weights outweigh their
///   activations (late, small-image layers): the GEMM's rows are the output positions of
///   the whole batch, so a 7x7 image wastes no tile columns, at the price of a transpose.
pub struct ConvWeights {
    dims: Vec<usize>,
    packed: ConvPacking,
}

enum ConvPacking {
    Rows(Vec<PackedA>),
    Transposed(Vec<PackedB>),
}

impl ConvWeights {
    /// The transposed layout (W^T as a packed B per group).
    pub fn new(w: ArrayD<f32>, group: usize) -> Result<ConvWeights> {
        ConvWeights::pack(w, group, true)
    }

    /// The row layout (W as a packed A per group).
    pub fn rows(w: ArrayD<f32>, group: usize) -> Result<ConvWeights> {
        ConvWeights::pack(w, group, false)
    }

    fn pack(w: ArrayD<f32>, group: usize, transposed: bool) -> Result<ConvWeights> {
        let w = w.as_standard_layout();
        let dims = w.shape().to_vec();
        let (Some(data), true) = (w.as_slice(), dims.len() >= 3 && group > 0 && dims[0].is_multiple_of(group)) else {
            return shape_err(format!("conv weights {dims:?} with group {group}"));
        };
        let (mg, ck) = (dims[0] / group, dims[1..].iter().product::<usize>());
        let wg = |g: usize| &data[g * mg * ck..(g + 1) * mg * ck];
        let packed = if transposed {
            // W_g^T [ck, mg]: element (q, j) of group g is data[(g * mg + j) * ck + q].
            ConvPacking::Transposed((0..group).map(|g| PackedB::new(ck, mg, wg(g), 1, ck as isize)).collect())
        } else {
            ConvPacking::Rows((0..group).map(|g| PackedA::new(mg, ck, wg(g), ck as isize, 1)).collect())
        };
        Ok(ConvWeights { dims, packed })
    }

    fn groups(&self) -> usize {
        match &self.packed {
            ConvPacking::Rows(v) => v.len(),
            ConvPacking::Transposed(v) => v.len(),
        }
    }
}

/// f32 `Conv` (+ activation) with [`ConvWeights`]: the packed weights times the columns
/// (the input itself for 1x1 stride-1 kernels), bias and activation in the GEMM epilogue.
pub fn conv_packed(x: &ArrayD<f32>, w: &ConvWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act) -> Result<ArrayD<f32>> {
    conv_packed_impl(x, w, bias, win, act, None)
}

/// [`conv_packed`] plus a same-shape addend before the activation (`irc.ConvAdd<Act>`,
/// ResNet's residual): `act(conv(x) + bias + residual)`, with the residual as the GEMM's
/// C (beta = 1), so its buffer becomes the output.
/// A borrowed residual (one that lives on after this layer) is copied into the output.
pub fn conv_packed_add<'a>(
    x: &ArrayD<f32>, w: &ConvWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act,
    residual: impl super::elem::Operand<'a, f32>,
) -> Result<ArrayD<f32>> {
    conv_packed_impl(x, w, bias, win, act, Some(residual.into_cow().into_owned()))
}

/// `irc.ConvAdd<Act>` without packed weights: `act(conv(x) + bias + residual)`.
pub fn conv_act_add<'a>(
    x: &ArrayD<f32>, w: &ArrayD<f32>, bias: Option<&ArrayD<f32>>, win: &Window, group: usize, act: Act,
    residual: impl super::elem::Operand<'a, f32>,
) -> Result<ArrayD<f32>> {
    let mut out = conv_act(x, w, bias, win, group, Act::None)?;
    let residual = residual.into_cow();
    if residual.shape() != out.shape() {
        return shape_err(format!("conv: residual {:?} does not match output {:?}", residual.shape(), out.shape()));
    }
    out.zip_mut_with(&*residual, |o, &r| *o = act.of(*o + r));
    Ok(out)
}

fn conv_packed_impl(
    x: &ArrayD<f32>, w: &ConvWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act, residual: Option<ArrayD<f32>>,
) -> Result<ArrayD<f32>> {
    let s = ConvShape::new(x.shape(), &w.dims, win, w.groups())?;
    let bias = bias_values(bias, s.m)?;
    let xs = x.as_standard_layout();
    let src = xs.as_slice().unwrap_or(&[]);
    let (cg, mg, kk, plane, p_out) = (s.cg, s.mg, s.kk, s.plane, s.p_out);
    let p2 = Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo);
    let pointwise = s.pointwise();
    if p_out == 0 || (p2.is_none() && !pointwise) {
        return shape_err("conv: packed weights need a 1-D or 2-D convolution");
    }
    let groups = match &w.packed {
        ConvPacking::Rows(groups) => groups,
        ConvPacking::Transposed(groups) => return conv_transposed(src, groups, bias.as_deref(), &s, p2.as_ref(), act, residual),
    };
    // With a residual, C starts as the residual (beta = 1); else every element is written
    // by a beta = 0 GEMM block (blocks (b, g) tile the output) before anything reads it.
    let (mut result, beta) = match residual {
        Some(r) => {
            if r.shape() != s.out_dims().as_slice() {
                return shape_err(format!("conv: residual {:?} does not match output {:?}", r.shape(), s.out_dims()));
            }
            (if r.is_standard_layout() { r } else { r.as_standard_layout().into_owned() }, 1.0)
        }
        // Zeroed by the threads, plane by plane (a serial memset of mobilenet's 112x112 and
        // 56x56 outputs was ~8% of the caller's time at 2 threads).
        None => (ArrayD::from_shape_vec(IxDyn(&s.out_dims()), zeroed_split(s.n * s.m * p_out, p_out)).map_err(err2)?, 0.0),
    };
    let Some(out) = result.as_slice_mut() else {
        return shape_err("conv: output not contiguous");
    };
    let activation = act.in_epilogue().unwrap_or(Activation::None);
    let epilogue = |g: usize| Epilogue { bias: bias.as_ref().map_or(Bias::None, |v| Bias::PerRow(&v[g * mg..])), activation };
    let finish = |og: &mut [f32]| {
        if act.in_epilogue().is_none() {
            act.apply(og);
        }
    };
    match &p2 {
        // Big pointwise planes (or one image): the input planes are B as they are.
        _ if pointwise && (s.n == 1 || p_out >= COLUMN_CHUNK || p2.is_none()) => {
            for b in 0..s.n {
                for (g, a) in groups.iter().enumerate() {
                    let xg = &src[(b * s.c + g * cg) * plane..][..cg * plane];
                    let og = &mut out[(b * s.m + g * mg) * p_out..][..mg * p_out];
                    let bv = OperandB::View { b: xg, rs: plane as isize, cs: 1 };
                    sgemm_packed_a(a, p_out, 1.0, bv, beta, og, p_out as isize, 1, &epilogue(g));
                    finish(og);
                }
            }
        }
        Some(g2) if mg > PACKED_COLUMNS_MIN_ROWS || pointwise => {
            // Several threads and images: each thread convolves its own run of images (its
            // own column buffer), instead of splitting every chunk's small GEMM.
            let image_out = s.m * p_out;
            let threads = super::par::threads().min(s.n);
            let per_piece = s.n.div_ceil(threads.max(1));
            let flops = 2 * s.n * image_out * cg * kk;
            let bias = bias.as_deref();
            let run = |b0: usize, out: &mut [f32]| -> Result<()> {
                let nb = out.len() / image_out;
                let sub_dims = [&[nb, s.c][..], &s.in_sp].concat();
                let sub = ConvShape::new(&sub_dims, &w.dims, win, w.groups())?;
                let sub_src = &src[b0 * s.c * plane..][..nb * s.c * plane];
                with_columns(|col| {
                    conv_packed_columns(sub_src, bias, &sub, g2, act, out, col, beta, 0..g2.oh, |g, ks, packed, beta, oc, rsc, epi| {
                        sgemm_packed_a_part(&groups[g], ks, packed.n(), 1.0, OperandB::Packed(packed), beta, oc, rsc, 1, epi);
                    })
                });
                Ok(())
            };
            // Bands from 32 MFLOP: below, one hand-off plus the copy cost more than they
            // saved (resnet18's 1x1/s2 64->128 shortcut at 28x28, 13 MFLOP: 180 µs on one
            // thread, 244 in two bands, 256 with its chunks' GEMMs split).
            let bands = super::par::pieces_for_min(flops, 4 * super::par::MIN_PARALLEL_WORK).min(g2.oh);
            if s.n == 1 && beta == 0.0 && bands > 1 {
                // One image, several threads: each convolves its own band of output rows
                // (its own im2col and GEMMs, one hand-off per layer instead of a split of
                // every chunk's small GEMM with the im2col serial in between: resnet18's
                // 7x7 stem took 2.9 ms on one thread and 5.0 ms split that way) into its
                // block of `banded` ([M, band] per band), then the blocks are copied into
                // the NCHW planes.
                let ranges = super::par::split_range(g2.oh, bands, 1);
                // Kept between calls (a fresh 3 MB block page-faulted on every call).
                let mut banded = BLOCK.with(|c| c.try_borrow_mut().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default());
                if banded.len() < s.m * p_out {
                    banded.resize(s.m * p_out, 0.0);
                }
                let bptr = OutPtr(banded.as_mut_ptr());
                super::par::for_ranges(bands, 1, flops, |pieces| {
                    for band in &ranges[pieces] {
                        let len = s.m * band.len() * g2.ow;
                        let sub = ConvShape {
                            p_out: band.len() * g2.ow,
                            in_sp: s.in_sp.clone(), kernel: s.kernel.clone(),
                            out_sp: vec![band.len(), g2.ow],
                            geo: Geometry {
                                strides: s.geo.strides.clone(), dilations: s.geo.dilations.clone(),
                                begin: s.geo.begin.clone(), end: s.geo.end.clone(),
                            },
                            ..s
                        };
                        // SAFETY: band blocks are disjoint: rows [a, b) of every channel are
                        // `banded[M*a*ow .. M*b*ow]`, written by this piece only.
                        let block = unsafe { std::slice::from_raw_parts_mut(bptr.at(s.m * band.start * g2.ow), len) };
                        with_columns(|col| {
                            conv_packed_columns(src, bias, &sub, g2, act, block, col, 0.0, band.clone(), |g, ks, packed, beta, oc, rsc, epi| {
                                sgemm_packed_a_part(&groups[g], ks, packed.n(), 1.0, OperandB::Packed(packed), beta, oc, rsc, 1, epi);
                            })
                        });
                    }
                });
                let copy_work = s.m * p_out * 40;
                super::par::for_each_chunk_mut(out, p_out, copy_work, |c, plane| {
                    for band in &ranges {
                        let w = band.len() * g2.ow;
                        plane[band.start * g2.ow..][..w].copy_from_slice(&banded[s.m * band.start * g2.ow + c * w..][..w]);
                    }
                });
                BLOCK.with(|c| {
                    if let Ok(mut v) = c.try_borrow_mut() {
                        *v = banded;
                    }
                });
            } else if s.n == 1 && beta == 0.0 {
                // Too small for bands: its chunks' GEMMs are too small to split as well.
                super::par::inline(|| run(0, out))?;
            } else if threads > 1 && super::par::pieces_for(flops) > 1 {
                let failed = std::sync::Mutex::new(None);
                super::par::for_each_chunk_mut(out, per_piece * image_out, flops, |i, chunk| {
                    if let Err(e) = run(i * per_piece, chunk) {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                });
                if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    return Err(e);
                }
            } else {
                run(0, out)?;
            }
        }
        Some(g2) => {
            // Few output channels: the whole column matrix, read in place by the kernel.
            let col_len = cg * kk * p_out;
            with_columns(|col| {
                if col.len() < col_len {
                    col.resize(col_len, 0.0);
                }
                for b in 0..s.n {
                    for (g, a) in groups.iter().enumerate() {
                        let xg = &src[(b * s.c + g * cg) * plane..][..cg * plane];
                        im2col_2d(&mut col[..col_len], xg, cg, g2, p_out);
                        let og = &mut out[(b * s.m + g * mg) * p_out..][..mg * p_out];
                        let bv = OperandB::View { b: &col[..col_len], rs: p_out as isize, cs: 1 };
                        sgemm_packed_a(a, p_out, 1.0, bv, beta, og, p_out as isize, 1, &epilogue(g));
                        finish(og);
                    }
                }
            });
        }
        None => unreachable!("checked above"),
    }
    Ok(result)
}

/// The transposed product of [`ConvWeights::new`]: one GEMM per group for the whole batch
/// (its rows are every image's output positions, so the packed weights are streamed once
/// per call), into a `[N*P, M/group]` block with the bias in the epilogue, then transposed
/// into the NCHW output (added onto the residual, then activated, when there is one).
fn conv_transposed(
    src: &[f32], groups: &[PackedB], bias: Option<&[f32]>, s: &ConvShape, p2: Option<&Plane2>, act: Act,
    residual: Option<ArrayD<f32>>,
) -> Result<ArrayD<f32>> {
    let (cg, mg, kk, plane, p_out) = (s.cg, s.mg, s.kk, s.plane, s.p_out);
    let mut result = match residual {
        Some(r) if r.shape() != s.out_dims().as_slice() => {
            return shape_err(format!("conv: residual {:?} does not match output {:?}", r.shape(), s.out_dims()));
        }
        Some(r) if r.is_standard_layout() => Some(r),
        Some(r) => Some(r.as_standard_layout().into_owned()),
        None => None,
    };
    // Without a residual every element is written by the transpose below: the loops cover
    // each image b and group g, and block (b, g) is rows (b*M + g*mg)*P .. +mg*P.
    let mut fresh = if result.is_none() { output_buffer(s.n * s.m * p_out) } else { Vec::new() };
    let add = result.is_some();
    let out: &mut [f32] = match result.as_mut() {
        Some(r) => match r.as_slice_mut() {
            Some(v) => v,
            None => return shape_err("conv: residual not contiguous"),
        },
        None => &mut fresh,
    };
    let k = cg * kk;
    // Images per GEMM: the product block of a chunk stays in L2 for the transpose that
    // follows (a whole batch's block went out to memory and back: at batch 8 the transpose
    // was ~7% of mobilenet); the weights are then streamed once per chunk.
    let per_chunk = (TRANSPOSED_BLOCK / (p_out * mg).max(1)).clamp(1, s.n.max(1));
    let np_max = per_chunk * p_out;
    let (kc, mr_max) = PackedA::layout(np_max);
    let m_pad_max = np_max.div_ceil(mr_max) * mr_max;
    // The block's rows live after the packed A in the reused column buffer (nothing to
    // allocate or zero per call); positions np..m_pad of each row are zeroed as written.
    let rows_len_max = kc.min(k) * m_pad_max;
    // Each group's GEMM writes the whole block (beta = 0 makes C write-only) before
    // the activation and the transpose read it.
    // (A scratch kept between calls: zeroing a fresh one per layer cost a memset of the
    // whole output again.)
    let mut block_buf = BLOCK.with(|c| c.try_borrow_mut().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default());
    if block_buf.len() < np_max * mg {
        block_buf.resize(np_max * mg, 0.0);
    }
    // With a residual the activation comes after the add, in the transpose.
    let epi_act = if add { Some(Activation::None) } else { act.in_epilogue() };
    let flat;
    let g2 = match p2 {
        Some(g2) => g2,
        // 1x1 stride-1 (pointwise) in any rank: one row of positions.
        None => {
            flat = Plane2 { h: 1, w: plane, kh: 1, kw: 1, oh: 1, ow: p_out, sh: 1, sw: 1, dh: 1, dw: 1, ph: 0, pw: 0 };
            &flat
        }
    };
    with_columns(|col| {
        let mut data = std::mem::take(col);
        if data.len() < k * m_pad_max + rows_len_max {
            data.resize(k * m_pad_max + rows_len_max, 0.0);
        }
        for b0 in (0..s.n).step_by(per_chunk) {
            let b1 = (b0 + per_chunk).min(s.n);
            // columns^T [n*P, C*K] of images b0..b1 is the GEMM's A, written in the
            // packed-A layout one K block at a time: the block's im2col rows (one channel
            // and kernel tap, all images) into `rows` (L2-sized), then copied sliver by
            // sliver (MR positions, contiguous writes).
            let np = (b1 - b0) * p_out;
            let (_, mr) = PackedA::layout(np);
            let m_pad = np.div_ceil(mr) * mr;
            let rows_len = kc.min(k) * m_pad;
            let block = &mut block_buf[..np * mg];
            for (g, packed) in groups.iter().enumerate() {
                for pc in (0..k).step_by(kc) {
                    let depth = kc.min(k - pc);
                    let (packed_a, rows) = data.split_at_mut(k * m_pad);
                    let rows = &mut rows[..rows_len];
                    for (q, row) in (pc..pc + depth).zip(rows.chunks_exact_mut(m_pad)) {
                        let (ci, tap) = (q / kk, q % kk);
                        let (ky, kx) = (tap / g2.kw, tap % g2.kw);
                        let (y0, y1) = g2.rows(ky);
                        for (b, seg) in (b0..b1).zip(row[..np].chunks_exact_mut(p_out)) {
                            let chan = &src[(b * s.c + g * cg + ci) * plane..][..plane];
                            im2col_row(seg, chan, (ky, y0, y1), kx, g2, (0, g2.oh));
                        }
                        row[np..].fill(0.0);
                    }
                    let block_data = &mut packed_a[pc * m_pad..][..depth * m_pad];
                    for (sl, sliver) in block_data.chunks_exact_mut(mr * depth).enumerate() {
                        for (dst, row) in sliver.chunks_exact_mut(mr).zip(rows.chunks_exact(m_pad)) {
                            copy_sliver(dst, &row[sl * mr..][..mr]);
                        }
                    }
                }
                let cols = PackedA::from_layout(np, k, data);
                let epi_bias = bias.map_or(Bias::None, |v| Bias::PerCol(&v[g * mg..]));
                if b1 - b0 == 1 && mr == TRANSPOSED_STORE_MR {
                    // One image: out^T written straight into the NCHW output (C column-major,
                    // the AVX-512 tile transposes in registers), onto the residual (beta = 1)
                    // when there is one, the activation last; no block, no transpose pass.
                    let o0 = (b0 * s.m + g * mg) * p_out;
                    let dst = &mut out[o0..o0 + mg * p_out];
                    let activation = act.in_epilogue();
                    let epilogue = Epilogue { bias: epi_bias, activation: activation.unwrap_or(Activation::None) };
                    let beta = if add { 1.0 } else { 0.0 };
                    sgemm_packed_a(&cols, mg, 1.0, OperandB::Packed(packed), beta, dst, 1, p_out as isize, &epilogue);
                    data = cols.into_data();
                    if activation.is_none() {
                        act.apply(dst);
                    }
                    continue;
                }
                let epilogue = Epilogue { bias: epi_bias, activation: epi_act.unwrap_or(Activation::None) };
                sgemm_packed_a(&cols, mg, 1.0, OperandB::Packed(packed), 0.0, block, mg as isize, 1, &epilogue);
                data = cols.into_data();
                if epi_act.is_none() {
                    act.apply(block);
                }
                for (b, rows) in (b0..b1).zip(block.chunks_exact(p_out * mg)) {
                    let o0 = (b * s.m + g * mg) * p_out;
                    let dst = &mut out[o0..o0 + mg * p_out];
                    if add {
                        transpose_add_into(rows, p_out, mg, dst);
                        act.apply(dst);
                    } else {
                        transpose_into(rows, p_out, mg, dst);
                    }
                }
            }
        }
        *col = data;
    });
    BLOCK.with(|c| {
        if let Ok(mut v) = c.try_borrow_mut() {
            *v = block_buf;
        }
    });
    match result {
        Some(r) => Ok(r),
        None => ArrayD::from_shape_vec(IxDyn(&s.out_dims()), fresh).map_err(err2),
    }
}

/// Tile height whose kernel stores a column-major C in vector registers (the AVX-512 8x32
/// tile); with another kernel a one-image chunk still goes through the block + transpose.
const TRANSPOSED_STORE_MR: usize = 8;

/// Floats of [`conv_transposed`]'s product block per GEMM (whole images; at least one).
const TRANSPOSED_BLOCK: usize = 1 << 17;

/// A zeroed `len`-element f32 buffer for a conv output. (Leaving it uninitialized saved a
/// memset of ~1% of a CNN, but a `Vec<f32>` over uninitialized memory is undefined behaviour
/// in Rust, and clippy rejects it; the GEMMs below still write it with beta = 0.)
fn output_buffer(len: usize) -> Vec<f32> {
    vec![0.0; len]
}

/// `par` work units per float of a padded copy or a zeroed buffer (memory-bound: ~1 ns).
const FILL_WORK: usize = 128;

/// A zeroed `len`-element buffer, zeroed in `chunk`-long pieces split over the threads (a
/// conv output that the same split of its channel blocks then writes).
fn zeroed_split(len: usize, chunk: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    super::par::for_each_chunk_mut(&mut v.spare_capacity_mut()[..len], chunk, len * FILL_WORK / 2, |_, c| {
        c.fill(std::mem::MaybeUninit::new(0.0))
    });
    // SAFETY: the chunks cover `..len`, every element was written just above.
    unsafe { v.set_len(len) };
    v
}

thread_local! {
    /// The im2col buffer of the f32 convolutions, kept between calls: it is as large as the
    /// biggest layer's columns (megabytes), and allocating plus zeroing it per call cost ~5%.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The transposed conv's `[N*P, M/group]` product block, kept between calls.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with the thread's column buffer (a fresh one if re-entered).
fn with_columns<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut col = COLUMNS.with(|c| c.try_borrow_mut().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default());
    let result = f(&mut col);
    COLUMNS.with(|c| {
        if let Ok(mut v) = c.try_borrow_mut() {
            *v = col;
        }
    });
    result
}

/// `dst [cols, rows] = src [rows, cols]^T`, in 8x8 tiles so both sides stay in cache lines.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_tiles::<false>(src, rows, cols, dst)
}

/// `dst [cols, rows] += src [rows, cols]^T` (the residual add of the transposed product).
fn transpose_add_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_tiles::<true>(src, rows, cols, dst)
}

/// The 8x8 tiles of [`transpose_into`] (`ADD`: [`transpose_add_into`]): full tiles in AVX
/// registers when the CPU has it (the scalar loop cost ~3.5% of mobilenet at batch 1,
/// where every 14x14 and 7x7 pointwise layer goes through it), the edges scalar.
fn transpose_tiles<const ADD: bool>(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const T: usize = 8;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose: buffers too short");
    #[cfg(target_arch = "x86_64")]
    let avx = super::cpu::avx();
    #[cfg(not(target_arch = "x86_64"))]
    let avx = false;
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            if avx && r0 + T <= rows && c0 + T <= cols {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU has AVX (checked above); the tile's 8 rows of src
                // (r0.., c0..c0+8) and 8 rows of dst (c0.., r0..r0+8) are in bounds
                // (asserted lengths, full tile).
                unsafe {
                    transpose8_avx::<ADD>(src.as_ptr().add(r0 * cols + c0), cols, dst.as_mut_ptr().add(c0 * rows + r0), rows);
                }
                continue;
            }
            for r in r0..(r0 + T).min(rows) {
                for c in c0..(c0 + T).min(cols) {
                    if ADD {
                        dst[c * rows + r] += src[r * cols + c];
                    } else {
                        dst[c * rows + r] = src[r * cols + c];
                    }
                }
            }
        }
    }
}

/// One 8x8 tile: `dst[c * ds + r] (+)= src[r * ss + c]` for r, c < 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn transpose8_avx<const ADD: bool>(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    use std::arch::x86_64::*;
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ss)));
        let out = super::gemm::transpose8x8(r);
        for (c, v) in out.into_iter().enumerate() {
            let d = dst.add(c * ds);
            let v = if ADD { _mm256_add_ps(_mm256_loadu_ps(d), v) } else { v };
            _mm256_storeu_ps(d, v);
        }
    }
}

/// `d + a * b`, fused when the caller was compiled with FMA (else `mul_add` would be a
/// slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, d: f32) -> f32 {
    if FMA { a.mul_add(b, d) } else { d + a * b }
}

/// `line` split into its `sw` column phases: phase `p` (columns p, p + sw, ...) goes to
/// `dst[p * plen..]`, `plen = dst.len() / sw`; slots past a phase's last column are left as
/// they are. Strided kernels read each phase as a unit-stride row.
#[inline]
pub(crate) fn split_phases<T: Copy>(line: &[T], sw: usize, dst: &mut [T]) {
    let plen = dst.len() / sw;
    if sw == 2 {
        // The common stride: even and odd columns in one pass over column pairs
        // (a shuffle the compiler vectorizes; `step_by` compiled to a scalar loop).
        let (even, odd) = dst.split_at_mut(plen);
        let pairs = line.chunks_exact(2);
        if let [last] = pairs.remainder() {
            even[plen - 1] = *last;
        }
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
            (*e, *o) = (pair[0], pair[1]);
        }
        return;
    }
    for (p, run) in dst.chunks_exact_mut(plen).enumerate() {
        for (d, &v) in run.iter_mut().zip(line.iter().skip(p).step_by(sw)) {
            *d = v;
        }
    }
}

/// f32 depthwise convolution of one plane onto `out` (preloaded with the bias): per kernel
/// tap, a multiply-add of a contiguous input run into a contiguous output run. Strided
/// convolutions first split each input row into its `sw` phases, so runs stay contiguous.
#[inline(always)]
fn depthwise_body<const FMA: bool>(out: &mut [f32], chan: &[f32], taps: &[f32], g: &Plane2, phases: &mut Vec<f32>) {
    let plen = g.w.div_ceil(g.sw);
    if g.sw > 1 {
        // Row `iy`, phase `p` (columns p, p + sw, ...) lives at `(iy * sw + p) * plen`.
        phases.resize(g.h * g.sw * plen, 0.0);
        for (line, rows) in chan.chunks_exact(g.w).zip(phases.chunks_exact_mut(g.sw * plen)) {
            split_phases(line, g.sw, rows);
        }
    }
    let interior = (0..g.kw).map(|kx| g.cols(kx)).fold((0, g.ow), |(a, b), (x0, x1)| (a.max(x0), b.min(x1)));
    for ky in 0..g.kh {
        let (y0, y1) = g.rows(ky);
        for oy in y0..y1 {
            let iy = oy * g.sh + ky * g.dh - g.ph;
            let src: &[f32] = if g.sw == 1 { &chan[iy * g.w..(iy + 1) * g.w] } else { &phases[iy * g.sw * plen..(iy + 1) * g.sw * plen] };
            let dst = &mut out[oy * g.ow..(oy + 1) * g.ow];
            // Where tap `kx` of output column `x` reads in `src`.
            let pos = |x: usize, kx: usize| {
                let ix = x * g.sw + kx * g.dw - g.pw;
                if g.sw == 1 { ix } else { (ix % g.sw) * plen + ix / g.sw }
            };
            let wrow = &taps[ky * g.kw..(ky + 1) * g.kw];
            // Columns where every tap of the row is inside the image: three taps per pass
            // there (one load and store of the output per three multiply-adds).
            let (xa, xb) = if g.kw == 3 { interior } else { (0, 0) };
            if xa < xb {
                let len = xb - xa;
                let (a, b, c) = (&src[pos(xa, 0)..][..len], &src[pos(xa, 1)..][..len], &src[pos(xa, 2)..][..len]);
                for (((d, &p), &q), &r) in dst[xa..xb].iter_mut().zip(a).zip(b).zip(c) {
                    *d = madd::<FMA>(wrow[2], r, madd::<FMA>(wrow[1], q, madd::<FMA>(wrow[0], p, *d)));
                }
            }
            for (kx, &wv) in wrow.iter().enumerate() {
                let (x0, x1) = g.cols(kx);
                // The part of [x0, x1) outside the interior [xa, xb) done above.
                let parts = if xa < xb { [(x0, xa.min(x1)), (xb.max(x0), x1)] } else { [(x0, x1), (0, 0)] };
                for (lo, hi) in parts {
                    if lo < hi {
                        let run = &src[pos(lo, kx)..][..hi - lo];
                        for (d, &v) in dst[lo..hi].iter_mut().zip(run) {
                            *d = madd::<FMA>(wv, v, *d);
                        }
                    }
                }
            }
        }
    }
}

/// Stride-1 depthwise convolution of one plane as flat passes over a zero-padded copy:
/// with the padded row pitch `pitch`, output `(y, x)` at flat `y * pitch + x` reads tap
/// `(ky, kx)` at flat `y * pitch + x + ky * dh * pitch + kx * dw`, so every tap is one long
/// contiguous multiply-add (the `kw - 1` columns past each row are computed and dropped).
#[inline(always)]
fn depthwise_flat<const FMA: bool>(out: &mut [f32], chan: &[f32], taps: &[f32], g: &Plane2, buf: &mut Vec<f32>) {
    let pitch = (g.pw + g.w).max(g.ow + (g.kw - 1) * g.dw);
    let height = (g.ph + g.h).max(g.oh + (g.kh - 1) * g.dh);
    let n = (g.oh - 1) * pitch + g.ow;
    buf.clear();
    buf.resize(height * pitch + n, 0.0);
    let (pad, acc) = buf.split_at_mut(height * pitch);
    for (y, line) in chan.chunks_exact(g.w).enumerate() {
        let at = (g.ph + y) * pitch + g.pw;
        pad[at..at + g.w].copy_from_slice(line);
    }
    let off = |ky: usize, kx: usize| ky * g.dh * pitch + kx * g.dw;
    if let (Ok(w), 3, 3) = (<&[f32; 9]>::try_from(taps), g.kh, g.kw) {
        let s: [&[f32]; 9] = std::array::from_fn(|t| &pad[off(t / 3, t % 3)..][..n]);
        for (i, a) in acc.iter_mut().enumerate() {
            let mut v = w[0] * s[0][i];
            for t in 1..9 {
                v = madd::<FMA>(w[t], s[t][i], v);
            }
            *a = v;
        }
    } else {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let wv = taps[ky * g.kw + kx];
                for (a, &v) in acc.iter_mut().zip(&pad[off(ky, kx)..][..n]) {
                    *a = madd::<FMA>(wv, v, *a);
                }
            }
        }
    }
    for (dst, row) in out.chunks_exact_mut(g.ow).zip(acc.chunks(pitch)) {
        for (d, &v) in dst.iter_mut().zip(row) {
            *d += v;
        }
    }
}

/// [`depthwise_body`] compiled for AVX2+FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_avx2(out: &mut [f32], chan: &[f32], taps: &[f32], g: &Plane2, phases: &mut Vec<f32>) {
    if g.sw == 1 {
        depthwise_flat::<true>(out, chan, taps, g, phases)
    } else {
        depthwise_body::<true>(out, chan, taps, g, phases)
    }
}

fn depthwise_f32(out: &mut [f32], chan: &[f32], taps: &[f32], g: &Plane2, phases: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if super::cpu::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { depthwise_avx2(out, chan, taps, g, phases) };
    }
    if g.sw == 1 {
        depthwise_flat::<false>(out, chan, taps, g, phases)
    } else {
        depthwise_body::<false>(out, chan, taps, g, phases)
    }
}

/// A convolution computed straight from a zero-padded copy of its input (no im2col, no
/// GEMM packing): each output tile of `MR` channels x `NV` 8-float vectors of one output
/// row accumulates, per input channel and kernel tap, `NV` contiguous loads times `MR`
/// broadcast weights, with bias and activation applied before its single store. Strided
/// convolutions read a copy whose rows are split into their `sw` phases (columns p, p + sw,
/// ...), so every tap is still a contiguous load. Used for depthwise convolutions (`MR` = 1,
/// one input channel per output) and for convolutions whose columns are short (few input
/// channels, [`DIRECT_MAX_DEPTH`]), where im2col plus GEMM spends more time building and
/// packing the columns than multiplying them.
struct Direct {
    /// Floats per phase, per padded row (`sw` phases) and per channel.
    phase: usize,
    row_pitch: usize,
    chan_pitch: usize,
    /// Offset of each kernel tap `(ky, kx)` in a channel of the padded copy, relative to
    /// output position (0, 0).
    taps: Vec<usize>,
}

/// Columns per channel (`C/group * K`) up to which [`conv_act`] convolves directly: mnist's
/// 32-channel 3x3 layer (288) and RGB stems (27, 147); deeper layers go to the GEMM.
const DIRECT_MAX_DEPTH: usize = 320;

impl Direct {
    fn new(g: &Plane2) -> Direct {
        let sw = g.sw;
        let ow_vec = g.ow.div_ceil(8) * 8;
        let span_w = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        let width = (g.pw + g.w).max(span_w);
        let phase = width.div_ceil(sw).max(ow_vec + (g.kw - 1) * g.dw / sw);
        let rows = (g.ph + g.h).max((g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1);
        let row_pitch = sw * phase;
        let taps = (0..g.kh * g.kw)
            .map(|t| {
                let (ky, kx) = (t / g.kw, t % g.kw);
                ky * g.dh * row_pitch + (kx * g.dw) % sw * phase + kx * g.dw / sw
            })
            .collect();
        Direct { phase, row_pitch, chan_pitch: rows * row_pitch, taps }
    }

    /// Writes the padded, phase-split copy of `chans` (planes of `g.h * g.w`) into `buf`.
    /// `clear`: zero the padding too (every element of its first `n * chan_pitch`); without
    /// it only the input's own positions are written, for a buffer that already holds a
    /// copy of the same geometry (the padding is never written, so it stays zero).
    fn fill(&self, buf: &mut Vec<f32>, chans: &[f32], g: &Plane2, clear: bool) {
        let n = chans.len() / (g.h * g.w).max(1);
        if buf.len() < n * self.chan_pitch {
            buf.resize(n * self.chan_pitch, 0.0);
        }
        self.fill_into(buf, chans, g, clear)
    }

    /// [`Direct::fill`] into a slice of at least `channels * chan_pitch` floats (a piece of a
    /// buffer filled by several threads).
    fn fill_into(&self, buf: &mut [f32], chans: &[f32], g: &Plane2, clear: bool) {
        #[cfg(target_arch = "x86_64")]
        {
            /// The copy compiled for wider vectors (it was half of a depthwise layer in SSE).
            #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
            unsafe fn wide(d: &Direct, buf: &mut [f32], chans: &[f32], g: &Plane2, clear: bool) {
                d.fill_body(buf, chans, g, clear)
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(d: &Direct, buf: &mut [f32], chans: &[f32], g: &Plane2, clear: bool) {
                d.fill_body(buf, chans, g, clear)
            }
            if super::cpu::avx512vl() {
                // SAFETY: the CPU has the features (checked just above).
                return unsafe { wide(self, buf, chans, g, clear) };
            }
            if super::cpu::avx2_fma() {
                // SAFETY: as above.
                return unsafe { avx2(self, buf, chans, g, clear) };
            }
        }
        self.fill_body(buf, chans, g, clear)
    }

    #[inline(always)]
    fn fill_body(&self, buf: &mut [f32], chans: &[f32], g: &Plane2, clear: bool) {
        let (sw, pw) = (g.sw, g.pw);
        for (chan, dst) in chans.chunks_exact(g.h * g.w).zip(buf.chunks_exact_mut(self.chan_pitch)) {
            if clear {
                dst.fill(0.0);
            }
            for (line, row) in chan.chunks_exact(g.w).zip(dst[g.ph * self.row_pitch..].chunks_exact_mut(self.row_pitch)) {
                if sw == 1 {
                    // Short rows: one `memcpy` beats `copy_run`'s scalar tail.
                    if g.w >= 32 {
                        copy_run(&mut row[pw..pw + g.w], line);
                    } else {
                        row[pw..pw + g.w].copy_from_slice(line);
                    }
                } else if sw == 2 {
                    // Input column i sits at padded column i + pw: phase (i + pw) % 2, index
                    // (i + pw) / 2; a pass over column pairs (vectorized shuffles).
                    let a0 = (pw % 2) * self.phase + pw / 2;
                    let pairs = line.chunks_exact(2);
                    if let [last] = pairs.remainder() {
                        row[a0 + g.w / 2] = *last;
                    }
                    let (lo, hi) = row.split_at_mut(self.phase);
                    let (ea, eb) = if pw % 2 == 0 { (&mut lo[pw / 2..], &mut hi[pw.div_ceil(2)..]) } else { (&mut hi[pw / 2..], &mut lo[pw.div_ceil(2)..]) };
                    for ((x, y), pair) in ea.iter_mut().zip(eb.iter_mut()).zip(pairs) {
                        (*x, *y) = (pair[0], pair[1]);
                    }
                } else {
                    for p in 0..sw {
                        // First input column of phase p: the smallest i with (i + pw) % sw == p.
                        let i0 = (p + sw - pw % sw) % sw;
                        let at = p * self.phase + (i0 + pw) / sw;
                        for (d, &v) in row[at..(p + 1) * self.phase].iter_mut().zip(line.iter().skip(i0).step_by(sw)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// A raw output pointer shared by the threads of [`conv_direct`]; each writes its own planes.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the threads write disjoint output planes (see the callers).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

thread_local! {
    /// Per-thread padded copy of one depthwise plane (reused between calls).
    static DIRECT_PLANE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// f32 2-D convolution through [`Direct`] on AVX2+FMA CPUs, into a new output; `None` when
/// the CPU lacks them or the shape is not one this path is for.
fn conv_direct(src: &[f32], wdata: &[f32], bias: Option<&[f32]>, s: &ConvShape, act: Act) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    {
        let depthwise = s.cg == 1 && s.mg == 1;
        let small = s.group == 1 && s.cg * s.kk <= DIRECT_MAX_DEPTH && !s.pointwise();
        if !(depthwise || small) || s.p_out == 0 || src.len() != s.n * s.c * s.plane {
            return None;
        }
        if !super::cpu::avx2_fma() {
            return None;
        }
        let g = &Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo)?;
        // Every element is written by exactly one tile below before `assume_init`: items
        // cover every (image, channel) plane, tiles every row and column of a plane.
        let mut out = Box::<[f32]>::new_uninit_slice(s.n * s.m * s.p_out);
        let wide = super::cpu::avx512vl();
        let d = Direct::new(g);
        let (lo, hi, fused) = match act {
            Act::None => (f32::NEG_INFINITY, f32::INFINITY, true),
            Act::Relu => (0.0, f32::INFINITY, true),
            Act::Clip(lo, hi) => (lo, hi, true),
            _ => (f32::NEG_INFINITY, f32::INFINITY, false),
        };
        let ck = s.cg * s.kk;
        let p_out = s.p_out;
        let optr = OutPtr(out.as_mut_ptr().cast::<f32>());
        let flops = 2 * s.n * s.m * p_out * ck;
        if depthwise && wide && s.kk == 9 && dw_unpadded(g) {
            let plane = s.plane;
            let zero = vec![0.0f32; g.w];
            let masks = dw_masks(g);
            // Items: (image, channel) planes read in place (no padded copy).
            super::par::for_ranges_min(s.n * s.m, 1, flops * 4, super::par::MIN_PARALLEL_WORK / 4, |r| {
                for item in r {
                    let ch = item % s.m;
                    let bv = bias.map_or(0.0, |b| b[ch]);
                    // SAFETY: plane `item` of the output (in bounds: item < n*m) is written by
                    // this item only; the kernel reads plane `item` of `src` (length checked
                    // above) and nothing outside it (masked loads at its edges).
                    unsafe {
                        let o = optr.at(item * p_out);
                        let a = DwPlane { inp: src.as_ptr().add(item * plane), zero: zero.as_ptr(), masks: &masks, g, y_begin: 0, y_end: g.oh, w: &wdata[ch * 9..][..9], bias: bv, lo, hi, out: o };
                        dw_plane_avx512(&a);
                        if !fused {
                            act.apply(std::slice::from_raw_parts_mut(o, p_out));
                        }
                    }
                }
            });
            // SAFETY: every element was written (see above).
            return Some(unsafe { out.assume_init() }.into_vec());
        }
        if depthwise {
            let plane = s.plane;
            // Items: (image, channel) planes, each padded into the thread's own buffer.
            // A depthwise flop costs ~4 of a GEMM flop (loads, copies): scale to `par`'s unit.
            // Split from 1/4 of the usual threshold (pieces of ~9 µs): a spinning pool thread
            // takes a piece in well under 1 µs (mobilenet's 14x14 and 7x7 layers, 65-90 µs).
            super::par::for_ranges_min(s.n * s.m, 1, flops * 4, super::par::MIN_PARALLEL_WORK / 4, |r| {
                DIRECT_PLANE.with(|cell| {
                    let mut buf = cell.take();
                    let first = r.start;
                    for item in r {
                        let ch = item % s.m;
                        // Padding zeroed once per range: every plane has the same geometry.
                        d.fill(&mut buf, &src[item * plane..][..plane], g, item == first);
                        let bv = bias.map_or(0.0, |b| b[ch]);
                        // SAFETY: plane `item` of the output (in bounds: item < n*m) is written by
                        // this item only; the kernel reads `buf` within the padded geometry.
                        unsafe {
                            let o = optr.at(item * p_out);
                            direct_rows(wide, true, buf.as_ptr(), &d, g, 1, &wdata[ch * s.kk..], s.kk, 1, &[bv], lo, hi, o, p_out);
                            if !fused {
                                act.apply(std::slice::from_raw_parts_mut(o, p_out));
                            }
                        }
                    }
                    cell.replace(buf);
                })
            });
            // SAFETY: every element was written (see above).
            return Some(unsafe { out.assume_init() }.into_vec());
        }
        let mr = if wide { 8 } else { 4 };
        let blocks = s.m.div_ceil(mr);
        // Unpadded stride-1 input whose rows are already the copy's rows (and whose last
        // tile reads no further than its last column): read in place (mnist's 3x3 layer).
        let in_place = g.sw == 1 && d.row_pitch == g.w && d.chan_pitch == g.h * g.w && g.ow % 8 == 0;
        let mut copy = Vec::new();
        if !in_place {
            d.fill(&mut copy, src, g, true);
        }
        let bias_all: Vec<f32> = bias.map_or_else(|| vec![0.0; s.m], |b| b.to_vec());
        let buf: &[f32] = if in_place { src } else { &copy };
        // From 1/32 of the usual threshold while the pool polls (mnist_cnn's first conv at
        // batch 1, 0.4 MFLOP, 8 µs: each thread 2 of its 4 blocks of 8 channels).
        super::par::for_ranges_polling(s.n * blocks, 1, flops, super::par::MIN_PARALLEL_WORK / 32, |r| {
            for item in r {
                let (b, m0) = (item / blocks, item % blocks * mr);
                let rows = mr.min(s.m - m0);
                // SAFETY: item (b, m0) writes output planes m0..m0+rows of image b only; the
                // kernel reads image b's channels of `buf` within the padded geometry.
                unsafe {
                    let o = optr.at((b * s.m + m0) * p_out);
                    let inp = buf.as_ptr().add(b * s.c * d.chan_pitch);
                    direct_rows(wide, false, inp, &d, g, s.cg, &wdata[m0 * ck..], ck, rows, &bias_all[m0..m0 + rows], lo, hi, o, p_out);
                    if !fused {
                        act.apply(std::slice::from_raw_parts_mut(o, rows * p_out));
                    }
                }
            }
        });
        // SAFETY: every element was written (see above).
        Some(unsafe { out.assume_init() }.into_vec())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, wdata, bias, s, act);
        None
    }
}

/// Picks the kernel width: AVX-512VL (32 registers: 8 channels x 3 vectors per tile) or AVX2.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn direct_rows(
    wide: bool, depthwise: bool, inp: *const f32, d: &Direct, g: &Plane2, cg: usize, w: &[f32], ck: usize, rows: usize,
    bias: &[f32], lo: f32, hi: f32, out: *mut f32, p_out: usize,
) {
    let a = DirectArgs { inp, d, g, cg, w, ck, rows, bias, lo, hi, out, p_out };
    if depthwise && (g.kh, g.kw, g.dh, g.dw) == (3, 3, 1, 1) && g.sh <= 2 {
        return match (g.sh, wide) {
            (1, true) => dw3_avx512::<1>(&a),
            (1, false) => dw3_avx2::<1>(&a),
            (_, true) => dw3_avx512::<2>(&a),
            (_, false) => dw3_avx2::<2>(&a),
        };
    }
    match (depthwise, wide) {
        (true, true) => direct_avx512::<1, 4>(&a),
        (true, false) => direct_avx2::<1, 4>(&a),
        (false, true) => direct_avx512::<8, 3>(&a),
        (false, false) => direct_avx2::<4, 3>(&a),
    }
}

#[derive(Clone, Copy)]
struct DirectArgs<'a> {
    inp: *const f32,
    d: &'a Direct,
    g: &'a Plane2,
    cg: usize,
    /// Weights of the tile's first output channel; channel r's are `ck` floats further.
    w: &'a [f32],
    ck: usize,
    rows: usize,
    bias: &'a [f32],
    lo: f32,
    hi: f32,
    out: *mut f32,
    p_out: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dw3_avx2<const SH: usize>(a: &DirectArgs) {
    dw3_body::<SH, 2, 2>(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn dw3_avx512<const SH: usize>(a: &DirectArgs) {
    dw3_body::<SH, 4, 2>(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn direct_avx2<const MR: usize, const NV: usize>(a: &DirectArgs) {
    direct_body::<MR, NV>(a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn direct_avx512<const MR: usize, const NV: usize>(a: &DirectArgs) {
    direct_body::<MR, NV>(a)
}

/// Every output row of `a.rows` (<= MR) channels, in tiles of NV vectors, the row's tail
/// with fewer vectors (the last one stored masked).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn direct_body<const MR: usize, const NV: usize>(a: &DirectArgs) {
    let g = a.g;
    let full = g.ow / (8 * NV);
    for oy in 0..g.oh {
        let row_in = a.inp.add(oy * g.sh * a.d.row_pitch);
        let row_out = a.out.add(oy * g.ow);
        for t in 0..full {
            let x0 = t * 8 * NV;
            direct_tile::<MR, NV>(a, row_in.add(x0), row_out.add(x0), 8);
        }
        let x0 = full * 8 * NV;
        let rest = g.ow - x0;
        if rest > 0 {
            let (nv, last) = (rest.div_ceil(8), rest - (rest - 1) / 8 * 8);
            let (pi, po) = (row_in.add(x0), row_out.add(x0));
            match nv {
                1 => direct_tile::<MR, 1>(a, pi, po, last),
                2 => direct_tile::<MR, 2>(a, pi, po, last),
                3 => direct_tile::<MR, 3>(a, pi, po, last),
                _ => direct_tile::<MR, 4>(a, pi, po, last),
            }
        }
    }
}

/// Depthwise 3x3 (dilation 1, stride `SH` down and any stride across, through the phase
/// split) for one channel: tiles of `R` output rows x `NV` vectors, each padded input row
/// loaded once per tile and multiplied into every output row of the tile that reads it
/// (stride 1: `R + 2` rows of loads for `R` rows of output instead of `3R`), the nine taps
/// held in registers; bias and clamp before the single store.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dw3_body<const SH: usize, const R: usize, const NV: usize>(a: &DirectArgs) {
    let g = a.g;
    let mut oy = 0;
    while oy + R <= g.oh {
        dw3_rows::<SH, R, NV>(a, oy);
        oy += R;
    }
    // The last rows: tiles as tall as what is left (one-row tiles would chain all nine
    // multiply-adds of each output vector).
    match g.oh - oy {
        0 => {}
        1 => dw3_rows::<SH, 1, NV>(a, oy),
        2 => dw3_rows::<SH, 2, NV>(a, oy),
        3 => dw3_rows::<SH, 3, NV>(a, oy),
        _ => unreachable!("tiles are at most 4 rows"),
    }
}

/// Output rows `oy..oy + R` of a [`dw3_body`], in tiles of `NV` vectors across.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dw3_rows<const SH: usize, const R: usize, const NV: usize>(a: &DirectArgs, oy: usize) {
    let g = a.g;
    let row_in = a.inp.add(oy * SH * a.d.row_pitch);
    let row_out = a.out.add(oy * g.ow);
    let mut x0 = 0;
    while x0 < g.ow {
        let rest = g.ow - x0;
        let (pi, po) = (row_in.add(x0), row_out.add(x0));
        if rest >= 8 * NV {
            dw3_tile::<SH, R, NV>(a, pi, po, 8);
            x0 += 8 * NV;
        } else {
            let last = rest - (rest - 1) / 8 * 8;
            match rest.div_ceil(8) {
                1 => dw3_tile::<SH, R, 1>(a, pi, po, last),
                _ => dw3_tile::<SH, R, 2>(a, pi, po, last),
            }
            x0 = g.ow;
        }
    }
}

/// Input row `IR` of a [`dw3_tile`]: its three column taps into the output rows reading it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dw3_row<const SH: usize, const R: usize, const NV: usize, const IR: usize>(
    acc: &mut [[std::arch::x86_64::__m256; NV]; R], w: &[std::arch::x86_64::__m256; 9], p: *const f32, cols: &[usize; 3],
) {
    use std::arch::x86_64::*;
    if IR >= (R - 1) * SH + 3 {
        return;
    }
    for (kx, &col) in cols.iter().enumerate() {
        let mut xv = [_mm256_setzero_ps(); NV];
        for (v, x) in xv.iter_mut().enumerate() {
            *x = _mm256_loadu_ps(p.add(col + 8 * v));
        }
        for ky in 0..3 {
            if IR >= ky && (IR - ky).is_multiple_of(SH) && (IR - ky) / SH < R {
                let j = (IR - ky) / SH;
                for v in 0..NV {
                    acc[j][v] = _mm256_fmadd_ps(w[ky * 3 + kx], xv[v], acc[j][v]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dw3_tile<const SH: usize, const R: usize, const NV: usize>(a: &DirectArgs, inp: *const f32, out: *mut f32, last: usize) {
    use std::arch::x86_64::*;
    // (Loops, not `array::from_fn`: that stayed a call per tile, its arrays in memory.)
    let mut w = [_mm256_setzero_ps(); 9];
    for (wv, &x) in w.iter_mut().zip(&a.w[..9]) {
        *wv = _mm256_set1_ps(x);
    }
    let bv = _mm256_set1_ps(a.bias[0]);
    let mut acc = [[bv; NV]; R];
    // Tap kx of the phase-split row: offset within the row (row part of `taps` removed).
    let cols = [a.d.taps[0], a.d.taps[1], a.d.taps[2]];
    // Input rows 0..(R - 1) * SH + 3 as constants, so every accumulator index is one.
    macro_rules! rows {
        ($($ir:literal)*) => { $( dw3_row::<SH, R, NV, $ir>(&mut acc, &w, inp.add($ir * a.d.row_pitch), &cols); )* };
    }
    rows!(0 1 2 3 4 5 6 7 8 9 10);
    let (lo, hi) = (_mm256_set1_ps(a.lo), _mm256_set1_ps(a.hi));
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(last as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (j, acc_j) in acc.iter().enumerate() {
        let o = out.add(j * a.g.ow);
        for (v, &x) in acc_j.iter().enumerate() {
            let y = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
            if v + 1 < NV || last == 8 {
                _mm256_storeu_ps(o.add(8 * v), y);
            } else {
                _mm256_maskstore_ps(o.add(8 * v), mask, y);
            }
        }
    }
}

/// One channel of a depthwise 3x3 convolution (dilation 1, stride `S` both ways, `S` in
/// 1..=2, any begin pads) read straight from its unpadded input plane: no padded copy.
/// Taps that fall outside the plane read zero: rows outside it from a row of zeros, columns
/// at the plane's edges through masked loads (tiles wholly inside use plain loads). Stride 2
/// splits each 16-float load into even and odd columns with one permute. Replaces the
/// padded, phase-split copy ([`Direct::fill`]) on AVX-512 CPUs; the others keep it.
#[derive(Clone, Copy)]
struct DwPlane<'a> {
    inp: *const f32,
    /// A row of `g.w` zeros, read in place of rows outside the plane.
    zero: *const f32,
    /// Per output vector (8 columns) of a row, plus three: the load masks of its taps
    /// ([`dw_masks`]).
    masks: &'a [[u32; 3]],
    g: &'a Plane2,
    /// The output rows computed, `out` pointing at the first.
    y_begin: usize,
    y_end: usize,
    /// The channel's nine taps, row-major.
    w: &'a [f32],
    bias: f32,
    lo: f32,
    hi: f32,
    out: *mut f32,
}

/// Whether [`dw_plane_avx512`] computes this depthwise geometry.
fn dw_unpadded(g: &Plane2) -> bool {
    (g.kh, g.kw, g.dh, g.dw) == (3, 3, 1, 1) && g.sh == g.sw && (1..=2).contains(&g.sh) && g.ph <= 2 && g.pw <= 2
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn dw_plane_avx512(a: &DwPlane) {
    if dw_rows_whole(a.g) {
        // 14x14 and 7x7 planes (stride 1, pads 1): whole rows, one vector each.
        dwr_body(a)
    } else if a.g.sh == 1 && (a.y_end - a.y_begin).is_multiple_of(7) && a.g.ow <= 16 {
        // 7x7 and 14x14 planes: whole 7-row tiles.
        dwu_body::<1, 7, 2>(a)
    } else if a.g.sh == 1 && a.g.ow < 48 {
        // 28 columns: 16 + 12 (3-vector tiles: 24 + a 4-column tail).
        dwu_body::<1, 4, 2>(a)
    } else if a.g.sh == 1 {
        // Tiles of 3 vectors: 12 independent accumulator chains (112x112: 117 -> 114 us,
        // 56x56 x 128: 128 -> 121).
        dwu_body::<1, 4, 3>(a)
    } else if a.g.ow > 8 {
        // Stride 2, 16-float vectors (in-process A/B, 1 thread, same outputs bit for bit:
        // 64 x 112: 116 -> 108 us, 128 x 56: 74 -> 54, 256 x 28: 43 -> 38).
        dwv_body::<4, 2>(a)
    } else {
        // 7 columns (14x14 inputs): one masked 16-float vector wasted half its lanes
        // (29 -> 37-41 us); the 8-float kernel stays.
        dwu_body::<2, 4, 3>(a)
    }
}

/// Stride-2 depthwise 3x3 in 16-float (zmm) output vectors: tiles of `R` output rows x `NV`
/// vectors, the last rows and columns as in [`dwu_body`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwv_body<const R: usize, const NV: usize>(a: &DwPlane) {
    let oh = a.y_end;
    let mut oy = a.y_begin;
    while oy + R <= oh {
        dwv_rows::<R, NV>(a, oy);
        oy += R;
    }
    match oh - oy {
        0 => {}
        1 => dwv_rows::<1, NV>(a, oy),
        2 => dwv_rows::<2, NV>(a, oy),
        3 => dwv_rows::<3, NV>(a, oy),
        _ => unreachable!("tiles are at most 4 rows"),
    }
}

/// Output rows `oy..oy + R` of a [`dwv_body`], in tiles of `NV` 16-float vectors across.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwv_rows<const R: usize, const NV: usize>(a: &DwPlane, oy: usize) {
    let g = a.g;
    let y0 = (oy * 2) as isize - g.ph as isize;
    let out = a.out.add((oy - a.y_begin) * g.ow);
    let (w, pw) = (g.w as isize, g.pw as isize);
    let mut x0 = 0;
    while x0 < g.ow {
        let rest = g.ow - x0;
        let c0 = (2 * x0) as isize - pw;
        let o = out.add(x0);
        if rest >= 16 * NV {
            if c0 >= 0 && c0 + (32 * NV) as isize <= w {
                dwv_tile::<R, NV, false>(a, y0, c0, o, 16);
            } else {
                dwv_tile::<R, NV, true>(a, y0, c0, o, 16);
            }
            x0 += 16 * NV;
        } else {
            let last = rest - (rest - 1) / 16 * 16;
            match rest.div_ceil(16) {
                1 => dwv_tile::<R, 1, true>(a, y0, c0, o, last),
                2 => dwv_tile::<R, 2, true>(a, y0, c0, o, last),
                3 => dwv_tile::<R, 3, true>(a, y0, c0, o, last),
                _ => dwv_tile::<R, 4, true>(a, y0, c0, o, last),
            }
            x0 = g.ow;
        }
    }
}

/// One stride-2 tile: output rows `R` x `NV` 16-float vectors (the last one `last` <= 16
/// wide). Per input row and vector: two loads (columns `c..c + 32`), the even and odd
/// columns (taps kx 0 and 1) by one `vpermt2ps` each, tap kx 2 (the even columns from
/// `c + 2`) by shifting the even vector one lane with the next vector's first column.
/// The multiply-adds of each output lane in the order of [`dwu_tile`]: same sums.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwv_tile<const R: usize, const NV: usize, const MASKED: bool>(
    a: &DwPlane, y0: isize, c0: isize, out: *mut f32, last: usize,
) {
    use std::arch::x86_64::*;
    let g = a.g;
    let mut wv = [_mm512_setzero_ps(); 9];
    for (v, &x) in wv.iter_mut().zip(&a.w[..9]) {
        *v = _mm512_set1_ps(x);
    }
    let bv = _mm512_set1_ps(a.bias);
    let mut acc = [[bv; NV]; R];
    let (h, w) = (g.h as isize, g.w as isize);
    // Load masks: two 16-lane loads per vector, then the first column after the tile.
    let mut masks = [0u16; 9];
    for (k, m) in masks.iter_mut().enumerate().take(2 * NV) {
        *m = if MASKED { col_mask(c0 + 16 * k as isize, 16, w) as u16 } else { 0xffff };
    }
    let m_end = col_mask(c0 + (32 * NV) as isize, 1, w) as u16;
    let ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    macro_rules! rows {
        ($($ir:literal)*) => { $(
            if $ir < (R - 1) * 2 + 3 {
                let y = y0 + $ir;
                let p = if y >= 0 && y < h { a.inp.wrapping_offset(y * w) } else { a.zero };
                let mut ev = [_mm512_setzero_ps(); NV];
                let mut od = [_mm512_setzero_ps(); NV];
                for v in 0..NV {
                    let c = c0 + (32 * v) as isize;
                    let (x, z) = if MASKED {
                        (_mm512_maskz_loadu_ps(masks[2 * v], p.wrapping_offset(c)), _mm512_maskz_loadu_ps(masks[2 * v + 1], p.wrapping_offset(c + 16)))
                    } else {
                        (_mm512_loadu_ps(p.offset(c)), _mm512_loadu_ps(p.offset(c + 16)))
                    };
                    ev[v] = _mm512_permutex2var_ps(x, ie, z);
                    od[v] = _mm512_permutex2var_ps(x, io, z);
                }
                let tail = _mm512_maskz_loadu_ps(m_end, p.wrapping_offset(c0 + (32 * NV) as isize));
                for v in 0..NV {
                    let next = if v + 1 < NV { ev[v + 1] } else { tail };
                    let t = [ev[v], od[v], _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(_mm512_castps_si512(next), _mm512_castps_si512(ev[v])))];
                    for ky in 0..3 {
                        if $ir >= ky && ($ir - ky) % 2 == 0 && ($ir - ky) / 2 < R {
                            let j = ($ir - ky) / 2;
                            for kx in 0..3 {
                                acc[j][v] = _mm512_fmadd_ps(wv[ky * 3 + kx], t[kx], acc[j][v]);
                            }
                        }
                    }
                }
            }
        )* };
    }
    rows!(0 1 2 3 4 5 6 7 8);
    let (lo, hi) = (_mm512_set1_ps(a.lo), _mm512_set1_ps(a.hi));
    let mask = ((1u32 << last) - 1) as u16;
    for (j, acc_j) in acc.iter().enumerate() {
        let o = out.add(j * g.ow);
        for (v, &x) in acc_j.iter().enumerate() {
            let y = _mm512_min_ps(hi, _mm512_max_ps(lo, x));
            if v + 1 < NV || last == 16 {
                _mm512_storeu_ps(o.add(16 * v), y);
            } else {
                _mm512_mask_storeu_ps(o.add(16 * v), mask, y);
            }
        }
    }
}

/// Whether [`dwr_body`] computes this depthwise geometry: stride 1, pads 1 all round (the
/// output as large as the input), rows of at most 16 columns (mobilenet's 14x14 and 7x7).
fn dw_rows_whole(g: &Plane2) -> bool {
    dw_unpadded(g) && g.sh == 1 && g.ph == 1 && g.pw == 1 && g.oh == g.h && g.ow == g.w && g.w <= 16
}

/// Stride-1 3x3 depthwise (pads 1) of one channel whose rows fit one vector: each output row
/// one vector (16 floats for rows of 9-16 columns, 8 for up to 8), each input row loaded
/// once, straight from the unpadded plane, its taps kx 0 and 2 made by shifting it one lane
/// (`vpermps` with the lanes of the plane's edge columns zeroed by the mask); tiles of 7
/// output rows. In-process A/B against `dwu_body` (1 thread, `conv_act`, same outputs bit
/// for bit): 512 x 14x14 44 -> 33 us, 1024 x 7x7 35 -> 30.6 us. Whole rows of 7 two to a
/// 16-float vector measured slower (39 us: 49 of 64 lanes), as did two channels at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
#[inline(never)]
unsafe fn dwr_body(a: &DwPlane) {
    let mut y = a.y_begin;
    while y < a.y_end {
        let t = (a.y_end - y).min(7);
        match (a.g.w > 8, t) {
            (true, 1) => dwr16_tile::<1>(a, y),
            (true, 2) => dwr16_tile::<2>(a, y),
            (true, 3) => dwr16_tile::<3>(a, y),
            (true, 4) => dwr16_tile::<4>(a, y),
            (true, 5) => dwr16_tile::<5>(a, y),
            (true, 6) => dwr16_tile::<6>(a, y),
            (true, _) => dwr16_tile::<7>(a, y),
            (false, 1) => dwr8_tile::<1>(a, y),
            (false, 2) => dwr8_tile::<2>(a, y),
            (false, 3) => dwr8_tile::<3>(a, y),
            (false, 4) => dwr8_tile::<4>(a, y),
            (false, 5) => dwr8_tile::<5>(a, y),
            (false, 6) => dwr8_tile::<6>(a, y),
            (false, _) => dwr8_tile::<7>(a, y),
        }
        y += t;
    }
}

/// Output rows `y..y + T` of a [`dwr_body`] in 16-float vectors: input rows `y - 1..y + T + 1`
/// each loaded and shifted once and multiplied into the output rows that read it, so each
/// output takes bias, then its taps row by row (ky) and column by column (kx): the sums of
/// [`dwu_tile`] in its order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwr16_tile<const T: usize>(a: &DwPlane, y: usize) {
    use std::arch::x86_64::*;
    let g = a.g;
    let (w, h) = (g.w as isize, g.h as isize);
    let mut wv = [_mm512_setzero_ps(); 9];
    for (v, &x) in wv.iter_mut().zip(&a.w[..9]) {
        *v = _mm512_set1_ps(x);
    }
    let il = _mm512_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
    let ir = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 15);
    // The row's lanes; those whose left (kx 0) and right (kx 2) neighbours are in the row.
    let full = ((1u32 << g.w) - 1) as u16;
    let (ml, mr) = (full & !1, full >> 1);
    let mut acc = [_mm512_set1_ps(a.bias); T];
    for d in 0..T + 2 {
        // Rows outside the plane read zero (an empty mask).
        let r = (y + d) as isize - 1;
        let m = if r >= 0 && r < h { full } else { 0 };
        let v = _mm512_maskz_loadu_ps(m, a.inp.wrapping_offset(r * w));
        let t3 = [_mm512_maskz_permutexvar_ps(ml, il, v), v, _mm512_maskz_permutexvar_ps(mr, ir, v)];
        for ky in 0..3 {
            if d >= ky && d - ky < T {
                for kx in 0..3 {
                    acc[d - ky] = _mm512_fmadd_ps(wv[ky * 3 + kx], t3[kx], acc[d - ky]);
                }
            }
        }
    }
    // max(lo, x) then min(hi, x), in this operand order so NaN passes through.
    let (lo, hi) = (_mm512_set1_ps(a.lo), _mm512_set1_ps(a.hi));
    for (t, &x) in acc.iter().enumerate() {
        let o = a.out.add((y + t - a.y_begin) * g.w);
        _mm512_mask_storeu_ps(o, full, _mm512_min_ps(hi, _mm512_max_ps(lo, x)));
    }
}

/// [`dwr16_tile`] in 8-float vectors (rows of at most 8 columns).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwr8_tile<const T: usize>(a: &DwPlane, y: usize) {
    use std::arch::x86_64::*;
    let g = a.g;
    let (w, h) = (g.w as isize, g.h as isize);
    let mut wv = [_mm256_setzero_ps(); 9];
    for (v, &x) in wv.iter_mut().zip(&a.w[..9]) {
        *v = _mm256_set1_ps(x);
    }
    let il = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
    let ir = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    let full = ((1u32 << g.w) - 1) as u8;
    let (ml, mr) = (full & !1, full >> 1);
    let mut acc = [_mm256_set1_ps(a.bias); T];
    for d in 0..T + 2 {
        let r = (y + d) as isize - 1;
        let m = if r >= 0 && r < h { full } else { 0 };
        let v = _mm256_maskz_loadu_ps(m, a.inp.wrapping_offset(r * w));
        let t3 = [_mm256_maskz_permutexvar_ps(ml, il, v), v, _mm256_maskz_permutexvar_ps(mr, ir, v)];
        for ky in 0..3 {
            if d >= ky && d - ky < T {
                for kx in 0..3 {
                    acc[d - ky] = _mm256_fmadd_ps(wv[ky * 3 + kx], t3[kx], acc[d - ky]);
                }
            }
        }
    }
    // max(lo, x) then min(hi, x), in this operand order so NaN passes through.
    let (lo, hi) = (_mm256_set1_ps(a.lo), _mm256_set1_ps(a.hi));
    for (t, &x) in acc.iter().enumerate() {
        let o = a.out.add((y + t - a.y_begin) * g.w);
        _mm256_mask_storeu_ps(o, full, _mm256_min_ps(hi, _mm256_max_ps(lo, x)));
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwu_body<const S: usize, const R: usize, const NV: usize>(a: &DwPlane) {
    let oh = a.y_end;
    let mut oy = a.y_begin;
    while oy + R <= oh {
        dwu_rows::<S, R, NV>(a, oy);
        oy += R;
    }
    while oy + 4 <= oh {
        dwu_rows::<S, 4, NV>(a, oy);
        oy += 4;
    }
    match oh - oy {
        0 => {}
        1 => dwu_rows::<S, 1, NV>(a, oy),
        2 => dwu_rows::<S, 2, NV>(a, oy),
        3 => dwu_rows::<S, 3, NV>(a, oy),
        _ => unreachable!("tiles are at most 4 rows"),
    }
}

/// Output rows `oy..oy + R` of a [`dwu_body`], in tiles of `NV` 8-float vectors across;
/// tiles whose input columns all lie inside the plane load without masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwu_rows<const S: usize, const R: usize, const NV: usize>(a: &DwPlane, oy: usize) {
    let g = a.g;
    let y0 = (oy * S) as isize - g.ph as isize;
    let out = a.out.add((oy - a.y_begin) * g.ow);
    let (w, pw) = (g.w as isize, g.pw as isize);
    let mut x0 = 0;
    while x0 < g.ow {
        let rest = g.ow - x0;
        // First input column of the tile and the columns its loads span.
        let c0 = (S * x0) as isize - pw;
        let o = out.add(x0);
        if rest >= 8 * NV {
            if c0 >= 0 && c0 + (S * 8 * NV + 2) as isize <= w {
                dwu_tile::<S, R, NV, false>(a, y0, c0, o, 8);
            } else {
                dwu_tile::<S, R, NV, true>(a, y0, c0, o, 8);
            }
            x0 += 8 * NV;
        } else {
            let last = rest - (rest - 1) / 8 * 8;
            match rest.div_ceil(8) {
                1 => dwu_tile::<S, R, 1, true>(a, y0, c0, o, last),
                2 => dwu_tile::<S, R, 2, true>(a, y0, c0, o, last),
                3 => dwu_tile::<S, R, 3, true>(a, y0, c0, o, last),
                _ => dwu_tile::<S, R, 4, true>(a, y0, c0, o, last),
            }
            x0 = g.ow;
        }
    }
}

/// The load masks of [`dwu_taps`] for each 8-column output vector of a row (three more than
/// the row has, for a tail tile of up to 4 vectors): stride 1, 8 lanes at column `c + kx`; stride
/// 2, 16 lanes at `c` and `c + 2` (`c` the vector's first input column).
fn dw_masks(g: &Plane2) -> Vec<[u32; 3]> {
    let (s, w) = (g.sw as isize, g.w as isize);
    (0..g.ow.div_ceil(8) + 3)
        .map(|k| {
            let c = 8 * s * k as isize - g.pw as isize;
            [0, 1, 2].map(|kx| col_mask(c + kx, 8 * s, w))
        })
        .collect()
}

/// Lanes `j < n` of a load at column `c` whose column `c + j` lies in `0..w`, as a mask.
#[inline(always)]
fn col_mask(c: isize, n: isize, w: isize) -> u32 {
    let lo = (-c).clamp(0, n);
    let hi = (w - c).clamp(0, n);
    if hi <= lo {
        0
    } else {
        (((1u64 << hi) - 1) & !((1u64 << lo) - 1)) as u32
    }
}

/// The three column taps (kx = 0, 1, 2) of one output vector of a tile from input row `p`,
/// its loads at column `c` (and `c + 1`, `c + 2`), masked by `m` when `MASKED`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwu_taps<const S: usize, const MASKED: bool>(p: *const f32, c: isize, m: &[u32; 3]) -> [std::arch::x86_64::__m256; 3] {
    use std::arch::x86_64::*;
    if S == 1 {
        let mut t = [_mm256_setzero_ps(); 3];
        for (kx, tv) in t.iter_mut().enumerate() {
            let ck = c + kx as isize;
            *tv = if MASKED { _mm256_maskz_loadu_ps(m[kx] as u8, p.wrapping_offset(ck)) } else { _mm256_loadu_ps(p.offset(ck)) };
        }
        t
    } else {
        // Columns c + 2l (kx 0) and c + 2l + 1 (kx 1) from one load at c, c + 2 + 2l (kx 2)
        // from one at c + 2: even lanes to the low half, odd to the high half.
        let idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
        let (x, y) = if MASKED {
            (
                _mm512_maskz_loadu_ps(m[0] as u16, p.wrapping_offset(c)),
                _mm512_maskz_loadu_ps(m[2] as u16, p.wrapping_offset(c + 2)),
            )
        } else {
            (_mm512_loadu_ps(p.offset(c)), _mm512_loadu_ps(p.offset(c + 2)))
        };
        let x = _mm512_permutexvar_ps(idx, x);
        let y = _mm512_permutexvar_ps(idx, y);
        [
            _mm512_castps512_ps256(x),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x))),
            _mm512_castps512_ps256(y),
        ]
    }
}

/// One tile: output rows `R` x `NV` vectors (the last one `last` <= 8 wide) from input rows
/// `y0..y0 + (R - 1) * S + 3` (those outside the plane skipped) and columns from `c0` on.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dwu_tile<const S: usize, const R: usize, const NV: usize, const MASKED: bool>(
    a: &DwPlane, y0: isize, c0: isize, out: *mut f32, last: usize,
) {
    use std::arch::x86_64::*;
    let g = a.g;
    let mut wv = [_mm256_setzero_ps(); 9];
    for (v, &x) in wv.iter_mut().zip(&a.w[..9]) {
        *v = _mm256_set1_ps(x);
    }
    let bv = _mm256_set1_ps(a.bias);
    let mut acc = [[bv; NV]; R];
    let (h, w) = (g.h as isize, g.w as isize);
    // Load masks of each vector's taps, the same for every row of the tile.
    let mut masks = [[0u32; 3]; NV];
    if MASKED {
        let k0 = ((c0 + g.pw as isize) / (8 * S) as isize) as usize;
        masks.copy_from_slice(&a.masks[k0..k0 + NV]);
    }
    macro_rules! rows {
        ($($ir:literal)*) => { $(
            if $ir < (R - 1) * S + 3 {
                // Rows outside the plane read the zero row (no branch around the taps).
                let y = y0 + $ir;
                let p = if y >= 0 && y < h { a.inp.wrapping_offset(y * w) } else { a.zero };
                for v in 0..NV {
                    let t = dwu_taps::<S, MASKED>(p, c0 + (S * 8 * v) as isize, &masks[v]);
                    for ky in 0..3 {
                        if $ir >= ky && ($ir - ky) % S == 0 && ($ir - ky) / S < R {
                            let j = ($ir - ky) / S;
                            for kx in 0..3 {
                                acc[j][v] = _mm256_fmadd_ps(wv[ky * 3 + kx], t[kx], acc[j][v]);
                            }
                        }
                    }
                }
            }
        )* };
    }
    rows!(0 1 2 3 4 5 6 7 8 9 10);
    // max(lo, x) then min(hi, x), in this operand order so NaN passes through.
    let (lo, hi) = (_mm256_set1_ps(a.lo), _mm256_set1_ps(a.hi));
    let mask = ((1u32 << last) - 1) as u8;
    for (j, acc_j) in acc.iter().enumerate() {
        let o = out.add(j * g.ow);
        for (v, &x) in acc_j.iter().enumerate() {
            let y = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
            if v + 1 < NV || last == 8 {
                _mm256_storeu_ps(o.add(8 * v), y);
            } else {
                _mm256_mask_storeu_ps(o.add(8 * v), mask, y);
            }
        }
    }
}

/// One tile: `NV` vectors of output columns (the last one `last` <= 8 wide) for `a.rows`
/// channels, from `inp` (the padded input at the tile's first column) into `out`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn direct_tile<const MR: usize, const NV: usize>(a: &DirectArgs, inp: *const f32, out: *mut f32, last: usize) {
    use std::arch::x86_64::*;
    let kk = a.d.taps.len();
    let mut acc = [[_mm256_setzero_ps(); NV]; MR];
    // Rows past `a.rows` repeat the last real channel (computed, never stored).
    let mut wrow = [a.w.as_ptr(); MR];
    for (r, wr) in wrow.iter_mut().enumerate() {
        *wr = a.w.as_ptr().add(r.min(a.rows - 1) * a.ck);
    }
    for (r, acc_r) in acc.iter_mut().enumerate() {
        let bv = _mm256_set1_ps(a.bias[r.min(a.rows - 1)]);
        for v in acc_r.iter_mut() {
            *v = bv;
        }
    }
    for c in 0..a.cg {
        let base = inp.add(c * a.d.chan_pitch);
        for (t, &off) in a.d.taps.iter().enumerate() {
            let p = base.add(off);
            let mut xv = [_mm256_setzero_ps(); NV];
            for (v, x) in xv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(p.add(8 * v));
            }
            let q = c * kk + t;
            for r in 0..MR {
                let wv = _mm256_set1_ps(*wrow[r].add(q));
                for v in 0..NV {
                    acc[r][v] = _mm256_fmadd_ps(wv, xv[v], acc[r][v]);
                }
            }
        }
    }
    // max(lo, x) then min(hi, x), in this operand order so NaN passes through.
    let (lo, hi) = (_mm256_set1_ps(a.lo), _mm256_set1_ps(a.hi));
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(last as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (r, acc_r) in acc.iter().enumerate().take(a.rows) {
        let o = out.add(r * a.p_out);
        for (v, &x) in acc_r.iter().enumerate() {
            let y = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
            if v + 1 < NV || last == 8 {
                _mm256_storeu_ps(o.add(8 * v), y);
            } else {
                _mm256_maskstore_ps(o.add(8 * v), mask, y);
            }
        }
    }
}

thread_local! {
    /// Per-thread band of depthwise output rows of [`depthwise_pointwise`] (reused).
    static DW_BAND: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Floats of one band of depthwise output rows (every channel) in [`depthwise_pointwise`]:
/// 256 KB, well inside L2 while the pointwise GEMM reads it.
const DW_BAND_FLOATS: usize = 65536;

/// Twice [`DW_BAND_FLOATS`] from this many channels on: 512 KB bands. With them, mobilenet's
/// 128- and 256-channel pairs ran 5-20 µs faster each per call (in-process A/B, 1 thread, 8
/// windows of 240 calls), the 64-channel pair the same, the 32-channel pair not faster.
const DW_BAND_WIDE_FROM: usize = 64;

/// Floats between two channels of a band of `n` depthwise outputs in [`depthwise_pointwise`]:
/// `n` rounded up to whole cache lines, an odd number of them, so the GEMM's K rows (one
/// per channel) fall in different L1 sets. mobilenet's first pair (bands of 16 rows of 112:
/// 1792 floats, 112 lines) put its 32 rows in 8 of the 64 sets, 8 lines each.
fn band_stride(n: usize) -> usize {
    let lines = n.div_ceil(16);
    (lines | 1) * 16
}

/// A depthwise 3x3 convolution (`dw_w` `[C, 1, 3, 3]`, bias and activation fused) whose only
/// reader is a pointwise layer (`pw`, packed rows `[M, C, 1, 1]`), computed in bands of
/// output rows: each band's depthwise rows (every channel, read from the unpadded input)
/// go into an L2-sized scratch and the pointwise GEMM consumes them while they are hot,
/// its output rows written in place. The two layers' outputs are those of `conv_act` then
/// `conv_packed` (same sums in the same order); that pair runs instead where the band
/// kernel does not apply (no AVX-512, other geometries) and where the pointwise layer would
/// split over threads (the bands run on the calling thread).
#[allow(clippy::too_many_arguments)]
pub fn depthwise_pointwise(
    x: &ArrayD<f32>, dw_w: &ArrayD<f32>, dw_b: Option<&ArrayD<f32>>, win: &Window, dw_act: Act,
    pw: &ConvWeights, pw_b: Option<&ArrayD<f32>>, pw_act: Act,
) -> Result<ArrayD<f32>> {
    if let Some(out) = dw_pw_bands(x, dw_w, dw_b, win, dw_act, pw, pw_b, pw_act)? {
        return Ok(out);
    }
    let mid = conv_act(x, dw_w, dw_b, win, dw_w.shape()[0], dw_act)?;
    let one = Window { kernel: &[], strides: &[1, 1], dilations: &[1, 1], pads: &[0, 0, 0, 0], auto_pad: "NOTSET" };
    conv_packed(&mid, pw, pw_b, &one, pw_act)
}

/// The band loop of [`depthwise_pointwise`]; `None` where it does not apply.
#[allow(clippy::too_many_arguments)]
fn dw_pw_bands(
    x: &ArrayD<f32>, dw_w: &ArrayD<f32>, dw_b: Option<&ArrayD<f32>>, win: &Window, dw_act: Act,
    pw: &ConvWeights, pw_b: Option<&ArrayD<f32>>, pw_act: Act,
) -> Result<Option<ArrayD<f32>>> {
    #[cfg(target_arch = "x86_64")]
    {
        let (xd, wd) = (x.shape(), dw_w.shape());
        if xd.len() != 4 || wd.len() != 4 || wd[1] != 1 || wd[0] != xd[1] || pw.dims.len() != 4 || pw.dims[1] != wd[0]
            || pw.dims[2..] != [1, 1]
        {
            return Ok(None);
        }
        let ConvPacking::Rows(groups) = &pw.packed else { return Ok(None) };
        let (lo, hi) = match dw_act {
            Act::None => (f32::NEG_INFINITY, f32::INFINITY),
            Act::Relu => (0.0, f32::INFINITY),
            Act::Clip(lo, hi) => (lo, hi),
            _ => return Ok(None),
        };
        let Some(activation) = pw_act.in_epilogue() else { return Ok(None) };
        if groups.len() != 1 || !super::cpu::avx512vl() {
            return Ok(None);
        }
        let c = wd[0];
        let s = ConvShape::new(xd, wd, win, c)?;
        let Some(g) = Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo) else { return Ok(None) };
        let m = pw.dims[0];
        let p_out = s.p_out;
        if !dw_unpadded(&g) || p_out == 0 || super::par::pieces_for(2 * s.n * m * p_out * c) > 1 {
            return Ok(None);
        }
        let bias = bias_values(dw_b, c)?;
        let pbias = bias_values(pw_b, m)?;
        let xs = x.as_standard_layout();
        let wc = dw_w.as_standard_layout();
        let (Some(src), Some(wdata)) = (xs.as_slice(), wc.as_slice()) else { return Ok(None) };
        let mut out = output_buffer(s.n * m * p_out);
        let zero = vec![0.0f32; g.w];
        let masks = dw_masks(&g);
        // Rows per band: a multiple of the kernel's 4-row tiles when there are that many.
        let band_floats = if c >= DW_BAND_WIDE_FROM { 2 * DW_BAND_FLOATS } else { DW_BAND_FLOATS };
        let rb = (band_floats / (c * g.ow)).max(1);
        let rb = if rb >= 4 { rb / 4 * 4 } else { rb };
        let epi = Epilogue { bias: pbias.as_ref().map_or(Bias::None, |v| Bias::PerRow(v)), activation };
        DW_BAND.with(|cell| {
            let mut band = cell.take();
            let need = c * band_stride(rb * g.ow);
            if band.len() < need {
                band.resize(need, 0.0);
            }
            for b in 0..s.n {
                let mut y0 = 0;
                while y0 < g.oh {
                    let y1 = (y0 + rb).min(g.oh);
                    let n = (y1 - y0) * g.ow;
                    let ns = band_stride(n);
                    for ch in 0..c {
                        let a = DwPlane {
                            inp: src[(b * c + ch) * s.plane..].as_ptr(), zero: zero.as_ptr(), masks: &masks, g: &g,
                            y_begin: y0, y_end: y1, w: &wdata[ch * 9..][..9], bias: bias.as_ref().map_or(0.0, |v| v[ch]),
                            lo, hi, out: band[ch * ns..].as_mut_ptr(),
                        };
                        // SAFETY: the CPU has AVX-512F/VL (checked above); the kernel reads
                        // plane `ch` of image `b` (in bounds: `src` holds n*c planes) and writes
                        // rows y0..y1 of channel `ch` of the band (n floats at ch * ns, inside
                        // the c * band_stride(rb * ow) floats of `band`).
                        unsafe { dw_plane_avx512(&a) };
                    }
                    let bv = OperandB::View { b: &band[..c * ns], rs: ns as isize, cs: 1 };
                    sgemm_packed_a(&groups[0], n, 1.0, bv, 0.0, &mut out[b * m * p_out + y0 * g.ow..], p_out as isize, 1, &epi);
                    y0 = y1;
                }
            }
            cell.replace(band);
        });
        Ok(Some(ArrayD::from_shape_vec(IxDyn(&[s.n, m, g.oh, g.ow]), out).map_err(err2)?))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, dw_w, dw_b, win, dw_act, pw, pw_b, pw_act);
        Ok(None)
    }
}

/// ONNX `ConvTranspose`: input `[N, C, D...]`, weight `[C, M/group, K...]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose<T: Num>(
    x: &ArrayD<T>,
    w: &ArrayD<T>,
    bias: Option<&ArrayD<T>>,
    win: &Window,
    group: usize,
    output_padding: &[usize],
    output_shape: &[usize],
) -> Result<ArrayD<T>> {
    if x.ndim() < 3 || w.ndim() != x.ndim() {
        return shape_err("conv_transpose: input and weight ranks differ");
    }
    let (n, c, mg) = (x.shape()[0], x.shape()[1], w.shape()[1]);
    if group == 0 || c % group != 0 || w.shape()[0] != c {
        return shape_err("conv_transpose: channels do not match the weight");
    }
    let (cg, m) = (c / group, mg * group);
    let in_sp = x.shape()[2..].to_vec();
    let kernel = w.shape()[2..].to_vec();
    let nd = in_sp.len();
    let strides = or_ones(win.strides, nd);
    let dil = or_ones(win.dilations, nd);
    let opad = if output_padding.is_empty() { vec![0; nd] } else { output_padding.to_vec() };
    let full: Vec<usize> = (0..nd).map(|d| strides[d] * (in_sp[d] - 1) + opad[d] + (kernel[d] - 1) * dil[d] + 1).collect();
    let (mut begin, mut end) = (vec![0usize; nd], vec![0usize; nd]);
    let same = win.auto_pad == "SAME_UPPER" || win.auto_pad == "SAME_LOWER";
    let target: Vec<usize> = if !output_shape.is_empty() {
        output_shape[output_shape.len() - nd..].to_vec()
    } else if same {
        in_sp.iter().zip(&strides).map(|(i, s)| i * s).collect()
    } else {
        vec![]
    };
    if !target.is_empty() {
        for d in 0..nd {
            // A target larger than the full output leaves zeros (plus bias) at the end.
            let total = full[d].saturating_sub(target[d]);
            let half = total / 2;
            (begin[d], end[d]) = if win.auto_pad == "SAME_UPPER" { (half, total - half) } else { (total - half, half) };
        }
    } else if !win.pads.is_empty() && win.auto_pad != "VALID" {
        begin.copy_from_slice(&win.pads[..nd]);
        end.copy_from_slice(&win.pads[nd..2 * nd]);
    }
    let out_sp: Vec<usize> = if target.is_empty() {
        (0..nd).map(|d| full[d].saturating_sub(begin[d] + end[d])).collect()
    } else {
        target.clone()
    };
    let kk: usize = kernel.iter().product();
    let (p_in, p_out) = (in_sp.iter().product::<usize>(), out_sp.iter().product::<usize>());
    let xs = with_shape(x.view(), &[n * c, p_in])?.into_dimensionality::<Ix2>().map_err(err2)?;
    let w2 = with_shape(w.view(), &[c, mg * kk])?.into_dimensionality::<Ix2>().map_err(err2)?;
    let mut out = vec![T::zero(); n * m * p_out];
    let out_st = strides_of(&out_sp);
    let mut col = Array2::<T>::from_elem((mg * kk, p_in), T::zero());
    for b in 0..n {
        for g in 0..group {
            let wg = w2.slice(s![g * cg..(g + 1) * cg, ..]).reversed_axes();
            let xg = xs.slice(s![b * c + g * cg..b * c + (g + 1) * cg, ..]);
            T::gemm(T::one(), &wg, &xg, T::zero(), &mut col.view_mut());
            for (r, row) in col.rows().into_iter().enumerate() {
                let (oc, tap) = (r / kk, r % kk);
                let mut kidx = vec![0; nd];
                let mut t = tap;
                for d in (0..nd).rev() {
                    kidx[d] = t % kernel[d];
                    t /= kernel[d];
                }
                let base = (b * m + g * mg + oc) * p_out;
                let mut i = vec![0; nd];
                for &v in row.iter() {
                    let mut off = Some(base);
                    for d in 0..nd {
                        let pos = (i[d] * strides[d] + kidx[d] * dil[d]) as isize - begin[d] as isize;
                        off = match off {
                            Some(o) if pos >= 0 && (pos as usize) < out_sp[d] => Some(o + pos as usize * out_st[d]),
                            _ => None,
                        };
                    }
                    if let Some(o) = off {
                        out[o] = out[o].add(v);
                    }
                    next_index(&mut i, &in_sp);
                }
            }
        }
    }
    let mut dims = vec![n, m];
    dims.extend_from_slice(&out_sp);
    let mut y = ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(err2)?;
    if let Some(bias) = bias {
        for (mut ch, &bv) in y.axis_iter_mut(ndarray::Axis(1)).zip(bias.iter()) {
            ch.mapv_inplace(|v| v.add(bv));
        }
    }
    Ok(y)
}

/// ONNX `Col2Im`: sums the columns `[N, C * prod(block), L]` back into images `[N, C, image...]`.
pub fn col2im<T: Num>(
    x: &ArrayD<T>,
    image: &[i64],
    block: &[i64],
    strides: &[usize],
    dilations: &[usize],
    pads: &[usize],
) -> Result<ArrayD<T>> {
    let nd = image.len();
    if x.ndim() != 3 || block.len() != nd {
        return shape_err("col2im: input must be [N, C*K, L] with one block dim per image dim");
    }
    let image: Vec<usize> = image.iter().map(|&d| d.max(0) as usize).collect();
    let block: Vec<usize> = block.iter().map(|&d| d.max(1) as usize).collect();
    let strides = or_ones(strides, nd);
    let dil = or_ones(dilations, nd);
    let pads = if pads.is_empty() { vec![0; 2 * nd] } else { pads.to_vec() };
    let kk: usize = block.iter().product();
    let (n, ck, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    if ck % kk != 0 {
        return shape_err("col2im: channels are not a multiple of the block size");
    }
    let c = ck / kk;
    let out_sp: Vec<usize> = (0..nd)
        .map(|d| (image[d] + pads[d] + pads[d + nd]).saturating_sub(dil[d] * (block[d] - 1) + 1) / strides[d] + 1)
        .collect();
    if out_sp.iter().product::<usize>() != l {
        return shape_err(format!("col2im: {l} columns do not match the image geometry"));
    }
    let plane: usize = image.iter().product();
    let img_st = strides_of(&image);
    let mut out = vec![T::zero(); n * c * plane];
    let xs = x.as_standard_layout();
    let src = xs.as_slice().unwrap_or(&[]);
    for b in 0..n {
        for row in 0..ck {
            let (ch, mut tap) = (row / kk, row % kk);
            let mut kidx = vec![0; nd];
            for d in (0..nd).rev() {
                kidx[d] = tap % block[d];
                tap /= block[d];
            }
            let mut o = vec![0; nd];
            for col in 0..l {
                let mut off = Some((b * c + ch) * plane);
                for d in 0..nd {
                    let pos = (o[d] * strides[d] + kidx[d] * dil[d]) as isize - pads[d] as isize;
                    off = match off {
                        Some(acc) if pos >= 0 && (pos as usize) < image[d] => Some(acc + pos as usize * img_st[d]),
                        _ => None,
                    };
                }
                if let Some(i) = off {
                    out[i] = out[i].add(src[(b * ck + row) * l + col]);
                }
                next_index(&mut o, &out_sp);
            }
        }
    }
    let mut dims = vec![n, c];
    dims.extend_from_slice(&image);
    ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(err2)
}

/// A 1-D convolution (group 1) whose input was `Transpose(Gather(E, ids), [0, 2, 1])`, with
/// the embedding folded into `table [vocab, kernel * O]`: row `v`, tap `k` holds
/// `Σ_c W[o, c, k] · E[v, c]`. Each output position sums `kernel` looked-up rows (taps in the
/// padding add nothing), plus the bias, then the activation: no gather, transpose or im2col.
/// `ids [N, L]` (negative ids count from the end); returns `[N, O, L_out]`, or with
/// `max_keepdims = Some(keep)` the following ReduceMax over the positions: `[N, O]` (`[N, O, 1]`).
#[allow(clippy::too_many_arguments)]
pub fn embed_conv1d(
    table: &ArrayD<f32>,
    ids: &ArrayD<i64>,
    bias: Option<&ArrayD<f32>>,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: [usize; 2],
    act: Act,
    max_keepdims: Option<bool>,
) -> Result<ArrayD<f32>> {
    if table.ndim() != 2 || ids.ndim() != 2 || kernel == 0 || stride == 0 || dilation == 0 || !table.shape()[1].is_multiple_of(kernel) {
        return shape_err(format!("embed_conv1d: table {:?}, ids {:?}, kernel {kernel}", table.shape(), ids.shape()));
    }
    let (vocab, o) = (table.shape()[0], table.shape()[1] / kernel);
    let (n, len) = (ids.shape()[0], ids.shape()[1]);
    let span = (kernel - 1) * dilation + 1;
    let padded = len + pads[0] + pads[1];
    let out_len = if padded >= span { (padded - span) / stride + 1 } else { 0 };
    let bias: Vec<f32> = match bias {
        Some(b) if b.len() == o => b.iter().copied().collect(),
        Some(b) => return shape_err(format!("embed_conv1d: bias {:?} for {o} channels", b.shape())),
        None => vec![0.0; o],
    };
    let table = table.as_standard_layout();
    let table = table.as_slice().unwrap_or(&[]);
    let ids = ids.as_standard_layout();
    let ids = ids.as_slice().unwrap_or(&[]);
    let mut rows = vec![0usize; len];
    let mut scratch = vec![0.0f32; out_len * o];
    if max_keepdims.is_some() && out_len == 0 {
        return shape_err("embed_conv1d: max over no positions");
    }
    let per_sample = if max_keepdims.is_some() { o } else { o * out_len };
    let mut out = vec![0.0f32; n * per_sample];
    for (sample, dst) in out.chunks_exact_mut(per_sample.max(1)).enumerate().take(n) {
        for (r, &id) in rows.iter_mut().zip(&ids[sample * len..][..len]) {
            let at = if id < 0 { id + vocab as i64 } else { id };
            if at < 0 || at >= vocab as i64 {
                return Err(Error::Shape(format!("gather: index {id} out of range for {vocab} rows")));
            }
            *r = at as usize * kernel * o;
        }
        if max_keepdims.is_some() && o % 16 == 0 && matches!(act, Act::Relu | Act::None) {
            // The max over positions in registers: 16 channels at a time, no scratch.
            let relu = act == Act::Relu;
            super::vmath::simd(
                #[inline(always)]
                || {
                    for (c0, (m, b)) in dst.chunks_exact_mut(16).zip(bias.chunks_exact(16)).enumerate() {
                        let mut run = [f32::NEG_INFINITY; 16];
                        for l in 0..out_len {
                            let mut acc: [f32; 16] = b.try_into().unwrap_or([0.0; 16]);
                            for k in 0..kernel {
                                let pos = (l * stride + k * dilation) as isize - pads[0] as isize;
                                if pos < 0 || pos as usize >= len {
                                    continue;
                                }
                                let row = &table[rows[pos as usize] + k * o + c0 * 16..][..16];
                                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
                            }
                            for (r, &a) in run.iter_mut().zip(&acc) {
                                let a = if relu { a.max(0.0) } else { a };
                                // NaN propagates, as in ReduceMax.
                                *r = if a > *r || a.is_nan() { a } else { *r };
                            }
                        }
                        m.copy_from_slice(&run);
                    }
                },
            );
            continue;
        }
        super::vmath::simd(
            #[inline(always)]
            || {
                for (l, acc) in scratch.chunks_exact_mut(o).enumerate() {
                    acc.copy_from_slice(&bias);
                    for k in 0..kernel {
                        let pos = (l * stride + k * dilation) as isize - pads[0] as isize;
                        if pos < 0 || pos as usize >= len {
                            continue;
                        }
                        let row = &table[rows[pos as usize] + k * o..][..o];
                        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
                    }
                    if act == Act::Relu {
                        acc.iter_mut().for_each(|a| *a = a.max(0.0));
                    }
                }
            },
        );
        if act != Act::Relu {
            act.apply(&mut scratch);
        }
        if max_keepdims.is_some() {
            dst.copy_from_slice(&scratch[..o]);
            for acc in scratch.chunks_exact(o).skip(1) {
                // NaN propagates, as in ReduceMax.
                dst.iter_mut().zip(acc).for_each(|(m, &v)| *m = if v > *m || v.is_nan() { v } else { *m });
            }
            continue;
        }
        // [L_out, O] -> [O, L_out].
        for (l, acc) in scratch.chunks_exact(o).enumerate() {
            for (c, &v) in acc.iter().enumerate() {
                dst[c * out_len + l] = v;
            }
        }
    }
    let shape = match max_keepdims {
        Some(true) => vec![n, o, 1],
        Some(false) => vec![n, o],
        None => vec![n, o, out_len],
    };
    ArrayD::from_shape_vec(shape, out).map_err(|e| Error::Shape(e.to_string()))
}

/// Conv weights for [`conv_blocked`]: on AVX-512 CPUs, 2-D 3x3-style layers (one group)
/// arranged once at load as `[M/32][C][K][32]` (output channels innermost, padded with
/// zeros to a multiple of 32: the order the kernel reads them); elsewhere the GEMM
/// layouts of [`ConvWeights`].
pub struct BlockedWeights {
    dims: Vec<usize>,
    kind: BlockedKind,
}

enum BlockedKind {
    Blocked(Vec<f32>),
    Gemm(ConvWeights),
}

/// Output channels per [`conv_blocked`] tile (two AVX-512 vectors).
const BLOCK_OC: usize = 32;

impl BlockedWeights {
    /// `transposed` picks the fallback's layout ([`ConvWeights::new`] or [`ConvWeights::rows`]).
    pub fn new(w: ArrayD<f32>, group: usize, transposed: bool) -> Result<BlockedWeights> {
        let dims = w.shape().to_vec();
        if !(blocked_cpu() && group == 1 && dims.len() == 4) {
            let gemm = if transposed { ConvWeights::new(w, group)? } else { ConvWeights::rows(w, group)? };
            return Ok(BlockedWeights { dims, kind: BlockedKind::Gemm(gemm) });
        }
        let w = w.as_standard_layout();
        let Some(data) = w.as_slice() else {
            return shape_err("conv weights not contiguous");
        };
        let (m, ck) = (dims[0], dims[1..].iter().product::<usize>());
        let blocks = m.div_ceil(BLOCK_OC);
        let mut packed = vec![0.0f32; blocks * ck * BLOCK_OC];
        for (o, row) in data.chunks_exact(ck).enumerate() {
            let blk = &mut packed[o / BLOCK_OC * ck * BLOCK_OC..];
            for (q, &v) in row.iter().enumerate() {
                blk[q * BLOCK_OC + o % BLOCK_OC] = v;
            }
        }
        Ok(BlockedWeights { dims, kind: BlockedKind::Blocked(packed) })
    }
}

fn blocked_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::cpu::avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 `Conv` (+ activation) with [`BlockedWeights`]: a direct convolution (no im2col)
/// from a padded, phase-split copy of the input, tiles of 32 output channels x 14 output
/// positions held in 28 AVX-512 accumulators, each input value broadcast once per tile and
/// kernel tap; bias and activation in the store. Falls back to [`conv_packed`].
pub fn conv_blocked(x: &ArrayD<f32>, w: &BlockedWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act) -> Result<ArrayD<f32>> {
    match &w.kind {
        BlockedKind::Gemm(g) => conv_packed_impl(x, g, bias, win, act, None),
        BlockedKind::Blocked(p) => conv_blocked_impl(x, &w.dims, p, bias, win, act, None),
    }
}

/// [`conv_blocked`] plus a same-shape addend before the activation (`irc.ConvAdd<Act>`).
pub fn conv_blocked_add<'a>(
    x: &ArrayD<f32>, w: &BlockedWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act,
    residual: impl super::elem::Operand<'a, f32>,
) -> Result<ArrayD<f32>> {
    let r = residual.into_cow().into_owned();
    match &w.kind {
        BlockedKind::Gemm(g) => conv_packed_impl(x, g, bias, win, act, Some(r)),
        BlockedKind::Blocked(p) => conv_blocked_impl(x, &w.dims, p, bias, win, act, Some(r)),
    }
}

fn conv_blocked_impl(
    x: &ArrayD<f32>, dims: &[usize], packed: &[f32], bias: Option<&ArrayD<f32>>, win: &Window, act: Act,
    residual: Option<ArrayD<f32>>,
) -> Result<ArrayD<f32>> {
    let s = ConvShape::new(x.shape(), dims, win, 1)?;
    let bias = bias_values(bias, s.m)?;
    let Some(g) = Plane2::new(&s.in_sp, &s.kernel, &s.out_sp, &s.geo).filter(|_| s.p_out > 0) else {
        return shape_err("conv: blocked weights need a 2-D convolution");
    };
    let xs = x.as_standard_layout();
    let src = xs.as_slice().unwrap_or(&[]);
    let add = residual.is_some();
    let mut result = match residual {
        Some(r) if r.shape() != s.out_dims().as_slice() => {
            return shape_err(format!("conv: residual {:?} does not match output {:?}", r.shape(), s.out_dims()));
        }
        Some(r) if r.is_standard_layout() => r,
        Some(r) => r.as_standard_layout().into_owned(),
        // Zeroed by the threads that then write it (split like the tiles below: blocks of
        // output channels), not by one `calloc` memset on the caller.
        None => ArrayD::from_shape_vec(IxDyn(&s.out_dims()), zeroed_split(s.n * s.m * s.p_out, BLOCK_OC * s.p_out)).map_err(err2)?,
    };
    let Some(out) = result.as_slice_mut() else {
        return shape_err("conv: output not contiguous");
    };
    // Pointwise layers whose tiles cover the rows exactly (see `blocked_avx512`; the last
    // rows get a tile of their own height) read the input planes in place: no padded copy.
    let nx = if g.ow >= 10 { 14 } else if g.ow >= 5 { 7 } else { 3 };
    let in_place = g.kh == 1 && g.kw == 1 && (g.sh, g.sw, g.ph, g.pw) == (1, 1, 0, 0)
        && (g.oh, g.ow) == (g.h, g.w) && g.ow % nx == 0;
    let d = if in_place {
        Direct { phase: g.w, row_pitch: g.w, chan_pitch: g.h * g.w, taps: vec![0] }
    } else {
        Direct::new(&g)
    };
    let (lo, hi, fused) = match act {
        Act::None => (f32::NEG_INFINITY, f32::INFINITY, true),
        Act::Relu => (0.0, f32::INFINITY, true),
        Act::Clip(lo, hi) => (lo, hi, true),
        _ => (f32::NEG_INFINITY, f32::INFINITY, false),
    };
    let mut bias_all = bias.unwrap_or_else(|| vec![0.0; s.m]);
    bias_all.resize(s.m.div_ceil(BLOCK_OC) * BLOCK_OC, 0.0);
    let ck = s.c * s.kk;
    let blocks = s.m.div_ceil(BLOCK_OC);
    let optr = OutPtr(out.as_mut_ptr());
    let flops = 2 * s.n * s.m * s.p_out * ck;
    // Slack after the last channel: tiles past the last row or column read (never store) there.
    let slack = 4 * d.row_pitch + 64;
    let tile = |buf: &[f32], item: usize| {
        let (b, ob) = (item / blocks, item % blocks);
        let a = BlockedArgs {
            inp: buf.as_ptr(),
            d: &d,
            g: &g,
            cg: s.c,
            w: &packed[ob * ck * BLOCK_OC..][..ck * BLOCK_OC],
            next_w: packed.get((ob + 1) * ck * BLOCK_OC..(ob + 2) * ck * BLOCK_OC).unwrap_or(&[]),
            rows: BLOCK_OC.min(s.m - ob * BLOCK_OC),
            bias: &bias_all[ob * BLOCK_OC..][..BLOCK_OC],
            lo, hi, add,
            out: optr.at((b * s.m + ob * BLOCK_OC) * s.p_out),
            p_out: s.p_out,
        };
        // SAFETY: item (b, ob) writes output planes of image b, channels of block ob
        // only; the kernel reads image b's channels of the padded copy plus the slack.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            blocked_avx512(&a);
        }
        if !fused {
            // SAFETY: as above (this item's planes).
            act.apply(unsafe { std::slice::from_raw_parts_mut(a.out, a.rows * s.p_out) });
        }
    };
    if in_place {
        let image = s.c * g.h * g.w;
        super::par::for_ranges(s.n * blocks, 1, flops, |r| r.for_each(|item| tile(&src[item / blocks * image..], item)));
    } else if s.n == 1 {
        DIRECT_PLANE.with(|cell| {
            let mut buf = cell.take();
            let end = s.c * d.chan_pitch;
            buf.truncate(end);
            buf.resize(end + slack, 0.0);
            // The padded copy, channels split over the threads (~1 ns per float written).
            let plane_in = g.h * g.w;
            super::par::for_each_chunk_mut(&mut buf[..end], d.chan_pitch, end * FILL_WORK, |c, dst| {
                d.fill_into(dst, &src[c * plane_in..][..plane_in], &g, true)
            });
            let bufp = &buf;
            super::par::for_ranges(blocks, 1, flops, |r| r.for_each(|item| tile(bufp, item)));
            cell.replace(buf);
        });
    } else {
        // Several images: each range pads one image at a time into its thread's buffer, so
        // the copy is still in cache when the image's tiles read it (batch 8 of a 56x56
        // layer would otherwise pad 7 MB before the first tile).
        let image = s.c * s.in_sp.iter().product::<usize>();
        super::par::for_ranges(s.n * blocks, 1, flops, |r| {
            DIRECT_PLANE.with(|cell| {
                let mut buf = cell.take();
                let mut filled = usize::MAX;
                for item in r {
                    let b = item / blocks;
                    if b != filled {
                        d.fill(&mut buf, &src[b * image..][..image], &g, true);
                        let end = s.c * d.chan_pitch;
                        buf.truncate(end);
                        buf.resize(end + slack, 0.0);
                        filled = b;
                    }
                    tile(&buf, item);
                }
                cell.replace(buf);
            })
        });
    }
    Ok(result)
}

struct BlockedArgs<'a> {
    inp: *const f32,
    d: &'a Direct,
    g: &'a Plane2,
    cg: usize,
    w: &'a [f32],
    /// The next block's weights (empty for the last block), prefetched into cache a part per
    /// tile while this block's tiles run.
    next_w: &'a [f32],
    rows: usize,
    bias: &'a [f32],
    lo: f32,
    hi: f32,
    add: bool,
    out: *mut f32,
    p_out: usize,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
unsafe fn blocked_avx512(a: &BlockedArgs) {
    let g = a.g;
    if g.ow >= 10 {
        blocked_plane::<1, 14>(a)
    } else if g.ow >= 5 {
        blocked_plane::<2, 7>(a)
    } else {
        blocked_plane::<4, 3>(a)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn blocked_plane<const R: usize, const NX: usize>(a: &BlockedArgs) {
    let g = a.g;
    let tiles = g.oh.div_ceil(R) * g.ow.div_ceil(NX);
    // Planes of few tiles (7x7: 4) read each block's weights, which come from memory when
    // the layer starts (2-4 MB for mobilenet's 512/1024-channel layers), in few passes:
    // each tile prefetches its share of the next block's (lines of 16 floats) and its own
    // weights ahead. Alone, 1 thread, caches flushed before each call, interleaved:
    // 512 -> 1024 at 7x7 578 -> 510 µs, 1024 -> 1024 1112 -> 1000; at 14x14 (14 tiles) the
    // next block's prefetch cost ~2%, and resnet18 (its 3x3 layers at 7x7) lost ~1.5%:
    // pointwise layers only.
    let share = a.next_w.len().div_ceil(16 * tiles) * 16;
    let prefetch = tiles < 8 && a.d.taps.len() == 1;
    let mut t = 0;
    let mut oy = 0;
    while oy < g.oh {
        let mut x0 = 0;
        while x0 < g.ow {
            let pf = &a.next_w[(t * share).min(a.next_w.len())..][..share.min(a.next_w.len().saturating_sub(t * share))];
            // The last rows of a plane not a multiple of R get a tile of their own height
            // (7x7: 2x7 tiles would compute 8 rows for 7).
            match (g.oh - oy, prefetch) {
                (1, false) if R > 1 => blocked_tile::<1, NX, false>(a, oy, x0, pf),
                (2, false) if R > 2 => blocked_tile::<2, NX, false>(a, oy, x0, pf),
                (3, false) if R > 3 => blocked_tile::<3, NX, false>(a, oy, x0, pf),
                (_, false) => blocked_tile::<R, NX, false>(a, oy, x0, pf),
                (1, true) if R > 1 => blocked_tile::<1, NX, true>(a, oy, x0, pf),
                (2, true) if R > 2 => blocked_tile::<2, NX, true>(a, oy, x0, pf),
                (3, true) if R > 3 => blocked_tile::<3, NX, true>(a, oy, x0, pf),
                (_, true) => blocked_tile::<R, NX, true>(a, oy, x0, pf),
            }
            x0 += NX;
            t += 1;
        }
        oy += R;
    }
}

/// Output rows `oy..oy + R` x columns `x0..x0 + NX` (clipped to the plane when stored) of
/// the block's 32 output channels.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn blocked_tile<const R: usize, const NX: usize, const PF: bool>(a: &BlockedArgs, oy: usize, x0: usize, pf: &[f32]) {
    use std::arch::x86_64::*;
    let g = a.g;
    let d = a.d;
    let rstep = g.sh * d.row_pitch;
    let inp = a.inp.add(oy * rstep + x0);
    let mut acc = [[[_mm512_setzero_ps(); 2]; NX]; R];
    let mut wp = a.w.as_ptr();
    let (pf_ptr, lines) = (pf.as_ptr(), pf.len() / 16);
    let mut line = 0;
    for c in 0..a.cg {
        let base = inp.add(c * d.chan_pitch);
        for &off in d.taps.iter() {
            if PF {
                // One line of the next block's share, and this tile's weights 4 KiB ahead
                // (hints: never fault, whatever the address).
                if line < lines {
                    _mm_prefetch::<_MM_HINT_T1>(pf_ptr.add(line * 16).cast());
                    line += 1;
                }
                _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(1024).cast());
                _mm_prefetch::<_MM_HINT_T0>(wp.wrapping_add(1040).cast());
            }
            let p = base.add(off);
            let w0 = _mm512_loadu_ps(wp);
            let w1 = _mm512_loadu_ps(wp.add(16));
            wp = wp.add(BLOCK_OC);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for (j, acc_j) in acc_r.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*p.add(r * rstep + j));
                    acc_j[0] = _mm512_fmadd_ps(w0, xv, acc_j[0]);
                    acc_j[1] = _mm512_fmadd_ps(w1, xv, acc_j[1]);
                }
            }
        }
    }
    // [position][channel] -> [channel][position] in registers (two 16x16 transposes), then
    // each output row segment in one masked store, bias, residual and clamp on the way.
    let rows = R.min(g.oh - oy);
    let cols = NX.min(g.ow - x0);
    let (lo, hi) = (_mm512_set1_ps(a.lo), _mm512_set1_ps(a.hi));
    let mut halves = [[_mm512_setzero_ps(); 16]; 2];
    for (r, acc_r) in acc.iter().enumerate() {
        for (j, acc_j) in acc_r.iter().enumerate() {
            halves[0][r * NX + j] = acc_j[0];
            halves[1][r * NX + j] = acc_j[1];
        }
    }
    for (h, half) in halves.into_iter().enumerate() {
        let v = transpose16(half);
        for (k, &vk) in v.iter().enumerate().take(a.rows.saturating_sub(h * 16).min(16)) {
            let oc = h * 16 + k;
            let bv = _mm512_add_ps(vk, _mm512_set1_ps(a.bias[oc]));
            for r in 0..rows {
                // Lanes r*NX.. of the vector are row r: the store starts r*NX floats before
                // the row (masked off, never touched), so lane r*NX lands on column x0.
                let mask = (((1u32 << cols) - 1) << (r * NX)) as u16;
                let o = a.out.add(oc * a.p_out + (oy + r) * g.ow + x0).wrapping_sub(r * NX);
                let mut val = bv;
                if a.add {
                    val = _mm512_add_ps(val, _mm512_maskz_loadu_ps(mask, o));
                }
                // max(lo, v) / min(hi, v) return v when v is NaN, so NaN passes through.
                val = _mm512_min_ps(hi, _mm512_max_ps(lo, val));
                _mm512_mask_storeu_ps(o, mask, val);
            }
        }
    }
}

/// 16x16 f32 transpose: `out[k]` lane `p` = `v[p]` lane `k`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose16(v: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    let mut b = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        b[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        b[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    // c[4i+q], 128-bit lane l: rows 4i..4i+4 of column 4l+q.
    let mut c = [_mm512_setzero_ps(); 16];
    for i in 0..4 {
        let (b0, b1) = (_mm512_castps_pd(b[4 * i]), _mm512_castps_pd(b[4 * i + 1]));
        let (b2, b3) = (_mm512_castps_pd(b[4 * i + 2]), _mm512_castps_pd(b[4 * i + 3]));
        c[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(b0, b2));
        c[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(b0, b2));
        c[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b1, b3));
        c[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b1, b3));
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for q in 0..4 {
        let d0 = _mm512_shuffle_f32x4::<0x88>(c[q], c[4 + q]);
        let d1 = _mm512_shuffle_f32x4::<0xdd>(c[q], c[4 + q]);
        let e0 = _mm512_shuffle_f32x4::<0x88>(c[8 + q], c[12 + q]);
        let e1 = _mm512_shuffle_f32x4::<0xdd>(c[8 + q], c[12 + q]);
        out[q] = _mm512_shuffle_f32x4::<0x88>(d0, e0);
        out[8 + q] = _mm512_shuffle_f32x4::<0xdd>(d0, e0);
        out[4 + q] = _mm512_shuffle_f32x4::<0x88>(d1, e1);
        out[12 + q] = _mm512_shuffle_f32x4::<0xdd>(d1, e1);
    }
    out
}
