//! Detection post-processing: NonMaxSuppression.

use super::elem::Float;
use super::error::{shape_err, Error, Result};
use ndarray::{ArrayD, IxDyn};

/// Corners (x_min, x_max, y_min, y_max) of a box given as corners or as center and size.
fn corners(b: [f64; 4], center: bool) -> (f64, f64, f64, f64) {
    if center {
        let (hw, hh) = (b[2] / 2.0, b[3] / 2.0);
        (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
    } else {
        (b[1].min(b[3]), b[1].max(b[3]), b[0].min(b[2]), b[0].max(b[2]))
    }
}

fn iou_above(a: [f64; 4], b: [f64; 4], center: bool, threshold: f64) -> bool {
    let (ax0, ax1, ay0, ay1) = corners(a, center);
    let (bx0, bx1, by0, by1) = corners(b, center);
    let (ix0, ix1, iy0, iy1) = (ax0.max(bx0), ax1.min(bx1), ay0.max(by0), ay1.min(by1));
    if ix1 <= ix0 || iy1 <= iy0 {
        return false;
    }
    let inter = (ix1 - ix0) * (iy1 - iy0);
    let (area_a, area_b) = ((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0));
    let union = area_a + area_b - inter;
    if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

/// ONNX `NonMaxSuppression`: `[selected, 3]` (batch, class, box) indices, per class by descending score.
pub fn non_max_suppression<T: Float>(
    boxes: &ArrayD<T>,
    scores: &ArrayD<T>,
    max_per_class: i64,
    iou_threshold: f64,
    score_threshold: Option<f64>,
    center_point_box: bool,
) -> Result<ArrayD<i64>> {
    if boxes.ndim() != 3 || scores.ndim() != 3 || boxes.shape()[2] != 4 || scores.shape()[0] != boxes.shape()[0]
        || scores.shape()[2] != boxes.shape()[1]
    {
        return shape_err(format!("non_max_suppression: boxes {:?} and scores {:?}", boxes.shape(), scores.shape()));
    }
    let (batches, classes, n) = (scores.shape()[0], scores.shape()[1], scores.shape()[2]);
    let max_per_class = max_per_class.max(0) as usize;
    let mut selected: Vec<i64> = Vec::new();
    for b in 0..batches {
        let boxes_b: Vec<[f64; 4]> = (0..n)
            .map(|i| std::array::from_fn(|k| boxes[IxDyn(&[b, i, k])].to_f64()))
            .collect();
        for c in 0..classes {
            let mut order: Vec<(f64, usize)> = (0..n)
                .map(|i| (scores[IxDyn(&[b, c, i])].to_f64(), i))
                .filter(|(s, _)| score_threshold.is_none_or(|t| *s > t))
                .collect();
            // Highest score first; equal scores keep the lower box index first.
            order.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal).then(x.1.cmp(&y.1)));
            let mut kept: Vec<usize> = Vec::new();
            for (_, i) in order {
                if kept.len() >= max_per_class {
                    break;
                }
                if kept.iter().all(|&k| !iou_above(boxes_b[i], boxes_b[k], center_point_box, iou_threshold)) {
                    kept.push(i);
                    selected.extend_from_slice(&[b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    let count = selected.len() / 3;
    ArrayD::from_shape_vec(IxDyn(&[count, 3]), selected).map_err(|e| Error::Shape(e.to_string()))
}

/// Geometry of `RoiAlign`.
#[derive(Debug, Clone, Copy)]
pub struct RoiAlignParams<'a> {
    /// `avg` or `max`.
    pub mode: &'a str,
    pub output_height: usize,
    pub output_width: usize,
    pub sampling_ratio: i64,
    pub spatial_scale: f64,
    /// `half_pixel` shifts by half a pixel; `output_half_pixel` is the legacy behaviour.
    pub half_pixel: bool,
}

/// Bilinear corner (index, weight) pairs of one sampling point, empty when it falls outside.
fn bilinear(y: f64, x: f64, h: usize, w: usize) -> Vec<(usize, f64)> {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return vec![];
    }
    let axis = |v: f64, n: usize| -> (usize, usize, f64) {
        let v = v.max(0.0);
        let lo = v.floor() as usize;
        if lo + 1 >= n {
            (n - 1, n - 1, 0.0)
        } else {
            (lo, lo + 1, v - lo as f64)
        }
    };
    let (y0, y1, ly) = axis(y, h);
    let (x0, x1, lx) = axis(x, w);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    vec![(y0 * w + x0, hy * hx), (y0 * w + x1, hy * lx), (y1 * w + x0, ly * hx), (y1 * w + x1, ly * lx)]
}

/// ONNX `RoiAlign`: `[num_rois, C, out_h, out_w]` pooled features of `x [N, C, H, W]`.
pub fn roi_align<T: Float>(
    x: &ArrayD<T>,
    rois: &ArrayD<T>,
    batch_indices: &ArrayD<i64>,
    p: &RoiAlignParams,
) -> Result<ArrayD<T>> {
    if x.ndim() != 4 || rois.ndim() != 2 || rois.shape()[1] != 4 || batch_indices.len() != rois.shape()[0] {
        return shape_err("roi_align: expects x [N, C, H, W], rois [R, 4], batch_indices [R]");
    }
    let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let (oh, ow) = (p.output_height, p.output_width);
    let xs = x.as_standard_layout();
    let src = xs.as_slice().unwrap_or(&[]);
    let mut out = Vec::with_capacity(rois.shape()[0] * c * oh * ow);
    for r in 0..rois.shape()[0] {
        let b = batch_indices[IxDyn(&[r])];
        if b < 0 || b as usize >= n {
            return shape_err(format!("roi_align: batch index {b} out of range"));
        }
        let coord = |k: usize| rois[IxDyn(&[r, k])].to_f64() * p.spatial_scale - if p.half_pixel { 0.5 } else { 0.0 };
        let (x1, y1, x2, y2) = (coord(0), coord(1), coord(2), coord(3));
        let (mut rw, mut rh) = (x2 - x1, y2 - y1);
        if !p.half_pixel {
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (rh / oh as f64, rw / ow as f64);
        let gh = if p.sampling_ratio > 0 { p.sampling_ratio as usize } else { (rh / oh as f64).ceil() as usize };
        let gw = if p.sampling_ratio > 0 { p.sampling_ratio as usize } else { (rw / ow as f64).ceil() as usize };
        let count = (gh * gw).max(1) as f64;
        for ch in 0..c {
            let plane = &src[((b as usize) * c + ch) * h * w..((b as usize) * c + ch + 1) * h * w];
            for py in 0..oh {
                for px in 0..ow {
                    let mut acc = if p.mode == "max" { f64::NEG_INFINITY } else { 0.0 };
                    let mut any = false;
                    for iy in 0..gh {
                        let y = y1 + py as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                        for ix in 0..gw {
                            let xx = x1 + px as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                            let taps = bilinear(y, xx, h, w);
                            if p.mode == "max" {
                                // onnxruntime's max mode: the largest weighted corner of each sample
                                // (a sample outside the image counts as 0).
                                let best = taps
                                    .iter()
                                    .map(|&(i, wt)| wt * plane[i].to_f64())
                                    .fold(if taps.is_empty() { 0.0 } else { f64::NEG_INFINITY }, f64::max);
                                acc = acc.max(best);
                                any = true;
                            } else {
                                acc += taps.iter().map(|&(i, wt)| wt * plane[i].to_f64()).sum::<f64>();
                            }
                        }
                    }
                    let v = if p.mode == "max" { if any { acc } else { 0.0 } } else { acc / count };
                    out.push(T::from_f64(v));
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[rois.shape()[0], c, oh, ow]), out).map_err(|e| Error::Shape(e.to_string()))
}
