//! Winograd convolution for 2-D 3x3 stride-1 layers (one group, no dilation, pads <= 1).
//!
//! `F(R x R, 3 x 3)` with R = 2 or 4: the output is cut into `R x R` tiles, each computed from
//! an `A x A` input tile (A = R + 2) as `Y = AT · [Σ_c (G g G^T) ⊙ (BT d B)] · A`: the
//! elementwise products over channels are `A²` GEMMs (one per transform point `t`),
//! `M[t] (K x tiles) = U[t] (K x C) · V[t] (C x tiles)`, with the weights `U[t]` packed
//! once at load for the runtime's GEMM kernel ([`PackedA`]) and the transformed input
//! `V[t]` read in place by it. Per output value that is `A² / R²` multiplies per input
//! channel instead of 9 (F(2x2): 4, F(4x4): 2.25).
//!
//! Tiles are processed in blocks of whole tile rows (across images), sized so that a
//! block's `V` and `M` stay in L2: input transform -> `A²` GEMMs -> output transform (with
//! bias, residual and activation in the store) before the next block. Blocks split over
//! the pool's threads; a layer of one block splits its three phases instead (`block_split`).

use super::conv::Window;
use super::error::{shape_err, Error, Result};
use super::gemm::{sgemm_packed_a, Epilogue, OperandB, PackedA};
use super::linalg::Act;
use ndarray::{ArrayD, IxDyn};

/// Weights of a 3x3 convolution transformed for [`conv_winograd`]: `U[t] = G g G^T` for
/// every transform point `t`, each a `K x C` matrix packed as the GEMM's A.
pub struct WinogradWeights {
    dims: Vec<usize>,
    r: usize,
    u: Vec<PackedA>,
}

/// `G` of F(2x2, 3x3) (points 0, 1, -1, ∞).
const G2: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// `G` of F(4x4, 3x3) (points 0, 1, -1, 2, -2, ∞).
const G4: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

impl WinogradWeights {
    /// Transforms `[K, C, 3, 3]` weights for output tiles of `r x r` (2 or 4).
    pub fn new(w: ArrayD<f32>, r: usize) -> Result<WinogradWeights> {
        let dims = w.shape().to_vec();
        if dims.len() != 4 || dims[2] != 3 || dims[3] != 3 || !(r == 2 || r == 4) {
            return shape_err(format!("winograd: weights {dims:?} are not 3x3 (tile {r})"));
        }
        let (k, c) = (dims[0], dims[1]);
        let w = w.as_standard_layout();
        let Some(data) = w.as_slice() else {
            return shape_err("winograd: weights not contiguous");
        };
        let g: &[[f64; 3]] = if r == 2 { &G2 } else { &G4 };
        let a = r + 2;
        // U[t][o][i] for t = (row point, column point), computed in f64.
        let mut u = vec![vec![0.0f32; k * c]; a * a];
        for (oi, taps) in data.chunks_exact(9).enumerate() {
            let mut gg = [[0.0f64; 3]; 6]; // G · g (a x 3)
            for (i, row) in g.iter().enumerate() {
                for col in 0..3 {
                    gg[i][col] = (0..3).map(|q| row[q] * f64::from(taps[q * 3 + col])).sum();
                }
            }
            for i in 0..a {
                for (j, grow) in g.iter().enumerate() {
                    let v: f64 = (0..3).map(|q| gg[i][q] * grow[q]).sum();
                    u[i * a + j][oi] = v as f32;
                }
            }
        }
        let u = u.iter().map(|ut| PackedA::new(k, c, ut, c as isize, 1)).collect();
        Ok(WinogradWeights { dims, r, u })
    }
}

/// f32 3x3 stride-1 `Conv` (+ bias, + activation) through Winograd F(r x r, 3 x 3).
pub fn conv_winograd(x: &ArrayD<f32>, w: &WinogradWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act) -> Result<ArrayD<f32>> {
    winograd_impl(x, w, bias, win, act, None)
}

/// [`conv_winograd`] plus a same-shape addend before the activation (`irc.ConvAdd<Act>`).
pub fn conv_winograd_add<'a>(
    x: &ArrayD<f32>, w: &WinogradWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act,
    residual: impl super::elem::Operand<'a, f32>,
) -> Result<ArrayD<f32>> {
    winograd_impl(x, w, bias, win, act, Some(residual.into_cow().into_owned()))
}

/// Bytes of a block's transformed input and products (`A² · (C + K) · tiles` floats),
/// kept within L2 (1 MiB per core) with room for the weights streaming through.
const BLOCK_BYTES: usize = 512 * 1024;

thread_local! {
    /// The padded, phase-split input (see `pad_input`), kept between calls.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// A thread's `V` and `M`, kept between calls.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The six padded, phase-split rows of one tile row and channel (`input6_avx512`).
    #[cfg(target_arch = "x86_64")]
    static TILE_ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct OutPtr(*mut f32);
// SAFETY: blocks write disjoint output rows (see `winograd_impl`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// The layer's shape as the tiles see it.
#[derive(Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    k: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    ph: usize,
    pw: usize,
    r: usize,
    a: usize,
    /// Tiles per row and per column of an image.
    tw: usize,
    th: usize,
    /// The padded copy: columns per phase (with a chunk of lanes of slack) and floats per plane.
    u_len: usize,
    pp: usize,
}

fn winograd_impl(
    x: &ArrayD<f32>, wt: &WinogradWeights, bias: Option<&ArrayD<f32>>, win: &Window, act: Act,
    residual: Option<ArrayD<f32>>,
) -> Result<ArrayD<f32>> {
    let xd = x.shape();
    if xd.len() != 4 || xd[1] != wt.dims[1] {
        return shape_err(format!("winograd: input {xd:?} does not match weights {:?}", wt.dims));
    }
    let geo = win.resolve(&xd[2..], &[3, 3])?;
    if geo.strides.iter().chain(&geo.dilations).any(|&v| v != 1) || geo.begin.iter().chain(&geo.end).any(|&v| v > 1) {
        return shape_err("winograd: only stride 1, dilation 1, pads <= 1");
    }
    let (oh, ow) = (geo.out_dim(0, xd[2], 3)?, geo.out_dim(1, xd[3], 3)?);
    let r = wt.r;
    let g = Geo {
        n: xd[0], c: xd[1], k: wt.dims[0], h: xd[2], w: xd[3], oh, ow, ph: geo.begin[0], pw: geo.begin[1],
        r, a: r + 2, tw: ow.div_ceil(r), th: oh.div_ceil(r), u_len: 0, pp: 0,
    };
    let g = Geo { u_len: (g.tw + 1).next_multiple_of(L) + L, pp: (g.th * r + 2) * r * ((g.tw + 1).next_multiple_of(L) + L), ..g };
    let out_dims = [g.n, g.k, oh, ow];
    let bias: Vec<f32> = match bias {
        Some(b) if b.len() == g.k => b.iter().copied().collect(),
        Some(b) => return shape_err(format!("winograd: bias of {} values for {} channels", b.len(), g.k)),
        None => vec![0.0; g.k],
    };
    let add = residual.is_some();
    let mut result = match residual {
        Some(r) if r.shape() != out_dims => {
            return shape_err(format!("winograd: residual {:?} does not match output {out_dims:?}", r.shape()));
        }
        Some(r) if r.is_standard_layout() => r,
        Some(r) => r.as_standard_layout().into_owned(),
        None => ArrayD::from_shape_vec(IxDyn(&out_dims), vec![0.0; g.n * g.k * oh * ow]).map_err(|e| Error::Shape(e.to_string()))?,
    };
    if result.is_empty() {
        return Ok(result);
    }
    let xs = x.as_standard_layout();
    let Some(src) = xs.as_slice() else {
        return shape_err("winograd: input not contiguous");
    };
    let Some(out) = result.as_slice_mut() else {
        return shape_err("winograd: output not contiguous");
    };
    let t = g.a * g.a;
    let per_tile = t * (g.c + g.k) * 4;
    let tiles = g.n * g.th * g.tw;
    let flops = 2 * tiles * t * g.c * g.k;
    // Whole GEMM column slivers (32) per block, at least one; when the layer splits, no
    // more slivers per block than each thread's share (mnist_cnn's 144 tiles at 2 threads:
    // blocks of 96 + 48 tiles instead of 64 + 64 on one thread and 16 on the other).
    let share = tiles.div_ceil(32).div_ceil(super::par::pieces_for(flops)) * 32;
    let nb = ((BLOCK_BYTES / per_tile / 32).max(1) * 32).min(share);
    let blocks = tiles.div_ceil(nb);
    let optr = OutPtr(out.as_mut_ptr());
    let mut padded = PADDED.with(|cell| cell.take());
    // F(4x4) on AVX-512 pads inside its input transform: the blocks read `src` itself.
    #[cfg(target_arch = "x86_64")]
    let fused_pad = r == 4 && avx512_cpu();
    #[cfg(not(target_arch = "x86_64"))]
    let fused_pad = false;
    if !fused_pad {
        pad_input(&g, src, &mut padded, flops);
    }
    #[cfg(target_arch = "x86_64")]
    if blocks == 1 && super::par::pieces_for(flops) > 1 && avx512_cpu() && matches!(act, Act::None | Act::Relu | Act::Clip(..)) {
        // One block (resnet18's 14x14 layers at batch 1 on F(4x4): 16 tiles): its phases
        // split over the threads instead.
        SCRATCH.with(|cell| {
            let mut buf = cell.take();
            // SAFETY: the CPU has AVX-512F; the block is all the tiles.
            unsafe {
                if g.r == 2 {
                    block_split::<4, 2>(&g, wt, &padded, &bias, act, add, optr.get(), 0..tiles, &mut buf, flops)
                } else {
                    block_split::<6, 4>(&g, wt, src, &bias, act, add, optr.get(), 0..tiles, &mut buf, flops)
                }
            };
            cell.replace(buf);
        });
        PADDED.with(|cell| cell.replace(padded));
        return Ok(result);
    }
    let padded_ref: &[f32] = if fused_pad { src } else { &padded };
    super::par::for_ranges(blocks, 1, flops, |range| {
        let padded = padded_ref;
        // The GEMMs of a block run on this thread: the blocks are the split.
        super::par::inline(|| {
            SCRATCH.with(|cell| {
                let mut buf = cell.take();
                for b in range.clone() {
                    let tr = b * nb..((b + 1) * nb).min(tiles);
                    // SAFETY: block b writes the output pixels of its tiles only.
                    unsafe {
                        if g.r == 2 {
                            block::<4, 2>(&g, wt, padded, &bias, act, add, optr.get(), tr, &mut buf)
                        } else {
                            block::<6, 4>(&g, wt, padded, &bias, act, add, optr.get(), tr, &mut buf)
                        }
                    };
                }
                cell.replace(buf);
            })
        })
    });
    PADDED.with(|cell| cell.replace(padded));
    Ok(result)
}

/// The input, zero-padded and split by column phase: plane `(img, c)` at `pp · (img · C + c)`,
/// padded row `y'` (input row `y' - ph`) at `y' · r · u_len`, phase `p` at `p · u_len`,
/// column `u` = input column `u · r + p - pw`.
fn pad_input(g: &Geo, src: &[f32], padded: &mut Vec<f32>, work: usize) {
    let (r, u_len) = (g.r, g.u_len);
    let rows = g.pp / (r * u_len);
    #[cfg(target_arch = "x86_64")]
    if r == 2 && avx512_cpu() {
        if padded.len() < g.n * g.c * g.pp {
            padded.resize(g.n * g.c * g.pp, 0.0);
        }
        let dst = OutPtr(padded.as_mut_ptr());
        // Split by planes whenever the layer splits (`work`: its flops): mnist_cnn's conv2
        // at batch 1, 2 threads, 97 -> 90 µs (the copy was ~9 µs of serial work).
        // SAFETY: the CPU has AVX-512F; `padded` holds n · c · pp floats, each range of
        // planes is written by one piece only.
        super::par::for_ranges(g.n * g.c, 1, work, |planes| unsafe { pad_avx512(g, src, dst.get(), planes) });
        return;
    }
    padded.clear();
    padded.resize(g.n * g.c * g.pp, 0.0);
    let plane = g.h * g.w;
    for (pl, dst) in padded.chunks_exact_mut(g.pp).enumerate() {
        let chan = &src[pl * plane..][..plane];
        for yp in 0..rows {
            let Some(y) = yp.checked_sub(g.ph).filter(|&y| y < g.h) else { continue };
            let row = &chan[y * g.w..][..g.w];
            for p in 0..r {
                let d = &mut dst[(yp * r + p) * u_len..][..u_len];
                // Columns u with 0 <= u·r + p - pw < w.
                let lo = (g.pw.saturating_sub(p)).div_ceil(r);
                let hi = (g.w + g.pw).saturating_sub(p).div_ceil(r).min(u_len);
                for (u, v) in d.iter_mut().enumerate().take(hi).skip(lo) {
                    *v = row[u * r + p - g.pw];
                }
            }
        }
    }
}

/// A run of tiles in one tile row: image, tile row, first tile column, tiles, offset in the block.
#[derive(Clone, Copy)]
struct Segment {
    img: usize,
    ty: usize,
    x0: usize,
    len: usize,
    off: usize,
}

fn segments(g: &Geo, tiles: std::ops::Range<usize>) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut t = tiles.start;
    while t < tiles.end {
        let (row, x0) = (t / g.tw, t % g.tw);
        let len = (g.tw - x0).min(tiles.end - t);
        out.push(Segment { img: row / g.th, ty: row % g.th, x0, len, off: t - tiles.start });
        t += len;
    }
    out
}

/// Segments packed side by side into the 16 lanes of the AVX-512 transforms: runs of
/// consecutive segments (at most 4, at most 16 tiles together), or `None` when a segment is
/// wider than 8 tiles (one per vector already fills it). On small planes a tile row is a
/// few tiles (7x7 on F(2x2) and 14x14 on F(4x4): 4 tiles, 28x28 on F(4x4): 7), so one
/// segment per vector left 9-12 of the 16 lanes idle in every transform.
#[cfg(target_arch = "x86_64")]
fn lane_groups(segs: &[Segment]) -> Option<Vec<std::ops::Range<usize>>> {
    if segs.iter().any(|s| s.len > 8) {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let (mut j, mut lanes) = (i, 0);
        while j < segs.len() && j - i < 4 && lanes + segs[j].len <= L {
            lanes += segs[j].len;
            j += 1;
        }
        out.push(i..j);
        i = j;
    }
    Some(out)
}

/// Lanes `l .. l + len` of a group (segment offset `l` in it, `len` tiles).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn seg_mask(l: usize, len: usize) -> u16 {
    first(len) << l
}

/// Lanes of the transforms: tiles side by side.
const L: usize = 16;
type Lanes = [f32; L];

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    std::array::from_fn(f)
}

/// 1-D input transform `BT · x` of `A` lane vectors.
#[inline(always)]
fn bt_lanes<const A: usize>(x: &[Lanes; A], y: &mut [Lanes; A]) {
    if A == 4 {
        let x: &[Lanes; 4] = x.as_slice().try_into().unwrap();
        let r = [
            lanes(|u| x[0][u] - x[2][u]),
            lanes(|u| x[1][u] + x[2][u]),
            lanes(|u| x[2][u] - x[1][u]),
            lanes(|u| x[1][u] - x[3][u]),
        ];
        y.copy_from_slice(&r);
    } else {
        let x: &[Lanes; 6] = x.as_slice().try_into().unwrap();
        let p = lanes(|u| x[4][u] - 4.0 * x[2][u]);
        let q = lanes(|u| x[3][u] - 4.0 * x[1][u]);
        let p2 = lanes(|u| x[4][u] - x[2][u]);
        let q2 = lanes(|u| 2.0 * (x[3][u] - x[1][u]));
        let r = [
            lanes(|u| 4.0 * x[0][u] - 5.0 * x[2][u] + x[4][u]),
            lanes(|u| p[u] + q[u]),
            lanes(|u| p[u] - q[u]),
            lanes(|u| p2[u] + q2[u]),
            lanes(|u| p2[u] - q2[u]),
            lanes(|u| 4.0 * x[1][u] - 5.0 * x[3][u] + x[5][u]),
        ];
        y.copy_from_slice(&r);
    }
}

/// 1-D output transform `AT · x` of `A` lane vectors into `R`.
#[inline(always)]
fn at_lanes<const A: usize, const R: usize>(x: &[Lanes; A], y: &mut [Lanes; R]) {
    if A == 4 {
        let x: &[Lanes; 4] = x.as_slice().try_into().unwrap();
        let r = [lanes(|u| x[0][u] + x[1][u] + x[2][u]), lanes(|u| x[1][u] - x[2][u] - x[3][u])];
        y.copy_from_slice(&r);
    } else {
        let x: &[Lanes; 6] = x.as_slice().try_into().unwrap();
        let p = lanes(|u| x[1][u] + x[2][u]);
        let q = lanes(|u| x[1][u] - x[2][u]);
        let p2 = lanes(|u| x[3][u] + x[4][u]);
        let q2 = lanes(|u| x[3][u] - x[4][u]);
        let r = [
            lanes(|u| x[0][u] + p[u] + p2[u]),
            lanes(|u| q[u] + 2.0 * q2[u]),
            lanes(|u| p[u] + 4.0 * p2[u]),
            lanes(|u| q[u] + 8.0 * q2[u] + x[5][u]),
        ];
        y.copy_from_slice(&r);
    }
}

/// Tiles `tiles` (global: (image · th + tile row) · tw + tile column) through the input
/// transform, the A² GEMMs and the output transform (`A` = `R` + 2).
///
/// Safety: `out` is the `[n, k, oh, ow]` output; only these tiles' pixels are written.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // indices shared by several arrays
unsafe fn block<const A: usize, const R: usize>(
    g: &Geo, wt: &WinogradWeights, padded: &[f32], bias: &[f32], act: Act, add: bool, out: *mut f32,
    tiles: std::ops::Range<usize>, buf: &mut Vec<f32>,
) {
    let t = A * A;
    let nb = tiles.len();
    let segs = segments(g, tiles);
    let (u_len, pp) = (g.u_len, g.pp);
    // Points of V and M start one cache line apart modulo 4 KiB (vs, ms): the transforms
    // touch all A² points of a tile at once, which at a power-of-two stride would all map to
    // one L1 set.
    let (vs, ms) = (g.c * nb + L, g.k * nb + L);
    let v_len = t * vs;
    // M plus one chunk of lanes past its end (read, never stored).
    let m_len = t * ms + L;
    if buf.len() < v_len + m_len {
        buf.resize(v_len + m_len, 0.0);
    }
    let (v, m) = buf.split_at_mut(v_len);
    let vp = v.as_mut_ptr();
    // Input transform: V[t][c][tile], from the padded, phase-split copy (F(4x4) on AVX-512:
    // from the unpadded input, padded a tile row at a time).
    #[cfg(target_arch = "x86_64")]
    let wide = ((A == 4 && R == 2) || (A == 6 && R == 4)) && avx512_cpu();
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: the CPU has AVX-512F; V holds t · vs floats (see `input_avx512`).
        unsafe {
            if A == 4 {
                input_avx512(g, &segs, padded, vp, vs, nb, 0..g.c)
            } else {
                input6_avx512(g, &segs, padded, vp, vs, nb, 0..g.c)
            }
        };
    }
    for sg in segs.iter().filter(|_| !wide) {
        for c in 0..g.c {
            let phases = &padded[(sg.img * g.c + c) * pp + sg.ty * R * R * u_len..][..A * R * u_len];
            let pptr = phases.as_ptr();
            let lin = R * u_len;
            for x in (0..sg.len).step_by(L) {
                let cl = L.min(sg.len - x);
                // Column x·r + s' of tile x is phase s' mod r at u = x + s' / r.
                let mut d = [[[0.0f32; L]; A]; A];
                for (s, ds) in d.iter_mut().enumerate() {
                    for (s2, lane) in ds.iter_mut().enumerate() {
                        let from = s * lin + (s2 % R) * u_len + s2 / R + sg.x0 + x;
                        // SAFETY: from + L <= A · R · u_len: row s < A, phase < R,
                        // column s' / R + x0 + x + L <= 1 + tw + L <= u_len.
                        *lane = unsafe { std::ptr::read_unaligned(pptr.add(from) as *const Lanes) };
                    }
                }
                // Columns, then rows: V[i · a + j] = Σ BT[i][s] · d[s][s'] · BT[j][s'].
                let mut cols = [[[0.0f32; L]; A]; A]; // cols[s'][i]
                for s2 in 0..A {
                    let col: [Lanes; A] = std::array::from_fn(|s| d[s][s2]);
                    bt_lanes(&col, &mut cols[s2]);
                }
                for i in 0..A {
                    let row: [Lanes; A] = std::array::from_fn(|s2| cols[s2][i]);
                    let mut vt = [[0.0f32; L]; A];
                    bt_lanes(&row, &mut vt);
                    for (j, lane) in vt.iter().enumerate() {
                        // SAFETY: point i · a + j, channel c, tiles off + x .. + cl of V.
                        unsafe {
                            let dst = vp.add((i * A + j) * vs + c * nb + sg.off + x);
                            if cl == L {
                                *(dst as *mut Lanes) = *lane;
                            } else {
                                std::ptr::copy_nonoverlapping(lane.as_ptr(), dst, cl);
                            }
                        }
                    }
                }
            }
        }
    }
    // The A² products: M[t] (K x nb) = U[t] (K x C) · V[t] (C x nb).
    for (ti, u) in wt.u.iter().enumerate() {
        sgemm_packed_a(
            u, nb, 1.0,
            OperandB::View { b: &v[ti * vs..][..g.c * nb], rs: nb as isize, cs: 1 },
            0.0, &mut m[ti * ms..][..g.k * nb], nb as isize, 1, &Epilogue::NONE,
        );
    }
    // Output transform, bias, residual, activation.
    let (lo, hi, fused) = match act {
        Act::None => (f32::NEG_INFINITY, f32::INFINITY, true),
        Act::Relu => (0.0, f32::INFINITY, true),
        Act::Clip(lo, hi) => (lo, hi, true),
        _ => (f32::NEG_INFINITY, f32::INFINITY, false),
    };
    #[cfg(target_arch = "x86_64")]
    if wide && fused {
        // SAFETY: the CPU has AVX-512F; M holds t · ms + L floats; `out` as this function's.
        unsafe {
            if A == 4 {
                output_avx512(g, &segs, m.as_ptr(), ms, nb, bias, lo, hi, add, out, 0..g.k)
            } else {
                output6_avx512(g, &segs, m.as_ptr(), ms, nb, bias, lo, hi, add, out, 0..g.k)
            }
        };
        return;
    }
    let oplane = g.oh * g.ow;
    for sg in &segs {
        for k in 0..g.k {
            let bk = bias[k];
            for x in (0..sg.len).step_by(L) {
                let cl = L.min(sg.len - x);
                let mut rows = [[[0.0f32; L]; R]; A]; // rows[i][b] = Σ_j AT[b][j] · M[i · a + j]
                for (i, ri) in rows.iter_mut().enumerate() {
                    let mv: [Lanes; A] = std::array::from_fn(|j| {
                        let from = (i * A + j) * ms + k * nb + sg.off + x;
                        // SAFETY: from + L <= a² · ms + L = m.len() (the lanes past the
                        // block's tiles read the next row or the slack, never stored).
                        unsafe { std::ptr::read_unaligned(m.as_ptr().add(from) as *const Lanes) }
                    });
                    at_lanes(&mv, ri);
                }
                let mut y = [[[0.0f32; L]; R]; R]; // y[b][a'] = Σ_i AT[a'][i] · rows[i][b]
                for (b, yb) in y.iter_mut().enumerate() {
                    let col: [Lanes; A] = std::array::from_fn(|i| rows[i][b]);
                    at_lanes(&col, yb);
                }
                let ox0 = (sg.x0 + x) * R;
                let ox1 = ((sg.x0 + x + cl) * R).min(g.ow);
                for aa in 0..R {
                    let oy = sg.ty * R + aa;
                    if oy >= g.oh {
                        break;
                    }
                    let yr: [Lanes; R] = std::array::from_fn(|b| y[b][aa]);
                    let vals = interleave::<R>(&yr);
                    // SAFETY: pixels ox0..ox1 of row oy of plane (img, k): this block's tiles only.
                    let orow = unsafe {
                        std::slice::from_raw_parts_mut(out.add((sg.img * g.k + k) * oplane + oy * g.ow + ox0), ox1 - ox0)
                    };
                    if add {
                        for (o, &v) in orow.iter_mut().zip(&vals) {
                            let s = v + bk + *o;
                            *o = if s < lo { lo } else if s > hi { hi } else { s };
                        }
                    } else {
                        for (o, &v) in orow.iter_mut().zip(&vals) {
                            let s = v + bk;
                            *o = if s < lo { lo } else if s > hi { hi } else { s };
                        }
                    }
                    if !fused {
                        act.apply(orow);
                    }
                }
            }
        }
    }
}

/// [`block`] of all the tiles on AVX-512 with its phases split over the pool: the input
/// transform by input channels, the A² GEMMs by transform points, the output transform by
/// output channels (the same arithmetic as `block`, so results do not depend on the split).
///
/// Safety: AVX-512F; `act` is None, Relu or Clip; `out` as for `block`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_split<const A: usize, const R: usize>(
    g: &Geo, wt: &WinogradWeights, padded: &[f32], bias: &[f32], act: Act, add: bool, out: *mut f32,
    tiles: std::ops::Range<usize>, buf: &mut Vec<f32>, flops: usize,
) {
    let t = A * A;
    let nb = tiles.len();
    let segs = segments(g, tiles);
    let (vs, ms) = (g.c * nb + L, g.k * nb + L);
    let v_len = t * vs;
    let m_len = t * ms + L;
    if buf.len() < v_len + m_len {
        buf.resize(v_len + m_len, 0.0);
    }
    let (lo, hi) = match act {
        Act::Relu => (0.0, f32::INFINITY),
        Act::Clip(lo, hi) => (lo, hi),
        _ => (f32::NEG_INFINITY, f32::INFINITY),
    };
    let (vp, mp, op) = (OutPtr(buf.as_mut_ptr()), OutPtr(buf.as_mut_ptr().add(v_len)), OutPtr(out));
    let segs = &segs;
    // SAFETY (the three phases): each range writes its own channels' V, points' M, output
    // channels' pixels; the CPU has AVX-512F.
    super::par::for_ranges(g.c, 1, flops, |cr| unsafe {
        if A == 4 {
            input_avx512(g, segs, padded, vp.get(), vs, nb, cr)
        } else {
            input6_avx512(g, segs, padded, vp.get(), vs, nb, cr)
        }
    });
    super::par::for_ranges(t, 1, flops, |pr| {
        for ti in pr {
            let (v, m) = unsafe {
                (
                    std::slice::from_raw_parts(vp.get().add(ti * vs), g.c * nb),
                    std::slice::from_raw_parts_mut(mp.get().add(ti * ms), g.k * nb),
                )
            };
            sgemm_packed_a(
                &wt.u[ti], nb, 1.0, OperandB::View { b: v, rs: nb as isize, cs: 1 }, 0.0, m, nb as isize, 1,
                &Epilogue::NONE,
            );
        }
    });
    super::par::for_ranges(g.k, 1, flops, |kr| unsafe {
        if A == 4 {
            output_avx512(g, segs, mp.get(), ms, nb, bias, lo, hi, add, op.get(), kr)
        } else {
            output6_avx512(g, segs, mp.get(), ms, nb, bias, lo, hi, add, op.get(), kr)
        }
    });
}

/// `(a0 b0 a1 b1 .. a7 b7, a8 b8 .. a15 b15)`.
#[inline(always)]
fn zip(a: &Lanes, b: &Lanes) -> (Lanes, Lanes) {
    (
        std::array::from_fn(|i| if i % 2 == 0 { a[i / 2] } else { b[i / 2] }),
        std::array::from_fn(|i| if i % 2 == 0 { a[L / 2 + i / 2] } else { b[L / 2 + i / 2] }),
    )
}

/// `out[j · R + b] = y[b][j]` (an output row of L tiles from the R columns of each).
#[inline(always)]
fn interleave<const R: usize>(y: &[Lanes; R]) -> [f32; 4 * L] {
    let mut out = [0.0f32; 4 * L];
    if R == 2 {
        let (lo, hi) = zip(&y[0], &y[1]);
        out[..L].copy_from_slice(&lo);
        out[L..2 * L].copy_from_slice(&hi);
    } else {
        let (p_lo, p_hi) = zip(&y[0], &y[2]);
        let (q_lo, q_hi) = zip(&y[1], &y[3 % R]);
        let (a, b) = zip(&p_lo, &q_lo);
        let (c, d) = zip(&p_hi, &q_hi);
        out[..L].copy_from_slice(&a);
        out[L..2 * L].copy_from_slice(&b);
        out[2 * L..3 * L].copy_from_slice(&c);
        out[3 * L..].copy_from_slice(&d);
    }
    out
}

#[cfg(target_arch = "x86_64")]
fn avx512_cpu() -> bool {
    super::cpu::avx512()
}

/// `BT · (a, b, c, d)` of F(2x2, 3x3) on 16 tiles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bt4(
    a: std::arch::x86_64::__m512, b: std::arch::x86_64::__m512, c: std::arch::x86_64::__m512,
    d: std::arch::x86_64::__m512,
) -> [std::arch::x86_64::__m512; 4] {
    use std::arch::x86_64::*;
    [_mm512_sub_ps(a, c), _mm512_add_ps(b, c), _mm512_sub_ps(c, b), _mm512_sub_ps(b, d)]
}

/// `AT · (a, b, c, d)` of F(2x2, 3x3) on 16 tiles.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at4(
    a: std::arch::x86_64::__m512, b: std::arch::x86_64::__m512, c: std::arch::x86_64::__m512,
    d: std::arch::x86_64::__m512,
) -> [std::arch::x86_64::__m512; 2] {
    use std::arch::x86_64::*;
    [_mm512_add_ps(_mm512_add_ps(a, b), c), _mm512_sub_ps(_mm512_sub_ps(b, c), d)]
}

/// Mask of the first `n` (<= 16) lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn first(n: usize) -> u16 {
    if n >= 16 { u16::MAX } else { (1u16 << n) - 1 }
}

/// The input transform of `block::<4, 2>` in zmm registers: 16 tiles of one channel at a
/// time, the 4x4 input values loaded from the phase-split copy, `BT · d · B` and the 16
/// points stored to V (masked on a segment's last, partial chunk).
///
/// Safety: AVX-512F; `vp` points to V (`16 · vs` floats), `padded` as for `block`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_avx512(
    g: &Geo, segs: &[Segment], padded: &[f32], vp: *mut f32, vs: usize, nb: usize, chans: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let u_len = g.u_len;
    let lin = 2 * u_len;
    if let Some(groups) = lane_groups(segs) {
        for grp in groups {
            let gs = &segs[grp];
            let base = gs[0].off;
            let lanes: usize = gs.iter().map(|sg| sg.len).sum();
            let mask = first(lanes);
            for c in chans.clone() {
                let dst = vp.add(c * nb + base);
                // Segment j's tiles in lanes off - base .. + len, read from its own rows: lane
                // l + t at column x0 + t, as the one-segment loop reads it (the address of
                // lane 0 may lie before the row; masked-off lanes are never read).
                let mut qs = [(std::ptr::null::<f32>(), 0u16); 4];
                for (q, sg) in qs.iter_mut().zip(gs) {
                    let l = sg.off - base;
                    let phases = &padded[(sg.img * g.c + c) * g.pp + sg.ty * 4 * u_len..][..8 * u_len];
                    *q = (phases.as_ptr().add(sg.x0).wrapping_sub(l), seg_mask(l, sg.len));
                }
                let qs = &qs[..gs.len()];
                let ld = |s: usize, s2: usize| {
                    let at = s * lin + (s2 % 2) * u_len + s2 / 2;
                    let mut v = _mm512_setzero_ps();
                    for &(q, mk) in qs {
                        v = _mm512_mask_loadu_ps(v, mk, q.wrapping_add(at));
                    }
                    v
                };
                let c0 = bt4(ld(0, 0), ld(1, 0), ld(2, 0), ld(3, 0));
                let c1 = bt4(ld(0, 1), ld(1, 1), ld(2, 1), ld(3, 1));
                let c2 = bt4(ld(0, 2), ld(1, 2), ld(2, 2), ld(3, 2));
                let c3 = bt4(ld(0, 3), ld(1, 3), ld(2, 3), ld(3, 3));
                for i in 0..4 {
                    let v = bt4(c0[i], c1[i], c2[i], c3[i]);
                    for (j, &vj) in v.iter().enumerate() {
                        _mm512_mask_storeu_ps(dst.add((i * 4 + j) * vs), mask, vj);
                    }
                }
            }
        }
        return;
    }
    for sg in segs {
        for c in chans.clone() {
            let phases = &padded[(sg.img * g.c + c) * g.pp + sg.ty * 4 * u_len..][..8 * u_len];
            let dst = vp.add(c * nb + sg.off);
            let mut x = 0;
            while x < sg.len {
                let mask = first(sg.len - x);
                // SAFETY: as the portable loop: column s' / 2 + x0 + x + 16 <= u_len.
                let q = phases.as_ptr().add(sg.x0 + x);
                // Column s' of tile x is phase s' mod 2 at u = x + s' / 2.
                let ld = |s: usize, s2: usize| _mm512_loadu_ps(q.add(s * lin + (s2 % 2) * u_len + s2 / 2));
                let c0 = bt4(ld(0, 0), ld(1, 0), ld(2, 0), ld(3, 0));
                let c1 = bt4(ld(0, 1), ld(1, 1), ld(2, 1), ld(3, 1));
                let c2 = bt4(ld(0, 2), ld(1, 2), ld(2, 2), ld(3, 2));
                let c3 = bt4(ld(0, 3), ld(1, 3), ld(2, 3), ld(3, 3));
                for i in 0..4 {
                    let v = bt4(c0[i], c1[i], c2[i], c3[i]);
                    for (j, &vj) in v.iter().enumerate() {
                        _mm512_mask_storeu_ps(dst.add((i * 4 + j) * vs + x), mask, vj);
                    }
                }
                x += 16;
            }
        }
    }
}

/// The output transform of `block::<4, 2>` in zmm registers: 16 tiles of one output channel
/// at a time, `AT · M · A`, the two columns of each tile interleaved into output rows, bias,
/// residual and the clamp applied, masked stores.
///
/// Safety: AVX-512F; `m` points to M (`16 · ms + 16` floats); `out` as for `block`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn output_avx512(
    g: &Geo, segs: &[Segment], m: *const f32, ms: usize, nb: usize, bias: &[f32], lo: f32, hi: f32, add: bool,
    out: *mut f32, ks: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let oplane = g.oh * g.ow;
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    if let Some(groups) = lane_groups(segs) {
        for grp in groups {
            let gs = &segs[grp];
            let base = gs[0].off;
            for k in ks.clone() {
                let bk = _mm512_set1_ps(bias[k]);
                let src = m.add(k * nb + base);
                // SAFETY: reads end at most 16 floats past the block's tiles (M's slack).
                let ld = |t: usize| _mm512_loadu_ps(src.add(t * ms));
                let r0 = at4(ld(0), ld(1), ld(2), ld(3));
                let r1 = at4(ld(4), ld(5), ld(6), ld(7));
                let r2 = at4(ld(8), ld(9), ld(10), ld(11));
                let r3 = at4(ld(12), ld(13), ld(14), ld(15));
                let y0 = at4(r0[0], r1[0], r2[0], r3[0]);
                let y1 = at4(r0[1], r1[1], r2[1], r3[1]);
                for aa in 0..2 {
                    // Outputs 2t, 2t + 1 of lane t: vector e holds outputs 16e .. 16e + 16.
                    let vals = [_mm512_permutex2var_ps(y0[aa], ilo, y1[aa]), _mm512_permutex2var_ps(y0[aa], ihi, y1[aa])];
                    store_group_row::<2>(g, gs, aa, &vals, k, bk, (vlo, vhi), add, out);
                }
            }
        }
        return;
    }
    for sg in segs {
        for k in ks.clone() {
            let bk = _mm512_set1_ps(bias[k]);
            let src = m.add(k * nb + sg.off);
            let plane = out.add((sg.img * g.k + k) * oplane);
            let mut x = 0;
            while x < sg.len {
                let cl = 16.min(sg.len - x);
                // SAFETY: reads end at most 16 floats past the block's tiles (M's slack).
                let ld = |t: usize| _mm512_loadu_ps(src.add(t * ms + x));
                // rows[i][b] = Σ_j AT[b][j] · M[i · 4 + j]
                let r0 = at4(ld(0), ld(1), ld(2), ld(3));
                let r1 = at4(ld(4), ld(5), ld(6), ld(7));
                let r2 = at4(ld(8), ld(9), ld(10), ld(11));
                let r3 = at4(ld(12), ld(13), ld(14), ld(15));
                // y[b][a'] = Σ_i AT[a'][i] · rows[i][b]
                let y0 = at4(r0[0], r1[0], r2[0], r3[0]);
                let y1 = at4(r0[1], r1[1], r2[1], r3[1]);
                let ox0 = (sg.x0 + x) * 2;
                let ox1 = ((sg.x0 + x + cl) * 2).min(g.ow);
                let n = ox1 - ox0;
                let (m0, m1) = (first(n), first(n.saturating_sub(16)));
                for aa in 0..2 {
                    let oy = sg.ty * 2 + aa;
                    if oy >= g.oh {
                        break;
                    }
                    let o = plane.add(oy * g.ow + ox0);
                    let mut s0 = _mm512_add_ps(_mm512_permutex2var_ps(y0[aa], ilo, y1[aa]), bk);
                    let mut s1 = _mm512_add_ps(_mm512_permutex2var_ps(y0[aa], ihi, y1[aa]), bk);
                    if add {
                        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m0, o));
                        s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m1, o.add(16)));
                    }
                    // max(lo, s) and min(hi, s) keep a NaN s, as the portable clamp.
                    s0 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, s0));
                    s1 = _mm512_min_ps(vhi, _mm512_max_ps(vlo, s1));
                    _mm512_mask_storeu_ps(o, m0, s0);
                    _mm512_mask_storeu_ps(o.add(16), m1, s1);
                }
                x += 16;
            }
        }
    }
}

/// The stores of the grouped output transforms: output row `aa` of every segment in `gs`,
/// whose tiles lie side by side in `vals` with `S` outputs per tile (lane `16e + i` of vector
/// `e` is output `i - S·(off - base)` of its segment's row), bias `bk`, the residual and the
/// clamp applied, masked to the segment's columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn store_group_row<const S: usize>(
    g: &Geo, gs: &[Segment], aa: usize, vals: &[std::arch::x86_64::__m512], k: usize, bk: std::arch::x86_64::__m512,
    (vlo, vhi): (std::arch::x86_64::__m512, std::arch::x86_64::__m512), add: bool, out: *mut f32,
) {
    use std::arch::x86_64::*;
    let base = gs[0].off;
    for sg in gs {
        let oy = sg.ty * S + aa;
        if oy >= g.oh {
            continue;
        }
        let first = (S * (sg.off - base)) as isize;
        let ox0 = sg.x0 * S;
        let n = ((sg.x0 + sg.len) * S).min(g.ow) - ox0;
        let o = out.add((sg.img * g.k + k) * g.oh * g.ow + oy * g.ow + ox0);
        for (e, &v) in vals.iter().enumerate() {
            let lo16 = first - 16 * e as isize;
            let mk = lanes_mask(lo16, lo16 + n as isize);
            if mk == 0 {
                continue;
            }
            let oe = o.wrapping_offset(-lo16);
            let mut s = _mm512_add_ps(v, bk);
            if add {
                s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, oe));
            }
            s = _mm512_min_ps(vhi, _mm512_max_ps(vlo, s));
            _mm512_mask_storeu_ps(oe, mk, s);
        }
    }
}

/// Lanes `lo..hi` (clipped to 0..16) of a mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes_mask(lo: isize, hi: isize) -> u16 {
    let (lo, hi) = (lo.clamp(0, 16) as usize, hi.clamp(0, 16) as usize);
    if hi <= lo { 0 } else { first(hi) & !first(lo) }
}

/// `pad_input` for r = 2 in zmm registers: every float of the planes written once (zeros
/// outside the input), each phase row from two masked loads of 32 input columns split into
/// even and odd ones.
///
/// Safety: AVX-512F; `padded` holds at least n · c · pp floats, `src` n · c · h · w.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pad_avx512(g: &Geo, src: &[f32], padded: *mut f32, planes: std::ops::Range<usize>) {
    use std::arch::x86_64::*;
    let u_len = g.u_len;
    let rows = g.pp / (2 * u_len);
    let plane = g.h * g.w;
    let zero = _mm512_setzero_ps();
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let (w, pw) = (g.w as isize, g.pw as isize);
    for pl in planes {
        let chan = src[pl * plane..][..plane].as_ptr();
        let d = padded.add(pl * g.pp);
        for yp in 0..rows {
            let row_in = yp.checked_sub(g.ph).filter(|&y| y < g.h);
            for p in 0..2 {
                let drow = d.add((yp * 2 + p) * u_len);
                let Some(y) = row_in else {
                    for u in (0..u_len).step_by(16) {
                        _mm512_storeu_ps(drow.add(u), zero);
                    }
                    continue;
                };
                let row = chan.add(y * g.w);
                for u in (0..u_len).step_by(16) {
                    // Input column of lane e of the 32 loaded: col0 + e, in the row if 0 <= . < w.
                    let col0 = 2 * u as isize + p as isize - pw;
                    let (m0, m1) = (lanes_mask(-col0, w - col0), lanes_mask(-col0 - 16, w - col0 - 16));
                    // SAFETY: only lanes inside the row are read (wrapping: the address may lie before it).
                    let a = _mm512_maskz_loadu_ps(m0, row.wrapping_offset(col0));
                    let b = _mm512_maskz_loadu_ps(m1, row.wrapping_offset(col0 + 16));
                    _mm512_storeu_ps(drow.add(u), _mm512_permutex2var_ps(a, even, b));
                }
            }
        }
    }
}


/// `BT · x` of F(4x4, 3x3) on 16 tiles (the portable `bt_lanes` order of operations).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn bt6(x: [std::arch::x86_64::__m512; 6]) -> [std::arch::x86_64::__m512; 6] {
    use std::arch::x86_64::*;
    let (four, five, two) = (_mm512_set1_ps(4.0), _mm512_set1_ps(5.0), _mm512_set1_ps(2.0));
    let p = _mm512_sub_ps(x[4], _mm512_mul_ps(four, x[2]));
    let q = _mm512_sub_ps(x[3], _mm512_mul_ps(four, x[1]));
    let p2 = _mm512_sub_ps(x[4], x[2]);
    let q2 = _mm512_mul_ps(two, _mm512_sub_ps(x[3], x[1]));
    [
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[0]), _mm512_mul_ps(five, x[2])), x[4]),
        _mm512_add_ps(p, q),
        _mm512_sub_ps(p, q),
        _mm512_add_ps(p2, q2),
        _mm512_sub_ps(p2, q2),
        _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(four, x[1]), _mm512_mul_ps(five, x[3])), x[5]),
    ]
}

/// `AT · x` of F(4x4, 3x3) on 16 tiles (the portable `at_lanes` order of operations).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn at6(x: [std::arch::x86_64::__m512; 6]) -> [std::arch::x86_64::__m512; 4] {
    use std::arch::x86_64::*;
    let p = _mm512_add_ps(x[1], x[2]);
    let q = _mm512_sub_ps(x[1], x[2]);
    let p2 = _mm512_add_ps(x[3], x[4]);
    let q2 = _mm512_sub_ps(x[3], x[4]);
    [
        _mm512_add_ps(_mm512_add_ps(x[0], p), p2),
        _mm512_add_ps(q, _mm512_mul_ps(_mm512_set1_ps(2.0), q2)),
        _mm512_add_ps(p, _mm512_mul_ps(_mm512_set1_ps(4.0), p2)),
        _mm512_add_ps(_mm512_add_ps(q, _mm512_mul_ps(_mm512_set1_ps(8.0), q2)), x[5]),
    ]
}

/// The input transform of `block::<6, 4>` in zmm registers, from the unpadded input `src`:
/// for each tile row and channel, its six input rows padded and split by column phase into
/// a small buffer that stays in L1 (`pad4_rows`), then 16 tiles at a time the 6x6 input
/// values loaded from it column by column through `BT` (36 vectors), then row by row
/// through `BT`, the 36 points stored to V (masked on a segment's last, partial chunk).
///
/// Safety: AVX-512F; `vp` points to V (`36 · vs` floats), `src` holds n · c · h · w floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // i picks column i of each of the six transformed rows
unsafe fn input6_avx512(
    g: &Geo, segs: &[Segment], src: &[f32], vp: *mut f32, vs: usize, nb: usize, chans: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let u_len = g.u_len;
    let lin = 4 * u_len;
    let plane = g.h * g.w;
    assert!(src.len() >= g.n * g.c * plane, "winograd: input too short");
    let mut rows = TILE_ROWS.with(|cell| cell.take());
    if let Some(groups) = lane_groups(segs) {
        // Each segment of a group pads its six rows into its own quarter of `rows`.
        if rows.len() < 4 * 24 * u_len {
            rows.resize(4 * 24 * u_len, 0.0);
        }
        for grp in groups {
            let gs = &segs[grp];
            let base = gs[0].off;
            let lanes: usize = gs.iter().map(|sg| sg.len).sum();
            let mask = first(lanes);
            for c in chans.clone() {
                let mut qs = [(std::ptr::null::<f32>(), 0u16); 4];
                for (j, (q, sg)) in qs.iter_mut().zip(gs).enumerate() {
                    // Segments are at most 8 tiles: columns x0 .. x0 + 8 + 2 of each phase.
                    let us = (sg.x0 / 16) * 16..(sg.x0 + 17).next_multiple_of(16).min(u_len);
                    let rj = rows.as_mut_ptr().add(j * 24 * u_len);
                    pad4_rows(g, src.as_ptr().add((sg.img * g.c + c) * plane), sg.ty * 4, 6, us, rj);
                    let l = sg.off - base;
                    // Lane l + t reads column x0 + t (the address of lane 0 may lie before it).
                    *q = (rj.add(sg.x0).cast_const().wrapping_sub(l), seg_mask(l, sg.len));
                }
                let qs = &qs[..gs.len()];
                let dst = vp.add(c * nb + base);
                let ld = |s: usize, s2: usize| {
                    let at = s * lin + (s2 % 4) * u_len + s2 / 4;
                    let mut v = _mm512_setzero_ps();
                    for &(q, mk) in qs {
                        v = _mm512_mask_loadu_ps(v, mk, q.wrapping_add(at));
                    }
                    v
                };
                let cols: [[__m512; 6]; 6] =
                    std::array::from_fn(|s2| bt6([ld(0, s2), ld(1, s2), ld(2, s2), ld(3, s2), ld(4, s2), ld(5, s2)]));
                for i in 0..6 {
                    let v = bt6([cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i]]);
                    for (j, &vj) in v.iter().enumerate() {
                        _mm512_mask_storeu_ps(dst.add((i * 6 + j) * vs), mask, vj);
                    }
                }
            }
        }
        TILE_ROWS.with(|cell| cell.replace(rows));
        return;
    }
    if rows.len() < 24 * u_len {
        rows.resize(24 * u_len, 0.0);
    }
    for sg in segs {
        // The phase columns the loads below read: u = x0 + x + s' / 4 + 0..16 for x < len.
        let us = (sg.x0 / 16) * 16..(sg.x0 + (sg.len - 1) / 16 * 16 + 17).next_multiple_of(16).min(u_len);
        for c in chans.clone() {
            pad4_rows(g, src.as_ptr().add((sg.img * g.c + c) * plane), sg.ty * 4, 6, us.clone(), rows.as_mut_ptr());
            let dst = vp.add(c * nb + sg.off);
            let mut x = 0;
            while x < sg.len {
                let mask = first(sg.len - x);
                // SAFETY: as the portable loop: column s' / 4 + x0 + x + 16 <= u_len, inside `us`.
                let q = rows.as_ptr().add(sg.x0 + x);
                // Column s' of tile x is phase s' mod 4 at u = x + s' / 4.
                let ld = |s: usize, s2: usize| _mm512_loadu_ps(q.add(s * lin + (s2 % 4) * u_len + s2 / 4));
                let cols: [[__m512; 6]; 6] =
                    std::array::from_fn(|s2| bt6([ld(0, s2), ld(1, s2), ld(2, s2), ld(3, s2), ld(4, s2), ld(5, s2)]));
                for i in 0..6 {
                    let v = bt6([cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i], cols[5][i]]);
                    for (j, &vj) in v.iter().enumerate() {
                        _mm512_mask_storeu_ps(dst.add((i * 6 + j) * vs + x), mask, vj);
                    }
                }
                x += 16;
            }
        }
    }
    TILE_ROWS.with(|cell| cell.replace(rows));
}

/// The output transform of `block::<6, 4>` in zmm registers: 16 tiles of one output channel
/// at a time, `AT · M · A`, the four columns of each tile interleaved into output rows of 64
/// values, bias, residual and the clamp applied, masked stores.
///
/// Safety: AVX-512F; `m` points to M (`36 · ms + 16` floats); `out` as for `block`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // a row index into several 2-D register arrays
unsafe fn output6_avx512(
    g: &Geo, segs: &[Segment], m: *const f32, ms: usize, nb: usize, bias: &[f32], lo: f32, hi: f32, add: bool,
    out: *mut f32, ks: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let oplane = g.oh * g.ow;
    let (vlo, vhi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
    let ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    if let Some(groups) = lane_groups(segs) {
        for grp in groups {
            let gs = &segs[grp];
            let base = gs[0].off;
            for k in ks.clone() {
                let bk = _mm512_set1_ps(bias[k]);
                let src = m.add(k * nb + base);
                // SAFETY: reads end at most 16 floats past the block's tiles (M's slack).
                let ld = |t: usize| _mm512_loadu_ps(src.add(t * ms));
                let rows: [[__m512; 4]; 6] = std::array::from_fn(|i| {
                    at6([ld(i * 6), ld(i * 6 + 1), ld(i * 6 + 2), ld(i * 6 + 3), ld(i * 6 + 4), ld(i * 6 + 5)])
                });
                let y: [[__m512; 4]; 4] =
                    std::array::from_fn(|b| at6([rows[0][b], rows[1][b], rows[2][b], rows[3][b], rows[4][b], rows[5][b]]));
                for aa in 0..4 {
                    // Outputs 4t .. 4t + 4 of lane t: vector e holds outputs 16e .. 16e + 16.
                    let (p_lo, p_hi) =
                        (_mm512_permutex2var_ps(y[0][aa], ilo, y[2][aa]), _mm512_permutex2var_ps(y[0][aa], ihi, y[2][aa]));
                    let (q_lo, q_hi) =
                        (_mm512_permutex2var_ps(y[1][aa], ilo, y[3][aa]), _mm512_permutex2var_ps(y[1][aa], ihi, y[3][aa]));
                    let vals = [
                        _mm512_permutex2var_ps(p_lo, ilo, q_lo),
                        _mm512_permutex2var_ps(p_lo, ihi, q_lo),
                        _mm512_permutex2var_ps(p_hi, ilo, q_hi),
                        _mm512_permutex2var_ps(p_hi, ihi, q_hi),
                    ];
                    store_group_row::<4>(g, gs, aa, &vals, k, bk, (vlo, vhi), add, out);
                }
            }
        }
        return;
    }
    for sg in segs {
        for k in ks.clone() {
            let bk = _mm512_set1_ps(bias[k]);
            let src = m.add(k * nb + sg.off);
            let plane = out.add((sg.img * g.k + k) * oplane);
            let mut x = 0;
            while x < sg.len {
                let cl = 16.min(sg.len - x);
                // SAFETY: reads end at most 16 floats past the block's tiles (M's slack).
                let ld = |t: usize| _mm512_loadu_ps(src.add(t * ms + x));
                // rows[i][b] = Σ_j AT[b][j] · M[i · 6 + j]
                let rows: [[__m512; 4]; 6] = std::array::from_fn(|i| {
                    at6([ld(i * 6), ld(i * 6 + 1), ld(i * 6 + 2), ld(i * 6 + 3), ld(i * 6 + 4), ld(i * 6 + 5)])
                });
                // y[b][a'] = Σ_i AT[a'][i] · rows[i][b]
                let y: [[__m512; 4]; 4] =
                    std::array::from_fn(|b| at6([rows[0][b], rows[1][b], rows[2][b], rows[3][b], rows[4][b], rows[5][b]]));
                let ox0 = (sg.x0 + x) * 4;
                let ox1 = ((sg.x0 + x + cl) * 4).min(g.ow);
                let n = ox1 - ox0;
                let masks = [first(n), first(n.saturating_sub(16)), first(n.saturating_sub(32)), first(n.saturating_sub(48))];
                for aa in 0..4 {
                    let oy = sg.ty * 4 + aa;
                    if oy >= g.oh {
                        break;
                    }
                    let o = plane.add(oy * g.ow + ox0);
                    // (y0 y1 y2 y3) of each tile side by side: zip(zip(y0, y2), zip(y1, y3)).
                    let (p_lo, p_hi) =
                        (_mm512_permutex2var_ps(y[0][aa], ilo, y[2][aa]), _mm512_permutex2var_ps(y[0][aa], ihi, y[2][aa]));
                    let (q_lo, q_hi) =
                        (_mm512_permutex2var_ps(y[1][aa], ilo, y[3][aa]), _mm512_permutex2var_ps(y[1][aa], ihi, y[3][aa]));
                    let vals = [
                        _mm512_permutex2var_ps(p_lo, ilo, q_lo),
                        _mm512_permutex2var_ps(p_lo, ihi, q_lo),
                        _mm512_permutex2var_ps(p_hi, ilo, q_hi),
                        _mm512_permutex2var_ps(p_hi, ihi, q_hi),
                    ];
                    for (e, (&v, &mk)) in vals.iter().zip(&masks).enumerate() {
                        if mk == 0 {
                            break;
                        }
                        let oe = o.add(16 * e);
                        let mut s = _mm512_add_ps(v, bk);
                        if add {
                            s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, oe));
                        }
                        // max(lo, s) and min(hi, s) keep a NaN s, as the portable clamp.
                        s = _mm512_min_ps(vhi, _mm512_max_ps(vlo, s));
                        _mm512_mask_storeu_ps(oe, mk, s);
                    }
                }
                x += 16;
            }
        }
    }
}

/// The padding and phase split of `pad_input` for r = 4 in zmm registers, for the padded
/// rows `yp0 .. yp0 + rows` of one input plane `chan` (`h · w` floats) and the columns
/// `us` (whole chunks of 16) of each phase: zeros outside the input, each phase row from
/// four masked loads of 64 input columns, every fourth one kept. Row `j` phase `p` goes to
/// `dst + (j · 4 + p) · u_len`.
///
/// Safety: AVX-512F; `dst` holds `rows · 4 · u_len` floats, `us` ends at most at `u_len`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pad4_rows(g: &Geo, chan: *const f32, yp0: usize, rows: usize, us: std::ops::Range<usize>, dst: *mut f32) {
    use std::arch::x86_64::*;
    let u_len = g.u_len;
    let zero = _mm512_setzero_ps();
    // Lanes 0..8 of phase p from a pair of 16-column loads: columns p, p + 4, .., p + 28.
    let idx: [__m512i; 4] = std::array::from_fn(|p| {
        let p = p as i32;
        _mm512_setr_epi32(p, p + 4, p + 8, p + 12, p + 16, p + 20, p + 24, p + 28, 0, 0, 0, 0, 0, 0, 0, 0)
    });
    let (w, pw) = (g.w as isize, g.pw as isize);
    for j in 0..rows {
        let drow = dst.add(j * 4 * u_len);
        let Some(y) = (yp0 + j).checked_sub(g.ph).filter(|&y| y < g.h) else {
            for p in 0..4 {
                for u in us.clone().step_by(16) {
                    _mm512_storeu_ps(drow.add(p * u_len + u), zero);
                }
            }
            continue;
        };
        let row = chan.add(y * g.w);
        for u in us.clone().step_by(16) {
            // Input column of lane e of the 64 loaded: col0 + e, in the row if 0 <= . < w.
            let col0 = 4 * u as isize - pw;
            let ld = |j: isize| {
                let m = lanes_mask(-col0 - 16 * j, w - col0 - 16 * j);
                // SAFETY: only lanes inside the row are read (wrapping: the address may lie before it).
                _mm512_maskz_loadu_ps(m, row.wrapping_offset(col0 + 16 * j))
            };
            let (a, b, c, e) = (ld(0), ld(1), ld(2), ld(3));
            for (p, ip) in idx.iter().enumerate() {
                let lo = _mm512_permutex2var_ps(a, *ip, b);
                let hi = _mm512_permutex2var_ps(c, *ip, e);
                _mm512_storeu_ps(drow.add(p * u_len + u), _mm512_shuffle_f32x4::<0x44>(lo, hi));
            }
        }
    }
}
